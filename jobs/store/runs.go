package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/refonte"
)

// Key names, all under Options.Prefix.
func (s *Store) runKey(id string) string     { return s.opts.Prefix + "run:" + id }
func (s *Store) runRowsKey(id string) string { return s.opts.Prefix + "run:" + id + ":rows" }
func (s *Store) runsKey() string             { return s.opts.Prefix + "runs" }
func (s *Store) jobKey(m refonte.Mode, uid string) string {
	return s.opts.Prefix + "job:" + string(m) + ":" + uid
}
func (s *Store) taskIdxKey(m refonte.Mode, taskID string) string {
	return s.opts.Prefix + "taskidx:" + string(m) + ":" + taskID
}
func (s *Store) inflightKey(m refonte.Mode) string { return s.opts.Prefix + "inflight:" + string(m) }
func (s *Store) keptKey() string                   { return s.opts.Prefix + "kept-callbacks" }
func (s *Store) keptBytesKey() string              { return s.opts.Prefix + "kept-callbacks:bytes" }
func (s *Store) keptDroppedKey() string            { return s.opts.Prefix + "kept-callbacks:dropped" }

// legacyUnknownKey is the list of whole unknown callback bodies of earlier
// versions, removed by the first KeepCallback.
func (s *Store) legacyUnknownKey() string { return s.opts.Prefix + "unknown-callbacks" }
func (s *Store) unknownCountKey(m refonte.Mode) string {
	return s.opts.Prefix + "unknown-callbacks:count:" + string(m)
}
func (s *Store) spendKey(t time.Time) string {
	return s.opts.Prefix + "live-spend:" + t.UTC().Format("2006-01-02")
}

