// Package reconcile keeps the account of a run whole when callbacks are
// lost: it polls, with GET /task/{id}, the jobs submitted longer than a
// grace period ago that have had no callback, and completes or fails them
// from what the API says.
//
// Polls share the submissions' rate limit but at low priority: a poll takes
// a slot only if one is free right now (Limiter.Reserve), else the pass
// stops and the reconciler tries again on its next pass. A task the API
// still reports pending is moved to the back of the in-flight set, so it is
// polled again only after another grace period. Several worker pods may run
// a reconciler: every store transition is idempotent, and a short Redis
// lease per mode and pass keeps pods from polling the same jobs at once.
package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/jobs/callback"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/ratelimit"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// Defaults of Config.
const (
	// DefaultGrace is how long after its submission a job without a callback is polled.
	DefaultGrace = 10 * time.Minute
	// MaxDefaultInterval caps the default pass interval (Grace/4).
	MaxDefaultInterval = 30 * time.Second
	// DefaultBatchSize is how many overdue jobs are read from the store at once.
	DefaultBatchSize = 100
	// DefaultConcurrency is how many polls of one pass run at once.
	DefaultConcurrency = 4
)

// NotFoundReason is the error kept on a job whose task the API does not know.
const NotFoundReason = "task not found at the API"

// Config configures a Reconciler.
type Config struct {
	// Store holds the job records. Required.
	Store *store.Store
	// Clients are the API clients by mode; the reconciler serves these
	// modes. Each client's Mode must match its key. At least one.
	Clients map[refonte.Mode]*refonte.Client
	// Limiters are the shared rate limits of the submissions, by mode;
	// required for every mode of Clients.
	Limiters map[refonte.Mode]ratelimit.Limiter
	// Grace is how long after its submission a job without a callback is
	// polled (the worker's -callback-grace). Zero means DefaultGrace.
	Grace time.Duration
	// Interval is the time between passes. Zero means min(Grace/4, 30s).
	Interval time.Duration
	// BatchSize is how many overdue jobs are read from the store at once.
	// Zero means DefaultBatchSize.
	BatchSize int
	// Concurrency is how many polls of one pass run at once. Zero means
	// DefaultConcurrency.
	Concurrency int
	// Logger receives the reconciler's logs. Nil means no logs.
	Logger *zap.Logger
	// Registerer receives the reconciler's collectors
	// (refonte_reconcile_polls_total by mode and outcome,
	// refonte_reconcile_passes_total by result). Nil means no metrics.
	Registerer prometheus.Registerer
	// OnTransition, if set, is called after every poll that changed a job
	// (the worker finalizes batches there).
	OnTransition func(context.Context, store.Transition)
	// Now returns the current time; nil means time.Now. Tests move it
	// forward to make jobs overdue.
	Now func() time.Time
}

// Reconciler polls overdue jobs. It is safe for concurrent use; passes may
// overlap, within one process or across pods.
type Reconciler struct {
	store        *store.Store
	clients      map[refonte.Mode]*refonte.Client
	limiters     map[refonte.Mode]ratelimit.Limiter
	modes        []refonte.Mode // live first
	grace        time.Duration
	interval     time.Duration
	batch        int
	concurrency  int
	leaseTTL     time.Duration
	log          *zap.Logger
	onTransition func(context.Context, store.Transition)
	now          func() time.Time
	m            *metrics
}

