package store_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

func TestCreateGetListRuns(t *testing.T) {
	e := newEnv(t)
	var ids []string
	base := time.Now().Add(-time.Hour).UnixMilli()
	for i := range 3 {
		r := &store.Run{Dataset: fmt.Sprintf("d%d.csv", i), Mode: refonte.ModeLive, Batch: "b",
			CallbackURL: "https://cb", CreatedAt: time.UnixMilli(base + int64(i)).UTC()}
		if err := e.st.CreateRun(e.ctx, r); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	got := e.run(ids[1])
	want := store.Run{ID: ids[1], Dataset: "d1.csv", Mode: refonte.ModeLive, Batch: "b", CallbackURL: "https://cb",
		State: store.RunEnqueuing, CreatedAt: time.UnixMilli(base + 1).UTC()}
	if *got != want {
		t.Fatalf("GetRun = %+v, want %+v", got, want)
	}
	if err := e.st.CreateRun(e.ctx, &store.Run{ID: ids[0], Mode: refonte.ModeTest}); !errors.Is(err, store.ErrRunExists) {
		t.Fatalf("CreateRun of an existing ID = %v", err)
	}
	runs, err := e.st.ListRuns(e.ctx, 2)
	if err != nil || len(runs) != 2 || runs[0].ID != ids[2] || runs[1].ID != ids[1] {
		t.Fatalf("ListRuns = %v, %v", runs, err)
	}
	id := store.NewRunID(time.Date(2026, 11, 27, 2, 15, 3, 0, time.UTC))
	if len(id) != len("r20261127-021503-9f3a1c") || id[:17] != "r20261127-021503-" {
		t.Fatalf("NewRunID = %q", id)
	}
}

func TestRunNotFound(t *testing.T) {
	e := newEnv(t)
	for name, f := range map[string]func() error{
		"add invalid": func() error { return e.st.AddInvalid(e.ctx, "nope", 1) },
		"add jobs": func() error {
			_, err := e.st.AddJobs(e.ctx, &store.Run{ID: "nope", Mode: refonte.ModeTest},
				[]store.NewJob{newJob(t, &store.Run{ID: "nope", Mode: refonte.ModeTest}, 1, "u")})
			return err
		},
		"finish":   func() error { return e.st.FinishEnqueue(e.ctx, "nope") },
		"abort":    func() error { return e.st.AbortRun(e.ctx, "nope", "x") },
		"paused":   func() error { return e.st.SetPaused(e.ctx, "nope", "x") },
		"finalize": func() error { _, err := e.st.ClaimBatchFinalize(e.ctx, "nope"); return err },
		"rows":     func() error { return e.st.RunRows(e.ctx, "nope", nil) },
	} {
		if err := f(); !errors.Is(err, store.ErrRunNotFound) {
			t.Errorf("%s: err = %v, want ErrRunNotFound", name, err)
		}
	}
	if n := e.rdb.DBSize(e.ctx).Val(); n != 0 {
		t.Fatalf("calls on an unknown run wrote %d keys: %v", n, e.rdb.Keys(e.ctx, "*").Val())
	}
}

func TestFinishEnqueueAndAbort(t *testing.T) {
	e0 := newEnv(t)
	tests := []struct {
		name  string
		setup func(e *env, run *store.Run)
		want  store.RunState
	}{
		{name: "no valid row", setup: func(e *env, run *store.Run) { _ = e.st.AddInvalid(e.ctx, run.ID, 3) }, want: store.RunDone},
		{name: "rows pending", setup: func(e *env, run *store.Run) { e.addRows(run, 1, 2) }, want: store.RunRunning},
		{name: "every row already terminal", setup: func(e *env, run *store.Run) {
			e.addRows(run, 1, 2)
			for _, u := range []string{"uid-1", "uid-2"} {
				if _, err := e.st.Complete(e.ctx, run.Mode, u, outcome("t"+u, refonte.StatusCompleted, time.Now())); err != nil {
					t.Fatal(err)
				}
			}
			if r := e.run(run.ID); r.State != store.RunEnqueuing {
				t.Fatalf("run done while enqueuing: %+v", r)
			}
		}, want: store.RunDone},
		{name: "duplicates of terminal jobs", setup: func(e *env, run *store.Run) {
			other := e.createRun(run.Mode)
			e.addRows(other, 1, 1)
			if _, err := e.st.Fail(e.ctx, run.Mode, "uid-1", "400"); err != nil {
				t.Fatal(err)
			}
			e.addRows(run, 1, 1)
		}, want: store.RunDone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e0.sub(t)
			run := e.createRun(refonte.ModeTest)
			tc.setup(e, run)
			for range 2 { // idempotent
				if err := e.st.FinishEnqueue(e.ctx, run.ID); err != nil {
					t.Fatal(err)
				}
			}
			r := e.run(run.ID)
			if r.State != tc.want || r.EnqueuedAt.IsZero() || (tc.want == store.RunDone) == r.FinishedAt.IsZero() {
				t.Fatalf("run = %+v, want state %s", r, tc.want)
			}
		})
	}
	t.Run("abort", func(t *testing.T) {
		e := e0.sub(t)
		run := e.createRun(refonte.ModeTest)
		if err := e.st.AbortRun(e.ctx, run.ID, "read error at line 7"); err != nil {
			t.Fatal(err)
		}
		if err := e.st.FinishEnqueue(e.ctx, run.ID); err != nil {
			t.Fatal(err)
		}
		if r := e.run(run.ID); r.State != store.RunAborted || r.AbortReason != "read error at line 7" {
			t.Fatalf("run = %+v", r)
		}
	})
}

