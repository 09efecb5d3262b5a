// Package e2e proves the system's guarantees with the real binaries: the
// cmd/enqueue, cmd/worker and cmd/sandbox programs built once by TestMain,
// a real redis-server with AOF on its own port per scenario, and faults
// injected by killing processes and by the sandbox. Every scenario ends with
// the same account (checkAccount): every valid row created exactly once at
// the sandbox, the run's counters equal to the sandbox's, every invalid row
// in the rejects file, a result for every completed row, and no secret in
// any log, Redis key or Redis value.
//
// Row counts scale down under CI=true; E2E_ROWS overrides the row count of
// the big scenario. The suite is skipped with -short.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/internal/redisurl"
	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

// The programs under test, as paths relative to the module root.
const (
	progEnqueue = "enqueue"
	progWorker  = "worker"
	progSandbox = "sandbox"
)

// binaries builds cmd/enqueue, cmd/worker and cmd/sandbox once per test
// binary (a plain build, no -race, for speed) into binDir, which it
// returns. It is set once and never reassigned.
var binaries = sync.OnceValues(buildBinaries)

func buildBinaries() (string, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return "", err
	}
	dir := binDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/"+progEnqueue, "./cmd/"+progWorker, "./cmd/"+progSandbox)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return dir, fmt.Errorf("go build: %v\n%s", err, out)
	}
	return dir, nil
}

// binDir is where this test process builds the programs.
func binDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("refonte-e2e-bin-%d", os.Getpid()))
}

// minParallel is the least number of scenarios run at once: they mostly
// wait (asynq's 30 s lease, the 30 s outage, the paused recheck), so the
// default -parallel of GOMAXPROCS (2 here) would serialize the waits.
const minParallel = 4

func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if p := flag.Lookup("test.parallel"); !explicit && p != nil && runtime.GOMAXPROCS(0) < minParallel {
		_ = p.Value.Set(strconv.Itoa(minParallel))
	}
	code := m.Run()
	_ = os.RemoveAll(binDir())
	os.Exit(code)
}

// bin returns the path of a built program; the test fails if the build did.
func bin(t testing.TB, name string) string {
	t.Helper()
	dir, err := binaries()
	if err != nil {
		t.Fatalf("building the programs: %v", err)
	}
	return filepath.Join(dir, name)
}

// suite skips the end-to-end scenarios under -short and marks the test
// parallel (each scenario has its own Redis, sandbox and workers).
func suite(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end scenario: skipped with -short")
	}
	t.Parallel()
}

// ci reports whether the suite runs under CI=true (smaller row counts).
func ci() bool { return os.Getenv("CI") == "true" }

// scale returns local rows, or ciRows under CI=true.
func scale(local, ciRows int) int {
	if ci() {
		return ciRows
	}
	return local
}

// ---------------------------------------------------------------------------
// Processes

// proc is a process started by a test: its output goes to log files in the
// scenario's log directory (scanned for secrets at the end), and it is
// stopped in t.Cleanup.
type proc struct {
	t    testing.TB
	name string
	path string
	args []string
	env  []string

	stdoutPath, stderrPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	killed bool // stopped on purpose: an exit is expected
	starts int
}

func newProc(t testing.TB, logDir, name, path string, args, env []string) *proc {
	p := &proc{
		t: t, name: name, path: path, args: args, env: env,
		stdoutPath: filepath.Join(logDir, name+".stdout.log"),
		stderrPath: filepath.Join(logDir, name+".stderr.log"),
	}
	t.Cleanup(func() { p.stop(5 * time.Second) })
	return p
}

// start starts the process (again, after kill); output is appended to its logs.
func (p *proc) start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	open := func(path string) *os.File {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			p.t.Fatal(err)
		}
		fmt.Fprintf(f, "=== e2e: start #%d of %s at %s\n", p.starts+1, p.name, time.Now().UTC().Format(time.RFC3339Nano))
		return f
	}
	stdout, stderr := open(p.stdoutPath), open(p.stderrPath)
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		stdout.Close()
		stderr.Close()
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	p.cmd, p.killed = cmd, false
	p.starts++
	done := make(chan struct{})
	p.done = done
	go func() {
		_ = cmd.Wait()
		stdout.Close()
		stderr.Close()
		close(done)
	}()
}

