package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/ratelimit"
)

// ExampleNewRedis shares one limit between two clients, as two worker pods
// would. (miniredis stands in for Redis here; it runs the same script.)
func ExampleNewRedis() {
	srv, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	cfg := ratelimit.Config{
		Rate:  2, // grants per second, for all pods together
		Burst: 1,
		Name:  "test:" + ratelimit.KeyFingerprint("test_0123456789abcdef"),
	}
	ctx := context.Background()
	var pods []*ratelimit.RedisLimiter
	for i := 0; i < 2; i++ {
		rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		defer rdb.Close()
		l, err := ratelimit.NewRedis(rdb, cfg)
		if err != nil {
			panic(err)
		}
		pods = append(pods, l)
	}
	d0, _ := pods[0].Reserve(ctx)
	d1, _ := pods[1].Reserve(ctx) // the same limit: pod 0 just took the slot
	fmt.Println("pod 0:", d0)
	fmt.Println("pod 1 must wait:", d1 > 0)
	fmt.Println("key:", pods[0].Key())
	// Output:
	// pod 0: 0s
	// pod 1 must wait: true
	// key: refonte:ratelimit:test:c813a1aed895314b
}

func ExampleLimiter_Wait() {
	lim, done := exampleLimiter(ratelimit.Config{Rate: 1, Burst: 2, Name: "example"})
	defer done()
	// A worker that would rather reschedule a job than wait long gives Wait a
	// deadline: the burst of 2 goes through, the third slot is a second away.
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		err := lim.Wait(ctx)
		cancel()
		var de *ratelimit.DelayError
		switch {
		case errors.As(err, &de):
			fmt.Printf("call %d: reschedule in %v\n", i, de.Delay.Round(time.Second))
		case err != nil:
			fmt.Println(err)
		default:
			fmt.Printf("call %d: go\n", i)
		}
	}
	// Output:
	// call 0: go
	// call 1: go
	// call 2: reschedule in 1s
}

func ExampleLimiter_Reserve() {
	lim, done := exampleLimiter(ratelimit.Config{Rate: 0.5, Name: "example"})
	defer done()
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		delay, err := lim.Reserve(ctx)
		if err != nil {
			panic(err)
		}
		if delay == 0 {
			fmt.Println("slot taken")
			continue
		}
		fmt.Println("nothing taken; next slot in", delay.Round(time.Second))
	}
	// Output:
	// slot taken
	// nothing taken; next slot in 2s
}

func ExampleLimiter_Cooldown() {
	lim, done := exampleLimiter(ratelimit.Config{Rate: 100, Burst: 10, Name: "example"})
	defer done()
	ctx := context.Background()
	// The API answered 429 with Retry-After: 30.
	if err := lim.Cooldown(ctx, 30*time.Second); err != nil {
		panic(err)
	}
	delay, _ := lim.Reserve(ctx)
	fmt.Println("next slot in", delay.Round(time.Second))
	// Output:
	// next slot in 30s
}

// exampleLimiter returns a limiter for cfg on a private miniredis (a
// stand-in for Redis that runs the same script) and a function that
// releases both.
func exampleLimiter(cfg ratelimit.Config) (ratelimit.Limiter, func()) {
	srv, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	lim, err := ratelimit.NewRedis(rdb, cfg)
	if err != nil {
		panic(err)
	}
	return lim, func() { rdb.Close(); srv.Close() }
}
