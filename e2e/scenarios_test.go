package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// envRows returns E2E_ROWS when set, else local rows (ciRows under CI=true).
func envRows(t testing.TB, local, ciRows int) int {
	if s := os.Getenv("E2E_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 100 {
			t.Fatalf("E2E_ROWS=%q: want an integer >= 100", s)
		}
		return n
	}
	return scale(local, ciRows)
}

// rate returns a worker -rate-limit that spreads rows over about secs seconds,
// so faults land in the middle of the run.
func rate(rows, secs int) string { return strconv.Itoa(max(20, rows/secs)) }

// Scenario 1: 3 workers, one SIGKILLed every few seconds and restarted.
func TestWorkerKilledRepeatedly(t *testing.T) {
	suite(t)
	rows := envRows(t, 20000, 3000)
	c := startCluster(t, clusterOpts{
		workers:     3,
		sandboxArgs: []string{"-complete-after", "200ms"},
		workerArgs:  []string{"-rate-limit", rate(rows, 12), "-rate-burst", "20", "-callback-grace", "5s"},
	})
	ds := writeDataset(t, c.dir, "crash", rows, 101)
	s := c.submit(ds)

	kills, next := 0, 0
	lastKill := time.Now()
	c.waitDone(s.RunID, 5*time.Minute, func(st summary) {
		// Kill while most rows are still to submit; then let asynq recover
		// the killed workers' jobs (lease 30 s, recoverer sweep each minute).
		if st.State == "done" || st.Submitted >= st.Valid*8/10 || kills >= 8 || time.Since(lastKill) < 2500*time.Millisecond {
			return
		}
		w := c.workers[next%len(c.workers)]
		next++
		t.Logf("SIGKILL %s at %s", w.name, st)
		w.kill()
		kills++
		c.restartWorker(w)
		lastKill = time.Now()
	})
	if kills < 2 {
		t.Errorf("only %d worker kills happened during the run; the scenario proves nothing", kills)
	}
	c.checkAccount(ds, s.RunID)
}

// Scenario 2: redis-server SIGKILLed mid-run and restarted from its AOF;
// re-running the same enqueue command repairs what the last second lost.
func TestRedisKilledAndRestartedFromAOF(t *testing.T) {
	suite(t)
	rows := envRows(t, 5000, 2000)
	c := startCluster(t, clusterOpts{
		workers:     2,
		sandboxArgs: []string{"-complete-after", "200ms"},
		workerArgs:  []string{"-rate-limit", rate(rows, 10), "-rate-burst", "20", "-callback-grace", "3s"},
	})
	ds := writeDataset(t, c.dir, "aof", rows, 97)
	first := c.submit(ds)

	waitFor(t, 2*time.Minute, "a third of the rows completed", func() (bool, string) {
		c.checkAlive()
		st := c.status(first.RunID)
		return st.Completed >= st.Valid/3, st.String()
	})
	// SIGKILL alone loses nothing the server already wrote (the kernel
	// keeps it); appendfsync everysec loses up to a second of writes when
	// the machine itself fails. Simulate that: cut the AOF back to its size
	// at the start of the last stretch of work before restarting.
	func() {
		opt, err := redis.ParseURL(c.redis.URL())
		if err != nil {
			t.Fatal(err)
		}
		rdb := redis.NewClient(opt)
		defer rdb.Close()
		noAOFRewrite(t, rdb)
	}()
	aof := lastIncrAOF(t, c.redisDir)
	fi, err := os.Stat(aof)
	if err != nil {
		t.Fatal(err)
	}
	cut := c.status(first.RunID)
	var before summary
	waitFor(t, time.Minute, "another stretch of rows completed", func() (bool, string) {
		c.checkAlive()
		before = c.status(first.RunID)
		return before.Completed >= cut.Completed+int64(max(50, ds.valid/10)), before.String()
	})
	// The workers are frozen across the crash so that the status read
	// after the reload shows what Redis kept, not what they redid since.
	for _, w := range c.workers {
		w.pause()
	}
	t.Logf("SIGKILL redis-server at %s; its AOF is cut back to %s", before, cut)
	c.redis.Kill()
	if now := lastIncrAOF(t, c.redisDir); now != aof {
		t.Fatalf("the AOF was rewritten during the run (%s, then %s)", aof, now)
	}
	if err := os.Truncate(aof, fi.Size()); err != nil {
		t.Fatal(err)
	}
	c.redis.Restart()
	after, err := c.tryStatus(first.RunID)
	for _, w := range c.workers {
		w.resume()
	}
	if err != nil {
		t.Fatalf("status after the AOF reload: %v", err)
	}
	t.Logf("after the AOF reload: %s", after)
	if after.Completed > cut.Completed || after.Completed >= before.Completed {
		t.Errorf("after the reload %d rows completed; want at most %d (the cut) and fewer than %d (before the crash)",
			after.Completed, cut.Completed, before.Completed)
	}
	for _, w := range c.workers {
		c.waitHTTP(w.proc, "http://"+w.Addr()+"/readyz", time.Minute)
	}

	second := c.submit(ds, "-wait")
	t.Logf("re-run: %s", second)
	if second.RunID == first.RunID {
		t.Errorf("the re-run reused run id %s", first.RunID)
	}
	if second.Completed != int64(ds.valid) || second.State != "done" {
		t.Errorf("re-run -wait summary: %s, want done with %d completed", second, ds.valid)
	}
	c.checkAccount(ds, second.RunID)
	if st, err := c.tryStatus(first.RunID); err == nil {
		t.Logf("first run at the end: %s", st)
	}
}