// New returns the reconciler described by cfg.
func New(cfg Config) (*Reconciler, error) {
	if cfg.Store == nil {
		return nil, errors.New("reconcile: Config.Store is required")
	}
	if len(cfg.Clients) == 0 {
		return nil, errors.New("reconcile: Config.Clients needs a client for at least one mode")
	}
	if cfg.Grace < 0 || cfg.Interval < 0 || cfg.BatchSize < 0 || cfg.Concurrency < 0 {
		return nil, errors.New("reconcile: Grace, Interval, BatchSize and Concurrency must not be negative")
	}
	r := &Reconciler{
		store:        cfg.Store,
		clients:      make(map[refonte.Mode]*refonte.Client, len(cfg.Clients)),
		limiters:     make(map[refonte.Mode]ratelimit.Limiter, len(cfg.Clients)),
		grace:        cmp.Or(cfg.Grace, DefaultGrace),
		batch:        cmp.Or(cfg.BatchSize, DefaultBatchSize),
		concurrency:  cmp.Or(cfg.Concurrency, DefaultConcurrency),
		log:          cfg.Logger,
		onTransition: cfg.OnTransition,
		now:          cfg.Now,
	}
	for mode, c := range cfg.Clients {
		if _, err := refonte.ParseMode(string(mode)); err != nil {
			return nil, fmt.Errorf("reconcile: %w", err)
		}
		if c == nil {
			return nil, fmt.Errorf("reconcile: nil client for mode %s", mode)
		}
		if c.Mode() != mode {
			return nil, fmt.Errorf("reconcile: the client given for mode %s holds a %s key", mode, c.Mode())
		}
		lim := cfg.Limiters[mode]
		if lim == nil {
			return nil, fmt.Errorf("reconcile: no limiter for mode %s: polls must share the submissions' rate limit", mode)
		}
		r.clients[mode] = c
		r.limiters[mode] = lim
		r.modes = append(r.modes, mode)
	}
	slices.SortFunc(r.modes, func(a, b refonte.Mode) int {
		// Live first: its rows cost money and matter most.
		if a == b {
			return 0
		}
		if a == refonte.ModeLive {
			return -1
		}
		return 1
	})
	r.interval = cfg.Interval
	if r.interval == 0 {
		r.interval = min(r.grace/4, MaxDefaultInterval)
	}
	r.interval = max(r.interval, time.Millisecond)
	r.leaseTTL = max(2*r.interval, 5*time.Second)
	if r.log == nil {
		r.log = zap.NewNop()
	}
	if r.now == nil {
		r.now = time.Now
	}
	if cfg.Registerer != nil {
		m, err := newMetrics(cfg.Registerer)
		if err != nil {
			return nil, fmt.Errorf("reconcile: metrics: %w", err)
		}
		r.m = m
	}
	return r, nil
}

