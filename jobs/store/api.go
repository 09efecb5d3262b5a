package store

import (
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/internal/defaults"
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
	opts.Retention = defaults.Positive(opts.Retention, DefaultRetention)
	opts.KeptCallbacks = defaults.Positive(opts.KeptCallbacks, DefaultKeptCallbacks)
	opts.KeptCallbackBytes = defaults.Positive(opts.KeptCallbackBytes, DefaultKeptCallbackBytes)
	return &Store{rdb: rdb, opts: opts}
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
