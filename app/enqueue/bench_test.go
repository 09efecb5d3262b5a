package enqueue_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/app/enqueue"
	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/dataset"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// benchRows is the dataset size of BenchmarkSubmit1M: ENQUEUE_BENCH_ROWS,
// default 1,000,000.
func benchRows(b *testing.B) int {
	n := 1_000_000
	if v := os.Getenv("ENQUEUE_BENCH_ROWS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("ENQUEUE_BENCH_ROWS=%q", v)
		}
	}
	return n
}

// benchSubmitSetup writes a synthetic imageannotation JSONL dataset of n rows
// (dataset.WriteSyntheticJSONL) and returns a client on a fresh Redis
// database (closed by b.Cleanup), its store and the parsed submit config of
// the dataset: the shared setup of the enqueue benchmarks.
func benchSubmitSetup(b *testing.B, n int) (*redis.Client, *store.Store, *enqueue.Config) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "synthetic.jsonl")
	fh, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	bw := bufio.NewWriterSize(fh, 1<<20)
	if err := dataset.WriteSyntheticJSONL(bw, n, 1); err != nil {
		b.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	fh.Close()

	url := testredis.Fresh(b)
	opt, _ := redis.ParseURL(url)
	rdb := redis.NewClient(opt)
	b.Cleanup(func() { rdb.Close() })
	st := store.New(rdb, store.Options{})
	cfg, err := enqueue.ParseSubmit([]string{"-type", "imageannotation", "-project", "bench", path}, func(string) string { return "" }, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	return rdb, st, cfg
}

// BenchmarkSubmit1M enqueues a synthetic imageannotation JSONL dataset
// (dataset.WriteSyntheticJSONL, ~400-byte rows) into a private
// redis-server, validation and job records included, then runs a plain
// single-goroutine asynq.Client.Enqueue loop over the same rows in the same
// run, and reports both rates, their ratio and the process's peak RSS:
//
//	go test ./app/enqueue -run '^$' -bench BenchmarkSubmit1M -benchtime 1x
//
// ENQUEUE_BENCH_ROWS changes the size; ENQUEUE_BENCH_LOOP_ROWS caps the rows
// of the (slow) plain loop (default 200,000). bench/enqueue.sh measures the
// cmd/enqueue binary's peak RSS from outside.
func BenchmarkSubmit1M(b *testing.B) {
	n := benchRows(b)
	loopRows := min(n, 200_000)
	if v := os.Getenv("ENQUEUE_BENCH_LOOP_ROWS"); v != "" {
		loopRows, _ = strconv.Atoi(v)
	}
	rdb, st, cfg := benchSubmitSetup(b, n)
	ctx := context.Background()

	// The GC setting of cmd/enqueue (GOGC 400, 32 MiB soft limit).
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(32 << 20))
	var rows int64
	var elapsed time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		rdb.FlushDB(ctx)
		b.StartTimer()
		start := time.Now()
		sum, err := enqueue.Submit(ctx, st, cfg, enqueue.SubmitOptions{})
		elapsed += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if sum.Enqueued != int64(n) {
			b.Fatalf("enqueued %d of %d (invalid %d)", sum.Enqueued, n, sum.Invalid)
		}
		rows += sum.Rows
	}
	b.StopTimer()
	rate := float64(rows) / elapsed.Seconds()
	b.ReportMetric(rate, "rows/s")

	rdb.FlushDB(ctx)
	loopRate, err := plainAsynqLoop(ctx, rdb, cfg.Dataset, cfg, loopRows)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(loopRate, "loop-rows/s")
	b.ReportMetric(rate/loopRate, "x-loop")
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		b.ReportMetric(float64(ru.Maxrss)/1024, "maxrss-MiB") // Linux: KiB
	}
}

// plainAsynqLoop reads and validates the first limit rows the same way and
// enqueues each with asynq.Client.Enqueue from one goroutine (no job
// records): the baseline of the "2.5x" target.
func plainAsynqLoop(ctx context.Context, rdb redis.UniversalClient, path string, cfg *enqueue.Config, limit int) (float64, error) {
	client := asynq.NewClientFromRedisClient(rdb)
	in, err := dataset.OpenFile(path)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	r, err := dataset.NewReader(in, path, cfg.DatasetOptions())
	if err != nil {
		return 0, err
	}
	start := time.Now()
	n := 0
	for n < limit {
		row, rej, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
		if rej != nil {
			continue
		}
		task, err := jobs.NewSubmitTask(jobs.SubmitPayload{Run: "loop", Line: row.Line, UniqueID: row.UniqueID,
			TaskType: row.Type, Mode: refonte.ModeTest, Params: row.Body})
		if err != nil {
			return 0, err
		}
		if _, err := client.EnqueueContext(ctx, task); err != nil {
			return 0, err
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
