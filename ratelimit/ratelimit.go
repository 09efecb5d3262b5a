package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"
)

// DefaultPrefix is the Redis key prefix used when Config.Prefix is empty.
const DefaultPrefix = "refonte:ratelimit:"

// Limiter grants permission to make one call at a time under a rate limit.
// Both implementations in this package are safe for concurrent use.
type Limiter interface {
	// Wait books the next slot and sleeps until it. If ctx has a deadline
	// and the slot would come after it, Wait books nothing and returns at
	// once an error wrapping ErrWouldExceedDeadline that is a *DelayError
	// telling when to come back. If ctx ends while Wait sleeps, Wait
	// returns ctx.Err() and the booked slot is wasted (it is not given
	// back: the limit then runs slightly below its rate, never above).
	// The deadline is compared with the time left when the request is
	// sent; a process stalled between that moment and Redis running the
	// script can book a slot just after the deadline, and then gets
	// ctx.Err() (that slot wasted) when the deadline comes.
	Wait(ctx context.Context) error
	// Reserve is the non-blocking form: if a slot is free now it is taken
	// and delay is 0; otherwise nothing is taken and delay is how long
	// until one frees (a later Reserve may still lose it to another
	// caller).
	Reserve(ctx context.Context) (delay time.Duration, err error)
	// Cooldown makes every limiter sharing this limit grant nothing until
	// now+d; call it on a 429 with its Retry-After. It never shortens an
	// existing cooldown; d <= 0 does nothing.
	Cooldown(ctx context.Context, d time.Duration) error
}

var (
	// ErrRedisUnavailable is wrapped (with its cause) by every error of a
	// RedisLimiter that could not reach Redis. The limiter never lets calls
	// through unlimited when Redis is down.
	ErrRedisUnavailable = errors.New("ratelimit: redis unavailable")
	// ErrWouldExceedDeadline is wrapped by the *DelayError that Wait
	// returns when the next slot comes after the context's deadline.
	ErrWouldExceedDeadline = errors.New("ratelimit: next slot is after the context deadline")
)

// DelayError is returned by Wait when the next slot would come after the
// context's deadline. Nothing was booked; Delay is how long from now until
// the slot that was free at the time of the call. It wraps
// ErrWouldExceedDeadline.
type DelayError struct {
	// Delay is how long until the next free slot.
	Delay time.Duration
}

// Error implements error.
func (e *DelayError) Error() string {
	return fmt.Sprintf("ratelimit: next slot in %v is after the context deadline", e.Delay)
}

// Unwrap returns ErrWouldExceedDeadline.
func (e *DelayError) Unwrap() error { return ErrWouldExceedDeadline }

// Config describes one limit. The zero values of Burst and Prefix take the
// documented defaults.
type Config struct {
	// Rate is the number of grants per second, > 0 (fractions allowed,
	// e.g. 0.5 = one every 2 s). The Redis limiter works in whole
	// microseconds, so rates above 1e6/s are rounded to 1e6/s.
	Rate float64
	// Burst is how many grants may go through at once after an idle
	// period; 0 means 1 (strict spacing). Any 1-second window sees at most
	// Rate+Burst grants.
	Burst int
	// Name identifies the limit: every limiter with the same Prefix+Name
	// shares it. Use the mode and a fingerprint of the API key, e.g.
	// "test:" + KeyFingerprint(apiKey); never the key itself. Required by
	// NewRedis.
	Name string
	// Prefix is the Redis key prefix; empty means DefaultPrefix.
	Prefix string
	// Adaptive lowers the rate after 429s and recovers it slowly, for every
	// limiter sharing the limit (the state lives in the same Redis key): a
	// Cooldown that starts a new cooldown (none running) multiplies the
	// current rate by AdaptiveDecrease, down to AdaptiveFloor × Rate, and
	// the rate then climbs back by AdaptiveRecovery × Rate per second. All
	// limiters sharing a limit should agree on Adaptive.
	Adaptive bool
}

// Adaptive mode's constants (see Config.Adaptive).
const (
	// AdaptiveDecrease multiplies the rate at the start of each cooldown.
	AdaptiveDecrease = 0.8
	// AdaptiveFloor is the lowest fraction of Config.Rate adaptive mode goes to.
	AdaptiveFloor = 0.1
	// AdaptiveRecovery is the fraction of Config.Rate regained per second.
	AdaptiveRecovery = 0.01
)

// KeyFingerprint returns a short hexadecimal digest (the first 8 bytes of
// SHA-256) of apiKey, suitable for naming a limit in Redis or in logs
// without revealing the key.
func KeyFingerprint(apiKey string) string {
	sum := sha256.Sum256([]byte(apiKey))
	return hex.EncodeToString(sum[:8])
}

// gcra holds a limit's derived parameters.
type gcra struct {
	interval  time.Duration // emission interval T = 1/Rate
	tolerance time.Duration // burst tolerance tau = (Burst-1)*T
	adaptive  bool
}

// factorAt returns the adaptive rate factor at now, given the factor f set at
// time at (f == 0: never lowered); 1 means the full rate.
func factorAt(f float64, at, now time.Time) float64 {
	if f <= 0 {
		return 1
	}
	f += AdaptiveRecovery * now.Sub(at).Seconds()
	if f > 1 {
		return 1
	}
	return f
}

func (c Config) normalize() (Config, gcra, error) {
	if math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) || c.Rate <= 0 {
		return c, gcra{}, fmt.Errorf("ratelimit: Config.Rate must be a positive number of grants per second, got %v", c.Rate)
	}
	if c.Burst < 0 {
		return c, gcra{}, fmt.Errorf("ratelimit: Config.Burst must be >= 0 (0 means 1), got %d", c.Burst)
	}
	if c.Burst == 0 {
		c.Burst = 1
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	t := time.Duration(math.Round(float64(time.Second) / c.Rate))
	if t < time.Microsecond {
		t = time.Microsecond
	}
	t = t.Round(time.Microsecond)
	return c, gcra{interval: t, tolerance: time.Duration(c.Burst-1) * t, adaptive: c.Adaptive}, nil
}

// maxDelay returns the longest acceptable delay for ctx (-1 when ctx has no
// deadline) or ctx's error when it has already ended.
func maxDelay(ctx context.Context) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	d, ok := ctx.Deadline()
	if !ok {
		return -1, nil
	}
	left := time.Until(d)
	if left <= 0 {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return left, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
