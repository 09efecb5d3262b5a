package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

var prefixSeq atomic.Int64 // test-only uniqueness of key prefixes

// env is a store on a private redis-server (asynq's key names are fixed).
type env struct {
	t   testing.TB
	ctx context.Context
	rdb *redis.Client
	url string
	st  *store.Store
}

func newEnv(t testing.TB) *env {
	t.Helper()
	url := testredis.Fresh(t)
	return newEnvOn(t, url, store.Options{})
}

func newEnvOn(t testing.TB, url string, opts store.Options) *env {
	t.Helper()
	rdb := testredis.ClientOn(t, url)
	if opts.Prefix == "" {
		opts.Prefix = fmt.Sprintf("t%d:", prefixSeq.Add(1))
	}
	return &env{t: t, ctx: context.Background(), rdb: rdb, url: url, st: store.New(rdb, opts)}
}

// sub returns a store on the same server with a fresh prefix.
func (e *env) sub(t testing.TB) *env {
	return &env{t: t, ctx: e.ctx, rdb: e.rdb, url: e.url,
		st: store.New(e.rdb, store.Options{Prefix: fmt.Sprintf("t%d:", prefixSeq.Add(1))})}
}

func (e *env) createRun(mode refonte.Mode) *store.Run {
	e.t.Helper()
	r := &store.Run{Dataset: "d.jsonl", Mode: mode, Type: refonte.TypeImageAnnotation, Project: "p"}
	if err := e.st.CreateRun(e.ctx, r); err != nil {
		e.t.Fatal(err)
	}
	return r
}

// newJob builds the NewJob of a row exactly as enqueue does, from jobs.NewSubmitTask.
func newJob(t testing.TB, run *store.Run, line int64, uid string) store.NewJob {
	t.Helper()
	p := jobs.SubmitPayload{Run: run.ID, Line: line, UniqueID: uid, TaskType: refonte.TypeImageAnnotation,
		Mode: run.Mode, Params: []byte(`{"attachment":"https://x/` + uid + `.png"}`)}
	task, err := jobs.NewSubmitTask(p)
	if err != nil {
		t.Fatal(err)
	}
	return store.NewJob{Line: line, UniqueID: uid, TaskType: refonte.TypeImageAnnotation,
		AsynqType: task.Type(), Queue: jobs.Queue(run.Mode), TaskID: jobs.TaskID(run.Mode, uid),
		Payload: task.Payload(), MaxRetry: jobs.DefaultMaxRetry, Timeout: jobs.DefaultTimeout}
}

// enqueuedRun creates a run of mode m with rows first..first+n-1 and
// finishes its enqueue (state running).
func (e *env) enqueuedRun(m refonte.Mode, first, n int) *store.Run {
	e.t.Helper()
	run := e.createRun(m)
	e.addRows(run, first, n)
	if err := e.st.FinishEnqueue(e.ctx, run.ID); err != nil {
		e.t.Fatal(err)
	}
	return run
}

// progressedRun is enqueuedRun(m, 1, 3) with uid-1 submitted (task t1)
// and uid-2 completed (task t2); uid-3 stays enqueued.
func (e *env) progressedRun(m refonte.Mode) *store.Run {
	e.t.Helper()
	run := e.enqueuedRun(m, 1, 3)
	if _, err := e.st.MarkSubmitted(e.ctx, m, "uid-1", "t1"); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.Complete(e.ctx, m, "uid-2", outcome("t2", refonte.StatusCompleted, time.Now())); err != nil {
		e.t.Fatal(err)
	}
	return run
}

// addRows adds rows uid-<first>..uid-<first+n-1> (lines first..) and returns the outcomes.
func (e *env) addRows(run *store.Run, first, n int) []store.AddOutcome {
	e.t.Helper()
	js := make([]store.NewJob, n)
	for i := range n {
		js[i] = newJob(e.t, run, int64(first+i), fmt.Sprintf("uid-%d", first+i))
	}
	out, err := e.st.AddJobs(e.ctx, run, js)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(out) != n {
		e.t.Fatalf("AddJobs returned %d outcomes for %d rows", len(out), n)
	}
	return out
}

func (e *env) run(id string) *store.Run {
	e.t.Helper()
	r, err := e.st.GetRun(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) counters(id string) store.Counters { return e.run(id).Counters }

func (e *env) job(mode refonte.Mode, uid string) *store.Job {
	e.t.Helper()
	j, err := e.st.GetJob(e.ctx, mode, uid)
	if err != nil {
		e.t.Fatal(err)
	}
	return j
}

func count(outs []store.AddOutcome, want store.AddOutcome) int {
	n := 0
	for _, o := range outs {
		if o == want {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds or the timeout lapses.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func outcome(taskID string, st refonte.TaskStatus, at time.Time) store.Outcome {
	return store.Outcome{TaskID: taskID, Status: st, Response: []byte(`{"ok":"` + string(st) + `"}`), At: at}
}
