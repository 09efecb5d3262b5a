package submit

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap/zaptest"

	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/ratelimit"
	"github.com/refonte-ai/refonte-batch/refonte"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

// hookLimiter is a limiter that runs a hook in Wait: an operator acting
// while a job waits for its rate-limit slot.
type hookLimiter struct{ wait func() }

func (l hookLimiter) Wait(context.Context) error {
	if l.wait != nil {
		l.wait()
	}
	return nil
}
func (hookLimiter) Reserve(context.Context) (time.Duration, error) { return 0, nil }
func (hookLimiter) Cooldown(context.Context, time.Duration) error  { return nil }

// controlEnv is a handler whose API calls go through a hook in front of
// the sandbox (onCreate runs before a create reaches it) and whose limiter
// runs onWait.
type controlEnv struct {
	st       *store.Store
	sb       *sandbox.Server
	h        *Handler
	onCreate atomic.Pointer[func()]
	onWait   atomic.Pointer[func()]
}

func newControlEnv(t *testing.T) *controlEnv {
	t.Helper()
	st, _ := newStore(t)
	sb := sandbox.New(sandbox.Config{TestKey: testKey, LiveKey: liveKey, CallbackAuthKey: cbKey, NoAutoComplete: true})
	e := &controlEnv{st: st, sb: sb}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := e.onCreate.Load(); f != nil && r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/task/imageannotation") {
			(*f)()
		}
		sb.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { ts.Close(); sb.Close() })
	lim := hookLimiter{wait: func() {
		if f := e.onWait.Load(); f != nil {
			(*f)()
		}
	}}
	h, err := New(Options{Store: st, Clients: map[refonte.Mode]*refonte.Client{refonte.ModeTest: newClient(t, testKey, ts.URL+"/v1")},
		Limiters: map[refonte.Mode]ratelimit.Limiter{refonte.ModeTest: lim}, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	return e
}

func (e *controlEnv) once(p *atomic.Pointer[func()], f func()) {
	g := func() {
		p.Store(nil)
		f()
	}
	p.Store(&g)
}

// TestProcessTaskRunControl: a cancel or pause before the job's check,
// during its rate-limit wait, and during its create (in flight).
func TestProcessTaskRunControl(t *testing.T) {
	ctx := context.Background()
	cancel := func(t *testing.T, st *store.Store, run string, tasks bool) {
		if err := st.RequestCancel(ctx, run, tasks); err != nil {
			t.Error(err)
		}
	}
	pause := func(t *testing.T, st *store.Store, run string) {
		if _, err := st.SetOperatorPaused(ctx, run, true); err != nil {
			t.Error(err)
		}
	}
	tests := []struct {
		name string
		// act sets up the operator's action on e for the run.
		act         func(t *testing.T, e *controlEnv, run string)
		wantErr     Reason // "" for nil
		wantState   store.JobState
		wantCreates int64
		wantAPI     refonte.TaskStatus // the task's status at the API ("" for none)
		wantRun     store.RunState
	}{
		{"canceled before the check", func(t *testing.T, e *controlEnv, run string) { cancel(t, e.st, run, false) },
			"", store.JobCanceled, 0, "", store.RunCanceled},
		{"canceled during the rate-limit wait", func(t *testing.T, e *controlEnv, run string) {
			e.once(&e.onWait, func() { cancel(t, e.st, run, false) })
		}, "", store.JobCanceled, 0, "", store.RunCanceled},
		{"canceled during the create", func(t *testing.T, e *controlEnv, run string) {
			e.once(&e.onCreate, func() { cancel(t, e.st, run, false) })
		}, "", store.JobSubmitted, 1, refonte.StatusPending, store.RunCanceling},
		{"canceled with -tasks during the create", func(t *testing.T, e *controlEnv, run string) {
			e.once(&e.onCreate, func() { cancel(t, e.st, run, true) })
		}, "", store.JobCanceled, 1, refonte.StatusCanceled, store.RunCanceled},
		{"paused before the check", func(t *testing.T, e *controlEnv, run string) { pause(t, e.st, run) },
			ReasonOperatorPaused, store.JobEnqueued, 0, "", store.RunPaused},
		{"paused during the rate-limit wait", func(t *testing.T, e *controlEnv, run string) {
			e.once(&e.onWait, func() { pause(t, e.st, run) })
		}, ReasonOperatorPaused, store.JobEnqueued, 0, "", store.RunPaused},
		{"paused during the create", func(t *testing.T, e *controlEnv, run string) {
			e.once(&e.onCreate, func() { pause(t, e.st, run) })
		}, "", store.JobSubmitted, 1, refonte.StatusPending, store.RunPaused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newControlEnv(t)
			run, tasks := addRun(t, e.st, refonte.ModeTest, 1, nil)
			tc.act(t, e, run.ID)
			err := e.h.ProcessTask(ctx, tasks[0])
			var re *RescheduleError
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("ProcessTask = %v", err)
			case tc.wantErr != "" && (!errors.As(err, &re) || re.Reason != tc.wantErr || IsFailure(err) || re.Delay < time.Minute):
				t.Fatalf("ProcessTask = %v, want a %s reschedule of minutes, not a failure", err, tc.wantErr)
			}
			j := job(t, e.st, tasks[0])
			if j.State != tc.wantState {
				t.Fatalf("job = %s, want %s", j.State, tc.wantState)
			}
			if s := e.sb.Stats(); s.CreateCalls != tc.wantCreates {
				t.Fatalf("create calls = %d, want %d", s.CreateCalls, tc.wantCreates)
			}
			if tc.wantAPI != "" {
				task, ok := e.sb.Task(refonte.ModeTest, j.TaskID)
				if !ok || task.Status != tc.wantAPI {
					t.Fatalf("task at the API = %+v, want %s", task, tc.wantAPI)
				}
			}
			r, err := e.st.GetRun(ctx, run.ID)
			if err != nil || r.State != tc.wantRun {
				t.Fatalf("run = %+v, %v; want %s", r, err, tc.wantRun)
			}
			if tc.wantState == store.JobCanceled && tc.wantCreates == 1 && r.CanceledAfterSubmit() != 1 {
				t.Fatalf("canceled after submission = %d", r.CanceledAfterSubmit())
			}
			if tc.wantState == store.JobCanceled && tc.wantCreates == 0 && r.CanceledBeforeSubmit != 1 {
				t.Fatalf("canceled before submission = %d", r.CanceledBeforeSubmit)
			}
			if tc.wantErr == ReasonOperatorPaused {
				// Resumed: the next delivery creates the task.
				if _, err := e.st.SetOperatorPaused(ctx, run.ID, false); err != nil {
					t.Fatal(err)
				}
				if err := e.h.ProcessTask(ctx, tasks[0]); err != nil {
					t.Fatalf("after resume: %v", err)
				}
				if j := job(t, e.st, tasks[0]); j.State != store.JobSubmitted {
					t.Fatalf("after resume: job %s", j.State)
				}
			}
		})
	}
}

