// Package promreg makes Prometheus collectors and registers them in one
// step, the one way the worker's packages do it.
package promreg

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Factory makes collectors and registers each on one registry, as
// promauto.With does, but keeps the first registration error for Err
// instead of panicking. A collector already registered identically (same
// name, help and labels) is shared: several handlers or reconcilers on one
// registry count together.
type Factory struct {
	reg prometheus.Registerer
	err error
}

// With returns a Factory registering on reg.
func With(reg prometheus.Registerer) *Factory { return &Factory{reg: reg} }

// Err returns the first registration error, or nil.
func (f *Factory) Err() error { return f.err }

// Register registers c on f's registry and returns it, or the identical
// collector registered before. After an error it registers nothing more.
func Register[C prometheus.Collector](f *Factory, c C) C {
	if f.err != nil {
		return c
	}
	err := f.reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	f.err = err
	return c
}

// Counter makes and registers a counter.
func (f *Factory) Counter(name, help string) prometheus.Counter {
	return Register(f, prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help}))
}

// CounterVec makes and registers a counter with labels.
func (f *Factory) CounterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return Register(f, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels))
}

// Gauge makes and registers a gauge.
func (f *Factory) Gauge(name, help string) prometheus.Gauge {
	return Register(f, prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help}))
}

// GaugeVec makes and registers a gauge with labels.
func (f *Factory) GaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return Register(f, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels))
}

// Histogram makes and registers a histogram with buckets.
func (f *Factory) Histogram(name, help string, buckets []float64) prometheus.Histogram {
	return Register(f, prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}))
}

// HistogramVec makes and registers a histogram with buckets and labels.
func (f *Factory) HistogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return Register(f, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels))
}
