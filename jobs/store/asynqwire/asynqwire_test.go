package asynqwire_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/jobs/store/asynqwire"
)

// TestPinnedAsynqVersion fails when go.mod requires another asynq version
// than the one this package's format is copied from. On an upgrade, compare
// the new version's internal/base/base.go (TaskKey, PendingKey, AllQueues),
// internal/proto/asynq.proto (TaskMessage's field numbers) and
// internal/rdb/rdb.go (enqueueCmd: the task hash's fields, the pending
// list) with asynqwire.go, run this package's tests, then update
// AsynqVersion.
func TestPinnedAsynqVersion(t *testing.T) {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for ; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		if filepath.Dir(dir) == dir {
			t.Fatal("no go.mod above the package")
		}
	}
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "require "))
		if len(fields) >= 2 && fields[0] == "github.com/hibiken/asynq" {
			got = fields[1]
		}
	}
	if got != asynqwire.AsynqVersion {
		t.Fatalf("go.mod requires asynq %q, asynqwire is copied from %s: re-check the format (see this test's doc)",
			got, asynqwire.AsynqVersion)
	}
}

// env is a private redis-server with a client, asynq.Client and Inspector.
type env struct {
	ctx  context.Context
	url  string
	rdb  *redis.Client
	cl   *asynq.Client
	insp *asynq.Inspector
}

func newEnv(t *testing.T) *env {
	url := testredis.Fresh(t)
	rdb := testredis.ClientOn(t, url)
	return &env{ctx: context.Background(), url: url, rdb: rdb,
		cl: asynq.NewClientFromRedisClient(rdb), insp: asynq.NewInspectorFromRedisClient(rdb)}
}

// putScript enqueues tasks with LuaEnqueue: KEYS[1] AllQueues, then per
// task i KEYS[2i] its hash, KEYS[2i+1] its pending list; ARGV[1] now ns,
// then per task i ARGV[3i-1] ID, ARGV[3i] queue, ARGV[3i+1] message.
// Returns 1 per task written, 0 per task whose hash existed.
var putScript = redis.NewScript(asynqwire.LuaEnqueue + `
local st = asynq_batch(KEYS[1])
local out = {}
for i = 1, (#KEYS - 1) / 2 do
  local b = 3 * (i - 1) + 1
  out[i] = asynq_put_task(st, KEYS[2 * i], KEYS[2 * i + 1], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[1]) and 1 or 0
end
asynq_push_pending(st)
return out
`)

// put writes tasks with putScript.
func (e *env) put(t *testing.T, tasks ...asynqwire.Task) []int64 {
	t.Helper()
	keys := []string{asynqwire.AllQueues}
	args := []any{time.Now().UnixNano()}
	for i := range tasks {
		tk := &tasks[i]
		keys = append(keys, asynqwire.TaskKey(tk.Queue, tk.ID), asynqwire.PendingKey(tk.Queue))
		args = append(args, tk.ID, tk.Queue, string(asynqwire.AppendMessage(nil, tk)))
	}
	v, err := putScript.Run(e.ctx, e.rdb, keys, args...).Int64Slice()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestMessageBytesEqualAsynqClient: asynq.Client writes, for a task with the
// same fields, the very bytes AppendMessage gives, under the key TaskKey
// names, with its ID on the list PendingKey names and its queue in
// AllQueues.
func TestMessageBytesEqualAsynqClient(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name string
		opts []asynq.Option
		task asynqwire.Task
	}{
		{name: "retry and timeout", opts: []asynq.Option{asynq.MaxRetry(25), asynq.Timeout(2 * time.Minute)},
			task: asynqwire.Task{MaxRetry: 25, Timeout: 2 * time.Minute}},
		{name: "defaults", task: asynqwire.Task{MaxRetry: 25}}, // asynq.Client's default MaxRetry
		{name: "no retry, no timeout", opts: []asynq.Option{asynq.MaxRetry(0), asynq.Timeout(0)}},
		{name: "negative retry", opts: []asynq.Option{asynq.MaxRetry(-3)}, task: asynqwire.Task{MaxRetry: -3}},
		{name: "empty payload", opts: []asynq.Option{asynq.MaxRetry(1)}, task: asynqwire.Task{MaxRetry: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.task
			want.Type, want.ID, want.Queue = "test:type", "id-"+strings.ReplaceAll(tc.name, " ", "-"), "q1"
			if tc.name != "empty payload" {
				want.Payload = []byte(`{"v":1,"params":{"a":"é"}}`)
			}
			opts := append([]asynq.Option{asynq.Queue(want.Queue), asynq.TaskID(want.ID)}, tc.opts...)
			if _, err := e.cl.EnqueueContext(e.ctx, asynq.NewTask(want.Type, want.Payload), opts...); err != nil {
				t.Fatal(err)
			}
			got, err := e.rdb.HGet(e.ctx, asynqwire.TaskKey(want.Queue, want.ID), "msg").Bytes()
			if err != nil {
				t.Fatalf("no task hash at TaskKey: %v", err)
			}
			if enc := asynqwire.AppendMessage(nil, &want); !bytes.Equal(enc, got) {
				t.Fatalf("AppendMessage differs from asynq.Client's message:\n got %x\nwant %x", enc, got)
			}
			if ids := e.rdb.LRange(e.ctx, asynqwire.PendingKey(want.Queue), 0, -1).Val(); !contains(ids, want.ID) {
				t.Fatalf("pending list %v lacks %s", ids, want.ID)
			}
			if !e.rdb.SIsMember(e.ctx, asynqwire.AllQueues, want.Queue).Val() {
				t.Fatalf("%s not in AllQueues", want.Queue)
			}
			// And asynq's task is never overwritten nor queued twice by ours.
			if out := e.put(t, want); out[0] != 0 {
				t.Fatalf("asynq_put_task over asynq.Client's task = %d, want 0", out[0])
			}
			if n := countOf(e.rdb.LRange(e.ctx, asynqwire.PendingKey(want.Queue), 0, -1).Val(), want.ID); n != 1 {
				t.Fatalf("task %s queued %d times", want.ID, n)
			}
		})
	}
}

