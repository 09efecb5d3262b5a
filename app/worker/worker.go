package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/internal/defaults"
	"github.com/refonte-ai/refonte-batch/internal/redisgate"
	"github.com/refonte-ai/refonte-batch/internal/redisurl"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/callback"
	"github.com/refonte-ai/refonte-batch/jobs/keyguard"
	"github.com/refonte-ai/refonte-batch/jobs/reconcile"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/jobs/submit"
	"github.com/refonte-ai/refonte-batch/ratelimit"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// Tuning of the worker process; not flags.
const (
	// ClientMaxElapsed bounds the API client's own retries of one create;
	// past it the error goes back to asynq, which retries with RetryDelay.
	ClientMaxElapsed = 20 * time.Second
	// MaxLimiterWait is the longest a job waits in the handler for a
	// rate-limit slot before it is rescheduled (not a failure).
	MaxLimiterWait = 2 * time.Second
	// StatsInterval is how often the queue depth, run and live spend gauges are refreshed.
	StatsInterval = 5 * time.Second
	// StatsRuns is how many of the newest runs the run gauges look at.
	StatsRuns = 200
	// ReadyTimeout bounds the Redis PING of /readyz.
	ReadyTimeout = time.Second
	// handlerStopTimeout bounds the wait for handlers to return once their
	// context is canceled at shutdown.
	handlerStopTimeout = 5 * time.Second
	// httpShutdownTimeout bounds the HTTP server's graceful stop after the queue drained.
	httpShutdownTimeout = 5 * time.Second
)

// Timeouts of every connection to the worker's HTTP listener (/callback,
// /healthz, /readyz, /metrics), so that no client, slow or idle, holds a
// connection and its goroutine for long: a request's headers must arrive
// within HTTPReadHeaderTimeout and the whole request within
// HTTPReadTimeout (an authenticated callback body also within
// callback.DefaultBodyTimeout of its headers), its answer must be written
// within HTTPWriteTimeout, and an idle keep-alive connection is closed
// after HTTPIdleTimeout.
const (
	HTTPReadHeaderTimeout = 5 * time.Second
	HTTPReadTimeout       = 30 * time.Second
	HTTPWriteTimeout      = 30 * time.Second
	HTTPIdleTimeout       = 60 * time.Second
)

// NewHTTPServer returns an http.Server for handler with the worker's
// timeouts (HTTPReadHeaderTimeout and the others), logging its errors to
// logger. Every listener of the worker process is served by one.
func NewHTTPServer(handler http.Handler, logger *zap.Logger) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: HTTPReadHeaderTimeout,
		ReadTimeout:       HTTPReadTimeout,
		WriteTimeout:      HTTPWriteTimeout,
		IdleTimeout:       HTTPIdleTimeout,
		ErrorLog:          zap.NewStdLog(logger),
	}
}

