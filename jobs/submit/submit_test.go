package submit

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
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

// env is one handler under test with its store, sandbox and clients.
type env struct {
	st      *store.Store
	sb      *sandbox.Server
	baseURL string
	h       *Handler
	clients map[refonte.Mode]*refonte.Client
}

func newEnv(t *testing.T, sbCfg sandbox.Config, mutate func(*Options)) *env {
	t.Helper()
	st, _ := newStore(t)
	sb, base := newSandbox(t, sbCfg)
	e := &env{st: st, sb: sb, baseURL: base, clients: map[refonte.Mode]*refonte.Client{
		refonte.ModeTest: newClient(t, testKey, base),
		refonte.ModeLive: newClient(t, liveKey, base),
	}}
	opts := Options{Store: st, Clients: e.clients, Logger: zaptest.NewLogger(t)}
	if mutate != nil {
		mutate(&opts)
	}
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	return e
}

func TestProcessTaskSuccessAndRedelivery(t *testing.T) {
	e := newEnv(t, sandbox.Config{}, func(o *Options) { o.CallbackURL = "http://127.0.0.1:1/callback" })
	run, tasks := addRun(t, e.st, refonte.ModeTest, 1, nil)
	ctx := context.Background()
	if err := e.h.ProcessTask(ctx, tasks[0]); err != nil {
		t.Fatalf("ProcessTask: %v", err)
	}
	j := job(t, e.st, tasks[0])
	if j.State != store.JobSubmitted || j.TaskID == "" || j.Attempts != 1 {
		t.Fatalf("job after submit = state %s task %q attempts %d, want submitted with a task id and 1 attempt", j.State, j.TaskID, j.Attempts)
	}
	got, ok := e.sb.Task(refonte.ModeTest, j.TaskID)
	if !ok {
		t.Fatalf("task %s not at the sandbox", j.TaskID)
	}
	if got.UniqueID != j.UniqueID || got.CallbackURL != "http://127.0.0.1:1/callback" {
		t.Errorf("created task unique_id %q callback %q", got.UniqueID, got.CallbackURL)
	}
	if !strings.Contains(string(got.Metadata), `"refonte_batch":{"line":1,"run":"`+run.ID+`"}`) {
		t.Errorf("metadata %s lacks the run and line", got.Metadata)
	}
	// Redelivery (crash after the submit was recorded, shutdown overlap): nothing to do.
	before := e.sb.Stats().CreateCalls
	if err := e.h.ProcessTask(ctx, tasks[0]); err != nil {
		t.Fatalf("redelivery: %v", err)
	}
	if s := e.sb.Stats(); s.CreateCalls != before || s.TasksCreated != 1 {
		t.Errorf("redelivery called the API: create_calls %d -> %d, tasks_created %d", before, s.CreateCalls, s.TasksCreated)
	}
}