// TestProcessTaskCanceledAfterCrash: a worker reserved the create and
// died; the run is then canceled. The redelivery looks the task up: found,
// it is recorded and (-tasks) canceled at the API; not found, the row is
// canceled without a task.
func TestProcessTaskCanceledAfterCrash(t *testing.T) {
	ctx := context.Background()
	for _, created := range []bool{true, false} {
		e := newControlEnv(t)
		run, tasks := addRun(t, e.st, refonte.ModeTest, 1, nil)
		p, _ := jobs.DecodeSubmitPayload(tasks[0].Payload())
		if c, err := e.st.CheckSubmit(ctx, refonte.ModeTest, p.UniqueID, true); err != nil || c.Verdict != store.SubmitGo {
			t.Fatal(c, err)
		}
		if created { // the dead worker's create reached the API
			params := rowParams(0)
			params["unique_id"] = p.UniqueID
			if _, err := newClient(t, testKey, e.h.opts.Clients[refonte.ModeTest].BaseURL()).CreateTask(ctx, refonte.TypeImageAnnotation, params); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.st.RequestCancel(ctx, run.ID, true); err != nil {
			t.Fatal(err)
		}
		if sw, err := e.st.CancelRun(ctx, run.ID); err != nil || sw.InFlight != 1 {
			t.Fatalf("sweep = %+v, %v", sw, err)
		}
		if err := e.h.ProcessTask(ctx, tasks[0]); err != nil {
			t.Fatalf("created %v: ProcessTask = %v", created, err)
		}
		r, _ := e.st.GetRun(ctx, run.ID)
		if r.State != store.RunCanceled || (created && r.CanceledAfterSubmit() != 1) || (!created && r.CanceledBeforeSubmit != 1) {
			t.Fatalf("created %v: run = %s %+v", created, r.State, r.Counters)
		}
		if s := e.sb.Stats(); (created && s.TasksCreated != 1) || (!created && s.CreateCalls != 0) {
			t.Fatalf("created %v: sandbox = %+v", created, s)
		}
	}
}

// TestProcessCancel: the workers' cancel at the API of a canceled run's
// task, and a 400 (the task finished first) keeping the real result.
func TestProcessCancel(t *testing.T) {
	ctx := context.Background()
	e := newControlEnv(t)
	run, tasks := addRun(t, e.st, refonte.ModeTest, 3, nil)
	for _, task := range tasks {
		if err := e.h.ProcessTask(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	// Row 2's task completes at the API, its callback not yet received.
	j1 := job(t, e.st, tasks[1])
	if !e.sb.Complete(refonte.ModeTest, j1.TaskID) {
		t.Fatal("sandbox Complete")
	}
	// Row 3 is shared with a live run.
	p2, _ := jobs.DecodeSubmitPayload(tasks[2].Payload())
	other := &store.Run{Dataset: "x", Mode: refonte.ModeTest}
	if err := e.st.CreateRun(ctx, other); err != nil {
		t.Fatal(err)
	}
	j2 := job(t, e.st, tasks[2])
	if _, err := e.st.AddJobs(ctx, other, []store.NewJob{{Line: 1, UniqueID: p2.UniqueID, TaskType: refonte.TypeImageAnnotation,
		AsynqType: jobs.TypeSubmit, Queue: jobs.Queue(refonte.ModeTest), TaskID: jobs.TaskID(refonte.ModeTest, p2.UniqueID)}}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.RequestCancel(ctx, run.ID, true); err != nil {
		t.Fatal(err)
	}
	sw, err := e.st.CancelRun(ctx, run.ID)
	if err != nil || len(sw.Submitted) != 2 || sw.Shared != 1 {
		t.Fatalf("sweep = %+v, %v", sw, err)
	}
	uids := append(sw.Submitted, p2.UniqueID)
	for _, uid := range uids {
		task, err := jobs.NewCancelTask(jobs.CancelPayload{Run: run.ID, UniqueID: uid, Mode: refonte.ModeTest})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.h.ProcessCancel(ctx, asynq.NewTask(task.Type(), task.Payload())); err != nil {
			t.Fatalf("ProcessCancel %s: %v", uid, err)
		}
	}
	if j := job(t, e.st, tasks[0]); j.State != store.JobCanceled {
		t.Fatalf("row 1 = %s, want canceled", j.State)
	}
	if j := job(t, e.st, tasks[1]); j.State != store.JobCompleted {
		t.Fatalf("row 2 = %s, want its real result completed", j.State)
	}
	if task, _ := e.sb.Task(refonte.ModeTest, j2.TaskID); task.Status != refonte.StatusPending {
		t.Fatalf("shared row's task = %s, want pending (a live run needs it)", task.Status)
	}
	r, _ := e.st.GetRun(ctx, run.ID)
	if r.State != store.RunCanceling || r.Completed != 1 || r.CanceledAfterSubmit() != 1 {
		t.Fatalf("run = %s %+v", r.State, r.Counters)
	}
	// Again: nothing more at the API.
	before := e.sb.CountByStatus(refonte.ModeTest)
	task, _ := jobs.NewCancelTask(jobs.CancelPayload{Run: run.ID, UniqueID: uids[0], Mode: refonte.ModeTest})
	if err := e.h.ProcessCancel(ctx, task); err != nil {
		t.Fatal(err)
	}
	if after := e.sb.CountByStatus(refonte.ModeTest); after[refonte.StatusCanceled] != before[refonte.StatusCanceled] {
		t.Fatalf("a repeated cancel changed the API: %v -> %v", before, after)
	}
}

// TestProcessTaskRetryOfCanceledTaskCreatesAgain: enqueue retry of a row
// whose task was canceled at the API clears that task's unique_id and
// creates a new task.
func TestProcessTaskRetryOfCanceledTaskCreatesAgain(t *testing.T) {
	e := newEnv(t, sandbox.Config{}, nil)
	_, tasks := addRun(t, e.st, refonte.ModeTest, 1, nil)
	ctx := context.Background()
	if err := e.h.ProcessTask(ctx, tasks[0]); err != nil {
		t.Fatal(err)
	}
	j := job(t, e.st, tasks[0])
	old, err := e.clients[refonte.ModeTest].CancelTask(ctx, j.TaskID, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Complete(ctx, refonte.ModeTest, j.UniqueID, store.TaskOutcome(old)); err != nil {
		t.Fatal(err)
	}
	if tr, err := e.st.Requeue(ctx, refonte.ModeTest, j.UniqueID); err != nil || !tr.Changed {
		t.Fatalf("Requeue = %+v, %v", tr, err)
	}
	if err := e.h.ProcessTask(ctx, tasks[0]); err != nil {
		t.Fatalf("ProcessTask of the re-queued job: %v", err)
	}
	j2 := job(t, e.st, tasks[0])
	if j2.State != store.JobSubmitted || j2.TaskID == "" || j2.TaskID == j.TaskID {
		t.Fatalf("re-queued job = %s %q, want submitted with a new task (old %q)", j2.State, j2.TaskID, j.TaskID)
	}
}