// exited reports whether the process ended without being stopped on purpose.
func (p *proc) exited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.killed {
		return false
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// pause stops the process with SIGSTOP (it keeps its connections but does
// nothing) until resume sends SIGCONT.
func (p *proc) pause() { p.send(syscall.SIGSTOP) }

// resume continues a paused process.
func (p *proc) resume() { p.send(syscall.SIGCONT) }

func (p *proc) send(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && p.cmd.Process != nil {
		if err := p.cmd.Process.Signal(sig); err != nil {
			p.t.Errorf("%s: %v: %v", p.name, sig, err)
		}
	}
}

// kill sends SIGKILL (a crash) and waits for the exit.
func (p *proc) kill() { p.signal(syscall.SIGKILL, 0) }

// stop sends SIGTERM, waits up to grace, then SIGKILL. It returns the exit
// code (-1 if killed by a signal or never started).
func (p *proc) stop(grace time.Duration) int { return p.signal(syscall.SIGTERM, grace) }

func (p *proc) signal(sig syscall.Signal, grace time.Duration) int {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.killed = true
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return -1
	}
	_ = cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-done:
		case <-time.After(grace):
			_ = cmd.Process.Kill()
			<-done
		}
	} else {
		<-done
	}
	return cmd.ProcessState.ExitCode()
}

// tail returns the last n bytes of the process's stderr log.
func (p *proc) tail(n int) string { return tailFile(p.stderrPath, n) }

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// ---------------------------------------------------------------------------
// Cluster: one scenario's Redis, sandbox, workers and callback proxy.

// keys are the secrets of a cluster: distinctive random values, so a leak
// is found by a plain substring search.
type keys struct {
	test, live, callback string
}

func newKeys(t testing.TB) keys {
	r := func() string {
		b := make([]byte, 12)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(b)
	}
	return keys{
		test:     "test_e2eSECRETkey" + r(),
		live:     "live_e2eSECRETkey" + r(),
		callback: "e2eCALLBACKsecret" + r(),
	}
}

// needles are the strings that must never appear outside the processes'
// memory: each key, its random core, and the HTTP Basic credentials.
func (k keys) needles() []string {
	var n []string
	for _, s := range []string{k.test, k.live, k.callback} {
		n = append(n, s, s[len(s)-24:], base64.StdEncoding.EncodeToString([]byte(s+":")))
	}
	return n
}

// clusterOpts configures a cluster.
type clusterOpts struct {
	// sandboxArgs are extra cmd/sandbox flags (faults).
	sandboxArgs []string
	// workers is the number of worker processes (default 3).
	workers int
	// workerArgs are extra cmd/worker flags, after the defaults.
	workerArgs []string
	// secretFiles gives the workers their secrets as *_FILE paths.
	secretFiles bool
	// redisURL, if set, is the Redis of the cluster (such as a Sentinel
	// topology's URL); else the cluster starts a redis-server with AOF.
	redisURL string
	// redisPassword is the requirepass of the redis-server the cluster
	// starts (none if empty).
	redisPassword string
}

type cluster struct {
	t      testing.TB
	dir    string // scenario directory (datasets, rejects)
	logDir string // every process's logs
	keys   keys

	redis      *testredis.Server // nil with clusterOpts.redisURL
	redisURL   string            // REDIS_URL of every process
	redisDir   string
	sandbox    *proc
	sandboxURL string // http://127.0.0.1:port (no /v1)
	workers    []*worker
	proxy      *httptest.Server

	forged atomic.Int64 // forged callbacks sent (answered 401)

	// mode is the mode of the runs checkAccount looks at ("" means test);
	// enqueueEnv is added to enqueue's environment.
	mode       string
	enqueueEnv []string
}

type worker struct {
	*proc
	mu   sync.Mutex
	addr string // 127.0.0.1:port the worker listens on (a new one at each start)
}

// Addr returns the address the worker listens on.
func (w *worker) Addr() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.addr
}

// Regular expressions finding the address a program bound to -listen
// 127.0.0.1:0 (or -addr) in its output.
var (
	workerListening  = regexp.MustCompile(`"worker started".*"listen":"([^"]+)"`)
	sandboxListening = regexp.MustCompile(`base URL: http://([^/\s]+)/v1`)
)

