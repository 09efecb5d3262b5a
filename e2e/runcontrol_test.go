package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/jobs/control"
	"github.com/refonte-ai/refonte-batch/jobs/store"
)

// TestCancelRunMidway: 3 workers against the sandbox with 300 ms of
// latency; a 5,000-row run is canceled with -tasks after about 1,000
// creates. No task is created after the cancel is acknowledged except the
// creates in flight (counted by the cancel), every row ends terminal, the
// run ends canceled, and its counts equal the sandbox's.
func TestCancelRunMidway(t *testing.T) {
	suite(t)
	rows := scale(5000, 5000)
	c := startCluster(t, clusterOpts{sandboxArgs: []string{"-latency", "300ms", "-complete-after", "1h"}})
	ds := writeDataset(t, c.dir, "cancel", rows, 0)
	s := c.submit(ds)
	waitFor(t, 2*time.Minute, "about 1,000 creates", func() (bool, string) {
		c.checkAlive()
		n := c.stats().TasksCreated
		return n >= int64(rows)/5, fmt.Sprintf("tasks_created %d", n)
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := runEnqueue(t, ctx, c.logDir, "cancel", "-tasks", "-json", "-redis", c.redis.URL(), s.RunID)
	if r.code != 0 {
		t.Fatalf("enqueue cancel exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var rep control.CancelReport
	r.lastJSON(t, &rep)
	ack := c.status(s.RunID) // every task recorded by now is in Submitted
	t.Logf("cancel acknowledged: %+v; status %s", rep, ack)
	if rep.CanceledNow == 0 || rep.CancelsQueued == 0 || rep.Shared != 0 {
		t.Fatalf("cancel report %+v: want rows canceled now and API cancels queued", rep)
	}
	final := c.waitState(s.RunID, "canceled", 3*time.Minute)
	sb := c.stats()
	t.Logf("final: %s; sandbox tasks_created=%d create_calls=%d by status %v", final, sb.TasksCreated, sb.CreateCalls, sb.TasksByStatus["test"])
	// Creates after the acknowledgement: only those in flight at the cancel.
	if late := sb.TasksCreated - ack.Submitted; late > rep.InFlight {
		t.Errorf("%d tasks created after the cancel was acknowledged, but only %d creates were in flight", late, rep.InFlight)
	} else {
		t.Logf("creates finished after the acknowledgement: %d (in flight at the cancel: %d)", max(late, 0), rep.InFlight)
	}
	if sb.UniqueIDsCreatedTwice != 0 {
		t.Errorf("unique_ids created twice: %d", sb.UniqueIDsCreatedTwice)
	}
	byStatus := sb.TasksByStatus["test"]
	for _, chk := range []struct {
		name      string
		got, want int64
	}{
		{"every row terminal", final.Completed + final.Failed + final.Canceled, int64(ds.valid)},
		{"submitted (= sandbox tasks_created)", final.Submitted, sb.TasksCreated},
		{"canceled after submission (= sandbox canceled)", final.Canceled - final.CanceledBeforeSubmit, byStatus["canceled"]},
		{"canceled before submission (= rows never created)", final.CanceledBeforeSubmit, int64(ds.valid) - sb.TasksCreated},
		{"completed (= sandbox completed)", final.Completed, byStatus["completed"]},
		{"failed (= sandbox error)", final.Failed, byStatus["error"]},
		{"sandbox pending", byStatus["pending"], 0},
	} {
		if chk.got != chk.want {
			t.Errorf("%s: %d, want %d (%s)", chk.name, chk.got, chk.want, final)
		}
	}
	// Again: harmless.
	r = runEnqueue(t, ctx, c.logDir, "cancel", "-tasks", "-json", "-redis", c.redis.URL(), s.RunID)
	var again control.CancelReport
	r.lastJSON(t, &again)
	if r.code != 0 || again.CanceledNow != 0 || again.CancelsQueued != 0 || again.State != store.RunCanceled {
		t.Errorf("second cancel: exit %d %+v", r.code, again)
	}
	c.checkSecrets()
}

// waitState polls the run's status until it is in state, failing after timeout.
func (c *cluster) waitState(runID, state string, timeout time.Duration) summary {
	c.t.Helper()
	var last summary
	waitFor(c.t, timeout, "run "+runID+" "+state, func() (bool, string) {
		c.checkAlive()
		s, err := c.tryStatus(runID)
		if err != nil {
			return false, err.Error()
		}
		last = s
		return s.State == state, s.String()
	})
	return last
}
