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
}

func (c *counter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.singles.Add(1)
		return next(ctx, cmd)
	}
}

func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		// Only batches: go-redis' own connection set-up is a pipeline too.
		if redisbatch.Batchable(cmds[0].Name()) {
			c.pipelines.Add(1)
			c.piped.Add(int64(len(cmds)))
		}
		return next(ctx, cmds)
	}
}

// client returns a client on the test Redis with the batching hook and a
// counter under it.
func client(t *testing.T, max int) (*redis.Client, *counter) {
	t.Helper()
	opt, err := redis.ParseURL(testredis.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	opt.PoolSize = 50
	opt.Protocol = 2
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	rdb.AddHook(redisbatch.New(rdb, max))
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
	for _, max := range []int{0, 1, 7} {
		t.Run(fmt.Sprintf("max=%d", max), func(t *testing.T) {
			rdb, c := client(t, max)
			ctx := context.Background()
			key := fmt.Sprintf("redisbatch-test:%d:%d", time.Now().UnixNano(), max)
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

// TestScriptMissingFromRedis checks that go-redis' EVALSHA → EVAL fallback
// still works when the EVALSHA went out in a shared pipeline.
func TestScriptMissingFromRedis(t *testing.T) {
	rdb, _ := client(t, 0)
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
	rdb, _ := client(t, 0)
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