func contains(s []string, x string) bool { return countOf(s, x) > 0 }

// countOf counts x in s.
func countOf(s []string, x string) (n int) {
	for _, v := range s {
		if v == x {
			n++
		}
	}
	return n
}

// TestWrittenTasksReadByAsynq: tasks written with LuaEnqueue are what
// asynq's Inspector reports and what its Server runs, in the order written;
// asynq.Client then refuses their IDs.
func TestWrittenTasksReadByAsynq(t *testing.T) {
	e := newEnv(t)
	var tasks []asynqwire.Task
	for i := range 10 {
		q := "qa"
		if i%3 == 0 {
			q = "qb"
		}
		tasks = append(tasks, asynqwire.Task{Type: "test:type", Payload: []byte(fmt.Sprintf(`{"n":%d}`, i)),
			ID: fmt.Sprintf("t%d", i), Queue: q, MaxRetry: 3, Timeout: time.Minute})
	}
	for i, n := range e.put(t, tasks...) {
		if n != 1 {
			t.Fatalf("task %d not written: %d", i, n)
		}
	}
	if out := e.put(t, tasks[0]); out[0] != 0 {
		t.Fatalf("a task written twice: %v", out)
	}
	for _, tk := range tasks {
		info, err := e.insp.GetTaskInfo(tk.Queue, tk.ID)
		if err != nil {
			t.Fatal(err)
		}
		if info.Type != tk.Type || string(info.Payload) != string(tk.Payload) || info.Queue != tk.Queue ||
			info.MaxRetry != tk.MaxRetry || info.Timeout != tk.Timeout || info.State != asynq.TaskStatePending {
			t.Fatalf("Inspector reads %+v for %+v", info, tk)
		}
		if _, err := e.cl.Enqueue(asynq.NewTask(tk.Type, nil), asynq.Queue(tk.Queue), asynq.TaskID(tk.ID)); !errors.Is(err, asynq.ErrTaskIDConflict) {
			t.Fatalf("asynq.Client.Enqueue of %s = %v, want ErrTaskIDConflict", tk.ID, err)
		}
	}
	for q, n := range map[string]int{"qa": 6, "qb": 4} {
		if qi, err := e.insp.GetQueueInfo(q); err != nil || qi.Pending != n {
			t.Fatalf("queue %s: %+v, %v; want %d pending", q, qi, err, n)
		}
	}

	// One worker slot: each queue's tasks run in the order written.
	var mu sync.Mutex
	var order []string
	done := make(chan struct{})
	opt, err := redis.ParseURL(e.url)
	if err != nil {
		t.Fatal(err)
	}
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: opt.Addr}, asynq.Config{Concurrency: 1,
		Queues: map[string]int{"qa": 1, "qb": 1}, TaskCheckInterval: 20 * time.Millisecond,
		LogLevel: asynq.FatalLevel})
	if err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > time.Minute {
			t.Errorf("task %s: deadline %v, want within its 1-minute timeout", id, dl)
		}
		mu.Lock()
		defer mu.Unlock()
		order = append(order, id+"="+string(task.Payload()))
		if len(order) == len(tasks) {
			close(done)
		}
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("asynq.Server ran %v of %d tasks", order, len(tasks))
	}
	var want []string
	for _, q := range []string{"qa", "qb"} {
		for _, tk := range tasks {
			if tk.Queue == q {
				want = append(want, tk.ID+"="+string(tk.Payload))
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if got := perQueue(order, tasks); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("asynq.Server ran %v, want per queue %v", got, want)
	}
}

// perQueue reorders the run IDs by queue (qa's, then qb's), keeping each
// queue's order.
func perQueue(run []string, tasks []asynqwire.Task) []string {
	queueOf := map[string]string{}
	for _, tk := range tasks {
		queueOf[tk.ID] = tk.Queue
	}
	var out []string
	for _, q := range []string{"qa", "qb"} {
		for _, r := range run {
			id, _, _ := strings.Cut(r, "=")
			if queueOf[id] == q {
				out = append(out, r)
			}
		}
	}
	return out
}
