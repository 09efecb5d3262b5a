package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/jobs/store/asynqwire"
)

// EmptyQueueTTL is how long the worker's asynq fetch loops take a queue
// found empty for empty without asking Redis again (see emptyQueues).
const EmptyQueueTTL = 100 * time.Millisecond

// emptyQueues is the Redis client the worker's asynq servers fetch jobs
// through. asynq's fetch loop (rdb.Dequeue) runs its dequeue script on
// each queue in priority order, one round trip each, until one gives a
// job; with a mode's three priority queues and live served before test,
// a normal test job took five round trips in a row, most of them on
// queues that stay empty for hours (high, low, the live queues of a test
// batch), and a loop's round trips bound how fast it refills its slots.
// emptyQueues remembers, for EmptyQueueTTL, that a queue had nothing to
// give and answers for it at once (redis.Nil, as the script would): a job
// put in an empty queue waits at most EmptyQueueTTL longer for a fetch
// loop (which itself sleeps 0.5–1.5 × EmptyQueueTTL when every queue is
// empty: asynq's TaskCheckInterval, see asynqConfig), and the order of
// priorities is unchanged. Every other command goes to the client.
//
// Measured on 2 quiet cores (load average ≈ 2), 2026-12-04:
// `BENCH_ROWS=5000 bench/ab.sh 7469e3b d495f82 BenchmarkEndToEnd 3` gave
// 3,219 → 3,603 rows/s and 713 → 657 µs of test-binary CPU per row.
type emptyQueues struct {
	redis.UniversalClient
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	until map[string]time.Time // queue → empty until
}

func newEmptyQueues(c redis.UniversalClient, ttl time.Duration) *emptyQueues {
	return &emptyQueues{UniversalClient: c, ttl: ttl, now: time.Now, until: map[string]time.Time{}}
}

// EvalSha runs a script by its SHA; asynq's dequeue on a queue found empty
// within the TTL answers redis.Nil without a round trip.
func (c *emptyQueues) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	return c.dequeue(ctx, keys, func() *redis.Cmd { return c.UniversalClient.EvalSha(ctx, sha, keys, args...) })
}

// Eval runs a script (go-redis falls back to it when Redis lacks the
// script), with EvalSha's rule.
func (c *emptyQueues) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return c.dequeue(ctx, keys, func() *redis.Cmd { return c.UniversalClient.Eval(ctx, script, keys, args...) })
}

func (c *emptyQueues) dequeue(ctx context.Context, keys []string, run func() *redis.Cmd) *redis.Cmd {
	q, ok := asynqwire.DequeueQueue(keys)
	if !ok {
		return run()
	}
	now := c.now()
	c.mu.Lock()
	empty := now.Before(c.until[q])
	c.mu.Unlock()
	if empty {
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(redis.Nil)
		return cmd
	}
	cmd := run()
	c.mu.Lock()
	if errors.Is(cmd.Err(), redis.Nil) {
		c.until[q] = now.Add(c.ttl)
	} else {
		delete(c.until, q)
	}
	c.mu.Unlock()
	return cmd
}
