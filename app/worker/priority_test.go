package worker

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/refonte-ai/refonte-batch/internal/testkit"
	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/control"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

// submittedAt returns when each row of a run was recorded submitted, in
// order.
func submittedAt(tb testing.TB, st *store.Store, runID string) []time.Time {
	tb.Helper()
	var out []time.Time
	err := st.RunRows(context.Background(), runID, func(_ store.RunRow, j *store.Job) error {
		if j == nil || j.SubmittedAt.IsZero() {
			return fmt.Errorf("row without a submit time: %+v", j)
		}
		out = append(out, j.SubmittedAt)
		return nil
	})
	if err != nil {
		tb.Fatalf("rows of %s: %v", runID, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

// TestPriorityOrder queues a normal run, a low run and then a high run
// before a worker starts (a real redis-server, the sandbox): the high rows
// are submitted before the normal rows already queued (but for those the
// worker's slots held when the high queue emptied), and the low run is
// not starved behind the normal one (the low lane).
func TestPriorityOrder(t *testing.T) {
	redisURL := testredis.Fresh(t)
	st, _ := testkit.StoreOn(t, redisURL, store.Options{})
	_, apiURL := startSandbox(t, sandbox.Config{CompleteAfter: 0, Latency: 2 * time.Millisecond})
	cfg := testConfig(t, redisURL, apiURL)
	cfg.LiveKey = ""
	cfg.Concurrency = 8
	cfg.Prefetch = -1 // 8 slots: 7 strict by priority, 1 low lane
	const nNormal, nLow, nHigh = 400, 20, 60
	normal := addPriorityRun(t, st, refonte.ModeTest, jobs.PriorityNormal, nNormal, "")
	low := addPriorityRun(t, st, refonte.ModeTest, jobs.PriorityLow, nLow, "")
	high := addPriorityRun(t, st, refonte.ModeTest, jobs.PriorityHigh, nHigh, "")
	startWorker(t, cfg, nil)
	for _, r := range []*store.Run{normal, low, high} {
		waitFor(t, 2*time.Minute, "every row submitted", func() (bool, string) {
			got := runState(t, st, r.ID)
			return got.Submitted == got.Valid, fmt.Sprintf("run %s: %d of %d submitted", r.ID, got.Submitted, got.Valid)
		})
	}
	normalAt, lowAt, highAt := submittedAt(t, st, normal.ID), submittedAt(t, st, low.ID), submittedAt(t, st, high.ID)

	// High before normal: only the jobs the slots held when the high queue
	// emptied may be recorded before the last high row.
	lastHigh := highAt[len(highAt)-1]
	before := sort.Search(len(normalAt), func(i int) bool { return !normalAt[i].Before(lastHigh) })
	if slots := cfg.Concurrency; before > slots {
		t.Errorf("%d normal rows were submitted before the last high row (at most %d allowed: the worker's slots)", before, slots)
	}
	// Low is not starved: every low row goes before the normal run is half done.
	if lastLow, midNormal := lowAt[len(lowAt)-1], normalAt[len(normalAt)/2]; !lastLow.Before(midNormal) {
		t.Errorf("the last low row was submitted at %s, after half of the normal run (%s): starved",
			lastLow.Format(time.StampMicro), midNormal.Format(time.StampMicro))
	}
}

// TestCancelCountsIncludeTheSweep: rows canceled by enqueue cancel's own
// sweep (no worker involved) are in every worker's
// refonte_rows_canceled_total, as are those a worker cancels.
func TestCancelCountsIncludeTheSweep(t *testing.T) {
	redisURL := testredis.Fresh(t)
	st, _ := testkit.StoreOn(t, redisURL, store.Options{})
	_, apiURL := startSandbox(t, sandbox.Config{NoAutoComplete: true})
	cfg := testConfig(t, redisURL, apiURL)
	run := addRun(t, st, refonte.ModeTest, 5, "")
	rep, err := control.Cancel(context.Background(), st, asynq.NewClientFromRedisClient(testredis.ClientOn(t, redisURL)), run.ID, false)
	if err != nil || rep.CanceledNow != 5 {
		t.Fatalf("cancel: %+v, %v; want 5 rows canceled now", rep, err)
	}
	r := startWorker(t, cfg, nil)
	want := `refonte_rows_canceled_total{mode="test",stage="before_submit"} 5`
	waitFor(t, 3*StatsInterval, want, func() (bool, string) {
		body := scrape(t, r)
		return strings.Contains(body, want), grepLines(body, "refonte_rows_canceled_total")
	})
	if body := scrape(t, r); !strings.Contains(body, `refonte_rows_canceled_total{mode="live",stage="after_submit"} 0`) {
		t.Errorf("the live after_submit series is missing: %s", grepLines(body, "refonte_rows_canceled_total"))
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