// Worker is one worker process: an asynq server running the submit
// handler on the queue of each mode it holds a key for, an HTTP server
// (/callback, /healthz, /readyz, /metrics), the reconciler loop and the
// stats poller. Build it with New, then call Run once.
type Worker struct {
	cfg Config
	log *zap.Logger
	// rdb is the client every part of the worker uses: the automatic
	// pipeliner over redisBase (see redisClient).
	rdb redis.UniversalClient
	// redisBase is the connection-owning client under rdb; closing it
	// flushes and closes rdb too.
	redisBase redis.UniversalClient
	gate      *redisgate.Gate // holds commands back while Redis is unusable
	// redisAnsweredAtStart is the result of New's Redis check.
	redisAnsweredAtStart bool
	// durability is how many replicas must hold a write before it is
	// acknowledged (REDIS_URL's wait_replicas, wait_timeout).
	durability redisurl.Durability
	// waiter makes the WAITs of durability, shared by concurrent callers.
	waiter   *redisurl.Waiter
	store    *store.Store
	clients  map[refonte.Mode]*refonte.Client
	limiters map[refonte.Mode]ratelimit.Limiter
	// shared are the Redis limiters behind limiters, told of a master
	// switch (see masterSwitched); stored when New returns (a switch
	// before that has no grant to correct).
	shared  atomic.Pointer[[]*ratelimit.RedisLimiter]
	handler *submit.Handler
	// reconciler polls tasks whose callback is overdue.
	reconciler *reconcile.Reconciler
	// keys pauses a mode whose key the API rejects (401) and probes it.
	keys *keyguard.Guard
	// callback is the POST /callback receiver.
	callback *callback.Handler
	// finalizing tracks batch finalizations handed off by afterTransition.
	finalizing sync.WaitGroup
	// inflight tracks running handlers; baseCtx is their parent context,
	// canceled once asynq's shutdown has handed back what still runs.
	inflight   sync.WaitGroup
	baseCtx    context.Context
	cancelBase context.CancelFunc
	srvs       []*asynq.Server
	cancelSrvs []context.CancelFunc // of the servers' base contexts (children of baseCtx)
	insp       *asynq.Inspector
	reg        *prometheus.Registry
	metrics    *metrics
	ln         net.Listener
	httpSrv    *http.Server
	// admin serves the runs console (nil: -admin-listen "").
	admin    *admin
	stopping atomic.Bool
}

