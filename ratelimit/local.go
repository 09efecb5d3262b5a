package ratelimit

import (
	"context"
	"math"
	"sync"
	"time"
)

// LocalLimiter is a Limiter for a single process: the same GCRA arithmetic
// as RedisLimiter, under a mutex, on the local clock. Limiters do not share
// state, even with the same Name.
type LocalLimiter struct {
	g   gcra
	now func() time.Time

	mu  sync.Mutex
	tat time.Time // theoretical arrival time
	cd  time.Time // end of the cooldown
	f   float64   // adaptive rate factor set at fAt (0: never lowered)
	fAt time.Time
}

// NewLocal returns an in-process limiter for cfg (Name and Prefix are not
// used).
func NewLocal(cfg Config) (*LocalLimiter, error) {
	_, g, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	return &LocalLimiter{g: g, now: time.Now}, nil
}

// Wait implements Limiter.
func (l *LocalLimiter) Wait(ctx context.Context) error {
	_, err := l.WaitSlot(ctx)
	return err
}

// WaitSlot is Wait that also returns the booked slot on the local clock.
func (l *LocalLimiter) WaitSlot(ctx context.Context) (time.Time, error) {
	limit, err := maxDelay(ctx)
	if err != nil {
		return time.Time{}, err
	}
	booked, delay, slot := l.acquire(false, limit)
	if !booked {
		return time.Time{}, &DelayError{Delay: delay}
	}
	return slot, sleep(ctx, delay)
}

// Reserve implements Limiter.
func (l *LocalLimiter) Reserve(ctx context.Context) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	booked, delay, _ := l.acquire(true, -1)
	if booked {
		return 0, nil
	}
	return delay, nil
}

// Cooldown implements Limiter for this limiter only.
func (l *LocalLimiter) Cooldown(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.g.adaptive && !l.cd.After(now) { // a new cooldown: lower the rate once
		l.f = math.Max(AdaptiveFloor, factorAt(l.f, l.fAt, now)*AdaptiveDecrease)
		l.fAt = now
	}
	if until := now.Add(d); until.After(l.cd) {
		l.cd = until
	}
	return nil
}

// acquire mirrors acquireScript (see scripts.go).
func (l *LocalLimiter) acquire(reserve bool, limit time.Duration) (booked bool, delay time.Duration, slot time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	tat := l.tat
	if tat.Before(now) {
		tat = now
	}
	if c := l.cd.Add(l.g.tolerance); c.After(tat) {
		tat = c
	}
	slot = tat.Add(-l.g.tolerance)
	if slot.Before(now) {
		slot = now
	}
	delay = slot.Sub(now)
	if (reserve && delay > 0) || (limit >= 0 && delay > limit) {
		return false, delay, slot
	}
	interval := l.g.interval
	if l.g.adaptive {
		if f := factorAt(l.f, l.fAt, now); f < 1 {
			interval = time.Duration(math.Round(float64(interval) / f))
		}
	}
	l.tat = tat.Add(interval)
	return true, delay, slot
}
