package callback_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"

	"github.com/refonte-ai/refonte-batch/internal/testkit"
	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/callback"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

const authKey = refonte.Secret("cb_secret_0123456789")

// newStore returns a store on a private redis-server.
func newStore(t testing.TB) *store.Store {
	t.Helper()
	st, _ := testkit.Store(t, store.Options{})
	return st
}

// addJobs creates a run of mode with one enqueued job per unique_id.
func addJobs(t testing.TB, st *store.Store, mode refonte.Mode, uids ...string) *store.Run {
	t.Helper()
	ctx := context.Background()
	run := &store.Run{Dataset: "test.jsonl", Type: refonte.TypeImageAnnotation, Project: "demo", Mode: mode}
	if err := st.CreateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	const chunk = 5000
	for start := 0; start < len(uids); start += chunk {
		var nj []store.NewJob
		for i, uid := range uids[start:min(start+chunk, len(uids))] {
			nj = append(nj, store.NewJob{
				Line: int64(start + i + 1), UniqueID: uid, TaskType: refonte.TypeImageAnnotation,
				AsynqType: jobs.TypeSubmit, Queue: jobs.Queue(mode), TaskID: jobs.TaskID(mode, uid),
				Payload: []byte(`{"v":1}`), MaxRetry: 3, Timeout: time.Minute,
			})
		}
		if _, err := st.AddJobs(ctx, run, nj); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.FinishEnqueue(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	return run
}

func submit(t testing.TB, st *store.Store, mode refonte.Mode, uid, taskID string) {
	t.Helper()
	if _, err := st.MarkSubmitted(context.Background(), mode, uid, taskID); err != nil {
		t.Fatal(err)
	}
}

// cb describes a callback body.
type cb struct {
	taskID, uid string
	status      refonte.TaskStatus
	live        bool
	noIsTest    bool // drop the task's is_test key
	noUID       bool // drop the unique_id everywhere
	updated     time.Time
	response    string // JSON
}

var base = time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)

func (c cb) body(t testing.TB) []byte {
	t.Helper()
	if c.status == "" {
		c.status = refonte.StatusCompleted
	}
	if c.updated.IsZero() {
		c.updated = base
	}
	if c.response == "" {
		c.response = `{"annotations":[{"label":"car","left":1,"top":2,"width":3,"height":4}]}`
	}
	task := map[string]any{
		"task_id": c.taskID, "type": "imageannotation", "status": c.status,
		"created_at": base.Add(-time.Minute), "updated_at": c.updated, "completed_at": c.updated,
		"project": "demo", "callback_url": "http://127.0.0.1/callback", "callback_succeeded": nil,
		"instruction": "Draw a tight box around every car, bus and truck that is at least half visible; skip reflections and parked trailers.",
		"params":      map[string]any{"attachment": "https://example.com/img/1.jpg", "geometries": map[string]any{"box": map[string]any{"objects_to_annotate": []string{"car"}}}},
		"metadata":    map[string]any{"run": "r20261127-030000-9f3a1c", "line": 1, "source": "datasets/street-scenes-2026-11-26.jsonl"},
		"unique_id":   c.uid, "tags": []string{}, "is_test": !c.live, "response": json.RawMessage(c.response),
	}
	if c.noIsTest {
		delete(task, "is_test")
	}
	if c.noUID {
		delete(task, "unique_id")
	}
	b, err := json.Marshal(map[string]any{
		"task": task, "response": json.RawMessage(c.response), "task_id": c.taskID, "status": c.status,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type env struct {
	st      *store.Store
	srv     *httptest.Server
	reg     *prometheus.Registry
	mu      sync.Mutex
	changed []store.Transition
}

// newEnv starts the handler on a store of its own behind an httptest
// server; each edit changes the handler's Config first.
func newEnv(t *testing.T, edits ...func(*callback.Config)) *env {
	t.Helper()
	e := &env{st: newStore(t), reg: prometheus.NewRegistry()}
	cfg := callback.Config{
		Store: e.st, AuthKey: authKey, Logger: zaptest.NewLogger(t), Registerer: e.reg,
		OnTransition: func(_ context.Context, tr store.Transition) {
			e.mu.Lock()
			e.changed = append(e.changed, tr)
			e.mu.Unlock()
		},
	}
	for _, edit := range edits {
		edit(&cfg)
	}
	h, err := callback.NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) post(t testing.TB, body []byte, hdr map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/callback", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(refonte.CallbackAuthHeader, authKey.Reveal())
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

func job(t testing.TB, st *store.Store, mode refonte.Mode, uid string) *store.Job {
	t.Helper()
	j, err := st.GetJob(context.Background(), mode, uid)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func runOf(t testing.TB, st *store.Store, id string) *store.Run {
	t.Helper()
	r, err := st.GetRun(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func unknown(t testing.TB, st *store.Store) int {
	t.Helper()
	u, err := st.KeptCallbacks(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(u)
}

func TestHandlerRefusals(t *testing.T) {
	e := newEnv(t)
	run := addJobs(t, e.st, refonte.ModeTest, "u-refused")
	submit(t, e.st, refonte.ModeTest, "u-refused", "t-refused")
	good := cb{taskID: "t-refused", uid: "u-refused"}.body(t)
	wrongSameLen := strings.Repeat("x", len(authKey.Reveal()))

	tests := []struct {
		name    string
		method  string
		body    []byte
		hdr     map[string]string
		chunked bool
		want    int
		outcome string
	}{
		{name: "GET", method: http.MethodGet, want: http.StatusMethodNotAllowed, outcome: callback.OutcomeBadMethod},
		{name: "auth missing", body: good, hdr: map[string]string{refonte.CallbackAuthHeader: ""}, want: 401, outcome: callback.OutcomeUnauthorized},
		{name: "auth wrong", body: good, hdr: map[string]string{refonte.CallbackAuthHeader: "nope"}, want: 401, outcome: callback.OutcomeUnauthorized},
		{name: "auth right length wrong value", body: good, hdr: map[string]string{refonte.CallbackAuthHeader: wrongSameLen}, want: 401, outcome: callback.OutcomeUnauthorized},
		{name: "auth prefix of the key", body: good, hdr: map[string]string{refonte.CallbackAuthHeader: authKey.Reveal()[:5]}, want: 401, outcome: callback.OutcomeUnauthorized},
		{name: "oversized with length", body: oversized(), want: http.StatusRequestEntityTooLarge, outcome: callback.OutcomeTooLarge},
		{name: "oversized chunked", body: oversized(), chunked: true, want: http.StatusRequestEntityTooLarge, outcome: callback.OutcomeTooLarge},
		{name: "malformed JSON", body: []byte(`{"task": {"task_id": "t-refused",`), want: 400, outcome: callback.OutcomeBadRequest},
		{name: "not an object", body: []byte(`[1,2,3]`), want: 400, outcome: callback.OutcomeBadRequest},
		{name: "no task id", body: []byte(`{"status":"completed","response":{}}`), want: 400, outcome: callback.OutcomeBadRequest},
		{name: "empty body", body: nil, want: 400, outcome: callback.OutcomeBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := cmpOr(tc.method, http.MethodPost)
			var rd io.Reader = bytes.NewReader(tc.body)
			if tc.chunked {
				rd = io.MultiReader(rd) // hides the length: sent chunked
			}
			req, err := http.NewRequest(method, e.srv.URL+"/callback", rd)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set(refonte.CallbackAuthHeader, authKey.Reveal())
			for k, v := range tc.hdr {
				if v == "" {
					req.Header.Del(k)
				} else {
					req.Header.Set(k, v)
				}
			}
			before := count(t, e.reg, tc.outcome)
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if got := count(t, e.reg, tc.outcome); got != before+1 {
				t.Errorf("callbacks_total{outcome=%q} = %v, want %v", tc.outcome, got, before+1)
			}
			// Nothing recorded: the job is untouched, no unknown callback kept.
			j := job(t, e.st, refonte.ModeTest, "u-refused")
			if j.State != store.JobSubmitted || len(j.Response) != 0 {
				t.Errorf("job changed: state %s, response %q", j.State, j.Response)
			}
			if n := unknown(t, e.st); n != 0 {
				t.Errorf("%d unknown callbacks kept, want 0", n)
			}
			if r := runOf(t, e.st, run.ID); r.Completed != 0 || r.State != store.RunRunning {
				t.Errorf("run changed: %+v", r)
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// oversized is a well-formed callback of just over 1 MiB.
func oversized() []byte {
	pad := strings.Repeat("a", refonte.MaxCallbackBytes)
	return []byte(`{"task_id":"t-refused","status":"completed","response":{"pad":"` + pad + `"}}`)
}

// count returns refonte_callbacks_total{outcome}.
func count(t testing.TB, reg *prometheus.Registry, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "refonte_callbacks_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestHandlerMatching(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	t.Run("completes the job and stores the response", func(t *testing.T) {
		run := addJobs(t, e.st, refonte.ModeTest, "u-good")
		submit(t, e.st, refonte.ModeTest, "u-good", "t-good")
		resp := `{"annotations":[{"label":"bus"}]}`
		if code := e.post(t, cb{taskID: "t-good", uid: "u-good", response: resp}.body(t), nil); code != 200 {
			t.Fatalf("status %d", code)
		}
		j := job(t, e.st, refonte.ModeTest, "u-good")
		if j.State != store.JobCompleted || j.Status != refonte.StatusCompleted || !jsonEqual(j.Response, resp) {
			t.Fatalf("job %+v, response %s", j, j.Response)
		}
		r := runOf(t, e.st, run.ID)
		if r.Completed != 1 || r.Submitted != 1 || r.State != store.RunDone {
			t.Fatalf("run %+v", r)
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		last := e.changed[len(e.changed)-1]
		if len(last.RunsDone) != 1 || last.RunsDone[0] != run.ID {
			t.Fatalf("OnTransition got RunsDone %v, want [%s]", last.RunsDone, run.ID)
		}
	})

	t.Run("duplicates are idempotent", func(t *testing.T) {
		run := addJobs(t, e.st, refonte.ModeTest, "u-dup", "u-dup-other")
		submit(t, e.st, refonte.ModeTest, "u-dup", "t-dup")
		submit(t, e.st, refonte.ModeTest, "u-dup-other", "t-dup-other")
		body := cb{taskID: "t-dup", uid: "u-dup"}.body(t)
		dupBefore := count(t, e.reg, callback.OutcomeDuplicate)
		for range 3 {
			if code := e.post(t, body, nil); code != 200 {
				t.Fatalf("status %d", code)
			}
		}
		r := runOf(t, e.st, run.ID)
		if r.Completed != 1 || r.Submitted != 2 || r.Failed != 0 || r.State != store.RunRunning {
			t.Fatalf("run counters %+v, want completed 1 of 2, running", r.Counters)
		}
		if got := count(t, e.reg, callback.OutcomeDuplicate); got != dupBefore+2 {
			t.Errorf("duplicates counted %v, want %v", got-dupBefore, 2)
		}
	})

	t.Run("older delivery after a newer one is ignored", func(t *testing.T) {
		run := addJobs(t, e.st, refonte.ModeTest, "u-order")
		submit(t, e.st, refonte.ModeTest, "u-order", "t-order")
		newer := cb{taskID: "t-order", uid: "u-order", updated: base.Add(time.Hour), response: `{"v":"new"}`}
		older := cb{taskID: "t-order", uid: "u-order", status: refonte.StatusError, updated: base, response: `{"error":"old"}`}
		for _, c := range []cb{newer, older} {
			if code := e.post(t, c.body(t), nil); code != 200 {
				t.Fatalf("status %d", code)
			}
		}
		j := job(t, e.st, refonte.ModeTest, "u-order")
		if j.State != store.JobCompleted || !jsonEqual(j.Response, `{"v":"new"}`) {
			t.Fatalf("job %s response %s, want completed with the newer response", j.State, j.Response)
		}
		if r := runOf(t, e.st, run.ID); r.Completed != 1 || r.Failed != 0 {
			t.Fatalf("run counters %+v", r.Counters)
		}
	})

	t.Run("a newer delivery wins", func(t *testing.T) {
		run := addJobs(t, e.st, refonte.ModeTest, "u-recall")
		submit(t, e.st, refonte.ModeTest, "u-recall", "t-recall")
		first := cb{taskID: "t-recall", uid: "u-recall", updated: base, response: `{"v":1}`}
		recalled := cb{taskID: "t-recall", uid: "u-recall", status: refonte.StatusCanceled, updated: base.Add(time.Minute), response: `{"v":2}`}
		for _, c := range []cb{first, recalled} {
			if code := e.post(t, c.body(t), nil); code != 200 {
				t.Fatalf("status %d", code)
			}
		}
		if j := job(t, e.st, refonte.ModeTest, "u-recall"); j.State != store.JobCanceled || !jsonEqual(j.Response, `{"v":2}`) {
			t.Fatalf("job %s response %s", j.State, j.Response)
		}
		if r := runOf(t, e.st, run.ID); r.Completed != 0 || r.Canceled != 1 {
			t.Fatalf("run counters %+v", r.Counters)
		}
	})

	t.Run("callback before the submit was recorded", func(t *testing.T) {
		run := addJobs(t, e.st, refonte.ModeTest, "u-early")
		if code := e.post(t, cb{taskID: "t-early", uid: "u-early"}.body(t), nil); code != 200 {
			t.Fatalf("status %d", code)
		}
		j := job(t, e.st, refonte.ModeTest, "u-early")
		if j.State != store.JobCompleted || j.TaskID != "t-early" {
			t.Fatalf("job %s task %q", j.State, j.TaskID)
		}
		// The submit handler's late MarkSubmitted is then a no-op.
		tr, err := e.st.MarkSubmitted(ctx, refonte.ModeTest, "u-early", "t-early")
		if err != nil || tr.Changed {
			t.Fatalf("late MarkSubmitted: %+v, %v", tr, err)
		}
		if r := runOf(t, e.st, run.ID); r.Completed != 1 || r.Submitted != 1 || r.State != store.RunDone {
			t.Fatalf("run %+v", r)
		}
	})

	t.Run("status error fails the job with the reason", func(t *testing.T) {
		run := addJobs(t, e.st, refonte.ModeTest, "u-err")
		submit(t, e.st, refonte.ModeTest, "u-err", "t-err")
		c := cb{taskID: "t-err", uid: "u-err", status: refonte.StatusError, response: `{"error":"attachment could not be downloaded"}`}
		if code := e.post(t, c.body(t), nil); code != 200 {
			t.Fatalf("status %d", code)
		}
		j := job(t, e.st, refonte.ModeTest, "u-err")
		if j.State != store.JobFailed || j.Error != "attachment could not be downloaded" {
			t.Fatalf("job %s error %q", j.State, j.Error)
		}
		if r := runOf(t, e.st, run.ID); r.Failed != 1 || r.State != store.RunDone {
			t.Fatalf("run %+v", r)
		}
	})

	t.Run("matched by task ID when the body has no unique_id", func(t *testing.T) {
		addJobs(t, e.st, refonte.ModeTest, "u-idx")
		submit(t, e.st, refonte.ModeTest, "u-idx", "t-idx")
		if code := e.post(t, cb{taskID: "t-idx", noUID: true}.body(t), nil); code != 200 {
			t.Fatalf("status %d", code)
		}
		if j := job(t, e.st, refonte.ModeTest, "u-idx"); j.State != store.JobCompleted {
			t.Fatalf("job %s", j.State)
		}
	})

	// The same row run in test then in live mode: same unique_id, two jobs;
	// the callback of the live task completes the live job only, whether
	// is_test says so or (without is_test) the task ID index does.
	for _, c := range []struct {
		name, uid, tid string // tid: the tasks' ID stem
		cb             cb
	}{
		{"is_test picks the mode", "u-both", "t-both", cb{live: true}},
		{"no is_test: the task ID index decides the mode", "u-both2", "t-both2", cb{noIsTest: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			addJobs(t, e.st, refonte.ModeTest, c.uid)
			addJobs(t, e.st, refonte.ModeLive, c.uid)
			submit(t, e.st, refonte.ModeTest, c.uid, c.tid+"-test")
			submit(t, e.st, refonte.ModeLive, c.uid, c.tid+"-live")
			body := c.cb
			body.taskID, body.uid = c.tid+"-live", c.uid
			if code := e.post(t, body.body(t), nil); code != 200 {
				t.Fatalf("status %d", code)
			}
			if j := job(t, e.st, refonte.ModeLive, c.uid); j.State != store.JobCompleted {
				t.Fatalf("live job %s", j.State)
			}
			if j := job(t, e.st, refonte.ModeTest, c.uid); j.State != store.JobSubmitted {
				t.Fatalf("test job %s, want untouched", j.State)
			}
		})
	}

	t.Run("no is_test and no index: unique_id in test then live", func(t *testing.T) {
		addJobs(t, e.st, refonte.ModeLive, "u-live-early")
		if code := e.post(t, cb{taskID: "t-live-early", uid: "u-live-early", noIsTest: true}.body(t), nil); code != 200 {
			t.Fatalf("status %d", code)
		}
		if j := job(t, e.st, refonte.ModeLive, "u-live-early"); j.State != store.JobCompleted {
			t.Fatalf("live job %s", j.State)
		}
	})

	t.Run("pending callback records nothing terminal", func(t *testing.T) {
		run := addJobs(t, e.st, refonte.ModeTest, "u-pend")
		c := cb{taskID: "t-pend", uid: "u-pend", status: refonte.StatusPending, response: "null"}
		for range 2 {
			if code := e.post(t, c.body(t), nil); code != 200 {
				t.Fatalf("status %d", code)
			}
		}
		j := job(t, e.st, refonte.ModeTest, "u-pend")
		if j.State != store.JobSubmitted || j.TaskID != "t-pend" {
			t.Fatalf("job %s task %q, want submitted t-pend", j.State, j.TaskID)
		}
		if r := runOf(t, e.st, run.ID); r.Submitted != 1 || r.Terminal() != 0 {
			t.Fatalf("run %+v", r.Counters)
		}
	})

	t.Run("unknown task is kept", func(t *testing.T) {
		before := unknown(t, e.st)
		body := cb{taskID: "t-nobody", uid: "u-nobody"}.body(t)
		if code := e.post(t, body, nil); code != 200 {
			t.Fatalf("status %d", code)
		}
		kept, err := e.st.KeptCallbacks(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		want := store.KeptCallback{Kind: store.KeptUnknown, Mode: refonte.ModeTest, TaskID: "t-nobody", UniqueID: "u-nobody",
			Status: refonte.StatusCompleted, TaskTime: base, Size: len(body), Head: string(body[:min(len(body), store.KeptHeadBytes)])}
		if unknown(t, e.st) != before+1 || len(kept) != 1 {
			t.Fatalf("unknown callback not kept: %+v", kept)
		}
		if kept[0].ReceivedAt = (time.Time{}); !reflect.DeepEqual(kept[0], want) {
			t.Fatalf("kept %+v, want %+v", kept[0], want)
		}
		if _, err := e.st.GetJob(ctx, refonte.ModeTest, "u-nobody"); err == nil {
			t.Fatal("a job record was created for an unknown callback")
		}
	})
}

func jsonEqual(got []byte, want string) bool {
	var a, b any
	if json.Unmarshal(got, &a) != nil || json.Unmarshal([]byte(want), &b) != nil {
		return false
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func TestHandlerRedisDown(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{AOF: true})
	opt, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = -1
	opt.DialTimeout = 200 * time.Millisecond
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	st := store.New(rdb, store.Options{})
	addJobs(t, st, refonte.ModeTest, "u-down")
	submit(t, st, refonte.ModeTest, "u-down", "t-down")
	h, err := callback.NewHandler(callback.Config{Store: st, AuthKey: authKey, Logger: zaptest.NewLogger(t), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	e := &env{st: st, srv: hs}

	srv.Kill()
	if code := e.post(t, cb{taskID: "t-down", uid: "u-down"}.body(t), nil); code != http.StatusServiceUnavailable {
		t.Fatalf("status %d with Redis down, want 503", code)
	}
	srv.Restart()
	// The platform's retry then lands.
	if code := e.post(t, cb{taskID: "t-down", uid: "u-down"}.body(t), nil); code != 200 {
		t.Fatalf("status %d after Redis came back", code)
	}
	if j := job(t, st, refonte.ModeTest, "u-down"); j.State != store.JobCompleted {
		t.Fatalf("job %s after the retried callback, want completed", j.State)
	}
}

func TestNewHandlerConfig(t *testing.T) {
	st := store.New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), store.Options{})
	tests := []struct {
		name string
		cfg  callback.Config
		ok   bool
	}{
		{"no store", callback.Config{AuthKey: authKey}, false},
		{"no key", callback.Config{Store: st}, false},
		{"negative limit", callback.Config{Store: st, AuthKey: authKey, MaxBytes: -1}, false},
		{"minimal", callback.Config{Store: st, AuthKey: authKey}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := callback.NewHandler(tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
		})
	}
	// Two handlers on one registry share their collectors.
	reg := prometheus.NewRegistry()
	for range 2 {
		if _, err := callback.NewHandler(callback.Config{Store: st, AuthKey: authKey, Registerer: reg}); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzCallbackHandler posts arbitrary bodies with the right key: the
// handler must never panic nor fail with a 5xx while Redis is up, and must
// answer 200, 400 or 413.
func FuzzCallbackHandler(f *testing.F) {
	st := newStore(f)
	addJobs(f, st, refonte.ModeTest, "u-fuzz")
	submit(f, st, refonte.ModeTest, "u-fuzz", "t-fuzz")
	h, err := callback.NewHandler(callback.Config{Store: st, AuthKey: authKey, MaxBytes: 4096})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cb{taskID: "t-fuzz", uid: "u-fuzz"}.body(f))
	f.Add(cb{taskID: "t-fuzz", noUID: true, noIsTest: true, status: refonte.StatusError, response: `{"error":7}`}.body(f))
	f.Add([]byte(`{"task_id":"t-fuzz","status":"pending"}`))
	f.Add([]byte(`{"task":null,"task_id":"x","response":null}`))
	f.Add([]byte(`{"task":{"task_id":1}}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/callback", bytes.NewReader(body))
		req.Header.Set(refonte.CallbackAuthHeader, authKey.Reveal())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body)
		}
	})
}

// TestReplayedAndForgedCallbacks: authenticated deliveries that replay or
// forge an outcome for a row of a done run (the same completed_at with
// another status, no timestamps, no task object, another task's id with
// the row's unique_id) are answered 200 and change nothing: not the row,
// not the run's counters; each is counted as a conflict and kept for
// inspection. An exact repeat is a duplicate.
func TestReplayedAndForgedCallbacks(t *testing.T) {
	e := newEnv(t)
	m := refonte.ModeTest
	run := addJobs(t, e.st, m, "u-1")
	submit(t, e.st, m, "u-1", "t-1")
	first := cb{taskID: "t-1", uid: "u-1"}.body(t)
	if code := e.post(t, first, nil); code != http.StatusOK {
		t.Fatalf("first callback: %d", code)
	}
	done := runOf(t, e.st, run.ID)
	if done.State != store.RunDone || done.Completed != 1 {
		t.Fatalf("run after the first callback: %+v", done)
	}
	row := job(t, e.st, m, "u-1")
	tests := []struct {
		name    string
		body    []byte
		outcome string
		reason  store.ConflictReason
	}{
		{"same completed_at, status error", cb{taskID: "t-1", uid: "u-1", status: refonte.StatusError, response: `{"error":"replayed"}`}.body(t),
			callback.OutcomeConflict, store.ConflictNotNewer},
		{"no timestamps, canceled", []byte(`{"task_id":"t-1","status":"canceled","task":{"task_id":"t-1","status":"canceled","unique_id":"u-1","is_test":true,"response":null}}`),
			callback.OutcomeConflict, store.ConflictNoTimestamp},
		{"no task object, error", []byte(`{"task_id":"t-1","status":"error","response":{"error":"forged"}}`),
			callback.OutcomeConflict, store.ConflictNoTimestamp},
		{"foreign task id, known unique_id, newer", cb{taskID: "t-foreign", uid: "u-1", status: refonte.StatusError, updated: base.Add(time.Hour), response: `{"error":"forged"}`}.body(t),
			callback.OutcomeConflict, store.ConflictForeignTask},
		{"exact repeat", first, callback.OutcomeDuplicate, ""},
	}
	conflicts := int64(0)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := count(t, e.reg, tc.outcome)
			if code := e.post(t, tc.body, nil); code != http.StatusOK {
				t.Fatalf("status %d, want 200", code)
			}
			if got := count(t, e.reg, tc.outcome); got != before+1 {
				t.Errorf("callbacks_total{outcome=%q} = %v, want %v", tc.outcome, got, before+1)
			}
			if tc.reason != "" {
				conflicts++
			}
			r := runOf(t, e.st, run.ID)
			if r.State != store.RunDone || r.Counters != done.Counters || r.Conflicts != conflicts {
				t.Errorf("run %s %+v with %d conflicts, want done %+v with %d", r.State, r.Counters, r.Conflicts, done.Counters, conflicts)
			}
			j := job(t, e.st, m, "u-1")
			if j.State != row.State || j.Status != row.Status || j.TaskID != row.TaskID || j.Error != row.Error ||
				!bytes.Equal(j.Response, row.Response) || !j.DeliveredAt.Equal(row.DeliveredAt) {
				t.Errorf("row changed:\n%+v\nwas\n%+v", j, row)
			}
			kept, err := e.st.KeptCallbacks(context.Background(), 1)
			if err != nil {
				t.Fatal(err)
			}
			if tc.reason != "" && (len(kept) != 1 || kept[0].Kind != store.KeptConflict || kept[0].Reason != tc.reason) {
				t.Errorf("kept %+v, want a conflict %q", kept, tc.reason)
			}
		})
	}
}
