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

func (s *Store) complete(ctx context.Context, mode refonte.Mode, uniqueID string, o Outcome) (Transition, error) {
	return s.completeWith(ctx, "complete", completeScript, mode, uniqueID, o)
}

func (s *Store) recordCreatedTerminal(ctx context.Context, mode refonte.Mode, uniqueID string, o Outcome) (Transition, error) {
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

func (s *Store) fail(ctx context.Context, mode refonte.Mode, uniqueID, message string) (Transition, error) {
	keys := []string{s.jobKey(mode, uniqueID), s.inflightKey(mode)}
	return s.transition(ctx, "fail", failScript, mode, uniqueID, keys,
		s.opts.Prefix, message, ms(time.Now()), s.ttlMS(), uniqueID)
}

func (s *Store) requeue(ctx context.Context, mode refonte.Mode, uniqueID string) (Transition, error) {
	return s.transition(ctx, "requeue", requeueScript, mode, uniqueID, []string{s.jobKey(mode, uniqueID)},
		s.opts.Prefix, ms(time.Now()), s.ttlMS())
}
