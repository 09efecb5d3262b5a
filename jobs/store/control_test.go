package store_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// check runs CheckSubmit and fails the test on an error.
func (e *env) check(m refonte.Mode, uid string, reserve bool) store.SubmitCheck {
	e.t.Helper()
	c, err := e.st.CheckSubmit(e.ctx, m, uid, reserve)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) cancel(runID string, tasks bool) store.CancelSweep {
	e.t.Helper()
	if err := e.st.RequestCancel(e.ctx, runID, tasks); err != nil {
		e.t.Fatal(err)
	}
	sw, err := e.st.CancelRun(e.ctx, runID)
	if err != nil {
		e.t.Fatal(err)
	}
	return sw
}

// TestCancelTransitions covers a cancel before, during and after the
// create of each row, the counters and states it leaves, and a repeat.
func TestCancelTransitions(t *testing.T) {
	e := newEnv(t)
	m := refonte.ModeTest
	run := e.enqueuedRun(m, 1, 5)
	// uid-1 submitted, uid-2 completed, uid-3 reserved (create in flight),
	// uid-4 and uid-5 queued.
	if _, err := e.st.RecordCreated(e.ctx, m, "uid-1", "t1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.RecordCreatedTerminal(e.ctx, m, "uid-2", outcome("t2", refonte.StatusCompleted, time.Now())); err != nil {
		t.Fatal(err)
	}
	if c := e.check(m, "uid-3", true); c.Verdict != store.SubmitGo {
		t.Fatalf("reserve uid-3 = %+v", c)
	}
	// uid-4's last attempt failed: it counts as retrying until canceled.
	if err := e.st.RecordAttempt(e.ctx, m, "uid-4", "503 unavailable"); err != nil {
		t.Fatal(err)
	}
	if r := e.run(run.ID); r.Retrying != 1 {
		t.Fatalf("retrying = %d", r.Retrying)
	}
	sw := e.cancel(run.ID, true)
	if sw.Canceled != 2 || sw.InFlight != 1 || sw.Shared != 0 || !slices.Equal(sw.Submitted, []string{"uid-1"}) {
		t.Fatalf("sweep = %+v", sw)
	}
	r := e.run(run.ID)
	if r.Retrying != 0 {
		t.Fatalf("retrying after the cancel = %d", r.Retrying)
	}
	if r.State != store.RunCanceling || r.CancelRequestedAt.IsZero() || !r.CancelTasks ||
		r.Canceled != 2 || r.CanceledBeforeSubmit != 2 || r.CanceledAfterSubmit() != 0 || r.TerminalWithoutTask != 2 {
		t.Fatalf("run after cancel = %+v", r)
	}
	for _, u := range []string{"uid-4", "uid-5"} {
		if j := e.job(m, u); j.State != store.JobCanceled || j.TaskID != "" {
			t.Fatalf("%s = %+v", u, j)
		}
		// A worker that then gets the job does nothing.
		if c := e.check(m, u, true); c.Verdict != store.SubmitNoop {
			t.Fatalf("check of canceled %s = %+v", u, c)
		}
	}
	// The in-flight create is recorded; it is to be canceled at the API.
	tr, err := e.st.RecordCreated(e.ctx, m, "uid-3", "t3")
	if err != nil || !tr.CancelAtAPI || tr.To != store.JobSubmitted {
		t.Fatalf("record in-flight create = %+v, %v", tr, err)
	}
	// The API confirms both cancels: the run is canceled.
	for _, u := range []string{"uid-1", "uid-3"} {
		if _, err := e.st.Complete(e.ctx, m, u, outcome("t"+u[4:], refonte.StatusCanceled, time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	r = e.run(run.ID)
	want := store.Counters{Rows: 5, Valid: 5, Enqueued: 5, Submitted: 3, Completed: 1, Canceled: 4,
		CanceledBeforeSubmit: 2}
	if r.State != store.RunCanceled || r.FinishedAt.IsZero() || r.Counters != want {
		t.Fatalf("run = %s %+v, want canceled %+v", r.State, r.Counters, want)
	}
	// Again: harmless.
	if sw := e.cancel(run.ID, false); sw.Canceled != 0 || sw.InFlight != 0 || len(sw.Submitted) != 0 {
		t.Fatalf("second sweep = %+v", sw)
	}
	if r2 := e.run(run.ID); r2.Counters != want || r2.State != store.RunCanceled || !r2.CancelTasks {
		t.Fatalf("after second cancel = %+v", r2)
	}
}

// TestCancelDoneAndEnqueuing: a done run cannot be canceled; one still
// enqueuing is canceled when its enqueue finishes.
func TestCancelDoneAndEnqueuing(t *testing.T) {
	e := newEnv(t)
	m := refonte.ModeTest
	done := e.enqueuedRun(m, 1, 1)
	if _, err := e.st.Complete(e.ctx, m, "uid-1", outcome("t1", refonte.StatusCompleted, time.Now())); err != nil {
		t.Fatal(err)
	}
	if err := e.st.RequestCancel(e.ctx, done.ID, false); !errors.Is(err, store.ErrRunDone) {
		t.Fatalf("cancel of a done run = %v", err)
	}
	if err := e.st.RequestCancel(e.ctx, "nope", false); !errors.Is(err, store.ErrRunNotFound) {
		t.Fatalf("cancel of no run = %v", err)
	}
	run := e.createRun(m)
	e.addRows(run, 10, 2)
	if sw := e.cancel(run.ID, false); sw.Canceled != 2 {
		t.Fatalf("sweep = %+v", sw)
	}
	if r := e.run(run.ID); r.State != store.RunEnqueuing {
		t.Fatalf("enqueuing run after cancel = %+v", r)
	}
	// A row added after the sweep is canceled by the first worker that checks it.
	e.addRows(run, 12, 1)
	c := e.check(m, "uid-12", false)
	if c.Verdict != store.SubmitCanceled || !c.Transition.Changed {
		t.Fatalf("check of a late row = %+v", c)
	}
	if err := e.st.FinishEnqueue(e.ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	if r := e.run(run.ID); r.State != store.RunCanceled || r.CanceledBeforeSubmit != 3 {
		t.Fatalf("after FinishEnqueue = %s %+v", r.State, r.Counters)
	}
	// With a row left, FinishEnqueue makes it canceling.
	run2 := e.createRun(m)
	e.addRows(run2, 20, 1)
	if _, err := e.st.RecordCreated(e.ctx, m, "uid-20", "t20"); err != nil {
		t.Fatal(err)
	}
	e.cancel(run2.ID, false)
	if err := e.st.FinishEnqueue(e.ctx, run2.ID); err != nil {
		t.Fatal(err)
	}
	if r := e.run(run2.ID); r.State != store.RunCanceling {
		t.Fatalf("run2 = %+v", r)
	}
	// Without -tasks the task runs to its end: canceled once it completes.
	tr, err := e.st.Complete(e.ctx, m, "uid-20", outcome("t20", refonte.StatusCompleted, time.Now()))
	if err != nil || !slices.Equal(tr.RunsDone, []string{run2.ID}) {
		t.Fatalf("complete = %+v, %v", tr, err)
	}
	if r := e.run(run2.ID); r.State != store.RunCanceled || r.Completed != 1 || r.Canceled != 0 {
		t.Fatalf("run2 = %s %+v", r.State, r.Counters)
	}
}

// TestCancelSharedRows: a row another live run still needs is left to it;
// once that run is canceled too, the row is canceled.
func TestCancelSharedRows(t *testing.T) {
	e := newEnv(t)
	m := refonte.ModeTest
	a := e.enqueuedRun(m, 1, 3) // uid-1..3
	b := e.createRun(m)         // a re-run sharing uid-2, uid-3, plus uid-4
	e.addRows(b, 2, 3)
	if err := e.st.FinishEnqueue(e.ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.RecordCreated(e.ctx, m, "uid-3", "t3"); err != nil {
		t.Fatal(err)
	}
	sw := e.cancel(a.ID, true)
	if sw.Canceled != 1 || sw.Shared != 2 || len(sw.Submitted) != 0 {
		t.Fatalf("sweep of a = %+v", sw)
	}
	if c := e.check(m, "uid-2", true); c.Verdict != store.SubmitGo {
		t.Fatalf("shared row check = %+v", c)
	}
	if r := e.run(a.ID); r.State != store.RunCanceling || r.Canceled != 1 {
		t.Fatalf("a = %s %+v", r.State, r.Counters)
	}
	// The shared submitted row's task is not to be canceled: b needs it.
	tr, err := e.st.RecordCreated(e.ctx, m, "uid-2", "t2")
	if err != nil || tr.CancelAtAPI {
		t.Fatalf("record shared = %+v, %v", tr, err)
	}
	// b canceled too: uid-4 canceled now, the two submitted rows listed.
	sw = e.cancel(b.ID, false)
	if sw.Canceled != 1 || sw.Shared != 0 || !slices.Equal(sw.Submitted, []string{"uid-2", "uid-3"}) {
		t.Fatalf("sweep of b = %+v", sw)
	}
	for _, u := range []string{"uid-2", "uid-3"} {
		if _, err := e.st.Complete(e.ctx, m, u, outcome("t"+u[4:], refonte.StatusCanceled, time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{a.ID, b.ID} {
		if r := e.run(id); r.State != store.RunCanceled || r.Terminal() != r.Valid {
			t.Fatalf("run %s = %s %+v", id, r.State, r.Counters)
		}
	}
	if c := e.counters(b.ID); c.CanceledBeforeSubmit != 1 || c.CanceledAfterSubmit() != 2 {
		t.Fatalf("b = %+v", c)
	}
}

// TestCancelRacingCallback: a callback that lands between the cancel and
// the sweep keeps the task's real result.
func TestCancelRacingCallback(t *testing.T) {
	e := newEnv(t)
	m := refonte.ModeTest
	run := e.enqueuedRun(m, 1, 2)
	if c := e.check(m, "uid-1", true); c.Verdict != store.SubmitGo {
		t.Fatal(c)
	}
	if err := e.st.RequestCancel(e.ctx, run.ID, true); err != nil {
		t.Fatal(err)
	}
	// The callback of the in-flight create comes before its record.
	if _, err := e.st.Complete(e.ctx, m, "uid-1", outcome("t1", refonte.StatusCompleted, time.Now())); err != nil {
		t.Fatal(err)
	}
	sw, err := e.st.CancelRun(e.ctx, run.ID)
	if err != nil || sw.Canceled != 1 || sw.InFlight != 0 || len(sw.Submitted) != 0 {
		t.Fatalf("sweep = %+v, %v", sw, err)
	}
	if j := e.job(m, "uid-1"); j.State != store.JobCompleted || string(j.Response) != `{"ok":"completed"}` {
		t.Fatalf("uid-1 = %+v", j)
	}
	if r := e.run(run.ID); r.State != store.RunCanceled || r.Completed != 1 || r.Canceled != 1 {
		t.Fatalf("run = %s %+v", r.State, r.Counters)
	}
}

// TestCancelUnsureReservation: a job whose earlier attempt reserved a
// create (a crashed worker) is only canceled once the caller knows no task
// holds its unique_id.
func TestCancelUnsureReservation(t *testing.T) {
	e := newEnv(t)
	m := refonte.ModeTest
	run := e.enqueuedRun(m, 1, 1)
	e.check(m, "uid-1", true)
	if sw := e.cancel(run.ID, false); sw.InFlight != 1 {
		t.Fatalf("sweep = %+v", sw)
	}
	if c := e.check(m, "uid-1", true); c.Verdict != store.SubmitCanceledUnsure {
		t.Fatalf("redelivery check = %+v", c)
	}
	c, err := e.st.CancelUnsubmitted(e.ctx, m, "uid-1")
	if err != nil || c.Verdict != store.SubmitCanceled || !slices.Equal(c.Transition.RunsDone, []string{run.ID}) {
		t.Fatalf("CancelUnsubmitted = %+v, %v", c, err)
	}
	if r := e.run(run.ID); r.State != store.RunCanceled || r.CanceledBeforeSubmit != 1 {
		t.Fatalf("run = %+v", r)
	}
}

// TestCancelRaceWithReservations proves under concurrency that the check
// and the reservation of a create are one step with the cancel: every
// create reserved before the cancel is counted in flight and left alone,
// every other job is canceled, and no check that starts after
// RequestCancel returned reserves anything.
func TestCancelRaceWithReservations(t *testing.T) {
	e := newEnv(t)
	m := refonte.ModeTest
	const n = 2000
	run := e.enqueuedRun(m, 1, n)
	var mu sync.Mutex
	reserved := map[string]bool{}
	var after []string // reservations by checks started after the cancel returned
	var canceledAt time.Time
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := 1; i <= n; i++ {
		next <- i
	}
	close(next)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				uid := fmt.Sprintf("uid-%d", i)
				mu.Lock()
				started, cAt := time.Now(), canceledAt
				mu.Unlock()
				c, err := e.st.CheckSubmit(e.ctx, m, uid, true)
				if err != nil {
					t.Error(err)
					return
				}
				if c.Verdict == store.SubmitGo {
					mu.Lock()
					reserved[uid] = true
					if !cAt.IsZero() && started.After(cAt) {
						after = append(after, uid)
					}
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(20 * time.Millisecond) // let some reservations happen first
	if err := e.st.RequestCancel(e.ctx, run.ID, false); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	canceledAt = time.Now()
	mu.Unlock()
	sw, err := e.st.CancelRun(e.ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if len(after) > 0 {
		t.Fatalf("%d creates reserved after the cancel returned: %v", len(after), after[:min(5, len(after))])
	}
	if len(reserved) == 0 || len(reserved) == n {
		t.Fatalf("the race did not happen: %d of %d reserved", len(reserved), n)
	}
	if sw.InFlight != int64(len(reserved)) {
		t.Fatalf("in flight = %d, reserved before the cancel = %d", sw.InFlight, len(reserved))
	}
	// Checks after the sweep may have canceled the rest (SubmitCanceled).
	for i := 1; i <= n; i++ {
		uid := fmt.Sprintf("uid-%d", i)
		j := e.job(m, uid)
		if reserved[uid] != (j.State == store.JobEnqueued) || (!reserved[uid] && j.State != store.JobCanceled) {
			t.Fatalf("%s: reserved %v, state %s", uid, reserved[uid], j.State)
		}
	}
	if r := e.run(run.ID); r.Canceled != int64(n-len(reserved)) || r.State != store.RunCanceling {
		t.Fatalf("run = %s %+v", r.State, r.Counters)
	}
}

// TestOperatorPause covers pause, resume, the interplay with the daily
// cap's pause and with a shared row, and what cannot be paused.
func TestOperatorPause(t *testing.T) {
	e := newEnv(t)
	m := refonte.ModeLive
	run := e.enqueuedRun(m, 1, 2)
	pause := func(id string, p bool) store.PauseResult {
		t.Helper()
		res, err := e.st.SetOperatorPaused(e.ctx, id, p)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := pause(run.ID, true); !res.Changed || res.State != store.RunPaused {
		t.Fatalf("pause = %+v", res)
	}
	if r := e.run(run.ID); r.PausedReason != store.OperatorPausedReason || !r.OperatorPaused {
		t.Fatalf("paused run = %+v", r)
	}
	if n, _ := e.st.OperatorPausedRuns(e.ctx); n != 1 {
		t.Fatalf("paused runs = %d", n)
	}
	if c := e.check(m, "uid-1", true); c.Verdict != store.SubmitPaused {
		t.Fatalf("check of a paused run = %+v", c)
	}
	if j := e.job(m, "uid-1"); j.State != store.JobEnqueued {
		t.Fatalf("paused job = %+v", j)
	}
	// The daily cap neither overrides nor clears the operator's pause.
	for _, reason := range []string{"live daily limit 5 reached", ""} {
		if err := e.st.SetPaused(e.ctx, run.ID, reason); err != nil {
			t.Fatal(err)
		}
		if r := e.run(run.ID); r.State != store.RunPaused || r.PausedReason != store.OperatorPausedReason {
			t.Fatalf("after SetPaused(%q): %+v", reason, r)
		}
	}
	if res := pause(run.ID, true); res.Changed {
		t.Fatalf("second pause = %+v", res)
	}
	// Callbacks go on while paused.
	if _, err := e.st.Complete(e.ctx, m, "uid-2", outcome("t2", refonte.StatusCompleted, time.Now())); err != nil {
		t.Fatal(err)
	}
	// A row shared with a live run is not held.
	other := e.createRun(m)
	e.addRows(other, 1, 1)
	if c := e.check(m, "uid-1", false); c.Verdict != store.SubmitGo {
		t.Fatalf("shared row check = %+v", c)
	}
	if res := pause(run.ID, false); !res.Changed || res.State != store.RunRunning {
		t.Fatalf("resume = %+v", res)
	}
	if r := e.run(run.ID); r.PausedReason != "" || r.OperatorPaused {
		t.Fatalf("resumed run = %+v", r)
	}
	if n, _ := e.st.OperatorPausedRuns(e.ctx); n != 0 {
		t.Fatalf("paused runs = %d", n)
	}
	if res := pause(run.ID, false); res.Changed {
		t.Fatalf("second resume = %+v", res)
	}
	// A paused run can be canceled (the pause goes; uid-1 is left to the
	// other run), a canceling one not paused.
	pause(run.ID, true)
	if sw := e.cancel(run.ID, false); sw.Shared != 1 {
		t.Fatalf("sweep = %+v", sw)
	}
	if r := e.run(run.ID); r.State != store.RunCanceling || r.OperatorPaused || r.PausedReason != "" {
		t.Fatalf("canceled paused run = %s %q", r.State, r.PausedReason)
	}
	if _, err := e.st.SetOperatorPaused(e.ctx, run.ID, true); !errors.Is(err, store.ErrRunDone) {
		t.Fatalf("pause of a canceling run = %v", err)
	}
	// A pause while enqueuing keeps the state; FinishEnqueue pauses the run.
	r3 := e.createRun(m)
	e.addRows(r3, 30, 1)
	if res := pause(r3.ID, true); res.State != store.RunEnqueuing {
		t.Fatalf("pause while enqueuing = %+v", res)
	}
	if err := e.st.FinishEnqueue(e.ctx, r3.ID); err != nil {
		t.Fatal(err)
	}
	if r := e.run(r3.ID); r.State != store.RunPaused || r.PausedReason != store.OperatorPausedReason {
		t.Fatalf("after FinishEnqueue = %+v", r)
	}
}

// TestCancelCounts: every transition to canceled counts itself once in
// the system-wide counts (store.CancelCounts), by stage, whoever made it:
// the sweep of enqueue cancel, a worker's check before a create, a cancel
// at the API recorded by Complete; a repeated delivery counts nothing.
func TestCancelCounts(t *testing.T) {
	mode := refonte.ModeTest
	canceled := store.Outcome{TaskID: "", Status: refonte.StatusCanceled, At: time.Now()}
	tests := []struct {
		name              string
		act               func(e *env, run *store.Run)
		before, afterSubm int64
	}{
		{"sweep cancels 3 enqueued rows", func(e *env, run *store.Run) {
			if err := e.st.RequestCancel(e.ctx, run.ID, false); err != nil {
				t.Fatal(err)
			}
			if _, err := e.st.CancelRun(e.ctx, run.ID); err != nil {
				t.Fatal(err)
			}
		}, 3, 0},
		{"worker's check cancels one row", func(e *env, run *store.Run) {
			if err := e.st.RequestCancel(e.ctx, run.ID, false); err != nil {
				t.Fatal(err)
			}
			if c, err := e.st.CheckSubmit(e.ctx, mode, "uid-1", true); err != nil || c.Verdict != store.SubmitCanceled {
				t.Fatalf("check: %+v, %v", c, err)
			}
		}, 1, 0},
		{"a task canceled at the API, delivered twice", func(e *env, run *store.Run) {
			if _, err := e.st.MarkSubmitted(e.ctx, mode, "uid-1", "task-1"); err != nil {
				t.Fatal(err)
			}
			o := canceled
			o.TaskID = "task-1"
			for range 2 {
				if _, err := e.st.Complete(e.ctx, mode, "uid-1", o); err != nil {
					t.Fatal(err)
				}
			}
		}, 0, 1},
		{"a completed row counts nothing", func(e *env, run *store.Run) {
			if _, err := e.st.MarkSubmitted(e.ctx, mode, "uid-1", "task-1"); err != nil {
				t.Fatal(err)
			}
			if _, err := e.st.Complete(e.ctx, mode, "uid-1", store.Outcome{TaskID: "task-1", Status: refonte.StatusCompleted, At: time.Now()}); err != nil {
				t.Fatal(err)
			}
		}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			run := e.enqueuedRun(mode, 1, 3)
			tt.act(e, run)
			counts, err := e.st.CancelCounts(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(counts) != 4 {
				t.Fatalf("counts %+v: want every mode and stage", counts)
			}
			for _, c := range counts {
				want := int64(0)
				if c.Mode == mode {
					want = map[string]int64{store.CancelBeforeSubmit: tt.before, store.CancelAfterSubmit: tt.afterSubm}[c.Stage]
				}
				if c.Rows != want {
					t.Errorf("%s %s: %d, want %d", c.Mode, c.Stage, c.Rows, want)
				}
			}
		})
	}
}
