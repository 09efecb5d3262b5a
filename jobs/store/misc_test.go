package store_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

func TestReserveLiveSpendNeverOvershoots(t *testing.T) {
	e := newEnv(t)
	now := time.Date(2026, 11, 27, 23, 59, 0, 0, time.UTC)
	var granted atomic.Int64
	var wg sync.WaitGroup
	for range 150 {
		wg.Go(func() {
			ok, err := e.st.ReserveLiveSpend(e.ctx, now, 50)
			if err != nil {
				t.Error(err)
			}
			if ok {
				granted.Add(1)
			}
		})
	}
	wg.Wait()
	if granted.Load() != 50 {
		t.Fatalf("granted %d reservations under a cap of 50", granted.Load())
	}
	if n, _ := e.st.LiveSpend(e.ctx, now); n != 50 {
		t.Fatalf("LiveSpend = %d", n)
	}
	// Release gives one back; the next day has its own counter.
	if err := e.st.ReleaseLiveSpend(e.ctx, now); err != nil {
		t.Fatal(err)
	}
	if ok, _ := e.st.ReserveLiveSpend(e.ctx, now, 50); !ok {
		t.Fatal("no reservation after a release")
	}
	if ok, _ := e.st.ReserveLiveSpend(e.ctx, now, 50); ok {
		t.Fatal("reservation past the cap")
	}
	if ok, _ := e.st.ReserveLiveSpend(e.ctx, now, 51); !ok {
		t.Fatal("no reservation after raising the cap")
	}
	tomorrow := now.Add(2 * time.Minute)
	if ok, _ := e.st.ReserveLiveSpend(e.ctx, tomorrow, 1); !ok {
		t.Fatal("next UTC day refused")
	}
	for range 3 {
		if ok, _ := e.st.ReserveLiveSpend(e.ctx, tomorrow, 0); !ok {
			t.Fatal("limit 0 (no cap) refused")
		}
	}
	if n, _ := e.st.LiveSpend(e.ctx, tomorrow); n != 4 {
		t.Fatalf("LiveSpend(tomorrow) = %d", n)
	}
	// Releasing never goes below zero.
	empty := now.Add(72 * time.Hour)
	if err := e.st.ReleaseLiveSpend(e.ctx, empty); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.st.LiveSpend(e.ctx, empty); n != 0 {
		t.Fatalf("LiveSpend after release on an empty day = %d", n)
	}
	for _, k := range e.rdb.Keys(e.ctx, "*live-spend*").Val() {
		if ttl := e.rdb.PTTL(e.ctx, k).Val(); ttl <= 47*time.Hour || ttl > 48*time.Hour {
			t.Errorf("%s TTL = %v, want 48h", k, ttl)
		}
	}
}

