package submit

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/refonte-ai/refonte-batch/internal/promreg"
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
	// OutcomeCanceled: the job's run was canceled before its create (no API call).
	OutcomeCanceled = "canceled"
	// OutcomeOperatorPaused: the job's run is paused by its operator: rescheduled.
	OutcomeOperatorPaused = "operator_paused"
)

// Result labels of the API cancels counter (POST /task/{id}/cancel).
const (
	CancelCanceled        = "canceled"         // the API canceled the task
	CancelAlreadyTerminal = "already_terminal" // 400: finished first; its real result is kept
	CancelNotFound        = "not_found"        // 404: left to the reconciler
	CancelError           = "error"            // another error: retried
	CancelSkipped         = "skipped"          // a live run needs the task again, or it is no longer pending
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
	// APICancels counts the worker's POST /task/{id}/cancel calls by mode and result.
	APICancels *prometheus.CounterVec
}

// NewMetrics creates the handler's collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	f := promreg.With(reg)
	m := &Metrics{
		Submissions: f.CounterVec("refonte_submissions_total", "Submit job deliveries by mode and outcome.", "mode", "outcome"),
		APILatency:  f.HistogramVec("refonte_api_request_duration_seconds", "Duration of Refonte API calls made by the submit handler (client retries included).", prometheus.ExponentialBuckets(0.005, 2, 14), "mode", "op"),
		LimiterWait: f.HistogramVec("refonte_limiter_wait_seconds", "Time spent waiting on the shared rate limiter before a create.", []float64{0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5}, "mode"),
		LivePaused:  f.Gauge("refonte_live_daily_limit_reached", "1 while the live daily spend cap was the last answer this worker got, else 0."),
		APICancels:  f.CounterVec("refonte_task_cancels_total", "POST /task/{id}/cancel calls of enqueue cancel -tasks, by mode and result (canceled, already_terminal, not_found, error, skipped).", "mode", "result"),
	}
	if err := f.Err(); err != nil {
		return nil, err
	}
	// The API cancel counters exist at 0 from the start, so that
	// dashboards and alerts (rate, increase) see them before the first
	// cancel. (Canceled rows are counted in Redis by the transitions
	// themselves: refonte_rows_canceled_total is the worker's, see
	// store.CancelCounts.)
	for _, mode := range []refonte.Mode{refonte.ModeTest, refonte.ModeLive} {
		for _, r := range []string{CancelCanceled, CancelAlreadyTerminal, CancelNotFound, CancelError, CancelSkipped} {
			m.APICancels.WithLabelValues(string(mode), r)
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

func (m *Metrics) apiCancel(mode refonte.Mode, result string) {
	if m != nil {
		m.APICancels.WithLabelValues(string(mode), result).Inc()
	}
}
