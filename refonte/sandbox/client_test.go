package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/refonte"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

// fastRetry keeps the client's retries quick in tests.
var fastRetry = refonte.RetryPolicy{InitialInterval: 5 * time.Millisecond, MaxInterval: 50 * time.Millisecond, MaxElapsed: 5 * time.Second}

// startSandbox serves a sandbox on loopback and returns it with its base URL.
func startSandbox(t *testing.T, cfg sandbox.Config) (*sandbox.Server, string) {
	t.Helper()
	s := sandbox.New(cfg)
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	return s, ts.URL + "/v1"
}

func newClient(t *testing.T, key, base string, opts ...refonte.Option) *refonte.Client {
	t.Helper()
	c, err := refonte.NewClient(key, append([]refonte.Option{refonte.WithBaseURL(base), refonte.WithRetry(fastRetry)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func image(extra refonte.TaskParams) refonte.TaskParams {
	p := refonte.TaskParams{
		"project":    "demo",
		"attachment": "https://example.com/cat.jpg",
		"geometries": map[string]any{"box": map[string]any{"objects_to_annotate": []string{"cat"}}},
	}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

func wantIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want %v", err, target)
	}
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClientProjects(t *testing.T) {
	ctx := context.Background()
	_, base := startSandbox(t, sandbox.Config{NoAutoComplete: true})
	c := newClient(t, sandbox.DefaultTestKey, base)

	p, err := c.CreateProject(ctx, refonte.CreateProjectRequest{Type: refonte.TypeCategorization, Name: "shop/products",
		Params: map[string]any{"categories": []string{"shoe", "hat"}}})
	if err != nil || p.Name != "shop/products" || p.Type != refonte.TypeCategorization {
		t.Fatalf("CreateProject = %+v, %v", p, err)
	}
	_, err = c.CreateProject(ctx, refonte.CreateProjectRequest{Type: refonte.TypeCategorization, Name: "shop/products"})
	wantIs(t, err, refonte.ErrConflict)
	_, err = c.CreateProject(ctx, refonte.CreateProjectRequest{Type: "nonsense", Name: "x"})
	wantIs(t, err, refonte.ErrInvalid)

	got, err := c.GetProject(ctx, "shop/products")
	if err != nil || got.Params["categories"] == nil || len(got.ParamHistory) != 1 {
		t.Fatalf("GetProject = %+v, %v", got, err)
	}
	_, err = c.GetProject(ctx, "ghost")
	wantIs(t, err, refonte.ErrNotFound)

	all, err := c.ListProjects(ctx)
	if err != nil || len(all) != 2 || all[0].Name != "demo" || all[1].Name != "shop/products" {
		t.Fatalf("ListProjects = %v, %v", all, err)
	}

	// Project params are defaults for its tasks.
	task, err := c.CreateTask(ctx, refonte.TypeCategorization, refonte.TaskParams{"project": "shop/products", "attachment": "https://e.com/1.jpg"})
	if err != nil || !strings.Contains(string(task.Params), "shoe") {
		t.Fatalf("CreateTask with project defaults = %+v, %v", task, err)
	}
	up, err := c.SetProjectParams(ctx, "shop/products", map[string]any{"instruction": "v2"})
	if err != nil || len(up.ParamHistory) != 2 || up.Params["instruction"] != "v2" {
		t.Fatalf("SetProjectParams = %+v, %v", up, err)
	}
	_, err = c.CreateTask(ctx, refonte.TypeCategorization, refonte.TaskParams{"project": "shop/products", "attachment": "https://e.com/1.jpg"})
	wantIs(t, err, refonte.ErrInvalid)
	if !strings.Contains(err.Error(), "categories") {
		t.Errorf("error %q does not name the field", err)
	}
	_, err = c.SetProjectParams(ctx, "ghost", nil)
	wantIs(t, err, refonte.ErrNotFound)
}

func TestClientBatches(t *testing.T) {
	ctx := context.Background()
	s, base := startSandbox(t, sandbox.Config{CompleteAfter: 10 * time.Millisecond})
	c := newClient(t, sandbox.DefaultTestKey, base)
	name := "night 2026/11/26"

	b, err := c.CreateBatch(ctx, refonte.CreateBatchRequest{Project: "demo", Name: name, Callback: "https://e.com/batch", Metadata: map[string]any{"run": 1}})
	if err != nil || b.Name != name || b.Status != refonte.BatchStaging || b.Project != "demo" {
		t.Fatalf("CreateBatch = %+v, %v", b, err)
	}
	_, err = c.CreateBatch(ctx, refonte.CreateBatchRequest{Project: "demo", Name: name})
	wantIs(t, err, refonte.ErrConflict)
	_, err = c.CreateBatch(ctx, refonte.CreateBatchRequest{Project: "ghost", Name: "other"})
	wantIs(t, err, refonte.ErrInvalid)

	for i := range 3 {
		if _, err := c.CreateTask(ctx, refonte.TypeImageAnnotation, image(refonte.TaskParams{"batch": name, "unique_id": fmt.Sprint("b", i)})); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.GetBatch(ctx, name)
	if err != nil || got.Name != name || string(got.Metadata) != `{"run":1}` {
		t.Fatalf("GetBatch = %+v, %v", got, err)
	}
	_, err = c.GetBatch(ctx, "ghost")
	wantIs(t, err, refonte.ErrNotFound)

	fin, err := c.FinalizeBatch(ctx, name)
	if err != nil || fin.Status == refonte.BatchStaging {
		t.Fatalf("FinalizeBatch = %+v, %v", fin, err)
	}
	_, err = c.CreateTask(ctx, refonte.TypeImageAnnotation, image(refonte.TaskParams{"batch": name}))
	wantIs(t, err, refonte.ErrInvalid)

	poll(t, "batch completed", func() bool {
		st, err := c.GetBatchStatus(ctx, name)
		return err == nil && st.Status == refonte.BatchCompleted && st.Completed == 3 && st.Pending == 0
	})
	_, err = c.GetBatchStatus(ctx, "ghost")
	wantIs(t, err, refonte.ErrNotFound)

	for i := range 3 {
		if _, err := c.CreateBatch(ctx, refonte.CreateBatchRequest{Project: "demo", Name: fmt.Sprint("extra-", i)}); err != nil {
			t.Fatal(err)
		}
	}
	page, err := c.ListBatches(ctx, refonte.ListBatchesOptions{Project: "demo", Limit: 2, Offset: 1})
	if err != nil || page.Total != 4 || len(page.Docs) != 2 || !page.HasMore || page.Docs[0].Name != "extra-1" {
		t.Fatalf("ListBatches = %+v, %v", page, err)
	}
	page, err = c.ListBatches(ctx, refonte.ListBatchesOptions{Status: refonte.BatchCompleted})
	if err != nil || page.Total != 1 || page.Docs[0].Name != name {
		t.Fatalf("ListBatches(completed) = %+v, %v", page, err)
	}
	if s.Stats().TasksCreated != 3 {
		t.Fatalf("stats %+v", s.Stats())
	}
}

func TestClientTasks(t *testing.T) {
	ctx := context.Background()
	s, base := startSandbox(t, sandbox.Config{NoAutoComplete: true})
	c := newClient(t, sandbox.DefaultTestKey, base)

	var created []*refonte.Task
	for i := range 7 {
		task, err := c.CreateTask(ctx, refonte.TypeImageAnnotation, image(refonte.TaskParams{
			"unique_id": fmt.Sprintf("row-%d", i), "metadata": map[string]any{"row": i}, "tags": []string{fmt.Sprint("t", i%2)}}))
		if err != nil {
			t.Fatalf("CreateTask %d: %v", i, err)
		}
		created = append(created, task)
	}
	if created[0].Status != refonte.StatusPending || !created[0].IsTest || created[0].UniqueID != "row-0" {
		t.Fatalf("created %+v", created[0])
	}
	// Every task type of the reference is accepted with valid params.
	for _, typ := range refonte.TaskTypes() {
		p := refonte.TaskParams{"attachment": "https://e.com/a", "attachments": []string{"https://e.com/a"},
			"geometries": map[string]any{"box": map[string]any{"objects_to_annotate": []string{"x"}}},
			"categories": []string{"a"}, "fields": []any{map[string]any{"field_id": "f"}}, "labels": []string{"l"}, "text": "hello"}
		if _, err := c.CreateTask(ctx, typ, p); err != nil {
			t.Errorf("CreateTask(%s): %v", typ, err)
		}
	}

	got, err := c.GetTask(ctx, created[3].ID)
	if err != nil || got.ID != created[3].ID || string(got.Metadata) != `{"row":3}` {
		t.Fatalf("GetTask = %+v, %v", got, err)
	}
	_, err = c.GetTask(ctx, "ffffffffffffffffffffffff")
	wantIs(t, err, refonte.ErrNotFound)

	page, err := c.ListTasks(ctx, refonte.ListTasksOptions{Type: refonte.TypeImageAnnotation, Tags: []string{"t1"}, Limit: 2})
	if err != nil || page.Total != 3 || len(page.Docs) != 2 || !page.HasMore || page.NextToken == "" || page.Docs[0].ID != created[5].ID {
		t.Fatalf("ListTasks = %+v, %v", page, err)
	}
	var ids []string
	for task, err := range c.AllTasks(ctx, refonte.ListTasksOptions{Project: "demo", Limit: 3, StartTime: created[0].CreatedAt.Add(-time.Second)}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, task.ID)
	}
	if len(ids) != 7 || ids[0] != created[6].ID || ids[6] != created[0].ID {
		t.Fatalf("AllTasks: %d tasks %v", len(ids), ids)
	}
	_, err = c.ListTasks(ctx, refonte.ListTasksOptions{Limit: 101})
	wantIs(t, err, refonte.ErrInvalid)

	found, err := c.FindTaskByUniqueID(ctx, "row-4")
	if err != nil || found.ID != created[4].ID {
		t.Fatalf("FindTaskByUniqueID = %+v, %v", found, err)
	}
	_, err = c.FindTaskByUniqueID(ctx, "nobody")
	wantIs(t, err, refonte.ErrNotFound)

	_, err = c.CreateTask(ctx, refonte.TypeImageAnnotation, image(refonte.TaskParams{"unique_id": "row-1"}))
	wantIs(t, err, refonte.ErrConflict)

	md, err := c.SetTaskMetadata(ctx, created[0].ID, map[string]any{"note": "x"})
	if err != nil || string(md.Metadata) != `{"note":"x"}` {
		t.Fatalf("SetTaskMetadata = %+v, %v", md, err)
	}
	renamed, err := c.SetTaskUniqueID(ctx, created[0].ID, "row-0-b")
	if err != nil || renamed.UniqueID != "row-0-b" {
		t.Fatalf("SetTaskUniqueID = %+v, %v", renamed, err)
	}
	_, err = c.SetTaskUniqueID(ctx, created[0].ID, "row-2")
	wantIs(t, err, refonte.ErrConflict)
	cleared, err := c.ClearTaskUniqueID(ctx, created[0].ID)
	if err != nil || cleared.UniqueID != "" {
		t.Fatalf("ClearTaskUniqueID = %+v, %v", cleared, err)
	}
	if _, err := c.CreateTask(ctx, refonte.TypeImageAnnotation, image(refonte.TaskParams{"unique_id": "row-0-b"})); err != nil {
		t.Fatalf("reuse of a cleared unique_id: %v", err)
	}

	canceled, err := c.CancelTask(ctx, created[1].ID, true)
	if err != nil || canceled.Status != refonte.StatusCanceled || canceled.UniqueID != "" {
		t.Fatalf("CancelTask = %+v, %v", canceled, err)
	}
	_, err = c.CancelTask(ctx, created[1].ID, false)
	wantIs(t, err, refonte.ErrInvalid)
	if _, err := c.CreateTask(ctx, refonte.TypeImageAnnotation, image(refonte.TaskParams{"unique_id": "row-1"})); err != nil {
		t.Fatalf("reuse after cancel with clear_unique_id: %v", err)
	}
	page, err = c.ListTasks(ctx, refonte.ListTasksOptions{Status: refonte.StatusCanceled})
	if err != nil || page.Total != 1 || page.Docs[0].ID != created[1].ID {
		t.Fatalf("ListTasks(canceled) = %+v, %v", page, err)
	}
	if st := s.Stats(); st.UniqueIDsCreatedTwice != 0 || st.DuplicateUniqueID != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestClientErrors(t *testing.T) {
	ctx := context.Background()
	s, base := startSandbox(t, sandbox.Config{NoAutoComplete: true, DisabledTypes: []refonte.TaskType{refonte.TypeLidarAnnotation}})
	noRetry := refonte.WithRetry(refonte.RetryPolicy{Disabled: true})

	_, err := newClient(t, "test_not_the_key", base).GetTask(ctx, "x")
	wantIs(t, err, refonte.ErrUnauthorized)

	c := newClient(t, sandbox.DefaultTestKey, base, noRetry)
	_, err = c.CreateTask(ctx, refonte.TypeLidarAnnotation, refonte.TaskParams{"attachment": "https://e.com/a"})
	wantIs(t, err, refonte.ErrNotEnabled)
	_, err = c.CreateTask(ctx, refonte.TypeImageAnnotation, image(refonte.TaskParams{"attachment": "nope"}))
	wantIs(t, err, refonte.ErrInvalid)
	var apiErr *refonte.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.HasPrefix(apiErr.Message, "attachment") {
		t.Fatalf("error %#v", err)
	}

	s.SetFaults(sandbox.Faults{RateLimit: 1})
	if _, err := c.CreateTask(ctx, refonte.TypeImageAnnotation, image(nil)); err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateTask(ctx, refonte.TypeImageAnnotation, image(nil))
	wantIs(t, err, refonte.ErrRateLimited)
	if d, ok := refonte.RetryAfter(err); !ok || d < time.Second {
		t.Fatalf("RetryAfter = %v, %v", d, ok)
	}

	s.SetFaults(sandbox.Faults{ErrorRate: 1})
	_, err = c.CreateTask(ctx, refonte.TypeImageAnnotation, image(nil))
	wantIs(t, err, refonte.ErrServer)
	if !refonte.Retryable(err) {
		t.Fatalf("Retryable(%v) = false", err)
	}

	s.SetFaults(sandbox.Faults{})
	s.SetDown(true)
	_, err = c.ListProjects(ctx)
	wantIs(t, err, refonte.ErrServer)
	s.SetDown(false)

	// Modes are separate worlds.
	live := newClient(t, sandbox.DefaultLiveKey, base)
	task, err := c.CreateTask(ctx, refonte.TypeImageAnnotation, image(nil))
	if err != nil {
		t.Fatal(err)
	}
	_, err = live.GetTask(ctx, task.ID)
	wantIs(t, err, refonte.ErrNotFound)
}

// TestClientResolvesLostResponse is the platform's "500 then 409": the
// create is answered 500 although the task was created; the client's retry
// gets 409 for the same unique_id and resolves it to the existing task.
func TestClientResolvesLostResponse(t *testing.T) {
	ctx := context.Background()
	s, base := startSandbox(t, sandbox.Config{NoAutoComplete: true, LostResponseRate: 1})
	c := newClient(t, sandbox.DefaultTestKey, base)

	task, err := c.CreateTask(ctx, refonte.TypeImageAnnotation, image(refonte.TaskParams{"unique_id": "lost-1", "metadata": map[string]any{"row": 1}}))
	if err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	stored, ok := s.TaskByUniqueID(refonte.ModeTest, "lost-1")
	if !ok || task.ID != stored.ID || task.UniqueID != "lost-1" {
		t.Fatalf("resolved task %+v, stored %+v", task, stored)
	}
	st := s.Stats()
	if st.TasksCreated != 1 || st.LostResponses != 1 || st.DuplicateUniqueID != 1 || st.CreateCalls != 2 || st.UniqueIDsCreatedTwice != 0 {
		t.Fatalf("stats %+v", st)
	}

	// Without a unique_id the create is not retried: the error surfaces and
	// the caller knows the outcome is unknown.
	_, err = c.CreateTask(ctx, refonte.TypeImageAnnotation, image(nil))
	wantIs(t, err, refonte.ErrServer)
	if st := s.Stats(); st.CreateCalls != 3 || st.TasksCreated != 2 {
		t.Fatalf("stats %+v", st)
	}

	// Many concurrent creates through the lossy API: one task per unique_id.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if _, err := c.CreateTask(ctx, refonte.TypeImageAnnotation, image(refonte.TaskParams{"unique_id": fmt.Sprint("many-", i)})); err != nil {
				t.Errorf("create %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if st := s.Stats(); st.TasksCreated != 22 || st.UniqueIDsCreatedTwice != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestClientCallbacks checks the callback the sandbox delivers with the
// client's own helpers: the auth header verifies, the body parses.
func TestClientCallbacks(t *testing.T) {
	ctx := context.Background()
	key := refonte.Secret("cb-key-for-test")
	var mu sync.Mutex
	var got []*refonte.Callback
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !refonte.VerifyCallbackAuth(r.Header, key) {
			http.Error(w, "bad auth", http.StatusUnauthorized)
			return
		}
		cb, err := refonte.ParseCallback(r.Body, 0)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, cb)
		mu.Unlock()
	}))
	t.Cleanup(rcv.Close)
	s, base := startSandbox(t, sandbox.Config{CompleteAfter: 10 * time.Millisecond, CallbackAuthKey: key.Reveal()})
	c := newClient(t, sandbox.DefaultTestKey, base)
	task, err := c.CreateTask(ctx, refonte.TypeImageAnnotation, image(refonte.TaskParams{
		"unique_id": "cb-1", "callback_url": rcv.URL, "metadata": map[string]any{"row": 9}}))
	if err != nil {
		t.Fatal(err)
	}
	poll(t, "callback", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1
	})
	cb := got[0]
	if cb.TaskID != task.ID || cb.Status != refonte.StatusCompleted || cb.UniqueID != "cb-1" ||
		string(cb.Metadata) != `{"row":9}` || !strings.Contains(string(cb.Response), `"echo_metadata":{"row":9}`) {
		t.Fatalf("callback %+v", cb)
	}
	poll(t, "callback_succeeded", func() bool {
		t, err := c.GetTask(ctx, task.ID)
		return err == nil && t.CallbackSucceeded != nil && *t.CallbackSucceeded && t.Status == refonte.StatusCompleted
	})
	if st := s.Stats(); st.CallbacksOK != 1 || st.CallbackAttemptsFailed != 0 {
		t.Fatalf("stats %+v", st)
	}
}
