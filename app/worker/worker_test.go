package worker

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/internal/testkit"
	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

// TestPipelineAccountsForEveryRow runs rows through a real redis-server,
// the worker (asynq server, submit handler, callback receiver,
// reconciler) and the sandbox, with and without injected faults: every row
// is created exactly once at the sandbox and completed in the store.
func TestPipelineAccountsForEveryRow(t *testing.T) {
	rows := 300
	if testing.Short() {
		rows = 100
	}
	cases := []struct {
		name   string
		faults sandbox.Config
	}{
		{"clean", sandbox.Config{}},
		{"lost responses and errors", sandbox.Config{LostResponseRate: 0.3, ErrorRate: 0.2}},
		{"callbacks dropped, duplicated and early", sandbox.Config{CallbackDropRate: 0.2, CallbackDupRate: 0.3, CallbackEarlyRate: 0.2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			redisURL := testredis.Fresh(t)
			st, _ := testkit.StoreOn(t, redisURL, store.Options{})
			sbCfg := c.faults
			sbCfg.CompleteAfter = 20 * time.Millisecond
			sb, api := startSandbox(t, sbCfg)
			cfg := testConfig(t, redisURL, api)
			cfg.CallbackGrace = time.Second // the reconciler picks up dropped callbacks quickly
			run := addRun(t, st, refonte.ModeTest, rows, cfg.CallbackURL)
			startWorker(t, cfg, nil)
			waitFor(t, 90*time.Second, "every row completed", func() (bool, string) {
				r := runState(t, st, run.ID)
				return r.Completed == int64(rows) && r.State == store.RunDone, fmt.Sprintf("%s %+v", r.State, r.Counters)
			})
			r := runState(t, st, run.ID)
			if r.Failed != 0 || r.Submitted != int64(rows) || r.Completed != int64(rows) {
				t.Errorf("run counters %+v: want %d submitted and completed, 0 failed", r.Counters, rows)
			}
			s := sb.Stats()
			if s.TasksCreated != int64(rows) || s.UniqueIDsCreatedTwice != 0 {
				t.Errorf("sandbox: tasks_created %d (want %d), unique_ids_created_twice %d (want 0); stats %+v",
					s.TasksCreated, rows, s.UniqueIDsCreatedTwice, s)
			}
			if got := sb.CountByStatus(refonte.ModeTest)[refonte.StatusCompleted]; got != rows {
				t.Errorf("sandbox completed tasks %d, want %d", got, rows)
			}
			t.Logf("sandbox: create_calls %d, 409s %d, lost responses %d, errors injected %d, callbacks ok %d dropped %d duplicated %d early %d",
				s.CreateCalls, s.DuplicateUniqueID, s.LostResponses, s.ErrorsInjected, s.CallbacksOK, s.CallbacksDropped,
				s.CallbacksDuplicated, s.CallbacksEarly)
		})
	}
}

