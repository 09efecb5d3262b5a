// Package reconcile keeps the account of a run whole when callbacks are
// lost: it checks at the API the jobs submitted longer than a grace period
// ago that have had no callback, and completes or fails them from what the
// API says.
//
// A pass drains every overdue job. It reads them in bulk: one list call
// (GET /tasks filtered by the run's project and batch and by creation time,
// 100 tasks a page) settles up to 100 jobs; the jobs a listing does not
// find, or that would cost more pages than single calls, are fetched one by
// one (GET /task/{id}). Every call shares the submissions' rate limit at low
// priority: it takes a slot only when one is free (Limiter.Reserve) and
// waits for the next free one, and only after waiting a whole pass interval
// does it book a slot like a create does (Limiter.Wait). A task the API
// still reports pending is moved to the back of the in-flight set, so it is
// checked again only after another grace period. Several worker pods may
// run a reconciler: every store transition is idempotent, and a Redis
// lease per mode, renewed while a pass runs, keeps pods from polling the
// same jobs at once.
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

	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/ratelimit"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// Defaults of Config.
const (
	// DefaultGrace is how long after its submission a job without a callback is polled.
	DefaultGrace = 10 * time.Minute
	// MaxDefaultInterval caps the default pass interval (Grace/4): a lost
	// callback is recovered within Grace + MaxDefaultInterval + the pass.
	MaxDefaultInterval = 20 * time.Second
	// DefaultBatchSize is how many overdue jobs are read from the store at
	// once (and grouped into listings).
	DefaultBatchSize = 1000
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
	// Interval is the time between passes. Zero means min(Grace/4, 20s).
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
	// sweepBefore (Unix nanoseconds, 0: none) makes passes poll every job
	// submitted before it, whatever its grace, until a pass completes;
	// kick starts a pass at once. See Sweep.
	sweepBefore atomic.Int64
	kick        chan struct{}
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
		kick:         make(chan struct{}, 1),
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
		case <-r.kick:
		}
	}
}

