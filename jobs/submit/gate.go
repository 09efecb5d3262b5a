package submit

import (
	"context"
	"time"

	"github.com/refonte-ai/refonte-batch/internal/defaults"
	"github.com/refonte-ai/refonte-batch/ratelimit"
)

// RetryGate returns a refonte.RetryPolicy.BeforeRetry hook that makes every
// retry of the API client wait for a slot of the shared limiter, exactly
// like a first attempt: without it, in-client retries of 5xx answers would
// go out beside the fleet's paced traffic and push the key over its rate.
// A slot further away than maxWait (default DefaultMaxLimiterWait) books
// nothing and stops the retries with a *ratelimit.DelayError, which the
// handler turns into a reschedule. A nil limiter gives a nil hook.
func RetryGate(lim ratelimit.Limiter, maxWait time.Duration) func(context.Context, error) error {
	if lim == nil {
		return nil
	}
	maxWait = defaults.Positive(maxWait, DefaultMaxLimiterWait)
	return func(ctx context.Context, _ error) error {
		wctx, cancel := context.WithTimeout(ctx, maxWait)
		defer cancel()
		return lim.Wait(wctx)
	}
}
