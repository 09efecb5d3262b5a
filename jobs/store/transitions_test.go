package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// step is one call on the job "uid-1" of a one-row run.
type step struct {
	op     string // submit, complete, fail, requeue
	taskID string
	status refonte.TaskStatus
	at     int // delivery time, seconds after t0
	// want
	changed bool
	to      store.JobState
}

func submit(tid string, changed bool, to store.JobState) step {
	return step{op: "submit", taskID: tid, changed: changed, to: to}
}

func deliver(tid string, st refonte.TaskStatus, at int, changed bool, to store.JobState) step {
	return step{op: "complete", taskID: tid, status: st, at: at, changed: changed, to: to}
}

func fail(changed bool, to store.JobState) step { return step{op: "fail", changed: changed, to: to} }

func requeue(changed bool, to store.JobState) step {
	return step{op: "requeue", changed: changed, to: to}
}

func TestTransitions(t *testing.T) {
	const (
		enq  = store.JobEnqueued
		sub  = store.JobSubmitted
		done = store.JobCompleted
		fld  = store.JobFailed
		cnl  = store.JobCanceled
		ok   = refonte.StatusCompleted
		er   = refonte.StatusError
		cn   = refonte.StatusCanceled
	)
	base := store.Counters{Rows: 1, Valid: 1, Enqueued: 1}
	with := func(f func(*store.Counters)) store.Counters { c := base; f(&c); return c }
	tests := []struct {
		name       string
		steps      []step
		want       store.Counters
		noTask     int64
		runState   store.RunState
		taskID     string
		generation int64
	}{
		{name: "enqueued to submitted", steps: []step{submit("t1", true, sub)},
			want: with(func(c *store.Counters) { c.Submitted = 1 }), runState: store.RunRunning, taskID: "t1"},
		{name: "submit twice is a no-op", steps: []step{submit("t1", true, sub), submit("t2", false, sub)},
			want: with(func(c *store.Counters) { c.Submitted = 1 }), runState: store.RunRunning, taskID: "t1"},
		{name: "submitted to completed", steps: []step{submit("t1", true, sub), deliver("t1", ok, 1, true, done)},
			want: with(func(c *store.Counters) { c.Submitted, c.Completed = 1, 1 }), runState: store.RunDone, taskID: "t1"},
		{name: "callback before submit", steps: []step{deliver("t1", ok, 1, true, done)},
			want: with(func(c *store.Counters) { c.Submitted, c.Completed = 1, 1 }), runState: store.RunDone, taskID: "t1"},
		{name: "submit recorded after its callback",
			steps: []step{deliver("t1", ok, 1, true, done), submit("t1", false, done)},
			want:  with(func(c *store.Counters) { c.Submitted, c.Completed = 1, 1 }), runState: store.RunDone, taskID: "t1"},
		{name: "duplicate callback",
			steps: []step{submit("t1", true, sub), deliver("t1", ok, 1, true, done), deliver("t1", ok, 1, false, done)},
			want:  with(func(c *store.Counters) { c.Submitted, c.Completed = 1, 1 }), runState: store.RunDone, taskID: "t1"},
		{name: "older delivery ignored",
			steps: []step{submit("t1", true, sub), deliver("t1", cn, 2, true, cnl), deliver("t1", ok, 1, false, cnl)},
			want:  with(func(c *store.Counters) { c.Submitted, c.Canceled = 1, 1 }), runState: store.RunDone, taskID: "t1"},
		{name: "newer delivery moves completed to canceled",
			steps: []step{submit("t1", true, sub), deliver("t1", ok, 1, true, done), deliver("t1", cn, 2, true, cnl)},
			want:  with(func(c *store.Counters) { c.Submitted, c.Canceled = 1, 1 }), runState: store.RunDone, taskID: "t1"},
		{name: "same time other status is refused",
			steps: []step{deliver("t1", ok, 1, true, done), deliver("t1", er, 1, false, done)},
			want:  with(func(c *store.Counters) { c.Submitted, c.Completed = 1, 1 }), runState: store.RunDone, taskID: "t1"},
		{name: "newer delivery of another task is refused",
			steps: []step{deliver("t1", ok, 1, true, done), deliver("t2", er, 2, false, done)},
			want:  with(func(c *store.Counters) { c.Submitted, c.Completed = 1, 1 }), runState: store.RunDone, taskID: "t1"},
		{name: "delivery of another task for a submitted job is refused",
			steps: []step{submit("t1", true, sub), deliver("t2", ok, 2, false, sub)},
			want:  with(func(c *store.Counters) { c.Submitted = 1 }), runState: store.RunRunning, taskID: "t1"},
		{name: "error status fails the job",
			steps: []step{submit("t1", true, sub), deliver("t1", er, 1, true, fld)},
			want:  with(func(c *store.Counters) { c.Submitted, c.Failed = 1, 1 }), runState: store.RunDone, taskID: "t1"},
		{name: "fail from enqueued (no task)", steps: []step{fail(true, fld)},
			want: with(func(c *store.Counters) { c.Failed = 1 }), noTask: 1, runState: store.RunDone},
		{name: "fail from submitted", steps: []step{submit("t1", true, sub), fail(true, fld)},
			want: with(func(c *store.Counters) { c.Submitted, c.Failed = 1, 1 }), runState: store.RunDone, taskID: "t1"},
		{name: "fail after completed is a no-op",
			steps: []step{deliver("t1", ok, 1, true, done), fail(false, done)},
			want:  with(func(c *store.Counters) { c.Submitted, c.Completed = 1, 1 }), runState: store.RunDone, taskID: "t1"},
		{name: "fail twice", steps: []step{fail(true, fld), fail(false, fld)},
			want: with(func(c *store.Counters) { c.Failed = 1 }), noTask: 1, runState: store.RunDone},
		{name: "task found after a failure without task",
			steps: []step{fail(true, fld), submit("t1", true, fld)},
			want:  with(func(c *store.Counters) { c.Submitted, c.Failed = 1, 1 }), runState: store.RunDone, taskID: "t1"},
		{name: "callback after a failure without task",
			steps: []step{fail(true, fld), deliver("t1", ok, 1, true, done)},
			want:  with(func(c *store.Counters) { c.Submitted, c.Completed = 1, 1 }), runState: store.RunDone, taskID: "t1"},
		{name: "requeue failed", steps: []step{fail(true, fld), requeue(true, enq)},
			want: base, runState: store.RunRunning, generation: 1},
		{name: "requeue not failed", steps: []step{submit("t1", true, sub), requeue(false, sub)},
			want: with(func(c *store.Counters) { c.Submitted = 1 }), runState: store.RunRunning, taskID: "t1"},
		{name: "requeue completed", steps: []step{deliver("t1", ok, 1, true, done), requeue(false, done)},
			want: with(func(c *store.Counters) { c.Submitted, c.Completed = 1, 1 }), runState: store.RunDone, taskID: "t1"},
		{name: "requeue then resubmit keeps submitted monotone",
			steps: []step{submit("t1", true, sub), deliver("t1", er, 1, true, fld), requeue(true, enq),
				submit("t2", true, sub), deliver("t2", ok, 3, true, done)},
			want: with(func(c *store.Counters) { c.Submitted, c.Completed = 1, 1 }), runState: store.RunDone,
			taskID: "t2", generation: 1},
		{name: "requeued job takes the same outcome again (409 on the failed task)",
			steps: []step{deliver("t1", er, 2, true, fld), requeue(true, enq), submit("t1", true, sub), deliver("t1", er, 2, true, fld)},
			want:  with(func(c *store.Counters) { c.Submitted, c.Failed = 1, 1 }), runState: store.RunDone, taskID: "t1", generation: 1},
	}
	e0 := newEnv(t)
	t0 := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e0.sub(t)
			run := e.enqueuedRun(refonte.ModeTest, 1, 1)
			for i, s := range tc.steps {
				var tr store.Transition
				var err error
				switch s.op {
				case "submit":
					tr, err = e.st.MarkSubmitted(e.ctx, refonte.ModeTest, "uid-1", s.taskID)
				case "complete":
					tr, err = e.st.Complete(e.ctx, refonte.ModeTest, "uid-1", store.Outcome{TaskID: s.taskID,
						Status: s.status, Response: []byte(`{"n":1}`), Error: "bad", At: t0.Add(time.Duration(s.at) * time.Second)})
				case "fail":
					tr, err = e.st.Fail(e.ctx, refonte.ModeTest, "uid-1", "400: bad params")
				case "requeue":
					tr, err = e.st.Requeue(e.ctx, refonte.ModeTest, "uid-1")
				}
				if err != nil {
					t.Fatalf("step %d %s: %v", i, s.op, err)
				}
				if j := e.job(refonte.ModeTest, "uid-1"); tr.Changed != s.changed || tr.To != s.to || j.State != s.to {
					t.Fatalf("step %d %s: changed=%v to=%s job=%+v, want changed=%v to=%s", i, s.op, tr.Changed, tr.To, j, s.changed, s.to)
				}
			}
			r := e.run(run.ID)
			if r.Counters != tc.want || r.TerminalWithoutTask != tc.noTask || r.State != tc.runState {
				t.Fatalf("run = %+v (state %s, without task %d), want %+v, %s, %d", r.Counters, r.State, r.TerminalWithoutTask, tc.want, tc.runState, tc.noTask)
			}
			j := e.job(refonte.ModeTest, "uid-1")
			if j.TaskID != tc.taskID || j.Generation != tc.generation {
				t.Fatalf("job = %+v, want task %q generation %d", j, tc.taskID, tc.generation)
			}
			if tc.taskID != "" {
				uid, err := e.st.UniqueIDByTaskID(e.ctx, refonte.ModeTest, tc.taskID)
				if err != nil || uid != "uid-1" {
					t.Fatalf("UniqueIDByTaskID(%s) = %q, %v", tc.taskID, uid, err)
				}
			}
			inflight, err := e.st.InFlightBefore(e.ctx, refonte.ModeTest, time.Now().Add(time.Hour), 10)
			if err != nil {
				t.Fatal(err)
			}
			if want := j.State == store.JobSubmitted; (len(inflight) == 1) != want {
				t.Fatalf("in-flight = %v with job %s", inflight, j.State)
			}
		})
	}
}

