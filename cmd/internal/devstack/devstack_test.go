package devstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"

	"github.com/refonte-ai/refonte-batch/app/enqueue"
	"github.com/refonte-ai/refonte-batch/cmd/internal/devstack"
	"github.com/refonte-ai/refonte-batch/internal/syncbuf"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

// startStack starts a stack with fast completions, closed in t.Cleanup.
func startStack(t *testing.T, opts devstack.Options) *devstack.Stack {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = zaptest.NewLogger(t)
	}
	if opts.CompleteAfter == 0 {
		opts.CompleteAfter = 50 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := devstack.Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// submit runs enqueue's submit (with -wait) against the stack and returns
// the summary and the store it used.
func submit(t *testing.T, s *devstack.Stack, datasetPath string, extra ...string) (*enqueue.Summary, *store.Store, error) {
	t.Helper()
	env := map[string]string{}
	for _, kv := range s.EnqueueEnv() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	args := append([]string{"-project", "demo", "-wait"}, extra...)
	cfg, err := enqueue.ParseSubmit(append(args, datasetPath), func(k string) string { return env[k] }, &bytes.Buffer{})
	if err != nil {
		t.Fatalf("ParseSubmit: %v", err)
	}
	rdb, err := enqueue.OpenRedis(cfg.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	st := store.New(rdb, store.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sum, err := enqueue.Submit(ctx, st, cfg, enqueue.SubmitOptions{PollInterval: 20 * time.Millisecond})
	return sum, st, err
}

func writeCSV(t *testing.T, rows int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("attachment,metadata.n,geometries:json\n")
	for i := range rows {
		fmt.Fprintf(&b, "https://images.example.com/dev/%04d.jpg,%d,\"{\"\"box\"\":{\"\"objects_to_annotate\"\":[\"\"car\"\"]}}\"\n", i, i)
	}
	p := filepath.Join(t.TempDir(), "rows.csv")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestStackRunsABatch pushes rows through enqueue, the worker, the sandbox
// and the callbacks, all in process, and checks every row completed with
// the sandbox's response and exactly one task created per row.
func TestStackRunsABatch(t *testing.T) {
	s := startStack(t, devstack.Options{})
	const rows = 12
	sum, st, err := submit(t, s, writeCSV(t, rows), "-type", "imageannotation")
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if sum.Valid != rows || sum.Invalid != 0 || sum.WaitCounts == nil || sum.Completed != rows || sum.Failed != 0 {
		t.Fatalf("summary = %+v (wait %+v), want %d valid rows all completed", sum, sum.WaitCounts, rows)
	}
	if sum.State != store.RunDone {
		t.Errorf("run state = %q, want %q", sum.State, store.RunDone)
	}
	var out bytes.Buffer
	n, err := enqueue.Results(context.Background(), st, sum.RunID, &out)
	if err != nil || n != rows {
		t.Fatalf("Results = %d, %v; want %d lines", n, err, rows)
	}
	for i, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r enqueue.ResultLine
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("result line %d: %v: %s", i, err, line)
		}
		if r.State != string(store.JobCompleted) || r.TaskID == "" || len(r.Response) == 0 {
			t.Errorf("result line %d = %s, want completed with a task_id and a response", i, line)
		}
	}
	stats := s.Sandbox().Stats()
	if stats.TasksCreated != rows {
		t.Errorf("sandbox created %d tasks, want %d (one per row)", stats.TasksCreated, rows)
	}
}

// TestStackEndpoints checks the URLs the stack reports: Redis answers, the
// sandbox accepts its quick-try key, the worker serves /healthz, and every
// address is on loopback.
func TestStackEndpoints(t *testing.T) {
	s := startStack(t, devstack.Options{})
	ctx := context.Background()
	opt, err := redis.ParseURL(s.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Errorf("PING %s: %v", s.RedisURL(), err)
	}
	for _, tc := range []struct {
		name, url, user string
		want            int
	}{
		{"sandbox with the quick-try key", s.SandboxURL() + "/projects", sandbox.DefaultTestKey, http.StatusOK},
		{"sandbox without a key", s.SandboxURL() + "/projects", "", http.StatusUnauthorized},
		{"worker healthz", "http://" + s.WorkerAddr().String() + "/healthz", "", http.StatusOK},
		{"worker readyz", "http://" + s.WorkerAddr().String() + "/readyz", "", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tc.url, nil)
			if tc.user != "" {
				req.SetBasicAuth(tc.user, "")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("GET %s = %d, want %d", tc.url, resp.StatusCode, tc.want)
			}
		})
	}
	for _, u := range []string{s.RedisURL(), s.SandboxURL(), s.CallbackURL()} {
		if !strings.Contains(u, "//127.0.0.1:") {
			t.Errorf("%s is not on 127.0.0.1", u)
		}
	}
	if !strings.HasSuffix(s.CallbackURL(), "/callback") {
		t.Errorf("CallbackURL = %s", s.CallbackURL())
	}
	cmd := s.EnqueueCommand("-type", "imageannotation", "x.csv")
	if want := "REDIS_URL=" + s.RedisURL() + " go run ./cmd/enqueue -callback-url " + s.CallbackURL() + " -type imageannotation x.csv"; cmd != want {
		t.Errorf("EnqueueCommand = %q, want %q", cmd, want)
	}
}

