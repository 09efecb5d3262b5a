package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/internal/redisurl"
	"github.com/refonte-ai/refonte-batch/internal/syncbuf"
	"github.com/refonte-ai/refonte-batch/internal/testkit"
	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

const (
	testKey = "test_cmd_worker_key"
	cbKey   = "cmd_worker_callback_auth"
)

// buildWorker compiles cmd/worker into a temp dir.
func buildWorker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "worker")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestProcessStartsAndStopsOnSIGTERM runs the real binary: /healthz
// answers, SIGTERM makes it exit 0, and no secret reaches its logs.
func TestProcessStartsAndStopsOnSIGTERM(t *testing.T) {
	bin := buildWorker(t)
	redisURL := testredis.Fresh(t)
	_, api := testkit.Sandbox(t, sandbox.Config{TestKey: testKey, CallbackAuthKey: cbKey, NoAutoComplete: true})
	addr := fmt.Sprintf("127.0.0.1:%d", testredis.FreePort(t))
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	var logs syncbuf.Buffer
	cmd, done := startWorkerProc(t, bin, []string{"REDIS_URL=" + redisURL, "REFONTE_API_URL=" + api,
		"REFONTE_TEST_API_KEY_FILE=" + keyFile, "REFONTE_CALLBACK_AUTH_KEY=" + cbKey}, &logs, "-listen", addr)

	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz never answered 200: %v\nlogs:\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("worker exited with %v after SIGTERM, want 0\nlogs:\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("worker still running 20s after SIGTERM\nlogs:\n%s", logs.String())
	}
	for _, secret := range []string{testKey, cbKey} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("a secret appears in the logs")
		}
	}
	if !strings.Contains(logs.String(), "worker stopped") {
		t.Errorf("logs lack the shutdown line:\n%s", logs.String())
	}
}

// TestRunRefusesBadConfig checks the exit code 2 refusals in-process.
func TestRunRefusesBadConfig(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"no key", map[string]string{"REFONTE_CALLBACK_AUTH_KEY": "x"}, nil, 2, "no API key"},
		{"bad prefix", map[string]string{"REFONTE_TEST_API_KEY": "abc", "REFONTE_CALLBACK_AUTH_KEY": "x"}, nil, 2, "test_"},
		{"no callback key", map[string]string{"REFONTE_TEST_API_KEY": "test_abc"}, nil, 2, "REFONTE_CALLBACK_AUTH_KEY"},
		{"dev off loopback", nil, []string{"-dev", "-listen", "192.0.2.1:8080"}, 2, "127.0.0.1"},
		{"help", nil, []string{"-h"}, 0, "Usage: worker"},
		{"version without keys", nil, []string{"-version"}, 0, "worker "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer // stdout too
			code := run(c.args, func(k string) string { return c.env[k] }, &stderr, &stderr)
			if code != c.code || !strings.Contains(stderr.String(), c.want) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, c.code, stderr.String(), c.want)
			}
			if strings.Contains(stderr.String(), "test_abc") {
				t.Errorf("stderr shows the key")
			}
		})
	}
}

// TestProcessRefusesWithoutKeyExit2 checks the real exit status.
func TestProcessRefusesWithoutKeyExit2(t *testing.T) {
	bin := buildWorker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "no API key") {
		t.Fatalf("worker without keys: %v, output %q; want exit 2 and a clear message", err, out)
	}
}

