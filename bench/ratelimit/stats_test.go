package main

import (
	"testing"
	"time"
)

func TestMaxInWindow(t *testing.T) {
	tests := []struct {
		name   string
		ts     []int64
		w      int64
		want   int
		wantAt int64
	}{
		{"empty", nil, 10, 0, 0},
		{"one", []int64{5}, 10, 1, 5},
		{"half-open window", []int64{0, 10, 20}, 10, 1, 0},
		{"bunch", []int64{30, 0, 1, 2, 25, 26, 27, 28}, 10, 5, 25},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, at := maxInWindow(tt.ts, tt.w)
			if got != tt.want || at != tt.wantAt {
				t.Errorf("maxInWindow = %d at %d, want %d at %d", got, at, tt.want, tt.wantAt)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	sorted := make([]int64, 100)
	for i := range sorted {
		sorted[i] = int64(i + 1)
	}
	tests := []struct {
		p    float64
		want int64
	}{{0.5, 50}, {0.99, 99}, {1, 100}, {0, 1}}
	for _, tt := range tests {
		if got := percentile(sorted, tt.p); got != tt.want {
			t.Errorf("percentile(%v) = %d, want %d", tt.p, got, tt.want)
		}
	}
	if got := percentile(nil, 0.99); got != 0 {
		t.Errorf("percentile(nil) = %d", got)
	}
}

func TestSummarize(t *testing.T) {
	o := options{rate: 10, burst: 2, procs: 2, goroutines: 1, duration: time.Second}
	ms := int64(time.Millisecond)
	reps := []report{
		{Wakes: []int64{0, 100 * ms, 300 * ms, 500 * ms, 700 * ms}, Slots: []int64{0, 100 * ms, 300 * ms, 500 * ms, 699 * ms}, Calls: 6},
		{Wakes: []int64{1 * ms, 200 * ms, 400 * ms, 600 * ms, 900 * ms}, Slots: []int64{0, 200 * ms, 400 * ms, 600 * ms, 800 * ms}, Calls: 5},
	}
	s := summarize(o, reps)
	if s.Grants != 10 || s.Achieved != 1 || s.MaxWindowWake != 10 || s.WindowLimit != 12 || s.CallsPerGrant != 1.1 {
		t.Errorf("summary = %+v", s)
	}
	if s.LatenessMaxMs != 100 || s.Pass {
		t.Errorf("lateness max %v ms, pass %v; want 100 ms and a miss of the p99 target", s.LatenessMaxMs, s.Pass)
	}
}
