package enqueue

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/internal/defaults"
	"github.com/refonte-ai/refonte-batch/jobs/store"
)

// DefaultHeartbeat is how often enqueue records a heartbeat on its run while
// enqueuing (-heartbeat); readers show the run aborted after
// HeartbeatLapses intervals without one.
const DefaultHeartbeat = 5 * time.Second

// HeartbeatLapses is the number of missed heartbeat intervals after which
// status, runs and the console show a run still enqueuing as aborted
// ("producer stopped at line N").
const HeartbeatLapses = 6

// startHeartbeat records a heartbeat on the run at once and then every
// interval, with the dataset line reached, until the returned stop is
// called (stop waits for a beat in flight, so none lands after the run's
// end is recorded). A failed beat is logged; the write path reports Redis
// errors.
func startHeartbeat(ctx context.Context, st *store.Store, runID string, interval time.Duration, line *atomic.Int64, log *zap.Logger) (stop func()) {
	interval = defaults.Positive(interval, DefaultHeartbeat)
	timeout := HeartbeatLapses * interval
	beat := func() {
		bctx, cancel := context.WithTimeout(ctx, interval)
		defer cancel()
		if err := st.Heartbeat(bctx, runID, line.Load(), timeout); err != nil && ctx.Err() == nil {
			log.Warn("run heartbeat failed", zap.Error(err))
		}
	}
	beat()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				beat()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}
