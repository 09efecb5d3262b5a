package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// attackConns keeps n connections to addr open for as long as ctx lasts,
// each reopened as soon as the server closes it: slow ones announce a
// 100,000-byte callback body without the key and send one byte every 5 s,
// idle ones send nothing. It returns the longest time the server let one
// connection live and how many it closed.
func attackConns(ctx context.Context, addr string, n int, slow bool) (held func() (time.Duration, int64)) {
	var mu sync.Mutex
	var longest time.Duration
	var closed atomic.Int64
	for range n {
		go func() {
			for ctx.Err() == nil {
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				start := time.Now()
				done := make(chan struct{})
				go func() { // the server closing the connection ends the read
					_, _ = io.Copy(io.Discard, conn)
					close(done)
				}()
				if slow {
					_, _ = io.WriteString(conn, "POST /callback HTTP/1.1\r\nHost: w\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
				}
				tick := time.NewTicker(5 * time.Second)
			wait:
				for {
					select {
					case <-done:
						break wait
					case <-ctx.Done():
						_ = conn.Close()
						<-done
						tick.Stop()
						return
					case <-tick.C:
						if slow {
							_, _ = io.WriteString(conn, " ")
						}
					}
				}
				tick.Stop()
				_ = conn.Close()
				d := time.Since(start)
				closed.Add(1)
				mu.Lock()
				longest = max(longest, d)
				mu.Unlock()
				time.Sleep(time.Second) // the attacker comes back
			}
		}()
	}
	return func() (time.Duration, int64) {
		mu.Lock()
		defer mu.Unlock()
		return longest, closed.Load()
	}
}

// Scenario: a slow-client attack on a worker's public endpoint. 500
// connections announcing a callback body without the key and trickling it,
// and 500 idle connections, are held open (reopened as soon as closed) on
// one worker for the whole of a 100-row run: the run completes, /healthz
// and /readyz of the attacked worker keep answering, the slow connections
// are answered 401 and closed at once and the idle ones within the
// header timeout.
func TestSlowClientAttack(t *testing.T) {
	suite(t)
	c := startCluster(t, clusterOpts{
		workers:    2,
		workerArgs: []string{"-callback-grace", "30s"},
	})
	target := c.workers[0].Addr()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	slowHeld := attackConns(ctx, target, 500, true)
	idleHeld := attackConns(ctx, target, 500, false)
	time.Sleep(2 * time.Second) // the attack is on

	// Health of the attacked worker, polled throughout.
	var probes, slowProbes atomic.Int64
	var probeErr atomic.Value
	hc := &http.Client{Timeout: 3 * time.Second}
	go func() {
		for ctx.Err() == nil {
			for _, path := range []string{"/healthz", "/readyz"} {
				start := time.Now()
				resp, err := hc.Get("http://" + target + path)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("%s: %s", path, resp.Status)
					}
				}
				if err != nil && ctx.Err() == nil {
					probeErr.Store(err.Error())
				}
				if time.Since(start) > time.Second {
					slowProbes.Add(1)
				}
				probes.Add(1)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()

	ds := writeDataset(t, c.dir, "attack", 100, 0)
	start := time.Now()
	s := c.submit(ds)
	// Half the callbacks go straight to the attacked worker.
	c.waitDone(s.RunID, 3*time.Minute, nil)
	took := time.Since(start)
	// The attack goes on until every idle connection was closed once.
	waitFor(t, 30*time.Second, "the idle connections closed by the worker", func() (bool, string) {
		_, n := idleHeld()
		return n >= 500, fmt.Sprintf("%d closed", n)
	})
	slowLongest, slowClosed := slowHeld()
	idleLongest, idleClosed := idleHeld()
	stop()
	t.Logf("100-row run done in %s under attack; slow-body connections: %d closed by the worker, longest held %s; idle: %d closed, longest held %s; health probes: %d, %d over 1 s",
		took.Round(100*time.Millisecond), slowClosed, slowLongest.Round(10*time.Millisecond), idleClosed, idleLongest.Round(10*time.Millisecond), probes.Load(), slowProbes.Load())
	if e := probeErr.Load(); e != nil {
		t.Errorf("a health probe of the attacked worker failed: %v", e)
	}
	if probes.Load() == 0 {
		t.Error("no health probe ran during the attack")
	}
	// Slow bodies without the key: 401 and closed at once (a few seconds
	// of slack for a loaded machine); idle ones: the 5 s header timeout.
	if slowClosed < 500 || slowLongest > 5*time.Second {
		t.Errorf("slow-body connections: %d closed, longest held %s; want each closed within 5 s", slowClosed, slowLongest)
	}
	if idleClosed < 500 || idleLongest > 15*time.Second {
		t.Errorf("idle connections: %d closed, longest held %s; want each closed within 15 s", idleClosed, idleLongest)
	}
	c.checkAccount(ds, s.RunID)
}

// Scenario: replayed and forged callbacks with the right key, after a run is
// done (the same completed_at with another status, no timestamps, no task
// object, another task's id with a row's unique_id): nothing changes, not a
// row, not a counter; status shows them as conflicting deliveries. Then a
// flood of unknown callbacks of 64 KiB each stays within the kept-callback
// budget in Redis.
func TestReplayedAndForgedCallbacks(t *testing.T) {
	suite(t)
	c := startCluster(t, clusterOpts{workers: 2, workerArgs: []string{"-callback-grace", "30s"}})
	ds := writeDataset(t, c.dir, "replay", 50, 0)
	s := c.submit(ds)
	final := c.waitDone(s.RunID, 3*time.Minute, nil)
	before := c.results(s.RunID)
	pairs := pickTasks(before, "completed", 4)
	if len(pairs) < 4 {
		t.Fatalf("only %d completed rows", len(pairs))
	}
	// A row's task, as the sandbox holds it, is replayed as errored.
	var task map[string]any
	if code := c.api(http.MethodGet, "/task/"+pairs[0][0], nil, &task); code != http.StatusOK {
		t.Fatalf("GET /task: %d", code)
	}
	// Same completed_at (no newer updated_at): not newer than the row's.
	delete(task, "updated_at")
	task["status"], task["response"] = "error", map[string]any{"error": "replayed"}
	replay, _ := json.Marshal(map[string]any{"task": task, "task_id": pairs[0][0], "status": "error", "response": task["response"]})
	bodies := []struct {
		name string
		body []byte
	}{
		{"same completed_at, status error", replay},
		{"no timestamps, canceled", fmt.Appendf(nil, `{"task_id":%q,"status":"canceled","task":{"task_id":%q,"status":"canceled","unique_id":%q,"is_test":true}}`, pairs[1][0], pairs[1][0], pairs[1][1])},
		{"no task object, error", fmt.Appendf(nil, `{"task_id":%q,"status":"error","response":{"error":"forged"}}`, pairs[2][0])},
		{"foreign task_id, known unique_id", fmt.Appendf(nil, `{"task_id":"e2e-foreign","status":"error","response":{"error":"forged"},"task":{"task_id":"e2e-foreign","status":"error","unique_id":%q,"is_test":true,"updated_at":%q,"response":{"error":"forged"}}}`,
			pairs[3][1], time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano))},
	}
	for i, b := range bodies {
		w := c.workers[i%len(c.workers)]
		if code := postCallback(t, w.Addr(), c.keys.callback, b.body); code != http.StatusOK {
			t.Errorf("%s: %d, want 200 (refused, not retried)", b.name, code)
		}
	}
	after := c.status(s.RunID)
	if after.Conflicts != int64(len(bodies)) {
		t.Errorf("status conflicting_deliveries = %d, want %d", after.Conflicts, len(bodies))
	}
	after.Conflicts = final.Conflicts
	if after != final {
		t.Errorf("status changed by replayed callbacks:\n%s\nwas\n%s", after, final)
	}
	afterRows := c.results(s.RunID)
	for i := range before {
		if i >= len(afterRows) || before[i].State != afterRows[i].State || before[i].TaskID != afterRows[i].TaskID ||
			!bytes.Equal(before[i].Response, afterRows[i].Response) || before[i].Error != afterRows[i].Error {
			t.Errorf("row %d changed by replayed callbacks: %+v, was %+v", before[i].Line, afterRows[i], before[i])
		}
	}

	// 2,000 unknown callbacks of 64 KiB (125 MiB sent) keep at most the
	// 16 MiB budget in Redis.
	pad := strings.Repeat("x", 64<<10)
	for i := range 2000 {
		w := c.workers[i%len(c.workers)]
		body := fmt.Appendf(nil, `{"task_id":"e2e-unknown-%d","status":"completed","response":{"pad":%q}}`, i, pad)
		if code := postCallback(t, w.Addr(), c.keys.callback, body); code != http.StatusOK {
			t.Fatalf("unknown callback %d: %d", i, code)
		}
	}
	opt, err := redis.ParseURL(c.redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	rctx := context.Background()
	used := rdb.MemoryUsage(rctx, "refonte:kept-callbacks").Val()
	kept := rdb.LLen(rctx, "refonte:kept-callbacks").Val()
	dropped, _ := rdb.Get(rctx, "refonte:kept-callbacks:dropped").Int64()
	t.Logf("2,000 unknown callbacks of 64 KiB: %d kept in %.1f MiB of Redis, %d dropped", kept, float64(used)/(1<<20), dropped)
	if used > 16<<20 || kept == 0 {
		t.Errorf("kept callbacks use %d bytes of Redis (%d entries), want at most 16 MiB", used, kept)
	}
	c.checkAccount(ds, s.RunID)
}
