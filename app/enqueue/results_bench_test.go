package enqueue_test

import (
	"context"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/app/enqueue"
)

// BenchmarkResultsJoin enqueues a synthetic imageannotation JSONL dataset
// (dataset.WriteSyntheticJSONL, ENQUEUE_BENCH_ROWS rows, default 1,000,000)
// into a private redis-server, then streams `results -join` of the run in
// both formats (CSV: two passes over the dataset, flattened columns) to a
// discarding writer, and reports the rows per second, the largest live
// heap sampled every 10,000 rows and the process's peak RSS:
//
//	go test ./app/enqueue -run '^$' -bench BenchmarkResultsJoin -benchtime 1x
func BenchmarkResultsJoin(b *testing.B) {
	n := benchRows(b)
	_, st, cfg := benchSubmitSetup(b, n)
	ctx := context.Background()
	sum, err := enqueue.Submit(ctx, st, cfg, enqueue.SubmitOptions{})
	if err != nil || sum.Enqueued != int64(n) {
		b.Fatalf("submit: %v (%+v)", err, sum)
	}
	for _, format := range []enqueue.ResultsFormat{enqueue.ResultsCSV, enqueue.ResultsJSONL} {
		b.Run(string(format), func(b *testing.B) {
			var rows int64
			var elapsed time.Duration
			w := newHeapSampler(10_000)
			for range b.N {
				start := time.Now()
				got, err := enqueue.WriteResults(ctx, st, sum.RunID, enqueue.ResultsOptions{Format: format, Join: true}, w)
				elapsed += time.Since(start)
				if err != nil || got != int64(n) {
					b.Fatalf("WriteResults = %d, %v", got, err)
				}
				rows += got
			}
			b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
			b.ReportMetric(float64(w.max)/(1<<20), "max-live-heap-MiB")
			b.ReportMetric(float64(w.bytes)/float64(b.N)/(1<<20), "output-MiB")
			var ru syscall.Rusage
			if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
				b.ReportMetric(float64(ru.Maxrss)/1024, "maxrss-MiB")
			}
			runtime.KeepAlive(w)
		})
	}
}
