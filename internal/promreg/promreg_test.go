package promreg_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/refonte-ai/refonte-batch/internal/promreg"
)

func TestFactory(t *testing.T) {
	tests := []struct {
		name    string
		second  func(f *promreg.Factory) prometheus.Collector
		shared  bool // the second call returns the first collector
		wantErr bool
	}{
		{"identical: shared", func(f *promreg.Factory) prometheus.Collector {
			return f.CounterVec("x_total", "help", "mode")
		}, true, false},
		{"same name, other labels: error", func(f *promreg.Factory) prometheus.Collector {
			return f.CounterVec("x_total", "help", "kind")
		}, false, true},
		{"same name, other type: error", func(f *promreg.Factory) prometheus.Collector {
			return f.Gauge("x_total", "help")
		}, false, true},
		{"other name", func(f *promreg.Factory) prometheus.Collector {
			return f.HistogramVec("y_seconds", "help", []float64{1}, "mode")
		}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			f := promreg.With(reg)
			first := f.CounterVec("x_total", "help", "mode")
			second := tt.second(f)
			if got := second == prometheus.Collector(first); got != tt.shared {
				t.Errorf("shared = %v, want %v", got, tt.shared)
			}
			if (f.Err() != nil) != tt.wantErr {
				t.Errorf("Err() = %v, want error: %v", f.Err(), tt.wantErr)
			}
			if tt.wantErr {
				if c := f.Counter("z_total", "help"); c == nil {
					t.Fatal("nil collector after an error")
				}
				mfs, _ := reg.Gather()
				for _, mf := range mfs {
					if mf.GetName() == "z_total" {
						t.Error("z_total registered after an error")
					}
				}
			}
		})
	}
}