func TestTransitionErrors(t *testing.T) {
	e := newEnv(t)
	run := e.createRun(refonte.ModeTest)
	e.addRows(run, 1, 1)
	m := refonte.ModeTest
	for name, f := range map[string]func() error{
		"submit": func() error { _, err := e.st.MarkSubmitted(e.ctx, m, "nope", "t"); return err },
		"complete": func() error {
			_, err := e.st.Complete(e.ctx, m, "nope", outcome("t", refonte.StatusCompleted, time.Now()))
			return err
		},
		"fail":    func() error { _, err := e.st.Fail(e.ctx, m, "nope", "x"); return err },
		"requeue": func() error { _, err := e.st.Requeue(e.ctx, m, "nope"); return err },
		"attempt": func() error { return e.st.RecordAttempt(e.ctx, m, "nope", "x") },
		"get":     func() error { _, err := e.st.GetJob(e.ctx, m, "nope"); return err },
		"index":   func() error { _, err := e.st.UniqueIDByTaskID(e.ctx, m, "nope"); return err },
		"other mode": func() error {
			_, err := e.st.MarkSubmitted(e.ctx, refonte.ModeLive, "uid-1", "t")
			return err
		},
	} {
		if err := f(); !errors.Is(err, store.ErrJobNotFound) {
			t.Errorf("%s: err = %v, want ErrJobNotFound", name, err)
		}
	}
	if _, err := e.st.Complete(e.ctx, m, "uid-1", outcome("t", refonte.StatusPending, time.Now())); err == nil {
		t.Error("Complete with status pending succeeded")
	}
	if _, err := e.st.MarkSubmitted(e.ctx, m, "uid-1", ""); err == nil {
		t.Error("MarkSubmitted with no task ID succeeded")
	}
	if j := e.job(m, "uid-1"); j.State != store.JobEnqueued {
		t.Fatalf("job changed by refused calls: %+v", j)
	}
	if keys := e.rdb.Keys(e.ctx, "*nope*").Val(); len(keys) != 0 {
		t.Fatalf("calls on an unknown job wrote %v", keys)
	}
}

