package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// received is what a handler saw of one task.
type received struct {
	typ, queue, id string
	payload        string
	maxRetry       int
	retried        int
	timeout        time.Duration // deadline - start
}

// startServer runs a real asynq.Server on the env's Redis; handle decides
// each task's result. It is shut down in t.Cleanup.
func startServer(t *testing.T, e *env, handle func(context.Context, *asynq.Task) error) {
	t.Helper()
	o, err := redis.ParseURL(e.url)
	if err != nil {
		t.Fatal(err)
	}
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: o.Addr}, asynq.Config{
		Concurrency:              4,
		Queues:                   map[string]int{jobs.Queue(refonte.ModeTest): 1, jobs.Queue(refonte.ModeLive): 1},
		TaskCheckInterval:        20 * time.Millisecond,
		DelayedTaskCheckInterval: 100 * time.Millisecond,
		RetryDelayFunc:           func(int, error, *asynq.Task) time.Duration { return 0 },
		LogLevel:                 asynq.FatalLevel,
	})
	if err := srv.Start(asynq.HandlerFunc(handle)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
}

// recorder collects what the handler received, by task ID.
type recorder struct {
	mu  sync.Mutex
	got map[string][]received
}

func (r *recorder) record(ctx context.Context, task *asynq.Task) received {
	start := time.Now()
	q, _ := asynq.GetQueueName(ctx)
	id, _ := asynq.GetTaskID(ctx)
	mr, _ := asynq.GetMaxRetry(ctx)
	rc, _ := asynq.GetRetryCount(ctx)
	dl, _ := ctx.Deadline()
	rv := received{typ: task.Type(), queue: q, id: id, payload: string(task.Payload()), maxRetry: mr, retried: rc, timeout: dl.Sub(start)}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.got == nil {
		r.got = map[string][]received{}
	}
	r.got[id] = append(r.got[id], rv)
	return rv
}

func (r *recorder) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got[id])
}

func (r *recorder) ids() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func TestAddJobsTasksProcessedByAsynqServer(t *testing.T) {
	e := newEnv(t)
	run := e.createRun(refonte.ModeTest)
	const n = 20
	js := make([]store.NewJob, n)
	for i := range js {
		js[i] = newJob(t, run, int64(i+1), fmt.Sprintf("u%d", i))
	}
	outs, err := e.st.AddJobs(e.ctx, run, js)
	if err != nil || count(outs, store.AddedNew) != n {
		t.Fatalf("AddJobs = %v, %v", outs, err)
	}

	// The inspector sees exactly what jobs.NewSubmitTask would have enqueued.
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	for _, j := range js[:3] {
		info, err := insp.GetTaskInfo(j.Queue, j.TaskID)
		if err != nil {
			t.Fatal(err)
		}
		if info.ID != j.TaskID || info.Queue != jobs.Queue(refonte.ModeTest) || info.Type != jobs.TypeSubmit ||
			info.MaxRetry != jobs.DefaultMaxRetry || info.Timeout != jobs.DefaultTimeout ||
			info.State != asynq.TaskStatePending || string(info.Payload) != string(j.Payload) {
			t.Fatalf("task info = %+v", info)
		}
	}
	qi, err := insp.GetQueueInfo(jobs.Queue(refonte.ModeTest))
	if err != nil || qi.Pending != n {
		t.Fatalf("queue info = %+v, %v", qi, err)
	}

	// A real server processes them; the first attempt of u3 fails and is retried.
	var rec recorder
	startServer(t, e, func(ctx context.Context, task *asynq.Task) error {
		rv := rec.record(ctx, task)
		if rv.id == jobs.TaskID(refonte.ModeTest, "u3") && rv.retried == 0 {
			return errors.New("first attempt fails")
		}
		return nil
	})
	waitFor(t, 20*time.Second, "every task processed", func() bool {
		return rec.ids() == n && rec.count(jobs.TaskID(refonte.ModeTest, "u3")) == 2
	})
	for _, j := range js {
		got := rec.got[j.TaskID][0]
		if got.typ != j.AsynqType || got.queue != j.Queue || got.payload != string(j.Payload) || got.maxRetry != jobs.DefaultMaxRetry {
			t.Fatalf("task %s received as %+v", j.TaskID, got)
		}
		if got.timeout < jobs.DefaultTimeout-10*time.Second || got.timeout > jobs.DefaultTimeout {
			t.Fatalf("task %s handler deadline in %v, want about %v", j.TaskID, got.timeout, jobs.DefaultTimeout)
		}
		if _, err := jobs.DecodeSubmitPayload([]byte(got.payload)); err != nil {
			t.Fatal(err)
		}
	}
	if r := rec.got[jobs.TaskID(refonte.ModeTest, "u3")]; r[1].retried != 1 {
		t.Fatalf("u3 attempts = %+v", r)
	}
}