// TestProcessTaskCreatedAlreadyTerminal: the API answers the create with a
// task that is already finished (the sandbox completing at once); the job
// is recorded completed from that answer alone, with its attempt, task and
// response, and the run is done even though no callback is received.
func TestProcessTaskCreatedAlreadyTerminal(t *testing.T) {
	e := newEnv(t, sandbox.Config{CompleteAfter: sandbox.CompleteImmediately}, nil)
	run, tasks := addRun(t, e.st, refonte.ModeTest, 2, nil)
	ctx := context.Background()
	for _, task := range tasks {
		if err := e.h.ProcessTask(ctx, task); err != nil {
			t.Fatalf("ProcessTask: %v", err)
		}
	}
	for _, task := range tasks {
		j := job(t, e.st, task)
		if j.State != store.JobCompleted || j.TaskID == "" || j.Attempts != 1 || j.Status != refonte.StatusCompleted ||
			len(j.Response) == 0 {
			t.Fatalf("job = %+v; want completed with its task, status, response and 1 attempt", j)
		}
		if _, err := e.st.UniqueIDByTaskID(ctx, refonte.ModeTest, j.TaskID); err != nil {
			t.Errorf("task %s not indexed: %v", j.TaskID, err)
		}
	}
	got, err := e.st.GetRun(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.RunDone || got.Submitted != 2 || got.Completed != 2 {
		t.Fatalf("run = %s submitted %d completed %d; want done, 2, 2", got.State, got.Submitted, got.Completed)
	}
}

// TestProcessTaskCreatedInErrorStoresTheReason: a task answered already in
// status error is stored as the callback and the reconciler store it
// (store.TaskOutcome): the API's reason as the error, not the raw response.
func TestProcessTaskCreatedInErrorStoresTheReason(t *testing.T) {
	e := newEnv(t, sandbox.Config{CompleteAfter: sandbox.CompleteImmediately}, nil)
	_, tasks := addRun(t, e.st, refonte.ModeTest, 1, func(i int) map[string]any {
		p := rowParams(i)
		p["attachment"] = "https://example.com/sandbox-error.jpg" // the sandbox ends it in error
		return p
	})
	if err := e.h.ProcessTask(context.Background(), tasks[0]); err != nil {
		t.Fatalf("ProcessTask: %v", err)
	}
	j := job(t, e.st, tasks[0])
	task, ok := e.sb.Task(refonte.ModeTest, j.TaskID)
	if !ok || task.Status != refonte.StatusError {
		t.Fatalf("sandbox task %q = %+v, want one in status error", j.TaskID, task)
	}
	want := store.TaskOutcome(task)
	if j.State != store.JobFailed || j.Error != want.Error || want.Error != "attachment could not be downloaded (sandbox-error)" {
		t.Fatalf("job = %s %q; want failed with the API's reason %q", j.State, j.Error, want.Error)
	}
}

func TestProcessTaskConflictResolvesToExistingTask(t *testing.T) {
	e := newEnv(t, sandbox.Config{}, nil)
	_, tasks := addRun(t, e.st, refonte.ModeTest, 1, nil)
	p, _ := jobs.DecodeSubmitPayload(tasks[0].Payload())
	// A crashed pod created the task but never recorded it.
	params, err := buildParams(p, "")
	if err != nil {
		t.Fatal(err)
	}
	first, err := e.clients[refonte.ModeTest].CreateTask(context.Background(), p.TaskType, params)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.h.ProcessTask(context.Background(), tasks[0]); err != nil {
		t.Fatalf("ProcessTask: %v", err)
	}
	j := job(t, e.st, tasks[0])
	if j.State != store.JobSubmitted || j.TaskID != first.ID {
		t.Fatalf("job = %s %q, want submitted with the existing task %q", j.State, j.TaskID, first.ID)
	}
	if s := e.sb.Stats(); s.TasksCreated != 1 || s.DuplicateUniqueID != 1 || s.UniqueIDsCreatedTwice != 0 {
		t.Errorf("sandbox stats %+v: want 1 task, one 409, no duplicate", s)
	}
}

func TestProcessTaskPermanentErrorFailsJob(t *testing.T) {
	e := newEnv(t, sandbox.Config{}, nil)
	_, tasks := addRun(t, e.st, refonte.ModeTest, 1, func(i int) map[string]any {
		p := rowParams(i)
		delete(p, "attachment") // the sandbox answers 400
		return p
	})
	err := e.h.ProcessTask(context.Background(), tasks[0])
	if !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("ProcessTask = %v, want SkipRetry", err)
	}
	j := job(t, e.st, tasks[0])
	if j.State != store.JobFailed || !strings.Contains(j.Error, "400") || !strings.Contains(j.Error, "attachment") {
		t.Fatalf("job = %s %q, want failed with the API's 400 message", j.State, j.Error)
	}
}

// TestProcessTaskAPIAnswerClassifiedOnce: the handler and the client share
// one classifier (refonte.Retryable): every API answer it calls final fails
// the row at once with the API's message, including statuses without a
// sentinel (403, 413, 422); transient ones go back to asynq.
func TestProcessTaskAPIAnswerClassifiedOnce(t *testing.T) {
	for _, tc := range []struct {
		status    int
		permanent bool
	}{
		{http.StatusForbidden, true},
		{http.StatusRequestEntityTooLarge, true},
		{http.StatusUnprocessableEntity, true},
		{http.StatusBadRequest, true},
		{http.StatusServiceUnavailable, false},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			msg := "the API's own words for " + strconv.Itoa(tc.status)
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_ = json.NewEncoder(w).Encode(map[string]any{"status_code": tc.status, "error": msg})
			}))
			t.Cleanup(ts.Close)
			st, _ := newStore(t)
			c, err := refonte.NewClient(testKey, refonte.WithBaseURL(ts.URL+"/v1"),
				refonte.WithRetry(refonte.RetryPolicy{MaxAttempts: 1}))
			if err != nil {
				t.Fatal(err)
			}
			h, err := New(Options{Store: st, Clients: map[refonte.Mode]*refonte.Client{refonte.ModeTest: c},
				Logger: zaptest.NewLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			_, tasks := addRun(t, st, refonte.ModeTest, 1, nil)
			err = h.ProcessTask(context.Background(), tasks[0])
			if got := errors.Is(err, asynq.SkipRetry); got != tc.permanent {
				t.Fatalf("ProcessTask = %v: SkipRetry %v, want %v", err, got, tc.permanent)
			}
			j := job(t, st, tasks[0])
			wantState := store.JobEnqueued
			if tc.permanent {
				wantState = store.JobFailed
			}
			if j.State != wantState || !strings.Contains(j.Error, msg) {
				t.Fatalf("job = %s %q, want %s with the API's message", j.State, j.Error, wantState)
			}
		})
	}
}