func baseEnv() []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	if d := os.Getenv("TMPDIR"); d != "" {
		env = append(env, "TMPDIR="+d)
	}
	return env
}

// startCluster starts a redis-server with AOF (appendfsync everysec), the
// sandbox, opts.workers workers and a round-robin callback proxy in front
// of the workers (the load balancer of a real deployment).
func startCluster(t testing.TB, opts clusterOpts) *cluster {
	t.Helper()
	sandboxBin, workerBin := bin(t, progSandbox), bin(t, progWorker)
	bin(t, progEnqueue)
	if opts.workers == 0 {
		opts.workers = 3
	}
	c := &cluster{t: t, dir: t.TempDir(), logDir: t.TempDir(), redisDir: t.TempDir(), keys: newKeys(t)}
	c.redisURL = opts.redisURL
	if c.redisURL == "" {
		c.redis = testredis.Start(t, testredis.Options{AOF: true, Dir: c.redisDir, Password: opts.redisPassword})
		c.redisURL = c.redis.URL()
	}

	sbEnv := append(baseEnv(),
		"REFONTE_TEST_API_KEY="+c.keys.test,
		"REFONTE_LIVE_API_KEY="+c.keys.live,
		"REFONTE_CALLBACK_AUTH_KEY="+c.keys.callback)
	c.sandbox = newProc(t, c.logDir, "sandbox", sandboxBin,
		append([]string{"-addr", "127.0.0.1:0", "-seed", "7"}, opts.sandboxArgs...), sbEnv)
	c.sandbox.start()
	c.sandboxURL = "http://" + c.waitListen(c.sandbox, c.sandbox.stdoutPath, sandboxListening)
	c.waitHTTP(c.sandbox, c.sandboxURL+"/_sandbox/stats", 15*time.Second)

	wEnv := append(baseEnv(), "REDIS_URL="+c.redisURL, "REFONTE_API_URL="+c.sandboxURL+"/v1")
	if opts.secretFiles {
		for name, v := range map[string]string{
			"REFONTE_TEST_API_KEY": c.keys.test, "REFONTE_LIVE_API_KEY": c.keys.live,
			"REFONTE_CALLBACK_AUTH_KEY": c.keys.callback,
		} {
			path := filepath.Join(c.dir, strings.ToLower(name)+".secret")
			if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			wEnv = append(wEnv, name+"_FILE="+path)
		}
	} else {
		wEnv = append(wEnv, "REFONTE_TEST_API_KEY="+c.keys.test, "REFONTE_LIVE_API_KEY="+c.keys.live,
			"REFONTE_CALLBACK_AUTH_KEY="+c.keys.callback)
	}
	for i := range opts.workers {
		args := append([]string{"-listen", "127.0.0.1:0", "-shutdown-timeout", "5s", "-rate-limit", "0"}, opts.workerArgs...)
		w := &worker{proc: newProc(t, c.logDir, fmt.Sprintf("worker%d", i), workerBin, args, wEnv)}
		w.start()
		c.workers = append(c.workers, w)
	}
	for _, w := range c.workers {
		c.workerReady(w)
	}

	var next atomic.Uint64
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			w := c.workers[next.Add(1)%uint64(len(c.workers))]
			r.SetURL(&url.URL{Scheme: "http", Host: w.Addr()})
		},
		ErrorHandler: func(rw http.ResponseWriter, _ *http.Request, _ error) {
			rw.WriteHeader(http.StatusBadGateway) // a worker is down: the platform retries
		},
		ErrorLog: nil,
	}
	c.proxy = httptest.NewServer(rp)
	t.Cleanup(c.proxy.Close)
	return c
}

// callbackURL is the URL the tasks call back: the proxy in front of the workers.
func (c *cluster) callbackURL() string { return c.proxy.URL + "/callback" }

