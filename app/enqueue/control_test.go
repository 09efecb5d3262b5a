package enqueue_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/refonte-ai/refonte-batch/app/enqueue"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// TestCancelCommand: enqueue cancel -tasks -json cancels the queued rows
// at once, queues a cancel job for the workers per open task, reports it,
// and is harmless when repeated; status shows the split.
func TestCancelCommand(t *testing.T) {
	f := newFixture(t)
	runID, js := f.submitted(4, "cancel")
	ctx := context.Background()
	if _, err := f.st.RecordCreated(ctx, refonte.ModeTest, js[0].UniqueID, "task-0"); err != nil {
		t.Fatal(err)
	}
	f.complete(js[1], refonte.StatusCompleted, `{"ok":1}`, "")
	r := f.main("cancel", "-tasks", "-json", runID)
	if r.code != enqueue.ExitOK {
		t.Fatalf("cancel exit %d: %s", r.code, r.stderr)
	}
	m := r.lastJSON(t)
	for k, want := range map[string]int64{"canceled_now": 2, "in_flight": 0, "shared": 0, "submitted": 1,
		"api_cancels_queued": 1, "canceled_before_submit": 2, "canceled_after_submit": 0, "completed": 1} {
		if got := num(t, m, k); got != want {
			t.Errorf("%s = %d, want %d (%s)", k, got, want, r.stdout)
		}
	}
	if m["state"] != string(store.RunCanceling) {
		t.Errorf("state = %v", m["state"])
	}
	info, err := f.insp.GetTaskInfo(jobs.PriorityQueue(refonte.ModeTest, jobs.PriorityHigh), jobs.CancelTaskID(refonte.ModeTest, js[0].UniqueID))
	if err != nil || info.Type != jobs.TypeCancelTask {
		t.Fatalf("cancel job = %+v, %v", info, err)
	}
	// Again: nothing new; the cancel job already queued is not doubled.
	r = f.main("cancel", "-tasks", "-json", runID)
	m = r.lastJSON(t)
	if r.code != enqueue.ExitOK || num(t, m, "canceled_now") != 0 || num(t, m, "api_cancels_queued") != 0 || num(t, m, "submitted") != 1 {
		t.Fatalf("second cancel exit %d: %s", r.code, r.stdout)
	}
	r = f.main("status", runID)
	if !strings.Contains(r.stdout, "canceled before submission  2") || !strings.Contains(r.stdout, "canceling") {
		t.Fatalf("status:\n%s", r.stdout)
	}
	if r := f.main("cancel", "nope"); r.code != enqueue.ExitError || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("cancel of no run: exit %d %s", r.code, r.stderr)
	}
	if r := f.main("cancel"); r.code != enqueue.ExitUsage {
		t.Fatalf("cancel without RUN_ID: exit %d", r.code)
	}
}

// TestPauseResumeCommands: pause shows in status; resume wakes the run's
// jobs waiting in asynq's schedule at once.
func TestPauseResumeCommands(t *testing.T) {
	f := newFixture(t)
	runID, js := f.submitted(2, "pause")
	r := f.main("pause", runID)
	if r.code != enqueue.ExitOK || !strings.Contains(r.stdout, "paused") {
		t.Fatalf("pause exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	r = f.main("status", "-json", runID)
	if m := r.lastJSON(t); m["state"] != "paused" || m["paused_reason"] != store.OperatorPausedReason {
		t.Fatalf("status = %s", r.stdout)
	}
	// Row 1's job waits in asynq's schedule (as a paused job rescheduled by a worker).
	q, id := jobs.Queue(refonte.ModeTest), jobs.TaskID(refonte.ModeTest, js[0].UniqueID)
	info, err := f.insp.GetTaskInfo(q, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.insp.DeleteTask(q, id); err != nil {
		t.Fatal(err)
	}
	c := asynq.NewClientFromRedisClient(f.rdb)
	if _, err := c.Enqueue(asynq.NewTask(jobs.TypeSubmit, info.Payload), asynq.Queue(q), asynq.TaskID(id), asynq.ProcessIn(time.Hour)); err != nil {
		t.Fatal(err)
	}
	r = f.main("resume", runID)
	if r.code != enqueue.ExitOK || !strings.Contains(r.stdout, "resumed") || !strings.Contains(r.stdout, "1 waiting jobs woken") {
		t.Fatalf("resume exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	if info, err := f.insp.GetTaskInfo(q, id); err != nil || info.State != asynq.TaskStatePending {
		t.Fatalf("woken job = %+v, %v", info, err)
	}
	if run := f.run(runID); run.State != store.RunRunning || run.PausedReason != "" {
		t.Fatalf("run after resume = %+v", run)
	}
	// A canceled run cannot be paused.
	f.main("cancel", runID)
	if r := f.main("pause", runID); r.code != enqueue.ExitError {
		t.Fatalf("pause of a canceled run: exit %d %s", r.code, r.stdout)
	}
}

// TestRetryCanceledRun: enqueue retry of a canceled run lifts the cancel
// and re-queues its canceled rows.
func TestRetryCanceledRun(t *testing.T) {
	f := newFixture(t)
	runID, js := f.submitted(3, "retrycancel")
	f.complete(js[0], refonte.StatusCompleted, `{"ok":1}`, "")
	if r := f.main("cancel", runID); r.code != enqueue.ExitOK {
		t.Fatalf("cancel exit %d: %s", r.code, r.stderr)
	}
	if run := f.run(runID); run.State != store.RunCanceled || run.CanceledBeforeSubmit != 2 {
		t.Fatalf("canceled run = %s %+v", run.State, run.Counters)
	}
	r := f.main("retry", runID)
	if r.code != enqueue.ExitOK || !strings.Contains(r.stdout, "0 failed rows, 2 canceled rows (the cancel is lifted), 2 re-queued") {
		t.Fatalf("retry exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	run := f.run(runID)
	if run.State != store.RunRunning || !run.CancelRequestedAt.IsZero() || run.Canceled != 0 || run.CanceledBeforeSubmit != 0 || run.Completed != 1 {
		t.Fatalf("run after retry = %s %+v", run.State, run.Counters)
	}
	for _, j := range js[1:] {
		info, err := f.insp.GetTaskInfo(jobs.Queue(refonte.ModeTest), jobs.TaskID(refonte.ModeTest, j.UniqueID))
		if err != nil || info.State != asynq.TaskStatePending {
			t.Fatalf("re-queued task %s = %+v, %v", j.UniqueID, info, err)
		}
		c, err := f.st.CheckSubmit(context.Background(), refonte.ModeTest, j.UniqueID, false)
		if err != nil || c.Verdict != store.SubmitGo || c.Generation != 1 {
			t.Fatalf("check after retry = %+v, %v", c, err)
		}
	}
}