// Run builds a Worker from cfg and runs it until ctx is canceled, then
// shuts it down gracefully. It returns nil after a clean shutdown.
func Run(ctx context.Context, cfg Config, logger *zap.Logger) error {
	w, err := New(cfg, logger)
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// New validates cfg, connects the Redis client, builds the API clients,
// limiters, store, metrics, handler, callback receiver, reconciler and
// asynq servers, and binds the HTTP
// listener (so a bad -listen fails here). Nothing runs until Run.
func New(cfg Config, logger *zap.Logger) (_ *Worker, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	w := &Worker{cfg: cfg, log: logger, reg: prometheus.NewRegistry(),
		clients: map[refonte.Mode]*refonte.Client{}, limiters: map[refonte.Mode]ratelimit.Limiter{}}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	if w.rdb, w.redisBase, w.gate, err = w.redisClient(cfg.RedisURL, cfg.Concurrency+cfg.prefetch()); err != nil {
		return nil, err
	}
	// Every acknowledgement's WAIT is shared with those arriving meanwhile.
	w.waiter = w.durability.NewWaiter(w.rdb)
	w.store = store.New(w.rdb, store.Options{KeptCallbackBytes: cfg.KeptCallbackBytes})
	if w.metrics, err = newMetrics(w.reg); err != nil {
		return nil, err
	}
	// refonte_redis_up tells the truth from the first scrape: asynq's own
	// health check only runs every 15 s.
	w.metrics.redisUp.Set(map[bool]float64{false: 0, true: 1}[w.redisAnsweredAtStart])

	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns = 2 * (cfg.Concurrency + 10)
	transport.MaxIdleConnsPerHost = cfg.Concurrency + 10
	httpClient := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	maxElapsed := defaults.Positive(cfg.ClientMaxElapsed, ClientMaxElapsed)
	var shared []*ratelimit.RedisLimiter
	defer func() { w.shared.Store(&shared) }()
	for _, m := range cfg.Modes() {
		key := cfg.Key(m)
		policy := refonte.RetryPolicy{MaxElapsed: maxElapsed}
		if cfg.RateLimit > 0 {
			lim, err := ratelimit.NewRedis(w.rdb, ratelimit.Config{
				Rate:  cfg.RateLimit,
				Burst: cfg.RateBurst,
				Name:  string(m) + ":" + ratelimit.KeyFingerprint(key.Reveal()),
			})
			if err != nil {
				return nil, fmt.Errorf("%w: %s rate limiter: %v", ErrConfig, m, err)
			}
			shared = append(shared, lim)
			metered := meteredLimiter{Limiter: lim, granted: w.metrics.limiterGranted.WithLabelValues(string(m))}
			w.limiters[m] = metered
			// The client's own retries go through the shared limiter too.
			policy.BeforeRetry = submit.RetryGate(metered, 0)
		}
		w.metrics.rateLimit.WithLabelValues(string(m)).Set(cfg.RateLimit)
		// Series an alert looks at exist from the start, at 0.
		for _, q := range jobs.Queues(m) {
			for _, kind := range []string{"failure", "rescheduled", "skip_retry"} {
				w.metrics.jobErrors.WithLabelValues(q, kind)
			}
		}
		c, err := refonte.NewClient(key.Reveal(),
			refonte.WithBaseURL(cfg.APIURL),
			refonte.WithHTTPClient(httpClient),
			refonte.WithLogger(logger.Named("refonte")),
			refonte.WithRetry(policy),
		)
		if err != nil {
			return nil, fmt.Errorf("%w: %s API client: %v", ErrConfig, m, err)
		}
		w.clients[m] = c
	}

	sm, err := submit.NewMetrics(w.reg)
	if err != nil {
		return nil, err
	}
	w.insp = asynq.NewInspectorFromRedisClient(w.rdb)
	keys, files := map[refonte.Mode]refonte.Secret{}, map[refonte.Mode]string{}
	for _, m := range cfg.Modes() {
		keys[m], files[m] = cfg.Key(m), cfg.KeyFile(m)
	}
	w.keys, err = keyguard.New(keyguard.Config{
		Store:         w.store,
		Queues:        w.insp,
		Clients:       w.clients,
		Keys:          keys,
		KeyFiles:      files,
		ProbeInterval: cfg.KeyProbeInterval,
		Logger:        logger.Named("keyguard"),
		Registerer:    w.reg,
	})
	if err != nil {
		return nil, err
	}
	w.handler, err = submit.New(submit.Options{
		Store:          w.store,
		Clients:        w.clients,
		Limiters:       w.limiters,
		LiveDailyLimit: cfg.LiveDailyLimit,
		MaxLimiterWait: MaxLimiterWait,
		CallbackURL:    cfg.CallbackURL,
		PausedRecheck:  cfg.PausedRecheck,
		Metrics:        sm,
		Keys:           w.keys,
		Logger:         logger.Named("submit"),
		MaxInFlight:    cfg.Concurrency,
	})
	if err != nil {
		return nil, err
	}
	if err := w.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "refonte_api_slots_in_use",
		Help: "Jobs holding one of this worker's -concurrency API slots (waiting on the rate limiter or calling the API).",
	}, func() float64 { return float64(w.handler.InFlight()) })); err != nil {
		return nil, err
	}
	w.callback, err = callback.NewHandler(callback.Config{
		Store:         w.store,
		AuthKey:       cfg.CallbackAuthKey,
		Logger:        logger.Named("callback"),
		Registerer:    w.reg,
		MaxConcurrent: cfg.MaxCallbacks,
		OnTransition:  w.afterTransition,
		Durable:       w.durable,
	})
	if err != nil {
		return nil, fmt.Errorf("worker: callback receiver: %w", err)
	}
	recLimiters := map[refonte.Mode]ratelimit.Limiter{}
	for _, m := range cfg.Modes() {
		recLimiters[m] = w.limiters[m]
		if recLimiters[m] == nil {
			recLimiters[m] = unlimited{}
		}
	}
	w.reconciler, err = reconcile.New(reconcile.Config{
		Store:        w.store,
		Clients:      w.clients,
		Limiters:     recLimiters,
		Grace:        cfg.CallbackGrace,
		Logger:       logger.Named("reconcile"),
		Registerer:   w.reg,
		OnTransition: w.afterTransition,
	})
	if err != nil {
		return nil, fmt.Errorf("worker: reconciler: %w", err)
	}
	w.baseCtx, w.cancelBase = context.WithCancel(context.Background())
	// asynq runs Concurrency + prefetch jobs; the handler lets Concurrency
	// of them at the API at once (submit.Options.MaxInFlight).
	slots := cfg.Concurrency + cfg.prefetch()
	lane := lowLaneSlots(slots)
	sizes := splitConcurrency(slots-lane, cfg.Fetchers)
	if lane > 0 {
		sizes = append(sizes, lane)
	}
	// One memory of empty queues for all the servers: a queue one loop
	// found empty is skipped by the others too.
	fetch := newEmptyQueues(w.rdb, EmptyQueueTTL)
	for i, n := range sizes {
		// Each server's jobs get their own parent context (a child of
		// baseCtx): asynq derives every job's context from it, and one
		// parent shared by all jobs made its lock a point of contention.
		sctx, cancel := context.WithCancel(w.baseCtx)
		w.cancelSrvs = append(w.cancelSrvs, cancel)
		lowFirst := lane > 0 && i == len(sizes)-1
		w.srvs = append(w.srvs, asynq.NewServerFromRedisClient(fetch, w.asynqConfig(sctx, n, lowFirst)))
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("%w: -listen %s: %v", ErrConfig, cfg.Listen, err)
	}
	maxConns := cmp.Or(cfg.MaxConnections, AutoMaxConnections())
	capped := newCapListener(ln, maxConns, HealthReserve)
	w.ln = capped
	if err := w.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "refonte_http_connections",
		Help: "Connections open on -listen (at most -max-connections, plus a reserve for health checks).",
	}, func() float64 { return float64(capped.Open()) })); err != nil {
		return nil, err
	}
	w.httpSrv = NewHTTPServer(reserveOnly(w.routes()), logger.Named("http"))
	w.httpSrv.ConnContext = connContext
	if w.admin, err = w.newAdmin(); err != nil {
		return nil, err
	}
	return w, nil
}

