package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

func TestRunLifecycleBasic(t *testing.T) {
	e := newEnv(t)
	run := e.createRun(refonte.ModeTest)
	if run.ID == "" || run.State != store.RunEnqueuing {
		t.Fatalf("run = %+v", run)
	}
	outs := e.addRows(run, 1, 10)
	if got := count(outs, store.AddedNew); got != 10 {
		t.Fatalf("new = %d, want 10", got)
	}
	if err := e.st.AddInvalid(e.ctx, run.ID, 2); err != nil {
		t.Fatal(err)
	}
	if err := e.st.FinishEnqueue(e.ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	c := e.counters(run.ID)
	want := store.Counters{Rows: 12, Valid: 10, Invalid: 2, Enqueued: 10}
	if c != want {
		t.Fatalf("counters = %+v, want %+v", c, want)
	}
	var lastDone []string
	for i := 1; i <= 10; i++ {
		uid := fmt.Sprintf("uid-%d", i)
		tr, err := e.st.MarkSubmitted(e.ctx, refonte.ModeTest, uid, "task-"+uid)
		if err != nil || !tr.Changed || tr.To != store.JobSubmitted {
			t.Fatalf("MarkSubmitted = %+v, %v", tr, err)
		}
		tr, err = e.st.Complete(e.ctx, refonte.ModeTest, uid, outcome("task-"+uid, refonte.StatusCompleted, time.Now()))
		if err != nil || !tr.Changed || tr.To != store.JobCompleted {
			t.Fatalf("Complete = %+v, %v", tr, err)
		}
		lastDone = tr.RunsDone
	}
	if len(lastDone) != 1 || lastDone[0] != run.ID {
		t.Fatalf("RunsDone = %v", lastDone)
	}
	r := e.run(run.ID)
	if r.State != store.RunDone || r.FinishedAt.IsZero() || r.Completed != 10 || r.Submitted != 10 {
		t.Fatalf("run = %+v", r)
	}
	n := 0
	err := e.st.RunRows(e.ctx, run.ID, func(row store.RunRow, j *store.Job) error {
		n++
		if row.Line != int64(n) || j == nil || j.State != store.JobCompleted || string(j.Response) == "" {
			return fmt.Errorf("row %d = %+v, job %+v", n, row, j)
		}
		return nil
	})
	if err != nil || n != 10 {
		t.Fatalf("RunRows: %d rows, %v", n, err)
	}
	if _, err := e.st.GetJob(e.ctx, refonte.ModeTest, "nope"); !errors.Is(err, store.ErrJobNotFound) {
		t.Fatalf("GetJob(nope) = %v", err)
	}
	if _, err := e.st.GetRun(e.ctx, "nope"); !errors.Is(err, store.ErrRunNotFound) {
		t.Fatalf("GetRun(nope) = %v", err)
	}
}