// waitHTTP polls url until it answers 200, failing if p exits.
func (c *cluster) waitHTTP(p *proc, u string, timeout time.Duration) {
	c.t.Helper()
	hc := &http.Client{Timeout: time.Second}
	waitFor(c.t, timeout, p.name+" ready at "+u, func() (bool, string) {
		if p.exited() {
			c.t.Fatalf("%s exited during start-up; stderr:\n%s", p.name, p.tail(4000))
		}
		resp, err := hc.Get(u)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
}

// checkAlive fails the test if a worker or the sandbox exited on its own.
func (c *cluster) checkAlive() {
	c.t.Helper()
	for _, p := range append([]*proc{c.sandbox}, c.workerProcs()...) {
		if p.exited() {
			c.t.Fatalf("%s exited on its own; stderr tail:\n%s", p.name, p.tail(4000))
		}
	}
}

func (c *cluster) workerProcs() []*proc {
	ps := make([]*proc, len(c.workers))
	for i, w := range c.workers {
		ps[i] = w.proc
	}
	return ps
}

// restartWorker starts a stopped worker again and waits until it is ready.
func (c *cluster) restartWorker(w *worker) {
	c.t.Helper()
	w.start()
	c.workerReady(w)
}

// workerReady waits for a just started worker to say where it listens (it
// binds 127.0.0.1:0, so no other process can hold its port) and to answer
// /readyz there.
func (c *cluster) workerReady(w *worker) {
	c.t.Helper()
	addr := c.waitListen(w.proc, w.stderrPath, workerListening)
	w.mu.Lock()
	w.addr = addr
	w.mu.Unlock()
	c.waitHTTP(w.proc, "http://"+addr+"/readyz", 20*time.Second)
}

// waitListen waits until the output file of p's current start matches re,
// and returns the first group: the address p listens on.
func (c *cluster) waitListen(p *proc, path string, re *regexp.Regexp) string {
	c.t.Helper()
	var addr string
	waitFor(c.t, 20*time.Second, p.name+" listening", func() (bool, string) {
		out := sinceStart(path)
		if m := re.FindStringSubmatch(out); m != nil {
			addr = m[1]
			return true, ""
		}
		if p.exited() {
			c.t.Fatalf("%s exited during start-up; stderr:\n%s", p.name, p.tail(4000))
		}
		return false, "no listening address in " + filepath.Base(path)
	})
	return addr
}

// sinceStart returns the content of a log file after the last start marker.
func sinceStart(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if i := bytes.LastIndex(b, []byte("=== e2e: start #")); i >= 0 {
		b = b[i:]
	}
	return string(b)
}

// stats returns the sandbox's counters.
func (c *cluster) stats() sandbox.Stats {
	c.t.Helper()
	resp, err := http.Get(c.sandboxURL + "/_sandbox/stats")
	if err != nil {
		c.t.Fatalf("sandbox stats: %v", err)
	}
	defer resp.Body.Close()
	var s sandbox.Stats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		c.t.Fatalf("sandbox stats: %v", err)
	}
	return s
}

// setFaults changes the sandbox's faults at runtime (POST /_sandbox/faults).
func (c *cluster) setFaults(body string) {
	c.t.Helper()
	resp, err := http.Post(c.sandboxURL+"/_sandbox/faults", "application/json", strings.NewReader(body))
	if err != nil {
		c.t.Fatalf("sandbox faults: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		c.t.Fatalf("POST /_sandbox/faults %s: %s %s", body, resp.Status, b)
	}
}

// ---------------------------------------------------------------------------
// enqueue

// result is one run of the enqueue program.
type result struct {
	code           int
	stdout, stderr []byte
}

// lastJSON decodes the last non-empty stdout line into v.
func (r result) lastJSON(t testing.TB, v any) {
	t.Helper()
	lines := bytes.Split(bytes.TrimSpace(r.stdout), []byte("\n"))
	if err := json.Unmarshal(lines[len(lines)-1], v); err != nil {
		t.Fatalf("enqueue's last stdout line is not the JSON summary: %v\nstdout:\n%s\nstderr:\n%s", err, r.stdout, r.stderr)
	}
}

// runEnqueue runs the enqueue program with args; its stderr is also
// appended to logDir/enqueue.stderr.log (scanned for secrets). It never
// fails the test on a non-zero exit: callers check the code.
func runEnqueue(t testing.TB, ctx context.Context, logDir string, args ...string) result {
	t.Helper()
	return runEnqueueEnv(t, ctx, logDir, nil, args...)
}

// runEnqueueEnv is runEnqueue with env added to the base environment.
func runEnqueueEnv(t testing.TB, ctx context.Context, logDir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin(t, progEnqueue), args...)
	cmd.Env = append(baseEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{code: cmd.ProcessState.ExitCode(), stdout: stdout.Bytes(), stderr: stderr.Bytes()}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("enqueue %s: %v", strings.Join(args, " "), err)
	}
	if logDir != "" {
		f, err := os.OpenFile(filepath.Join(logDir, "enqueue.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "=== enqueue %s (exit %d)\n%s%s", strings.Join(redactArgs(args), " "), r.code, r.stdout, r.stderr)
		f.Close()
	}
	return r
}

// summary is enqueue -json's last line and status -json's output.
type summary struct {
	RunID        string `json:"run_id"`
	State        string `json:"state"`
	PausedReason string `json:"paused_reason"`
	Rows         int64  `json:"rows"`
	Valid        int64  `json:"valid"`
	Invalid      int64  `json:"invalid"`
	Enqueued     int64  `json:"enqueued"`
	Duplicate    int64  `json:"duplicate"`
	Submitted    int64  `json:"submitted"`
	Completed    int64  `json:"completed"`
	Failed       int64  `json:"failed"`
	Canceled     int64  `json:"canceled"`
	Conflicts    int64  `json:"conflicting_deliveries"`
	// CanceledBeforeSubmit counts rows canceled without a task (enqueue cancel).
	CanceledBeforeSubmit int64 `json:"canceled_before_submit"`
}

func (s summary) String() string {
	return fmt.Sprintf("run %s %s: rows=%d valid=%d invalid=%d enqueued=%d duplicate=%d submitted=%d completed=%d failed=%d canceled=%d",
		s.RunID, s.State, s.Rows, s.Valid, s.Invalid, s.Enqueued, s.Duplicate, s.Submitted, s.Completed, s.Failed, s.Canceled)
}

// submitArgs are the enqueue flags of a test-mode submit of ds to c.
func (c *cluster) submitArgs(ds dataset, extra ...string) []string {
	args := []string{"-type", "imageannotation", "-project", sandbox.DefaultProject,
		"-callback-url", c.callbackURL(), "-rejects", ds.rejects, "-json", "-redis", c.redisURL}
	return append(append(args, extra...), ds.path)
}

// submit enqueues ds with the extra flags (such as -wait) and returns the
// summary; the exit code must be 3 when ds has invalid rows, else 0. The
// deadline is long enough for a -wait run through injected faults.
func (c *cluster) submit(ds dataset, extra ...string) summary {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r := runEnqueueEnv(c.t, ctx, c.logDir, c.enqueueEnv, c.submitArgs(ds, extra...)...)
	want := 0
	if len(ds.invalid) > 0 {
		want = 3
	}
	if r.code != want {
		c.t.Fatalf("enqueue exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, want, r.stdout, tailBytes(r.stderr, 4000))
	}
	var s summary
	r.lastJSON(c.t, &s)
	if s.RunID == "" {
		c.t.Fatalf("enqueue summary without run_id: %s", r.stdout)
	}
	return s
}

// redactArgs returns args with the secrets of URLs (a -redis URL's
// password) redacted, for the logs.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if strings.Contains(a, "://") {
			out[i] = redisurl.Redact(a)
		}
	}
	return out
}

func tailBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// status runs enqueue status -json RUN_ID.
func (c *cluster) status(runID string) summary {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := runEnqueue(c.t, ctx, "", "status", "-json", "-redis", c.redisURL, runID)
	if r.code != 0 {
		c.t.Fatalf("enqueue status exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	var s summary
	r.lastJSON(c.t, &s)
	return s
}

// tryStatus is status that reports errors (Redis down) instead of failing.
func (c *cluster) tryStatus(runID string) (summary, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := runEnqueue(c.t, ctx, "", "status", "-json", "-redis", c.redisURL, runID)
	if r.code != 0 {
		return summary{}, fmt.Errorf("enqueue status exit %d: %s", r.code, bytes.TrimSpace(r.stderr))
	}
	var s summary
	lines := bytes.Split(bytes.TrimSpace(r.stdout), []byte("\n"))
	if err := json.Unmarshal(lines[len(lines)-1], &s); err != nil {
		return summary{}, err
	}
	return s, nil
}

// rowResult is one line of enqueue results.
type rowResult struct {
	Line     int64           `json:"line"`
	UniqueID string          `json:"unique_id"`
	State    string          `json:"state"`
	TaskID   string          `json:"task_id"`
	Response json.RawMessage `json:"response"`
	Error    string          `json:"error"`
}

// results runs enqueue results RUN_ID.
func (c *cluster) results(runID string) []rowResult {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := runEnqueue(c.t, ctx, "", "results", "-redis", c.redisURL, runID)
	if r.code != 0 {
		c.t.Fatalf("enqueue results exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	var rows []rowResult
	sc := bufio.NewScanner(bytes.NewReader(r.stdout))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var row rowResult
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			c.t.Fatalf("enqueue results line %q: %v", sc.Bytes(), err)
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		c.t.Fatal(err)
	}
	return rows
}

// waitDone polls the run's status until it is done, calling tick (if not
// nil) on each poll; it fails on timeout or if a process died on its own.
func (c *cluster) waitDone(runID string, timeout time.Duration, tick func(summary)) summary {
	c.t.Helper()
	var last summary
	waitFor(c.t, timeout, "run "+runID+" done", func() (bool, string) {
		c.checkAlive()
		s, err := c.tryStatus(runID)
		if err != nil {
			return false, err.Error()
		}
		last = s
		if tick != nil {
			tick(s)
		}
		return s.State == "done", s.String()
	})
	return last
}

// waitFor polls cond every 200 ms until it holds, failing the test after
// timeout with cond's last description.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, desc := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last: %s", timeout, what, desc)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// Datasets

// dataset is a generated JSONL dataset with known invalid lines.
type dataset struct {
	path, rejects string
	rows, valid   int
	invalid       []int64 // line numbers of the invalid rows, ascending
}

// writeDataset writes rows JSONL rows of imageannotation tasks; every
// invalidEvery-th line (0: none) is invalid in one of several ways. Every
// valid row has a distinct attachment (so a distinct unique_id) carrying tag.
func writeDataset(t testing.TB, dir, tag string, rows, invalidEvery int) dataset {
	t.Helper()
	ds := dataset{path: filepath.Join(dir, tag+".jsonl"), rejects: filepath.Join(dir, tag+".rejects.jsonl"), rows: rows}
	f, err := os.Create(ds.path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := 1; i <= rows; i++ {
		if invalidEvery > 0 && i%invalidEvery == 0 {
			ds.invalid = append(ds.invalid, int64(i))
			switch (i / invalidEvery) % 5 {
			case 0:
				fmt.Fprintf(w, `{"attachment":"ftp://images.example.com/%s/%d.jpg","geometries":{"box":{"objects_to_annotate":["car"]}}}`+"\n", tag, i)
			case 1:
				fmt.Fprintf(w, `{"attachment":"https://images.example.com/%s/%d.jpg","attachment_type":"image"}`+"\n", tag, i)
			case 2:
				fmt.Fprintf(w, `{"attachment":"https://images.example.com/%s/%d.jpg","geometries":`+"\n", tag, i)
			case 3:
				fmt.Fprintf(w, `{"attachment":"https://images.example.com/%s/%d.jpg","geometries":{"box":{"objects_to_annotate":[]}}}`+"\n", tag, i)
			case 4:
				fmt.Fprintf(w, `["https://images.example.com/%s/%d.jpg"]`+"\n", tag, i)
			}
			continue
		}
		ds.valid++
		fmt.Fprintf(w, `{"attachment":"https://images.example.com/%s/frame-%07d.jpg","attachment_type":"image",`+
			`"geometries":{"box":{"objects_to_annotate":["car","pedestrian","cyclist"],"min_height":10,"min_width":10}},`+
			`"metadata":{"row":%d,"source":"e2e-%s"}}`+"\n", tag, i, i, tag)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return ds
}

// ---------------------------------------------------------------------------
// The account every scenario ends with.

// checkAccount asserts the common end state of a run over ds:
//   - the sandbox created exactly one task per valid row and never one
//     unique_id twice;
//   - enqueue status -json is done and its counts equal the sandbox's;
//   - every invalid row (and only those) is in the rejects file;
//   - enqueue results has every valid row completed with a task id and a
//     response, task ids distinct;
//   - no secret in any log, Redis key name or value, or AOF file.
func (c *cluster) checkAccount(ds dataset, runID string) summary {
	c.t.Helper()
	t := c.t
	st := c.status(runID)
	sb := c.stats()
	t.Logf("final: %s", st)
	t.Logf("sandbox: max_creates_in_1s=%d tasks_created=%d create_calls=%d duplicate_unique_id=%d rate_limited=%d errors=%d lost=%d down=%d callbacks ok=%d failed=%d dropped=%d duplicated=%d early=%d",
		sb.MaxCreatesIn1s, sb.TasksCreated, sb.CreateCalls, sb.DuplicateUniqueID, sb.RateLimited, sb.ErrorsInjected, sb.LostResponses,
		sb.DownRejected, sb.CallbacksOK, sb.CallbacksFailed, sb.CallbacksDropped, sb.CallbacksDuplicated, sb.CallbacksEarly)

	valid, invalid := int64(ds.valid), int64(len(ds.invalid))
	if sb.UniqueIDsCreatedTwice != 0 {
		t.Errorf("sandbox unique_ids_created_twice = %d, want 0", sb.UniqueIDsCreatedTwice)
	}
	if sb.TasksCreated != valid {
		t.Errorf("sandbox tasks_created = %d, want %d (valid rows)", sb.TasksCreated, valid)
	}
	mode := c.mode
	if mode == "" {
		mode = "test"
	}
	sbCompleted := sb.TasksByStatus[mode]["completed"]
	for _, chk := range []struct {
		name      string
		got, want int64
	}{
		{"state done", b2i(st.State == "done"), 1},
		{"rows", st.Rows, int64(ds.rows)},
		{"valid", st.Valid, valid},
		{"invalid", st.Invalid, invalid},
		{"enqueued+duplicate", st.Enqueued + st.Duplicate, valid},
		{"submitted (= sandbox tasks_created)", st.Submitted, sb.TasksCreated},
		{"completed (= sandbox completed tasks)", st.Completed, sbCompleted},
		{"completed", st.Completed, valid},
		{"failed (= sandbox error tasks)", st.Failed, sb.TasksByStatus[mode]["error"]},
		{"failed", st.Failed, 0},
		{"canceled", st.Canceled, 0},
	} {
		if chk.got != chk.want {
			t.Errorf("status %s = %d, want %d (%s)", chk.name, chk.got, chk.want, st)
		}
	}
	c.checkRejects(ds)

	rows := c.results(runID)
	if int64(len(rows)) != valid {
		t.Errorf("enqueue results: %d lines, want %d (one per valid row)", len(rows), valid)
	}
	invalidSet := map[int64]bool{}
	for _, l := range ds.invalid {
		invalidSet[l] = true
	}
	taskIDs := map[string]int64{}
	lines := map[int64]bool{}
	bad := 0
	for _, r := range rows {
		problem := ""
		switch {
		case invalidSet[r.Line]:
			problem = "an invalid line has a result"
		case lines[r.Line]:
			problem = "line reported twice"
		case r.State != "completed":
			problem = "state " + r.State + " (error " + r.Error + ")"
		case r.TaskID == "":
			problem = "no task_id"
		case len(r.Response) == 0 || string(r.Response) == "null":
			problem = "no response"
		case taskIDs[r.TaskID] != 0:
			problem = fmt.Sprintf("task %s also on line %d", r.TaskID, taskIDs[r.TaskID])
		}
		lines[r.Line] = true
		taskIDs[r.TaskID] = r.Line
		if problem != "" {
			if bad++; bad <= 10 {
				t.Errorf("results line %d (%s): %s", r.Line, r.UniqueID, problem)
			}
		}
	}
	if bad > 10 {
		t.Errorf("... %d bad result lines in all", bad)
	}
	c.checkSecrets()
	return st
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// checkRejects asserts that the rejects file holds exactly ds's invalid
// lines, each with an error and the raw line.
func (c *cluster) checkRejects(ds dataset) {
	c.t.Helper()
	checkRejectsFile(c.t, ds)
}

func checkRejectsFile(t testing.TB, ds dataset) {
	t.Helper()
	b, err := os.ReadFile(ds.rejects)
	if len(ds.invalid) == 0 && errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		t.Errorf("rejects file: %v", err)
		return
	}
	var got []int64
	for i, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var r struct {
			Line  int64  `json:"line"`
			Error string `json:"error"`
			Raw   string `json:"raw"`
		}
		if err := json.Unmarshal(l, &r); err != nil {
			t.Errorf("rejects line %d %q: %v", i+1, l, err)
			continue
		}
		if r.Error == "" || r.Raw == "" {
			t.Errorf("reject of line %d without error or raw: %s", r.Line, l)
		}
		got = append(got, r.Line)
	}
	if !slices.Equal(got, ds.invalid) {
		t.Errorf("rejects file lines = %v, want %v", clip(got), clip(ds.invalid))
	}
}

func clip(s []int64) string {
	if len(s) > 20 {
		return fmt.Sprintf("%v… (%d)", s[:20], len(s))
	}
	return fmt.Sprint(s)
}

// checkSecrets asserts that no key appears in any process log, any Redis
// key name or value, or the AOF files on disk.
func (c *cluster) checkSecrets() {
	c.t.Helper()
	needles := c.keys.needles()
	scanFiles(c.t, c.logDir, needles)
	if c.redis != nil {
		scanFiles(c.t, c.redisDir, needles)
	}
	testredis.ScanSecrets(c.t, c.redisURL, needles)
}

// scanFiles fails for every file under dir containing a needle.
func scanFiles(t testing.TB, dir string, needles []string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		for _, s := range needles {
			if i := bytes.Index(b, []byte(s)); i >= 0 {
				lo, hi := max(0, i-120), min(len(b), i+len(s)+40)
				t.Errorf("secret found in %s: …%s…", filepath.Base(path), redact(b[lo:hi], needles))
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("scanning %s: %v", dir, err)
	}
	if n == 0 {
		t.Errorf("no file to scan for secrets under %s", dir)
	}
}

// redact hides the needles in a snippet before it is printed.
func redact(b []byte, needles []string) string {
	s := string(b)
	for _, n := range needles {
		s = strings.ReplaceAll(s, n, "<SECRET>")
	}
	return s
}

// ---------------------------------------------------------------------------
// Forged callbacks

// forgeCallback POSTs a well-formed callback for (taskID, uniqueID) that
// claims the task errored, to addr's /callback with the given auth header
// (omitted when auth is ""), and returns the status code.
func forgeCallback(t testing.TB, addr, auth, taskID, uniqueID string) int {
	t.Helper()
	now := time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)
	task := map[string]any{
		"task_id": taskID, "type": "imageannotation", "status": "error", "unique_id": uniqueID,
		"created_at": now, "updated_at": now, "is_test": true, "metadata": map[string]any{"forged": true},
		"response": map[string]any{"error": "forged"},
	}
	body, _ := json.Marshal(map[string]any{"task": task, "task_id": taskID, "status": "error", "response": task["response"]})
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/callback", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("refonte.ai-callback-auth", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("forged callback: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// postCallback POSTs body to addr's /callback with the auth header and
// returns the status code.
func postCallback(t testing.TB, addr, auth string, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/callback", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("refonte.ai-callback-auth", auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("callback: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// forgeAll sends forged callbacks with a missing and a wrong auth header for
// each (task id, unique id) to every worker and asserts 401 for each.
func (c *cluster) forgeAll(pairs [][2]string) {
	c.t.Helper()
	wrong := []string{"", "e2eFORGEDkey", c.keys.callback[:len(c.keys.callback)-1], c.keys.callback + "x", strings.ToUpper(c.keys.callback)}
	for _, w := range c.workers {
		for _, p := range pairs {
			for _, auth := range wrong {
				if code := forgeCallback(c.t, w.Addr(), auth, p[0], p[1]); code != http.StatusUnauthorized {
					c.t.Errorf("forged callback (auth %q) to %s: %d, want 401", redact([]byte(auth), c.keys.needles()), w.name, code)
				}
				c.forged.Add(1)
			}
		}
	}
}