// Addr returns the address the HTTP server listens on.
func (w *Worker) Addr() net.Addr { return w.ln.Addr() }

// splitConcurrency splits the worker's concurrency over its asynq servers.
// One asynq server fetches jobs in a single loop, one Redis round trip per
// job, and a job's slot is only refilled by that loop; in a busy process
// (handlers, callbacks) the loop's round trips slow down and slots stay
// empty. So the worker runs several servers side by side, each with its
// own loop (measured with BenchmarkEndToEnd at concurrency 50: about 2,270
// rows/s with 3 servers, 2,700–2,850 with 12 to 25). fetchers <= 0 picks
// one server per 4 of concurrency, at most 16.
func splitConcurrency(concurrency, fetchers int) []int {
	fetchers = defaults.Positive(fetchers, min(max(concurrency/4, 1), 16))
	fetchers = min(fetchers, concurrency)
	out := make([]int, fetchers)
	for i := range out {
		out[i] = concurrency / fetchers
		if i < concurrency%fetchers {
			out[i]++
		}
	}
	return out
}

// lowLaneSlots returns how many of a worker's job slots form its low
// lane (see jobs.LowLaneShare): none with a single slot (served strictly
// by priority), else one in jobs.LowLaneShare, at least one.
func lowLaneSlots(slots int) int {
	if slots < 2 {
		return 0
	}
	return max(slots/jobs.LowLaneShare, 1)
}

// queuePriorities returns the asynq queue priorities of one of the
// worker's asynq servers (StrictPriority: a queue is served only while
// every queue of a higher number is empty). Every server serves live
// before test, and within a mode high, normal, then low; the low lane
// (lowFirst) takes the mode's low jobs first, then high, then normal, so
// that low runs advance while higher ones are queued (weighted, see
// jobs.LowLaneShare). Only the modes the worker holds a key for are
// served.
func queuePriorities(modes []refonte.Mode, lowFirst bool) map[string]int {
	queues := map[string]int{}
	n := 0
	for _, m := range modes {
		n += len(jobs.Queues(m))
	}
	for _, m := range modes { // live (first) gets the higher priorities
		qs := jobs.Queues(m)
		if lowFirst {
			qs = append([]string{jobs.PriorityQueue(m, jobs.PriorityLow)}, qs[:len(qs)-1]...)
		}
		for _, q := range qs {
			queues[q] = n
			n--
		}
	}
	return queues
}

