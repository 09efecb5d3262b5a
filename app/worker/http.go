package worker

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/internal/buildinfo"
	"github.com/refonte-ai/refonte-batch/internal/promreg"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// metrics are the worker's own collectors (the submit handler and the
// callback receiver register theirs on the same registry).
type metrics struct {
	queueTasks *prometheus.GaugeVec
	liveSpend  prometheus.Gauge
	liveLimit  prometheus.Gauge
	jobErrors  *prometheus.CounterVec
	redisUp    prometheus.Gauge
	// runs counts the newest StatsRuns runs by state; runRows holds the
	// row counters of each unfinished run among them (the same on every
	// pod: query them with max()).
	runs    *prometheus.GaugeVec
	runRows *prometheus.GaugeVec
	// rateLimit is the configured -rate-limit per mode; limiterGranted
	// counts the slots the shared limiter granted this process (creates,
	// their in-client retries and reconciler polls).
	rateLimit      *prometheus.GaugeVec
	limiterGranted *prometheus.CounterVec
	notDurable     prometheus.Counter
	opPaused       prometheus.Gauge
	// recoveryRaces counts asynq recoverers finding a lease-expired task
	// already moved by another (see asynqLogger).
	recoveryRaces prometheus.Counter
	// canceled is refonte_rows_canceled_total, read from Redis.
	canceled *cancelCounts
}

// cancelCounts exports refonte_rows_canceled_total{mode, stage}: the rows
// moved to canceled, counted system-wide in Redis by the transitions
// themselves (store.CancelCounts), whoever made them (any worker, enqueue
// cancel's sweep). Every pod reports the same value (query with max()).
// It holds the last values the stats poller read; every series exists at
// 0 from the start.
type cancelCounts struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	rows []store.CancelCount
}

func newCancelCounts() *cancelCounts {
	c := &cancelCounts{desc: prometheus.NewDesc("refonte_rows_canceled_total",
		"Rows moved to canceled, all workers and enqueue cancel (read from Redis), by mode and stage (before_submit: no API call; after_submit: task canceled at the API).",
		[]string{"mode", "stage"}, nil)}
	for _, m := range []refonte.Mode{refonte.ModeTest, refonte.ModeLive} {
		for _, st := range []string{store.CancelBeforeSubmit, store.CancelAfterSubmit} {
			c.rows = append(c.rows, store.CancelCount{Mode: m, Stage: st})
		}
	}
	return c
}

// set replaces the values with a fresh read.
func (c *cancelCounts) set(rows []store.CancelCount) {
	c.mu.Lock()
	c.rows = rows
	c.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (c *cancelCounts) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *cancelCounts) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.rows {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(r.Rows), string(r.Mode), r.Stage)
	}
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	f := promreg.With(reg)
	m := &metrics{
		queueTasks:     f.GaugeVec("refonte_queue_tasks", "Tasks in each served asynq queue (every mode and priority) by state (pending, active, scheduled, retry, archived), polled.", "queue", "state"),
		liveSpend:      f.Gauge("refonte_live_daily_spend", "Live tasks reserved under the daily cap for the current UTC day (all workers), polled."),
		liveLimit:      f.Gauge("refonte_live_daily_limit", "The live daily cap of this worker (0 = no cap)."),
		jobErrors:      f.CounterVec("refonte_job_errors_total", "Errors returned by jobs, by queue and kind (failure, rescheduled, skip_retry).", "queue", "kind"),
		redisUp:        f.Gauge("refonte_redis_up", "1 when the last Redis check (at start, then asynq's health check every 15 s) passed, else 0."),
		runs:           f.GaugeVec("refonte_runs", "Runs by state among the newest "+strconv.Itoa(StatsRuns)+" (all workers' view, polled).", "state"),
		runRows:        f.GaugeVec("refonte_run_rows", "Rows of each unfinished run by state: valid, invalid, submitted, completed, failed, canceled, remaining (valid rows not yet terminal); polled.", "run", "mode", "state"),
		rateLimit:      f.GaugeVec("refonte_rate_limit", "The configured -rate-limit: API calls per second per mode shared by all workers (0 = no limit).", "mode"),
		limiterGranted: f.CounterVec("refonte_limiter_granted_total", "Slots the shared rate limiter granted this worker (creates, their retries, reconciler polls), by mode.", "mode"),
		notDurable:     f.Counter("refonte_redis_not_durable_total", "Acknowledgements held back (callback answered 503, job run again) because fewer Redis replicas than wait_replicas held the write within wait_timeout."),
		recoveryRaces:  f.Counter("refonte_asynq_recovery_races_total", "asynq's NOT FOUND answers of a lost write (logged at debug level): a lease-expired task (a worker died, or an acknowledgement was lost in a Redis failover) that one of this worker's asynq recoverers found already moved back to the queue by another, or a finished task this worker could not acknowledge because a failover took it out of the active list (it runs again and resolves by 409)."),
		opPaused:       f.Gauge("refonte_runs_paused_by_operator", "Runs held by enqueue pause (all workers), polled."),
		canceled:       promreg.Register(f, newCancelCounts()),
	}
	for _, c := range []prometheus.Collector{buildinfo.Read().Collector(),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		promreg.Register(f, c)
	}
	return m, f.Err()
}

