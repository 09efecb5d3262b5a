package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/jobs/store/asynqwire"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// Batching of AddJobs: rows per script call, script calls per pipeline.
const (
	addChunk    = 256
	addPipeline = 32
	rowsPage    = 1000
)

// AddJobs adds valid rows to a run. For each row, atomically: if no job
// record exists for (run.Mode, unique_id), it writes the job record (state
// enqueued, counted in the run's rows, valid and enqueued) AND the pending
// asynq task in asynq v0.26's own Redis format, so a crash can never leave a
// record without its queued task or a task without its record; if a record
// exists with the same content fingerprint (or either has none), the run
// follows that job (rows, valid, duplicate, and the counter of the job's
// current state) and, if the job is still enqueued but its asynq task is
// gone, the task is written again; if it exists with a different
// fingerprint, the row is a conflict (AddedConflict: counted rows and
// invalid, nothing else written). It returns one outcome per
// row, in order. Rows are written in pipelined batches of 256 rows, one Lua
// script each. An existing asynq task with the row's task ID (enqueued by
// asynq.Client, say) is never overwritten nor queued twice.
//
// AddJobs may be called concurrently: each call should hold contiguous
// lines (in any order) so that RunRows returns the rows in dataset order.
// A unique_id must not contain a line break (ErrBadJob).
func (s *Store) AddJobs(ctx context.Context, run *Run, jobs []NewJob) ([]AddOutcome, error) {
	if run == nil || run.ID == "" {
		return nil, fmt.Errorf("%w: empty run ID", ErrRunNotFound)
	}
	if _, err := refonte.ParseMode(string(run.Mode)); err != nil {
		return nil, fmt.Errorf("store: add jobs to run %s: %w", run.ID, err)
	}
	for i := range jobs { // refuse a bad row before writing anything
		if err := checkJob(&jobs[i]); err != nil {
			return nil, fmt.Errorf("store: add jobs to run %s: %w", run.ID, err)
		}
	}
	out := make([]AddOutcome, 0, len(jobs))
	var msg []byte
	for start := 0; start < len(jobs); start += addChunk * addPipeline {
		end := min(start+addChunk*addPipeline, len(jobs))
		window := jobs[start:end]
		now := time.Now()
		type call struct {
			keys []string
			args []any
			cmd  *redis.Cmd
		}
		calls := make([]call, 0, (len(window)+addChunk-1)/addChunk)
		for c := 0; c < len(window); c += addChunk {
			rows := window[c:min(c+addChunk, len(window))]
			keys := make([]string, 0, 3+3*len(rows))
			args := make([]any, 0, 6+6*len(rows))
			packed, first := packRows(rows)
			keys = append(keys, s.runKey(run.ID), s.runRowsKey(run.ID), asynqwire.AllQueues)
			args = append(args, run.ID, ms(now), now.UnixNano(), s.ttlMS(), packed, first)
			for i := range rows {
				j := &rows[i]
				msg = asynqwire.AppendMessage(msg[:0], &asynqwire.Task{Type: j.AsynqType, Payload: j.Payload, ID: j.TaskID,
					Queue: j.Queue, MaxRetry: j.MaxRetry, Timeout: j.Timeout})
				keys = append(keys, s.jobKey(run.Mode, j.UniqueID), asynqwire.TaskKey(j.Queue, j.TaskID), asynqwire.PendingKey(j.Queue))
				args = append(args, j.Line, string(j.TaskType), j.TaskID, j.Queue, string(msg), j.Fingerprint)
			}
			calls = append(calls, call{keys: keys, args: args})
		}
		_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range calls {
				calls[i].cmd = addJobsScript.EvalSha(ctx, p, calls[i].keys, calls[i].args...)
			}
			return nil
		})
		for i := range calls {
			v, err := calls[i].cmd.Result()
			if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
				// Script cache empty (new or restarted Redis): this call did not run.
				v, err = addJobsScript.Run(ctx, s.rdb, calls[i].keys, calls[i].args...).Result()
			}
			if err != nil {
				return out, fmt.Errorf("store: add jobs to run %s after %d rows: %w", run.ID, len(out), err)
			}
			switch v := v.(type) {
			case int64: // -1: no run
				return out, fmt.Errorf("store: add jobs: %w: %s", ErrRunNotFound, run.ID)
			case []any:
				for _, r := range v {
					n, _ := r.(int64)
					out = append(out, AddOutcome(n))
				}
			default:
				return out, fmt.Errorf("store: add jobs to run %s: unexpected reply %T", run.ID, v)
			}
		}
	}
	return out, nil
}