// Scenario 3: API faults: 20% 5xx, 10% lost responses, 429 storms from a
// sandbox rate limit below the workers' limit, added latency.
func TestAPIFaults(t *testing.T) {
	suite(t)
	rows := envRows(t, 3000, 1200)
	c := startCluster(t, clusterOpts{
		workers: 3,
		sandboxArgs: []string{"-complete-after", "100ms", "-error-rate", "0.2", "-lost-response-rate", "0.1",
			"-rate-limit", "100", "-latency", "20ms"},
		workerArgs: []string{"-rate-limit", "200", "-rate-burst", "20", "-callback-grace", "5s"},
	})
	ds := writeDataset(t, c.dir, "faults", rows, 89)

	s := c.submit(ds, "-wait")
	if s.State != "done" || s.Completed != int64(ds.valid) {
		t.Errorf("enqueue -wait summary: %s, want done with %d completed", s, ds.valid)
	}
	c.checkAccount(ds, s.RunID)
	sb := c.stats()
	for name, n := range map[string]int64{
		"rate_limited (429)": sb.RateLimited, "errors_injected (5xx)": sb.ErrorsInjected, "lost_responses": sb.LostResponses,
	} {
		if n == 0 {
			t.Errorf("sandbox %s = 0: the fault was not exercised", name)
		}
	}
}

// Scenario 4: callbacks dropped (the reconciler recovers them), duplicated,
// arriving before the submit is recorded, and forged ones with a wrong or
// missing auth header (401, nothing recorded).
func TestCallbackFaults(t *testing.T) {
	suite(t)
	rows := envRows(t, 4000, 1500)
	c := startCluster(t, clusterOpts{
		workers: 3,
		sandboxArgs: []string{"-complete-after", "100ms", "-callback-drop-rate", "0.1",
			"-callback-dup-rate", "0.3", "-callback-early-rate", "0.2"},
		workerArgs: []string{"-rate-limit", rate(rows, 8), "-rate-burst", "20", "-callback-grace", "3s"},
	})
	ds := writeDataset(t, c.dir, "callbacks", rows, 83)
	s := c.submit(ds)

	forgedMidRun := false
	final := c.waitDone(s.RunID, 4*time.Minute, func(st summary) {
		if forgedMidRun || st.Submitted < st.Valid/5 {
			return
		}
		forgedMidRun = true
		pairs := pickTasks(c.results(s.RunID), "", 5)
		t.Logf("forging callbacks mid-run for %d tasks at %s", len(pairs), st)
		c.forgeAll(pairs)
	})
	if !forgedMidRun {
		t.Errorf("the run finished before forged callbacks could be sent mid-run")
	}

	// After the run: forged "error" callbacks, newer than the real ones,
	// for completed rows must change nothing.
	before := c.results(s.RunID)
	pairs := pickTasks(before, "completed", 10)
	c.forgeAll(pairs)
	// Authenticated but oversized (413) or malformed (400) bodies record
	// nothing; an authenticated callback for an unknown task is answered
	// 2xx (kept for inspection) and counts for no row.
	for _, w := range c.workers {
		for _, tc := range []struct {
			body []byte
			want int
		}{
			{append(append([]byte(`{"task_id":"x","status":"completed","response":{"pad":"`), bytes.Repeat([]byte("a"), 2<<20)...), `"}}`...), http.StatusRequestEntityTooLarge},
			{[]byte(`{"task_id":`), http.StatusBadRequest},
		} {
			if code := postCallback(t, w.Addr(), c.keys.callback, tc.body); code != tc.want {
				t.Errorf("%s: authenticated callback of %d bytes: %d, want %d", w.name, len(tc.body), code, tc.want)
			}
		}
		unknown := fmt.Sprintf(`{"task_id":"e2e-unknown-%s","status":"completed","response":{},"task":{"task_id":"e2e-unknown-%s","status":"completed","unique_id":"e2e-unknown"}}`, w.name, w.name)
		if code := postCallback(t, w.Addr(), c.keys.callback, []byte(unknown)); code/100 != 2 {
			t.Errorf("%s: authenticated callback for an unknown task: %d, want 2xx", w.name, code)
		}
	}
	after := c.status(s.RunID)
	if after != final {
		t.Errorf("status changed after forged callbacks:\n%s\nwas\n%s", after, final)
	}
	afterRows := c.results(s.RunID)
	changed := 0
	for i := range before {
		if i < len(afterRows) && (before[i].State != afterRows[i].State || string(before[i].Response) != string(afterRows[i].Response)) {
			changed++
		}
	}
	if changed > 0 || len(afterRows) != len(before) {
		t.Errorf("forged callbacks changed %d result rows (%d -> %d lines)", changed, len(before), len(afterRows))
	}
	c.checkAccount(ds, s.RunID)
	sb := c.stats()
	for name, n := range map[string]int64{
		"callbacks_dropped": sb.CallbacksDropped, "callbacks_duplicated": sb.CallbacksDuplicated, "callbacks_early": sb.CallbacksEarly,
	} {
		if n == 0 {
			t.Errorf("sandbox %s = 0: the fault was not exercised", name)
		}
	}
	if c.forged.Load() == 0 {
		t.Error("no forged callback was sent")
	}
}

