package submit

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"

	"github.com/refonte-ai/refonte-batch/ratelimit"
	"github.com/refonte-ai/refonte-batch/refonte"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

// stallHook holds up the first Redis command after stall is set, as a
// Redis outage or failover holds the commands of a worker.
type stallHook struct{ stall *atomic.Bool }

func (stallHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h stallHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.stall.CompareAndSwap(true, false) {
			time.Sleep(StaleSlot + 300*time.Millisecond)
		}
		return next(ctx, cmd)
	}
}
func (stallHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestStaleSlotWaitsForAFreshOne: a job held up between its rate-limit
// slot and its create (here its submit check, stalled as by a Redis
// failover) for longer than StaleSlot takes a fresh slot before creating,
// so jobs released together after an outage do not create at once on
// their old slots; a job not held up waits once.
func TestStaleSlotWaitsForAFreshOne(t *testing.T) {
	for _, stalled := range []bool{false, true} {
		st, rdb := newStore(t)
		var stall atomic.Bool
		rdb.AddHook(stallHook{&stall})
		sb, base := newSandbox(t, sandbox.Config{})
		var waits atomic.Int32
		lim := hookLimiter{wait: func() {
			if waits.Add(1) == 1 && stalled {
				stall.Store(true) // the next Redis command is the submit check
			}
		}}
		h, err := New(Options{Store: st, Clients: map[refonte.Mode]*refonte.Client{refonte.ModeTest: newClient(t, testKey, base)},
			Limiters: map[refonte.Mode]ratelimit.Limiter{refonte.ModeTest: lim}, Logger: zaptest.NewLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		_, tasks := addRun(t, st, refonte.ModeTest, 1, nil)
		if err := h.ProcessTask(context.Background(), tasks[0]); err != nil {
			t.Fatalf("stalled=%v: ProcessTask: %v", stalled, err)
		}
		want := int32(1)
		if stalled {
			want = 2
		}
		if n := waits.Load(); n != want {
			t.Errorf("stalled=%v: %d limiter waits, want %d", stalled, n, want)
		}
		if s := sb.Stats(); s.TasksCreated != 1 {
			t.Errorf("stalled=%v: %d tasks created, want 1", stalled, s.TasksCreated)
		}
	}
}
