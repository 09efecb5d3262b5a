package jobs

import (
	"errors"
	"fmt"
	"time"

	json "github.com/goccy/go-json"
	"github.com/hibiken/asynq"

	"github.com/refonte-ai/refonte-batch/refonte"
)

// TypeSubmit is the asynq task type of a row submission: create one Refonte
// task from one dataset row.
const TypeSubmit = "refonte:submit"

// PayloadVersion is the version written in every SubmitPayload. A worker
// rejects (SkipRetry) a payload whose version it does not know.
const PayloadVersion = 1

// QueuePrefix prefixes the per-mode queue names.
const QueuePrefix = "refonte-"

// Queue returns the asynq queue of a mode's normal priority: "refonte-test"
// or "refonte-live" (see PriorityQueue and Queues for the others).
func Queue(m refonte.Mode) string { return QueuePrefix + string(m) }

// SubmitPayload is the payload of a TypeSubmit task. It never holds an API
// key: the worker picks the key of Mode from its own configuration.
type SubmitPayload struct {
	V        int              `json:"v"`
	Run      string           `json:"run"`
	Line     int64            `json:"line"`
	UniqueID string           `json:"unique_id"`
	TaskType refonte.TaskType `json:"task_type"`
	Mode     refonte.Mode     `json:"mode"`
	// Params is the task creation body (a JSON object), unique_id included.
	Params json.RawMessage `json:"params"`
}

// ErrBadPayload reports a payload that cannot be decoded or is of an unknown version.
var ErrBadPayload = errors.New("jobs: bad submit payload")

// TaskID returns the asynq task ID of a row: derived from its mode and
// unique_id, so the same row is never queued twice while still queued.
func TaskID(m refonte.Mode, uniqueID string) string { return string(m) + ":" + uniqueID }

// Default options of a submit task.
const (
	DefaultMaxRetry = 25
	DefaultTimeout  = 2 * time.Minute
)

// NewSubmitTask builds the asynq task of one row of a normal-priority run:
// NewPrioritySubmitTask(p, PriorityNormal).
func NewSubmitTask(p SubmitPayload) (*asynq.Task, error) {
	return NewPrioritySubmitTask(p, PriorityNormal)
}

// NewPrioritySubmitTask builds the asynq task of one row of a run of
// priority prio: type TypeSubmit, queue PriorityQueue(mode, prio), task ID
// from TaskID, DefaultMaxRetry and DefaultTimeout.
func NewPrioritySubmitTask(p SubmitPayload, prio Priority) (*asynq.Task, error) {
	if p.V == 0 {
		p.V = PayloadVersion
	}
	if p.UniqueID == "" {
		return nil, fmt.Errorf("%w: empty unique_id", ErrBadPayload)
	}
	if _, err := refonte.ParseMode(string(p.Mode)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPayload, err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPayload, err)
	}
	return asynq.NewTask(TypeSubmit, b,
		asynq.Queue(PriorityQueue(p.Mode, prio)),
		asynq.TaskID(TaskID(p.Mode, p.UniqueID)),
		asynq.MaxRetry(DefaultMaxRetry),
		asynq.Timeout(DefaultTimeout),
	), nil
}

// DecodeSubmitPayload decodes (github.com/goccy/go-json, like refonte) and checks a TypeSubmit payload.
func DecodeSubmitPayload(b []byte) (SubmitPayload, error) {
	var p SubmitPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: %v", ErrBadPayload, err)
	}
	return p, p.check()
}

// check reports a decoded payload that is of another version or lacks or
// misnames what a job needs.
func (p SubmitPayload) check() error {
	if p.V != PayloadVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrBadPayload, p.V, PayloadVersion)
	}
	if p.UniqueID == "" || p.Run == "" {
		return fmt.Errorf("%w: missing run or unique_id", ErrBadPayload)
	}
	if _, err := refonte.ParseMode(string(p.Mode)); err != nil {
		return fmt.Errorf("%w: %v", ErrBadPayload, err)
	}
	if _, err := refonte.ParseTaskType(string(p.TaskType)); err != nil {
		return fmt.Errorf("%w: %v", ErrBadPayload, err)
	}
	return nil
}
