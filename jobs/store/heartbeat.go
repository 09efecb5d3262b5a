package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// heartbeatScript records a producer's heartbeat on a run still enqueuing:
// the time, the dataset line it has reached and how long readers wait for
// the next beat. A no-op in any other state.
// KEYS[1] run; ARGV[1] now ms, ARGV[2] line, ARGV[3] timeout ms, ARGV[4]
// TTL ms. Returns 1 recorded, 0 not enqueuing, -1 no run.
var heartbeatScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return -1 end
if st ~= 'enqueuing' then return 0 end
redis.call('HSET', KEYS[1], 'heartbeat_at', ARGV[1], 'heartbeat_line', ARGV[2], 'heartbeat_timeout', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`)

// Heartbeat records that the producer of a run still enqueuing is alive and
// has reached dataset line line; readers (GetRun, ListRuns) show the run
// RunAborted when no heartbeat came for timeout (see Run.Stalled). It is a
// no-op once the run left RunEnqueuing.
func (s *Store) Heartbeat(ctx context.Context, runID string, line int64, timeout time.Duration) error {
	_, err := s.runScript(ctx, "heartbeat", runID, heartbeatScript, ms(time.Now()), line, timeout.Milliseconds(), s.ttlMS())
	return err
}

// applyHeartbeat shows a run whose producer stopped beating as aborted: a
// run still enqueuing whose last heartbeat is older than its timeout. The
// record itself is not changed (a producer cut off from Redis for a while
// may come back and finish the run).
func applyHeartbeat(r *Run, m map[string]string, now time.Time) {
	at := fromMS(m["heartbeat_at"])
	r.HeartbeatAt = at
	if r.State != RunEnqueuing || at.IsZero() {
		return
	}
	timeout, _ := strconv.ParseInt(m["heartbeat_timeout"], 10, 64)
	if timeout <= 0 || now.Sub(at) <= time.Duration(timeout)*time.Millisecond {
		return
	}
	line, _ := strconv.ParseInt(m["heartbeat_line"], 10, 64)
	r.State, r.Stalled = RunAborted, true
	r.AbortReason = fmt.Sprintf("producer stopped at line %d: no heartbeat from enqueue since %s; the %d rows recorded "+
		"(enqueued %d, duplicate %d) are worked as usual; re-run the same command to add the rest",
		line, at.Format(time.RFC3339), r.Enqueued+r.Duplicate, r.Enqueued, r.Duplicate)
}