// TestProcessSIGKILLAndRestart kills a worker process with SIGKILL in the
// middle of a run and starts it again: every row ends completed, each
// created exactly once at the sandbox. The killed process's in-flight jobs
// come back only after asynq's 30 s lease and its recoverer, so this test
// takes one to three minutes: it runs only with WORKER_CRASH_TEST=1.
//
//	WORKER_CRASH_TEST=1 go test -run TestProcessSIGKILLAndRestart -v ./cmd/worker/
func TestProcessSIGKILLAndRestart(t *testing.T) {
	if os.Getenv("WORKER_CRASH_TEST") != "1" {
		t.Skip("set WORKER_CRASH_TEST=1 to run (takes 1-3 minutes)")
	}
	const rows = 2000
	bin := buildWorker(t)
	redisURL := testredis.Fresh(t)
	sb, api := testkit.Sandbox(t, sandbox.Config{TestKey: testKey, CallbackAuthKey: cbKey, CompleteAfter: 10 * time.Millisecond,
		Latency: 20 * time.Millisecond, LostResponseRate: 0.05})
	addr := fmt.Sprintf("127.0.0.1:%d", testredis.FreePort(t))
	st, runID := enqueueRows(t, redisURL, rows, "http://"+addr+"/callback")

	start := func() (*exec.Cmd, chan struct{}) {
		// A rate limit keeps handlers waiting on the limiter, so some jobs are
		// in flight without a task when the process dies: they come back
		// only through asynq's lease recovery.
		cmd := exec.Command(bin, "-listen", addr, "-concurrency", "50", "-rate-limit", "400", "-callback-grace", "5s")
		cmd.Env = append(os.Environ(), "REDIS_URL="+redisURL, "REFONTE_API_URL="+api,
			"REFONTE_TEST_API_KEY="+testKey, "REFONTE_CALLBACK_AUTH_KEY="+cbKey)
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-done
		})
		return cmd, done
	}
	first, firstDone := start()
	poll(t, 60*time.Second, "a quarter of the rows created", func() bool { return sb.Stats().TasksCreated >= rows/4 })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-firstDone
	t.Logf("killed after %d tasks created", sb.Stats().TasksCreated)
	start()
	poll(t, 4*time.Minute, "every row completed", func() bool {
		r, err := st.GetRun(context.Background(), runID)
		return err == nil && r.Completed == rows
	})
	s := sb.Stats()
	if s.TasksCreated != rows || s.UniqueIDsCreatedTwice != 0 {
		t.Fatalf("sandbox tasks_created %d (want %d), unique_ids_created_twice %d (want 0)", s.TasksCreated, rows, s.UniqueIDsCreatedTwice)
	}
	t.Logf("409s resolved: %d", s.DuplicateUniqueID)
}

