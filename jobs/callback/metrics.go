package callback

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/refonte-ai/refonte-batch/internal/promreg"
)

// metrics are the handler's collectors. A nil *metrics records nothing.
type metrics struct {
	byOutcome map[string]prometheus.Counter
	duration  prometheus.Histogram
	inFlight  prometheus.Gauge
	dropped   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	f := promreg.With(reg)
	total := f.CounterVec("refonte_callbacks_total", "Callback deliveries received on POST /callback, by outcome.", "outcome")
	duration := f.Histogram("refonte_callback_duration_seconds", "Time to handle one callback delivery, from request to answer.", []float64{0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1})
	inFlight := f.Gauge("refonte_callbacks_in_flight", "Authenticated callbacks being read or recorded (at most -max-callbacks).")
	dropped := f.Counter("refonte_kept_callbacks_dropped_total", "Kept callbacks (unknown or conflicting) dropped from Redis to stay within -kept-callbacks-bytes and the count cap.")
	if err := f.Err(); err != nil {
		return nil, err
	}
	m := &metrics{byOutcome: make(map[string]prometheus.Counter), duration: duration, inFlight: inFlight, dropped: dropped}
	for _, o := range []string{OutcomeMatched, OutcomeDuplicate, OutcomePending, OutcomeUnknown, OutcomeConflict,
		OutcomeUnauthorized, OutcomeBadRequest, OutcomeTooLarge, OutcomeBadMethod, OutcomeError,
		OutcomeOverloaded, OutcomeTimeout} {
		m.byOutcome[o] = total.WithLabelValues(o)
	}
	return m, nil
}

func (m *metrics) observe(outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.byOutcome[outcome].Inc()
	m.duration.Observe(d.Seconds())
}

// admitted adds d to the callbacks in flight.
func (m *metrics) admitted(d float64) {
	if m != nil {
		m.inFlight.Add(d)
	}
}

// keptDropped counts kept callbacks the store dropped.
func (m *metrics) keptDropped(n int64) {
	if m != nil && n > 0 {
		m.dropped.Add(float64(n))
	}
}