// Sweep makes the next pass, started at once, poll every in-flight job
// submitted before before, without waiting for its grace. The worker calls
// it after a Redis failover: a completion recorded on the old master just
// before the switch may have been discarded with it after its callback was
// answered, and the API does not call back twice.
func (r *Reconciler) Sweep(before time.Time) {
	for {
		cur := r.sweepBefore.Load()
		if cur >= before.UnixNano() || r.sweepBefore.CompareAndSwap(cur, before.UnixNano()) {
			break
		}
	}
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Once makes one pass over every mode: it polls the jobs submitted longer
// than Grace ago that have had no callback, as far as the rate limit has
// free slots, and applies what the API says. It returns the number of
// tasks polled; err joins the errors met (the pass went on where it could).
func (r *Reconciler) Once(ctx context.Context) (polled int, err error) {
	var errs []error
	sweep := r.sweepBefore.Load()
	for _, mode := range r.modes {
		n, skipped, err := r.pass(ctx, mode, sweep)
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
	if len(errs) == 0 && sweep != 0 {
		r.sweepBefore.CompareAndSwap(sweep, 0)
	}
	return polled, errors.Join(errs...)
}

// passState is the shared state of one mode's pass.
type passState struct {
	mode   refonte.Mode
	client *refonte.Client
	lim    ratelimit.Limiter
	stop   atomic.Bool // API trouble or rate limit: take no more slots
	polled atomic.Int64
	runs   map[string]*store.Run // run records read in this pass (nil: expired)
	mu     sync.Mutex
	errs   []error
}

func (p *passState) fail(err error) {
	p.stop.Store(true)
	p.mu.Lock()
	p.errs = append(p.errs, err)
	p.mu.Unlock()
}

// pass drains one mode's overdue jobs and returns the number of tasks
// checked; skipped is true when another worker held the mode's lease.
func (r *Reconciler) pass(ctx context.Context, mode refonte.Mode, sweep int64) (polled int, skipped bool, err error) {
	lease := "reconcile:" + string(mode)
	token, ok, err := r.store.TryLease(ctx, lease, r.leaseTTL)
	if err != nil {
		return 0, false, err
	}
	if !ok {
		r.log.Debug("reconcile pass skipped: another worker holds the lease", zap.Stringer("mode", mode))
		return 0, true, nil
	}
	// A pass lasts as long as the overdue jobs take: keep the lease while it runs.
	renewCtx, stopRenew := context.WithCancel(ctx)
	var renewing sync.WaitGroup
	renewing.Go(func() { r.keepLease(renewCtx, lease, token) })
	defer func() {
		stopRenew()
		renewing.Wait()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := r.store.ReleaseLease(rctx, lease, token); err != nil {
			r.log.Debug("reconcile lease not released; it expires on its own", zap.Error(err))
		}
	}()

	p := &passState{mode: mode, client: r.clients[mode], lim: r.limiters[mode], runs: map[string]*store.Run{}}
	cutoff := r.now().Add(-r.grace)
	if s := time.Unix(0, sweep); sweep != 0 && s.After(cutoff) {
		cutoff = s
	}
	seen := make(map[string]struct{})
	for !p.stop.Load() && ctx.Err() == nil {
		ids, err := r.store.InFlightBefore(ctx, mode, cutoff, r.batch)
		if err != nil {
			p.fail(err)
			break
		}
		var due []*store.Job
		for _, uid := range ids {
			if _, dup := seen[uid]; dup {
				continue
			}
			seen[uid] = struct{}{}
			if job, ok := r.overdueJob(ctx, p, uid); ok {
				due = append(due, job)
			}
			if p.stop.Load() {
				break
			}
		}
		if len(due) > 0 {
			r.reconcileJobs(ctx, p, due)
		}
		if len(ids) < r.batch || (len(due) == 0 && allSeen(ids, seen)) {
			break
		}
	}
	return int(p.polled.Load()), false, errors.Join(p.errs...)
}

// allSeen reports whether every id was met earlier in the pass (jobs left
// in flight by an error: reading on would only meet them again).
func allSeen(ids []string, seen map[string]struct{}) bool {
	for _, id := range ids {
		if _, ok := seen[id]; !ok {
			return false
		}
	}
	return true
}

// keepLease renews the pass's lease every third of its TTL until ctx ends.
func (r *Reconciler) keepLease(ctx context.Context, lease, token string) {
	t := time.NewTicker(r.leaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := r.store.RenewLease(ctx, lease, token, r.leaseTTL); err != nil && ctx.Err() == nil {
				r.log.Debug("reconcile lease not renewed; another worker may poll the same jobs (harmless)", zap.Error(err))
			}
		}
	}
}

// reconcileJobs checks the overdue jobs at the API: first in bulk, one
// list call per page of up to ListPageSize tasks of the same run's project
// and batch created around the jobs' submissions, then one GET per job the
// listing did not settle. Every call takes a slot of the shared limiter at
// low priority (takeSlot).
func (r *Reconciler) reconcileJobs(ctx context.Context, p *passState, due []*store.Job) {
	var single []*store.Job
	for _, g := range r.groups(ctx, p, due) {
		if len(g.jobs) < 2 || p.stop.Load() {
			single = append(single, g.jobs...)
			continue
		}
		single = append(single, r.list(ctx, p, g)...)
	}
	sem := make(chan struct{}, r.concurrency)
	var wg sync.WaitGroup
	for _, job := range single {
		// Wait for a poll to finish first, so that its failure stops
		// the pass before another slot is taken.
		sem <- struct{}{}
		if p.stop.Load() || ctx.Err() != nil {
			<-sem
			break
		}
		if !r.takeSlot(ctx, p) {
			<-sem
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			task, err := p.client.GetTask(ctx, job.TaskID)
			r.m.call(p.mode, "get")
			r.apply(ctx, p, job, task, err)
		})
	}
	wg.Wait()
}

// listGroup is overdue jobs whose tasks one listing can find: same project
// and batch, created within [from, to].
type listGroup struct {
	project, batch string
	from, to       time.Time
	jobs           []*store.Job
}