// pickTasks returns up to n (task id, unique id) pairs of rows with a task
// id, in state (any state when "").
func pickTasks(rows []rowResult, state string, n int) [][2]string {
	var all [][2]string
	for _, r := range rows {
		if r.TaskID != "" && (state == "" || r.State == state) {
			all = append(all, [2]string{r.TaskID, r.UniqueID})
		}
	}
	if len(all) <= n {
		return all
	}
	pairs := make([][2]string, 0, n)
	for i := range n {
		pairs = append(pairs, all[i*len(all)/n])
	}
	return pairs
}

// Scenario 5: the API down for 30 s in the middle of a run, then back.
func TestAPIDown30s(t *testing.T) {
	suite(t)
	rows := envRows(t, 2000, 600)
	c := startCluster(t, clusterOpts{
		workers:     2,
		sandboxArgs: []string{"-complete-after", "100ms"},
		workerArgs:  []string{"-rate-limit", rate(rows, 10), "-rate-burst", "10", "-callback-grace", "5s"},
	})
	ds := writeDataset(t, c.dir, "down", rows, 79)
	s := c.submit(ds)

	var downAt time.Time
	c.waitDone(s.RunID, 5*time.Minute, func(st summary) {
		if downAt.IsZero() && st.Submitted >= st.Valid/4 && st.State != "done" {
			t.Logf("API down for 30s at %s", st)
			c.setFaults(`{"down_for":"30s"}`)
			downAt = time.Now()
		}
	})
	if downAt.IsZero() {
		t.Fatal("the run finished before the outage could start")
	}
	if d := time.Since(downAt); d < 30*time.Second {
		t.Errorf("the run was done %v after the outage began, before the API was back", d)
	}
	if sb := c.stats(); sb.DownRejected == 0 {
		t.Error("sandbox down_rejected = 0: no call met the outage")
	}
	c.checkAccount(ds, s.RunID)
}

