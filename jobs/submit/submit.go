package submit

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/internal/defaults"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/keyguard"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/ratelimit"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// Defaults of Options.
const (
	// DefaultMaxLimiterWait is how long a delivery waits for a rate-limit
	// slot before it is rescheduled instead.
	DefaultMaxLimiterWait = 2 * time.Second
	// PausedRecheck is the longest a paused live job waits before it looks
	// at the daily cap again, so a raised cap is noticed within a minute.
	PausedRecheck = time.Minute
	// OperatorPausedRecheck is the longest a job of a run paused by enqueue
	// pause waits before it looks again; enqueue resume wakes the waiting
	// jobs at once, so it only bounds how long a lost wake-up delays them.
	OperatorPausedRecheck = 2 * time.Minute
	// DefaultCooldown is the shared cooldown after a 429 without Retry-After.
	DefaultCooldown = time.Second
	// recordTimeout bounds the recording of a failed attempt.
	recordTimeout = 5 * time.Second
)

// Options configures a Handler.
type Options struct {
	// Store holds the job and run records. Required.
	Store *store.Store
	// Clients are the API clients by mode; a job of a mode without a client
	// fails permanently ("mode mismatch"). At least one is required, and
	// each client's Mode must match its key in the map.
	Clients map[refonte.Mode]*refonte.Client
	// Limiters are the shared rate limiters by mode; a mode without one is
	// not rate limited.
	Limiters map[refonte.Mode]ratelimit.Limiter
	// LiveDailyLimit caps the live tasks created per UTC day across all
	// workers sharing the Redis; 0 means no cap. SetLiveDailyLimit changes it.
	LiveDailyLimit int64
	// MaxLimiterWait is the longest wait for a rate-limit slot inside the
	// handler; a longer one reschedules the job. Default DefaultMaxLimiterWait.
	MaxLimiterWait time.Duration
	// CallbackURL is the callback_url sent when a row's params have none
	// (the worker's public /callback URL). Empty: the params decide.
	CallbackURL string
	// PausedRecheck is the longest a paused live job waits before it looks
	// at the daily cap again. Default PausedRecheck.
	PausedRecheck time.Duration
	// OperatorPausedRecheck is the longest a job of a run paused by its
	// operator waits before it looks again (enqueue resume also wakes the
	// run's waiting jobs at once). Default OperatorPausedRecheck.
	OperatorPausedRecheck time.Duration
	// Metrics records outcomes and latencies; nil records nothing.
	Metrics *Metrics
	// Logger logs with structured fields; nil logs nothing.
	Logger *zap.Logger
	// Keys pauses a mode whose key the API rejects (401) instead of failing
	// its rows; nil fails them like any permanent error.
	Keys *keyguard.Guard
	// MaxInFlight bounds the deliveries that hold an API slot at once: from
	// the rate-limit wait until the create is answered (and, when that
	// answer needs more calls — a 409, an error — until the delivery ends).
	// The job-state read, the payload decoding and the recording of the
	// created task are outside it, so a process can hold more jobs than
	// slots and a finished create's slot passes at once to a job already
	// fetched and checked. (A run's batch finalize, one call per run when
	// its last row is recorded, is outside the slots.) 0: no bound.
	MaxInFlight int
	// Now returns the time (tests); default time.Now.
	Now func() time.Time
}

// Handler is the asynq handler of jobs.TypeSubmit. It is safe for
// concurrent use by any number of asynq workers.
type Handler struct {
	opts       Options
	log        *zap.Logger
	dailyLimit atomic.Int64
	// slots holds a token per delivery in an API slot (nil: no bound).
	slots chan struct{}
	// draining is closed by Drain.
	draining  chan struct{}
	drainOnce sync.Once
}

// ErrNoClient reports Options without any API client.
var ErrNoClient = errors.New("submit: no API client configured")

