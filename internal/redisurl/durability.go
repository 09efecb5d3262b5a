package redisurl

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultWaitTimeout is the default of wait_timeout.
const DefaultWaitTimeout = time.Second

// durabilityKey is a key written (SET) right before each WAIT: WAIT waits
// for the writes of its own connection, and this write, issued after the
// writes to cover, puts the connection's replication offset past them.
const durabilityKey = "refonte:wait"

// ErrNotDurable is returned by Durability.Wait when fewer replicas than
// asked acknowledged the writes within the timeout.
var ErrNotDurable = errors.New("redis: write not acknowledged by enough replicas")

// Durability says how many replicas must hold a write before the program
// acknowledges it to anyone (a callback's 2xx, a job's completion), so
// that a failover cannot discard it. From the URL options wait_replicas
// (default 1 for a sentinel URL, 0 — off — for a single Redis) and
// wait_timeout (default DefaultWaitTimeout).
type Durability struct {
	Replicas int
	Timeout  time.Duration
}

// parseDurability reads wait_replicas and wait_timeout from q.
func parseDurability(q url.Values, sentinel bool) (Durability, error) {
	d := Durability{Timeout: DefaultWaitTimeout}
	if sentinel {
		d.Replicas = 1
	}
	if v := q.Get("wait_replicas"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return d, fmt.Errorf("wait_replicas=%q: want a number of replicas >= 0", v)
		}
		d.Replicas = n
	}
	if v := q.Get("wait_timeout"); v != "" {
		t, err := time.ParseDuration(v)
		if err != nil || t <= 0 {
			return d, fmt.Errorf("wait_timeout=%q: want a positive duration such as 500ms", v)
		}
		d.Timeout = t
	}
	return d, nil
}

// Durability returns the URL's durability option.
func (u *URL) Durability() Durability { return u.durability }

// Wait returns once every write this process made before the call is held
// by d.Replicas replicas, or ErrNotDurable after d.Timeout; nil at once
// when d.Replicas is 0.
func (d Durability) Wait(ctx context.Context, rdb redis.UniversalClient) error {
	if d.Replicas <= 0 {
		return nil
	}
	pipe := rdb.Pipeline()
	pipe.Set(ctx, durabilityKey, "1", 0)
	wait := pipe.Do(ctx, "WAIT", d.Replicas, d.Timeout.Milliseconds())
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redis WAIT: %w", err)
	}
	n, err := wait.Int()
	if err != nil {
		return fmt.Errorf("redis WAIT: %w", err)
	}
	if n < d.Replicas {
		return fmt.Errorf("%w: %d of %d within %s", ErrNotDurable, n, d.Replicas, d.Timeout)
	}
	return nil
}

// Waiter is Durability.Wait shared by concurrent callers (group commit): a
// WAIT covers every write the server took before the SET that precedes
// it, so every caller arriving while one WAIT runs is covered by the next
// one, started as soon as the running one returns. A worker acknowledging
// thousands of rows a second then makes a few WAITs a millisecond instead
// of two per row. It is safe for concurrent use.
type Waiter struct {
	d   Durability
	rdb redis.UniversalClient

	mu   sync.Mutex
	busy bool       // a round is running
	next *waitRound // the round callers arriving now join (nil: none yet)
}

// waitRound is one shared WAIT; done is closed once err is set.
type waitRound struct {
	done chan struct{}
	err  error
}

// NewWaiter returns a Waiter for d on rdb.
func (d Durability) NewWaiter(rdb redis.UniversalClient) *Waiter { return &Waiter{d: d, rdb: rdb} }

// Wait returns once every write this process made before the call is held
// by the Durability's replicas (nil at once when it asks for none), or
// ErrNotDurable, another error of the shared WAIT, or ctx's error.
func (w *Waiter) Wait(ctx context.Context) error {
	if w.d.Replicas <= 0 {
		return nil
	}
	w.mu.Lock()
	r := w.next
	if r == nil {
		r = &waitRound{done: make(chan struct{})}
		w.next = r
	}
	if !w.busy {
		w.busy, w.next = true, nil
		go w.run(r)
	}
	w.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run makes the WAIT of round r, then of every round callers joined
// meanwhile, until none is waiting.
func (w *Waiter) run(r *waitRound) {
	for r != nil {
		// The round outlives any one caller's context: bounded by WAIT's
		// own timeout plus a margin for the round trip.
		ctx, cancel := context.WithTimeout(context.Background(), w.d.Timeout+5*time.Second)
		r.err = w.d.Wait(ctx, w.rdb)
		cancel()
		close(r.done)
		w.mu.Lock()
		r, w.next = w.next, nil
		if r == nil {
			w.busy = false
		}
		w.mu.Unlock()
	}
}
