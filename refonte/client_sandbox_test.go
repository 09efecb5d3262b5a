package refonte_test

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/refonte"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

// newSandbox starts a sandbox server and returns it with a test-mode
// client with fast retries.
func newSandbox(t *testing.T, cfg sandbox.Config) (*sandbox.Server, *refonte.Client) {
	t.Helper()
	if cfg.CompleteAfter == 0 && !cfg.NoAutoComplete {
		cfg.NoAutoComplete = true
	}
	sb := sandbox.New(cfg)
	ts := httptest.NewServer(sb)
	t.Cleanup(func() { ts.Close(); sb.Close() })
	c, err := refonte.NewClient(sandbox.DefaultTestKey, refonte.WithBaseURL(ts.URL+"/v1"),
		refonte.WithRetry(refonte.RetryPolicy{MaxElapsed: 5 * time.Second, InitialInterval: time.Millisecond, MaxInterval: 10 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	return sb, c
}

// imageParams is a valid imageannotation body.
func imageParams(i int, extra map[string]any) refonte.TaskParams {
	p := refonte.TaskParams{
		"attachment": fmt.Sprintf("https://cdn.example.com/img/%d.jpg", i),
		"geometries": map[string]any{"box": map[string]any{"objects_to_annotate": []string{"car"}}},
	}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

// TestClientAgainstSandbox exercises every endpoint against the sandbox.
func TestClientAgainstSandbox(t *testing.T) {
	_, c := newSandbox(t, sandbox.Config{})
	ctx := t.Context()
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	// Projects, with a name that needs escaping.
	const projName = "street scenes/night"
	p, err := c.CreateProject(ctx, refonte.CreateProjectRequest{Type: refonte.TypeImageAnnotation, Name: projName,
		Params: map[string]any{"instruction": "v1"}})
	check("create project", err)
	if p.Name != projName || p.Type != refonte.TypeImageAnnotation {
		t.Errorf("created project %+v", p)
	}
	_, err = c.CreateProject(ctx, refonte.CreateProjectRequest{Type: refonte.TypeImageAnnotation, Name: projName})
	if !errors.Is(err, refonte.ErrConflict) {
		t.Errorf("duplicate project: %v, want ErrConflict", err)
	}
	p, err = c.SetProjectParams(ctx, projName, map[string]any{"instruction": "v2"})
	check("set params", err)
	if len(p.ParamHistory) < 2 {
		t.Errorf("param history %v, want two versions", p.ParamHistory)
	}
	p, err = c.GetProject(ctx, projName)
	check("get project", err)
	if p.Params["instruction"] != "v2" {
		t.Errorf("project params %v", p.Params)
	}
	ps, err := c.ListProjects(ctx)
	check("list projects", err)
	if len(ps) < 2 {
		t.Errorf("%d projects, want demo and ours", len(ps))
	}
	if _, err := c.GetProject(ctx, "nope"); !errors.Is(err, refonte.ErrNotFound) {
		t.Errorf("missing project: %v", err)
	}

	// Batches.
	const batchName = "night 2026/11/26"
	b, err := c.CreateBatch(ctx, refonte.CreateBatchRequest{Project: projName, Name: batchName, Metadata: map[string]any{"k": 1}})
	check("create batch", err)
	if b.Status != refonte.BatchStaging || b.Name != batchName {
		t.Errorf("created batch %+v", b)
	}

	// Tasks.
	var ids []string
	for i := range 5 {
		task, err := c.CreateTask(ctx, refonte.TypeImageAnnotation, imageParams(i, map[string]any{
			"project": projName, "batch": batchName, "unique_id": fmt.Sprintf("row/%d", i),
			"metadata": map[string]any{"source_row": i}, "tags": []string{"night"}}))
		check("create task", err)
		if task.Status != refonte.StatusPending || task.UniqueID != fmt.Sprintf("row/%d", i) || task.ID == "" {
			t.Errorf("created %+v", task)
		}
		ids = append(ids, task.ID)
	}
	_, err = c.CreateTask(ctx, refonte.TypeImageAnnotation, imageParams(0, map[string]any{"project": projName, "unique_id": "row/0"}))
	if !errors.Is(err, refonte.ErrConflict) {
		t.Errorf("duplicate unique_id on a first attempt: %v, want ErrConflict", err)
	}
	_, err = c.CreateTask(ctx, refonte.TypeImageAnnotation, refonte.TaskParams{"project": projName, "attachment": "https://x/1.jpg"})
	if !errors.Is(err, refonte.ErrInvalid) {
		t.Errorf("missing geometries: %v, want ErrInvalid", err)
	}
	task, err := c.GetTask(ctx, ids[0])
	check("get task", err)
	if task.ID != ids[0] || task.Batch != batchName || task.Project != projName {
		t.Errorf("got %+v", task)
	}
	found, err := c.FindTaskByUniqueID(ctx, "row/3")
	check("find", err)
	if found.ID != ids[3] {
		t.Errorf("found %s, want %s", found.ID, ids[3])
	}
	if _, err := c.FindTaskByUniqueID(ctx, "row/99"); !errors.Is(err, refonte.ErrNotFound) {
		t.Errorf("find missing: %v", err)
	}
	var listed []string
	for tk, err := range c.AllTasks(ctx, refonte.ListTasksOptions{Project: projName, Tags: []string{"night"}, Limit: 2}) {
		check("all tasks", err)
		listed = append(listed, tk.ID)
	}
	if len(listed) != 5 {
		t.Errorf("iterated %d tasks over pages of 2, want 5", len(listed))
	}
	page, err := c.ListTasks(ctx, refonte.ListTasksOptions{Batch: batchName, Status: refonte.StatusPending,
		StartTime: time.Now().Add(-time.Hour), Limit: 100})
	check("list tasks", err)
	if len(page.Docs) != 5 || page.HasMore || page.NextToken != "" {
		t.Errorf("page of %d, has_more %v, next %q", len(page.Docs), page.HasMore, page.NextToken)
	}
	task, err = c.SetTaskMetadata(ctx, ids[1], map[string]any{"note": "x"})
	check("set metadata", err)
	if string(task.Metadata) != `{"note":"x"}` {
		t.Errorf("metadata %s", task.Metadata)
	}
	task, err = c.SetTaskUniqueID(ctx, ids[1], "renamed/1")
	check("set unique_id", err)
	if task.UniqueID != "renamed/1" {
		t.Errorf("unique_id %q", task.UniqueID)
	}
	if _, err := c.SetTaskUniqueID(ctx, ids[2], "renamed/1"); !errors.Is(err, refonte.ErrConflict) {
		t.Errorf("taken unique_id: %v", err)
	}
	task, err = c.ClearTaskUniqueID(ctx, ids[1])
	check("clear unique_id", err)
	if task.UniqueID != "" {
		t.Errorf("unique_id %q after clear", task.UniqueID)
	}
	task, err = c.CancelTask(ctx, ids[4], true)
	check("cancel", err)
	if task.Status != refonte.StatusCanceled {
		t.Errorf("status %q after cancel", task.Status)
	}
	if _, err := c.CancelTask(ctx, ids[4], false); !errors.Is(err, refonte.ErrInvalid) {
		t.Errorf("cancel twice: %v, want ErrInvalid", err)
	}
	if _, err := c.CreateTask(ctx, refonte.TypeImageAnnotation, imageParams(4, map[string]any{"project": projName, "unique_id": "row/4"})); err != nil {
		t.Errorf("unique_id released by cancel: %v", err)
	}

	// Batch status, finalize, get, list.
	st, err := c.GetBatchStatus(ctx, batchName)
	check("batch status", err)
	if st.Status != refonte.BatchStaging || st.Pending != 4 || st.Canceled != 1 {
		t.Errorf("batch status %+v", st)
	}
	b, err = c.FinalizeBatch(ctx, batchName)
	check("finalize", err)
	if b.Status != refonte.BatchInProgress {
		t.Errorf("finalized %+v", b)
	}
	b, err = c.GetBatch(ctx, batchName)
	check("get batch", err)
	if b.Status != refonte.BatchInProgress || b.Project != projName {
		t.Errorf("got batch %+v", b)
	}
	bp, err := c.ListBatches(ctx, refonte.ListBatchesOptions{Project: projName, Status: refonte.BatchInProgress, Limit: 10})
	check("list batches", err)
	if bp.Total != 1 || len(bp.Docs) != 1 || bp.Docs[0].Name != batchName {
		t.Errorf("batch page %+v", bp)
	}

	// Live mode is another world.
	live, err := refonte.NewClient(sandbox.DefaultLiveKey, refonte.WithBaseURL(c.BaseURL()))
	check("live client", err)
	if _, err := live.GetTask(ctx, ids[0]); !errors.Is(err, refonte.ErrNotFound) {
		t.Errorf("test task seen with a live key: %v", err)
	}
	bad, err := refonte.NewClient("test_wrong", refonte.WithBaseURL(c.BaseURL()))
	check("bad client", err)
	if _, err := bad.ListProjects(ctx); !errors.Is(err, refonte.ErrUnauthorized) {
		t.Errorf("unknown key: %v, want ErrUnauthorized", err)
	}
}

// TestClientSandboxLostResponses creates through a sandbox that answers 500
// after creating every task: each create must resolve to its task through
// the 409 and GET /tasks?unique_id=, creating nothing twice.
func TestClientSandboxLostResponses(t *testing.T) {
	sb, c := newSandbox(t, sandbox.Config{LostResponseRate: 1, Seed: 1})
	const n = 20
	for i := range n {
		uid := fmt.Sprintf("lost/%d", i)
		task, err := c.CreateTask(t.Context(), refonte.TypeImageAnnotation, imageParams(i, map[string]any{"project": "demo", "unique_id": uid}))
		if err != nil {
			t.Fatalf("create %s: %v", uid, err)
		}
		if task.UniqueID != uid || task.ID == "" {
			t.Errorf("resolved to %+v", task)
		}
	}
	st := sb.Stats()
	if st.TasksCreated != n || st.UniqueIDsCreatedTwice != 0 || st.DuplicateUniqueID != n {
		t.Errorf("stats: created %d, twice %d, 409s %d; want %d, 0, %d", st.TasksCreated, st.UniqueIDsCreatedTwice, st.DuplicateUniqueID, n, n)
	}
}

// TestClientSandboxFaults retries injected 500/503 and 429s to success.
func TestClientSandboxFaults(t *testing.T) {
	sb, c := newSandbox(t, sandbox.Config{ErrorRate: 0.5, Seed: 7})
	const n = 30
	for i := range n {
		if _, err := c.CreateTask(t.Context(), refonte.TypeImageAnnotation,
			imageParams(i, map[string]any{"project": "demo", "unique_id": fmt.Sprintf("f/%d", i)})); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	if st := sb.Stats(); st.TasksCreated != n || st.ErrorsInjected == 0 || st.UniqueIDsCreatedTwice != 0 {
		t.Errorf("stats %+v", st)
	}
}
