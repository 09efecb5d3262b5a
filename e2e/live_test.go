package e2e

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/jobs/submit"
)

// dbSize returns the number of keys in the cluster's Redis that a producer
// could have written: every key but the asynq servers' and workers'
// heartbeats, which the running workers refresh and let expire on their own
// (under load one can lapse between two counts).
func (c *cluster) dbSize() int64 {
	c.t.Helper()
	opt, err := redis.ParseURL(c.redis.URL())
	if err != nil {
		c.t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	keys, err := rdb.Keys(context.Background(), "*").Result()
	if err != nil {
		c.t.Fatal(err)
	}
	var n int64
	for _, k := range keys {
		if !strings.HasPrefix(k, "asynq:servers:") && !strings.HasPrefix(k, "asynq:workers:") {
			n++
		}
	}
	return n
}

// Live-mode cost safety (issue 8) with the real programs: a live run
// without -yes and without a terminal, or over -max-live-tasks, is refused
// with exit 2 and leaves Redis untouched; the dry run reports the billable
// count; with 3 workers × concurrency 50 and -live-daily-limit 50, a
// 200-row live run creates exactly 50 live tasks, the run is paused with
// none failed; raising the cap (workers restarted) lets every row finish,
// each created once.
func TestLiveDailyCap(t *testing.T) {
	suite(t)
	c := startCluster(t, clusterOpts{
		workers:     3,
		sandboxArgs: []string{"-complete-after", "100ms"},
		workerArgs:  []string{"-concurrency", "50", "-live-daily-limit", "50", "-callback-grace", "5s"},
	})
	c.mode = "live"
	c.enqueueEnv = []string{"REFONTE_LIVE_API_KEY=" + c.keys.live}
	ds := writeDataset(t, c.dir, "live", 200, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	keys := c.dbSize()
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		say  []string
	}{
		{"no -yes without a terminal", []string{"-mode", "live"}, c.enqueueEnv, []string{"-yes"}},
		{"over -max-live-tasks", []string{"-mode", "live", "-yes", "-max-live-tasks", "100"}, c.enqueueEnv, []string{"100", "200"}},
		{"no live key", []string{"-mode", "live", "-yes"}, nil, []string{"REFONTE_LIVE_API_KEY"}},
	} {
		r := runEnqueueEnv(t, ctx, c.logDir, tc.env, c.submitArgs(ds, tc.args...)...)
		if r.code != 2 {
			t.Errorf("%s: exit %d, want 2\nstderr:\n%s", tc.name, r.code, r.stderr)
		}
		for _, s := range tc.say {
			if !bytes.Contains(r.stderr, []byte(s)) {
				t.Errorf("%s: the message does not say %q:\n%s", tc.name, s, r.stderr)
			}
		}
		if n := c.dbSize(); n != keys {
			t.Errorf("%s: Redis went from %d to %d keys; a refused live run must write nothing", tc.name, keys, n)
		}
	}

	// The pre-flight: a live dry run reports the billable rows.
	r := runEnqueueEnv(t, ctx, c.logDir, c.enqueueEnv, c.submitArgs(ds, "-mode", "live", "-yes", "-dry-run")...)
	var pre struct {
		DryRun    bool `json:"dry_run"`
		Preflight *struct {
			Billable int64 `json:"billable"`
		} `json:"preflight"`
	}
	r.lastJSON(t, &pre)
	if r.code != 0 || !pre.DryRun || pre.Preflight == nil || pre.Preflight.Billable != int64(ds.valid) {
		t.Errorf("live dry run: exit %d, %s; want exit 0 and %d billable", r.code, r.stdout, ds.valid)
	}
	if n := c.dbSize(); n != keys {
		t.Errorf("live dry run: Redis went from %d to %d keys", keys, n)
	}

	s := c.submit(ds, "-mode", "live", "-yes")
	var st summary
	waitFor(t, 2*time.Minute, "the run paused at the daily cap", func() (bool, string) {
		c.checkAlive()
		st = c.status(s.RunID)
		return st.State == "paused", st.String()
	})
	if st.Failed != 0 || st.Submitted > 50 || st.PausedReason == "" {
		t.Errorf("paused run: %s, reason %q; want at most 50 submitted, none failed, a reason", st, st.PausedReason)
	}
	// The run is paused as soon as one job finds the budget spent, while
	// jobs holding the last reservations may still be waiting for their
	// rate-limit slot: they create their tasks, up to exactly the cap (a
	// reservation given back meanwhile is taken again by a paused job at
	// its next recheck, within submit.PausedRecheck).
	waitFor(t, submit.PausedRecheck+30*time.Second, "the reserved live tasks created, up to the cap", func() (bool, string) {
		c.checkAlive()
		live := c.stats().TasksByMode["live"]
		if live > 50 {
			t.Fatalf("live tasks went to %d past the cap of 50", live)
		}
		return live == 50, fmt.Sprintf("sandbox live tasks %d, want exactly 50", live)
	})
	// Absence of overshoot over time: the cap holds while the workers keep
	// rechecking it.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if live := c.stats().TasksByMode["live"]; live != 50 {
			t.Fatalf("live tasks went to %d past the cap of 50", live)
		}
		time.Sleep(250 * time.Millisecond)
	}

	// Raise the cap: the workers restart with a higher limit.
	for _, w := range c.workers {
		if code := w.stop(15 * time.Second); code != 0 {
			t.Errorf("%s after SIGTERM: exit %d, want 0", w.name, code)
		}
		for i, a := range w.args {
			if a == "-live-daily-limit" {
				w.args[i+1] = strconv.Itoa(1000)
			}
		}
		c.restartWorker(w)
	}
	c.waitDone(s.RunID, 3*time.Minute, nil)
	c.checkAccount(ds, s.RunID)
}