// TestKeptCallbacksBounded: kept callbacks hold only what diagnosis needs
// (a head of the body, not the body), stay within the count and the byte
// budget whatever arrives (the oldest go first), and every one dropped is
// counted.
func TestKeptCallbacksBounded(t *testing.T) {
	const budget = 4 << 10
	e := newEnvOn(t, testredis.Fresh(t), store.Options{Prefix: "kept:", KeptCallbacks: 5, KeptCallbackBytes: budget})
	keep := func(m refonte.Mode, kind store.KeptKind, body []byte) int64 {
		t.Helper()
		dropped, err := e.st.KeepCallback(e.ctx, store.KeptCallback{Kind: kind, Mode: m, TaskID: "t", Status: refonte.StatusCompleted}, body)
		if err != nil {
			t.Fatal(err)
		}
		return dropped
	}
	stats := func() store.KeptCallbackStats {
		t.Helper()
		st, err := e.st.KeptCallbackStats(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	// A 1 MiB body keeps its head and size only.
	big := bytes.Repeat([]byte("a"), 1<<20)
	if d := keep(refonte.ModeTest, store.KeptUnknown, big); d != 0 {
		t.Fatalf("dropped %d keeping one callback", d)
	}
	got, err := e.st.KeptCallbacks(e.ctx, 10)
	if err != nil || len(got) != 1 || got[0].Size != 1<<20 || len(got[0].Head) != store.KeptHeadBytes || got[0].ReceivedAt.IsZero() {
		t.Fatalf("kept %+v, %v; want one entry with size %d and a %d-byte head", got, err, 1<<20, store.KeptHeadBytes)
	}
	if st := stats(); st.Bytes > 2*store.KeptHeadBytes || st.Kept != 1 {
		t.Fatalf("stats after one 1 MiB body: %+v, want about a head's bytes", st)
	}
	// The count cap: 5 entries, the oldest dropped.
	var dropped int64
	for i := range 8 {
		dropped += keep(refonte.ModeTest, store.KeptConflict, fmt.Appendf(nil, `{"n":%d}`, i))
	}
	dropped += keep(refonte.ModeLive, store.KeptUnknown, []byte(`{"n":"live"}`))
	got, _ = e.st.KeptCallbacks(e.ctx, 100)
	var heads []string
	for _, k := range got {
		heads = append(heads, k.Head)
	}
	if want := []string{`{"n":"live"}`, `{"n":7}`, `{"n":6}`, `{"n":5}`, `{"n":4}`}; !slices.Equal(heads, want) {
		t.Fatalf("kept heads %q, want %q", heads, want)
	}
	if st := stats(); dropped != 5 || st.Dropped != 5 || st.Kept != 5 {
		t.Fatalf("dropped %d (stats %+v), want 5 dropped and 5 kept", dropped, st)
	}
	// The byte budget: 1,000 entries of about 1.2 KiB never hold more than 4 KiB.
	for range 1000 {
		dropped += keep(refonte.ModeTest, store.KeptUnknown, big)
		if st := stats(); st.Bytes > budget {
			t.Fatalf("kept %d bytes, budget %d", st.Bytes, budget)
		}
	}
	st := stats()
	used := e.rdb.MemoryUsage(e.ctx, "kept:kept-callbacks").Val()
	if st.Kept == 0 || st.Kept >= 5 || st.Dropped != dropped || used > 2*budget {
		t.Fatalf("after 1,000 big callbacks: %+v (dropped %d), list memory %d; want a few entries within %d bytes", st, dropped, used, budget)
	}
	if n, _ := e.st.UnknownCallbackCount(e.ctx, refonte.ModeTest); n != 1001 {
		t.Fatalf("unknown test callbacks counted %d, want 1001", n)
	}
	if n, _ := e.st.UnknownCallbackCount(e.ctx, refonte.ModeLive); n != 1 {
		t.Fatalf("unknown live callbacks counted %d, want 1", n)
	}
	// The list of whole bodies of earlier versions is removed.
	e.rdb.LPush(e.ctx, "kept:unknown-callbacks", big)
	keep(refonte.ModeTest, store.KeptUnknown, []byte(`{}`))
	if n := e.rdb.Exists(e.ctx, "kept:unknown-callbacks").Val(); n != 0 {
		t.Fatal("the legacy unknown-callbacks list was kept")
	}
}

func TestRetentionTTLOnEveryKey(t *testing.T) {
	const retention = time.Hour
	e := newEnvOn(t, testredis.Fresh(t), store.Options{Retention: retention, Prefix: "ret:"})
	m := refonte.ModeTest
	run := e.progressedRun(m)
	if _, err := e.st.KeepCallback(e.ctx, store.KeptCallback{Kind: store.KeptUnknown, Mode: m}, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	keys := e.rdb.Keys(e.ctx, "ret:*").Val()
	want := []string{"ret:runs", "ret:run:" + run.ID, "ret:run:" + run.ID + ":rows", "ret:job:test:uid-1",
		"ret:taskidx:test:t1", "ret:taskidx:test:t2", "ret:inflight:test", "ret:kept-callbacks",
		"ret:kept-callbacks:bytes", "ret:unknown-callbacks:count:test"}
	for _, w := range want {
		if !strings.Contains(strings.Join(keys, " "), w) {
			t.Errorf("key %s missing from %v", w, keys)
		}
	}
	for _, k := range keys {
		if ttl := e.rdb.PTTL(e.ctx, k).Val(); ttl <= 0 || ttl > retention {
			t.Errorf("%s TTL = %v, want within %v", k, ttl, retention)
		}
	}
}

func TestRecordAttemptAndInFlight(t *testing.T) {
	e := newEnv(t)
	m := refonte.ModeTest
	run := e.createRun(m)
	e.addRows(run, 1, 3)
	for _, errText := range []string{"503 unavailable", "timeout", ""} {
		if err := e.st.RecordAttempt(e.ctx, m, "uid-1", errText); err != nil {
			t.Fatal(err)
		}
	}
	if j := e.job(m, "uid-1"); j.Attempts != 3 || j.Error != "" || j.UpdatedAt.Before(j.CreatedAt) {
		t.Fatalf("job = %+v", j)
	}
	_ = e.st.RecordAttempt(e.ctx, m, "uid-2", "429")
	if j := e.job(m, "uid-2"); j.Attempts != 1 || j.Error != "429" {
		t.Fatalf("job = %+v", j)
	}
	for _, u := range []string{"uid-3", "uid-1", "uid-2"} {
		if _, err := e.st.MarkSubmitted(e.ctx, m, u, "t-"+u); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // distinct submitted times (ms) to check the order
	}
	ids, err := e.st.InFlightBefore(e.ctx, m, time.Now().Add(time.Second), 2)
	if err != nil || len(ids) != 2 || ids[0] != "uid-3" || ids[1] != "uid-1" {
		t.Fatalf("InFlightBefore = %v, %v", ids, err)
	}
	if ids, _ := e.st.InFlightBefore(e.ctx, m, time.Now().Add(-time.Hour), 10); len(ids) != 0 {
		t.Fatalf("InFlightBefore(an hour ago) = %v", ids)
	}
	if _, err := e.st.Complete(e.ctx, m, "uid-3", outcome("t-uid-3", refonte.StatusCompleted, time.Now())); err != nil {
		t.Fatal(err)
	}
	if ids, _ := e.st.InFlightBefore(e.ctx, m, time.Now().Add(time.Second), 10); len(ids) != 2 || ids[0] != "uid-1" {
		t.Fatalf("InFlightBefore after a completion = %v", ids)
	}
	if ids, _ := e.st.InFlightBefore(e.ctx, refonte.ModeLive, time.Now().Add(time.Second), 10); len(ids) != 0 {
		t.Fatalf("live in-flight = %v", ids)
	}
}

// TestConcurrentDeliveries races submits and duplicate, stale and
// out-of-order callbacks for the same jobs: the counters stay exact.
func TestConcurrentDeliveries(t *testing.T) {
	e := newEnv(t)
	m := refonte.ModeTest
	r1 := e.createRun(m)
	const n = 40
	e.addRows(r1, 1, n)
	r2 := e.createRun(m)
	e.addRows(r2, 1, n/2) // a re-run sharing half the jobs
	for _, r := range []*store.Run{r1, r2} {
		if err := e.st.FinishEnqueue(e.ctx, r.ID); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now()
	var done, allSub sync.Map
	var doneCount, allSubCount atomic.Int64
	note := func(tr store.Transition) {
		for _, id := range tr.RunsDone {
			if _, dup := done.LoadOrStore(id, true); dup {
				t.Errorf("run %s reported done twice", id)
			}
			doneCount.Add(1)
		}
		for _, id := range tr.RunsAllSubmitted {
			if _, dup := allSub.LoadOrStore(id, true); dup {
				t.Errorf("run %s reported all-submitted twice", id)
			}
			allSubCount.Add(1)
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 1; i <= n; i++ {
				uid := fmt.Sprintf("uid-%d", i)
				tid := "task-" + uid
				var tr store.Transition
				var err error
				switch (g + i) % 4 {
				case 0:
					tr, err = e.st.MarkSubmitted(e.ctx, m, uid, tid)
				case 1: // the final answer, delivered many times
					tr, err = e.st.Complete(e.ctx, m, uid, outcome(tid, refonte.StatusCompleted, t0.Add(2*time.Second)))
				case 2: // an older, stale delivery
					tr, err = e.st.Complete(e.ctx, m, uid, outcome(tid, refonte.StatusCanceled, t0.Add(time.Second)))
				case 3:
					err = e.st.RecordAttempt(e.ctx, m, uid, "")
				}
				if err != nil {
					t.Error(err)
				}
				note(tr)
			}
		})
	}
	wg.Wait()
	for _, tc := range []struct {
		run  *store.Run
		rows int64
	}{{r1, n}, {r2, n / 2}} {
		r := e.run(tc.run.ID)
		want := store.Counters{Rows: tc.rows, Valid: tc.rows, Submitted: tc.rows, Completed: tc.rows}
		if tc.run == r1 {
			want.Enqueued = n
		} else {
			want.Duplicate = n / 2
		}
		if r.Counters != want || r.State != store.RunDone {
			t.Fatalf("run %s = %+v (%s), want %+v", r.ID, r.Counters, r.State, want)
		}
	}
	if doneCount.Load() != 2 || allSubCount.Load() != 2 {
		t.Fatalf("done reported %d times, all-submitted %d times; want 2 each", doneCount.Load(), allSubCount.Load())
	}
	for i := 1; i <= n; i++ {
		if j := e.job(m, fmt.Sprintf("uid-%d", i)); j.State != store.JobCompleted || j.Attempts == 0 {
			t.Fatalf("job %d = %+v", i, j)
		}
	}
}

// TestCrashRepair SIGKILLs an AOF redis-server (appendfsync everysec) right
// after AddJobs and restarts it from its AOF. A SIGKILL alone loses nothing
// the server acknowledged (the AOF is written before replies; only an OS
// crash loses the last second), so the test then drops what such a crash
// can drop, whole scripts' effects: some rows' job record with their task,
// and some tasks alone (records kept). Re-running the same rows repairs
// every one of them and duplicates none.
func TestCrashRepair(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{AOF: true})
	const n = 2000
	m := refonte.ModeTest
	e := newEnvOn(t, srv.URL(), store.Options{Prefix: "crash:"})
	run := e.createRun(m)
	e.addRows(run, 1, n)
	srv.Kill()
	srv.Restart()

	e2 := newEnvOn(t, srv.URL(), store.Options{Prefix: "crash:"})
	ctx := context.Background()
	if got := len(e2.rdb.Keys(ctx, "crash:job:*").Val()); got != n {
		t.Fatalf("%d of %d job records survived a SIGKILL", got, n)
	}
	q := jobs.Queue(m)
	pendingKey := "asynq:{" + q + "}:pending"
	lose := func(i int, record bool) {
		id := jobs.TaskID(m, fmt.Sprintf("uid-%d", i))
		e2.rdb.Del(ctx, "asynq:{"+q+"}:t:"+id)
		e2.rdb.LRem(ctx, pendingKey, 0, id)
		if record {
			e2.rdb.Del(ctx, fmt.Sprintf("crash:job:test:uid-%d", i))
		}
	}
	for i := n - 9; i <= n; i++ {
		lose(i, true) // the last rows: record and task lost
	}
	for i := 1; i <= 10; i++ {
		lose(i, false) // task lost, record kept
	}
	rerun := e2.createRun(m)
	outs := e2.addRows(rerun, 1, n)
	if nw, rp, dp := count(outs, store.AddedNew), count(outs, store.AddedRepaired), count(outs, store.AddedDuplicate); nw != 10 || rp != 10 || dp != n-20 {
		t.Fatalf("outcomes: new %d, repaired %d, duplicate %d", nw, rp, dp)
	}
	pending := e2.rdb.LRange(ctx, pendingKey, 0, -1).Val()
	seen := map[string]bool{}
	for _, id := range pending {
		if seen[id] {
			t.Fatalf("task %s queued twice", id)
		}
		seen[id] = true
	}
	if len(pending) != n {
		t.Fatalf("%d tasks pending, want %d", len(pending), n)
	}
	for i := 1; i <= n; i++ {
		uid := fmt.Sprintf("uid-%d", i)
		if j := e2.job(m, uid); j.State != store.JobEnqueued {
			t.Fatalf("job %s = %+v", uid, j)
		}
		if e2.rdb.Exists(ctx, "asynq:{"+q+"}:t:"+jobs.TaskID(m, uid)).Val() != 1 || !seen[jobs.TaskID(m, uid)] {
			t.Fatalf("job %s has no queued task after the repair", uid)
		}
	}
	if c := e2.counters(rerun.ID); c != (store.Counters{Rows: n, Valid: n, Enqueued: 10, Duplicate: n - 10}) {
		t.Fatalf("re-run counters = %+v", c)
	}
}

// TestRecordCreated checks that a successful create is counted as an
// attempt (its error cleared unless the job failed) in the same step as
// the submission, and that the attempt is counted even when the
// submission itself is a no-op.
func TestRecordCreated(t *testing.T) {
	m := refonte.ModeTest
	tests := []struct {
		name         string
		before       func(e *env) // state of uid-1 before RecordCreated
		wantChanged  bool
		wantState    store.JobState
		wantAttempts int64
		wantError    string
		wantSubmit   int64 // run counter submitted after
	}{
		{name: "first create", before: func(*env) {}, wantChanged: true, wantState: store.JobSubmitted,
			wantAttempts: 1, wantSubmit: 1},
		{name: "after two failed attempts", before: func(e *env) {
			_ = e.st.RecordAttempt(e.ctx, m, "uid-1", "503 unavailable")
			_ = e.st.RecordAttempt(e.ctx, m, "uid-1", "timeout")
		}, wantChanged: true, wantState: store.JobSubmitted, wantAttempts: 3, wantSubmit: 1},
		{name: "callback recorded the task first", before: func(e *env) {
			_, _ = e.st.MarkSubmitted(e.ctx, m, "uid-1", "t1")
		}, wantChanged: false, wantState: store.JobSubmitted, wantAttempts: 1, wantSubmit: 1},
		{name: "failed without a task keeps its error", before: func(e *env) {
			_ = e.st.RecordAttempt(e.ctx, m, "uid-1", "timeout")
			_, _ = e.st.Fail(e.ctx, m, "uid-1", "gave up")
		}, wantChanged: true, wantState: store.JobFailed, wantAttempts: 2, wantError: "gave up", wantSubmit: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			run := e.enqueuedRun(m, 1, 2)
			tc.before(e)
			tr, err := e.st.RecordCreated(e.ctx, m, "uid-1", "t1")
			if err != nil {
				t.Fatal(err)
			}
			j := e.job(m, "uid-1")
			if tr.Changed != tc.wantChanged || j.State != tc.wantState || j.Attempts != tc.wantAttempts ||
				j.Error != tc.wantError || j.TaskID != "t1" {
				t.Fatalf("changed=%v job=%+v; want changed=%v state=%s attempts=%d error=%q task t1",
					tr.Changed, j, tc.wantChanged, tc.wantState, tc.wantAttempts, tc.wantError)
			}
			if c := e.counters(run.ID); c.Submitted != tc.wantSubmit {
				t.Fatalf("run submitted = %d, want %d", c.Submitted, tc.wantSubmit)
			}
			if j := e.job(m, "uid-2"); j.Attempts != 0 || j.State != store.JobEnqueued {
				t.Fatalf("the other row changed: %+v", j)
			}
		})
	}
	if _, err := newEnv(t).st.RecordCreated(context.Background(), m, "nope", "t1"); !errors.Is(err, store.ErrJobNotFound) {
		t.Fatalf("RecordCreated(unknown) = %v, want ErrJobNotFound", err)
	}
}

// TestRunTTLRefreshThrottled checks that transitions refresh a run's TTL
// when its last refresh is older than 1 % of the retention, and not on
// every row (one write less per transition at thousands of rows/s).
func TestRunTTLRefreshThrottled(t *testing.T) {
	const retention = time.Hour // 1 % = 36 s
	e := newEnvOn(t, testredis.Fresh(t), store.Options{Retention: retention, Prefix: "thr:"})
	m := refonte.ModeTest
	run := e.enqueuedRun(m, 1, 3)
	rk, rows := "thr:run:"+run.ID, "thr:run:"+run.ID+":rows"
	shorten := func() {
		for _, k := range []string{rk, rows} {
			e.rdb.PExpire(e.ctx, k, time.Minute)
		}
	}
	refreshed := func() bool {
		a, b := e.rdb.PTTL(e.ctx, rk).Val(), e.rdb.PTTL(e.ctx, rows).Val()
		if (a > time.Minute) != (b > time.Minute) {
			t.Fatalf("run hash TTL %v and rows TTL %v refreshed apart", a, b)
		}
		return a > time.Minute
	}
	steps := []struct {
		name string
		prep func()
		uid  string
		want bool
	}{
		{"first transition refreshes", shorten, "uid-1", true},
		{"a second later: no refresh", shorten, "uid-2", false},
		{"last refresh 40 s ago: refresh", func() {
			shorten()
			e.rdb.HSet(e.ctx, rk, "ttl_at", time.Now().Add(-40*time.Second).UnixMilli())
		}, "uid-3", true},
	}
	for _, s := range steps {
		s.prep()
		if _, err := e.st.MarkSubmitted(e.ctx, m, s.uid, "t-"+s.uid); err != nil {
			t.Fatal(err)
		}
		if got := refreshed(); got != s.want {
			t.Fatalf("%s: refreshed = %v", s.name, got)
		}
	}
	if c := e.counters(run.ID); c.Submitted != 3 {
		t.Fatalf("submitted = %d", c.Submitted)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestRecordCreatedTerminal checks that RecordCreatedTerminal leaves the
// store exactly as RecordCreated then Complete do (job record, run
// counters and state, in-flight set, task index, the transition's runs),
// from every state a job can be in when its create succeeds.
// requeuedWithOldResponse leaves uid-1 enqueued again (enqueue retry)
// after an errored outcome without a task: no task, no delivery, but the
// old outcome's response, which a new outcome without one must clear.
func requeuedWithOldResponse(e *env) {
	e.t.Helper()
	if _, err := e.st.Complete(e.ctx, refonte.ModeTest, "uid-1", store.Outcome{Status: refonte.StatusError,
		Error: "rejected", Response: []byte(`{"old":true}`), At: time.Now().Add(-time.Hour)}); err != nil {
		e.t.Fatal(err)
	}
	if tr, err := e.st.Requeue(e.ctx, refonte.ModeTest, "uid-1"); err != nil || !tr.Changed {
		e.t.Fatalf("Requeue = %+v, %v; want the failed job enqueued again", tr, err)
	}
	if j := e.job(refonte.ModeTest, "uid-1"); j.State != store.JobEnqueued || j.TaskID != "" || len(j.Response) == 0 {
		e.t.Fatalf("job after Requeue: %+v; want enqueued, no task, the old response", j)
	}
}

func TestRecordCreatedTerminal(t *testing.T) {
	m := refonte.ModeTest
	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	tests := []struct {
		name   string
		before func(e *env) // state of uid-1 before the create is recorded
		o      store.Outcome
	}{
		{name: "first create, completed", before: func(*env) {}, o: outcome("t1", refonte.StatusCompleted, at)},
		{name: "first create, error", before: func(*env) {},
			o: store.Outcome{TaskID: "t1", Status: refonte.StatusError, Error: "bad image", At: at}},
		{name: "first create, canceled", before: func(*env) {}, o: outcome("t1", refonte.StatusCanceled, at)},
		{name: "first create, completed without a response", before: func(*env) {},
			o: store.Outcome{TaskID: "t1", Status: refonte.StatusCompleted, At: at}},
		{name: "row shared with a second run", before: func(e *env) {
			e.enqueuedRun(m, 1, 1)
		}, o: outcome("t1", refonte.StatusCompleted, at)},
		{name: "after failed attempts", before: func(e *env) {
			_ = e.st.RecordAttempt(e.ctx, m, "uid-1", "503 unavailable")
		}, o: outcome("t1", refonte.StatusCompleted, at)},
		{name: "after failed attempts, canceled", before: func(e *env) {
			_ = e.st.RecordAttempt(e.ctx, m, "uid-1", "503 unavailable")
		}, o: outcome("t1", refonte.StatusCanceled, at)},
		{name: "callback completed it first (same delivery)", before: func(e *env) {
			_, _ = e.st.Complete(e.ctx, m, "uid-1", outcome("t1", refonte.StatusCompleted, at))
		}, o: outcome("t1", refonte.StatusCompleted, at)},
		{name: "newer callback first", before: func(e *env) {
			_, _ = e.st.Complete(e.ctx, m, "uid-1", outcome("t1", refonte.StatusCanceled, at.Add(time.Second)))
		}, o: outcome("t1", refonte.StatusCompleted, at)},
		{name: "pending callback recorded the task", before: func(e *env) {
			_, _ = e.st.MarkSubmitted(e.ctx, m, "uid-1", "t1")
		}, o: outcome("t1", refonte.StatusCompleted, at)},
		{name: "failed without a task", before: func(e *env) {
			_, _ = e.st.Fail(e.ctx, m, "uid-1", "gave up")
		}, o: outcome("t1", refonte.StatusCompleted, at)},
		{name: "requeued after an errored outcome, completed without a response",
			before: requeuedWithOldResponse, o: store.Outcome{TaskID: "t1", Status: refonte.StatusCompleted, At: at}},
		{name: "requeued after an errored outcome, error without a response",
			before: requeuedWithOldResponse, o: store.Outcome{TaskID: "t1", Status: refonte.StatusError, Error: "bad image", At: at}},
	}
	// state is everything the two ways must agree on; times written as
	// "now" are left out (the two ways run at different instants).
	type state struct {
		Tr       store.Transition
		Job      store.Job
		Runs     []map[string]string // each run's record as stored: the job's first run, then the other
		InFlight []string
		Index    string
	}
	capture := func(t *testing.T, e *env, tr store.Transition) state {
		j := *e.job(m, "uid-1")
		first := j.Run
		j.Run, j.CreatedAt, j.SubmittedAt, j.UpdatedAt = "", time.Time{}, time.Time{}, time.Time{}
		runs, err := e.st.ListRuns(e.ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		// The job's first run, then the other (runs created in the same
		// millisecond have no order of their own).
		slices.SortStableFunc(runs, func(a, b *store.Run) int {
			return cmp.Compare(b2i(a.ID != first), b2i(b.ID != first))
		})
		st := state{Job: j}
		for _, r := range runs {
			keys, err := e.rdb.Keys(e.ctx, "*run:"+r.ID).Result() // the env's prefix is its own
			if err != nil || len(keys) != 1 {
				t.Fatalf("run %s record keys %v: %v", r.ID, keys, err)
			}
			raw, err := e.rdb.HGetAll(e.ctx, keys[0]).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"created_at", "enqueued_at", "finished_at", "ttl_at", "last_error_at"} {
				delete(raw, k)
			}
			st.Runs = append(st.Runs, raw)
			name := fmt.Sprintf("RUN%d", len(st.Runs))
			for k := range tr.RunsDone {
				tr.RunsDone[k] = strings.Replace(tr.RunsDone[k], r.ID, name, 1)
			}
			for k := range tr.RunsAllSubmitted {
				tr.RunsAllSubmitted[k] = strings.Replace(tr.RunsAllSubmitted[k], r.ID, name, 1)
			}
		}
		st.Tr = tr // with the run IDs renamed
		if st.InFlight, err = e.st.InFlightBefore(e.ctx, m, time.Now().Add(time.Hour), 10); err != nil {
			t.Fatal(err)
		}
		st.Index, err = e.st.UniqueIDByTaskID(e.ctx, m, "t1")
		if err != nil && !errors.Is(err, store.ErrJobNotFound) {
			t.Fatal(err)
		}
		return st
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got [2]state
			for way := range 2 {
				e := newEnv(t)
				e.enqueuedRun(m, 1, 1)
				tc.before(e)
				var tr store.Transition
				var err error
				if way == 0 {
					var tr2 store.Transition
					tr, err = e.st.RecordCreated(e.ctx, m, "uid-1", tc.o.TaskID)
					if err == nil {
						tr2, err = e.st.Complete(e.ctx, m, "uid-1", tc.o)
					}
					tr.Changed = tr.Changed || tr2.Changed
					tr.To = tr2.To
					tr.Conflict = tr2.Conflict
					tr.RunsDone = append(tr.RunsDone, tr2.RunsDone...)
					tr.RunsAllSubmitted = append(tr.RunsAllSubmitted, tr2.RunsAllSubmitted...)
				} else {
					tr, err = e.st.RecordCreatedTerminal(e.ctx, m, "uid-1", tc.o)
				}
				if err != nil {
					t.Fatal(err)
				}
				got[way] = capture(t, e, tr)
			}
			if !reflect.DeepEqual(got[0], got[1]) {
				t.Fatalf("RecordCreatedTerminal left\n%+v\nRecordCreated + Complete left\n%+v", got[1], got[0])
			}
			if !got[1].Job.State.Terminal() || got[1].Job.Attempts == 0 || got[1].Job.TaskID != "t1" {
				t.Fatalf("job after RecordCreatedTerminal: %+v; want terminal, an attempt counted, task t1", got[1].Job)
			}
		})
	}
	e := newEnv(t)
	if _, err := e.st.RecordCreatedTerminal(e.ctx, m, "nope", outcome("t1", refonte.StatusCompleted, at)); !errors.Is(err, store.ErrJobNotFound) {
		t.Fatalf("RecordCreatedTerminal(unknown) = %v, want ErrJobNotFound", err)
	}
	if _, err := e.st.RecordCreatedTerminal(e.ctx, m, "uid-1", outcome("t1", refonte.StatusPending, at)); err == nil {
		t.Fatal("RecordCreatedTerminal(pending outcome) succeeded; want an error")
	}
}