// asynqConfig sets every asynq.Config field the worker depends on, for one
// asynq server of the given concurrency; lowFirst makes it the low lane
// (see queuePriorities).
func (w *Worker) asynqConfig(base context.Context, concurrency int, lowFirst bool) asynq.Config {
	return asynq.Config{
		Concurrency: concurrency,
		Queues:      queuePriorities(w.cfg.Modes(), lowFirst),
		// Live jobs always go before test jobs, and a mode's high jobs
		// before its normal and low ones (but in the low lane).
		StrictPriority: true,
		// A reschedule (rate limit, 429 cooldown, paused) is not a failure and
		// does not use up a retry; failures back off ~1 s, 2 s, 4 s … 5 min.
		IsFailure:      submit.IsFailure,
		RetryDelayFunc: submit.RetryDelay,
		// In-flight jobs get this long on SIGTERM, then go back to the queue
		// (asynq's default is 8 s).
		ShutdownTimeout: w.cfg.ShutdownTimeout,
		// Handlers run under a context Run cancels after the shutdown.
		BaseContext: func() context.Context { return base },
		// Rescheduled jobs come back within a second (asynq's default is 5 s).
		DelayedTaskCheckInterval: time.Second,
		// A fetch loop that found every queue empty sleeps 0.5–1.5 times
		// this (asynq's default, 1 s, left an idle worker's loops waking
		// one by one over 1.5 s once a batch arrived): new jobs are picked
		// up within ~0.15 s, and the idle loops' Redis calls stay bounded
		// by emptyQueues (a queue found empty is asked again at most once
		// per EmptyQueueTTL per worker, whatever the number of loops).
		// 2026-12-04: `bench/ab.sh a461a6f 8c4af76 real 4` 2,951 → 3,206
		// rows/s (CPU per row unchanged); an idle worker (-concurrency 50)
		// sends Redis 316 commands a second instead of 262 (0.71 % of a
		// core instead of 0.64 %): `bench/idle.sh a461a6f`, `bench/idle.sh 8c4af76`.
		TaskCheckInterval: EmptyQueueTTL,
		ErrorHandler:      asynq.ErrorHandlerFunc(w.handleError),
		HealthCheckFunc:   w.healthCheck,
		Logger: asynqLogger{SugaredLogger: w.log.Named("asynq").Sugar(), races: w.metrics.recoveryRaces,
			redisDown: func() bool { down, _ := w.gate.Down(); return down }},
		LogLevel: asynq.InfoLevel,
	}
}

// handleError counts and logs every error a job returned.
func (w *Worker) handleError(ctx context.Context, t *asynq.Task, err error) {
	q, _ := asynq.GetQueueName(ctx)
	kind := "failure"
	switch {
	case errors.Is(err, submit.ErrRescheduled):
		kind = "rescheduled"
	case errors.Is(err, asynq.SkipRetry):
		kind = "skip_retry"
	}
	w.metrics.jobErrors.WithLabelValues(q, kind).Inc()
	if kind == "failure" {
		id, _ := asynq.GetTaskID(ctx)
		n, _ := asynq.GetRetryCount(ctx)
		w.log.Debug("job error; asynq retries it", zap.String("queue", q), zap.String("asynq_id", id),
			zap.Int("retried", n), zap.Error(err))
	}
}

// healthCheck records asynq's periodic Redis check (New records the first).
func (w *Worker) healthCheck(err error) {
	if err != nil {
		w.metrics.redisUp.Set(0)
		w.log.Warn("redis health check failed; /readyz reports it and jobs wait", zap.Error(err))
		return
	}
	w.metrics.redisUp.Set(1)
}

