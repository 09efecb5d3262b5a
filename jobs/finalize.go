package jobs

import (
	"encoding/json"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/refonte-ai/refonte-batch/refonte"
)

// TypeFinalizeBatch is the asynq task type of a batch finalize handed to
// the workers: a transition made outside a worker (enqueue cancel's sweep)
// left a run with every row submitted or terminal without a task, the
// moment to finalize its batch at the API, which only workers (they hold
// the keys) may call. The worker finalizes it as it does after its own
// transitions (submit.Handler.AfterTransition): once per run.
const TypeFinalizeBatch = "refonte:finalize-batch"

// FinalizePayload is the payload of a TypeFinalizeBatch task.
type FinalizePayload struct {
	V    int          `json:"v"`
	Run  string       `json:"run"`
	Mode refonte.Mode `json:"mode"`
}

// FinalizeMaxRetry is the retry budget of a finalize job (the finalize
// itself is claimed once: a retry after the claim finalizes nothing).
const FinalizeMaxRetry = 10

// FinalizeTaskID returns the asynq task ID of a run's finalize job: one
// per run while queued.
func FinalizeTaskID(runID string) string { return "finalize:" + runID }

// NewFinalizeTask builds the asynq task that finalizes a run's batch: type
// TypeFinalizeBatch, the high-priority queue of the run's mode, task ID
// from FinalizeTaskID.
func NewFinalizeTask(p FinalizePayload) (*asynq.Task, error) {
	if p.V == 0 {
		p.V = PayloadVersion
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("%w: finalize: %v", ErrBadPayload, err)
	}
	return asynq.NewTask(TypeFinalizeBatch, b,
		asynq.Queue(PriorityQueue(p.Mode, PriorityHigh)),
		asynq.TaskID(FinalizeTaskID(p.Run)),
		asynq.MaxRetry(FinalizeMaxRetry),
		asynq.Timeout(CancelTimeout),
	), nil
}

// DecodeFinalizePayload decodes and checks a TypeFinalizeBatch payload.
func DecodeFinalizePayload(b []byte) (FinalizePayload, error) {
	var p FinalizePayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: finalize: %v", ErrBadPayload, err)
	}
	return p, p.check()
}

func (p FinalizePayload) check() error {
	if p.V != PayloadVersion {
		return fmt.Errorf("%w: finalize: version %d, want %d", ErrBadPayload, p.V, PayloadVersion)
	}
	if p.Run == "" {
		return fmt.Errorf("%w: finalize: missing run", ErrBadPayload)
	}
	if _, err := refonte.ParseMode(string(p.Mode)); err != nil {
		return fmt.Errorf("%w: finalize: %v", ErrBadPayload, err)
	}
	return nil
}