func TestRunsShareJobs(t *testing.T) {
	e := newEnv(t)
	m := refonte.ModeTest
	r1 := e.progressedRun(m)
	// The re-run holds the same 3 rows, one new row, and uid-1 twice.
	r2 := e.createRun(m)
	outs := e.addRows(r2, 1, 4)
	if count(outs, store.AddedDuplicate) != 3 || outs[3] != store.AddedNew {
		t.Fatalf("re-run outcomes = %v", outs)
	}
	if o, err := e.st.AddJobs(e.ctx, r2, []store.NewJob{newJob(t, r2, 5, "uid-1")}); err != nil || o[0] != store.AddedDuplicate {
		t.Fatalf("in-run duplicate = %v, %v", o, err)
	}
	if err := e.st.FinishEnqueue(e.ctx, r2.ID); err != nil {
		t.Fatal(err)
	}
	if c := e.counters(r2.ID); c != (store.Counters{Rows: 5, Valid: 5, Enqueued: 1, Duplicate: 4, Submitted: 3, Completed: 1}) {
		t.Fatalf("r2 counters = %+v", c)
	}
	if runs, _ := e.st.Runs(e.ctx, m, "uid-1"); !slices.Equal(runs, []string{r1.ID, r2.ID, r2.ID}) {
		t.Fatalf("runs of uid-1 = %v", runs)
	}
	var done [][]string
	for _, u := range []string{"uid-1", "uid-3", "uid-4"} {
		tid := "t" + u
		if u == "uid-1" {
			tid = "t1" // its recorded task
		}
		tr, err := e.st.Complete(e.ctx, m, u, outcome(tid, refonte.StatusCompleted, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		done = append(done, tr.RunsDone)
	}
	if done[0] != nil || !slices.Equal(done[1], []string{r1.ID}) || !slices.Equal(done[2], []string{r2.ID}) {
		t.Fatalf("RunsDone = %v", done)
	}
	if c := e.counters(r1.ID); c != (store.Counters{Rows: 3, Valid: 3, Enqueued: 3, Submitted: 3, Completed: 3}) {
		t.Fatalf("r1 counters = %+v", c)
	}
	if c := e.counters(r2.ID); c != (store.Counters{Rows: 5, Valid: 5, Enqueued: 1, Duplicate: 4, Submitted: 5, Completed: 5}) {
		t.Fatalf("r2 counters = %+v", c)
	}
	// Requeue after a newer error: both runs go back to running.
	tr, err := e.st.Complete(e.ctx, m, "uid-1", outcome("t1", refonte.StatusError, time.Now().Add(time.Second)))
	if err != nil || tr.From != store.JobCompleted || tr.To != store.JobFailed {
		t.Fatalf("error delivery = %+v, %v", tr, err)
	}
	if _, err := e.st.Requeue(e.ctx, m, "uid-1"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{r1.ID, r2.ID} {
		if r := e.run(id); r.State != store.RunRunning || !r.FinishedAt.IsZero() || r.Failed != 0 {
			t.Fatalf("run %s after requeue = %+v", id, r)
		}
	}
	if c := e.counters(r2.ID); c.Completed != 3 || c.Submitted != 5 {
		t.Fatalf("r2 counters after requeue = %+v", c)
	}
}

func TestRunsAllSubmitted(t *testing.T) {
	e := newEnv(t)
	m := refonte.ModeTest
	run := e.createRun(m)
	e.addRows(run, 1, 3)
	tr, err := e.st.MarkSubmitted(e.ctx, m, "uid-1", "t1")
	if err != nil || tr.RunsAllSubmitted != nil {
		t.Fatalf("MarkSubmitted = %+v, %v", tr, err)
	}
	if err := e.st.FinishEnqueue(e.ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	if tr, _ = e.st.Fail(e.ctx, m, "uid-2", "400 bad"); tr.RunsAllSubmitted != nil {
		t.Fatalf("reported early: %+v", tr)
	}
	if r := e.run(run.ID); r.AllSubmitted() {
		t.Fatalf("AllSubmitted early: %+v", r)
	}
	if tr, _ = e.st.MarkSubmitted(e.ctx, m, "uid-3", "t3"); !slices.Equal(tr.RunsAllSubmitted, []string{run.ID}) {
		t.Fatalf("RunsAllSubmitted = %v", tr.RunsAllSubmitted)
	}
	if r := e.run(run.ID); !r.AllSubmitted() {
		t.Fatalf("AllSubmitted false: %+v", r)
	}
	if tr, _ = e.st.Complete(e.ctx, m, "uid-3", outcome("t3", refonte.StatusCompleted, time.Now())); tr.RunsAllSubmitted != nil {
		t.Fatalf("reported twice: %+v", tr)
	}
}

func TestClaimBatchFinalizeOnce(t *testing.T) {
	e := newEnv(t)
	run := e.createRun(refonte.ModeTest)
	var wins atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			ok, err := e.st.ClaimBatchFinalize(e.ctx, run.ID)
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 || !e.run(run.ID).BatchFinalized {
		t.Fatalf("claims won = %d", wins.Load())
	}
}

func TestSetPaused(t *testing.T) {
	e := newEnv(t)
	m := refonte.ModeLive
	run := e.createRun(m)
	e.addRows(run, 1, 2)
	// While enqueuing, only the reason is kept; FinishEnqueue pauses the run.
	for _, reason := range []string{"cap", "", "daily cap"} {
		if err := e.st.SetPaused(e.ctx, run.ID, reason); err != nil {
			t.Fatal(err)
		}
		if r := e.run(run.ID); r.State != store.RunEnqueuing || r.PausedReason != reason {
			t.Fatalf("enqueuing run after SetPaused(%q): %+v", reason, r)
		}
	}
	if err := e.st.FinishEnqueue(e.ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	if r := e.run(run.ID); r.State != store.RunPaused || r.PausedReason != "daily cap" {
		t.Fatalf("after FinishEnqueue: %+v", r)
	}
	steps := []struct {
		reason string
		want   store.RunState
	}{{"live daily cap of 50 reached", store.RunPaused}, {"cap 60", store.RunPaused}, {"", store.RunRunning}, {"", store.RunRunning}, {"cap", store.RunPaused}}
	for _, s := range steps {
		if err := e.st.SetPaused(e.ctx, run.ID, s.reason); err != nil {
			t.Fatal(err)
		}
		if r := e.run(run.ID); r.State != s.want || r.PausedReason != s.reason {
			t.Fatalf("after SetPaused(%q): %+v", s.reason, r)
		}
	}
	// A paused run whose rows all end is done.
	for _, u := range []string{"uid-1", "uid-2"} {
		if _, err := e.st.Complete(e.ctx, m, u, outcome("t"+u, refonte.StatusCompleted, time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	if r := e.run(run.ID); r.State != store.RunDone || r.PausedReason != "" {
		t.Fatalf("run = %+v", r)
	}
	if err := e.st.SetPaused(e.ctx, run.ID, "cap"); err != nil || e.run(run.ID).State != store.RunDone {
		t.Fatalf("done run paused: %v", err)
	}
}

func TestRunRowsOrderWithConcurrentWriters(t *testing.T) {
	e := newEnv(t)
	run := e.createRun(refonte.ModeTest)
	const n, batch = 3000, 300
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for first := 1 + w*batch; first <= n; first += 4 * batch {
				js := make([]store.NewJob, batch)
				for i := range js { // each batch in reverse: RunRows sorts within a batch
					line := first + batch - 1 - i
					js[i] = newJob(t, run, int64(line), fmt.Sprintf("uid-%d", line))
				}
				if _, err := e.st.AddJobs(e.ctx, run, js); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if _, err := e.st.MarkSubmitted(e.ctx, run.Mode, "uid-7", "t7"); err != nil {
		t.Fatal(err)
	}
	e.rdb.Del(e.ctx, fmt.Sprintf("%sjob:test:uid-9", prefixOf(e)))
	next := int64(1)
	err := e.st.RunRows(e.ctx, run.ID, func(r store.RunRow, j *store.Job) error {
		if r.Line != next || r.UniqueID != fmt.Sprintf("uid-%d", next) {
			return fmt.Errorf("row %+v, want line %d", r, next)
		}
		switch {
		case next == 9 && j != nil:
			return fmt.Errorf("expired job returned: %+v", j)
		case next == 7 && (j == nil || j.TaskID != "t7"):
			return fmt.Errorf("job 7 = %+v", j)
		case next != 9 && (j == nil || j.Line != next || j.Run != run.ID || j.TaskType != refonte.TypeImageAnnotation):
			return fmt.Errorf("job %d = %+v", next, j)
		}
		next++
		return nil
	})
	if err != nil || next != n+1 {
		t.Fatalf("RunRows stopped at %d: %v", next, err)
	}
	stop := errors.New("stop")
	if err := e.st.RunRows(e.ctx, run.ID, func(store.RunRow, *store.Job) error { return stop }); err != stop {
		t.Fatalf("RunRows error = %v", err)
	}
}

func prefixOf(e *env) string {
	keys := e.rdb.Keys(e.ctx, "*:runs").Val()
	if len(keys) != 1 {
		return ""
	}
	return keys[0][:len(keys[0])-len("runs")]
}
