package store

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/refonte"
)

// Options configures a Store. The zero value uses the defaults.
type Options struct {
	// Prefix of every key. Default DefaultPrefix.
	Prefix string
	// Retention is the TTL of run and job keys after their last write. Default DefaultRetention.
	Retention time.Duration
	// KeptCallbacks is how many kept callbacks (see KeepCallback) are kept
	// at most. Default DefaultKeptCallbacks.
	KeptCallbacks int
	// KeptCallbackBytes is how many bytes the kept callbacks take at most
	// in Redis. Default DefaultKeptCallbackBytes.
	KeptCallbackBytes int64
}

// Store is the Redis state of runs and jobs. It is safe for concurrent use.
type Store struct {
	rdb  redis.UniversalClient
	opts Options
}

// New returns a Store on rdb.
func New(rdb redis.UniversalClient, opts Options) *Store {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.KeptCallbacks <= 0 {
		opts.KeptCallbacks = DefaultKeptCallbacks
	}
	if opts.KeptCallbackBytes <= 0 {
		opts.KeptCallbackBytes = DefaultKeptCallbackBytes
	}
	return &Store{rdb: rdb, opts: opts}
}

// Redis returns the client the store uses.
func (s *Store) Redis() redis.UniversalClient { return s.rdb }

// NewRunID returns a new, time-sortable run ID such as "r20261127-021503-9f3a1c".
func NewRunID(now time.Time) string { return newRunID(now) }

// CreateRun writes a new run record in state RunEnqueuing.
func (s *Store) CreateRun(ctx context.Context, run *Run) error { return s.createRun(ctx, run) }

// GetRun reads a run record (ErrRunNotFound if absent).
func (s *Store) GetRun(ctx context.Context, runID string) (*Run, error) { return s.getRun(ctx, runID) }

// ListRuns returns up to limit runs, newest first.
func (s *Store) ListRuns(ctx context.Context, limit int) ([]*Run, error) {
	return s.listRuns(ctx, limit)
}

// AddInvalid counts n invalid rows in the run (rows and invalid counters).
func (s *Store) AddInvalid(ctx context.Context, runID string, n int64) error {
	return s.addInvalid(ctx, runID, n)
}

// NewJob is a valid row to add to a run, with the asynq task that submits it.
// The caller builds the asynq fields with package jobs (jobs.TypeSubmit,
// jobs.Queue, jobs.TaskID, the encoded jobs.SubmitPayload), so this package
// does not import jobs.
type NewJob struct {
	Line     int64
	UniqueID string
	TaskType refonte.TaskType
	// Fingerprint identifies the row's content (dataset.Row.Fingerprint);
	// empty skips the content check.
	Fingerprint string
	// The asynq task: type name, queue, task ID, payload, retry and timeout.
	AsynqType string
	Queue     string
	TaskID    string
	Payload   []byte
	MaxRetry  int
	Timeout   time.Duration
}

// AddOutcome says what AddJobs did with one row.
type AddOutcome int

// Outcomes of AddJobs.
const (
	// AddedNew: a new job record and its asynq task were written.
	AddedNew AddOutcome = iota + 1
	// AddedDuplicate: the unique_id already had a job; this run now follows it.
	AddedDuplicate
	// AddedRepaired: the unique_id had a job still in state enqueued whose
	// asynq task was missing (lost in a Redis crash); the task was written
	// again. Counted as duplicate in the run.
	AddedRepaired
	// AddedConflict: the unique_id already had a job whose content
	// fingerprint differs from the row's: two different tasks under one ID.
	// Nothing was written for the row; it is counted invalid in the run
	// (and not among its rows for RunRows). GetJob tells where the ID was
	// first used (its run and line).
	AddedConflict
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
	return s.addJobs(ctx, run, jobs)
}