// Run starts the asynq server, the HTTP server, the reconciler and the
// stats poller, and blocks until ctx is canceled or a component fails.
// Then it stops fetching jobs, waits up to ShutdownTimeout for in-flight
// jobs (the rest go back to the queue), stops the HTTP server (callbacks
// are served until then) and releases everything. It returns nil after a
// shutdown caused by ctx.
func (w *Worker) Run(ctx context.Context) error {
	defer w.close()
	mux := asynq.NewServeMux()
	mux.Handle(jobs.TypeSubmit, asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		w.inflight.Add(1)
		defer w.inflight.Done()
		if err := w.handler.ProcessTask(ctx, t); err != nil {
			return err
		}
		// The job is acknowledged (asynq marks it done) only once what it
		// recorded would survive a failover; else asynq runs it again,
		// which finds the row recorded and waits again.
		return w.durable(ctx)
	}))
	mux.Handle(jobs.TypeCancelTask, asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		w.inflight.Add(1)
		defer w.inflight.Done()
		return w.handler.ProcessCancel(ctx, t)
	}))
	mux.Handle(jobs.TypeFinalizeBatch, asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		w.inflight.Add(1)
		defer w.inflight.Done()
		return w.handler.ProcessFinalize(ctx, t)
	}))
	for i, srv := range w.srvs {
		if err := srv.Start(mux); err != nil {
			for _, started := range w.srvs[:i] {
				started.Shutdown()
			}
			return fmt.Errorf("worker: start asynq server: %w", err)
		}
	}
	modes := make([]string, 0, 2)
	for _, m := range w.cfg.Modes() {
		modes = append(modes, string(m))
	}
	w.log.Info("worker started", zap.Strings("modes", modes), zap.Int("concurrency", w.cfg.Concurrency),
		zap.String("listen", w.Addr().String()), zap.Float64("rate_limit", w.cfg.RateLimit),
		zap.Int("rate_burst", w.cfg.RateBurst), zap.Int64("live_daily_limit", w.cfg.LiveDailyLimit))
	if a := w.AdminAddr(); a != nil {
		w.log.Info("runs console", zap.String("url", "http://"+a.String()+"/runs"), zap.Bool("token", w.cfg.AdminToken != ""))
	}

	loopCtx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	errc := make(chan error, 4)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := w.httpSrv.Serve(w.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("worker: http server: %w", err)
		}
	})
	wg.Go(func() {
		if err := w.serveAdmin(); err != nil {
			errc <- err
		}
	})
	wg.Go(func() { w.pollStats(loopCtx) })
	wg.Go(func() { w.keys.Run(loopCtx) })
	wg.Go(func() { w.sampleTimelines(loopCtx) })
	wg.Go(func() {
		if err := w.runReconciler(loopCtx); err != nil && loopCtx.Err() == nil {
			errc <- fmt.Errorf("worker: reconciler: %w", err)
		}
	})

	var runErr error
	select {
	case <-ctx.Done():
		w.log.Info("shutting down: no new jobs; waiting for in-flight ones",
			zap.Duration("shutdown_timeout", w.cfg.ShutdownTimeout))
	case runErr = <-errc:
		w.log.Error("worker component failed; shutting down", zap.Error(runErr))
	}
	w.stopping.Store(true)
	// Nothing waits for Redis any more: commands held back by the gate
	// fail, so asynq's loops can stop.
	w.gate.Close()
	// Jobs fetched ahead of an API slot go back to the queue at once.
	w.handler.Drain()
	// Stop fetching; in-flight jobs finish or go back to the queue (all
	// servers at once, so the whole takes at most ShutdownTimeout).
	var sd sync.WaitGroup
	for _, srv := range w.srvs {
		sd.Go(srv.Shutdown)
	}
	sd.Wait()
	// Jobs still running after ShutdownTimeout were handed back to the
	// queue by asynq; stop their handlers (another worker redoes them, and
	// unique_id makes an overlapping create harmless) before Redis closes.
	w.cancelBase()
	if !waitGroupWithin(&w.inflight, handlerStopTimeout) {
		w.log.Warn("some handlers did not return after shutdown", zap.Duration("waited", handlerStopTimeout))
	}
	stopLoops()
	hctx, hcancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
	if err := w.httpSrv.Shutdown(hctx); err != nil {
		w.log.Warn("http server shutdown", zap.Error(err))
	}
	hcancel()
	w.shutdownAdmin()
	wg.Wait()
	w.finalizing.Wait()
	w.log.Info("worker stopped")
	return runErr
}