// enqueueRows adds a run of n test rows to the store on redisURL.
func enqueueRows(t *testing.T, redisURL string, n int, callbackURL string) (*store.Store, string) {
	t.Helper()
	u, err := redisurl.Parse(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := u.NewClient(redisurl.Tuning{})
	t.Cleanup(func() { _ = rdb.Close() })
	st := store.New(rdb, store.Options{})
	ctx := context.Background()
	run := &store.Run{ID: store.NewRunID(time.Now()), Dataset: "crash.jsonl", Type: refonte.TypeImageAnnotation,
		Project: "demo", Mode: refonte.ModeTest, CallbackURL: callbackURL, CreatedAt: time.Now()}
	if err := st.CreateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	var nj []store.NewJob
	for i := range n {
		uid := fmt.Sprintf("%s-%d", run.ID, i)
		body := fmt.Sprintf(`{"project":"demo","attachment":"https://example.com/%d.jpg","geometries":{"box":{"objects_to_annotate":["car"]}},"unique_id":%q,"callback_url":%q}`, i, uid, callbackURL)
		p := jobs.SubmitPayload{V: jobs.PayloadVersion, Run: run.ID, Line: int64(i + 1), UniqueID: uid,
			TaskType: refonte.TypeImageAnnotation, Mode: refonte.ModeTest, Params: []byte(body)}
		nj = append(nj, store.NewJob{Line: p.Line, UniqueID: uid, TaskType: p.TaskType, AsynqType: jobs.TypeSubmit,
			Queue: jobs.Queue(p.Mode), TaskID: jobs.TaskID(p.Mode, uid), Payload: jobs.AppendSubmitPayload(nil, p),
			MaxRetry: jobs.DefaultMaxRetry, Timeout: jobs.DefaultTimeout})
	}
	if _, err := st.AddJobs(ctx, run, nj); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishEnqueue(ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	return st, run.ID
}

// poll waits for cond, checking every 50ms, for at most timeout.
func poll(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// workerEnv is the environment of a worker on redisURL and the API at apiURL.
func workerEnv(redisURL, apiURL string) []string {
	return []string{"REDIS_URL=" + redisURL, "REFONTE_API_URL=" + apiURL,
		"REFONTE_TEST_API_KEY=" + testKey, "REFONTE_CALLBACK_AUTH_KEY=" + cbKey}
}

// startWorkerProc starts the worker binary with env (and PATH), at
// concurrency 4 unless args say otherwise; it is killed in t.Cleanup.
// Its combined output goes to logs.
func startWorkerProc(t *testing.T, bin string, env []string, logs io.Writer, args ...string) (*exec.Cmd, chan error) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-concurrency", "4", "-shutdown-timeout", "5s"}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return cmd, done
}

// TestSentinelURLDatabaseAndPassword runs the worker against a real
// Sentinel topology with a password through a sentinel URL naming
// database 3: it takes the rows enqueued in database 3 of the master
// (asynq.ParseRedisURI read database 0 and sent the password to the
// sentinels only, so the master answered NOAUTH), /readyz answers 200, and
// no log line holds the password.
func TestSentinelURLDatabaseAndPassword(t *testing.T) {
	bin := buildWorker(t)
	const pw = "worker-sentinel-pw"
	tp := testredis.StartTopology(t, testredis.TopologyOptions{Replicas: 1, Sentinels: 1, Password: pw})
	_, api := testkit.Sandbox(t, sandbox.Config{TestKey: testKey, CallbackAuthKey: cbKey, CompleteAfter: 10 * time.Millisecond})
	addr := fmt.Sprintf("127.0.0.1:%d", testredis.FreePort(t))
	st, runID := enqueueRows(t, tp.URL(3), 20, "http://"+addr+"/callback")
	var logs syncbuf.Buffer
	startWorkerProc(t, bin, workerEnv(tp.URL(3), api), &logs, "-listen", addr)
	poll(t, 60*time.Second, "every row completed", func() bool {
		r, err := st.GetRun(context.Background(), runID)
		return err == nil && r.Completed == 20
	})
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/readyz = %d, want 200", resp.StatusCode)
	}
	if strings.Contains(logs.String(), pw) {
		t.Errorf("the Redis password appears in the logs")
	}
}

// TestMessagesRedactRedisURLs checks that the worker never prints the
// password of its Redis URL, whatever is wrong with the URL.
func TestMessagesRedactRedisURLs(t *testing.T) {
	const pw = "PW_worker_secret"
	for _, u := range []string{
		"redis://:" + pw + "@127.0.0.1:notaport/0",
		"redis://:" + pw + "@127.0.0.1:6379/0?bogus=1",
		"redis://" + pw + "@127.0.0.1:6379/x",
		"redis-sentinel://:" + pw + "@127.0.0.1:1/0",
		"http://:" + pw + "@127.0.0.1:1/0",
	} {
		var stderr bytes.Buffer
		env := map[string]string{"REDIS_URL": u, "REFONTE_TEST_API_KEY": "test_abc", "REFONTE_CALLBACK_AUTH_KEY": "x"}
		code := run(nil, func(k string) string { return env[k] }, &stderr, &stderr)
		if code != 2 || strings.Contains(stderr.String(), pw) || !strings.Contains(stderr.String(), "xxxxx") {
			t.Errorf("REDIS_URL=%s: exit %d (want 2), stderr (want the URL redacted): %s", u, code, stderr.String())
		}
	}
}

// procCPU returns the CPU time (user + system) the process pid used so far,
// read from /proc (Linux); ok is false elsewhere.
func procCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var utime, stime int64
	if _, err := fmt.Sscan(fields[11], &utime); err != nil {
		return 0, false
	}
	if _, err := fmt.Sscan(fields[12], &stime); err != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, true // USER_HZ = 100
}

