package redisbatch_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/internal/redisbatch"
	"github.com/refonte-ai/refonte-batch/internal/testredis"
)

// counter is a hook under the batching hook: it counts the round trips
// that reach the wire (single commands and batches).
type counter struct {
	singles, pipelines, piped atomic.Int64
	// inFlight and maxInFlight count the round trips on the wire at once;
	// each is held there for hold.
	inFlight, maxInFlight atomic.Int64
	hold                  time.Duration
}

// trip accounts for one round trip while next runs.
func (c *counter) trip(next func() error) error {
	n := c.inFlight.Add(1)
	for m := c.maxInFlight.Load(); n > m && !c.maxInFlight.CompareAndSwap(m, n); m = c.maxInFlight.Load() {
	}
	time.Sleep(c.hold)
	err := next()
	c.inFlight.Add(-1)
	return err
}

func (c *counter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.singles.Add(1)
		if !redisbatch.Batchable(cmd.Name()) {
			// Not through a lane (go-redis' own connection set-up among them).
			return next(ctx, cmd)
		}
		return c.trip(func() error { return next(ctx, cmd) })
	}
}

func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		// Only batches: go-redis' own connection set-up is a pipeline too.
		if redisbatch.Batchable(cmds[0].Name()) {
			c.pipelines.Add(1)
			c.piped.Add(int64(len(cmds)))
			return c.trip(func() error { return next(ctx, cmds) })
		}
		return next(ctx, cmds)
	}
}

