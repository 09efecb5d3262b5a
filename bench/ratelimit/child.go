package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/refonte-ai/refonte-batch/ratelimit"
)

// report is what a child prints on stdout.
type report struct {
	Wakes  []int64 `json:"wakes"` // actual wake-up times, unix ns
	Slots  []int64 `json:"slots"` // booked slots (Redis clock), unix ns
	Calls  int64   `json:"calls"` // commands sent to Redis
	Errors int     `json:"errors"`
	Error  string  `json:"error,omitempty"` // the first unexpected error
}

// runChild waits for the common start, runs the goroutines until the
// deadline and prints its report.
func runChild(o options) error {
	opt, err := redis.ParseURL(o.redisURL)
	if err != nil {
		return err
	}
	opt.PoolSize = o.goroutines
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	hook := &countingHook{}
	start := time.Unix(0, o.start)
	if err := warm(rdb, o.goroutines); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	lim, err := ratelimit.NewRedis(rdb, ratelimit.Config{Rate: o.rate, Burst: o.burst, Name: o.name})
	if err != nil {
		return err
	}
	if err := lim.Load(context.Background()); err != nil {
		return err
	}
	rdb.AddHook(hook) // counted from here
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(o.duration))
	defer cancel()
	var (
		mu  sync.Mutex
		rep report
		wg  sync.WaitGroup
	)
	time.Sleep(time.Until(start))
	for g := 0; g < o.goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var wakes, slots []int64
			var errCount int
			var firstErr error
			for {
				slot, err := lim.WaitSlot(ctx)
				if err != nil {
					if !errors.Is(err, ratelimit.ErrWouldExceedDeadline) && ctx.Err() == nil {
						errCount++
						if firstErr == nil {
							firstErr = err
						}
						time.Sleep(10 * time.Millisecond) // do not spin on a down Redis
						continue
					}
					break
				}
				wakes = append(wakes, time.Now().UnixNano())
				slots = append(slots, slot.UnixNano())
			}
			mu.Lock()
			defer mu.Unlock()
			rep.Wakes = append(rep.Wakes, wakes...)
			rep.Slots = append(rep.Slots, slots...)
			rep.Errors += errCount
			if firstErr != nil && rep.Error == "" {
				rep.Error = firstErr.Error()
			}
		}()
	}
	wg.Wait()
	rep.Calls = hook.n.Load()
	return json.NewEncoder(os.Stdout).Encode(&rep)
}

// warm opens n pooled connections with concurrent PINGs, as a long-running
// worker's pool would have, so the run does not measure connection setup.
func warm(rdb *redis.Client, n int) error {
	var g errgroup.Group
	for i := 0; i < n; i++ {
		g.Go(func() error { return rdb.Ping(context.Background()).Err() })
	}
	return g.Wait()
}

// countingHook counts the commands a client sends, except the handshake
// each new connection makes (HELLO, CLIENT SETINFO, AUTH, SELECT): those are
// per connection, not per grant.
type countingHook struct{ n atomic.Int64 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch cmd.Name() {
		case "hello", "client", "auth", "select":
		default:
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			switch cmd.Name() {
			case "hello", "client", "auth", "select":
			default:
				h.n.Add(1)
			}
		}
		return next(ctx, cmds)
	}
}
