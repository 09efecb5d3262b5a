// Package control steers runs: cancel one (rows not submitted yet become
// canceled at once, created tasks optionally canceled at the API by the
// workers), pause it and resume it. The enqueue CLI (enqueue cancel,
// pause, resume) and the runs console's actions both call it, so a run is
// steered by the same rules whichever surface the operator uses.
package control

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/store"
)

// CancelReport is what a cancel did (enqueue cancel -json prints it).
type CancelReport struct {
	RunID string         `json:"run_id"`
	State store.RunState `json:"state"`
	// CanceledNow rows were moved to canceled by this call, with no API call.
	CanceledNow int64 `json:"canceled_now"`
	// InFlight rows had their create under way when the cancel came: their
	// task is recorded by the worker (and canceled at the API with -tasks).
	InFlight int64 `json:"in_flight"`
	// Shared rows also belong to a run that is not canceled: left to it.
	Shared int64 `json:"shared"`
	// Submitted rows have a task not finished yet; with -tasks, CancelsQueued
	// of them got a cancel job for the workers (the others had one queued).
	Submitted     int64 `json:"submitted"`
	CancelsQueued int64 `json:"api_cancels_queued"`
	// The run's counters after the call.
	CanceledBeforeSubmit int64 `json:"canceled_before_submit"`
	CanceledAfterSubmit  int64 `json:"canceled_after_submit"`
	Completed            int64 `json:"completed"`
	Failed               int64 `json:"failed"`
	Valid                int64 `json:"valid"`
}

// Cancel cancels a run: from the moment the cancel is recorded no worker
// creates a task for a row of the run that no live run shares (creates
// already under way finish and are counted in flight); the rows not yet
// submitted become canceled at once, with no API call; with tasks, every
// created task not finished yet gets a jobs.TypeCancelTask job, so the
// workers (which hold the keys) cancel it at the API under the shared rate
// limit. It is idempotent: run it again to retry what is left. A done run
// is reported as is (nothing to cancel).
func Cancel(ctx context.Context, st *store.Store, client *asynq.Client, runID string, tasks bool) (CancelReport, error) {
	rep := CancelReport{RunID: runID}
	err := st.RequestCancel(ctx, runID, tasks)
	if err != nil && !errors.Is(err, store.ErrRunDone) {
		return rep, err
	}
	if err == nil {
		sw, err := st.CancelRun(ctx, runID)
		if err != nil {
			return rep, err
		}
		rep.CanceledNow, rep.InFlight, rep.Shared = sw.Canceled, sw.InFlight, sw.Shared
		rep.Submitted = int64(len(sw.Submitted))
		// The sweep's transitions may be the last of a run (this one, or
		// another canceled run sharing rows): its batch is finalized by the
		// workers, by the rule their own transitions follow.
		if err := handOffFinalize(ctx, st, client, append([]string{runID}, sw.RunsAllSubmitted...)); err != nil {
			return rep, err
		}
		run, err := st.GetRun(ctx, runID)
		if err != nil {
			return rep, err
		}
		if run.CancelTasks {
			for _, uid := range sw.Submitted {
				t, err := jobs.NewCancelTask(jobs.CancelPayload{Run: runID, UniqueID: uid, Mode: run.Mode})
				if err != nil {
					return rep, err
				}
				_, err = client.EnqueueContext(ctx, t)
				if errors.Is(err, asynq.ErrTaskIDConflict) {
					continue // queued by an earlier cancel, not run yet
				}
				if err != nil {
					return rep, fmt.Errorf("queueing the cancel of %s: %w (run enqueue cancel -tasks again)", uid, err)
				}
				rep.CancelsQueued++
			}
		}
	}
	run, err := st.GetRun(ctx, runID)
	if err != nil {
		return rep, err
	}
	rep.State = run.State
	rep.CanceledBeforeSubmit, rep.CanceledAfterSubmit = run.CanceledBeforeSubmit, run.CanceledAfterSubmit()
	rep.Completed, rep.Failed, rep.Valid = run.Completed, run.Failed, run.Valid
	return rep, nil
}

// handOffFinalize queues a jobs.TypeFinalizeBatch job for each run of
// runIDs that has a batch not finalized yet and every row settled
// (store.Run.AllSubmitted): a transition made here, outside a worker,
// reports such a run once (store.Transition.RunsAllSubmitted) and enqueue
// cannot call the API, so a worker finalizes it (submit.Handler's rule,
// once per run). Checking the run rather than only the report makes a
// repeated cancel repair a hand-off that failed.
func handOffFinalize(ctx context.Context, st *store.Store, client *asynq.Client, runIDs []string) error {
	seen := map[string]bool{}
	for _, id := range runIDs {
		if seen[id] {
			continue
		}
		seen[id] = true
		run, err := st.GetRun(ctx, id)
		if errors.Is(err, store.ErrRunNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if run.Batch == "" || run.BatchFinalized || !run.AllSubmitted() {
			continue
		}
		t, err := jobs.NewFinalizeTask(jobs.FinalizePayload{Run: id, Mode: run.Mode})
		if err != nil {
			return err
		}
		if _, err := client.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return fmt.Errorf("queueing the finalize of run %s's batch: %w (run enqueue cancel again)", id, err)
		}
	}
	return nil
}

// wakeConcurrency is how many RunTask calls Resume makes at once.
const wakeConcurrency = 8

// Pause holds (pause true) or lets go on (false) a run: see
// store.SetOperatorPaused. On resume, the run's jobs waiting in asynq's
// retry or scheduled sets (a paused job is rescheduled for minutes) are
// moved back to their queue at once, so workers pick them up within
// seconds; it returns how many were woken.
func Pause(ctx context.Context, st *store.Store, insp *asynq.Inspector, runID string, pause bool, log *zap.Logger) (store.PauseResult, int64, error) {
	res, err := st.SetOperatorPaused(ctx, runID, pause)
	if err != nil || pause {
		return res, 0, err
	}
	run, err := st.GetRun(ctx, runID)
	if err != nil {
		return res, 0, err
	}
	queues := jobs.RowQueues(run.Mode, jobs.PriorityOf(run.Priority))
	var woken atomic.Int64
	uids := make(chan string, wakeConcurrency)
	var wg sync.WaitGroup
	for range wakeConcurrency {
		wg.Go(func() {
			for uid := range uids {
				var err error
				for _, q := range queues {
					if err = insp.RunTask(q, jobs.TaskID(run.Mode, uid)); !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
						break
					}
				}
				if err == nil {
					woken.Add(1)
				} else if !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
					// Pending or active already: nothing to wake.
					log.Debug("not woken", zap.String("unique_id", uid), zap.Error(err))
				}
			}
		})
	}
	err = st.RunRows(ctx, runID, func(_ store.RunRow, job *store.Job) error {
		if job != nil && job.State == store.JobEnqueued {
			select {
			case uids <- job.UniqueID:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	close(uids)
	wg.Wait()
	return res, woken.Load(), err
}
