package e2e

import (
	"context"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// lostCallbackGrace is the workers' -callback-grace of
// TestLostCallbacksRecoveredAtDefaults: E2E_CALLBACK_GRACE (a Go duration;
// "10m" is the worker's default) or 2 minutes, the shortest grace whose
// reconciler passes keep their default spacing.
func lostCallbackGrace(t testing.TB) time.Duration {
	t.Helper()
	v := os.Getenv("E2E_CALLBACK_GRACE")
	if v == "" {
		return 2 * time.Minute
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("E2E_CALLBACK_GRACE=%q: want a positive Go duration such as 10m", v)
	}
	return d
}

// recoverySlack is how long past the grace period a lost callback may stay
// unaccounted for: one reconciler pass interval (at most 20 s by default)
// plus the pass itself, within the "grace + 30 s".
const recoverySlack = 30 * time.Second

// TestLostCallbacksRecoveredAtDefaults: 1,000 rows, about 30 % of their
// callbacks never sent, workers at the default rate limit (10/s, burst 1)
// and reconciler settings. Every lost callback is recovered by the
// reconciler within grace + 30 s of its task's submission (before, a pass
// took one slot at burst 1 and stopped: about one task per pass).
func TestLostCallbacksRecoveredAtDefaults(t *testing.T) {
	suite(t)
	grace := lostCallbackGrace(t)
	const rows = 1000
	c := startCluster(t, clusterOpts{
		workers:     2,
		sandboxArgs: []string{"-callback-drop-rate", "0.3"},
		// The worker's defaults, spelled out (the harness turns the limiter off).
		workerArgs: []string{"-rate-limit", "10", "-rate-burst", "1", "-callback-grace", grace.String()},
	})
	ds := writeDataset(t, c.dir, "lostcb", rows, 0)
	start := time.Now()
	s := c.submit(ds)
	// 100 s of creates at 10/s, then the grace, then one pass interval.
	c.waitDone(s.RunID, 100*time.Second+grace+2*time.Minute, nil)
	c.checkAccount(ds, s.RunID)
	dropped := c.stats().CallbacksDropped
	if dropped < rows/5 {
		t.Fatalf("the sandbox dropped %d callbacks of %d, want about 30 %%", dropped, rows)
	}

	// Each row's submission and last change, from its job record.
	opt, err := redis.ParseURL(c.redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	var late []time.Duration // time from submission to the outcome of rows settled after the grace
	for _, row := range c.results(s.RunID) {
		v, err := rdb.HMGet(ctx, "refonte:job:test:"+row.UniqueID, "submitted", "updated").Result()
		if err != nil {
			t.Fatal(err)
		}
		sub, upd := msTime(v[0]), msTime(v[1])
		if sub.IsZero() || upd.IsZero() {
			t.Fatalf("row %d (%s): job record without submitted/updated times: %v", row.Line, row.UniqueID, v)
		}
		if d := upd.Sub(sub); d >= grace/2 {
			late = append(late, d)
		}
	}
	slices.Sort(late)
	if int64(len(late)) != dropped {
		t.Errorf("%d rows settled after the grace period, want the %d whose callback was dropped", len(late), dropped)
	}
	if len(late) == 0 {
		t.Fatal("no row was recovered by the reconciler")
	}
	worst := late[len(late)-1]
	t.Logf("lost callbacks recovered: %d of %d rows in %s; submission to outcome: min %s, median %s, max %s (grace %s + %s)",
		len(late), rows, time.Since(start).Round(time.Second), late[0].Round(100*time.Millisecond),
		late[len(late)/2].Round(100*time.Millisecond), worst.Round(100*time.Millisecond), grace,
		(worst - grace).Round(100*time.Millisecond))
	if worst > grace+recoverySlack {
		t.Errorf("a lost callback was recovered %s after its submission, want within grace + %s = %s", worst, recoverySlack, grace+recoverySlack)
	}
}

// msTime parses a Redis reply holding unix milliseconds (zero time if absent).
func msTime(v any) time.Time {
	s, _ := v.(string)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n)
}
