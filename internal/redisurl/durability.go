package redisurl

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
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
