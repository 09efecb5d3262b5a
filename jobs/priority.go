package jobs

import (
	"errors"
	"fmt"

	"github.com/refonte-ai/refonte-batch/refonte"
)

// Priority is a run's submit priority (enqueue -priority): the asynq queue
// its rows wait in. Each mode has three queues (see PriorityQueue); a
// worker serves them strictly by priority, high first, except for its low
// lane, which takes low jobs first so that a low run is never starved
// (see LowLaneShare).
type Priority string

// Priorities.
const (
	PriorityHigh   Priority = "high"
	PriorityNormal Priority = "normal"
	PriorityLow    Priority = "low"
)

// ErrBadPriority reports a priority other than high, normal or low.
var ErrBadPriority = errors.New("jobs: bad priority")

// ParsePriority parses high, normal or low; "" is normal (a run recorded
// before priorities existed).
func ParsePriority(s string) (Priority, error) {
	switch p := Priority(s); p {
	case PriorityHigh, PriorityNormal, PriorityLow:
		return p, nil
	case "":
		return PriorityNormal, nil
	}
	return "", fmt.Errorf("%w %q: want high, normal or low", ErrBadPriority, s)
}

// PriorityOf returns the priority a run record holds (store.Run.Priority):
// normal when it is empty (a run recorded before priorities) or unknown.
func PriorityOf(s string) Priority {
	p, err := ParsePriority(s)
	if err != nil {
		return PriorityNormal
	}
	return p
}

// RowQueues returns the queues where the task of a row of a run of mode m
// and priority p may wait: the run's own queue first, then the mode's
// others (a row shared with an earlier run of another priority waits in
// that run's queue). Retry and resume look a row's task up in them.
func RowQueues(m refonte.Mode, p Priority) []string {
	own := PriorityQueue(m, p)
	qs := []string{own}
	for _, q := range Queues(m) {
		if q != own {
			qs = append(qs, q)
		}
	}
	return qs
}

// Priorities returns the priorities from the highest to the lowest.
func Priorities() []Priority { return []Priority{PriorityHigh, PriorityNormal, PriorityLow} }

// PriorityQueue returns the asynq queue of a mode's priority:
// "refonte-test-high", "refonte-test" (normal: the queue every job used
// before priorities, so jobs queued then are served as normal ones) or
// "refonte-test-low"; likewise for live. An unknown priority is normal.
func PriorityQueue(m refonte.Mode, p Priority) string {
	switch p {
	case PriorityHigh, PriorityLow:
		return Queue(m) + "-" + string(p)
	}
	return Queue(m)
}

// Queues returns every queue of a mode, from the highest priority to the
// lowest: what a worker serves, what queue depth sums, what an operation
// on a row's task (retry, resume, pause of a mode) must look through.
func Queues(m refonte.Mode) []string {
	ps := Priorities()
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = PriorityQueue(m, p)
	}
	return out
}

// LowLaneShare is the share of a worker's job slots that take low jobs
// before high and normal ones (its low lane): 1 slot in LowLaneShare, at
// least one when the worker has two slots or more. While higher-priority
// jobs are queued, a low run thus still gets about 1/LowLaneShare of a
// worker's throughput (weighted, not aged: it never waits for ever), and
// when no low job waits the lane serves high, then normal, like the rest.
const LowLaneShare = 16