// runReconciler runs the reconciler until ctx ends: every few seconds it
// polls (GET /task/{id}, at low priority under the shared rate limit) the
// jobs submitted longer than -callback-grace ago that had no callback, and
// completes or fails them from the API's answer.
func (w *Worker) runReconciler(ctx context.Context) error {
	return w.reconciler.Run(ctx)
}

// afterTransition is the OnTransition hook of the callback receiver and
// the reconciler: when a transition leaves runs with every row submitted,
// it finalizes their batches in the background so the callback is
// answered at once (Run waits for these before it returns).
func (w *Worker) afterTransition(ctx context.Context, tr store.Transition) {
	if len(tr.RunsAllSubmitted) == 0 {
		return
	}
	w.finalizing.Go(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		w.handler.AfterTransition(ctx, tr)
	})
}

// meteredLimiter counts the slots a shared limiter grants this process
// (refonte_limiter_granted_total): their rate ÷ refonte_rate_limit, summed
// over the pods, is how saturated the API's rate limit is.
type meteredLimiter struct {
	ratelimit.Limiter
	granted prometheus.Counter
}

// Wait waits for a slot and counts it when granted.
func (l meteredLimiter) Wait(ctx context.Context) error {
	err := l.Limiter.Wait(ctx)
	if err == nil {
		l.granted.Inc()
	}
	return err
}

// Reserve takes a free slot, if any, and counts it.
func (l meteredLimiter) Reserve(ctx context.Context) (time.Duration, error) {
	d, err := l.Limiter.Reserve(ctx)
	if err == nil && d == 0 {
		l.granted.Inc()
	}
	return d, err
}

// unlimited is the limiter of a worker run with -rate-limit 0: the
// reconciler needs one per mode.
type unlimited struct{}

func (unlimited) Wait(context.Context) error                     { return nil }
func (unlimited) Reserve(context.Context) (time.Duration, error) { return 0, nil }
func (unlimited) Cooldown(context.Context, time.Duration) error  { return nil }

