package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

// Scenario: Redis behind Sentinel (a master and 2 replicas with AOF, 3
// sentinels with quorum 2, a password, database 3); two workers sharing
// -rate-limit 100 against a sandbox enforcing the same limit per key (a
// token bucket of one second, its burst, as the slack); 3,000 rows; 5 s
// into the run the master is switched (SENTINEL FAILOVER) or SIGKILLed.
// The run must finish by itself within 4 minutes at the default
// -callback-grace, every row created exactly once, the status agreeing
// with the API, no password in any log, at most sentinelMax429 answers
// 429 over the whole run (the limiter's state lives in Redis: the switch
// must not make the workers send a burst the API refuses), and no line of
// asynq's recoverer racing for a lost acknowledgement (NOT FOUND).
//
// It logs the failover's figures for the README: how long creates
// stalled, how many bytes of writes the old master took that the new one
// never got, how many jobs ran again (their asynq acknowledgement was
// lost: 409 at the API) and how many rows the post-switch reconciler
// sweep repaired (completions lost with the old master).
func TestSentinelFailover(t *testing.T)     { sentinelScenario(t, false) }
func TestSentinelMasterKilled(t *testing.T) { sentinelScenario(t, true) }

// sentinelMax429 bounds the 429s of a Sentinel scenario. The workers
// book slots at the API's rate from one GCRA state in Redis, and every
// worker follows the switch within moments of the first announcement, so
// they never book against two masters for long. What a switch loses is
// the state's last writes, which the new master never got: an older TAT,
// worth at most the burst (-rate-burst, 20 here) of extra grants at once
// — and the workers drop that credit at the announcement
// (ratelimit.RedisLimiter.DropBurst; after a crash go-redis may reach the
// new master a moment before it, but then no create went out for the
// seconds the failover took). The API's bucket holds one second (100) of
// slack. So a correct system sees none; the bound leaves room for
// scheduling jitter on a loaded machine only.
const sentinelMax429 = 10

func sentinelScenario(t *testing.T, kill bool) {
	suite(t)
	const pw = "e2e-sentinel-Passw0rd"
	rows := envRows(t, 3000, 3000)
	limit := rate(rows, 30)
	tp := testredis.StartTopology(t, testredis.TopologyOptions{Replicas: 2, Sentinels: 3, Quorum: 2,
		Password: pw, AOF: true, DownAfter: time.Second})
	tp.WaitSettled()
	c := startCluster(t, clusterOpts{
		workers:     2,
		redisURL:    tp.URL(3),
		sandboxArgs: []string{"-complete-after", "200ms", "-rate-limit", limit},
		workerArgs:  []string{"-rate-limit", limit, "-rate-burst", "20"},
	})
	ds := writeDataset(t, c.dir, "sentinel", rows, 0)
	start := time.Now()
	first := c.submit(ds)
	samples := sampleSandbox(t, c.sandboxURL)
	time.Sleep(time.Until(start.Add(5 * time.Second)))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	old, err := tp.MasterAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	offsets := watchMasterOffset(t, tp.Server(old).Addr(), pw)
	before := c.status(first.RunID)
	if kill {
		t.Logf("SIGKILL the master %s at %s", old, before)
		tp.Server(old).Kill()
	} else {
		t.Logf("SENTINEL FAILOVER (master %s) at %s", old, before)
		if err := tp.Failover(ctx); err != nil {
			t.Fatal(err)
		}
	}
	switched := time.Now()
	now, err := tp.WaitMasterChange(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sentinels name %s the master after %s", now, time.Since(switched).Round(time.Millisecond))

	s := c.waitDone(first.RunID, 4*time.Minute-time.Since(start), nil)
	t.Logf("run done %s after the start, %s after the switch: %s", time.Since(start).Round(time.Second),
		time.Since(switched).Round(time.Second), s)
	c.checkAccount(ds, first.RunID)
	st := c.stats()
	samples.stop()

	lost := offsets.lostTo(t, now)
	stall, stallAt := samples.longestStall(switched, int64(ds.valid))
	repaired := c.workerMetricSum(`refonte_reconcile_polls_total{mode="test",outcome="completed"}`)
	notFound := countInFiles(t, c.workerProcs(), "NOT FOUND")
	t.Logf("failover figures: creates stalled %s (from %s after the switch); the old master took %s the new one never got; "+
		"%d jobs ran again (409: acknowledgement lost); %.0f rows repaired by the post-switch reconciler sweep; "+
		"%d × 429 (sandbox and workers at %s/s); %d recoverer NOT FOUND lines",
		stall.Round(100*time.Millisecond), stallAt.Round(100*time.Millisecond), lost, st.DuplicateUniqueID, repaired,
		st.RateLimited, limit, notFound)
	t.Logf("creates per second from 3 s before the switch: %v", samples.perSecond(switched.Add(-3*time.Second), 12))
	if st.RateLimited > sentinelMax429 {
		t.Errorf("the sandbox answered 429 %d times over the failover; want at most %d", st.RateLimited, sentinelMax429)
	}
	if notFound > 0 {
		t.Errorf("the workers logged %d lines with NOT FOUND (asynq's recoverers racing for the same lost acknowledgement); want none", notFound)
	}
	scanFiles(t, c.logDir, []string{pw})
}

// sandboxSample is the sandbox's create count at a moment.
type sandboxSample struct {
	at      time.Time
	created int64
}

// sandboxSampler polls the sandbox's counters every 100 ms.
type sandboxSampler struct {
	mu      sync.Mutex
	samples []sandboxSample
	done    chan struct{}
	wg      sync.WaitGroup
}

// sampleSandbox starts polling the sandbox at base (http://host:port).
func sampleSandbox(t testing.TB, base string) *sandboxSampler {
	s := &sandboxSampler{done: make(chan struct{})}
	hc := &http.Client{Timeout: time.Second}
	s.wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-tick.C:
			}
			resp, err := hc.Get(base + "/_sandbox/stats")
			if err != nil {
				continue
			}
			var st sandbox.Stats
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err == nil {
				s.mu.Lock()
				s.samples = append(s.samples, sandboxSample{at: time.Now(), created: st.TasksCreated})
				s.mu.Unlock()
			}
		}
	})
	t.Cleanup(s.stop)
	return s
}