// TestPipelineRetriesExhaustedFailsJob: with no retries left, a job whose
// create keeps failing is failed in the store (accounted for), not lost.
func TestPipelineRetriesExhaustedFailsJob(t *testing.T) {
	redisURL := testredis.Fresh(t)
	st, _ := testkit.StoreOn(t, redisURL, store.Options{})
	sb, api := startSandbox(t, sandbox.Config{NoAutoComplete: true})
	sb.SetDown(true)
	run := &store.Run{ID: store.NewRunID(time.Now()), Dataset: "x", Mode: refonte.ModeTest, Project: "demo", CreatedAt: time.Now()}
	ctx := context.Background()
	if err := st.CreateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	p := jobs.SubmitPayload{V: jobs.PayloadVersion, Run: run.ID, Line: 1, UniqueID: run.ID + "-1",
		TaskType: refonte.TypeImageAnnotation, Mode: refonte.ModeTest, Params: []byte(`{"project":"demo"}`)}
	if _, err := st.AddJobs(ctx, run, []store.NewJob{{Line: 1, UniqueID: p.UniqueID, TaskType: p.TaskType,
		AsynqType: jobs.TypeSubmit, Queue: jobs.Queue(p.Mode), TaskID: jobs.TaskID(p.Mode, p.UniqueID),
		Payload: jobs.AppendSubmitPayload(nil, p), MaxRetry: 0, Timeout: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishEnqueue(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, redisURL, api)
	cfg.ClientMaxElapsed = 300 * time.Millisecond
	startWorker(t, cfg, nil)
	waitFor(t, 60*time.Second, "the job failed", func() (bool, string) {
		j, err := st.GetJob(ctx, p.Mode, p.UniqueID)
		if err != nil {
			return false, err.Error()
		}
		return j.State == store.JobFailed, string(j.State) + " " + j.Error
	})
	if j, _ := st.GetJob(ctx, p.Mode, p.UniqueID); !strings.Contains(j.Error, "gave up after 1 attempts") {
		t.Errorf("job error %q, want it to say the retries are exhausted", j.Error)
	}
}

// TestLiveDailyLimitAcrossWorkers is issue 8's test: 3 workers × 50
// concurrency with -live-daily-limit 50 create exactly 50 of 200 live
// tasks; the rest wait (run paused, none failed) until the cap is raised.
func TestLiveDailyLimitAcrossWorkers(t *testing.T) {
	const rows, limit = 200, 50
	redisURL := testredis.Fresh(t)
	st, _ := testkit.StoreOn(t, redisURL, store.Options{})
	sb, api := startSandbox(t, sandbox.Config{NoAutoComplete: true})
	run := addRun(t, st, refonte.ModeLive, rows, "")

	cfg := testConfig(t, redisURL, api)
	cfg.TestKey = ""
	cfg.Concurrency = 50
	cfg.LiveDailyLimit = limit
	cfg.PausedRecheck = 500 * time.Millisecond
	var ws []*running
	for range 3 {
		c := cfg
		c.Listen = fmt.Sprintf("127.0.0.1:%d", testredis.FreePort(t))
		ws = append(ws, startWorker(t, c, nil))
	}
	opt, _ := redis.ParseURL(redisURL)
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: opt.Addr})
	t.Cleanup(func() { _ = insp.Close() })
	waitFor(t, 60*time.Second, "the cap reached and the run paused", func() (bool, string) {
		r := runState(t, st, run.ID)
		s := sb.Stats()
		return s.TasksCreated == limit && r.State == store.RunPaused && r.Submitted == limit,
			fmt.Sprintf("tasks_created %d, run %s %q %+v", s.TasksCreated, r.State, r.PausedReason, r.Counters)
	})
	// Let the paused jobs come back a few times: still exactly 50, none failed or lost.
	deadline := time.Now().Add(3 * cfg.PausedRecheck)
	for time.Now().Before(deadline) {
		if s := sb.Stats(); s.TasksCreated != limit {
			t.Fatalf("tasks_created = %d while paused, want %d", s.TasksCreated, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r := runState(t, st, run.ID)
	wantReason := fmt.Sprintf("live daily limit %d reached for %s UTC", limit, time.Now().UTC().Format(time.DateOnly))
	if r.State != store.RunPaused || r.PausedReason != wantReason || r.Failed != 0 || r.Submitted != limit {
		t.Fatalf("run = %s %q %+v; want paused %q, %d submitted, 0 failed", r.State, r.PausedReason, r.Counters, wantReason, limit)
	}
	info, err := insp.GetQueueInfo(jobs.Queue(refonte.ModeLive))
	if err != nil {
		t.Fatal(err)
	}
	if waiting := info.Pending + info.Active + info.Scheduled + info.Retry; waiting != rows-limit || info.Archived != 0 {
		t.Fatalf("queue %+v: want %d jobs waiting, none archived", info, rows-limit)
	}
	if n, _ := st.LiveSpend(context.Background(), time.Now()); n != limit {
		t.Errorf("live spend = %d, want %d", n, limit)
	}

	// Raise the cap by restarting the workers with a higher -live-daily-limit.
	for _, w := range ws {
		if err := w.stop(); err != nil {
			t.Fatalf("worker stop: %v", err)
		}
	}
	cfg.LiveDailyLimit = 1000
	for range 3 {
		c := cfg
		c.Listen = fmt.Sprintf("127.0.0.1:%d", testredis.FreePort(t))
		startWorker(t, c, nil)
	}
	waitFor(t, 60*time.Second, "every row submitted after the cap was raised", func() (bool, string) {
		r := runState(t, st, run.ID)
		return r.Submitted == rows && r.State != store.RunPaused, fmt.Sprintf("run %s %+v", r.State, r.Counters)
	})
	if s := sb.Stats(); s.TasksCreated != rows || s.UniqueIDsCreatedTwice != 0 {
		t.Errorf("sandbox tasks_created %d (want %d), created twice %d", s.TasksCreated, rows, s.UniqueIDsCreatedTwice)
	}
	if r := runState(t, st, run.ID); r.Failed != 0 {
		t.Errorf("failed = %d, want 0", r.Failed)
	}
}

// TestHTTPEndpoints checks /healthz, /readyz and /metrics of a running worker.
func TestHTTPEndpoints(t *testing.T) {
	redisURL := testredis.Fresh(t)
	_, api := startSandbox(t, sandbox.Config{NoAutoComplete: true})
	r := startWorker(t, testConfig(t, redisURL, api), nil)
	base := "http://" + r.w.Addr().String()
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Errorf("/readyz = %d %s", code, body)
	}
	waitFor(t, 10*time.Second, "queue gauges in /metrics", func() (bool, string) {
		_, body := get("/metrics")
		return strings.Contains(body, `refonte_queue_tasks{queue="refonte-test",state="pending"}`) &&
			strings.Contains(body, "refonte_live_daily_limit 0") && strings.Contains(body, "go_goroutines"), body
	})
	resp, err := http.Post(base+"/callback", "application/json", strings.NewReader(`{"task_id":"x","status":"completed"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /callback without the auth header = %d, want 401", resp.StatusCode)
	}
	for _, key := range []string{testKey, liveKey, cbKey} {
		if _, body := get("/metrics"); strings.Contains(body, key) {
			t.Errorf("/metrics shows a secret")
		}
	}
}

// TestReadyzFailsWithoutRedis: /readyz is 503 when Redis does not answer, /healthz stays 200.
func TestReadyzFailsWithoutRedis(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	_, api := startSandbox(t, sandbox.Config{NoAutoComplete: true})
	r := startWorker(t, testConfig(t, srv.URL(), api), nil)
	base := "http://" + r.w.Addr().String()
	srv.Kill()
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 503} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s = %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// TestNewFailsOnBusyListenAddress: a -listen already in use is a
// configuration error at start, and nothing is left open.
func TestNewFailsOnBusyListenAddress(t *testing.T) {
	redisURL := testredis.Fresh(t)
	_, api := startSandbox(t, sandbox.Config{NoAutoComplete: true})
	cfg := testConfig(t, redisURL, api)
	startWorker(t, cfg, nil)
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "-listen") {
		t.Fatalf("New on a busy address = %v, want a -listen error", err)
	}
}

// TestShutdownHandsBackInFlightJobs: on shutdown the worker stops fetching,
// waits -shutdown-timeout for in-flight jobs, hands the rest back and
// returns nil; a second worker then finishes every row exactly once.
func TestShutdownHandsBackInFlightJobs(t *testing.T) {
	const rows = 40
	redisURL := testredis.Fresh(t)
	st, _ := testkit.StoreOn(t, redisURL, store.Options{})
	sb, api := startSandbox(t, sandbox.Config{NoAutoComplete: true, Latency: 2 * time.Second})
	run := addRun(t, st, refonte.ModeTest, rows, "")
	cfg := testConfig(t, redisURL, api)
	cfg.Concurrency = 10
	cfg.ShutdownTimeout = 500 * time.Millisecond
	first := startWorker(t, cfg, nil)
	// APICalls counts a request on arrival, before the sandbox's 2 s
	// latency (CreateCalls only after it), and nothing but creates reaches
	// the API here (the callback grace is a minute).
	waitFor(t, 10*time.Second, "-concurrency creates in flight", func() (bool, string) {
		s := sb.Stats()
		return s.APICalls >= int64(cfg.Concurrency), fmt.Sprintf("%+v", s)
	})
	time.Sleep(200 * time.Millisecond) // room for any create beyond -concurrency to show up
	if got := gaugeValue(t, first.w, "refonte_api_slots_in_use"); got != float64(cfg.Concurrency) {
		t.Errorf("refonte_api_slots_in_use = %v with every slot's create in flight, want %d", got, cfg.Concurrency)
	}
	start := time.Now()
	if err := first.stop(); err != nil {
		t.Fatalf("Run after shutdown = %v, want nil", err)
	}
	if d := time.Since(start); d > cfg.ShutdownTimeout+5*time.Second {
		t.Errorf("shutdown took %s with -shutdown-timeout %s", d, cfg.ShutdownTimeout)
	}
	// asynq ran Concurrency + prefetch jobs, but only Concurrency reached the
	// API (each create takes 2 s, longer than the whole first worker's life:
	// none was answered, so no slot was freed); the prefetched ones went
	// back to the queue unsent.
	if s := sb.Stats(); s.APICalls != int64(cfg.Concurrency) || s.CreateCalls != 0 {
		t.Errorf("the first worker made %d API calls (%d creates answered), want -concurrency %d (none answered)",
			s.APICalls, s.CreateCalls, cfg.Concurrency)
	}
	sb.SetFaults(sandbox.Faults{})
	cfg.Listen = fmt.Sprintf("127.0.0.1:%d", testredis.FreePort(t))
	startWorker(t, cfg, nil)
	waitFor(t, 60*time.Second, "every row submitted by the second worker", func() (bool, string) {
		r := runState(t, st, run.ID)
		return r.Submitted == rows, fmt.Sprintf("%+v", r.Counters)
	})
	if s := sb.Stats(); s.TasksCreated != rows || s.UniqueIDsCreatedTwice != 0 {
		t.Errorf("sandbox tasks_created %d (want %d), created twice %d", s.TasksCreated, rows, s.UniqueIDsCreatedTwice)
	}
}

// gaugeValue returns the value of an unlabelled gauge of w's registry.
func gaugeValue(t *testing.T, w *Worker, name string) float64 {
	t.Helper()
	mfs, err := w.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s in the registry", name)
	return 0
}

// TestHealthDuringCallbackFlood: with the callback cap reached by held
// authenticated callbacks and hundreds of idle and slow unauthenticated
// connections open, /healthz and /readyz answer at once, a further
// callback is answered 503, and every connection has the server's
// read, write and idle timeouts.
func TestHealthDuringCallbackFlood(t *testing.T) {
	redisURL := testredis.Fresh(t)
	_, api := startSandbox(t, sandbox.Config{NoAutoComplete: true})
	cfg := testConfig(t, redisURL, api)
	cfg.MaxCallbacks = 2
	r := startWorker(t, cfg, nil)
	srv := r.w.httpSrv
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 {
		t.Errorf("HTTP server timeouts: read header %s, read %s, write %s, idle %s; want all set",
			srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout)
	}
	addr := r.w.Addr().String()
	dial := func(head string) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if head != "" {
			if _, err := io.WriteString(c, head); err != nil {
				t.Fatal(err)
			}
		}
		return c
	}
	const slow = "POST /callback HTTP/1.1\r\nHost: w\r\nContent-Length: 100000\r\n"
	for range 2 { // held: authenticated, body pending
		dial(slow + refonte.CallbackAuthHeader + ": " + cbKey + "\r\n\r\n{")
	}
	for range 200 {
		dial(slow + "\r\n{") // unauthenticated slow body
		dial("")             // idle: not a byte
		dial("GET /healthz") // slow headers
	}
	waitFor(t, 5*time.Second, "the held callbacks in the handler", func() (bool, string) {
		n := gaugeValue(t, r.w, "refonte_callbacks_in_flight")
		return n == 2, fmt.Sprint(n)
	})
	hc := &http.Client{Timeout: 2 * time.Second}
	for _, path := range []string{"/healthz", "/readyz"} {
		start := time.Now()
		resp, err := hc.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s during the flood: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || time.Since(start) > time.Second {
			t.Errorf("GET %s during the flood: %d after %s", path, resp.StatusCode, time.Since(start))
		}
	}
	waitFor(t, 5*time.Second, "a callback beyond -max-callbacks answered 503", func() (bool, string) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/callback", strings.NewReader(`{"task_id":"x","status":"completed"}`))
		req.Header.Set(refonte.CallbackAuthHeader, cbKey)
		resp, err := hc.Do(req)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable, resp.Status
	})
}

// scrape returns the worker's /metrics text.
func scrape(t *testing.T, r *running) string {
	t.Helper()
	resp, err := http.Get("http://" + r.w.Addr().String() + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestMetricsTrueFromFirstScrape: the very first scrape after a start
// already says Redis is up (asynq's own check runs only every 15 s, so a
// rollout used to show every new pod "down") and names the build.
func TestMetricsTrueFromFirstScrape(t *testing.T) {
	redisURL := testredis.Fresh(t)
	_, api := startSandbox(t, sandbox.Config{NoAutoComplete: true})
	cfg := testConfig(t, redisURL, api)
	cfg.RateLimit = 25
	body := scrape(t, startWorker(t, cfg, nil))
	for _, want := range []string{
		"\nrefonte_redis_up 1\n",
		`refonte_build_info{goversion="` + runtime.Version() + `",revision=`,
		`refonte_rate_limit{mode="test"} 25`,
		`refonte_rate_limit{mode="live"} 25`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("first scrape lacks %q:\n%s", want, body)
		}
	}
}

// TestRunAndLimiterMetrics: the run gauges show an unfinished run's rows,
// and every create the shared limiter granted is counted.
func TestRunAndLimiterMetrics(t *testing.T) {
	redisURL := testredis.Fresh(t)
	_, api := startSandbox(t, sandbox.Config{NoAutoComplete: true})
	cfg := testConfig(t, redisURL, api)
	cfg.RateLimit = 1000
	r := startWorker(t, cfg, nil)
	st, _ := testkit.StoreOn(t, redisURL, store.Options{})
	run := addRun(t, st, refonte.ModeTest, 20, cfg.CallbackURL)
	rows := func(state string) string {
		return fmt.Sprintf(`refonte_run_rows{mode="test",run=%q,state=%q} `, run.ID, state)
	}
	waitFor(t, 20*time.Second, "the run's rows in /metrics", func() (bool, string) {
		body := scrape(t, r)
		return strings.Contains(body, rows("valid")+"20\n") && strings.Contains(body, rows("submitted")+"20\n") &&
			strings.Contains(body, rows("remaining")+"20\n") && strings.Contains(body, `refonte_runs{state="running"} 1`) &&
			strings.Contains(body, `refonte_limiter_granted_total{mode="test"} 20`) &&
			strings.Contains(body, `refonte_runs{state="canceling"} 0`) && strings.Contains(body, `refonte_runs{state="canceled"} 0`), body
	})
}