func TestProcessTaskModeMismatch(t *testing.T) {
	e := newEnv(t, sandbox.Config{}, func(o *Options) {
		o.Clients = map[refonte.Mode]*refonte.Client{refonte.ModeTest: o.Clients[refonte.ModeTest]}
	})
	_, tasks := addRun(t, e.st, refonte.ModeLive, 1, nil)
	err := e.h.ProcessTask(context.Background(), tasks[0])
	if !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("ProcessTask = %v, want SkipRetry", err)
	}
	if j := job(t, e.st, tasks[0]); j.State != store.JobFailed || !strings.Contains(j.Error, "mode mismatch") {
		t.Fatalf("job = %s %q, want failed: mode mismatch", j.State, j.Error)
	}
	if s := e.sb.Stats(); s.CreateCalls != 0 {
		t.Errorf("create_calls = %d, want 0 (never the other mode's key)", s.CreateCalls)
	}
}

func TestProcessTaskBadPayload(t *testing.T) {
	e := newEnv(t, sandbox.Config{}, nil)
	err := e.h.ProcessTask(context.Background(), asynq.NewTask(jobs.TypeSubmit, []byte(`{"v":1`)))
	if !errors.Is(err, asynq.SkipRetry) || !IsFailure(err) {
		t.Fatalf("ProcessTask = %v, want a SkipRetry failure", err)
	}
}

func TestProcessTaskTransientThenSuccess(t *testing.T) {
	e := newEnv(t, sandbox.Config{}, nil)
	_, tasks := addRun(t, e.st, refonte.ModeTest, 1, nil)
	e.sb.SetDown(true)
	err := e.h.ProcessTask(context.Background(), tasks[0])
	if err == nil || errors.Is(err, asynq.SkipRetry) || !IsFailure(err) {
		t.Fatalf("ProcessTask while the API is down = %v, want a retryable failure", err)
	}
	if d := RetryDelay(0, err, tasks[0]); d < 500*time.Millisecond || d > 2*time.Second {
		t.Errorf("first retry delay %s, want about 1s", d)
	}
	if j := job(t, e.st, tasks[0]); j.State != store.JobEnqueued || j.Error == "" {
		t.Fatalf("job = %s %q, want still enqueued with the last error", j.State, j.Error)
	}
	e.sb.SetDown(false)
	if err := e.h.ProcessTask(context.Background(), tasks[0]); err != nil {
		t.Fatalf("ProcessTask after recovery: %v", err)
	}
	if j := job(t, e.st, tasks[0]); j.State != store.JobSubmitted {
		t.Fatalf("job = %s, want submitted", j.State)
	}
}

// tooMany answers 429 with Retry-After 3 to every create.
func tooMany(t *testing.T) string {
	t.Helper()
	var calls atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", "3")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"status_code":429,"error":"too many requests"}`))
	}))
	t.Cleanup(ts.Close)
	return ts.URL + "/v1"
}

