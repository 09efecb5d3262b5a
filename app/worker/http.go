package worker

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/jobs"
)

// metrics are the worker's own collectors (the submit handler and the
// callback receiver register theirs on the same registry).
type metrics struct {
	queueTasks *prometheus.GaugeVec
	liveSpend  prometheus.Gauge
	liveLimit  prometheus.Gauge
	jobErrors  *prometheus.CounterVec
	redisUp    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		queueTasks: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "refonte_queue_tasks",
			Help: "Tasks in each served asynq queue by state (pending, active, scheduled, retry, archived), polled.",
		}, []string{"queue", "state"}),
		liveSpend: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "refonte_live_daily_spend",
			Help: "Live tasks reserved under the daily cap for the current UTC day (all workers), polled.",
		}),
		liveLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "refonte_live_daily_limit",
			Help: "The live daily cap of this worker (0 = no cap).",
		}),
		jobErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refonte_job_errors_total",
			Help: "Errors returned by jobs, by queue and kind (failure, rescheduled, skip_retry).",
		}, []string{"queue", "kind"}),
		redisUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "refonte_redis_up",
			Help: "1 when asynq's last Redis health check passed.",
		}),
	}
	for _, c := range []prometheus.Collector{m.queueTasks, m.liveSpend, m.liveLimit, m.jobErrors, m.redisUp,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
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

// ready answers 200 when Redis answers a PING within ReadyTimeout and the
// worker is not shutting down, else 503.
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
		q := jobs.Queue(m)
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
	w.metrics.liveLimit.Set(float64(w.handler.LiveDailyLimit()))
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