func TestAddJobsTaskIDConflictWithAsynqClient(t *testing.T) {
	e := newEnv(t)
	run := e.createRun(refonte.ModeTest)
	j := newJob(t, run, 1, "dup")
	task, err := jobs.NewSubmitTask(jobs.SubmitPayload{Run: "other", Line: 9, UniqueID: "dup",
		TaskType: refonte.TypeImageAnnotation, Mode: refonte.ModeTest, Params: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	cl := asynq.NewClientFromRedisClient(e.rdb)
	if _, err := cl.Enqueue(task); err != nil {
		t.Fatal(err)
	}
	outs, err := e.st.AddJobs(e.ctx, run, []store.NewJob{j})
	if err != nil || outs[0] != store.AddedNew {
		t.Fatalf("AddJobs = %v, %v", outs, err)
	}
	pending := "asynq:{" + j.Queue + "}:pending"
	if n := e.rdb.LLen(e.ctx, pending).Val(); n != 1 {
		t.Fatalf("pending = %d, want 1 (no duplicate task)", n)
	}
	info, err := asynq.NewInspectorFromRedisClient(e.rdb).GetTaskInfo(j.Queue, j.TaskID)
	if err != nil || string(info.Payload) != string(task.Payload()) {
		t.Fatalf("the existing task was overwritten: %+v, %v", info, err)
	}
	// And the other way round: asynq.Client refuses a task AddJobs wrote.
	j2 := newJob(t, run, 2, "mine")
	if _, err := e.st.AddJobs(e.ctx, run, []store.NewJob{j2}); err != nil {
		t.Fatal(err)
	}
	t2, _ := jobs.NewSubmitTask(jobs.SubmitPayload{Run: run.ID, Line: 2, UniqueID: "mine",
		TaskType: refonte.TypeImageAnnotation, Mode: refonte.ModeTest, Params: []byte(`{}`)})
	if _, err := cl.Enqueue(t2); !errors.Is(err, asynq.ErrTaskIDConflict) {
		t.Fatalf("asynq.Client.Enqueue after AddJobs = %v, want ErrTaskIDConflict", err)
	}
}

func TestAddJobsDuplicateAndRepair(t *testing.T) {
	e := newEnv(t)
	run := e.createRun(refonte.ModeTest)
	e.addRows(run, 1, 5)
	pending := "asynq:{" + jobs.Queue(refonte.ModeTest) + "}:pending"

	// Same rows again, same run and a re-run: duplicates, no new task.
	if outs := e.addRows(run, 1, 5); count(outs, store.AddedDuplicate) != 5 {
		t.Fatalf("re-add = %v", outs)
	}
	run2 := e.createRun(refonte.ModeTest)
	if outs := e.addRows(run2, 1, 5); count(outs, store.AddedDuplicate) != 5 {
		t.Fatalf("re-run = %v", outs)
	}
	if n := e.rdb.LLen(e.ctx, pending).Val(); n != 5 {
		t.Fatalf("pending = %d, want 5", n)
	}

	// Lose two tasks (as a Redis crash would) and re-run: they are repaired.
	for _, uid := range []string{"uid-2", "uid-4"} {
		id := jobs.TaskID(refonte.ModeTest, uid)
		e.rdb.Del(e.ctx, "asynq:{"+jobs.Queue(refonte.ModeTest)+"}:t:"+id)
		e.rdb.LRem(e.ctx, pending, 0, id)
	}
	run3 := e.createRun(refonte.ModeTest)
	outs := e.addRows(run3, 1, 5)
	want := []store.AddOutcome{store.AddedDuplicate, store.AddedRepaired, store.AddedDuplicate, store.AddedRepaired, store.AddedDuplicate}
	for i := range want {
		if outs[i] != want[i] {
			t.Fatalf("outcomes = %v, want %v", outs, want)
		}
	}
	if c := e.counters(run3.ID); c != (store.Counters{Rows: 5, Valid: 5, Duplicate: 5}) {
		t.Fatalf("run3 counters = %+v", c)
	}
	if c := e.counters(run.ID); c != (store.Counters{Rows: 10, Valid: 10, Enqueued: 5, Duplicate: 5}) {
		t.Fatalf("run counters = %+v", c)
	}
	var rec recorder
	startServer(t, e, func(ctx context.Context, task *asynq.Task) error { rec.record(ctx, task); return nil })
	waitFor(t, 20*time.Second, "5 tasks processed", func() bool { return rec.ids() == 5 })
	if n := rec.count(jobs.TaskID(refonte.ModeTest, "uid-2")); n != 1 {
		t.Fatalf("repaired task processed %d times", n)
	}
	// A submitted job whose task is gone is not repaired (its task is done).
	if _, err := e.st.MarkSubmitted(e.ctx, refonte.ModeTest, "uid-1", "t1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "queue drained", func() bool { return e.rdb.LLen(e.ctx, pending).Val() == 0 })
	run4 := e.createRun(refonte.ModeTest)
	if outs := e.addRows(run4, 1, 1); outs[0] != store.AddedDuplicate {
		t.Fatalf("submitted job re-added = %v", outs)
	}
	if c := e.counters(run4.ID); c != (store.Counters{Rows: 1, Valid: 1, Duplicate: 1, Submitted: 1}) {
		t.Fatalf("run4 counters = %+v", c)
	}
}

func TestAddJobsRefusesBadJobs(t *testing.T) {
	e := newEnv(t)
	run := e.createRun(refonte.ModeTest)
	good := newJob(t, run, 1, "ok")
	for name, mod := range map[string]func(*store.NewJob){
		"no unique_id":         func(j *store.NewJob) { j.UniqueID = "" },
		"no task ID":           func(j *store.NewJob) { j.TaskID = "" },
		"no queue":             func(j *store.NewJob) { j.Queue = "" },
		"no type":              func(j *store.NewJob) { j.AsynqType = "" },
		"line break in the ID": func(j *store.NewJob) { j.UniqueID = "a\nb" },
	} {
		bad := good
		mod(&bad)
		if _, err := e.st.AddJobs(e.ctx, run, []store.NewJob{good, bad}); !errors.Is(err, store.ErrBadJob) {
			t.Errorf("%s: err = %v, want ErrBadJob", name, err)
		}
	}
	if c := e.counters(run.ID); c != (store.Counters{}) {
		t.Fatalf("a refused batch was counted: %+v", c)
	}
	if _, err := e.st.AddJobs(e.ctx, &store.Run{ID: run.ID, Mode: "prod"}, []store.NewJob{good}); err == nil {
		t.Fatal("AddJobs with an unknown mode succeeded")
	}
	if outs, err := e.st.AddJobs(e.ctx, run, nil); err != nil || len(outs) != 0 {
		t.Fatalf("AddJobs(nil) = %v, %v", outs, err)
	}
}
