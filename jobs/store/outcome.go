package store

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/refonte"
)

// The one rule that turns what the API says of a finished task into a
// stored Outcome. The submit handler (a create answered with a terminal
// task, or a 409 resolving to one), the callback receiver and the
// reconciler all use it, so a task reads the same in `enqueue results`
// whichever path saw it first.

// TaskOutcome returns the terminal outcome a task object carries (a create
// answer, a callback's task or GET /task/{id}): see NewOutcome; its time is
// DeliveryTime(t).
func TaskOutcome(t *refonte.Task) Outcome {
	return NewOutcome(t.ID, t.Status, t.Response, DeliveryTime(t))
}

// NewOutcome returns the outcome of task taskID in terminal status with
// its response: a "null" or empty response is dropped; for status error,
// Error is the API's reason (ErrorReason). at orders deliveries (zero: the
// store uses the time of receipt).
func NewOutcome(taskID string, status refonte.TaskStatus, response json.RawMessage, at time.Time) Outcome {
	o := Outcome{TaskID: taskID, Status: status, At: at}
	if !isNull(response) {
		o.Response = response
	}
	if status == refonte.StatusError {
		o.Error = ErrorReason(o.Response)
	}
	return o
}

// DeliveryTime orders deliveries of a task: its updated_at, else its
// completed_at, else zero (the store then uses the time of receipt).
func DeliveryTime(t *refonte.Task) time.Time {
	switch {
	case t == nil:
		return time.Time{}
	case !t.UpdatedAt.IsZero():
		return t.UpdatedAt
	case t.CompletedAt != nil:
		return *t.CompletedAt
	}
	return time.Time{}
}

// ErrorReason returns the API's reason for a task in status error: the
// "error" string of its response (its JSON text when not a string), else a
// generic message.
func ErrorReason(response json.RawMessage) string {
	var r struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(response, &r) == nil && !isNull(r.Error) {
		var s string
		if json.Unmarshal(r.Error, &s) == nil {
			if s != "" {
				return s
			}
		} else {
			return string(r.Error)
		}
	}
	return "the API reported status error without a reason"
}

// isNull reports an absent or JSON null value.
func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}

// LogRunDone logs "run done" at info on log with the run's counters (one
// read of the run record). The submit handler, the callback receiver and
// the reconciler call it for every run in a transition's RunsDone.
func (s *Store) LogRunDone(ctx context.Context, log *zap.Logger, runID string) {
	run, err := s.GetRun(ctx, runID)
	if err != nil {
		log.Info("run done", zap.String("run_id", runID), zap.NamedError("counters_error", err))
		return
	}
	log.Info("run done", zap.String("run_id", runID), zap.String("dataset", run.Dataset),
		zap.Stringer("mode", run.Mode), zap.Int64("rows", run.Rows), zap.Int64("valid", run.Valid),
		zap.Int64("invalid", run.Invalid), zap.Int64("duplicate", run.Duplicate),
		zap.Int64("submitted", run.Submitted), zap.Int64("completed", run.Completed),
		zap.Int64("failed", run.Failed), zap.Int64("canceled", run.Canceled))
}
