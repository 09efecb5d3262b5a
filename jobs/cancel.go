package jobs

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/refonte-ai/refonte-batch/refonte"
)

// TypeCancelTask is the asynq task type of a cancel at the API: a worker
// cancels (POST /task/{id}/cancel) the task of one row of a canceled run
// (enqueue cancel -tasks). enqueue queues these jobs; only workers, which
// hold the keys, call the API.
const TypeCancelTask = "refonte:cancel-task"

// CancelPayload is the payload of a TypeCancelTask task.
type CancelPayload struct {
	V        int          `json:"v"`
	Run      string       `json:"run"` // the canceled run that asked
	UniqueID string       `json:"unique_id"`
	Mode     refonte.Mode `json:"mode"`
}

// Options of a cancel task: a few retries (a re-run of enqueue cancel
// -tasks queues the remaining ones again).
const (
	CancelMaxRetry = 10
	CancelTimeout  = time.Minute
)

// CancelTaskID returns the asynq task ID of a row's cancel job: one per
// row while queued, whatever how many times cancel is run.
func CancelTaskID(m refonte.Mode, uniqueID string) string {
	return "cancel:" + string(m) + ":" + uniqueID
}

// NewCancelTask builds the asynq task that cancels one row's task at the
// API: type TypeCancelTask, the high-priority queue of its mode (a cancel
// goes before the submits), task ID from CancelTaskID.
func NewCancelTask(p CancelPayload) (*asynq.Task, error) {
	if p.V == 0 {
		p.V = PayloadVersion
	}
	if p.UniqueID == "" || p.Run == "" {
		return nil, fmt.Errorf("%w: cancel: missing run or unique_id", ErrBadPayload)
	}
	if _, err := refonte.ParseMode(string(p.Mode)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPayload, err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPayload, err)
	}
	return asynq.NewTask(TypeCancelTask, b,
		asynq.Queue(PriorityQueue(p.Mode, PriorityHigh)),
		asynq.TaskID(CancelTaskID(p.Mode, p.UniqueID)),
		asynq.MaxRetry(CancelMaxRetry),
		asynq.Timeout(CancelTimeout),
	), nil
}

// DecodeCancelPayload decodes and checks a TypeCancelTask payload.
func DecodeCancelPayload(b []byte) (CancelPayload, error) {
	var p CancelPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: cancel: %v", ErrBadPayload, err)
	}
	if p.V != PayloadVersion {
		return p, fmt.Errorf("%w: cancel: version %d, want %d", ErrBadPayload, p.V, PayloadVersion)
	}
	if p.UniqueID == "" || p.Run == "" {
		return p, fmt.Errorf("%w: cancel: missing run or unique_id", ErrBadPayload)
	}
	if _, err := refonte.ParseMode(string(p.Mode)); err != nil {
		return p, fmt.Errorf("%w: cancel: %v", ErrBadPayload, err)
	}
	return p, nil
}