// stop ends the polling (idempotent).
func (s *sandboxSampler) stop() {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	s.wg.Wait()
}

// longestStall returns the longest time after from during which no task
// was created while fewer than total existed, and when it began (after from).
func (s *sandboxSampler) longestStall(from time.Time, total int64) (time.Duration, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best, bestAt time.Duration
	var last *sandboxSample
	for i := range s.samples {
		cur := &s.samples[i]
		if cur.at.Before(from) {
			last = cur
			continue
		}
		if last == nil || cur.created != last.created || last.created >= total {
			last = cur
			continue
		}
		if d := cur.at.Sub(last.at); d > best {
			best, bestAt = d, last.at.Sub(from)
		}
	}
	return best, bestAt
}

// perSecond returns the tasks created in each second from from, n seconds.
func (s *sandboxSampler) perSecond(from time.Time, n int) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := func(t time.Time) int64 { // created at the last sample at or before t
		var c int64
		for _, x := range s.samples {
			if x.at.After(t) {
				break
			}
			c = x.created
		}
		return c
	}
	out := make([]int64, n)
	for i := range out {
		out[i] = at(from.Add(time.Duration(i+1)*time.Second)) - at(from.Add(time.Duration(i)*time.Second))
	}
	return out
}

// masterOffsets follows a master's replication offset (INFO replication)
// every 20 ms until it stops being a master or stops answering.
type masterOffsets struct {
	mu   sync.Mutex
	last int64 // the master's newest master_repl_offset seen
	pw   string
	done chan struct{}
}

func watchMasterOffset(t testing.TB, addr, pw string) *masterOffsets {
	m := &masterOffsets{pw: pw, done: make(chan struct{})}
	rdb := redis.NewClient(&redis.Options{Addr: addr, Password: pw, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	go func() {
		defer close(m.done)
		defer rdb.Close()
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			info, err := rdb.Info(context.Background(), "replication").Result()
			if err != nil || infoField(info, "role") != "master" {
				return
			}
			if n, err := strconv.ParseInt(infoField(info, "master_repl_offset"), 10, 64); err == nil {
				m.mu.Lock()
				m.last = n
				m.mu.Unlock()
			}
		}
	}()
	return m
}

// lostTo returns the bytes of replication stream the old master took
// after the new master (at addr) stopped following it: the old master's
// last offset minus the offset at which the new one was promoted
// (second_repl_offset - 1). A SIGKILLed master's last 20 ms are not seen.
func (m *masterOffsets) lostTo(t testing.TB, addr string) string {
	t.Helper()
	<-m.done
	rdb := redis.NewClient(&redis.Options{Addr: addr, Password: m.pw})
	defer rdb.Close()
	info, err := rdb.Info(context.Background(), "replication").Result()
	if err != nil {
		return fmt.Sprintf("(? INFO of the new master: %v)", err)
	}
	promoted, err := strconv.ParseInt(infoField(info, "second_repl_offset"), 10, 64)
	if err != nil || promoted < 0 {
		return "(? the new master has no second_repl_offset)"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return fmt.Sprintf("%d bytes", max(0, m.last-(promoted-1)))
}

// infoField returns a field of an INFO reply.
func infoField(info, name string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// workerMetricSum sums, over the workers, the value of the Prometheus
// series written exactly as series (name{labels} in the exposition's
// label order); a worker without it counts 0.
func (c *cluster) workerMetricSum(series string) float64 {
	c.t.Helper()
	var sum float64
	for _, w := range c.workers {
		resp, err := http.Get("http://" + w.Addr() + "/metrics")
		if err != nil {
			c.t.Fatalf("%s /metrics: %v", w.name, err)
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					c.t.Fatalf("%s /metrics: %q: %v", w.name, sc.Text(), err)
				}
				sum += f
			}
		}
		resp.Body.Close()
	}
	return sum
}

// countInFiles counts the lines of the processes' stderr logs containing
// s, and logs the first few distinct messages among them.
func countInFiles(t testing.TB, ps []*proc, s string) int {
	t.Helper()
	n := 0
	seen := map[string]bool{}
	for _, p := range ps {
		b, err := os.ReadFile(p.stderrPath)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if !strings.Contains(line, s) {
				continue
			}
			n++
			var l struct{ Level, Logger, Msg string }
			if json.Unmarshal([]byte(line), &l) != nil {
				l.Msg = line
			}
			if key := l.Level + " " + l.Logger + ": " + l.Msg; !seen[key] && len(seen) < 5 {
				seen[key] = true
				t.Logf("%s log: %s", p.name, key)
			}
		}
	}
	return n
}
