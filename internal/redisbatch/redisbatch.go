// Package redisbatch coalesces the short commands that many goroutines
// send through one go-redis client into shared pipelines ("automatic
// pipelining"): one write and one read per batch instead of per command, on
// both sides of the connection.
//
// The worker runs hundreds of goroutines (asynq's fetch loops and task
// handlers, the callback receiver, the limiter) that each make a few Redis
// round trips per row; at thousands of rows per second on a small machine
// the system calls and wake-ups of those round trips were a large share of
// the CPU. Commands still run one by one in Redis, each script atomic; only
// their transport is shared, so no command's meaning changes.
//
// Only scripts (EVALSHA) and short reads are coalesced (see Batchable),
// never a blocking command, which would hold up its whole batch.
//
// A Hook needs no goroutine of its own (group commit): the first caller to
// find a lane idle leads; it takes the lane's queued commands (its own
// among them), sends them as one pipeline, and hands the lead to the oldest
// command still queued, whose goroutine sends the next batch. A caller
// leads at most until its own command has its reply, so nobody is held up
// serving others for long. Under light load each batch holds one command
// and goes out as a plain round trip.
//
// Each lane has at most one batch in flight; commands are dealt to the
// lanes in turn. With two lanes one batch can run in Redis while the other
// lane's leader writes or reads its own, so Redis does not sit idle between
// batches (BenchmarkEndToEndLatency100ms of app/worker: about 5 % more
// rows per second with 2 lanes than with 1; 4 were no better than 2).
package redisbatch

import (
	"context"
	"net"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// DefaultMaxBatch is the default of the most commands one pipeline carries.
const DefaultMaxBatch = 64

// DefaultLanes is the default number of lanes (batches in flight at once).
const DefaultLanes = 2

// Batchable reports whether a Hook coalesces the command of this name (as
// go-redis' Cmder.Name gives it, lower case).
func Batchable(name string) bool {
	switch name {
	case "evalsha", "evalsha_ro", "hgetall", "hmget", "hget", "get", "exists":
		return true
	}
	return false
}

// Pipeliner makes the pipelines a Hook sends batches on: the client the
// hook is added to.
type Pipeliner interface {
	Pipeline() redis.Pipeliner
}

// Hook is a go-redis hook that coalesces commands into pipelines. Add it to
// the client it sends its pipelines on:
//
//	rdb.AddHook(redisbatch.New(rdb, 0, 0))
type Hook struct {
	rdb   Pipeliner
	max   int
	lanes []lane
	turn  atomic.Uint32 // deals commands to the lanes in turn
}

// lane is a queue of commands with at most one batch in flight.
type lane struct {
	mu    sync.Mutex
	queue []*op
	busy  bool // a leader is sending a batch
}

// op is one command waiting for its batch.
type op struct {
	cmd  redis.Cmder
	next redis.ProcessHook // the rest of the hook chain, for a batch of one
	done chan struct{}     // closed once cmd holds its reply or error
	lead chan struct{}     // this op's goroutine sends the next batch
}

// New returns a Hook sending batches of at most max commands (0:
// DefaultMaxBatch) on rdb's pipelines, over lanes lanes (0: DefaultLanes).
func New(rdb Pipeliner, max, lanes int) *Hook {
	if max <= 0 {
		max = DefaultMaxBatch
	}
	if lanes <= 0 {
		lanes = DefaultLanes
	}
	return &Hook{rdb: rdb, max: max, lanes: make([]lane, lanes)}
}

// DialHook implements redis.Hook (unchanged).
func (h *Hook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return next(ctx, network, addr)
	}
}

// ProcessPipelineHook implements redis.Hook (unchanged: pipelines are
// already batched).
func (h *Hook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// ProcessHook implements redis.Hook: a Batchable command waits for a shared
// pipeline; any other goes out at once.
func (h *Hook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !Batchable(cmd.Name()) {
			return next(ctx, cmd)
		}
		h.do(ctx, &op{cmd: cmd, next: next})
		return cmd.Err()
	}
}

// do sends o in a shared batch and returns once o.cmd holds its reply or
// error. The wait does not end early when ctx is canceled: the command may
// already be on the wire, and the client's read and write timeouts bound it
// like any other.
func (h *Hook) do(ctx context.Context, o *op) {
	l := &h.lanes[int(h.turn.Add(1)%uint32(len(h.lanes)))]
	o.done = make(chan struct{})
	o.lead = make(chan struct{}, 1)
	l.mu.Lock()
	l.queue = append(l.queue, o)
	leader := !l.busy
	l.busy = true
	l.mu.Unlock()
	if !leader {
		select {
		case <-o.done:
			return
		case <-o.lead:
			// The previous leader handed over: o is still queued.
		}
	}
	ctx = context.WithoutCancel(ctx)
	for {
		l.mu.Lock()
		n := min(len(l.queue), h.max)
		batch := make([]*op, n)
		copy(batch, l.queue)
		rest := copy(l.queue, l.queue[n:])
		clear(l.queue[rest:])
		l.queue = l.queue[:rest]
		l.mu.Unlock()
		h.send(ctx, batch)
		select {
		case <-o.done:
		default:
			continue // o was beyond this batch
		}
		l.mu.Lock()
		if len(l.queue) > 0 {
			l.queue[0].lead <- struct{}{}
		} else {
			l.busy = false
		}
		l.mu.Unlock()
		return
	}
}

// send sends one batch and completes its ops.
func (h *Hook) send(ctx context.Context, batch []*op) {
	if len(batch) == 1 {
		// Nothing to share: a plain round trip is cheaper than a pipeline.
		o := batch[0]
		// The chain returns the error; go-redis stores it in the command
		// only after the outermost hook (this one) returns.
		o.cmd.SetErr(o.next(ctx, o.cmd))
		close(o.done)
		return
	}
	pipe := h.rdb.Pipeline()
	for _, o := range batch {
		_ = pipe.Process(ctx, o.cmd)
	}
	// Each command keeps its own reply or error; but when the pipeline
	// never ran because its connection could not be set up with a Redis
	// error (NOAUTH, WRONGPASS: a wrong or rotated password), go-redis
	// stamps that error on no command, and each would look like a
	// successful empty reply.
	if _, err := pipe.Exec(ctx); err != nil && !anyErr(batch) {
		for _, o := range batch {
			o.cmd.SetErr(err)
		}
	}
	for _, o := range batch {
		close(o.done)
	}
}

// anyErr reports whether a command of the batch holds an error.
func anyErr(batch []*op) bool {
	for _, o := range batch {
		if o.cmd.Err() != nil {
			return true
		}
	}
	return false
}
