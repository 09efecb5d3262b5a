package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/refonte-ai/refonte-batch/internal/testkit"
	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

const (
	testKey = "test_worker_key"
	liveKey = "live_worker_key"
	cbKey   = "worker_callback_auth"
)

// startSandbox starts the sandbox with this package's keys (testkit.Sandbox).
func startSandbox(tb testing.TB, cfg sandbox.Config) (*sandbox.Server, string) {
	tb.Helper()
	cfg.TestKey, cfg.LiveKey, cfg.CallbackAuthKey = testKey, liveKey, cbKey
	return testkit.Sandbox(tb, cfg)
}

// testConfig is a valid worker config on redisURL and apiURL with both
// keys, listening on a free loopback port that CallbackURL names.
func testConfig(tb testing.TB, redisURL, apiURL string) Config {
	addr := fmt.Sprintf("127.0.0.1:%d", testredis.FreePort(tb))
	return Config{RedisURL: redisURL, APIURL: apiURL, TestKey: testKey, LiveKey: liveKey, CallbackAuthKey: cbKey,
		Concurrency: 20, Listen: addr, CallbackURL: "http://" + addr + "/callback", RateLimit: 0, RateBurst: 1,
		CallbackGrace: time.Minute, ShutdownTimeout: 5 * time.Second}
}

// running is a Worker running in the background.
type running struct {
	w      *Worker
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// stop shuts the worker down (once) and returns Run's result.
func (r *running) stop() error {
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(60 * time.Second):
			r.err = errors.New("worker did not stop within 60s")
		}
	})
	return r.err
}

// startWorker builds and runs a worker; it is stopped in tb.Cleanup.
func startWorker(tb testing.TB, cfg Config, logger *zap.Logger) *running {
	tb.Helper()
	if logger == nil {
		if t, ok := tb.(*testing.T); ok {
			logger = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
		} else {
			logger = zap.NewNop()
		}
	}
	w, err := New(cfg, logger)
	if err != nil {
		tb.Fatalf("worker.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{w: w, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx) }()
	tb.Cleanup(func() {
		if err := r.stop(); err != nil {
			tb.Errorf("worker stop: %v", err)
		}
	})
	return r
}

// rowParams is a valid imageannotation body for the sandbox's demo project.
func rowParams(i int) map[string]any {
	return map[string]any{
		"project":    "demo",
		"attachment": fmt.Sprintf("https://example.com/img/%d.jpg", i),
		"geometries": map[string]any{"box": map[string]any{"objects_to_annotate": []string{"car"}}},
	}
}

// addRun enqueues a run of n rows of mode m (their jobs and asynq tasks).
func addRun(tb testing.TB, st *store.Store, m refonte.Mode, n int, callbackURL string) *store.Run {
	tb.Helper()
	return addPriorityRun(tb, st, m, jobs.PriorityNormal, n, callbackURL)
}

// addPriorityRun enqueues a run of n rows of mode m and priority prio, as
// enqueue -priority does (its jobs wait in the priority's queue).
func addPriorityRun(tb testing.TB, st *store.Store, m refonte.Mode, prio jobs.Priority, n int, callbackURL string) *store.Run {
	tb.Helper()
	ctx := context.Background()
	run := &store.Run{ID: store.NewRunID(time.Now()), Dataset: "rows.jsonl", Type: refonte.TypeImageAnnotation,
		Project: "demo", Mode: m, CallbackURL: callbackURL, CreatedAt: time.Now(), Priority: string(prio)}
	if err := st.CreateRun(ctx, run); err != nil {
		tb.Fatalf("CreateRun: %v", err)
	}
	const chunk = 1000
	for start := 0; start < n; start += chunk {
		var nj []store.NewJob
		for i := start; i < min(n, start+chunk); i++ {
			uid := fmt.Sprintf("%s-row-%d", run.ID, i)
			params := rowParams(i)
			params["unique_id"] = uid
			if callbackURL != "" {
				params["callback_url"] = callbackURL
			}
			body, err := json.Marshal(params)
			if err != nil {
				tb.Fatal(err)
			}
			p := jobs.SubmitPayload{V: jobs.PayloadVersion, Run: run.ID, Line: int64(i + 1), UniqueID: uid,
				TaskType: refonte.TypeImageAnnotation, Mode: m, Params: body}
			nj = append(nj, store.NewJob{Line: p.Line, UniqueID: uid, TaskType: p.TaskType, AsynqType: jobs.TypeSubmit,
				Queue: jobs.PriorityQueue(m, prio), TaskID: jobs.TaskID(m, uid), Payload: jobs.AppendSubmitPayload(nil, p),
				MaxRetry: jobs.DefaultMaxRetry, Timeout: jobs.DefaultTimeout})
		}
		if _, err := st.AddJobs(ctx, run, nj); err != nil {
			tb.Fatalf("AddJobs: %v", err)
		}
	}
	if err := st.FinishEnqueue(ctx, run.ID); err != nil {
		tb.Fatalf("FinishEnqueue: %v", err)
	}
	return run
}

// waitFor polls cond every 20ms until it holds or timeout passes.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s; last state: %s", timeout, what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runState reads a run's record.
func runState(tb testing.TB, st *store.Store, id string) *store.Run {
	tb.Helper()
	r, err := st.GetRun(context.Background(), id)
	if err != nil {
		tb.Fatalf("GetRun: %v", err)
	}
	return r
}
