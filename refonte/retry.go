package refonte

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.uber.org/zap"
)

// Default retry policy values, used for the zero fields of a RetryPolicy.
const (
	// DefaultMaxElapsed is the default bound of the time spent retrying.
	DefaultMaxElapsed = 30 * time.Second
	// DefaultInitialInterval is the default first delay.
	DefaultInitialInterval = 200 * time.Millisecond
	// DefaultMaxInterval is the default cap of the exponential delay.
	DefaultMaxInterval = 5 * time.Second
)

// RetryPolicy bounds the client's retries of transient errors (see
// Retryable). Delays grow exponentially (factor 2, ±50% jitter) from
// InitialInterval up to MaxInterval; a Retry-After sent by the API replaces
// the next delay. Retries stop when the next delay would end after
// MaxElapsed since the first attempt, after MaxAttempts attempts, or when
// the context ends. Zero fields take the defaults.
type RetryPolicy struct {
	// MaxElapsed bounds the total time spent retrying (default 30s).
	MaxElapsed time.Duration
	// InitialInterval is the first delay (default 200ms).
	InitialInterval time.Duration
	// MaxInterval caps the exponential delay (default 5s); a Retry-After
	// may exceed it but never MaxElapsed.
	MaxInterval time.Duration
	// MaxAttempts bounds the attempts, the first included (0: no bound but
	// MaxElapsed).
	MaxAttempts int
	// Disabled turns retries off: every request is sent once.
	Disabled bool
	// BeforeRetry, when set, is called after each retry delay and before
	// the retried request is sent, with the error of the attempt that
	// failed. A caller sharing an API rate limit across processes uses it
	// to make retries wait for the limiter like first attempts do (and to
	// spread a 429's cooldown), so retries never exceed the shared rate. A
	// non-nil error stops the retries: the request returns an error that
	// wraps both it and the last attempt's error.
	BeforeRetry func(ctx context.Context, lastErr error) error
}

// withDefaults returns p with its zero fields set to the defaults.
func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxElapsed <= 0 {
		p.MaxElapsed = DefaultMaxElapsed
	}
	if p.InitialInterval <= 0 {
		p.InitialInterval = DefaultInitialInterval
	}
	if p.MaxInterval <= 0 {
		p.MaxInterval = DefaultMaxInterval
	}
	if p.MaxInterval < p.InitialInterval {
		p.MaxInterval = p.InitialInterval
	}
	return p
}

// newBackOff returns the exponential backoff of the policy. It never stops
// by itself: the retry loop checks MaxElapsed, counting Retry-After delays.
func (p RetryPolicy) newBackOff() *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.InitialInterval),
		backoff.WithMaxInterval(p.MaxInterval),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.5),
		backoff.WithMaxElapsedTime(0),
	)
}

// stopped is err, the last attempt's, ended by the caller's context: it
// matches the context's error (context.Canceled or DeadlineExceeded, so
// Retryable is false) and, when the context was canceled with a cause of
// its own, that cause too.
func stopped(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != ctx.Err() {
		return fmt.Errorf("%w (retries stopped: %w: %w)", err, ctx.Err(), cause)
	}
	return fmt.Errorf("%w (retries stopped: %w)", err, ctx.Err())
}

// retrying runs attempt until it succeeds, fails with an error that is not
// Retryable, or the policy or ctx stops the retries (only when retry is
// true). It returns the number of attempts made and the last error; when
// ctx ended during a wait, the error wraps both the last error and the
// context's error.
func (c *Client) retrying(ctx context.Context, method, path string, retry bool, attempt func() error) (int, error) {
	p := c.retry
	start := time.Now()
	var b *backoff.ExponentialBackOff
	for n := 1; ; n++ {
		err := attempt()
		if err == nil {
			return n, nil
		}
		if !retry || p.Disabled || !Retryable(err) {
			return n, err
		}
		if ctx.Err() != nil {
			// Canceled while the attempt ran (its answer came back all the
			// same): the caller's cause ends the retries, as during a wait.
			return n, stopped(ctx, err)
		}
		if p.MaxAttempts > 0 && n >= p.MaxAttempts {
			return n, err
		}
		if b == nil {
			b = p.newBackOff()
		}
		delay := b.NextBackOff()
		if ra, ok := RetryAfter(err); ok {
			delay = ra
		}
		if time.Since(start)+delay > p.MaxElapsed {
			return n, err
		}
		status := 0
		var ae *Error
		if errors.As(err, &ae) {
			status = ae.StatusCode
		}
		c.log.Debug("retrying the request",
			zap.String("method", method), zap.String("path", path), zap.Int("status", status),
			zap.Int("attempt", n), zap.Duration("delay", delay), zap.Error(err))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return n, stopped(ctx, err)
		case <-t.C:
		}
		if p.BeforeRetry != nil {
			if herr := p.BeforeRetry(ctx, err); herr != nil {
				return n, fmt.Errorf("%w (retries stopped: %w)", err, herr)
			}
		}
	}
}
