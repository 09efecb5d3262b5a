package sandbox

import (
	"context"
	"testing"
	"time"
)

func TestDeliveryQueue(t *testing.T) {
	ds := make([]*delivery, 4)
	for i := range ds {
		ds[i] = &delivery{url: string(rune('a' + i))}
	}
	tests := []struct {
		name string
		run  func(t *testing.T, q *deliveryQueue)
	}{
		{"queued deliveries come out in order", func(t *testing.T, q *deliveryQueue) {
			for _, d := range ds {
				if !q.put(t.Context(), d) {
					t.Fatal("put failed")
				}
			}
			mine := make(chan *delivery, 1)
			for _, want := range ds {
				if got, ok := q.get(t.Context(), mine); !ok || got != want {
					t.Fatalf("get = %v, %v; want %v", got, ok, want)
				}
			}
			if len(q.slots) != 0 {
				t.Fatalf("%d slots still taken", len(q.slots))
			}
		}},
		{"the worker parked last gets the next delivery", func(t *testing.T, q *deliveryQueue) {
			first, last := make(chan *delivery, 1), make(chan *delivery, 1)
			got := make(chan *delivery, 2)
			park := func(mine chan *delivery) {
				go func() {
					d, _ := q.get(t.Context(), mine)
					got <- d
				}()
				waitFor(t, time.Second, "worker parked", func() bool {
					q.mu.Lock()
					defer q.mu.Unlock()
					return len(q.idle) > 0 && q.idle[len(q.idle)-1] == mine
				})
			}
			park(first)
			park(last)
			q.put(t.Context(), ds[0])
			if d := <-got; d != ds[0] {
				t.Fatalf("got %v", d)
			}
			q.mu.Lock()
			idle := append([]chan *delivery(nil), q.idle...)
			q.mu.Unlock()
			if len(idle) != 1 || idle[0] != first {
				t.Fatalf("idle workers %v, want only the first one", idle)
			}
			q.put(t.Context(), ds[1])
			if d := <-got; d != ds[1] {
				t.Fatalf("got %v", d)
			}
		}},
		{"put waits for room and gives up when done", func(t *testing.T, q *deliveryQueue) {
			for range queueCap {
				if !q.put(t.Context(), ds[0]) {
					t.Fatal("put failed before the queue was full")
				}
			}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
			defer cancel()
			if q.put(ctx, ds[1]) {
				t.Fatal("put succeeded on a full queue")
			}
			done := make(chan bool)
			go func() { done <- q.put(t.Context(), ds[2]) }()
			if d, ok := q.get(t.Context(), make(chan *delivery, 1)); !ok || d != ds[0] {
				t.Fatalf("get = %v, %v", d, ok)
			}
			if !<-done {
				t.Fatal("put failed after room was made")
			}
			if n := len(q.queue); n != queueCap || q.queue[n-1] != ds[2] {
				t.Fatalf("queue has %d deliveries, last %v", n, q.queue[n-1])
			}
		}},
		{"get gives up when done", func(t *testing.T, q *deliveryQueue) {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if d, ok := q.get(ctx, make(chan *delivery, 1)); ok {
				t.Fatalf("get = %v on a done context", d)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newDeliveryQueue()) })
	}
}
