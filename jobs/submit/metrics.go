package submit

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/refonte-ai/refonte-batch/refonte"
)

// Outcome labels of the submissions counter.
const (
	OutcomeSubmitted   = "submitted"    // task created
	OutcomeDuplicate   = "duplicate"    // 409 resolved to the existing task
	OutcomeFailed      = "failed"       // permanent error or retries exhausted: job failed
	OutcomeRetry       = "retry"        // transient error: asynq retries
	OutcomeRateLimited = "rate_limited" // limiter wait too long: rescheduled
	OutcomeCooldown    = "cooldown"     // 429: shared cooldown, rescheduled
	OutcomePaused      = "paused"       // live daily cap reached: rescheduled
	OutcomeKeyRejected = "key_rejected" // the mode's key is rejected (401): rescheduled until it works
	OutcomeNoop        = "noop"         // redelivery of a submitted or terminal job
	OutcomeDropped     = "dropped"      // undecodable payload or no job record
)

// Metrics are the handler's Prometheus collectors. A nil *Metrics records nothing.
type Metrics struct {
	// Submissions counts handled deliveries by mode and outcome.
	Submissions *prometheus.CounterVec
	// APILatency observes API calls by mode and operation (create, find, finalize, clear_unique_id).
	APILatency *prometheus.HistogramVec
	// LimiterWait observes the time spent waiting on the shared limiter, by mode.
	LimiterWait *prometheus.HistogramVec
	// LivePaused is 1 while this worker last saw the live daily cap reached, else 0.
	LivePaused prometheus.Gauge
}

// NewMetrics creates the handler's collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Submissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refonte_submissions_total",
			Help: "Submit job deliveries by mode and outcome.",
		}, []string{"mode", "outcome"}),
		APILatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "refonte_api_request_duration_seconds",
			Help:    "Duration of Refonte API calls made by the submit handler (client retries included).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"mode", "op"}),
		LimiterWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "refonte_limiter_wait_seconds",
			Help:    "Time spent waiting on the shared rate limiter before a create.",
			Buckets: []float64{0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5},
		}, []string{"mode"}),
		LivePaused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "refonte_live_daily_limit_reached",
			Help: "1 while the live daily spend cap was the last answer this worker got, else 0.",
		}),
	}
	for _, c := range []prometheus.Collector{m.Submissions, m.APILatency, m.LimiterWait, m.LivePaused} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) outcome(mode refonte.Mode, outcome string) {
	if m != nil {
		m.Submissions.WithLabelValues(string(mode), outcome).Inc()
	}
}

func (m *Metrics) api(mode refonte.Mode, op string, start time.Time) {
	if m != nil {
		m.APILatency.WithLabelValues(string(mode), op).Observe(time.Since(start).Seconds())
	}
}

func (m *Metrics) wait(mode refonte.Mode, d time.Duration) {
	if m != nil {
		m.LimiterWait.WithLabelValues(string(mode)).Observe(d.Seconds())
	}
}

func (m *Metrics) paused(on bool) {
	if m != nil {
		v := 0.0
		if on {
			v = 1
		}
		m.LivePaused.Set(v)
	}
}