// TestReplayRule: a delivery for a terminal row of a done run changes it
// only when it names the row's recorded task and is strictly newer by the
// task's own timestamp; otherwise the row, the run's counters and its state
// stay as they were, and a delivery that says something else than the row
// is counted as a conflict (a plain repeat is a duplicate, not counted).
func TestReplayRule(t *testing.T) {
	t1 := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	resp := []byte(`{"annotations":[]}`)
	first := store.Outcome{TaskID: "t1", Status: refonte.StatusCompleted, Response: resp, At: t1}
	done := store.Counters{Rows: 1, Valid: 1, Enqueued: 1, Submitted: 1, Completed: 1}
	tests := []struct {
		name      string
		o         store.Outcome
		conflict  store.ConflictReason
		changed   bool
		wantState store.JobState
		want      store.Counters
	}{
		{name: "replay with the same time, other status", conflict: store.ConflictNotNewer,
			o: store.Outcome{TaskID: "t1", Status: refonte.StatusError, Error: "replayed", At: t1}},
		{name: "replay without timestamps", conflict: store.ConflictNoTimestamp,
			o: store.Outcome{TaskID: "t1", Status: refonte.StatusCanceled}},
		{name: "older, other status", conflict: store.ConflictNotNewer,
			o: store.Outcome{TaskID: "t1", Status: refonte.StatusError, At: t1.Add(-time.Minute)}},
		{name: "same status, other response, same time", conflict: store.ConflictNotNewer,
			o: store.Outcome{TaskID: "t1", Status: refonte.StatusCompleted, Response: []byte(`{"forged":1}`), At: t1}},
		{name: "foreign task, newer", conflict: store.ConflictForeignTask,
			o: store.Outcome{TaskID: "t-foreign", Status: refonte.StatusError, At: t1.Add(time.Hour)}},
		{name: "exact repeat is a duplicate", o: first},
		{name: "repeat without timestamps is a duplicate",
			o: store.Outcome{TaskID: "t1", Status: refonte.StatusCompleted, Response: resp}},
		{name: "strictly newer, same task, applies", changed: true, wantState: store.JobFailed,
			o:    store.Outcome{TaskID: "t1", Status: refonte.StatusError, Error: "re-audited", At: t1.Add(time.Millisecond)},
			want: store.Counters{Rows: 1, Valid: 1, Enqueued: 1, Submitted: 1, Failed: 1}},
	}
	e0 := newEnv(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e0.sub(t)
			m := refonte.ModeTest
			run := e.enqueuedRun(m, 1, 1)
			if _, err := e.st.MarkSubmitted(e.ctx, m, "uid-1", "t1"); err != nil {
				t.Fatal(err)
			}
			if tr, err := e.st.Complete(e.ctx, m, "uid-1", first); err != nil || !tr.Changed {
				t.Fatalf("first delivery: %+v, %v", tr, err)
			}
			before := e.job(m, "uid-1")
			tr, err := e.st.Complete(e.ctx, m, "uid-1", tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if tr.Changed != tc.changed || tr.Conflict != tc.conflict {
				t.Errorf("transition %+v, want changed %v conflict %q", tr, tc.changed, tc.conflict)
			}
			r := e.run(run.ID)
			wantConflicts := int64(0)
			if tc.conflict != "" {
				wantConflicts = 1
			}
			if r.State != store.RunDone || r.Conflicts != wantConflicts {
				t.Errorf("run %s with %d conflicts, want done with %d", r.State, r.Conflicts, wantConflicts)
			}
			after := e.job(m, "uid-1")
			if !tc.changed {
				if r.Counters != done {
					t.Errorf("run counters moved: %+v, want %+v", r.Counters, done)
				}
				if after.State != before.State || after.Status != before.Status || string(after.Response) != string(before.Response) ||
					after.Error != before.Error || after.TaskID != before.TaskID || !after.DeliveredAt.Equal(before.DeliveredAt) {
					t.Errorf("job changed:\n%+v\nwas\n%+v", after, before)
				}
				return
			}
			if r.Counters != tc.want || after.State != tc.wantState || !after.DeliveredAt.Equal(tc.o.At) {
				t.Errorf("after a newer delivery: run %+v job %s delivered %s, want %+v, %s, %s",
					r.Counters, after.State, after.DeliveredAt, tc.want, tc.wantState, tc.o.At)
			}
		})
	}
}