// TestStartRefusesNonLoopback checks that no part of the stack listens
// beyond loopback.
func TestStartRefusesNonLoopback(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts devstack.Options
	}{
		{"redis on all interfaces", devstack.Options{RedisAddr: ":0"}},
		{"sandbox on 0.0.0.0", devstack.Options{SandboxAddr: "0.0.0.0:0"}},
		{"worker on a LAN address", devstack.Options{WorkerAddr: "192.168.1.10:8080"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := devstack.Start(context.Background(), tc.opts)
			if !errors.Is(err, devstack.ErrNotLoopback) {
				if s != nil {
					_ = s.Close()
				}
				t.Fatalf("Start = %v, want ErrNotLoopback", err)
			}
		})
	}
}

// TestCloseStopsEverything checks that Close releases the ports and leaves
// no goroutine behind, and that a second Close is harmless.
func TestCloseStopsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := devstack.Start(ctx, devstack.Options{Logger: zaptest.NewLogger(t), CompleteAfter: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	worker := "http://" + s.WorkerAddr().String() + "/healthz"
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case <-s.Done():
	default:
		t.Error("Done is not closed after Close")
	}
	client := &http.Client{Transport: &http.Transport{}, Timeout: time.Second}
	if resp, err := client.Get(worker); err == nil {
		resp.Body.Close()
		t.Errorf("the worker still answers after Close")
	}
	client.CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
	// Goroutines may take a moment to return after their channels close.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("%d goroutines after Close, %d before:\n%s", n, before, buf)
	}
}

// TestRunPrintsBannerAndStops runs `worker -dev`'s Run until its context
// ends and checks what it prints.
func TestRunPrintsBannerAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncbuf.Buffer{}
	done := make(chan error, 1)
	go func() { done <- devstack.Run(ctx, devstack.Options{Logger: zaptest.NewLogger(t)}, out) }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "go run ./cmd/enqueue") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	text := out.String()
	for _, want := range []string{"redis://127.0.0.1:", "/v1", "/callback", "REDIS_URL=redis://127.0.0.1:",
		"-callback-url http://127.0.0.1:", "examples/street-scenes.csv", sandbox.DefaultTestKey} {
		if !strings.Contains(text, want) {
			t.Errorf("banner lacks %q:\n%s", want, text)
		}
	}
}

// TestStackRateLimitOnMiniredis checks that the worker's shared Redis
// limiter (a Lua script reading TIME) holds on the in-process Redis: no
// one-second window sees more creates than the rate plus the burst.
func TestStackRateLimitOnMiniredis(t *testing.T) {
	const rate, burst, rows = 5, 1, 9
	s := startStack(t, devstack.Options{RateLimit: rate, RateBurst: burst, CompleteAfter: sandbox.CompleteImmediately})
	sum, _, err := submit(t, s, writeCSV(t, rows), "-type", "imageannotation")
	if err != nil || sum.Completed != rows {
		t.Fatalf("Submit = %+v, %v; want %d completed", sum, err, rows)
	}
	stats := s.Sandbox().Stats()
	if stats.MaxCreatesIn1s > rate+burst {
		t.Errorf("max creates in 1 s = %d, want <= %d (rate %d + burst %d)", stats.MaxCreatesIn1s, rate+burst, rate, burst)
	}
	if stats.MaxCreatesIn1s < rate-1 {
		t.Errorf("max creates in 1 s = %d: the limiter held the worker far below its rate %d", stats.MaxCreatesIn1s, rate)
	}
	if stats.RateLimited != 0 {
		t.Errorf("the sandbox answered %d 429s with no rate limit of its own", stats.RateLimited)
	}
}

// TestStartFailureStopsWhatStarted takes the port of one component and
// checks that Start fails with an error naming it and stops the others.
func TestStartFailureStopsWhatStarted(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	for _, tc := range []struct {
		name string
		opts devstack.Options
		want string
	}{
		{"redis port taken", devstack.Options{RedisAddr: addr}, "redis"},
		{"sandbox port taken", devstack.Options{SandboxAddr: addr}, "sandbox"},
		{"worker port taken", devstack.Options{WorkerAddr: addr}, "worker"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			tc.opts.Logger = zaptest.NewLogger(t)
			s, err := devstack.Start(context.Background(), tc.opts)
			if err == nil {
				_ = s.Close()
				t.Fatal("Start succeeded on a taken port")
			}
			if s != nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start = %v, %v; want nil and an error about the %s", s, err, tc.want)
			}
			deadline := time.Now().Add(5 * time.Second)
			for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if n := runtime.NumGoroutine(); n > before {
				t.Errorf("%d goroutines after a failed Start, %d before", n, before)
			}
		})
	}
}