// FinishEnqueue marks the end of enqueuing: the run goes to RunRunning,
// RunPaused if SetPaused paused it meanwhile, or RunDone if every valid row
// is already terminal (no Transition reports
// that; see Run.AllSubmitted for runs whose batch still needs finalizing).
// It is a no-op for a run no longer enqueuing.
func (s *Store) FinishEnqueue(ctx context.Context, runID string) error {
	return s.finishEnqueue(ctx, runID)
}

// AbortRun marks a run RunAborted with the error that stopped enqueue.
func (s *Store) AbortRun(ctx context.Context, runID string, reason string) error {
	return s.abortRun(ctx, runID, reason)
}

// Transition is what a job transition did.
type Transition struct {
	// Changed is false when the call was a no-op (a duplicate delivery, an older one, a repeated call).
	Changed bool
	// From and To are the job's states before and after.
	From, To JobState
	// RunsDone lists runs that became RunDone by this transition.
	RunsDone []string
	// RunsAllSubmitted lists runs whose every valid row now has a task at the
	// API or is terminal without one (the moment to finalize the run's
	// batch). Each run is reported once, by the first transition after
	// FinishEnqueue that finds it so; ClaimBatchFinalize makes acting on it
	// once safe.
	RunsAllSubmitted []string
	// Conflict is set when Complete refused a delivery by the replay rule
	// (see Complete): the job and the run counters are unchanged, but each
	// of the job's runs counts it in Run.Conflicts.
	Conflict ConflictReason
	// CancelAtAPI is set by MarkSubmitted and RecordCreated when every run
	// of the job was canceled with -tasks (enqueue cancel -tasks) while its
	// create was in flight: the task just recorded is to be canceled at the
	// API.
	CancelAtAPI bool
}

// ConflictReason says why Complete refused a delivery.
type ConflictReason string

// Reasons of a conflicting delivery.
const (
	// ConflictForeignTask: the delivery names another task than the one
	// recorded for the job (submitted or terminal).
	ConflictForeignTask ConflictReason = "foreign_task"
	// ConflictNotNewer: the job is terminal and the delivery, with another
	// status or response, is not strictly newer by the task's timestamps.
	ConflictNotNewer ConflictReason = "not_newer"
	// ConflictNoTimestamp: the job is terminal and the delivery, with
	// another status or response, carries no timestamp of the task.
	ConflictNoTimestamp ConflictReason = "no_timestamp"
)

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

// RecordCreatedTerminal records a successful create whose answer already
// holds the task in a terminal state (o, with the created task's ID), in
// one atomic step: what RecordCreated then Complete(o) do, in one round
// trip instead of two.
func (s *Store) RecordCreatedTerminal(ctx context.Context, mode refonte.Mode, uniqueID string, o Outcome) (Transition, error) {
	return s.recordCreatedTerminal(ctx, mode, uniqueID, o)
}

// Outcome is a task's terminal outcome, from a callback or a poll.
type Outcome struct {
	TaskID   string
	Status   refonte.TaskStatus // completed, error or canceled
	Response []byte             // raw response JSON
	Error    string             // the API's reason for an error
	// At orders deliveries: the task's own timestamp (its updated_at, else
	// completed_at), or zero when the delivery carries none (the time of
	// receipt is recorded then, and the outcome cannot replace a terminal one).
	At time.Time
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
	return s.complete(ctx, mode, uniqueID, o)
}

// Fail marks a job failed before or without a task at the API (a permanent
// API error such as 400): enqueued|submitted -> failed with the message.
func (s *Store) Fail(ctx context.Context, mode refonte.Mode, uniqueID, message string) (Transition, error) {
	return s.fail(ctx, mode, uniqueID, message)
}

// RecordAttempt counts one submission attempt and keeps its error ("" on success).
func (s *Store) RecordAttempt(ctx context.Context, mode refonte.Mode, uniqueID, lastError string) error {
	return s.recordAttempt(ctx, mode, uniqueID, lastError)
}