// Run makes a pass at once and then every Interval until ctx ends; it then
// returns nil. Errors of a pass are logged and the next pass goes on.
func (r *Reconciler) Run(ctx context.Context) error {
	tick := time.NewTicker(r.interval)
	defer tick.Stop()
	for {
		polled, err := r.Once(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			r.log.Warn("reconcile pass incomplete; the next pass goes on", zap.Int("polled", polled), zap.Error(err))
		} else if polled > 0 {
			r.log.Info("reconcile pass", zap.Int("polled", polled))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Once makes one pass over every mode: it polls the jobs submitted longer
// than Grace ago that have had no callback, as far as the rate limit has
// free slots, and applies what the API says. It returns the number of
// tasks polled; err joins the errors met (the pass went on where it could).
func (r *Reconciler) Once(ctx context.Context) (polled int, err error) {
	var errs []error
	for _, mode := range r.modes {
		n, skipped, err := r.pass(ctx, mode)
		polled += n
		result := "ok"
		switch {
		case err != nil:
			result = "error"
			errs = append(errs, fmt.Errorf("reconcile %s: %w", mode, err))
		case skipped:
			result = "skipped"
		}
		r.m.pass(result)
	}
	return polled, errors.Join(errs...)
}

// passState is the shared state of one mode's pass.
type passState struct {
	mode   refonte.Mode
	client *refonte.Client
	lim    ratelimit.Limiter
	stop   atomic.Bool // API trouble or rate limit: take no more slots
	mu     sync.Mutex
	errs   []error
}

func (p *passState) fail(err error) {
	p.stop.Store(true)
	p.mu.Lock()
	p.errs = append(p.errs, err)
	p.mu.Unlock()
}

// pass polls one mode's overdue jobs and returns the number of polls made;
// skipped is true when another worker held the mode's lease.
func (r *Reconciler) pass(ctx context.Context, mode refonte.Mode) (polled int, skipped bool, err error) {
	lease := "reconcile:" + string(mode)
	token, ok, err := r.store.TryLease(ctx, lease, r.leaseTTL)
	if err != nil {
		return 0, false, err
	}
	if !ok {
		r.log.Debug("reconcile pass skipped: another worker holds the lease", zap.Stringer("mode", mode))
		return 0, true, nil
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := r.store.ReleaseLease(rctx, lease, token); err != nil {
			r.log.Debug("reconcile lease not released; it expires on its own", zap.Error(err))
		}
	}()

	p := &passState{mode: mode, client: r.clients[mode], lim: r.limiters[mode]}
	cutoff := r.now().Add(-r.grace)
	budget := time.Now().Add(r.interval) // stop reading new batches after one interval
	seen := make(map[string]struct{})
	sem := make(chan struct{}, r.concurrency)
	var wg sync.WaitGroup
	for !p.stop.Load() && ctx.Err() == nil {
		ids, err := r.store.InFlightBefore(ctx, mode, cutoff, r.batch)
		if err != nil {
			p.fail(err)
			break
		}
		fresh := 0
		for _, uid := range ids {
			if _, dup := seen[uid]; dup {
				continue
			}
			// Wait for a poll to finish first, so that its failure stops
			// the pass before another slot is taken.
			sem <- struct{}{}
			if p.stop.Load() || ctx.Err() != nil {
				<-sem
				break
			}
			seen[uid] = struct{}{}
			fresh++
			job, ok := r.overdueJob(ctx, p, uid)
			if !ok {
				<-sem
				continue
			}
			delay, err := p.lim.Reserve(ctx)
			if err != nil || delay > 0 {
				<-sem
				if err != nil {
					p.fail(fmt.Errorf("rate limiter: %w", err))
					break
				}
				// No free slot: submissions keep priority; try on the next pass.
				r.log.Debug("reconcile pass stopped at the rate limit", zap.Stringer("mode", mode),
					zap.Int("polled", polled), zap.Duration("next_slot", delay))
				p.stop.Store(true)
				break
			}
			polled++
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				r.poll(ctx, p, job)
			}()
		}
		if fresh == 0 || len(ids) < r.batch || time.Now().After(budget) {
			break
		}
	}
	wg.Wait()
	return polled, false, errors.Join(p.errs...)
}

// overdueJob reads an in-flight job; ok is false when it needs no poll (its
// entry is then cleaned up) or the store failed (recorded in p).
func (r *Reconciler) overdueJob(ctx context.Context, p *passState, uid string) (*store.Job, bool) {
	job, err := r.store.GetJob(ctx, p.mode, uid)
	if errors.Is(err, store.ErrJobNotFound) {
		// The record expired: nothing left to account for.
		if err := r.store.DropInFlight(ctx, p.mode, uid); err != nil {
			p.fail(err)
		}
		return nil, false
	}
	if err != nil {
		p.fail(err)
		return nil, false
	}
	if job.State.Terminal() || job.TaskID == "" {
		// Terminal (a callback won the race) or never submitted: not ours to poll.
		if err := r.store.DropInFlight(ctx, p.mode, uid); err != nil {
			p.fail(err)
		}
		return nil, false
	}
	return job, true
}

// poll fetches one job's task and applies what the API says.
func (r *Reconciler) poll(ctx context.Context, p *passState, job *store.Job) {
	log := r.log.With(zap.Stringer("mode", p.mode), zap.String("unique_id", job.UniqueID),
		zap.String("task_id", job.TaskID))
	task, err := p.client.GetTask(ctx, job.TaskID)
	var (
		t       store.Transition
		outcome string
	)
	switch {
	case err == nil && task.Status.Terminal():
		o := callback.TaskOutcome(task)
		if o.TaskID == "" {
			o.TaskID = job.TaskID
		}
		t, err = r.store.Complete(ctx, p.mode, job.UniqueID, o)
		outcome = string(t.To)
		if !t.Changed {
			outcome = "unchanged"
		}
	case err == nil:
		// Still pending: come back after another grace period.
		_, err = r.store.DeferInFlight(ctx, p.mode, job.UniqueID, r.now())
		outcome = "pending"
	case errors.Is(err, refonte.ErrNotFound):
		t, err = r.store.Fail(ctx, p.mode, job.UniqueID, NotFoundReason)
		outcome = "not_found"
	case ctx.Err() != nil:
		return
	case errors.Is(err, refonte.ErrRateLimited):
		if d, ok := refonte.RetryAfter(err); ok {
			if cerr := p.lim.Cooldown(ctx, d); cerr != nil {
				log.Warn("rate limit cooldown not shared", zap.Error(cerr))
			}
		}
		p.stop.Store(true)
		r.m.poll(p.mode, "rate_limited")
		log.Info("reconcile poll rate limited; the pass stops", zap.Error(err))
		return
	case refonte.Retryable(err):
		r.m.poll(p.mode, "poll_error")
		p.fail(fmt.Errorf("get task %s: %w", job.TaskID, err))
		return
	default:
		// A permanent error for this task (not a 404): keep it from
		// blocking the others; it comes back after another grace period.
		r.m.poll(p.mode, "poll_error")
		log.Error("reconcile poll failed; retried after another grace period", zap.Error(err))
		if _, derr := r.store.DeferInFlight(ctx, p.mode, job.UniqueID, r.now()); derr != nil {
			p.fail(derr)
		}
		return
	}
	if err != nil {
		r.m.poll(p.mode, "poll_error")
		p.fail(err)
		return
	}
	r.m.poll(p.mode, outcome)
	if !t.Changed {
		return
	}
	log.Debug("reconciled a job whose callback never came", zap.String("outcome", outcome),
		zap.String("to", string(t.To)))
	for _, id := range t.RunsDone {
		callback.LogRunDone(ctx, r.log, r.store, id)
	}
	if r.onTransition != nil {
		r.onTransition(ctx, t)
	}
}
