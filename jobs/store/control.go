package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/refonte-ai/refonte-batch/refonte"
)

// pausedRunsKey is the set of runs paused by their operator.
func (s *Store) pausedRunsKey() string { return s.opts.Prefix + "runs:paused" }

// SubmitVerdict is what CheckSubmit decided for a job.
type SubmitVerdict int

// Verdicts of CheckSubmit.
const (
	// SubmitNoop: the job is not enqueued (submitted or terminal): nothing to do.
	SubmitNoop SubmitVerdict = iota
	// SubmitGo: create the task (reserved, when CheckSubmit was asked to reserve).
	SubmitGo
	// SubmitPaused: every live run of the job is paused by its operator;
	// come back later (not a failure).
	SubmitPaused
	// SubmitCanceled: every run of the job is canceled; the job was moved
	// to canceled without a task (Check.Transition says what it changed).
	SubmitCanceled
	// SubmitCanceledUnsure: every run of the job is canceled, but an
	// earlier attempt reserved a create, so a task may hold the unique_id:
	// look it up at the API, then record it (MarkSubmitted) or call
	// CancelUnsubmitted.
	SubmitCanceledUnsure
)

// SubmitCheck is the answer of CheckSubmit.
type SubmitCheck struct {
	Verdict SubmitVerdict
	// State is the job's state before the check.
	State JobState
	// Generation is the job's Generation (enqueue retry re-queues).
	Generation int64
	// Transition is set for SubmitCanceled.
	Transition Transition
}

// CheckSubmit decides, atomically with the job's runs, whether the submit
// handler may create the job's task: SubmitNoop unless the job is
// enqueued; SubmitCanceled (done here) when every existing run of the job
// is canceled; SubmitPaused when every live one is paused by its operator;
// else SubmitGo. With reserve, SubmitGo also records the create's
// reservation in the same step, so a cancel that comes later finds the
// create in flight (CancelRun counts it, and never cancels a reserved job
// without knowing whether its task exists), and one that came earlier is
// seen here: no task is ever created after a cancel was recorded, except
// creates already reserved.
func (s *Store) CheckSubmit(ctx context.Context, mode refonte.Mode, uniqueID string, reserve bool) (SubmitCheck, error) {
	return s.checkSubmit(ctx, mode, uniqueID, reserve, false)
}

// CancelUnsubmitted cancels an enqueued job of canceled runs even if an
// earlier attempt reserved its create; the caller has made sure that no
// task holds its unique_id (SubmitCanceledUnsure, then a 404 at the API).
// A job with a live run is not touched (Verdict SubmitGo or SubmitPaused).
func (s *Store) CancelUnsubmitted(ctx context.Context, mode refonte.Mode, uniqueID string) (SubmitCheck, error) {
	return s.checkSubmit(ctx, mode, uniqueID, false, true)
}

