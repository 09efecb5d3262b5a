package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisLimiter is a Limiter whose state lives in one Redis key, shared by
// every RedisLimiter (in any process) configured with the same Prefix and
// Name. Each grant costs one round trip to Redis (EVALSHA); the first call
// after Redis has lost its script cache (a restart, SCRIPT FLUSH) costs two
// (EVALSHA, then EVAL). It works on a Redis Cluster too: every script call
// touches the one key.
type RedisLimiter struct {
	rdb  redis.UniversalClient
	cfg  Config
	key  string
	args [2]string // emission interval and burst tolerance, µs
	adap [3]string // adaptive decrease, floor, recovery per second ("0": off)
	// dropBurst makes the next script call drop the state's burst credit
	// (see DropBurst).
	dropBurst atomic.Bool
}

var _ Limiter = (*RedisLimiter)(nil)

// NewRedis returns a limiter for cfg on rdb. cfg.Name is required. The
// caller keeps ownership of rdb (and closes it). The client's settings
// bound how long a call takes when Redis is down: go-redis retries a failed
// command MaxRetries times (3 by default) and a failed dial DialerRetries
// times (5, 100 ms apart), about 1.7 s in all against a closed port; set
// MaxRetries -1 and DialerRetries 1 to fail at once.
func NewRedis(rdb redis.UniversalClient, cfg Config) (*RedisLimiter, error) {
	if rdb == nil {
		return nil, errors.New("ratelimit: NewRedis needs a Redis client")
	}
	cfg, g, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		return nil, errors.New(`ratelimit: Config.Name is required, e.g. "test:" + KeyFingerprint(apiKey)`)
	}
	return &RedisLimiter{
		rdb: rdb,
		cfg: cfg,
		key: cfg.Prefix + cfg.Name,
		args: [2]string{
			strconv.FormatInt(g.interval.Microseconds(), 10),
			strconv.FormatInt(g.tolerance.Microseconds(), 10),
		},
		adap: adaptiveArgs(cfg.Adaptive),
	}, nil
}

func adaptiveArgs(on bool) [3]string {
	if !on {
		return [3]string{"0", "0", "0"}
	}
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	return [3]string{f(AdaptiveDecrease), f(AdaptiveFloor), f(AdaptiveRecovery)}
}

// Load loads the limiter's scripts into Redis. It is optional: a worker can
// call it at start-up to check that Redis answers and so that its first
// grants cost one round trip each, even when many goroutines start at once
// against a Redis that has not seen the scripts (each would otherwise get
// NOSCRIPT and send the script once).
func (l *RedisLimiter) Load(ctx context.Context) error {
	for _, s := range []*redis.Script{acquireScript, cooldownScript} {
		if err := s.Load(ctx, l.rdb).Err(); err != nil {
			return l.wrap(ctx, "load", err)
		}
	}
	return nil
}

// Key returns the Redis key holding the limit's state.
func (l *RedisLimiter) Key() string { return l.key }

// Wait implements Limiter.
func (l *RedisLimiter) Wait(ctx context.Context) error {
	_, err := l.WaitSlot(ctx)
	return err
}

// WaitSlot is Wait that also returns the booked slot, on the Redis server's
// clock. Benchmarks compare it with the actual wake-up time; callers that
// only need the permission use Wait.
func (l *RedisLimiter) WaitSlot(ctx context.Context) (time.Time, error) {
	limit, err := maxDelay(ctx)
	if err != nil {
		return time.Time{}, err
	}
	booked, delay, slot, err := l.acquire(ctx, "wait", limit)
	if err != nil {
		return time.Time{}, err
	}
	if !booked {
		return time.Time{}, &DelayError{Delay: delay}
	}
	return slot, sleep(ctx, delay)
}

// Reserve implements Limiter.
func (l *RedisLimiter) Reserve(ctx context.Context) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	booked, delay, _, err := l.acquire(ctx, "reserve", -1)
	if err != nil {
		return 0, err
	}
	if booked {
		return 0, nil
	}
	return delay, nil
}

// DropBurst makes the limiter's next grant, whichever of its callers
// asks first, also take away the burst credit the shared state holds:
// grants go on at the steady rate from then, as after a cooldown, and the
// burst refills from there. Call it when the Redis server holding the
// state may have changed under the limiter (a Sentinel failover): the new
// master's copy of the state is the old one's minus its last writes, an
// older TAT that would grant up to Burst slots at once, on top of those
// the API has just seen. It costs nothing (the flag rides on the next
// script call), and a call that fails keeps it for the next one.
func (l *RedisLimiter) DropBurst() { l.dropBurst.Store(true) }

// Cooldown implements Limiter. The cooldown is measured on the Redis
// server's clock from the moment the script runs.
func (l *RedisLimiter) Cooldown(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	us := d.Microseconds()
	if us < 1 {
		us = 1
	}
	err := cooldownScript.Run(ctx, l.rdb, []string{l.key}, us, l.args[1], l.adap[0], l.adap[1], l.adap[2]).Err()
	if err != nil {
		return l.wrap(ctx, "cooldown", err)
	}
	return nil
}

func (l *RedisLimiter) acquire(ctx context.Context, mode string, limit time.Duration) (booked bool, delay time.Duration, slot time.Time, err error) {
	maxUS := int64(-1)
	if limit >= 0 {
		maxUS = limit.Microseconds()
	}
	drop := "0"
	if l.dropBurst.Swap(false) {
		drop = "1"
	}
	res, err := acquireScript.Run(ctx, l.rdb, []string{l.key}, l.args[0], l.args[1], maxUS, mode, l.adap[2], drop).Int64Slice()
	if err != nil {
		if drop == "1" {
			l.dropBurst.Store(true)
		}
		return false, 0, time.Time{}, l.wrap(ctx, mode, err)
	}
	if len(res) != 3 {
		return false, 0, time.Time{}, fmt.Errorf("ratelimit %s: %s: unexpected script reply %v", l.cfg.Name, mode, res)
	}
	return res[0] == 1, time.Duration(res[1]) * time.Microsecond, time.UnixMicro(res[2]), nil
}

// wrap classifies a failed script call: the context's end, an error reply
// from Redis (which was reachable), or Redis being unreachable.
func (l *RedisLimiter) wrap(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("ratelimit %s: %s: %w (redis: %w)", l.cfg.Name, op, ctx.Err(), err)
	}
	var reply redis.Error
	if errors.As(err, &reply) {
		return fmt.Errorf("ratelimit %s: %s: redis replied: %w", l.cfg.Name, op, err)
	}
	return fmt.Errorf("ratelimit %s: %s: %w: %w", l.cfg.Name, op, ErrRedisUnavailable, err)
}