// New returns a Handler.
func New(opts Options) (*Handler, error) {
	if opts.Store == nil {
		return nil, errors.New("submit: Options.Store is required")
	}
	if len(opts.Clients) == 0 {
		return nil, ErrNoClient
	}
	for m, c := range opts.Clients {
		if c == nil {
			return nil, fmt.Errorf("submit: nil client for mode %s", m)
		}
		if c.Mode() != m {
			return nil, fmt.Errorf("submit: the client registered for mode %s holds a %s key", m, c.Mode())
		}
	}
	opts.MaxLimiterWait = defaults.Positive(opts.MaxLimiterWait, DefaultMaxLimiterWait)
	opts.PausedRecheck = defaults.Positive(opts.PausedRecheck, PausedRecheck)
	opts.OperatorPausedRecheck = defaults.Positive(opts.OperatorPausedRecheck, OperatorPausedRecheck)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxInFlight < 0 {
		return nil, fmt.Errorf("submit: Options.MaxInFlight must not be negative, got %d", opts.MaxInFlight)
	}
	h := &Handler{opts: opts, log: opts.Logger, draining: make(chan struct{})}
	if opts.MaxInFlight > 0 {
		h.slots = make(chan struct{}, opts.MaxInFlight)
	}
	if h.log == nil {
		h.log = zap.NewNop()
	}
	h.dailyLimit.Store(max(opts.LiveDailyLimit, 0))
	return h, nil
}

// SetLiveDailyLimit changes the live daily cap (0 = no cap) for the next deliveries.
func (h *Handler) SetLiveDailyLimit(n int64) { h.dailyLimit.Store(max(n, 0)) }

// LiveDailyLimit returns the live daily cap in force (0 = no cap).
func (h *Handler) LiveDailyLimit() int64 { return h.dailyLimit.Load() }

// Drain makes every delivery still waiting for an API slot (see
// Options.MaxInFlight), now or later, give its job back at once: it
// returns a *RescheduleError (ReasonShutdown, no delay) without having
// called the API. The worker calls it when it starts shutting down, so
// jobs fetched ahead of a slot go back to the queue instead of starting
// creates during the shutdown. Deliveries already holding a slot finish;
// a job on its last attempt (asynq would archive it after any error)
// keeps waiting for a slot, or for asynq to hand it back.
func (h *Handler) Drain() { h.drainOnce.Do(func() { close(h.draining) }) }

// InFlight returns the deliveries holding an API slot now (0 when
// Options.MaxInFlight is 0).
func (h *Handler) InFlight() int { return len(h.slots) }

// ProcessTask handles one delivery of a jobs.TypeSubmit task. See the
// package documentation for what it does; it returns nil when the job is
// accounted for (submitted, already submitted, or failed for good), a
// *RescheduleError to run it again later without counting a failure, an
// error wrapping asynq.SkipRetry for a job that can never succeed, or
// another error for asynq to retry.
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := jobs.DecodeSubmitPayload(t.Payload())
	if err != nil {
		h.log.Error("dropping undecodable submit job", zap.Error(err))
		h.opts.Metrics.outcome("", OutcomeDropped)
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	retry, _ := asynq.GetRetryCount(ctx)
	maxRetry, ok := asynq.GetMaxRetry(ctx)
	return h.process(ctx, p, retry, ok && retry >= maxRetry)
}

