package worker

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestWarmPool(t *testing.T) {
	tests := []struct {
		name        string
		size, calls int
	}{
		{"one goroutine, sequential callers", 1, 20},
		{"as many goroutines as callers", 8, 200},
		{"fewer goroutines than callers (callers wait)", 3, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newWarmPool(tc.size)
			var ran, running, most atomic.Int64
			var wg sync.WaitGroup
			for range tc.calls {
				wg.Go(func() {
					p.run(func() {
						n := running.Add(1)
						for {
							m := most.Load()
							if n <= m || most.CompareAndSwap(m, n) {
								break
							}
						}
						ran.Add(1)
						running.Add(-1)
					})
				})
			}
			wg.Wait()
			p.close()
			if ran.Load() != int64(tc.calls) {
				t.Fatalf("ran %d of %d calls", ran.Load(), tc.calls)
			}
			if most.Load() > int64(tc.size) {
				t.Fatalf("%d calls ran at once on a pool of %d", most.Load(), tc.size)
			}
		})
	}
}

func TestWarmPoolPanicReachesTheCaller(t *testing.T) {
	p := newWarmPool(2)
	defer p.close()
	got := func() (r any) {
		defer func() { r = recover() }()
		p.run(func() { panic("boom") })
		return nil
	}()
	if got != "boom" {
		t.Fatalf("recovered %v, want boom", got)
	}
	// The pool goroutine survived the panic.
	done := false
	p.run(func() { done = true })
	if !done {
		t.Fatal("the pool does not run calls after a panic")
	}
}