func TestProcessTaskRateLimitedCoolsDownWithoutFailure(t *testing.T) {
	st, rdb := newStore(t)
	base := tooMany(t)
	c, err := refonte.NewClient(testKey, refonte.WithBaseURL(base),
		refonte.WithRetry(refonte.RetryPolicy{MaxAttempts: 1}))
	if err != nil {
		t.Fatal(err)
	}
	lim, err := ratelimit.NewRedis(rdb, ratelimit.Config{Rate: 100, Burst: 1, Name: "test:" + ratelimit.KeyFingerprint(testKey)})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{Store: st, Clients: map[refonte.Mode]*refonte.Client{refonte.ModeTest: c},
		Limiters: map[refonte.Mode]ratelimit.Limiter{refonte.ModeTest: lim}, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	_, tasks := addRun(t, st, refonte.ModeTest, 1, nil)
	err = h.ProcessTask(context.Background(), tasks[0])
	var re *RescheduleError
	if !errors.As(err, &re) || re.Reason != ReasonCooldown || IsFailure(err) {
		t.Fatalf("ProcessTask = %v, want a cooldown reschedule that is not a failure", err)
	}
	if d := RetryDelay(0, err, tasks[0]); d != 3*time.Second {
		t.Errorf("retry delay %s, want the Retry-After 3s", d)
	}
	delay, err := lim.Reserve(context.Background())
	if err != nil || delay < 2*time.Second {
		t.Errorf("limiter Reserve after the 429 = %s, %v; want a shared cooldown of about 3s", delay, err)
	}
	if j := job(t, st, tasks[0]); j.State != store.JobEnqueued {
		t.Errorf("job = %s, want still enqueued", j.State)
	}
	if n, err := st.Recent429(context.Background(), refonte.ModeTest, time.Now(), 5*time.Minute); err != nil || n != 1 {
		t.Errorf("Recent429 = %d, %v; want the 429 counted for the console", n, err)
	}
}

func TestProcessTaskLimiterWaitReschedules(t *testing.T) {
	e := newEnv(t, sandbox.Config{}, nil)
	_, rdb := newStore(t)
	lim, err := ratelimit.NewRedis(rdb, ratelimit.Config{Rate: 0.1, Burst: 1, Name: "test:x"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{Store: e.st, Clients: e.clients, MaxLimiterWait: 50 * time.Millisecond,
		Limiters: map[refonte.Mode]ratelimit.Limiter{refonte.ModeTest: lim}, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	_, tasks := addRun(t, e.st, refonte.ModeTest, 2, nil)
	if err := h.ProcessTask(context.Background(), tasks[0]); err != nil {
		t.Fatalf("first row: %v", err)
	}
	err = h.ProcessTask(context.Background(), tasks[1])
	var re *RescheduleError
	if !errors.As(err, &re) || re.Reason != ReasonRateLimited || IsFailure(err) || re.Delay < 5*time.Second {
		t.Fatalf("second row = %v, want a rate-limited reschedule of ~10s that is not a failure", err)
	}
	if s := e.sb.Stats(); s.CreateCalls != 1 {
		t.Errorf("create_calls = %d, want 1", s.CreateCalls)
	}
}

func TestProcessTaskLiveDailyLimitPauses(t *testing.T) {
	e := newEnv(t, sandbox.Config{}, func(o *Options) { o.LiveDailyLimit = 1 })
	run, tasks := addRun(t, e.st, refonte.ModeLive, 2, nil)
	ctx := context.Background()
	if err := e.h.ProcessTask(ctx, tasks[0]); err != nil {
		t.Fatalf("first live row: %v", err)
	}
	err := e.h.ProcessTask(ctx, tasks[1])
	var re *RescheduleError
	if !errors.As(err, &re) || re.Reason != ReasonPaused || IsFailure(err) || re.Delay > PausedRecheck {
		t.Fatalf("second live row = %v, want a paused reschedule within a minute, not a failure", err)
	}
	r, err := e.st.GetRun(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	wantReason := "live daily limit 1 reached for " + time.Now().UTC().Format(time.DateOnly) + " UTC"
	if r.State != store.RunPaused || r.PausedReason != wantReason {
		t.Fatalf("run = %s %q, want paused %q", r.State, r.PausedReason, wantReason)
	}
	if j := job(t, e.st, tasks[1]); j.State != store.JobEnqueued {
		t.Fatalf("paused job = %s, want enqueued", j.State)
	}
	if s := e.sb.Stats(); s.TasksCreated != 1 {
		t.Fatalf("tasks_created = %d, want 1", s.TasksCreated)
	}
	// Raise the cap (with room to spare: a run stays shown paused until a
	// submission leaves room under the cap).
	e.h.SetLiveDailyLimit(3)
	if err := e.h.ProcessTask(ctx, tasks[1]); err != nil {
		t.Fatalf("after raising the cap: %v", err)
	}
	if r, _ := e.st.GetRun(ctx, run.ID); r.State == store.RunPaused {
		t.Errorf("run still paused after the cap was raised")
	}
	if n, _ := e.st.LiveSpend(ctx, time.Now()); n != 2 {
		t.Errorf("live spend = %d, want 2", n)
	}
}

func TestProcessTaskLivePermanentErrorReleasesReservation(t *testing.T) {
	e := newEnv(t, sandbox.Config{}, func(o *Options) { o.LiveDailyLimit = 5 })
	_, tasks := addRun(t, e.st, refonte.ModeLive, 1, func(i int) map[string]any {
		p := rowParams(i)
		delete(p, "geometries")
		return p
	})
	if err := e.h.ProcessTask(context.Background(), tasks[0]); !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("ProcessTask = %v, want SkipRetry", err)
	}
	if n, _ := e.st.LiveSpend(context.Background(), time.Now()); n != 0 {
		t.Errorf("live spend after a 400 = %d, want 0 (reservation released)", n)
	}
}

func TestProcessTaskRetryOfErroredTaskCreatesAgain(t *testing.T) {
	e := newEnv(t, sandbox.Config{}, nil)
	_, tasks := addRun(t, e.st, refonte.ModeTest, 1, func(i int) map[string]any {
		p := rowParams(i)
		p["attachment"] = "https://example.com/sandbox-error.jpg"
		return p
	})
	ctx := context.Background()
	if err := e.h.ProcessTask(ctx, tasks[0]); err != nil {
		t.Fatal(err)
	}
	j := job(t, e.st, tasks[0])
	if !e.sb.Complete(refonte.ModeTest, j.TaskID) {
		t.Fatal("sandbox Complete failed")
	}
	old, _ := e.sb.Task(refonte.ModeTest, j.TaskID)
	if old.Status != refonte.StatusError {
		t.Fatalf("sandbox task status %s, want error", old.Status)
	}
	if _, err := e.st.Complete(ctx, refonte.ModeTest, j.UniqueID, store.TaskOutcome(old)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Requeue(ctx, refonte.ModeTest, j.UniqueID); err != nil {
		t.Fatal(err)
	}
	if err := e.h.ProcessTask(ctx, tasks[0]); err != nil {
		t.Fatalf("ProcessTask of the re-queued job: %v", err)
	}
	j2 := job(t, e.st, tasks[0])
	if j2.State != store.JobSubmitted || j2.TaskID == "" || j2.TaskID == j.TaskID {
		t.Fatalf("re-queued job = %s %q, want submitted with a new task (old %q)", j2.State, j2.TaskID, j.TaskID)
	}
	if s := e.sb.Stats(); s.TasksCreated != 2 || s.UniqueIDsCreatedTwice != 0 {
		t.Errorf("sandbox stats %+v: want 2 tasks, no duplicate", s)
	}
}

func TestRetryDelay(t *testing.T) {
	cases := []struct {
		n        int
		err      error
		min, max time.Duration
	}{
		{0, errors.New("x"), 750 * time.Millisecond, 1250 * time.Millisecond},
		{1, errors.New("x"), 1500 * time.Millisecond, 2500 * time.Millisecond},
		{3, errors.New("x"), 6 * time.Second, 10 * time.Second},
		{30, errors.New("x"), 225 * time.Second, 375 * time.Second},
		{5, &RescheduleError{Reason: ReasonRateLimited, Delay: 1500 * time.Millisecond}, 1500 * time.Millisecond, 1500 * time.Millisecond},
	}
	for _, c := range cases {
		for range 20 {
			if d := RetryDelay(c.n, c.err, nil); d < c.min || d > c.max {
				t.Errorf("RetryDelay(%d, %v) = %s, want in [%s, %s]", c.n, c.err, d, c.min, c.max)
			}
		}
	}
	if IsFailure(nil) || IsFailure(&RescheduleError{}) || !IsFailure(errors.New("x")) {
		t.Error("IsFailure misclassifies")
	}
}

func TestUntilNextUTCDay(t *testing.T) {
	now := time.Date(2026, 11, 27, 23, 59, 30, 0, time.UTC)
	if d := untilNextUTCDay(now); d != 30*time.Second {
		t.Errorf("untilNextUTCDay = %s, want 30s", d)
	}
}

func TestBuildParams(t *testing.T) {
	p := jobs.SubmitPayload{Run: "r1", Line: 7, UniqueID: "u1",
		Params: []byte(`{"attachment":"a","metadata":{"k":1},"priority":12345678901234567890}`)}
	got, err := buildParams(p, "https://cb")
	if err != nil {
		t.Fatal(err)
	}
	if got["unique_id"] != "u1" || got["callback_url"] != "https://cb" {
		t.Errorf("params %v", got)
	}
	md := got["metadata"].(map[string]any)
	if md["k"] == nil || md[MetadataKey] == nil {
		t.Errorf("metadata %v: want the row's keys and ours", md)
	}
	body, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `"priority":12345678901234567890`) {
		t.Errorf("priority lost precision: %s", body)
	}
	p.Params = []byte(`{"callback_url":"https://row"}`)
	if got, _ := buildParams(p, "https://cb"); got["callback_url"] != "https://row" {
		t.Errorf("the row's callback_url was overridden: %v", got["callback_url"])
	}
	p.Params = []byte(`[1]`)
	if _, err := buildParams(p, ""); !errors.Is(err, jobs.ErrBadPayload) {
		t.Errorf("array params: %v, want ErrBadPayload", err)
	}
}

func TestBatchFinalizedOnceWhenAllSubmitted(t *testing.T) {
	e := newEnv(t, sandbox.Config{}, nil)
	ctx := context.Background()
	if _, err := e.clients[refonte.ModeTest].CreateBatch(ctx, refonte.CreateBatchRequest{Project: "demo", Name: "night-1"}); err != nil {
		t.Fatal(err)
	}
	run := &store.Run{ID: store.NewRunID(time.Now()), Dataset: "rows.jsonl", Type: refonte.TypeImageAnnotation,
		Project: "demo", Batch: "night-1", Mode: refonte.ModeTest, CreatedAt: time.Now()}
	_, tasks := addRunWith(t, e.st, run, 3, func(i int) map[string]any {
		p := rowParams(i)
		p["batch"] = "night-1"
		return p
	})
	for i, task := range tasks {
		if err := e.h.ProcessTask(ctx, task); err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
		b, err := e.clients[refonte.ModeTest].GetBatch(ctx, "night-1")
		if err != nil {
			t.Fatal(err)
		}
		wantFinal := i == len(tasks)-1
		if final := b.Status != refonte.BatchStaging; final != wantFinal {
			t.Fatalf("after row %d batch status %s; want finalized only after the last row", i, b.Status)
		}
	}
	r, err := e.st.GetRun(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !r.BatchFinalized {
		t.Error("run not marked batch_finalized")
	}
	// A later transition reporting the run again finalizes nothing more.
	e.h.AfterTransition(ctx, store.Transition{RunsAllSubmitted: []string{run.ID}})
}

// TestProcessTaskClientRetriesWaitForTheSharedLimiter: the API client's own
// retries of a 5xx go through the shared limiter (RetryGate), so they never
// exceed the fleet's rate; a slot too far away reschedules the job.
func TestProcessTaskClientRetriesWaitForTheSharedLimiter(t *testing.T) {
	st, rdb := newStore(t)
	sb, base := newSandbox(t, sandbox.Config{ErrorRate: 1})
	lim, err := ratelimit.NewRedis(rdb, ratelimit.Config{Rate: 0.1, Burst: 1, Name: "test:gate"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := refonte.NewClient(testKey, refonte.WithBaseURL(base), refonte.WithRetry(refonte.RetryPolicy{
		InitialInterval: time.Millisecond, MaxElapsed: 10 * time.Second,
		BeforeRetry: RetryGate(lim, 50*time.Millisecond),
	}))
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{Store: st, Clients: map[refonte.Mode]*refonte.Client{refonte.ModeTest: c},
		MaxLimiterWait: 50 * time.Millisecond, Limiters: map[refonte.Mode]ratelimit.Limiter{refonte.ModeTest: lim},
		Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	_, tasks := addRun(t, st, refonte.ModeTest, 1, nil)
	err = h.ProcessTask(context.Background(), tasks[0])
	var re *RescheduleError
	if !errors.As(err, &re) || re.Reason != ReasonRateLimited || IsFailure(err) || re.Delay < 5*time.Second {
		t.Fatalf("ProcessTask = %v, want a rate-limited reschedule of ~10s that is not a failure", err)
	}
	if s := sb.Stats(); s.CreateCalls != 1 {
		t.Errorf("create_calls = %d, want 1: the client's retry must wait for the limiter's next slot", s.CreateCalls)
	}
	if j := job(t, st, tasks[0]); j.State != store.JobEnqueued {
		t.Errorf("job = %s, want still enqueued", j.State)
	}
}
