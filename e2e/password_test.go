package e2e

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// Scenario: the Redis password is rotated under two running workers for
// 10 s, then restored (issue #17.3). While Redis refuses it, each worker's
// /readyz answers 503 and it logs a line per backoff step, not a flood;
// once the password works again the run completes by itself: every row
// created once, status = the API's counts, no password in any log.
func TestRedisPasswordRotated(t *testing.T) {
	suite(t)
	const pw, rotated = "e2e-redis-Passw0rd-before", "e2e-redis-Passw0rd-rotated"
	rows := envRows(t, 1500, 1500)
	c := startCluster(t, clusterOpts{
		workers:       2,
		redisPassword: pw,
		sandboxArgs:   []string{"-complete-after", "100ms"},
		workerArgs:    []string{"-rate-limit", rate(rows, 15), "-rate-burst", "10"},
	})
	ds := writeDataset(t, c.dir, "rotated", rows, 0)
	run := c.submit(ds)
	waitFor(t, time.Minute, "200 tasks created", func() (bool, string) {
		st := c.stats()
		return st.TasksCreated >= 200, fmt.Sprint(st.TasksCreated, " created")
	})

	c.redis.SetPassword(rotated)
	time.Sleep(time.Second) // the first refusals close each worker's gate
	before := logLines(t, c.workerProcs())
	const window = 10 * time.Second
	time.Sleep(window)
	lines := logLines(t, c.workerProcs()) - before
	for _, w := range c.workers {
		resp, err := http.Get("http://" + w.Addr() + "/readyz")
		if err != nil {
			t.Fatalf("%s /readyz: %v", w.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s /readyz = %d while Redis refuses the password, want 503", w.name, resp.StatusCode)
		}
	}
	t.Logf("password refused for %s: %d log lines from %d workers", window, lines, len(c.workers))
	if lines > 15*len(c.workers) {
		for _, w := range c.workers {
			t.Logf("%s's last lines:\n%s", w.name, w.tail(3000))
		}
		t.Errorf("%d log lines in %s while Redis refused the password; want a few per worker (one per backoff step)", lines, window)
	}

	c.redis.SetPassword(pw)
	restored := time.Now()
	s := c.waitDone(run.RunID, 3*time.Minute, nil)
	t.Logf("run done %s after the password works again: %s", time.Since(restored).Round(time.Second), s)
	c.checkAccount(ds, run.RunID)
	scanFiles(t, c.logDir, []string{pw, rotated})
}

// logLines counts the lines of the processes' stderr logs.
func logLines(t testing.TB, ps []*proc) int {
	t.Helper()
	n := 0
	for _, p := range ps {
		b, err := os.ReadFile(p.stderrPath)
		if err != nil {
			t.Fatal(err)
		}
		n += strings.Count(string(b), "\n")
	}
	return n
}
