package submit

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/internal/testkit"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

const (
	testKey = "test_submit_key"
	liveKey = "live_submit_key"
	cbKey   = "submit_callback_auth"
)

// newStore returns a store on a private redis-server, with its client.
func newStore(t *testing.T) (*store.Store, redis.UniversalClient) {
	t.Helper()
	return testkit.Store(t, store.Options{})
}

// newSandbox starts the sandbox behind an httptest server and returns it with its API base URL.
func newSandbox(t *testing.T, cfg sandbox.Config) (*sandbox.Server, string) {
	t.Helper()
	cfg.TestKey, cfg.LiveKey, cfg.CallbackAuthKey = testKey, liveKey, cbKey
	if cfg.CompleteAfter == 0 && !cfg.NoAutoComplete {
		cfg.NoAutoComplete = true
	}
	return testkit.Sandbox(t, cfg)
}

// newClient returns an API client of the key's mode with short retries.
func newClient(t *testing.T, key, baseURL string) *refonte.Client {
	t.Helper()
	return testkit.Client(t, key, baseURL, refonte.RetryPolicy{MaxElapsed: 2 * time.Second,
		InitialInterval: 10 * time.Millisecond, MaxInterval: 100 * time.Millisecond})
}

// rowParams is a valid imageannotation body for the sandbox's demo project.
func rowParams(i int) map[string]any {
	return map[string]any{
		"project":    "demo",
		"attachment": fmt.Sprintf("https://example.com/img/%d.jpg", i),
		"geometries": map[string]any{"box": map[string]any{"objects_to_annotate": []string{"car"}}},
	}
}

// addRun creates a run of n rows in mode m (params from mk, default rowParams)
// and returns it with each row's asynq task.
func addRun(t *testing.T, st *store.Store, m refonte.Mode, n int, mk func(i int) map[string]any) (*store.Run, []*asynq.Task) {
	t.Helper()
	run := &store.Run{ID: store.NewRunID(time.Now()), Dataset: "rows.jsonl", Type: refonte.TypeImageAnnotation,
		Project: "demo", Mode: m, CreatedAt: time.Now()}
	return addRunWith(t, st, run, n, mk)
}

// addRunWith is addRun for a given run record.
func addRunWith(t *testing.T, st *store.Store, run *store.Run, n int, mk func(i int) map[string]any) (*store.Run, []*asynq.Task) {
	t.Helper()
	if mk == nil {
		mk = rowParams
	}
	m := run.Mode
	ctx := context.Background()
	if err := st.CreateRun(ctx, run); err != nil {
		t.Fatalf("CreateRun: %v", err)
	}
	var nj []store.NewJob
	var tasks []*asynq.Task
	for i := range n {
		uid := fmt.Sprintf("%s-row-%d", run.ID, i)
		params := mk(i)
		params["unique_id"] = uid
		body, err := json.Marshal(params)
		if err != nil {
			t.Fatal(err)
		}
		p := jobs.SubmitPayload{V: jobs.PayloadVersion, Run: run.ID, Line: int64(i + 1), UniqueID: uid,
			TaskType: refonte.TypeImageAnnotation, Mode: m, Params: body}
		payload, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		nj = append(nj, store.NewJob{Line: p.Line, UniqueID: uid, TaskType: p.TaskType, AsynqType: jobs.TypeSubmit,
			Queue: jobs.Queue(m), TaskID: jobs.TaskID(m, uid), Payload: payload,
			MaxRetry: jobs.DefaultMaxRetry, Timeout: jobs.DefaultTimeout})
		tasks = append(tasks, asynq.NewTask(jobs.TypeSubmit, payload))
	}
	if _, err := st.AddJobs(ctx, run, nj); err != nil {
		t.Fatalf("AddJobs: %v", err)
	}
	if err := st.FinishEnqueue(ctx, run.ID); err != nil {
		t.Fatalf("FinishEnqueue: %v", err)
	}
	return run, tasks
}

// job reads one job record of a task.
func job(t *testing.T, st *store.Store, task *asynq.Task) *store.Job {
	t.Helper()
	p, err := jobs.DecodeSubmitPayload(task.Payload())
	if err != nil {
		t.Fatal(err)
	}
	j, err := st.GetJob(context.Background(), p.Mode, p.UniqueID)
	if err != nil {
		t.Fatalf("GetJob: %v", err)
	}
	return j
}