func (s *Store) checkSubmit(ctx context.Context, mode refonte.Mode, uniqueID string, reserve, force bool) (SubmitCheck, error) {
	v, err := checkSubmitScript.Run(ctx, s.rdb, []string{s.jobKey(mode, uniqueID)},
		s.opts.Prefix, ms(time.Now()), s.ttlMS(), flag(reserve), flag(force)).Slice()
	if err != nil {
		return SubmitCheck{}, fmt.Errorf("store: check submit %s: %w", uniqueID, err)
	}
	if len(v) == 1 {
		return SubmitCheck{}, fmt.Errorf("store: check submit: %w: %s %s", ErrJobNotFound, mode, uniqueID)
	}
	if len(v) != 5 {
		return SubmitCheck{}, fmt.Errorf("store: check submit %s: unexpected reply of %d items", uniqueID, len(v))
	}
	code, _ := v[0].(int64)
	st, _ := v[1].(string)
	gs, _ := v[2].(string)
	gen, _ := strconv.ParseInt(gs, 10, 64)
	c := SubmitCheck{State: JobState(st), Generation: gen}
	switch code {
	case 0:
		c.Verdict = SubmitNoop
	case 1:
		c.Verdict = SubmitGo
	case 2:
		c.Verdict = SubmitPaused
	case 3:
		c.Verdict = SubmitCanceled
		c.Transition = Transition{Changed: true, From: JobState(st), To: JobCanceled,
			RunsDone: strs(v[3]), RunsAllSubmitted: strs(v[4])}
	case 4:
		c.Verdict = SubmitCanceledUnsure
	default:
		return SubmitCheck{}, fmt.Errorf("store: check submit %s: unexpected verdict %d", uniqueID, code)
	}
	return c, nil
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// ErrRunDone reports a cancel, pause or resume of a run in a state that
// does not allow it (such as a done run).
var ErrRunDone = errors.New("store: run is over")

// RequestCancel records that the operator canceled the run (with tasks,
// that created tasks are to be canceled at the API too). From the moment
// it returns, no task of a job whose every run is canceled is created
// (see CheckSubmit); the run is canceling, or canceled once every valid
// row is terminal. Repeating it is harmless (tasks can be added, never
// removed). A done run is not changed: ErrRunDone.
func (s *Store) RequestCancel(ctx context.Context, runID string, tasks bool) error {
	n, err := s.scriptInt(ctx, requestCancelScript, []string{s.runKey(runID), s.pausedRunsKey()},
		runID, ms(time.Now()), s.ttlMS(), flag(tasks))
	if err != nil {
		return fmt.Errorf("store: cancel run %s: %w", runID, err)
	}
	switch n {
	case -1:
		return fmt.Errorf("store: cancel run: %w: %s", ErrRunNotFound, runID)
	case 0:
		return fmt.Errorf("%w: run %s is done, nothing to cancel", ErrRunDone, runID)
	}
	return nil
}

// CancelSweep counts what CancelRun did with a canceled run's rows.
type CancelSweep struct {
	// Canceled rows moved to canceled now, without any API call.
	Canceled int64 `json:"canceled_now"`
	// InFlight rows whose create was already reserved when the cancel came:
	// their task is being created (or was, by a worker that crashed); the
	// worker records it and, with -tasks, cancels it at the API.
	InFlight int64 `json:"in_flight"`
	// Shared rows also belong to a run that is not canceled: left to it.
	Shared int64 `json:"shared"`
	// Submitted lists the unique_ids of rows with a task not finished yet
	// that no live run needs (the ones to cancel at the API with -tasks).
	Submitted []string `json:"-"`
	// RunsDone and RunsAllSubmitted are as in Transition.
	RunsDone, RunsAllSubmitted []string `json:"-"`
}

// CancelRun walks a run's rows (after RequestCancel) in pages of up to 256
// jobs, one atomic script each: an enqueued job none of whose runs is live
// becomes canceled without a task (unless its create is reserved:
// InFlight); a submitted one is listed in Submitted; a job that a live run
// still needs is counted Shared and left alone. It is idempotent.
func (s *Store) CancelRun(ctx context.Context, runID string) (CancelSweep, error) {
	var sw CancelSweep
	run, err := s.GetRun(ctx, runID)
	if err != nil {
		return sw, err
	}
	err = s.eachRowPage(ctx, runID, func(rows []RunRow) error {
		for c := 0; c < len(rows); c += addChunk {
			page := rows[c:min(c+addChunk, len(rows))]
			keys := make([]string, len(page))
			for i, r := range page {
				keys[i] = s.jobKey(run.Mode, r.UniqueID)
			}
			v, err := cancelRowsScript.Run(ctx, s.rdb, keys, s.opts.Prefix, ms(time.Now()), s.ttlMS()).Slice()
			if err != nil {
				return fmt.Errorf("store: cancel rows of run %s: %w", runID, err)
			}
			if len(v) != 6 {
				return fmt.Errorf("store: cancel rows of run %s: unexpected reply of %d items", runID, len(v))
			}
			n := func(i int) int64 { x, _ := v[i].(int64); return x }
			sw.Canceled += n(0)
			sw.InFlight += n(1)
			sw.Shared += n(2)
			sw.Submitted = append(sw.Submitted, strs(v[3])...)
			sw.RunsDone = append(sw.RunsDone, strs(v[4])...)
			sw.RunsAllSubmitted = append(sw.RunsAllSubmitted, strs(v[5])...)
		}
		return nil
	})
	return sw, err
}

// PauseResult is what SetOperatorPaused did.
type PauseResult struct {
	// Changed is false when the run already was so.
	Changed bool
	// State is the run's state after the call.
	State RunState
}

// SetOperatorPaused pauses (pause true) or resumes a run for its
// operator: while paused, CheckSubmit answers SubmitPaused for the jobs
// whose every live run is paused; callbacks and reconciliation go on. The
// run shows state paused with PausedReason OperatorPausedReason (over the
// daily cap's reason, which comes back, if it still applies, at the next
// job after the resume). Only runs enqueuing, running or paused can be
// paused (ErrRunDone otherwise).
func (s *Store) SetOperatorPaused(ctx context.Context, runID string, pause bool) (PauseResult, error) {
	v, err := opPauseScript.Run(ctx, s.rdb, []string{s.runKey(runID), s.pausedRunsKey()},
		runID, OperatorPausedReason, flag(pause), s.ttlMS()).Slice()
	if err != nil {
		return PauseResult{}, fmt.Errorf("store: pause run %s: %w", runID, err)
	}
	code, _ := v[0].(int64)
	if code == -1 {
		return PauseResult{}, fmt.Errorf("store: pause run: %w: %s", ErrRunNotFound, runID)
	}
	st, _ := v[1].(string)
	if code == -2 {
		return PauseResult{State: RunState(st)}, fmt.Errorf("%w: run %s is %s", ErrRunDone, runID, st)
	}
	return PauseResult{Changed: code == 1, State: RunState(st)}, nil
}

// OperatorPausedRuns returns how many runs are paused by their operator.
func (s *Store) OperatorPausedRuns(ctx context.Context) (int64, error) {
	n, err := s.rdb.SCard(ctx, s.pausedRunsKey()).Result()
	if err != nil {
		return 0, fmt.Errorf("store: paused runs: %w", err)
	}
	return n, nil
}

// CancelTarget returns the job's state and task ID, and whether every run
// of the job is canceled (no live run needs its task): what a worker
// checks before canceling the task at the API.
func (s *Store) CancelTarget(ctx context.Context, mode refonte.Mode, uniqueID string) (JobState, string, bool, error) {
	v, err := cancelTargetScript.Run(ctx, s.rdb, []string{s.jobKey(mode, uniqueID)}, s.opts.Prefix).Slice()
	if err != nil {
		return "", "", false, fmt.Errorf("store: cancel target %s: %w", uniqueID, err)
	}
	if len(v) != 3 {
		return "", "", false, fmt.Errorf("store: cancel target: %w: %s %s", ErrJobNotFound, mode, uniqueID)
	}
	st, _ := v[0].(string)
	tid, _ := v[1].(string)
	verdict, _ := v[2].(string)
	return JobState(st), tid, verdict == "canceled", nil
}

// LiftCancel takes back the cancel of a run (enqueue retry of a canceled
// run re-queues its canceled rows): the run is running again, or done if
// every valid row is terminal. It reports whether the run was canceled.
func (s *Store) LiftCancel(ctx context.Context, runID string) (bool, error) {
	n, err := s.runScript(ctx, "lift cancel", runID, liftCancelScript, s.ttlMS())
	return n == 1, err
}

// Stages of a canceled row (CancelCount.Stage).
const (
	// CancelBeforeSubmit: canceled with no task, no API call.
	CancelBeforeSubmit = "before_submit"
	// CancelAfterSubmit: its task was canceled at the API.
	CancelAfterSubmit = "after_submit"
)

// CancelCount is how many rows of a mode were moved to canceled at a stage.
type CancelCount struct {
	Mode  refonte.Mode
	Stage string
	Rows  int64
}

// CancelCounts returns how many rows were moved to canceled, by mode and
// stage, system-wide: each transition to canceled counts itself in the same
// script, whoever made it (a worker's check before a create, a cancel at
// the API, a callback, enqueue cancel's sweep). Every mode and stage is
// listed, 0 when none. The counts are kept (and expire) like the rest of
// the store's keys, counted from the last cancel; they only grow until then.
func (s *Store) CancelCounts(ctx context.Context) ([]CancelCount, error) {
	m, err := s.rdb.HGetAll(ctx, s.opts.Prefix+"stats:canceled").Result()
	if err != nil {
		return nil, fmt.Errorf("store: cancel counts: %w", err)
	}
	var out []CancelCount
	for _, mode := range []refonte.Mode{refonte.ModeTest, refonte.ModeLive} {
		for _, stage := range []string{CancelBeforeSubmit, CancelAfterSubmit} {
			n, _ := strconv.ParseInt(m[string(mode)+":"+stage], 10, 64)
			out = append(out, CancelCount{Mode: mode, Stage: stage, Rows: n})
		}
	}
	return out, nil
}