// Scenario 7: secrets. A run with distinctive keys (the workers read them
// from *_FILE), faults that make the programs log errors, forged callbacks,
// a refused configuration and a graceful shutdown; then no key may appear
// in any log, metrics page, Redis key or value, or AOF file.
func TestSecretsNeverLeak(t *testing.T) {
	suite(t)
	rows := envRows(t, 600, 300)
	c := startCluster(t, clusterOpts{
		workers:     2,
		secretFiles: true,
		sandboxArgs: []string{"-complete-after", "100ms", "-error-rate", "0.1", "-lost-response-rate", "0.05",
			"-callback-drop-rate", "0.05", "-rate-limit", "100"},
		workerArgs: []string{"-rate-limit", "150", "-rate-burst", "10", "-callback-grace", "3s"},
	})
	ds := writeDataset(t, c.dir, "secrets", rows, 50)
	s := c.submit(ds, "-wait")
	c.forgeAll(pickTasks(c.results(s.RunID), "completed", 3))

	// Every HTTP page of the workers goes to the logs that are scanned.
	for _, w := range c.workers {
		for _, page := range []string{"/metrics", "/healthz", "/readyz"} {
			resp, err := http.Get("http://" + w.Addr() + page)
			if err != nil {
				t.Fatalf("%s %s: %v", w.name, page, err)
			}
			f, err := os.Create(filepath.Join(c.logDir, fmt.Sprintf("%s%s.page", w.name, filepath.Base(page))))
			if err != nil {
				t.Fatal(err)
			}
			_, _ = f.ReadFrom(resp.Body)
			resp.Body.Close()
			f.Close()
		}
	}

	// Refused configurations: a live key given as the test key, and a test
	// key without a callback auth key. The errors must not echo the key.
	for i, env := range [][]string{
		{"REFONTE_TEST_API_KEY=" + c.keys.live, "REFONTE_CALLBACK_AUTH_KEY=" + c.keys.callback},
		{"REFONTE_TEST_API_KEY=" + c.keys.test},
		{"REFONTE_LIVE_API_KEY=" + c.keys.test, "REFONTE_CALLBACK_AUTH_KEY=" + c.keys.callback},
	} {
		p := newProc(t, c.logDir, fmt.Sprintf("badworker%d", i), bin(t, progWorker),
			[]string{"-listen", "127.0.0.1:0"}, append(append(baseEnv(), "REDIS_URL="+c.redis.URL()), env...))
		p.start()
		<-p.done
		if code := p.cmd.ProcessState.ExitCode(); code != 2 {
			t.Errorf("worker with a bad configuration %d: exit %d, want 2; stderr:\n%s", i, code, redact([]byte(p.tail(2000)), c.keys.needles()))
		}
	}

	c.checkAccount(ds, s.RunID)

	// SIGTERM: a clean shutdown (exit 0) flushes the last log lines.
	for _, w := range c.workers {
		if code := w.stop(15 * time.Second); code != 0 {
			t.Errorf("%s after SIGTERM: exit %d, want 0; stderr:\n%s", w.name, code, redact([]byte(w.tail(2000)), c.keys.needles()))
		}
	}
	if code := c.sandbox.stop(10 * time.Second); code != 0 {
		t.Errorf("sandbox after SIGTERM: exit %d, want 0", code)
	}
	c.checkSecrets()
}

// lastIncrAOF returns the newest incremental AOF file of a Redis 7 data
// directory (appendonlydir/<name>.<seq>.incr.aof), or the single AOF file
// of older versions.
func lastIncrAOF(t testing.TB, dir string) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "appendonlydir", "*.incr.aof"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		if _, err := os.Stat(filepath.Join(dir, "appendonly.aof")); err == nil {
			return filepath.Join(dir, "appendonly.aof")
		}
		t.Fatalf("no AOF file in %s", dir)
	}
	seq := func(f string) int {
		parts := strings.Split(filepath.Base(f), ".")
		n, _ := strconv.Atoi(parts[len(parts)-3])
		return n
	}
	sort.Slice(files, func(i, j int) bool { return seq(files[i]) < seq(files[j]) })
	return files[len(files)-1]
}

// A rolling restart, as a Kubernetes rollout does it: each worker in turn
// gets SIGTERM mid-run (it must stop fetching, finish or hand back its
// in-flight jobs within -shutdown-timeout and exit 0) and is started again.
func TestRollingRestart(t *testing.T) {
	suite(t)
	rows := envRows(t, 6000, 2000)
	c := startCluster(t, clusterOpts{
		workers:     3,
		sandboxArgs: []string{"-complete-after", "200ms", "-latency", "20ms"},
		workerArgs:  []string{"-rate-limit", rate(rows, 12), "-rate-burst", "20", "-callback-grace", "5s", "-shutdown-timeout", "5s"},
	})
	ds := writeDataset(t, c.dir, "rolling", rows, 103)
	s := c.submit(ds)

	restarts, next := 0, 0
	last := time.Now()
	c.waitDone(s.RunID, 4*time.Minute, func(st summary) {
		if st.State == "done" || st.Submitted >= st.Valid*8/10 || restarts >= 6 || time.Since(last) < 2*time.Second {
			return
		}
		w := c.workers[next%len(c.workers)]
		next++
		start := time.Now()
		code := w.stop(20 * time.Second)
		t.Logf("SIGTERM %s at %s: exit %d after %v", w.name, st, code, time.Since(start).Round(time.Millisecond))
		if code != 0 {
			t.Errorf("%s after SIGTERM: exit %d, want 0; stderr:\n%s", w.name, code, w.tail(3000))
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("%s took %v to shut down with -shutdown-timeout 5s", w.name, d)
		}
		restarts++
		c.restartWorker(w)
		last = time.Now()
	})
	if restarts < 2 {
		t.Errorf("only %d rolling restarts happened during the run; the scenario proves nothing", restarts)
	}
	c.checkAccount(ds, s.RunID)
}