// Requeue moves a failed or canceled job back to enqueued for `enqueue
// retry` (failed|canceled -> enqueued, generation+1, error cleared); a run
// that was done goes back to running. It does not touch asynq: the caller queues the task
// again. The task ID is kept, so Submitted stays monotone; the delivery time
// is cleared, so the next outcome for the job applies whatever its time.
// Changed is false if it was neither failed nor canceled.
func (s *Store) Requeue(ctx context.Context, mode refonte.Mode, uniqueID string) (Transition, error) {
	return s.requeue(ctx, mode, uniqueID)
}

// GetJob reads a job record (ErrJobNotFound if absent).
func (s *Store) GetJob(ctx context.Context, mode refonte.Mode, uniqueID string) (*Job, error) {
	return s.getJob(ctx, mode, uniqueID)
}

// UniqueIDByTaskID looks a task ID up in the index (ErrJobNotFound if absent).
func (s *Store) UniqueIDByTaskID(ctx context.Context, mode refonte.Mode, taskID string) (string, error) {
	return s.uniqueIDByTaskID(ctx, mode, taskID)
}

// InFlightBefore returns up to limit unique_ids of jobs submitted before t
// and not terminal yet, oldest first (the reconciler's work list).
func (s *Store) InFlightBefore(ctx context.Context, mode refonte.Mode, t time.Time, limit int) ([]string, error) {
	return s.inFlightBefore(ctx, mode, t, limit)
}

// RunRows calls fn for every row of the run in dataset order, with the
// job record (nil if it expired), fetching jobs in pipelined pages of about
// 1,000 rows. It stops at fn's first error and returns it.
func (s *Store) RunRows(ctx context.Context, runID string, fn func(RunRow, *Job) error) error {
	return s.runRows(ctx, runID, fn)
}

// KeepCallback keeps what diagnosis needs of a callback that changed
// nothing (a KeptCallback: its kind, the task it names, the first
// KeptHeadBytes of the body and the body's size), newest first, within
// both Options.KeptCallbacks entries and Options.KeptCallbackBytes bytes:
// the oldest entries are dropped to make room. It returns how many were
// dropped (also counted in KeptCallbackStats). An unknown callback is
// counted per mode too (UnknownCallbackCount).
func (s *Store) KeepCallback(ctx context.Context, k KeptCallback, body []byte) (dropped int64, err error) {
	return s.keepCallback(ctx, k, body)
}

// KeptCallbacks returns up to limit kept callbacks, newest first.
func (s *Store) KeptCallbacks(ctx context.Context, limit int) ([]KeptCallback, error) {
	return s.keptCallbacks(ctx, limit)
}

// ClaimBatchFinalize sets the run's BatchFinalized flag and reports whether
// this caller set it (true exactly once per run).
func (s *Store) ClaimBatchFinalize(ctx context.Context, runID string) (bool, error) {
	return s.claimBatchFinalize(ctx, runID)
}

// SetPaused sets (reason != "") or clears (reason == "") the paused state of
// a run that is running; a paused run returns to running when cleared. While
// the run is still enqueuing only the reason is kept (shown by status), and
// FinishEnqueue makes the run paused. Done and aborted runs are left alone.
func (s *Store) SetPaused(ctx context.Context, runID, reason string) error {
	return s.setPaused(ctx, runID, reason)
}

// ReserveLiveSpend atomically reserves one live task under the daily cap of
// the UTC day of now: it returns true and counts it if the day's count is
// below limit (limit <= 0 means no cap), else false and counts nothing.
func (s *Store) ReserveLiveSpend(ctx context.Context, now time.Time, limit int64) (bool, error) {
	return s.reserveLiveSpend(ctx, now, limit)
}

// ReleaseLiveSpend gives back one reservation of the UTC day of reservedAt
// (the create failed permanently, so no task was billed).
func (s *Store) ReleaseLiveSpend(ctx context.Context, reservedAt time.Time) error {
	return s.releaseLiveSpend(ctx, reservedAt)
}

// LiveSpend returns the live tasks counted for the UTC day of now.
func (s *Store) LiveSpend(ctx context.Context, now time.Time) (int64, error) {
	return s.liveSpend(ctx, now)
}
