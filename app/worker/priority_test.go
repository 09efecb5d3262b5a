package worker

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/jobs"
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
	st := storeOn(t, redisURL)
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
