package console_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/refonte-ai/refonte-batch/app/console"
	"github.com/refonte-ai/refonte-batch/internal/testkit"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// newStore returns a store with its own key prefix on the shared test Redis.
func newStore(t testing.TB) *store.Store {
	t.Helper()
	st, _, _ := testkit.SharedStore(t)
	return st
}

// newConsole returns a console on st with opts (Store set).
func newConsole(t testing.TB, st *store.Store, opts console.Options) *console.Server {
	t.Helper()
	opts.Store = st
	c, err := console.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// seedRun creates a run of rows rows, enqueued as enqueue does, and
// applies outcomes to its first rows: line i (1-based) gets outs[i-1].
func seedRun(t testing.TB, st *store.Store, r *store.Run, rows int, outs ...func(uid string) error) *store.Run {
	t.Helper()
	ctx := context.Background()
	if r.Mode == "" {
		r.Mode = refonte.ModeTest
	}
	if err := st.CreateRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	js := make([]store.NewJob, rows)
	for i := range rows {
		uid := fmt.Sprintf("%s-%d", r.ID, i+1)
		p := jobs.SubmitPayload{Run: r.ID, Line: int64(i + 1), UniqueID: uid, TaskType: refonte.TypeImageAnnotation,
			Mode: r.Mode, Params: []byte(`{"attachment":"https://x/a.png"}`)}
		task, err := jobs.NewSubmitTask(p)
		if err != nil {
			t.Fatal(err)
		}
		js[i] = store.NewJob{Line: int64(i + 1), UniqueID: uid, TaskType: refonte.TypeImageAnnotation,
			AsynqType: task.Type(), Queue: jobs.Queue(r.Mode), TaskID: jobs.TaskID(r.Mode, uid),
			Payload: task.Payload(), MaxRetry: jobs.DefaultMaxRetry, Timeout: jobs.DefaultTimeout}
	}
	if _, err := st.AddJobs(ctx, r, js); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishEnqueue(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	for i, o := range outs {
		if err := o(fmt.Sprintf("%s-%d", r.ID, i+1)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.GetRun(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// completed and failed are outcomes for seedRun.
func completed(st *store.Store, m refonte.Mode) func(string) error {
	return func(uid string) error {
		_, err := st.RecordCreatedTerminal(context.Background(), m, uid,
			store.Outcome{TaskID: "t-" + uid, Status: refonte.StatusCompleted, Response: []byte(`{"label":"cat"}`)})
		return err
	}
}

func failed(st *store.Store, m refonte.Mode, msg string) func(string) error {
	return func(uid string) error {
		_, err := st.Fail(context.Background(), m, uid, msg)
		return err
	}
}

// get serves one request and returns the status and body.
func get(t testing.TB, h http.Handler, path string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b), rec.Result().Header
}