// routes returns the worker's HTTP handler.
func (w *Worker) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /callback", w.callback)
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = rw.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", w.ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(w.reg, promhttp.HandlerOpts{Registry: w.reg}))
	return mux
}

// ready answers 200 when Redis answers a PING within ReadyTimeout, the
// worker is not shutting down and at least one of its modes' keys works
// (see package keyguard), else 503 saying why.
func (w *Worker) ready(rw http.ResponseWriter, r *http.Request) {
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if w.stopping.Load() {
		http.Error(rw, "shutting down", http.StatusServiceUnavailable)
		return
	}
	if down, err := w.gate.Down(); down {
		reason := "redis unreachable"
		if redis.IsAuthError(err) {
			reason = "redis refuses the password of REDIS_URL"
		}
		http.Error(rw, reason, http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
	defer cancel()
	if err := w.rdb.Ping(ctx).Err(); err != nil {
		http.Error(rw, "redis unreachable", http.StatusServiceUnavailable)
		return
	}
	if why := w.keys.NotReady(); why != "" {
		// Every mode this worker serves waits for its key to work again.
		http.Error(rw, "paused: "+why, http.StatusServiceUnavailable)
		return
	}
	_, _ = rw.Write([]byte("ok\n"))
}

// pollStats refreshes the queue depth and live spend gauges every
// StatsInterval until ctx ends.
func (w *Worker) pollStats(ctx context.Context) {
	w.metrics.liveLimit.Set(float64(w.handler.LiveDailyLimit()))
	t := time.NewTicker(StatsInterval)
	defer t.Stop()
	for {
		w.refreshStats(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *Worker) refreshStats(ctx context.Context) {
	for _, m := range w.cfg.Modes() {
		for _, q := range jobs.Queues(m) { // every priority's queue
			info, err := w.insp.GetQueueInfo(q)
			if err != nil {
				// A queue nobody enqueued to yet does not exist: report zeros.
				info = nil
			}
			set := func(state string, n int) { w.metrics.queueTasks.WithLabelValues(q, state).Set(float64(n)) }
			if info == nil {
				for _, s := range []string{"pending", "active", "scheduled", "retry", "archived"} {
					set(s, 0)
				}
				continue
			}
			set("pending", info.Pending)
			set("active", info.Active)
			set("scheduled", info.Scheduled)
			set("retry", info.Retry)
			set("archived", info.Archived)
		}
	}
	w.metrics.liveLimit.Set(float64(w.handler.LiveDailyLimit()))
	w.refreshRuns(ctx)
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	if n, err := w.store.OperatorPausedRuns(pctx); err == nil {
		w.metrics.opPaused.Set(float64(n))
	}
	if rows, err := w.store.CancelCounts(pctx); err == nil {
		w.metrics.canceled.set(rows)
	}
	cancel()
	if w.cfg.LiveKey != "" {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		n, err := w.store.LiveSpend(sctx, time.Now())
		cancel()
		if err != nil {
			w.log.Debug("reading the live daily spend failed", zap.Error(err))
			return
		}
		w.metrics.liveSpend.Set(float64(n))
	}
}

// runStates are the states refonte_runs always reports (0 when none).
var runStates = []store.RunState{store.RunEnqueuing, store.RunRunning, store.RunPaused, store.RunDone, store.RunAborted,
	store.RunCanceling, store.RunCanceled}

// refreshRuns sets refonte_runs and refonte_run_rows from the newest
// StatsRuns runs. Finished runs (done, aborted, canceled) drop out of
// refonte_run_rows.
func (w *Worker) refreshRuns(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	runs, err := w.store.ListRuns(sctx, StatsRuns)
	cancel()
	if err != nil {
		w.log.Debug("listing the runs failed", zap.Error(err))
		return
	}
	byState := map[string]int{}
	for _, s := range runStates {
		byState[string(s)] = 0
	}
	w.metrics.runRows.Reset()
	for _, r := range runs {
		byState[string(r.State)]++
		if r.State.Terminal() {
			continue
		}
		set := func(state string, n int64) {
			w.metrics.runRows.WithLabelValues(r.ID, string(r.Mode), state).Set(float64(n))
		}
		set("valid", r.Valid)
		set("invalid", r.Invalid)
		set("submitted", r.Submitted)
		set("completed", r.Completed)
		set("failed", r.Failed)
		set("canceled", r.Canceled)
		set("remaining", max(r.Valid-r.Terminal(), 0))
	}
	for s, n := range byState {
		w.metrics.runs.WithLabelValues(s).Set(float64(n))
	}
}