func (s *Store) ttlMS() int64 { return s.opts.Retention.Milliseconds() }

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v string) time.Time {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

// NewRunID returns a new, time-sortable run ID such as "r20261127-021503-9f3a1c".
func NewRunID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return "r" + now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// scriptInt runs a script returning an integer.
func (s *Store) scriptInt(ctx context.Context, sc *redis.Script, keys []string, args ...any) (int64, error) {
	return sc.Run(ctx, s.rdb, keys, args...).Int64()
}

// CreateRun writes a new run record in state RunEnqueuing.
func (s *Store) CreateRun(ctx context.Context, run *Run) error {
	if _, err := refonte.ParseMode(string(run.Mode)); err != nil {
		return fmt.Errorf("store: create run: %w", err)
	}
	now := time.Now()
	if run.ID == "" {
		run.ID = NewRunID(now)
	}
	if run.CreatedAt.IsZero() {
		run.CreatedAt = now.UTC().Truncate(time.Millisecond)
	}
	run.State = RunEnqueuing
	args := []any{run.ID, ms(run.CreatedAt), s.ttlMS(), ms(now.Add(-s.opts.Retention)),
		"dataset", run.Dataset, "mode", string(run.Mode), "state", string(run.State),
		"created_at", ms(run.CreatedAt),
	}
	for _, kv := range [][2]string{
		{"type", string(run.Type)}, {"project", run.Project}, {"batch", run.Batch},
		{"callback_url", run.CallbackURL}, {"priority", run.Priority},
	} {
		if kv[1] != "" {
			args = append(args, kv[0], kv[1])
		}
	}
	if run.ReadSpec != nil {
		b, err := json.Marshal(run.ReadSpec)
		if err != nil {
			return fmt.Errorf("store: create run: read spec: %w", err)
		}
		args = append(args, "read_spec", string(b))
	}
	n, err := s.scriptInt(ctx, createRunScript, []string{s.runKey(run.ID), s.runsKey()}, args...)
	if err != nil {
		return fmt.Errorf("store: create run %s: %w", run.ID, err)
	}
	if n == -2 {
		return fmt.Errorf("%w: %s", ErrRunExists, run.ID)
	}
	return nil
}

// GetRun reads a run record (ErrRunNotFound if absent).
func (s *Store) GetRun(ctx context.Context, runID string) (*Run, error) {
	m, err := s.rdb.HGetAll(ctx, s.runKey(runID)).Result()
	if err != nil {
		return nil, fmt.Errorf("store: get run %s: %w", runID, err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrRunNotFound, runID)
	}
	return parseRun(runID, m), nil
}

func parseRun(id string, m map[string]string) *Run {
	i := func(k string) int64 { n, _ := strconv.ParseInt(m[k], 10, 64); return n }
	r := &Run{
		ID:                  id,
		Dataset:             m["dataset"],
		Type:                refonte.TaskType(m["type"]),
		Project:             m["project"],
		Batch:               m["batch"],
		Mode:                refonte.Mode(m["mode"]),
		CallbackURL:         m["callback_url"],
		State:               RunState(m["state"]),
		PausedReason:        m["paused_reason"],
		AbortReason:         m["abort_reason"],
		CreatedAt:           fromMS(m["created_at"]),
		EnqueuedAt:          fromMS(m["enqueued_at"]),
		FinishedAt:          fromMS(m["finished_at"]),
		BatchFinalized:      m["finalized"] == "1",
		TerminalWithoutTask: i("notask"),
		Retrying:            max(i("retrying"), 0),
		LastError:           m["last_error"],
		LastErrorAt:         fromMS(m["last_error_at"]),
		Conflicts:           i("conflicts"),
		CancelRequestedAt:   fromMS(m["cancel"]),
		CancelTasks:         m["cancel_tasks"] == "1",
		OperatorPaused:      m["op_paused"] == "1",
		Priority:            m["priority"],
		Counters: Counters{
			Rows: i("rows"), Valid: i("valid"), Invalid: i("invalid"),
			Enqueued: i("enqueued"), Duplicate: i("duplicate"), Submitted: i("submitted"),
			Completed: i("completed"), Failed: i("failed"), Canceled: i("canceled"),
			CanceledBeforeSubmit: i("cancel_nosub"),
		},
	}
	if v := m["read_spec"]; v != "" {
		var spec ReadSpec
		if json.Unmarshal([]byte(v), &spec) == nil {
			r.ReadSpec = &spec
		}
	}
	applyHeartbeat(r, m, time.Now())
	return r
}

// ListRuns returns up to limit runs, newest first.
func (s *Store) ListRuns(ctx context.Context, limit int) ([]*Run, error) {
	if limit <= 0 {
		return nil, nil
	}
	ids, err := s.rdb.ZRevRange(ctx, s.runsKey(), 0, int64(limit-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("store: list runs: %w", err)
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, s.runKey(id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list runs: %w", err)
	}
	runs := make([]*Run, 0, len(ids))
	for i, c := range cmds {
		if m := c.Val(); len(m) > 0 {
			runs = append(runs, parseRun(ids[i], m))
		}
	}
	return runs, nil
}

// runScript runs a single-run script returning 1/0/-1 and maps -1 to ErrRunNotFound.
func (s *Store) runScript(ctx context.Context, op, runID string, sc *redis.Script, args ...any) (int64, error) {
	n, err := s.scriptInt(ctx, sc, []string{s.runKey(runID)}, args...)
	if err != nil {
		return 0, fmt.Errorf("store: %s %s: %w", op, runID, err)
	}
	if n == -1 {
		return 0, fmt.Errorf("store: %s: %w: %s", op, ErrRunNotFound, runID)
	}
	return n, nil
}

// AddInvalid counts n invalid rows in the run (rows and invalid counters).
func (s *Store) AddInvalid(ctx context.Context, runID string, n int64) error {
	if n == 0 {
		return nil
	}
	_, err := s.runScript(ctx, "add invalid", runID, addInvalidScript, n, s.ttlMS())
	return err
}

// FinishEnqueue marks the end of enqueuing: the run goes to RunRunning,
// RunPaused if SetPaused paused it meanwhile, or RunDone if every valid row
// is already terminal (no Transition reports
// that; see Run.AllSubmitted for runs whose batch still needs finalizing).
// It is a no-op for a run no longer enqueuing.
func (s *Store) FinishEnqueue(ctx context.Context, runID string) error {
	_, err := s.runScript(ctx, "finish enqueue", runID, finishEnqueueScript, ms(time.Now()), s.ttlMS())
	return err
}

// AbortRun marks a run RunAborted with the error that stopped enqueue.
func (s *Store) AbortRun(ctx context.Context, runID string, reason string) error {
	_, err := s.runScript(ctx, "abort run", runID, abortRunScript, reason, ms(time.Now()), s.ttlMS())
	return err
}

// ClaimBatchFinalize sets the run's BatchFinalized flag and reports whether
// this caller set it (true exactly once per run).
func (s *Store) ClaimBatchFinalize(ctx context.Context, runID string) (bool, error) {
	n, err := s.runScript(ctx, "claim batch finalize", runID, claimFinalizeScript, s.ttlMS())
	return n == 1, err
}

// SetPaused sets (reason != "") or clears (reason == "") the paused state of
// a run that is running; a paused run returns to running when cleared. While
// the run is still enqueuing only the reason is kept (shown by status), and
// FinishEnqueue makes the run paused. Done and aborted runs are left alone.
func (s *Store) SetPaused(ctx context.Context, runID, reason string) error {
	_, err := s.runScript(ctx, "set paused", runID, setPausedScript, reason, s.ttlMS())
	return err
}

// isNotFound reports a Redis nil reply.
func isNotFound(err error) bool { return errors.Is(err, redis.Nil) }
