package cputime

import (
	"testing"
	"time"
)

func TestProcess(t *testing.T) {
	before := Process()
	// Burn a little CPU so that a working clock must move.
	deadline := time.Now().Add(30 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	after := Process()
	switch {
	case after < before:
		t.Errorf("Process went back: %v then %v", before, after)
	case after != 0 && after == before:
		// 0 is "not measured on this platform"; a measured clock moves.
		t.Errorf("Process did not move after busy work (%d loops): %v", x, after)
	}
}