// GetJob reads a job record (ErrJobNotFound if absent).
func (s *Store) GetJob(ctx context.Context, mode refonte.Mode, uniqueID string) (*Job, error) {
	m, err := s.rdb.HGetAll(ctx, s.jobKey(mode, uniqueID)).Result()
	if err != nil {
		return nil, fmt.Errorf("store: get job %s: %w", uniqueID, err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%w: %s %s", ErrJobNotFound, mode, uniqueID)
	}
	return parseJob(mode, uniqueID, m), nil
}

func parseJob(mode refonte.Mode, uid string, m map[string]string) *Job {
	i := func(k string) int64 { n, _ := strconv.ParseInt(m[k], 10, 64); return n }
	j := &Job{
		Mode:        mode,
		UniqueID:    uid,
		Run:         m["run"],
		Line:        i("line"),
		TaskType:    refonte.TaskType(m["type"]),
		State:       JobState(m["state"]),
		TaskID:      m["task_id"],
		Status:      refonte.TaskStatus(m["status"]),
		Attempts:    i("attempts"),
		Error:       m["error"],
		CreatedAt:   fromMS(m["created"]),
		SubmittedAt: fromMS(m["submitted"]),
		DeliveredAt: fromMS(m["delivered"]),
		UpdatedAt:   fromMS(m["updated"]),
		Generation:  i("generation"),
		Fingerprint: m["fp"],
	}
	if first, _, _ := strings.Cut(m["runs"], " "); j.Run == "" {
		j.Run = first
	}
	if j.UpdatedAt.IsZero() {
		j.UpdatedAt = j.CreatedAt
	}
	if r := m["response"]; r != "" {
		j.Response = []byte(r)
	}
	return j
}

// UniqueIDByTaskID looks a task ID up in the index (ErrJobNotFound if absent).
func (s *Store) UniqueIDByTaskID(ctx context.Context, mode refonte.Mode, taskID string) (string, error) {
	v, err := s.rdb.Get(ctx, s.taskIdxKey(mode, taskID)).Result()
	if isNotFound(err) {
		return "", fmt.Errorf("%w: task %s", ErrJobNotFound, taskID)
	}
	if err != nil {
		return "", fmt.Errorf("store: task index %s: %w", taskID, err)
	}
	return v, nil
}

// InFlightBefore returns up to limit unique_ids of jobs submitted before t
// and not terminal yet, oldest first (the reconciler's work list).
func (s *Store) InFlightBefore(ctx context.Context, mode refonte.Mode, t time.Time, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	key := s.inflightKey(mode)
	// Entries older than the retention belong to expired jobs.
	cutoff := time.Now().Add(-s.opts.Retention)
	if err := s.rdb.ZRemRangeByScore(ctx, key, "-inf", "("+strconv.FormatInt(ms(cutoff), 10)).Err(); err != nil {
		return nil, fmt.Errorf("store: in-flight: %w", err)
	}
	ids, err := s.rdb.ZRangeByScore(ctx, key, &redis.ZRangeBy{
		Min: "-inf", Max: "(" + strconv.FormatInt(ms(t), 10), Count: int64(limit),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("store: in-flight: %w", err)
	}
	return ids, nil
}

// checkJob reports a row AddJobs cannot write.
func checkJob(j *NewJob) error {
	if j.UniqueID == "" || j.TaskID == "" || j.Queue == "" || j.AsynqType == "" {
		return fmt.Errorf("line %d: %w: unique_id, task ID, queue and type are required", j.Line, ErrBadJob)
	}
	if strings.ContainsAny(j.UniqueID, "\n\r") {
		return fmt.Errorf("line %d: %w: unique_id holds a line break", j.Line, ErrBadJob)
	}
	return nil
}

// packRows packs the "line:unique_id" lines of a non-empty batch of rows,
// sorted by line, into one string; it returns it with the first line.
func packRows(rows []NewJob) (string, int64) {
	idx := make([]int, len(rows))
	n := 0
	for i := range rows {
		idx[i] = i
		n += len(rows[i].UniqueID) + 21
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(rows[a].Line, rows[b].Line) })
	var b strings.Builder
	b.Grow(n)
	for k, i := range idx {
		if k > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(strconv.FormatInt(rows[i].Line, 10))
		b.WriteByte(':')
		b.WriteString(rows[i].UniqueID)
	}
	return b.String(), rows[idx[0]].Line
}

// unpackRows parses a rows zset member: "seq\nline:uid\nline:uid...".
func unpackRows(member string, dst []RunRow) []RunRow {
	_, rest, _ := strings.Cut(member, "\n")
	for rest != "" {
		var it string
		it, rest, _ = strings.Cut(rest, "\n")
		line, uid, _ := strings.Cut(it, ":")
		n, _ := strconv.ParseInt(line, 10, 64)
		dst = append(dst, RunRow{Line: n, UniqueID: uid})
	}
	return dst
}

// eachRowPage calls fn with the run's rows in dataset order, in pages of
// about rowsPage rows (the slice is reused between calls). It stops at
// fn's first error and returns it.
func (s *Store) eachRowPage(ctx context.Context, runID string, fn func([]RunRow) error) error {
	key := s.runRowsKey(runID)
	const chunksPage = (rowsPage + addChunk - 1) / addChunk
	var rows []RunRow
	for start := int64(0); ; start += chunksPage {
		members, err := s.rdb.ZRange(ctx, key, start, start+chunksPage-1).Result()
		if err != nil {
			return fmt.Errorf("store: rows of run %s: %w", runID, err)
		}
		rows = rows[:0]
		for _, m := range members {
			rows = unpackRows(m, rows)
		}
		if err := fn(rows); err != nil {
			return err
		}
		if len(members) < chunksPage {
			return nil
		}
	}
}

// RunRows calls fn for every row of the run in dataset order, with the
// job record (nil if it expired), fetching jobs in pipelined pages of about
// 1,000 rows. It stops at fn's first error and returns it.
func (s *Store) RunRows(ctx context.Context, runID string, fn func(RunRow, *Job) error) error {
	run, err := s.GetRun(ctx, runID)
	if err != nil {
		return err
	}
	return s.eachRowPage(ctx, runID, func(rows []RunRow) error {
		cmds := make([]*redis.MapStringStringCmd, len(rows))
		if len(rows) > 0 {
			_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i, r := range rows {
					cmds[i] = p.HGetAll(ctx, s.jobKey(run.Mode, r.UniqueID))
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("store: rows of run %s: %w", runID, err)
			}
		}
		for i, r := range rows {
			var j *Job
			if m := cmds[i].Val(); len(m) > 0 {
				j = parseJob(run.Mode, r.UniqueID, m)
			}
			if err := fn(r, j); err != nil {
				return err
			}
		}
		return nil
	})
}

// RecordAttempt counts one submission attempt and keeps its error ("" on success).
func (s *Store) RecordAttempt(ctx context.Context, mode refonte.Mode, uniqueID, lastError string) error {
	n, err := s.scriptInt(ctx, recordAttemptScript, []string{s.jobKey(mode, uniqueID)}, lastError, ms(time.Now()), s.ttlMS(),
		s.opts.Prefix, cutUTF8(lastError, MaxRunErrorBytes))
	if err != nil {
		return fmt.Errorf("store: record attempt %s: %w", uniqueID, err)
	}
	if n == -1 {
		return fmt.Errorf("%w: %s %s", ErrJobNotFound, mode, uniqueID)
	}
	return nil
}

// MaxRunErrorBytes bounds the last API error kept on a run record
// (Run.LastError); longer errors are cut and end with "…".
const MaxRunErrorBytes = 512

// cutUTF8 returns s cut to at most limit bytes at a UTF-8 boundary, ending
// with "…" when it was cut.
func cutUTF8(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	const ell = "…"
	cut := limit - len(ell)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:max(cut, 0)] + ell
}
