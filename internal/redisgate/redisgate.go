// Package redisgate is a go-redis hook that holds a process's Redis
// commands back while Redis is unusable — it refuses the password (a wrong
// or rotated one) or cannot be dialed — instead of letting every loop
// retry at once.
//
// Without it, asynq's fetch loops retry a failed dequeue at once, with no
// pause: against a Redis that refuses the password the worker burned a
// core and logged 200,000 lines in 15 s. With the gate, the first such
// error closes it; from then on one command at a time is let through as a
// probe, after a backoff that doubles from MinBackoff to MaxBackoff (one
// log line per probe); every other command waits (or returns
// ErrUnavailable when its context ends first). The first probe that works
// opens the gate and wakes everybody: work resumes by itself once the
// password works again.
package redisgate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/internal/defaults"
)

// Defaults of Options.
const (
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 15 * time.Second
)

// ErrUnavailable is returned to a command whose context ended while the
// gate was closed; it wraps the last Redis error too.
var ErrUnavailable = errors.New("redis unavailable")

// ErrClosed is returned to commands waiting when the gate is closed for
// good (the process is stopping).
var ErrClosed = errors.New("redis gate closed")

// Options configures a Gate.
type Options struct {
	// MinBackoff and MaxBackoff bound the wait between probes (defaults
	// DefaultMinBackoff, DefaultMaxBackoff).
	MinBackoff, MaxBackoff time.Duration
	// Logger receives one line when the gate closes, one per failed probe
	// and one when it opens again (default: none).
	Logger *zap.Logger
	// OnChange, if set, is called with false when the gate closes and true
	// when it opens again.
	OnChange func(up bool)
}

// Gate is the hook; add it to the client it guards with AddHook.
type Gate struct {
	opts Options

	isDown atomic.Bool // mirrors down, for the open gate's lock-free path

	mu      sync.Mutex
	down    bool
	since   time.Time
	lastErr error
	step    time.Duration
	next    time.Time     // when the next probe may go
	probing bool          // a probe is on the wire
	wake    chan struct{} // closed (and replaced) whenever the state changes
	closed  bool
}

// New returns an open Gate.
func New(o Options) *Gate {
	o.MinBackoff = defaults.Positive(o.MinBackoff, DefaultMinBackoff)
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(DefaultMaxBackoff, o.MinBackoff)
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return &Gate{opts: o, wake: make(chan struct{})}
}

// Unusable reports whether err means Redis cannot be used at all for now:
// it refuses the credentials, or it cannot be dialed.
func Unusable(err error) bool {
	if err == nil {
		return false
	}
	if redis.IsAuthError(err) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// Down reports whether the gate is closed, and the error that closed it.
func (g *Gate) Down() (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.down, g.lastErr
}

// Close releases every waiting command with ErrClosed and lets later ones
// through unchecked (the process is shutting down).
func (g *Gate) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed {
		g.closed = true
		g.down = false
		g.isDown.Store(false)
		g.broadcast()
	}
}

// broadcast wakes every waiter; g.mu is held.
func (g *Gate) broadcast() {
	close(g.wake)
	g.wake = make(chan struct{})
}

// passedKey marks the context of a command the gate let through: go-redis
// sets up a new connection (AUTH, SELECT…) with a pipeline of its own that
// passes through the client's hooks under the command's context, and that
// one must not wait for the probe it is part of.
type passedKey struct{}

// enter waits until the command may go: the gate is open, or this command
// is the next probe (probe true).
func (g *Gate) enter(ctx context.Context) (probe bool, err error) {
	if !g.isDown.Load() {
		return false, nil
	}
	for {
		g.mu.Lock()
		if !g.down {
			g.mu.Unlock()
			return false, nil
		}
		now := time.Now()
		if !g.probing && !now.Before(g.next) {
			g.probing = true
			g.mu.Unlock()
			return true, nil
		}
		wait, wake, last := g.next.Sub(now), g.wake, g.lastErr
		if g.probing {
			wait = g.opts.MaxBackoff
		}
		g.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, fmt.Errorf("%w: %w (%w)", ErrUnavailable, last, ctx.Err())
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// leave records the outcome of a command let through.
func (g *Gate) leave(probe bool, err error) {
	unusable := Unusable(err)
	if !probe && !unusable {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	now := time.Now()
	switch {
	case probe && !unusable:
		g.probing = false
		if g.down {
			g.down = false
			g.isDown.Store(false)
			g.opts.Logger.Info("redis answers again; work resumes", zap.Duration("unavailable_for", now.Sub(g.since)))
			g.broadcast()
			if g.opts.OnChange != nil {
				g.opts.OnChange(true)
			}
		}
	case probe:
		g.probing = false
		g.lastErr = err
		g.step = min(2*g.step, g.opts.MaxBackoff)
		g.next = now.Add(g.step)
		g.opts.Logger.Warn("redis still unusable; commands wait", zap.Error(err),
			zap.Duration("down_for", now.Sub(g.since).Round(time.Millisecond)), zap.Duration("next_try_in", g.step))
		g.broadcast()
	case !g.down:
		g.down, g.since, g.lastErr = true, now, err
		g.isDown.Store(true)
		g.step = g.opts.MinBackoff
		g.next = now.Add(g.step)
		msg := "redis cannot be reached; commands wait and are retried with backoff (/readyz fails meanwhile)"
		if redis.IsAuthError(err) {
			msg = "redis refuses the password of REDIS_URL; commands wait and are retried with backoff (/readyz fails meanwhile)"
		}
		g.opts.Logger.Error(msg, zap.Error(err), zap.Duration("next_try_in", g.step))
		if g.opts.OnChange != nil {
			g.opts.OnChange(false)
		}
	}
}

// DialHook implements redis.Hook (unchanged).
func (g *Gate) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook.
func (g *Gate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if ctx.Value(passedKey{}) != nil {
			return next(ctx, cmd)
		}
		probe, err := g.enter(ctx)
		if err != nil {
			return err
		}
		err = next(context.WithValue(ctx, passedKey{}, true), cmd)
		g.leave(probe, err)
		return err
	}
}

// ProcessPipelineHook implements redis.Hook: a pipeline goes or waits as
// one command.
func (g *Gate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if ctx.Value(passedKey{}) != nil {
			return next(ctx, cmds)
		}
		probe, err := g.enter(ctx)
		if err != nil {
			for _, c := range cmds {
				c.SetErr(err)
			}
			return err
		}
		err = next(context.WithValue(ctx, passedKey{}, true), cmds)
		g.leave(probe, err)
		return err
	}
}
