package redisgate_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/refonte-ai/refonte-batch/internal/redisgate"
	"github.com/refonte-ai/refonte-batch/internal/testredis"
)

// TestGateHoldsCommandsWhileThePasswordIsRefused: 20 loops retrying at
// once against a Redis that refuses the password reach it a few times
// (one probe per backoff step), not thousands, and all go on once the
// password works again.
func TestGateHoldsCommandsWhileThePasswordIsRefused(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{Password: "pw1"})
	core, logs := observer.New(zap.InfoLevel)
	var ups, downs atomic.Int64
	gate := redisgate.New(redisgate.Options{MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		Logger: zap.New(core), OnChange: func(up bool) {
			if up {
				ups.Add(1)
			} else {
				downs.Add(1)
			}
		}})
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: "pw1", MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	rdb.AddHook(gate)
	var wire atomic.Int64
	rdb.AddHook(countHook{&wire})
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	srv.SetPassword("pw2")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range 20 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if rdb.Get(ctx, "k").Err() == redis.Nil {
					ok.Add(1)
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond) // the first failures close the gate; backoff reaches its maximum
	if down, err := gate.Down(); !down || !redis.IsAuthError(err) {
		t.Fatalf("gate Down() = %v, %v; want true and the auth error", down, err)
	}
	before := wire.Load()
	time.Sleep(time.Second)
	// One probe per 100 ms, each a command and its connection set-up.
	if n := wire.Load() - before; n > 30 {
		t.Errorf("%d commands or set-ups reached Redis in 1 s while it refused the password; want about two per backoff step", n)
	}
	// A command whose context ends while it waits gets ErrUnavailable.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	err := rdb.Get(cctx, "k").Err()
	cancel()
	if !errors.Is(err, redisgate.ErrUnavailable) && !redis.IsAuthError(err) {
		t.Errorf("Get with a short context = %v, want ErrUnavailable", err)
	}
	srv.SetPassword("pw1")
	deadline := time.Now().Add(5 * time.Second)
	for ok.Load() < 100 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if ok.Load() < 100 || ups.Load() != 1 || downs.Load() != 1 {
		t.Fatalf("after the password works again: %d commands ok, %d downs, %d ups; want work to resume", ok.Load(), downs.Load(), ups.Load())
	}
	if n := logs.Len(); n > 30 { // ~1.5 s of probes every 100 ms at most, plus the close and open lines
		t.Errorf("%d log lines; want one per backoff step", n)
	}
}

// countHook counts the commands and pipelines that reach the wire.
type countHook struct{ n *atomic.Int64 }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}
func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(1); return next(ctx, cmds) }
}
