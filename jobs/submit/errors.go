package submit

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
)

// Reason says why a job was rescheduled without counting a failure.
type Reason string

// Reasons of a RescheduleError.
const (
	// ReasonRateLimited: the shared limiter's next slot is further than the handler waits.
	ReasonRateLimited Reason = "rate_limited"
	// ReasonCooldown: the API answered 429; every worker holds off until the cooldown ends.
	ReasonCooldown Reason = "cooldown"
	// ReasonPaused: the live daily spend cap is reached.
	ReasonPaused Reason = "paused"
	// ReasonKeyRejected: the API rejects the mode's key (401); the mode is
	// paused on every worker until a probe finds the key working.
	ReasonKeyRejected Reason = "key_rejected"
	// ReasonOperatorPaused: the job's run is paused by its operator (enqueue pause).
	ReasonOperatorPaused Reason = "operator_paused"
	// ReasonShutdown: the worker began shutting down before the job got an
	// API slot (Handler.Drain); it is back in the queue within a second
	// (asynq's retry set, no delay), for another worker.
	ReasonShutdown Reason = "shutdown"
)

// ErrRescheduled is matched (errors.Is) by every *RescheduleError.
var ErrRescheduled = errors.New("submit: rescheduled")

// RescheduleError asks asynq to run the job again after Delay without
// counting a failure (see IsFailure and RetryDelay).
type RescheduleError struct {
	Reason Reason
	Delay  time.Duration
	// Detail is a human-readable explanation (never a secret).
	Detail string
}

// Error describes the reschedule.
func (e *RescheduleError) Error() string {
	s := fmt.Sprintf("submit: rescheduled in %s (%s)", e.Delay.Round(time.Millisecond), e.Reason)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Is reports whether target is ErrRescheduled.
func (e *RescheduleError) Is(target error) bool { return target == ErrRescheduled }

// IsFailure is the asynq Config.IsFailure of a worker serving this handler:
// a *RescheduleError is not a failure (the job's retry count is not
// incremented), every other error is.
func IsFailure(err error) bool {
	return err != nil && !errors.Is(err, ErrRescheduled)
}

// Retry delays of transient failures: RetryBase * 2^n with ±25 % jitter,
// capped at RetryCap.
const (
	RetryBase = time.Second
	RetryCap  = 5 * time.Minute
)

// RetryDelay is the asynq Config.RetryDelayFunc of a worker serving this
// handler. A *RescheduleError is rescheduled after its own Delay; any other
// error after RetryBase·2^n (n = failures so far) with ±25 % jitter, capped
// at RetryCap: about 1 s, 2 s, 4 s … so a job whose pod died is retried soon.
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	var re *RescheduleError
	if errors.As(err, &re) {
		return max(re.Delay, 0)
	}
	return backoffDelay(n)
}

func backoffDelay(n int) time.Duration {
	d := RetryCap
	if n < 20 {
		d = min(RetryBase<<n, RetryCap)
	}
	jitter := time.Duration(rand.Int64N(int64(d)/2+1)) - d/4
	return max(d+jitter, 100*time.Millisecond)
}

// untilNextUTCDay returns the time from now to the next UTC midnight.
func untilNextUTCDay(now time.Time) time.Duration {
	now = now.UTC()
	next := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
	return next.Sub(now)
}
