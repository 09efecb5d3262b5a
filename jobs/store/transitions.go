package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/refonte"
)

// transition runs a transition script and decodes its reply
// {changed, from, to, runsDone, runsAllSubmitted[, cancelAtAPI]} or {-1}.
func (s *Store) transition(ctx context.Context, op string, sc *redis.Script, mode refonte.Mode, uid string, keys []string, args ...any) (Transition, error) {
	v, err := sc.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return Transition{}, fmt.Errorf("store: %s %s: %w", op, uid, err)
	}
	if len(v) == 1 {
		return Transition{}, fmt.Errorf("store: %s: %w: %s %s", op, ErrJobNotFound, mode, uid)
	}
	if len(v) != 5 && len(v) != 6 {
		return Transition{}, fmt.Errorf("store: %s %s: unexpected reply of %d items", op, uid, len(v))
	}
	changed, _ := v[0].(int64)
	from, _ := v[1].(string)
	to, _ := v[2].(string)
	t := Transition{
		Changed:          changed == 1,
		From:             JobState(from),
		To:               JobState(to),
		RunsDone:         strs(v[3]),
		RunsAllSubmitted: strs(v[4]),
	}
	if len(v) == 6 {
		switch x := v[5].(type) {
		case string:
			t.Conflict = ConflictReason(x)
		case int64:
			t.CancelAtAPI = x == 1
		}
	}
	return t, nil
}

func strs(v any) []string {
	a, _ := v.([]any)
	if len(a) == 0 {
		return nil
	}
	out := make([]string, 0, len(a))
	for _, x := range a {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// MarkSubmitted records that the job's task exists at the API with taskID:
// enqueued -> submitted, indexes taskID and adds the job to the in-flight set
// for reconciliation. A no-op if the job is already submitted or terminal,
// except that a job terminal without a task ID (failed before the API
// answered) gets taskID recorded and counted as submitted (Changed, with
// From == To).
func (s *Store) MarkSubmitted(ctx context.Context, mode refonte.Mode, uniqueID, taskID string) (Transition, error) {
	return s.markSubmitted(ctx, mode, uniqueID, taskID, false)
}

// RecordCreated records a successful create call of the job's task in one
// atomic step: it counts the attempt (as RecordAttempt with no error) and
// then does what MarkSubmitted does.
func (s *Store) RecordCreated(ctx context.Context, mode refonte.Mode, uniqueID, taskID string) (Transition, error) {
	return s.markSubmitted(ctx, mode, uniqueID, taskID, true)
}

// markSubmitted is MarkSubmitted, and with countAttempt RecordCreated.
func (s *Store) markSubmitted(ctx context.Context, mode refonte.Mode, uniqueID, taskID string, countAttempt bool) (Transition, error) {
	if taskID == "" {
		return Transition{}, fmt.Errorf("store: mark submitted %s: empty task ID", uniqueID)
	}
	keys := []string{s.jobKey(mode, uniqueID), s.inflightKey(mode), s.taskIdxKey(mode, taskID)}
	return s.transition(ctx, "mark submitted", markSubmittedScript, mode, uniqueID, keys,
		s.opts.Prefix, taskID, ms(time.Now()), s.ttlMS(), uniqueID, countAttempt)
}

// stateOfStatus maps an API task status to the job's terminal state.
func stateOfStatus(st refonte.TaskStatus) (JobState, bool) {
	switch st {
	case refonte.StatusCompleted:
		return JobCompleted, true
	case refonte.StatusError:
		return JobFailed, true
	case refonte.StatusCanceled:
		return JobCanceled, true
	}
	return "", false
}

// Complete applies a terminal outcome: from enqueued, submitted or another
// terminal state to completed, failed (status error) or canceled; stores
// the response; removes the job from the in-flight set. If the job record
// does not exist, ErrJobNotFound is returned and nothing is written.
//
// The replay rule: a job that has a recorded task (submitted or terminal)
// only takes outcomes naming that task, and a terminal job changes only
// for an outcome strictly newer by the task's own timestamp (o.At) than the
// newest one it took. Otherwise nothing changes: a repeat of what the job
// holds (same status and response) is a duplicate, anything else a
// conflicting delivery (Transition.Conflict says why, and the job's runs
// count it in Run.Conflicts); the run counters never move for either.
func (s *Store) Complete(ctx context.Context, mode refonte.Mode, uniqueID string, o Outcome) (Transition, error) {
	return s.completeWith(ctx, "complete", completeScript, mode, uniqueID, o)
}

// RecordCreatedTerminal records a successful create whose answer already
// holds the task in a terminal state (o, with the created task's ID), in
// one atomic step: what RecordCreated then Complete(o) do, in one round
// trip instead of two.
func (s *Store) RecordCreatedTerminal(ctx context.Context, mode refonte.Mode, uniqueID string, o Outcome) (Transition, error) {
	if o.TaskID == "" {
		return Transition{}, fmt.Errorf("store: record created %s: empty task ID", uniqueID)
	}
	return s.completeWith(ctx, "record created", recordCreatedTerminalScript, mode, uniqueID, o)
}

// completeWith runs sc (completeScript, or a script taking the same keys
// and arguments) for outcome o.
func (s *Store) completeWith(ctx context.Context, op string, sc *redis.Script, mode refonte.Mode, uniqueID string, o Outcome) (Transition, error) {
	to, ok := stateOfStatus(o.Status)
	if !ok {
		return Transition{}, fmt.Errorf("store: %s %s: status %q is not terminal", op, uniqueID, o.Status)
	}
	now := time.Now()
	at, own := o.At, !o.At.IsZero()
	if !own {
		at = now
	}
	keys := []string{s.jobKey(mode, uniqueID), s.inflightKey(mode), s.taskIdxKey(mode, o.TaskID)}
	return s.transition(ctx, op, sc, mode, uniqueID, keys,
		s.opts.Prefix, string(to), string(o.Status), o.Response, o.Error, ms(at), ms(now), s.ttlMS(), o.TaskID, uniqueID, own)
}

// Fail marks a job failed before or without a task at the API (a permanent
// API error such as 400): enqueued|submitted -> failed with the message.
func (s *Store) Fail(ctx context.Context, mode refonte.Mode, uniqueID, message string) (Transition, error) {
	keys := []string{s.jobKey(mode, uniqueID), s.inflightKey(mode)}
	return s.transition(ctx, "fail", failScript, mode, uniqueID, keys,
		s.opts.Prefix, message, ms(time.Now()), s.ttlMS(), uniqueID)
}

// Requeue moves a failed or canceled job back to enqueued for `enqueue
// retry` (failed|canceled -> enqueued, generation+1, error cleared); a run
// that was done goes back to running. It does not touch asynq: the caller queues the task
// again. The task ID is kept, so Submitted stays monotone; the delivery time
// is cleared, so the next outcome for the job applies whatever its time.
// Changed is false if it was neither failed nor canceled.
func (s *Store) Requeue(ctx context.Context, mode refonte.Mode, uniqueID string) (Transition, error) {
	return s.transition(ctx, "requeue", requeueScript, mode, uniqueID, []string{s.jobKey(mode, uniqueID)},
		s.opts.Prefix, ms(time.Now()), s.ttlMS())
}