// waitGroupWithin waits for wg for at most d and reports whether it finished.
func waitGroupWithin(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// close releases what New opened (safe on a partly built Worker).
func (w *Worker) close() {
	if w.cancelBase != nil {
		w.cancelBase()
	}
	for _, cancel := range w.cancelSrvs {
		cancel()
	}
	if w.ln != nil {
		_ = w.ln.Close()
	}
	if w.admin != nil {
		w.admin.stop()
		_ = w.admin.ln.Close()
	}
	// The inspector shares w.rdb: nothing of its own to close.
	if w.redisBase != nil {
		_ = w.redisBase.Close()
	}
}

// RedisProtocol is the RESP version the worker speaks to Redis. RESP2:
// nothing here uses RESP3 features, and go-redis, on a RESP3 connection,
// looks for pending push notifications before every command (measured:
// about 5 % of the worker's CPU at thousands of rows per second).
const RedisProtocol = 2

// FailoverSweepDelay is how long after a Redis master switch the
// reconciler checks, at the API, every task submitted before the switch.
const FailoverSweepDelay = 2 * time.Second

// masterSwitched follows a Redis failover announced by a sentinel, before
// any command goes to the new master. The old master may have taken
// writes after its replicas stopped following it (discarded once it is
// demoted). Among them, the shared rate limits' last bookings: the new
// master's older state would grant a burst the API has no room for, so
// each limiter drops its burst credit on its next grant. And completions
// whose callbacks were already answered: once the switch has settled, the
// reconciler polls every task submitted before it, whatever its grace.
func (w *Worker) masterSwitched(old, new string) {
	at := time.Now()
	if shared := w.shared.Load(); shared != nil {
		for _, l := range *shared {
			l.DropBurst()
		}
	}
	w.log.Warn("redis master switched; following it and checking the tasks submitted before the switch at the API",
		zap.String("old", old), zap.String("new", new))
	time.AfterFunc(FailoverSweepDelay, func() {
		if w.reconciler != nil {
			w.reconciler.Sweep(at)
		}
	})
}

// durable returns once the writes made so far would survive a Redis
// failover (the URL's wait_replicas replicas hold them), or an error.
func (w *Worker) durable(ctx context.Context) error {
	if err := w.waiter.Wait(ctx); err != nil {
		w.metrics.notDurable.Inc()
		return err
	}
	return nil
}

// StartupRedisTimeout bounds the Redis check of New.
const StartupRedisTimeout = 5 * time.Second

// redisClient builds the one Redis client shared by asynq, the store and
// the limiters, with a pool sized for the jobs it runs at once, and checks
// it: a Redis refusing the URL's credentials is a configuration error (a
// Redis not answering yet is not: /readyz reports it and jobs wait).
// Commands go through a redisgate.Gate, which holds them back while Redis
// is unusable (a password rotated under a running worker, an outage).
//
// The client returned first is go-redis' automatic pipeliner
// (UniversalClient.AutoPipeline, blocking face, default options) over the
// second, which owns the connections: asynq's fetches and acks, the
// store's transitions and the limiters of all the worker's goroutines
// share pipelines instead of one round trip each (each command, each script
// still runs alone and atomically in Redis; blocking commands, pub/sub and
// explicit pipelines go to the client underneath). It replaced this
// project's own pipelining hook (internal/redisbatch) for issue #16:
// `BENCH_ROWS=5000 bench/ab.sh 8e30bd6~1 8e30bd6 BenchmarkEndToEnd 4` (the
// same change measured on 578501e) gave
// 1,496 → 1,882 rows/s and 599 → 560 µs of test-binary CPU per row (load
// average 14–17 on 2 cores): as good or better, with 465 lines fewer.
func (w *Worker) redisClient(raw string, concurrency int) (redis.UniversalClient, redis.UniversalClient, *redisgate.Gate, error) {
	u, err := redisurl.Parse(raw)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %s: %v", ErrConfig, EnvRedisURL, err)
	}
	w.durability = u.Durability()
	rdb := u.NewClient(redisurl.Tuning{PoolSize: concurrency + 20, Protocol: RedisProtocol,
		OnMasterSwitch: w.masterSwitched})
	ctx, cancel := context.WithTimeout(context.Background(), StartupRedisTimeout)
	defer cancel()
	err = rdb.Ping(ctx).Err()
	w.redisAnsweredAtStart = err == nil
	if err != nil {
		if redis.IsAuthError(err) {
			_ = rdb.Close()
			return nil, nil, nil, fmt.Errorf("%w: %s: Redis at %s refuses the credentials (%v): check the user and password in %s",
				ErrConfig, EnvRedisURL, u, err, EnvRedisURL)
		}
		w.log.Error("redis does not answer yet; /readyz reports it and jobs wait", zap.String("redis", u.String()), zap.Error(err))
	}
	gate := redisgate.New(redisgate.Options{Logger: w.log.Named("redis"), OnChange: func(up bool) {
		if w.metrics != nil {
			w.metrics.redisUp.Set(map[bool]float64{false: 0, true: 1}[up])
		}
	}})
	rdb.AddHook(gate)
	ap, err := rdb.AutoPipeline()
	if err != nil {
		_ = rdb.Close()
		return nil, nil, nil, fmt.Errorf("%w: %s: automatic pipelining: %v", ErrConfig, EnvRedisURL, err)
	}
	return ap, rdb, gate, nil
}
