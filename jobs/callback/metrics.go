package callback

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the handler's collectors. A nil *metrics records nothing.
type metrics struct {
	byOutcome map[string]prometheus.Counter
	duration  prometheus.Histogram
	inFlight  prometheus.Gauge
	dropped   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	total := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "refonte_callbacks_total",
		Help: "Callback deliveries received on POST /callback, by outcome.",
	}, []string{"outcome"})
	duration := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "refonte_callback_duration_seconds",
		Help:    "Time to handle one callback delivery, from request to answer.",
		Buckets: []float64{0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
	})
	inFlight := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "refonte_callbacks_in_flight",
		Help: "Authenticated callbacks being read or recorded (at most -max-callbacks).",
	})
	dropped := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "refonte_kept_callbacks_dropped_total",
		Help: "Kept callbacks (unknown or conflicting) dropped from Redis to stay within -kept-callbacks-bytes and the count cap.",
	})
	var err error
	if inFlight, err = register(reg, inFlight); err != nil {
		return nil, err
	}
	if dropped, err = register(reg, dropped); err != nil {
		return nil, err
	}
	if total, err = register(reg, total); err != nil {
		return nil, err
	}
	if duration, err = register(reg, duration); err != nil {
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

// register registers c, or returns the identical collector already
// registered (several handlers on one registry share their metrics).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
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
