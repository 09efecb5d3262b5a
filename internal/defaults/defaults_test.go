package defaults_test

import (
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/internal/defaults"
)

func TestPositive(t *testing.T) {
	tests := []struct {
		name      string
		v, def, w time.Duration
	}{
		{"set", 3, 5, 3},
		{"zero", 0, 5, 5},
		{"negative", -1, 5, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := defaults.Positive(tt.v, tt.def); got != tt.w {
				t.Errorf("Positive(%v, %v) = %v, want %v", tt.v, tt.def, got, tt.w)
			}
		})
	}
	if got := defaults.Positive(0.0, 1.5); got != 1.5 {
		t.Errorf("Positive(0.0, 1.5) = %v", got)
	}
}
