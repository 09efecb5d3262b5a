package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// TestHeartbeatLapseShowsAborted is issue #17.5: a run still enqueuing
// whose producer stopped beating reads as aborted ("producer stopped at
// line N") in GetRun and ListRuns; a new beat or the end of enqueue wins.
func TestHeartbeatLapseShowsAborted(t *testing.T) {
	e := newEnv(t)
	run := e.createRun(refonte.ModeTest)
	e.addRows(run, 1, 3)
	const timeout = 150 * time.Millisecond
	if err := e.st.Heartbeat(e.ctx, run.ID, 7, timeout); err != nil {
		t.Fatal(err)
	}
	if r, _ := e.st.GetRun(e.ctx, run.ID); r.State != store.RunEnqueuing || r.Stalled || r.HeartbeatAt.IsZero() {
		t.Fatalf("fresh heartbeat: state %s stalled %v at %v", r.State, r.Stalled, r.HeartbeatAt)
	}
	var r *store.Run
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		if r, err = e.st.GetRun(e.ctx, run.ID); err != nil {
			t.Fatal(err)
		}
		if r.State == store.RunAborted || time.Now().After(deadline) {
			break
		}
	}
	if r.State != store.RunAborted || !r.Stalled || !strings.Contains(r.AbortReason, "producer stopped at line 7") ||
		!strings.Contains(r.AbortReason, "3 rows recorded") {
		t.Fatalf("lapsed heartbeat: state %s stalled %v reason %q", r.State, r.Stalled, r.AbortReason)
	}
	runs, err := e.st.ListRuns(e.ctx, 10)
	if err != nil || len(runs) != 1 || runs[0].State != store.RunAborted {
		t.Fatalf("ListRuns = %v, %v", runs, err)
	}

	// The producer comes back: enqueuing again; then it finishes.
	if err := e.st.Heartbeat(e.ctx, run.ID, 9, timeout); err != nil {
		t.Fatal(err)
	}
	if r, _ := e.st.GetRun(e.ctx, run.ID); r.State != store.RunEnqueuing {
		t.Errorf("after a new beat: state %s", r.State)
	}
	if err := e.st.FinishEnqueue(e.ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.st.Heartbeat(e.ctx, run.ID, 10, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if r, _ := e.st.GetRun(e.ctx, run.ID); r.State != store.RunRunning || r.Stalled {
		t.Errorf("finished run: state %s stalled %v", r.State, r.Stalled)
	}
}
