package submit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// ProcessCancel handles one delivery of a jobs.TypeCancelTask task
// (enqueue cancel -tasks): if the row still has a task that is not
// finished and no live run needs it, the task is canceled at the API
// under the shared rate limit (see cancelAtAPI). It returns nil when
// there is nothing (more) to do, a *RescheduleError to come back for a
// rate-limit slot, or an error for asynq to retry.
func (h *Handler) ProcessCancel(ctx context.Context, t *asynq.Task) error {
	p, err := jobs.DecodeCancelPayload(t.Payload())
	if err != nil {
		h.log.Error("dropping undecodable cancel job", zap.Error(err))
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	if h.opts.Clients[p.Mode] == nil {
		return fmt.Errorf("cancel %s: this worker holds no %s key: %w", p.UniqueID, p.Mode, asynq.SkipRetry)
	}
	state, taskID, canceled, err := h.opts.Store.CancelTarget(ctx, p.Mode, p.UniqueID)
	if errors.Is(err, store.ErrJobNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if state != store.JobSubmitted || taskID == "" || !canceled {
		// Finished meanwhile, or a run that is not canceled needs the task.
		h.opts.Metrics.apiCancel(p.Mode, CancelSkipped)
		return nil
	}
	retry, _ := asynq.GetRetryCount(ctx)
	maxRetry, ok := asynq.GetMaxRetry(ctx)
	if err := h.waitLimiter(ctx, p.Mode, p.UniqueID, ok && retry >= maxRetry); err != nil {
		return err
	}
	return h.cancelAtAPI(ctx, p.Mode, p.UniqueID, taskID, false)
}

// ProcessFinalize handles one delivery of a jobs.TypeFinalizeBatch task
// (handed off by enqueue cancel, whose sweep left the run with every row
// settled): the run's batch is finalized by the same rule as after the
// worker's own transitions (AfterTransition: once per run, claimed in
// Redis). It returns nil once done, or when there is nothing to do.
func (h *Handler) ProcessFinalize(ctx context.Context, t *asynq.Task) error {
	p, err := jobs.DecodeFinalizePayload(t.Payload())
	if err != nil {
		h.log.Error("dropping undecodable finalize job", zap.Error(err))
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	h.AfterTransition(ctx, store.Transition{RunsAllSubmitted: []string{p.Run}})
	return nil
}

// cancelAtAPI cancels the row's task at the API (POST /task/{id}/cancel)
// and records the answer: the canceled task (the row becomes canceled, a
// cancel after submission); a 400 (the task finished first) keeps the
// task's real result, read with GET /task/{id}; a 404 is left to the
// reconciler. With wait, it first waits for a slot of the shared limiter
// as long as ctx allows (the caller cannot be rescheduled); else the caller
// has one.
func (h *Handler) cancelAtAPI(ctx context.Context, mode refonte.Mode, uniqueID, taskID string, wait bool) error {
	client := h.opts.Clients[mode]
	if client == nil {
		return fmt.Errorf("cancel %s: no %s client", uniqueID, mode)
	}
	if wait {
		if err := h.waitLimiter(ctx, mode, uniqueID, true); err != nil {
			return err
		}
	}
	log := h.log.With(zap.String("unique_id", uniqueID), zap.String("task_id", taskID), zap.String("mode", string(mode)))
	start := time.Now()
	task, err := client.CancelTask(ctx, taskID, false)
	h.opts.Metrics.api(mode, "cancel", start)
	result := CancelCanceled
	switch {
	case err == nil:
	case errors.Is(err, refonte.ErrInvalid):
		// 400: no longer pending. Keep its real outcome.
		result = CancelAlreadyTerminal
		start = time.Now()
		task, err = client.GetTask(ctx, taskID)
		h.opts.Metrics.api(mode, "get", start)
		if err != nil {
			h.opts.Metrics.apiCancel(mode, result)
			log.Info("task finished before its cancel; the reconciler records its result", zap.Error(err))
			return nil
		}
	case errors.Is(err, refonte.ErrNotFound):
		h.opts.Metrics.apiCancel(mode, CancelNotFound)
		log.Warn("the task to cancel is not found at the API; left to the reconciler")
		return nil
	default:
		h.opts.Metrics.apiCancel(mode, CancelError)
		return fmt.Errorf("cancel %s: POST /task/%s/cancel: %w", uniqueID, taskID, err)
	}
	h.opts.Metrics.apiCancel(mode, result)
	if !task.Status.Terminal() {
		return nil // the callback or the reconciler records it
	}
	tr, err := h.opts.Store.Complete(context.WithoutCancel(ctx), mode, uniqueID, store.TaskOutcome(task))
	if err != nil {
		return fmt.Errorf("cancel %s: recording the canceled task: %w", uniqueID, err)
	}
	h.transitioned(context.WithoutCancel(ctx), func() *zap.Logger { return log }, tr)
	return nil
}