// client returns a client on the test Redis with the batching hook (at
// most max commands per batch, over lanes lanes) and a counter under it.
func client(t *testing.T, max, lanes int) (*redis.Client, *counter) {
	t.Helper()
	opt, err := redis.ParseURL(testredis.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	opt.PoolSize = 50
	opt.Protocol = 2
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	rdb.AddHook(redisbatch.New(rdb, max, lanes))
	c := &counter{}
	rdb.AddHook(c)
	return rdb, c
}

// double returns ARGV[1] * 2 after counting the call in KEYS[1].
var double = redis.NewScript(`redis.call('INCR', KEYS[1]) return tonumber(ARGV[1]) * 2`)

// TestConcurrentCommandsGetTheirOwnReplies runs many goroutines' scripts,
// reads and writes through one batching client: each gets its own reply,
// every script ran exactly once, and far fewer round trips than commands
// reached Redis.
func TestConcurrentCommandsGetTheirOwnReplies(t *testing.T) {
	tests := []struct{ max, lanes int }{{0, 0}, {1, 0}, {7, 0}, {0, 1}, {7, 1}, {0, 3}}
	for _, tc := range tests {
		max := tc.max
		t.Run(fmt.Sprintf("max=%d,lanes=%d", tc.max, tc.lanes), func(t *testing.T) {
			rdb, c := client(t, tc.max, tc.lanes)
			ctx := context.Background()
			key := fmt.Sprintf("redisbatch-test:%d:%d:%d", time.Now().UnixNano(), tc.max, tc.lanes)
			t.Cleanup(func() { rdb.Del(context.Background(), key, key+":s") })
			rdb.Set(ctx, key+":s", "hello", time.Minute) // not batchable: direct
			const goroutines, each = 100, 20
			var wg sync.WaitGroup
			errs := make(chan error, goroutines)
			for g := range goroutines {
				wg.Go(func() {
					for i := range each {
						n := g*1000 + i
						got, err := double.Run(ctx, rdb, []string{key}, n).Int()
						if err != nil || got != 2*n {
							errs <- fmt.Errorf("script(%d) = %d, %v", n, got, err)
							return
						}
						if s, err := rdb.Get(ctx, key+":s").Result(); err != nil || s != "hello" {
							errs <- fmt.Errorf("GET = %q, %v", s, err)
							return
						}
						if _, err := rdb.Get(ctx, key+":missing").Result(); err != redis.Nil {
							errs <- fmt.Errorf("GET of a missing key: %v, want redis.Nil", err)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if n, _ := rdb.Get(ctx, key).Int(); n != goroutines*each {
				t.Fatalf("the script ran %d times, want %d", n, goroutines*each)
			}
			cmds := int64(goroutines * each * 3)
			trips := c.singles.Load() + c.pipelines.Load()
			t.Logf("%d commands in %d round trips (%d pipelines carrying %d)", cmds, trips, c.pipelines.Load(), c.piped.Load())
			if max != 1 && trips > cmds/2 {
				t.Fatalf("%d round trips for %d commands: not batched", trips, cmds)
			}
			if max == 1 && c.pipelines.Load() != 0 {
				t.Fatalf("max 1 sent %d pipelines", c.pipelines.Load())
			}
		})
	}
}

// TestLanesBoundBatchesInFlight checks that each lane has at most one
// round trip on the wire at a time, and that the lanes do overlap.
func TestLanesBoundBatchesInFlight(t *testing.T) {
	for _, lanes := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("lanes=%d", lanes), func(t *testing.T) {
			rdb, c := client(t, 0, lanes)
			ctx := context.Background()
			// Loaded first: a NOSCRIPT's fallback (EVAL) would go out on its own.
			if err := double.Load(ctx, rdb).Err(); err != nil {
				t.Fatal(err)
			}
			c.hold = 2 * time.Millisecond
			key := fmt.Sprintf("redisbatch-test:lanes:%d:%d", time.Now().UnixNano(), lanes)
			t.Cleanup(func() { rdb.Del(context.Background(), key) })
			var wg sync.WaitGroup
			for g := range 40 {
				wg.Go(func() {
					for i := range 10 {
						if got, err := double.Run(ctx, rdb, []string{key}, g+i).Int(); err != nil || got != 2*(g+i) {
							t.Errorf("script(%d) = %d, %v", g+i, got, err)
							return
						}
					}
				})
			}
			wg.Wait()
			if got := c.maxInFlight.Load(); got != int64(lanes) {
				t.Fatalf("%d round trips in flight at most, want %d (one per lane)", got, lanes)
			}
		})
	}
}

// TestScriptMissingFromRedis checks that go-redis' EVALSHA → EVAL fallback
// still works when the EVALSHA went out in a shared pipeline.
func TestScriptMissingFromRedis(t *testing.T) {
	rdb, _ := client(t, 0, 0)
	ctx := context.Background()
	key := fmt.Sprintf("redisbatch-test:noscript:%d", time.Now().UnixNano())
	t.Cleanup(func() { rdb.Del(context.Background(), key) })
	script := redis.NewScript(fmt.Sprintf(`return tonumber(ARGV[1]) + %d`, time.Now().UnixNano()%1000000))
	var wg sync.WaitGroup
	var bad atomic.Int64
	for g := range 50 {
		wg.Go(func() {
			if _, err := script.Run(ctx, rdb, []string{key}, g).Int(); err != nil {
				t.Errorf("a script Redis did not hold: %v", err)
				bad.Add(1)
			}
		})
	}
	wg.Wait()
	if bad.Load() > 0 {
		t.FailNow()
	}
}

// TestBlockingCommandIsNotBatched checks that a blocking command goes out
// on its own: scripts sent meanwhile do not wait for it.
func TestBlockingCommandIsNotBatched(t *testing.T) {
	rdb, _ := client(t, 0, 0)
	ctx := context.Background()
	key := fmt.Sprintf("redisbatch-test:block:%d", time.Now().UnixNano())
	t.Cleanup(func() { rdb.Del(context.Background(), key, key+":n") })
	blocked := make(chan error, 1)
	go func() { blocked <- rdb.BLPop(ctx, 2*time.Second, key).Err() }()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	for i := range 20 {
		if _, err := double.Run(ctx, rdb, []string{key + ":n"}, i).Int(); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("scripts took %s while a BLPOP blocked: they waited for it", d)
	}
	select {
	case err := <-blocked:
		t.Fatalf("BLPOP returned early: %v", err)
	default:
	}
	if err := <-blocked; err != redis.Nil {
		t.Fatalf("BLPOP = %v, want redis.Nil after its timeout", err)
	}
}

// TestWrongPasswordFailsEveryCommand: with a password Redis refuses, every
// command of a batch carries the error (go-redis stamped it on none of a
// pipeline's commands, so asynq read empty replies as tasks without an id
// and logged hundreds of thousands of lines).
func TestWrongPasswordFailsEveryCommand(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{Password: "right"})
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: "wrong", MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	rdb.AddHook(redisbatch.New(rdb, 0, 1))
	ctx := context.Background()
	var wg sync.WaitGroup
	var ok atomic.Int64
	for i := range 200 {
		wg.Go(func() {
			if err := rdb.Get(ctx, fmt.Sprint("k", i)).Err(); err == nil || err == redis.Nil {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if n := ok.Load(); n != 0 {
		t.Fatalf("%d of 200 commands succeeded (or read nil) against a server refusing the password", n)
	}
}