// groups groups the jobs by their run's project and batch. Jobs without a
// submission time go alone (a single GET each).
func (r *Reconciler) groups(ctx context.Context, p *passState, jobs []*store.Job) []*listGroup {
	byKey := map[[2]string]*listGroup{}
	var out []*listGroup
	for _, job := range jobs {
		var project, batch string
		if run := r.runOf(ctx, p, job.Run); run != nil {
			project, batch = run.Project, run.Batch
		}
		if job.SubmittedAt.IsZero() {
			out = append(out, &listGroup{jobs: []*store.Job{job}})
			continue
		}
		g := byKey[[2]string{project, batch}]
		if g == nil {
			g = &listGroup{project: project, batch: batch, from: job.SubmittedAt, to: job.SubmittedAt}
			byKey[[2]string{project, batch}] = g
			out = append(out, g)
		}
		g.from = minTime(g.from, job.SubmittedAt)
		g.to = maxTime(g.to, job.SubmittedAt)
		g.jobs = append(g.jobs, job)
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// runOf returns a run record, read once per pass (nil when it is gone).
func (r *Reconciler) runOf(ctx context.Context, p *passState, id string) *store.Run {
	if run, ok := p.runs[id]; ok {
		return run
	}
	run, err := r.store.GetRun(ctx, id)
	if err != nil {
		run = nil
	}
	p.runs[id] = run
	return run
}

// ListPageSize is the page size of the reconciler's list calls (the API's
// maximum).
const ListPageSize = 100

// ListSkew widens a listing's creation-time window on both sides of the
// jobs' recorded submission times: the API creates a task just before our
// record of it, on its own clock. A task created outside the window (a 409
// resolved long after the create) is fetched by a single GET.
const ListSkew = time.Minute

// list settles what it can of g's jobs from listing pages (GET /tasks with
// project, batch and a creation-time window) and returns the jobs it did
// not find. It stops listing as soon as the pages left would cost as many
// calls as single GETs of the jobs left.
func (r *Reconciler) list(ctx context.Context, p *passState, g *listGroup) (rest []*store.Job) {
	byTask := make(map[string]*store.Job, len(g.jobs))
	for _, job := range g.jobs {
		byTask[job.TaskID] = job
	}
	defer func() {
		for _, job := range byTask {
			rest = append(rest, job)
		}
	}()
	opts := refonte.ListTasksOptions{Project: g.project, Batch: g.batch, Limit: ListPageSize,
		StartTime: g.from.Add(-ListSkew), EndTime: g.to.Add(ListSkew)}
	listed := 0
	for len(byTask) > 0 && !p.stop.Load() && ctx.Err() == nil {
		if !r.takeSlot(ctx, p) {
			return
		}
		page, err := p.client.ListTasks(ctx, opts)
		r.m.call(p.mode, "list")
		if err != nil {
			switch {
			case ctx.Err() != nil:
			case errors.Is(err, refonte.ErrRateLimited):
				r.rateLimited(ctx, p, err)
			case refonte.Retryable(err):
				p.fail(fmt.Errorf("list tasks: %w", err))
			default:
				// The listing is refused (filters the API does not take?):
				// single GETs settle the jobs.
				r.log.Warn("reconcile listing refused; polling the tasks one by one", zap.Stringer("mode", p.mode), zap.Error(err))
			}
			return
		}
		listed += len(page.Docs)
		for _, task := range page.Docs {
			if task == nil {
				continue
			}
			if job, ok := byTask[task.ID]; ok {
				delete(byTask, task.ID)
				r.apply(ctx, p, job, task, nil)
			}
		}
		if !page.HasMore || page.NextToken == "" || len(page.Docs) == 0 {
			return
		}
		if left := page.Total - listed; left > 0 && (left+ListPageSize-1)/ListPageSize >= len(byTask) {
			return // single GETs are cheaper now
		}
		opts.NextToken = page.NextToken
	}
	return
}

// takeSlot takes a slot of the shared limiter at low priority: only a slot
// free right now (Reserve), so creates waiting for theirs keep them; after
// waiting one pass interval for such a slot it books the next one like a
// create does (Wait), so a long saturated run still gets its overdue jobs
// checked. It returns false when the pass must stop.
func (r *Reconciler) takeSlot(ctx context.Context, p *passState) bool {
	start := time.Now()
	for {
		delay, err := p.lim.Reserve(ctx)
		switch {
		case ctx.Err() != nil:
			return false
		case err != nil:
			p.fail(fmt.Errorf("rate limiter: %w", err))
			return false
		case delay <= 0:
			return true
		}
		if time.Since(start)+delay > r.interval {
			if err := p.lim.Wait(ctx); err != nil {
				if ctx.Err() == nil {
					p.fail(fmt.Errorf("rate limiter: %w", err))
				}
				return false
			}
			return true
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// rateLimited handles a 429: the shared cooldown, and the pass stops.
func (r *Reconciler) rateLimited(ctx context.Context, p *passState, err error) {
	if d, ok := refonte.RetryAfter(err); ok {
		if cerr := p.lim.Cooldown(ctx, d); cerr != nil {
			r.log.Warn("rate limit cooldown not shared", zap.Error(cerr))
		}
	}
	p.stop.Store(true)
	r.m.poll(p.mode, "rate_limited")
	r.log.Info("reconcile call rate limited; the pass stops", zap.Stringer("mode", p.mode), zap.Error(err))
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

// apply applies what the API said of a job's task (task, or err of a
// single GET): a terminal task completes or fails the job, a pending one
// defers it by another grace period, an unknown one fails it.
func (r *Reconciler) apply(ctx context.Context, p *passState, job *store.Job, task *refonte.Task, err error) {
	log := r.log.With(zap.Stringer("mode", p.mode), zap.String("unique_id", job.UniqueID),
		zap.String("task_id", job.TaskID))
	if err == nil || errors.Is(err, refonte.ErrNotFound) {
		p.polled.Add(1) // the API told this task's state
	}
	var (
		t       store.Transition
		outcome string
	)
	switch {
	case err == nil && task.Status.Terminal():
		o := store.TaskOutcome(task)
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
		r.rateLimited(ctx, p, err)
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
		r.store.LogRunDone(ctx, r.log, id)
	}
	if r.onTransition != nil {
		r.onTransition(ctx, t)
	}
}
