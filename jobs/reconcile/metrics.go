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
	calls  *prometheus.CounterVec
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
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "refonte_reconcile_api_calls_total",
			Help: "API calls made by the reconciler, by mode and op (list: GET /tasks, up to 100 tasks; get: GET /task/{id}).",
		}, []string{"mode", "op"}),
	}
	var err error
	if m.polls, err = register(reg, m.polls); err != nil {
		return nil, err
	}
	if m.passes, err = register(reg, m.passes); err != nil {
		return nil, err
	}
	if m.calls, err = register(reg, m.calls); err != nil {
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

func (m *metrics) call(mode refonte.Mode, op string) {
	if m != nil {
		m.calls.WithLabelValues(string(mode), op).Inc()
	}
}
