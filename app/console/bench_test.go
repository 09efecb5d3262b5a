package console_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/app/console"
	"github.com/refonte-ai/refonte-batch/internal/cputime"
	"github.com/refonte-ai/refonte-batch/internal/testkit"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// The console's server time on big data (README, "Performance"):
//
//	go test -run '^$' -bench Console -benchtime 20x ./app/console
//
// BenchmarkConsoleRunsList renders /runs over 1,000 runs (half of them
// active, each with a timeline); BenchmarkConsoleRunPage renders the page
// of a run of 1,000,000 rows with a full timeline (store.MaxTimelinePoints
// points) and every failure group. The pages read run records, timelines
// and failure groups only, never a row: the big run's counters are written
// into its record directly (its million job keys would change nothing but
// the setup time). ms/page is the wall time of a request (Redis round
// trips included), cpu-ms/page the console process's CPU time per page,
// which a busy machine does not inflate.

// bigCounters sets a run's counters as a run of rows rows well under way.
func bigCounters(b *testing.B, rdb redis.UniversalClient, prefix, id string, rows int64) {
	b.Helper()
	err := rdb.HSet(context.Background(), prefix+"run:"+id,
		"rows", rows, "valid", rows-rows/100, "invalid", rows/100, "enqueued", rows-rows/100,
		"submitted", rows*8/10, "completed", rows*6/10, "failed", rows/50, "canceled", rows/1000).Err()
	if err != nil {
		b.Fatal(err)
	}
}

func serveBench(b *testing.B, h http.Handler, path string) {
	b.Helper()
	b.ResetTimer()
	start, cpu := time.Now(), cputime.Process()
	for range b.N {
		code, body, _ := get(b, h, path)
		if code != http.StatusOK || len(body) == 0 {
			b.Fatalf("GET %s: %d", path, code)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/page")
	b.ReportMetric(float64((cputime.Process()-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/page")
}

func BenchmarkConsoleRunsList(b *testing.B) {
	st, rdb, prefix := testkit.SharedStore(b)
	ctx := context.Background()
	now := time.Now()
	var active []*store.Run
	for i := range 999 {
		r := &store.Run{Dataset: fmt.Sprintf("datasets/batch-%04d.csv", i), Mode: refonte.ModeTest,
			Project: fmt.Sprintf("project-%d", i%7), Batch: fmt.Sprintf("b-%d", i), CreatedAt: now.Add(-time.Duration(i) * time.Minute)}
		if i%10 == 0 {
			r.Mode = refonte.ModeLive
		}
		if err := st.CreateRun(ctx, r); err != nil {
			b.Fatal(err)
		}
		bigCounters(b, rdb, prefix, r.ID, int64(1000+i))
		if i%2 == 0 {
			active = append(active, r)
		}
	}
	for m := 10; m >= 1; m-- { // ten minutes of timeline for the active runs
		if err := st.RecordTimelines(ctx, active, now.Add(-time.Duration(m)*time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	c := newConsole(b, st, console.Options{RateLimit: 10})
	serveBench(b, c, "/runs")
}

func BenchmarkConsoleRunPage(b *testing.B) {
	st, rdb, prefix := testkit.SharedStore(b)
	ctx := context.Background()
	m := refonte.ModeTest
	outs := make([]func(string) error, 0, store.MaxFailureGroups+10)
	for i := range store.MaxFailureGroups + 10 {
		outs = append(outs, failed(st, m, fmt.Sprintf("params.attachment: error kind %d", i)))
	}
	start := time.Now().Add(-store.MaxTimelinePoints * time.Minute)
	run := seedRun(b, st, &store.Run{Dataset: "million.csv", CreatedAt: start}, len(outs), outs...)
	const rows = 1_000_000
	bigCounters(b, rdb, prefix, run.ID, rows)
	run, err := st.GetRun(ctx, run.ID)
	if err != nil {
		b.Fatal(err)
	}
	pt := *run
	for i := range store.MaxTimelinePoints {
		pt.Submitted, pt.Completed = int64(i*rows/store.MaxTimelinePoints), int64(i*rows/store.MaxTimelinePoints/2)
		if err := st.RecordTimelines(ctx, []*store.Run{&pt}, start.Add(time.Duration(i)*time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	c := newConsole(b, st, console.Options{})
	serveBench(b, c, "/runs/"+run.ID)
}
