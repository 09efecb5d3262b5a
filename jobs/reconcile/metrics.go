package reconcile

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/refonte-ai/refonte-batch/internal/promreg"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// metrics are the reconciler's collectors. A nil *metrics records nothing.
type metrics struct {
	polls  *prometheus.CounterVec
	passes *prometheus.CounterVec
	calls  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	f := promreg.With(reg)
	m := &metrics{
		polls: f.CounterVec("refonte_reconcile_polls_total", "Tasks polled by the reconciler because their callback was overdue, by mode and outcome "+
			"(completed, failed, canceled, unchanged, pending, not_found, rate_limited, poll_error).", "mode", "outcome"),
		passes: f.CounterVec("refonte_reconcile_passes_total", "Reconciler passes per mode by result (ok, skipped: another worker held the lease, error).", "result"),
		calls:  f.CounterVec("refonte_reconcile_api_calls_total", "API calls made by the reconciler, by mode and op (list: GET /tasks, up to 100 tasks; get: GET /task/{id}).", "mode", "op"),
	}
	return m, f.Err()
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
