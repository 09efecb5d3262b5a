package reconcile

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/refonte-ai/refonte-batch/refonte"
)

// metrics are the reconciler's collectors. A nil *metrics records nothing.
type metrics struct {
	polls  *prometheus.CounterVec
	passes *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refonte_reconcile_polls_total",
			Help: "Tasks polled by the reconciler because their callback was overdue, by mode and outcome " +
				"(completed, failed, canceled, unchanged, pending, not_found, rate_limited, poll_error).",
		}, []string{"mode", "outcome"}),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refonte_reconcile_passes_total",
			Help: "Reconciler passes per mode by result (ok, skipped: another worker held the lease, error).",
		}, []string{"result"}),
	}
	var err error
	if m.polls, err = register(reg, m.polls); err != nil {
		return nil, err
	}
	if m.passes, err = register(reg, m.passes); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the identical collector already
// registered (several reconcilers on one registry share their metrics).
func register(reg prometheus.Registerer, c *prometheus.CounterVec) (*prometheus.CounterVec, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
			return existing, nil
		}
	}
	return nil, err
}

func (m *metrics) poll(mode refonte.Mode, outcome string) {
	if m != nil {
		m.polls.WithLabelValues(string(mode), outcome).Inc()
	}
}

func (m *metrics) pass(result string) {
	if m != nil {
		m.passes.WithLabelValues(result).Inc()
	}
}