// lineCount counts the lines of s.
func lineCount(s string) int { return strings.Count(s, "\n") }

// TestWrongPasswordAtStartIsAConfigError: a Redis refusing the URL's
// password stops the worker at once with exit 2 and a message that names
// the problem but not the password.
func TestWrongPasswordAtStartIsAConfigError(t *testing.T) {
	bin := buildWorker(t)
	srv := testredis.Start(t, testredis.Options{Password: "the-right-password"})
	var logs syncbuf.Buffer
	_, done := startWorkerProc(t, bin, workerEnv("redis://:WRONG_pw_123@"+srv.Addr()+"/0", "http://127.0.0.1:9/v1"),
		&logs, "-listen", "127.0.0.1:0")
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Fatalf("worker exited with %v, want exit 2\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("worker still running 20 s after start with a wrong password\n%s", logs.String())
	}
	out := logs.String()
	if !strings.Contains(out, "refuses the credentials") || strings.Contains(out, "WRONG_pw_123") {
		t.Fatalf("want a clear message without the password, got:\n%s", out)
	}
}

// TestPasswordRotatedMidRun changes Redis' password under a running
// worker: /readyz fails, the log gets a few lines (one per backoff step,
// not hundreds of thousands), the process stays near idle, and once the
// old password works again the run completes by itself.
func TestPasswordRotatedMidRun(t *testing.T) {
	bin := buildWorker(t)
	const rows = 150
	srv := testredis.Start(t, testredis.Options{Password: "pw-before"})
	sb, api := testkit.Sandbox(t, sandbox.Config{TestKey: testKey, CallbackAuthKey: cbKey, CompleteAfter: 10 * time.Millisecond})
	addr := fmt.Sprintf("127.0.0.1:%d", testredis.FreePort(t))
	st, runID := enqueueRows(t, srv.URL(), rows, "http://"+addr+"/callback")
	var logs syncbuf.Buffer
	cmd, _ := startWorkerProc(t, bin, workerEnv(srv.URL(), api), &logs, "-listen", addr, "-rate-limit", "30")
	poll(t, 30*time.Second, "some rows created", func() bool { return sb.Stats().TasksCreated >= 20 })

	srv.SetPassword("pw-after")
	time.Sleep(time.Second) // the first errors and the gate closing
	lines0 := lineCount(logs.String())
	cpu0, haveCPU := procCPU(cmd.Process.Pid)
	const window = 10 * time.Second
	time.Sleep(window)
	lines := lineCount(logs.String()) - lines0
	cpu1, _ := procCPU(cmd.Process.Pid)
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	t.Logf("password refused for %s: %d log lines, CPU %s, /readyz %d %q", window, lines, cpu1-cpu0, resp.StatusCode, body)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d while Redis refuses the password, want 503", resp.StatusCode)
	}
	if lines > 30 {
		t.Errorf("%d log lines in %s while Redis refuses the password, want a few (one per backoff step)", lines, window)
	}
	if haveCPU && cpu1-cpu0 > window/10 {
		t.Errorf("worker used %s of CPU in %s while Redis refused the password, want near idle", cpu1-cpu0, window)
	}

	srv.SetPassword("pw-before")
	restored := time.Now()
	poll(t, 60*time.Second, "every row completed after the password works again", func() bool {
		r, err := st.GetRun(context.Background(), runID)
		return err == nil && r.Completed == rows
	})
	t.Logf("run completed %s after the password works again", time.Since(restored).Round(time.Second))
	resp, err = http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/readyz = %d after the password works again, want 200", resp.StatusCode)
	}
	if s := sb.Stats(); s.TasksCreated != rows || s.UniqueIDsCreatedTwice != 0 {
		t.Errorf("tasks created %d (want %d), twice %d", s.TasksCreated, rows, s.UniqueIDsCreatedTwice)
	}
	if strings.Contains(logs.String(), "pw-before") || strings.Contains(logs.String(), "pw-after") {
		t.Errorf("a password appears in the logs")
	}
}