// process handles one delivery of the decoded payload p, after retry
// earlier failures; last says asynq archives the task after any error.
func (h *Handler) process(ctx context.Context, p jobs.SubmitPayload, retry int, last bool) error {
	d := &delivery{
		h:       h,
		p:       p,
		last:    last,
		attempt: retry + 1,
	}
	err := d.run(ctx)
	if err == nil || errors.Is(err, asynq.SkipRetry) {
		return err
	}
	if d.last && !errors.Is(ctx.Err(), context.Canceled) {
		// asynq archives the task after this error whatever it is (unless
		// the worker is shutting down: then it was handed back): account
		// for the row now so enqueue status and results see it.
		msg := fmt.Sprintf("gave up after %d attempts: %v", retry+1, err)
		if tr, ferr := h.opts.Store.Fail(context.WithoutCancel(ctx), p.Mode, p.UniqueID, msg); ferr != nil {
			d.log().Error("recording the exhausted job failed", zap.Error(ferr))
		} else {
			h.transitioned(context.WithoutCancel(ctx), d.log, tr)
		}
		d.log().Warn("submit retries exhausted; job failed", zap.Error(err))
		h.opts.Metrics.outcome(p.Mode, OutcomeFailed)
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	return err
}

// delivery is the state of one ProcessTask call.
type delivery struct {
	h       *Handler
	p       jobs.SubmitPayload
	last    bool // asynq archives the task after any error of this attempt
	attempt int
	logger  *zap.Logger // built on first use by log

	client     *refonte.Client
	generation int64     // the job's enqueue retry generation
	reserve    time.Time // when a live spend reservation was taken (zero: none held)
	slot       bool      // holds a token of h.slots
}

// acquireSlot waits for an API slot (Options.MaxInFlight). A drained
// handler gives the job back instead (not a failure), except on the job's
// last attempt, which asynq would archive after any error: that one waits
// for a slot like before, or for asynq to hand it back at the end of the
// shutdown (its context is then canceled).
func (d *delivery) acquireSlot(ctx context.Context) error {
	if d.h.slots == nil {
		return nil
	}
	draining := d.h.draining
	if d.last {
		draining = nil // never ready
	}
	select {
	case <-draining: // before a free slot, which the select below might pick instead
		return errDrained()
	default:
	}
	select {
	case d.h.slots <- struct{}{}:
		d.slot = true
		return nil
	case <-draining:
		return errDrained()
	case <-ctx.Done():
		return fmt.Errorf("submit %s: waiting for an API slot: %w", d.p.UniqueID, context.Cause(ctx))
	}
}

// errDrained is acquireSlot's answer on a drained handler.
func errDrained() error {
	return &RescheduleError{Reason: ReasonShutdown, Detail: "the worker is shutting down; the job had not reached the API"}
}

// releaseSlot gives the API slot back (idempotent).
func (d *delivery) releaseSlot() {
	if d.slot {
		d.slot = false
		<-d.h.slots
	}
}

// log returns the delivery's logger, with the job's fields; it is built on
// first use, as the hot path (a successful create) logs nothing.
func (d *delivery) log() *zap.Logger {
	if d.logger == nil {
		d.logger = d.h.log.With(zap.String("run", d.p.Run), zap.Int64("line", d.p.Line),
			zap.String("unique_id", d.p.UniqueID), zap.String("mode", string(d.p.Mode)),
			zap.Int("attempt", d.attempt))
	}
	return d.logger
}

func (d *delivery) run(ctx context.Context) error {
	h, p := d.h, d.p
	d.client = h.opts.Clients[p.Mode]
	if d.client == nil {
		msg := fmt.Sprintf("mode mismatch: the job is for %s mode and this worker holds no %s key", p.Mode, p.Mode)
		return d.failPermanently(ctx, msg, nil)
	}
	// The job's state and its runs' (canceled, paused by the operator).
	if done, err := d.check(ctx, false); done || err != nil {
		return err
	}
	params, err := buildParams(p, h.opts.CallbackURL)
	if err != nil {
		return d.failPermanently(ctx, err.Error(), nil)
	}

	if err := d.keyPaused(ctx); err != nil {
		return err
	}
	if err := d.acquireSlot(ctx); err != nil {
		return err
	}
	defer d.releaseSlot()
	if err := d.reserveLiveSpend(ctx); err != nil {
		return err
	}
	if err := d.waitLimiter(ctx); err != nil {
		d.releaseLiveSpend(ctx)
		return err
	}
	granted := time.Now()
	if err := d.keyPaused(ctx); err != nil { // a 401 met by another job meanwhile
		return err
	}
	// Again, after the waits, and reserving the create in the same atomic
	// step: a cancel or pause recorded before this point creates nothing.
	if done, err := d.check(ctx, true); done || err != nil {
		d.releaseLiveSpend(ctx)
		return err
	}
	// A slot is for its moment. If the check was held up (a Redis outage
	// or failover: commands wait until Redis answers), every job granted
	// a slot before it would create at the same instant once Redis is
	// back, a burst of all those slots on top of the new ones: take a
	// fresh slot instead (the reserved create stays reserved; an error
	// here is retried like a crash after the reservation).
	if time.Since(granted) > StaleSlot {
		if err := d.h.waitLimiter(ctx, d.p.Mode, d.p.UniqueID, true); err != nil {
			d.releaseLiveSpend(ctx)
			return err
		}
	}
	return d.create(ctx, params, true)
}

// StaleSlot is how long after its rate-limit slot a job may still create;
// a job held up longer (see delivery.run) waits for a new slot.
const StaleSlot = time.Second

// keyPaused returns the reschedule of a job whose mode is paused because
// the API rejects its key (Options.Keys), or nil.
func (d *delivery) keyPaused(ctx context.Context) error {
	p, paused := d.h.opts.Keys.Paused(d.p.Mode)
	if !paused {
		return nil
	}
	return d.waitForKey(ctx, p)
}

// waitForKey gives the job back until the mode's key works again: not a
// failure (on its last attempt, which asynq would archive after any error,
// it is failed visibly instead, and enqueue retry re-queues it).
func (d *delivery) waitForKey(ctx context.Context, p store.KeyPause) error {
	d.releaseLiveSpend(ctx)
	d.h.opts.Metrics.outcome(d.p.Mode, OutcomeKeyRejected)
	if d.last {
		return d.failPermanently(ctx, p.Reason+"; the job's retries are exhausted", nil)
	}
	return &RescheduleError{Reason: ReasonKeyRejected, Delay: d.h.opts.Keys.RecheckDelay(), Detail: p.Reason}
}

// check runs store.CheckSubmit (reserving the create with reserve) and
// handles every verdict but SubmitGo: done reports that the delivery ends
// here with err.
func (d *delivery) check(ctx context.Context, reserve bool) (done bool, err error) {
	h, p := d.h, d.p
	c, err := h.opts.Store.CheckSubmit(ctx, p.Mode, p.UniqueID, reserve)
	if errors.Is(err, store.ErrJobNotFound) {
		d.log().Error("dropping submit job without a job record (expired or deleted)")
		h.opts.Metrics.outcome(p.Mode, OutcomeDropped)
		return true, fmt.Errorf("submit %s: %w: %w", p.UniqueID, err, asynq.SkipRetry)
	}
	if err != nil {
		return true, fmt.Errorf("submit %s: read job: %w", p.UniqueID, err)
	}
	d.generation = c.Generation
	switch c.Verdict {
	case store.SubmitGo:
		return false, nil
	case store.SubmitNoop:
		d.log().Debug("job already handled; nothing to do", zap.String("state", string(c.State)))
		h.opts.Metrics.outcome(p.Mode, OutcomeNoop)
		return true, nil
	case store.SubmitCanceled:
		h.opts.Metrics.outcome(p.Mode, OutcomeCanceled)
		h.transitioned(context.WithoutCancel(ctx), d.log, c.Transition)
		return true, nil
	case store.SubmitCanceledUnsure:
		return true, d.resolveCanceled(ctx)
	case store.SubmitPaused:
		h.opts.Metrics.outcome(p.Mode, OutcomeOperatorPaused)
		if d.last {
			// asynq would archive the job after any error; fail it visibly
			// (enqueue retry re-queues it) instead of losing it.
			return true, d.failPermanently(ctx, "the run is paused by its operator and the job's retries are exhausted", nil)
		}
		recheck := h.opts.OperatorPausedRecheck
		recheck -= time.Duration(rand.Int64N(int64(recheck)/5 + 1))
		return true, &RescheduleError{Reason: ReasonOperatorPaused, Delay: recheck, Detail: store.OperatorPausedReason}
	}
	return true, fmt.Errorf("submit %s: unknown verdict %d", p.UniqueID, c.Verdict)
}

// resolveCanceled ends a job of canceled runs whose earlier attempt may
// have created its task (a worker that crashed after reserving the
// create): the task found by unique_id is recorded (and canceled at the
// API if the cancel asked for it); no task means the job is canceled.
func (d *delivery) resolveCanceled(ctx context.Context) error {
	h, p := d.h, d.p
	start := time.Now()
	task, err := d.client.FindTaskByUniqueID(ctx, p.UniqueID)
	h.opts.Metrics.api(p.Mode, "find", start)
	if err == nil {
		return d.submitted(ctx, task, true)
	}
	if !errors.Is(err, refonte.ErrNotFound) {
		return fmt.Errorf("submit %s: looking up the task of a canceled row: %w", p.UniqueID, err)
	}
	c, err := h.opts.Store.CancelUnsubmitted(context.WithoutCancel(ctx), p.Mode, p.UniqueID)
	if err != nil {
		return fmt.Errorf("submit %s: canceling: %w", p.UniqueID, err)
	}
	if c.Verdict == store.SubmitCanceled {
		h.opts.Metrics.outcome(p.Mode, OutcomeCanceled)
		h.transitioned(context.WithoutCancel(ctx), d.log, c.Transition)
	}
	return nil
}

// reserveLiveSpend takes one task of the live daily budget, or pauses the run.
func (d *delivery) reserveLiveSpend(ctx context.Context) error {
	limit := d.h.dailyLimit.Load()
	if d.p.Mode != refonte.ModeLive || limit <= 0 {
		return nil
	}
	now := d.h.opts.Now()
	ok, err := d.h.opts.Store.ReserveLiveSpend(ctx, now, limit)
	if err != nil {
		return fmt.Errorf("submit %s: reserve live spend: %w", d.p.UniqueID, err)
	}
	if ok {
		d.reserve = now
		d.h.opts.Metrics.paused(false)
		// A run paused earlier (by any worker) runs again once the budget
		// has room (a raised cap, a new day). Checking the day's count first
		// keeps a late clear from undoing a pause set just after the budget ran out.
		if spent, err := d.h.opts.Store.LiveSpend(ctx, now); err == nil && spent < limit {
			if err := d.h.opts.Store.SetPaused(ctx, d.p.Run, ""); err != nil {
				d.log().Warn("clearing the run's paused state failed", zap.Error(err))
			}
		}
		return nil
	}
	reason := fmt.Sprintf("live daily limit %d reached for %s UTC", limit, now.UTC().Format(time.DateOnly))
	if err := d.h.opts.Store.SetPaused(ctx, d.p.Run, reason); err != nil {
		d.log().Warn("marking the run paused failed", zap.Error(err))
	}
	d.h.opts.Metrics.paused(true)
	d.h.opts.Metrics.outcome(d.p.Mode, OutcomePaused)
	d.log().Info("live daily limit reached; job paused", zap.Int64("limit", limit))
	if d.last {
		// asynq would archive the job after any error; fail it visibly instead of losing it.
		return d.failPermanently(ctx, reason+" and the job's retries are exhausted", nil)
	}
	// Up to 20 % less than PausedRecheck, so many paused jobs do not all come back at once.
	recheck := d.h.opts.PausedRecheck - time.Duration(rand.Int64N(int64(d.h.opts.PausedRecheck)/5+1))
	return &RescheduleError{Reason: ReasonPaused, Delay: min(untilNextUTCDay(now), recheck), Detail: reason}
}

// releaseLiveSpend gives back a reservation for which no task was created.
func (d *delivery) releaseLiveSpend(ctx context.Context) {
	if d.reserve.IsZero() {
		return
	}
	if err := d.h.opts.Store.ReleaseLiveSpend(context.WithoutCancel(ctx), d.reserve); err != nil {
		d.log().Warn("releasing a live spend reservation failed (the cap errs on the safe side)", zap.Error(err))
	}
	d.reserve = time.Time{}
}

// waitLimiter waits for a rate-limit slot for at most MaxLimiterWait.
func (d *delivery) waitLimiter(ctx context.Context) error {
	return d.h.waitLimiter(ctx, d.p.Mode, d.p.UniqueID, d.last)
}

// waitLimiter waits for a slot of mode's shared limiter for at most
// MaxLimiterWait (with last, as long as ctx allows: a reschedule would
// archive the job), else returns a *RescheduleError.
func (h *Handler) waitLimiter(ctx context.Context, mode refonte.Mode, uniqueID string, last bool) error {
	lim := h.opts.Limiters[mode]
	if lim == nil {
		return nil
	}
	maxWait := h.opts.MaxLimiterWait
	if last {
		maxWait = jobs.DefaultTimeout
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, maxWait)
	err := lim.Wait(wctx)
	cancel()
	h.opts.Metrics.wait(mode, time.Since(start))
	if err == nil {
		return nil
	}
	var de *ratelimit.DelayError
	switch {
	case errors.As(err, &de):
		h.opts.Metrics.outcome(mode, OutcomeRateLimited)
		return &RescheduleError{Reason: ReasonRateLimited, Delay: de.Delay}
	case ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
		h.opts.Metrics.outcome(mode, OutcomeRateLimited)
		return &RescheduleError{Reason: ReasonRateLimited, Delay: maxWait}
	}
	return fmt.Errorf("submit %s: rate limiter: %w", uniqueID, err)
}

// create calls the API once (the client retries transient errors inside)
// and accounts for the answer. mayClear allows one clear-and-recreate of an
// errored task holding our unique_id (for a job re-queued by enqueue retry).
func (d *delivery) create(ctx context.Context, params refonte.TaskParams, mayClear bool) error {
	h, p := d.h, d.p
	start := time.Now()
	task, err := d.client.CreateTask(ctx, p.TaskType, params)
	h.opts.Metrics.api(p.Mode, "create", start)
	if err == nil {
		// The API is done with this delivery: its slot goes to the next job
		// while this one records the task.
		d.releaseSlot()
		h.opts.Metrics.outcome(p.Mode, OutcomeSubmitted)
		return d.submitted(ctx, task, false)
	}
	// Recorded even when the job's context ended (an API that hangs):
	// enqueue status shows the row retrying and the run's last API error.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	rerr := h.opts.Store.RecordAttempt(rctx, p.Mode, p.UniqueID, err.Error())
	cancel()
	if rerr != nil {
		d.log().Warn("recording the attempt failed", zap.Error(rerr))
	}
	var gated *ratelimit.DelayError
	switch {
	case errors.Is(err, refonte.ErrConflict):
		return d.conflict(ctx, params, mayClear)
	case errors.Is(err, refonte.ErrRateLimited):
		// Ambiguous only if an earlier in-client attempt got lost; keep any
		// live reservation (the cap must never be overshot).
		wait := DefaultCooldown
		if ra, ok := refonte.RetryAfter(err); ok && ra > 0 {
			wait = ra
		}
		if lim := h.opts.Limiters[p.Mode]; lim != nil {
			if cerr := lim.Cooldown(ctx, wait); cerr != nil {
				d.log().Warn("setting the shared cooldown failed", zap.Error(cerr))
			}
		}
		h.opts.Metrics.outcome(p.Mode, OutcomeCooldown)
		// The console's fleet strip shows the 429s of every worker.
		if cerr := h.opts.Store.Count429(ctx, p.Mode, time.Now()); cerr != nil {
			d.log().Warn("counting the 429 failed", zap.Error(cerr))
		}
		d.log().Info("API rate limited; cooling down", zap.Duration("retry_after", wait))
		if d.last {
			return fmt.Errorf("submit %s: %w", p.UniqueID, err)
		}
		return &RescheduleError{Reason: ReasonCooldown, Delay: wait, Detail: "the API answered 429"}
	case errors.Is(err, refonte.ErrUnauthorized) && h.opts.Keys != nil:
		// The key is revoked or rotated: pause the mode, never fail its rows.
		return d.waitForKey(ctx, h.opts.Keys.Rejected(ctx, p.Mode, apiMessage(err)))
	case refonte.Permanent(err):
		return d.failPermanently(ctx, apiMessage(err), err)
	case errors.As(err, &gated) && !d.last:
		// The client's retries stopped at the shared limiter (RetryGate):
		// come back when a slot is free, not counted as a failure.
		h.opts.Metrics.outcome(p.Mode, OutcomeRateLimited)
		return &RescheduleError{Reason: ReasonRateLimited, Delay: gated.Delay, Detail: err.Error()}
	default:
		h.opts.Metrics.outcome(p.Mode, OutcomeRetry)
		d.log().Info("create failed; asynq will retry", zap.Error(err))
		return fmt.Errorf("submit %s: create: %w", p.UniqueID, err)
	}
}

// conflict resolves a 409 for our unique_id to the task that holds it.
func (d *delivery) conflict(ctx context.Context, params refonte.TaskParams, mayClear bool) error {
	h, p := d.h, d.p
	start := time.Now()
	existing, err := d.client.FindTaskByUniqueID(ctx, p.UniqueID)
	h.opts.Metrics.api(p.Mode, "find", start)
	if err != nil {
		h.opts.Metrics.outcome(p.Mode, OutcomeRetry)
		return fmt.Errorf("submit %s: 409, then looking the task up: %w", p.UniqueID, err)
	}
	if mayClear && d.generation > 0 && (existing.Status == refonte.StatusError || existing.Status == refonte.StatusCanceled) {
		// enqueue retry of a job whose task errored or was canceled:
		// release the old task's unique_id and create a new task.
		start := time.Now()
		_, err := d.client.ClearTaskUniqueID(ctx, existing.ID)
		h.opts.Metrics.api(p.Mode, "clear_unique_id", start)
		if err != nil {
			return fmt.Errorf("submit %s: clearing the errored task's unique_id: %w", p.UniqueID, err)
		}
		d.log().Info("cleared the unique_id of the errored task; creating again", zap.String("old_task_id", existing.ID))
		return d.create(ctx, params, false)
	}
	// The task was created by an earlier attempt, which kept its own live
	// reservation: this attempt's is not needed.
	d.releaseLiveSpend(ctx)
	h.opts.Metrics.outcome(p.Mode, OutcomeDuplicate)
	return d.submitted(ctx, existing, true)
}

// submitted records that task holds the job's row at the API.
func (d *delivery) submitted(ctx context.Context, task *refonte.Task, found bool) error {
	h, p := d.h, d.p
	// The task exists: from here on, never fail the job, never create again.
	ctx = context.WithoutCancel(ctx)
	taskID := zap.String("task_id", task.ID)
	var tr store.Transition
	var err error
	terminal := task.Status.Terminal()
	switch {
	case found:
		tr, err = h.opts.Store.MarkSubmitted(ctx, p.Mode, p.UniqueID, task.ID)
	case terminal:
		// Created and already finished (the API answered with a terminal
		// task): the attempt, the task and its outcome in one step.
		tr, err = h.opts.Store.RecordCreatedTerminal(ctx, p.Mode, p.UniqueID, store.TaskOutcome(task))
	default:
		// Our create succeeded: count the attempt in the same step.
		tr, err = h.opts.Store.RecordCreated(ctx, p.Mode, p.UniqueID, task.ID)
	}
	if err != nil {
		// Retrying is safe: the next create gets 409 and lands here again.
		return fmt.Errorf("submit %s: recording task %s: %w", p.UniqueID, task.ID, err)
	}
	if found {
		d.log().Info("task already existed for the unique_id (409); job submitted", taskID, zap.String("status", string(task.Status)))
	} else if ce := h.log.Check(zap.DebugLevel, "task created"); ce != nil {
		d.log().Debug("task created", taskID, zap.String("status", string(task.Status)))
	}
	h.transitioned(ctx, d.log, tr)
	if tr.CancelAtAPI && !terminal {
		// Its run was canceled with -tasks while the create was in flight.
		if err := h.cancelAtAPI(ctx, p.Mode, p.UniqueID, task.ID, true); err != nil {
			d.log().Warn("canceling the task of a canceled run failed; run enqueue cancel -tasks again", taskID, zap.Error(err))
		}
		return nil
	}
	if found && terminal {
		ctr, err := h.opts.Store.Complete(ctx, p.Mode, p.UniqueID, store.TaskOutcome(task))
		if err != nil {
			d.log().Warn("recording the already-terminal task failed; the reconciler will", taskID, zap.Error(err))
		}
		h.transitioned(ctx, d.log, ctr)
	}
	return nil
}

// AfterTransition finalizes, exactly once per run across all workers, the
// Refonte batch of every run that tr reports as all submitted
// (tr.RunsAllSubmitted). It suits the OnTransition hooks of the callback
// receiver and the reconciler, whose transitions can be the last ones too.
func (h *Handler) AfterTransition(ctx context.Context, tr store.Transition) {
	h.finalizeBatches(ctx, h.log, tr.RunsAllSubmitted)
}

// transitioned logs the runs a transition finished and finalizes the
// batches of the runs it left all submitted. log is called only when there
// is something to log (most transitions have nothing: a logger per row
// would be wasted).
func (h *Handler) transitioned(ctx context.Context, log func() *zap.Logger, tr store.Transition) {
	if len(tr.RunsDone) == 0 && len(tr.RunsAllSubmitted) == 0 {
		return
	}
	l := log()
	for _, id := range tr.RunsDone {
		h.opts.Store.LogRunDone(ctx, l, id)
	}
	h.finalizeBatches(ctx, l, tr.RunsAllSubmitted)
}

// finalizeBatches finalizes, exactly once per run, the batch of each run
// whose rows are now all submitted.
func (h *Handler) finalizeBatches(ctx context.Context, log *zap.Logger, runIDs []string) {
	for _, id := range runIDs {
		run, err := h.opts.Store.GetRun(ctx, id)
		if err != nil {
			log.Warn("reading a run to finalize its batch failed", zap.String("finalize_run", id), zap.Error(err))
			continue
		}
		if run.Batch == "" || run.BatchFinalized {
			continue
		}
		client := h.opts.Clients[run.Mode]
		if client == nil {
			continue
		}
		claimed, err := h.opts.Store.ClaimBatchFinalize(ctx, id)
		if err != nil || !claimed {
			if err != nil {
				log.Warn("claiming the batch finalize failed", zap.String("finalize_run", id), zap.Error(err))
			}
			continue
		}
		start := time.Now()
		_, err = client.FinalizeBatch(ctx, run.Batch)
		h.opts.Metrics.api(run.Mode, "finalize", start)
		if err != nil {
			log.Error("finalizing the batch failed; finalize it by hand",
				zap.String("finalize_run", id), zap.String("batch", run.Batch), zap.Error(err))
			continue
		}
		log.Info("batch finalized", zap.String("finalize_run", id), zap.String("batch", run.Batch))
	}
}

// failPermanently fails the job with msg and stops its retries. cause is
// the API error, if any.
func (d *delivery) failPermanently(ctx context.Context, msg string, cause error) error {
	h, p := d.h, d.p
	d.releaseLiveSpend(ctx)
	tr, err := h.opts.Store.Fail(context.WithoutCancel(ctx), p.Mode, p.UniqueID, msg)
	if err != nil {
		// Not recorded: let asynq retry so the row is accounted for.
		return fmt.Errorf("submit %s: recording the failure %q: %w", p.UniqueID, msg, err)
	}
	h.transitioned(context.WithoutCancel(ctx), d.log, tr)
	h.opts.Metrics.outcome(p.Mode, OutcomeFailed)
	if cause == nil {
		cause = errors.New(msg)
	}
	d.log().Warn("job failed permanently", zap.String("reason", msg))
	return fmt.Errorf("submit %s: %w: %w", p.UniqueID, cause, asynq.SkipRetry)
}

// apiMessage returns the API's own message of an error when it has one.
func apiMessage(err error) string {
	var ae *refonte.Error
	if errors.As(err, &ae) && ae.Message != "" {
		return fmt.Sprintf("%d %s", ae.StatusCode, ae.Message)
	}
	return err.Error()
}
