package reconcile_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"

	"github.com/refonte-ai/refonte-batch/internal/testkit"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/reconcile"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/ratelimit"
	"github.com/refonte-ai/refonte-batch/refonte"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

const grace = time.Minute

// env is a store on a private redis-server, a sandbox and a test-mode
// client, and a clock the test moves forward.
type env struct {
	rdb    redis.UniversalClient
	st     *store.Store
	sb     *sandbox.Server
	client *refonte.Client
	offset atomic.Int64 // added to time.Now by now
	mu     sync.Mutex
	trans  []store.Transition
}

func newEnv(t *testing.T, cfg sandbox.Config) *env {
	t.Helper()
	st, rdb := testkit.Store(t, store.Options{})
	cfg.Logger = zaptest.NewLogger(t)
	sb, api := testkit.Sandbox(t, cfg)
	client := testkit.Client(t, sandbox.DefaultTestKey, api, refonte.RetryPolicy{Disabled: true})
	return &env{rdb: rdb, st: st, sb: sb, client: client}
}

func (e *env) now() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) }

// advance moves the clock d forward.
func (e *env) advance(d time.Duration) { e.offset.Add(int64(d)) }

func (e *env) reconciler(t *testing.T, lim ratelimit.Limiter, mod func(*reconcile.Config)) *reconcile.Reconciler {
	t.Helper()
	if lim == nil {
		var err error
		if lim, err = ratelimit.NewRedis(e.rdb, ratelimit.Config{Rate: 10000, Burst: 1000, Name: "reconcile-test"}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := reconcile.Config{
		Store:    e.st,
		Clients:  map[refonte.Mode]*refonte.Client{refonte.ModeTest: e.client},
		Limiters: map[refonte.Mode]ratelimit.Limiter{refonte.ModeTest: lim},
		Grace:    grace,
		Logger:   zaptest.NewLogger(t),
		Now:      e.now,
		OnTransition: func(_ context.Context, tr store.Transition) {
			e.mu.Lock()
			e.trans = append(e.trans, tr)
			e.mu.Unlock()
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	r, err := reconcile.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// submitted creates a run of n rows, creates their tasks at the sandbox
// (no callback_url: the sandbox sends no callback) and records them
// submitted. It returns the run and the unique_ids.
func (e *env) submitted(t *testing.T, prefix string, n int) (*store.Run, []string) {
	t.Helper()
	ctx := context.Background()
	run := &store.Run{Dataset: prefix + ".jsonl", Type: refonte.TypeImageAnnotation, Project: "demo", Mode: refonte.ModeTest}
	if err := e.st.CreateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	uids := make([]string, n)
	nj := make([]store.NewJob, n)
	for i := range n {
		uids[i] = fmt.Sprintf("%s-%03d", prefix, i)
		nj[i] = store.NewJob{Line: int64(i + 1), UniqueID: uids[i], TaskType: refonte.TypeImageAnnotation,
			AsynqType: jobs.TypeSubmit, Queue: jobs.Queue(refonte.ModeTest), TaskID: jobs.TaskID(refonte.ModeTest, uids[i]),
			Payload: []byte(`{"v":1}`), MaxRetry: 3, Timeout: time.Minute}
	}
	if _, err := e.st.AddJobs(ctx, run, nj); err != nil {
		t.Fatal(err)
	}
	if err := e.st.FinishEnqueue(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	for _, uid := range uids {
		task, err := e.client.CreateTask(ctx, refonte.TypeImageAnnotation, refonte.TaskParams{
			"project": "demo", "attachment": "https://example.com/" + uid + ".jpg",
			"geometries": map[string]any{"box": map[string]any{"objects_to_annotate": []string{"car"}}},
			"unique_id":  uid,
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.st.MarkSubmitted(ctx, refonte.ModeTest, uid, task.ID); err != nil {
			t.Fatal(err)
		}
	}
	return run, uids
}

func (e *env) job(t *testing.T, uid string) *store.Job {
	t.Helper()
	j, err := e.st.GetJob(context.Background(), refonte.ModeTest, uid)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func (e *env) run(t *testing.T, id string) *store.Run {
	t.Helper()
	r, err := e.st.GetRun(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func once(t *testing.T, r *reconcile.Reconciler) int {
	t.Helper()
	n, err := r.Once(context.Background())
	if err != nil {
		t.Fatalf("Once: %v", err)
	}
	return n
}

// waitTerminal waits until the sandbox has completed every task of uids.
func (e *env) waitTerminal(t *testing.T, uids []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, uid := range uids {
		for {
			task, ok := e.sb.TaskByUniqueID(refonte.ModeTest, uid)
			if ok && task.Status.Terminal() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sandbox task %s not terminal in 10s", uid)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func TestLostCallbacksAreRecovered(t *testing.T) {
	e := newEnv(t, sandbox.Config{CompleteAfter: sandbox.CompleteImmediately, CallbackDropRate: 1})
	run, uids := e.submitted(t, "lost", 25)
	e.waitTerminal(t, uids)
	r := e.reconciler(t, nil, func(c *reconcile.Config) { c.BatchSize = 10 }) // several batches in one pass

	if n := once(t, r); n != 0 {
		t.Fatalf("polled %d jobs within the grace period, want 0", n)
	}
	e.advance(grace + time.Second)
	if n := once(t, r); n != len(uids) {
		t.Fatalf("polled %d, want %d", n, len(uids))
	}
	for _, uid := range uids {
		j := e.job(t, uid)
		if j.State != store.JobCompleted || len(j.Response) == 0 {
			t.Fatalf("job %s: state %s, response %q", uid, j.State, j.Response)
		}
	}
	got := e.run(t, run.ID)
	if got.Completed != int64(len(uids)) || got.State != store.RunDone {
		t.Fatalf("run %s counters %+v, want %d completed and done", got.State, got.Counters, len(uids))
	}
	if n := once(t, r); n != 0 {
		t.Fatalf("polled %d after everything was reconciled, want 0", n)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.trans) != len(uids) {
		t.Fatalf("OnTransition called %d times, want %d", len(e.trans), len(uids))
	}
	done := 0
	for _, tr := range e.trans {
		done += len(tr.RunsDone)
	}
	if done != 1 {
		t.Fatalf("run reported done %d times, want once", done)
	}
}

func TestPendingTasksAreNotPolledEveryPass(t *testing.T) {
	e := newEnv(t, sandbox.Config{NoAutoComplete: true})
	run, uids := e.submitted(t, "pend", 5)
	r := e.reconciler(t, nil, nil)

	e.advance(grace + time.Second)
	if n := once(t, r); n != len(uids) {
		t.Fatalf("first overdue pass polled %d, want %d", n, len(uids))
	}
	for _, uid := range uids {
		if j := e.job(t, uid); j.State != store.JobSubmitted {
			t.Fatalf("pending task's job %s is %s, want submitted", uid, j.State)
		}
	}
	for range 3 {
		if n := once(t, r); n != 0 {
			t.Fatalf("pending tasks polled again at once (%d)", n)
		}
	}
	// After another grace period they are polled again.
	e.advance(grace + time.Second)
	if n := once(t, r); n != len(uids) {
		t.Fatalf("second overdue pass polled %d, want %d", n, len(uids))
	}
	for _, uid := range uids {
		task, ok := e.sb.TaskByUniqueID(refonte.ModeTest, uid)
		if !ok || !e.sb.Complete(refonte.ModeTest, task.ID) {
			t.Fatalf("sandbox could not complete %s", uid)
		}
	}
	e.waitTerminal(t, uids)
	e.advance(grace + time.Second)
	if n := once(t, r); n != len(uids) {
		t.Fatalf("third pass polled %d, want %d", n, len(uids))
	}
	if got := e.run(t, run.ID); got.Completed != int64(len(uids)) || got.State != store.RunDone {
		t.Fatalf("run %s %+v", got.State, got.Counters)
	}
}

func TestTaskNotFoundFailsTheJob(t *testing.T) {
	e := newEnv(t, sandbox.Config{NoAutoComplete: true})
	run, uids := e.submitted(t, "gone", 2)
	ctx := context.Background()
	// A third row whose recorded task does not exist at the API.
	if _, err := e.st.AddJobs(ctx, run, []store.NewJob{{Line: 3, UniqueID: "gone-x", TaskType: refonte.TypeImageAnnotation,
		AsynqType: jobs.TypeSubmit, Queue: jobs.Queue(refonte.ModeTest), TaskID: jobs.TaskID(refonte.ModeTest, "gone-x"),
		Payload: []byte(`{"v":1}`), MaxRetry: 3, Timeout: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.MarkSubmitted(ctx, refonte.ModeTest, "gone-x", "no-such-task"); err != nil {
		t.Fatal(err)
	}
	r := e.reconciler(t, nil, nil)
	e.advance(grace + time.Second)
	if n := once(t, r); n != 3 {
		t.Fatalf("polled %d, want 3", n)
	}
	j := e.job(t, "gone-x")
	if j.State != store.JobFailed || j.Error != reconcile.NotFoundReason {
		t.Fatalf("job %s error %q, want failed %q", j.State, j.Error, reconcile.NotFoundReason)
	}
	for _, uid := range uids {
		if j := e.job(t, uid); j.State != store.JobSubmitted {
			t.Fatalf("job %s is %s", uid, j.State)
		}
	}
	if got := e.run(t, run.ID); got.Failed != 1 || got.Completed != 0 {
		t.Fatalf("run %+v", got.Counters)
	}
}

// TestPassDrainsEveryOverdueJobAtBurstOne: with the worker's default
// -rate-burst 1 and the limiter's free slot just taken (a create got it), a
// pass still settles every overdue job, in bulk: a few list calls instead
// of one GET per job (before, the pass stopped at the first Reserve that
// found no free slot: one job per pass).
func TestPassDrainsEveryOverdueJobAtBurstOne(t *testing.T) {
	e := newEnv(t, sandbox.Config{CompleteAfter: sandbox.CompleteImmediately, CallbackDropRate: 1})
	run, uids := e.submitted(t, "burst1", 250)
	e.waitTerminal(t, uids)
	lim, err := ratelimit.NewRedis(e.rdb, ratelimit.Config{Rate: 20, Burst: 1, Name: "burst1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := lim.Wait(context.Background()); err != nil { // a create takes the free slot
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	r := e.reconciler(t, lim, func(c *reconcile.Config) { c.Registerer = reg })
	e.advance(grace + time.Second)
	calls := e.sb.Stats().APICalls
	if n := once(t, r); n != len(uids) {
		t.Fatalf("one pass at burst 1 checked %d of %d overdue jobs", n, len(uids))
	}
	if got := e.run(t, run.ID); got.Completed != int64(len(uids)) || got.State != store.RunDone {
		t.Fatalf("run %s %+v, want done with %d completed", got.State, got.Counters, len(uids))
	}
	// 250 tasks: 3 pages of 100, no single GET.
	if made := e.sb.Stats().APICalls - calls; made > 3 {
		t.Errorf("the pass made %d API calls for %d jobs, want at most 3 (listing pages of 100)", made, len(uids))
	}
	if got := counter(t, reg, "refonte_reconcile_api_calls_total", "list"); got < 1 || got > 3 {
		t.Errorf("refonte_reconcile_api_calls_total{op=list} = %v, want 1..3", got)
	}
	if got := counter(t, reg, "refonte_reconcile_api_calls_total", "get"); got != 0 {
		t.Errorf("refonte_reconcile_api_calls_total{op=get} = %v, want 0", got)
	}
}

// TestListingCostFallsBackToSingleGets: a single overdue job among many
// tasks is fetched by one GET, not by listing the whole run.
func TestListingCostFallsBackToSingleGets(t *testing.T) {
	e := newEnv(t, sandbox.Config{CompleteAfter: sandbox.CompleteImmediately, CallbackDropRate: 1})
	_, uids := e.submitted(t, "sparse", 150)
	e.waitTerminal(t, uids)
	ctx := context.Background()
	// Callbacks came for all but two rows, the first and the last.
	for _, uid := range uids[1 : len(uids)-1] {
		j := e.job(t, uid)
		if _, err := e.st.Complete(ctx, refonte.ModeTest, uid, store.Outcome{TaskID: j.TaskID, Status: refonte.StatusCompleted, At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	r := e.reconciler(t, nil, nil)
	e.advance(grace + time.Second)
	calls := e.sb.Stats().APICalls
	if n := once(t, r); n != 2 {
		t.Fatalf("checked %d jobs, want 2", n)
	}
	// The listing's first page (newest 100) holds the last row only; the
	// second page would cost what the one GET left costs.
	if made := e.sb.Stats().APICalls - calls; made > 2 {
		t.Errorf("%d API calls for 2 overdue jobs among 150 tasks, want at most 2", made)
	}
	for _, uid := range []string{uids[0], uids[len(uids)-1]} {
		if j := e.job(t, uid); j.State != store.JobCompleted {
			t.Errorf("job %s is %s, want completed", uid, j.State)
		}
	}
}

// counter returns the value of the counter name with the label op (or
// outcome) equal to label, summed over its other labels.
func counter(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == label {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

func TestAPIDownLeavesJobsForLater(t *testing.T) {
	e := newEnv(t, sandbox.Config{CompleteAfter: sandbox.CompleteImmediately, CallbackDropRate: 1})
	run, uids := e.submitted(t, "down", 6)
	e.waitTerminal(t, uids)
	r := e.reconciler(t, nil, func(c *reconcile.Config) { c.Concurrency = 1 })
	e.advance(grace + time.Second)
	e.sb.SetDown(true)
	calls := e.sb.Stats().APICalls
	n, err := r.Once(context.Background())
	if err == nil || n != 0 {
		t.Fatalf("Once with the API down: checked %d, err %v; want the pass to stop at the first failure", n, err)
	}
	if made := e.sb.Stats().APICalls - calls; made != 1 {
		t.Errorf("%d API calls with the API down, want 1 (the pass stops at the first failure)", made)
	}
	if !errors.Is(err, refonte.ErrServer) {
		t.Errorf("error %v does not match refonte.ErrServer", err)
	}
	for _, uid := range uids {
		if j := e.job(t, uid); j.State != store.JobSubmitted {
			t.Fatalf("job %s is %s with the API down", uid, j.State)
		}
	}
	e.sb.SetDown(false)
	if n := once(t, r); n != len(uids) {
		t.Fatalf("polled %d after the API came back, want %d", n, len(uids))
	}
	if got := e.run(t, run.ID); got.Completed != int64(len(uids)) {
		t.Fatalf("run %+v", got.Counters)
	}
}

func TestOverlappingPassesKeepCountersExact(t *testing.T) {
	e := newEnv(t, sandbox.Config{CompleteAfter: sandbox.CompleteImmediately, CallbackDropRate: 1})
	run, uids := e.submitted(t, "overlap", 30)
	e.waitTerminal(t, uids)
	rs := []*reconcile.Reconciler{e.reconciler(t, nil, nil), e.reconciler(t, nil, nil), e.reconciler(t, nil, nil)}
	e.advance(grace + time.Second)
	var (
		wg    sync.WaitGroup
		total atomic.Int64
	)
	for _, r := range rs {
		wg.Go(func() {
			n, err := r.Once(context.Background())
			if err != nil {
				t.Error(err)
			}
			total.Add(int64(n))
		})
	}
	wg.Wait()
	if got := total.Load(); got != int64(len(uids)) {
		t.Errorf("%d polls by 3 overlapping passes, want %d (each job once)", got, len(uids))
	}
	if got := e.run(t, run.ID); got.Completed != int64(len(uids)) || got.Submitted != int64(len(uids)) || got.State != store.RunDone {
		t.Fatalf("run %s %+v", got.State, got.Counters)
	}
}

func TestRunLoopsUntilContextEnds(t *testing.T) {
	e := newEnv(t, sandbox.Config{CompleteAfter: sandbox.CompleteImmediately, CallbackDropRate: 1})
	run, uids := e.submitted(t, "loop", 3)
	e.waitTerminal(t, uids)
	r := e.reconciler(t, nil, func(c *reconcile.Config) { c.Interval = 10 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	e.advance(grace + time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for e.run(t, run.ID).State != store.RunDone {
		if time.Now().After(deadline) {
			t.Fatal("run not done in 10s of reconciler passes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run returned %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestNewConfig(t *testing.T) {
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialed
	st := store.New(down, store.Options{})
	test, err := refonte.NewClient(sandbox.DefaultTestKey)
	if err != nil {
		t.Fatal(err)
	}
	lim, err := ratelimit.NewRedis(down, ratelimit.Config{Rate: 1, Name: "new-config"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  reconcile.Config
		ok   bool
	}{
		{"no store", reconcile.Config{Clients: map[refonte.Mode]*refonte.Client{refonte.ModeTest: test}, Limiters: map[refonte.Mode]ratelimit.Limiter{refonte.ModeTest: lim}}, false},
		{"no client", reconcile.Config{Store: st}, false},
		{"no limiter", reconcile.Config{Store: st, Clients: map[refonte.Mode]*refonte.Client{refonte.ModeTest: test}}, false},
		{"client of the other mode", reconcile.Config{Store: st, Clients: map[refonte.Mode]*refonte.Client{refonte.ModeLive: test}, Limiters: map[refonte.Mode]ratelimit.Limiter{refonte.ModeLive: lim}}, false},
		{"negative grace", reconcile.Config{Store: st, Grace: -1, Clients: map[refonte.Mode]*refonte.Client{refonte.ModeTest: test}, Limiters: map[refonte.Mode]ratelimit.Limiter{refonte.ModeTest: lim}}, false},
		{"ok", reconcile.Config{Store: st, Clients: map[refonte.Mode]*refonte.Client{refonte.ModeTest: test}, Limiters: map[refonte.Mode]ratelimit.Limiter{refonte.ModeTest: lim}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := reconcile.New(tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
