// Package store keeps refonte-batch's own state in Redis, beside asynq's
// keys: the run records, one job record per dataset row, the task_id index,
// the set of submitted-but-not-completed jobs the reconciler polls, the
// results, and the live-mode daily spend counter.
//
// Every state transition is one Lua script (atomic) and idempotent, so the
// counters stay exact under retries, duplicate callbacks and crashes:
//
//	enqueued -> submitted -> completed | failed | canceled
//	enqueued -> completed | failed | canceled   (callback before the submit was recorded)
//	failed   -> enqueued                        (enqueue retry)
//
// A job record belongs to every run that contains its row: the run that
// first enqueued it and every later run that met the same unique_id (a
// re-run of the same dataset). Each transition updates the counters of all
// of them, so every run's counters account for all of its rows.
//
// All keys live under one prefix (default "refonte:") and expire after the
// retention period (default 14 days) counted from their last write.
//
// The scripts touch several keys (a job and all its runs; AddJobs also
// asynq's own keys), so the store needs a single-shard Redis: standalone or
// Sentinel, not Redis Cluster. See scripts.go for every script and its
// atomic guarantee.
package store

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/refonte-ai/refonte-batch/refonte"
)

// Defaults of Options.
const (
	DefaultPrefix    = "refonte:"
	DefaultRetention = 14 * 24 * time.Hour
	// DefaultKeptCallbacks is how many kept callbacks (unknown or
	// conflicting, see Store.KeepCallback) are kept at most.
	DefaultKeptCallbacks = 10000
	// DefaultKeptCallbackBytes is the Redis memory the kept callbacks may
	// take at most (16 MiB).
	DefaultKeptCallbackBytes = 16 << 20
)

// Sentinel errors of the store.
var (
	// ErrRunNotFound reports an unknown (or expired) run ID.
	ErrRunNotFound = errors.New("store: run not found")
	// ErrJobNotFound reports an unknown (or expired) job.
	ErrJobNotFound = errors.New("store: job not found")
	// ErrBadJob reports a NewJob AddJobs cannot write (a required field
	// is empty, or the unique_id holds a line break).
	ErrBadJob = errors.New("store: bad job")
	// ErrRunExists reports a CreateRun with the ID of an existing run.
	ErrRunExists = errors.New("store: run already exists")
)

// RunState is the state of a run.
type RunState string

// Run states.
const (
	// RunEnqueuing: enqueue is still reading the dataset.
	RunEnqueuing RunState = "enqueuing"
	// RunRunning: every row is queued; some are not terminal yet.
	RunRunning RunState = "running"
	// RunPaused: live rows wait for the daily spend cap (PausedReason says so).
	RunPaused RunState = "paused"
	// RunDone: every valid row is terminal (completed, failed or canceled).
	RunDone RunState = "done"
	// RunAborted: enqueue stopped on an error before reading the whole dataset.
	RunAborted RunState = "aborted"
	// RunCanceling: the operator canceled the run (enqueue cancel); some
	// rows are not terminal yet (tasks created before the cancel).
	RunCanceling RunState = "canceling"
	// RunCanceled: a canceled run whose every valid row is terminal.
	RunCanceled RunState = "canceled"
)

// Terminal reports whether the run state is final (done, canceled or aborted).
func (s RunState) Terminal() bool { return s == RunDone || s == RunCanceled || s == RunAborted }

// OperatorPausedReason is the PausedReason of a run paused by enqueue pause.
const OperatorPausedReason = "paused by operator"

// JobState is the state of one row's job.
type JobState string

// Job states.
const (
	JobEnqueued  JobState = "enqueued"
	JobSubmitted JobState = "submitted"
	JobCompleted JobState = "completed"
	JobFailed    JobState = "failed"
	JobCanceled  JobState = "canceled"
)

// Terminal reports whether the job state is final.
func (s JobState) Terminal() bool {
	return s == JobCompleted || s == JobFailed || s == JobCanceled
}

// Counters are a run's row counts. Rows = Valid + Invalid. Enqueued counts
// rows this run queued as new jobs, Duplicate rows whose unique_id already
// had a job (from this or an earlier run). Submitted counts rows whose task
// exists at the API (it never decreases); Completed, Failed and Canceled
// count rows currently in that terminal state.
type Counters struct {
	Rows      int64 `json:"rows"`
	Valid     int64 `json:"valid"`
	Invalid   int64 `json:"invalid"`
	Enqueued  int64 `json:"enqueued"`
	Duplicate int64 `json:"duplicate"`
	Submitted int64 `json:"submitted"`
	Completed int64 `json:"completed"`
	Failed    int64 `json:"failed"`
	Canceled  int64 `json:"canceled"`
	// CanceledBeforeSubmit counts canceled rows that never had a task
	// (canceled by enqueue cancel before their create); see
	// CanceledAfterSubmit.
	CanceledBeforeSubmit int64 `json:"canceled_before_submit"`
}

// CanceledAfterSubmit returns Canceled - CanceledBeforeSubmit: canceled
// rows that had a task (canceled at the API).
func (c Counters) CanceledAfterSubmit() int64 { return c.Canceled - c.CanceledBeforeSubmit }

// Terminal returns Completed + Failed + Canceled.
func (c Counters) Terminal() int64 { return c.Completed + c.Failed + c.Canceled }

// Run is a run record: one invocation of enqueue over one dataset.
type Run struct {
	ID          string           `json:"run_id"`
	Dataset     string           `json:"dataset"`
	Type        refonte.TaskType `json:"type,omitempty"` // "" when each row names its type
	Project     string           `json:"project,omitempty"`
	Batch       string           `json:"batch,omitempty"`
	Mode        refonte.Mode     `json:"mode"`
	CallbackURL string           `json:"callback_url,omitempty"`
	State       RunState         `json:"state"`
	// PausedReason says why a paused run waits (e.g. the live daily cap).
	PausedReason string    `json:"paused_reason,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	EnqueuedAt   time.Time `json:"enqueued_at,omitzero"`
	FinishedAt   time.Time `json:"finished_at,omitzero"`
	// BatchFinalized is set once the run's batch was finalized at the API.
	BatchFinalized bool `json:"batch_finalized,omitempty"`
	// AbortReason is the error that stopped enqueue (state RunAborted).
	AbortReason string `json:"abort_reason,omitempty"`
	// HeartbeatAt is the producer's last heartbeat (see Store.Heartbeat).
	HeartbeatAt time.Time `json:"heartbeat_at,omitzero"`
	// Stalled says the run is shown RunAborted because its producer
	// stopped beating while enqueuing (killed, or cut off from Redis); its
	// record still says enqueuing.
	Stalled bool `json:"stalled,omitempty"`
	// TerminalWithoutTask counts rows terminal without any task at the API
	// (in practice failed, such as a permanent 400 on create).
	TerminalWithoutTask int64 `json:"terminal_without_task,omitempty"`
	// Retrying counts the run's rows still queued whose last attempt at the
	// API failed: asynq retries them (a hanging or failing API shows here
	// long before a row fails).
	Retrying int64 `json:"retrying"`
	// LastError is the newest API error of any of the run's attempts
	// (at most MaxRunErrorBytes), LastErrorAt its time.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Conflicts counts deliveries for the run's rows that the replay rule
	// refused (see Store.Complete): they changed nothing.
	Conflicts int64 `json:"conflicting_deliveries,omitempty"`
	// CancelRequestedAt is when enqueue cancel was first run (zero: never).
	CancelRequestedAt time.Time `json:"cancel_requested_at,omitzero"`
	// CancelTasks is set when a cancel asked (-tasks) to cancel created
	// tasks at the API too.
	CancelTasks bool `json:"cancel_tasks,omitempty"`
	// OperatorPaused is set while enqueue pause holds the run.
	OperatorPaused bool `json:"operator_paused,omitempty"`
	// Priority is the run's submit priority (high, normal or low).
	Priority string `json:"priority,omitempty"`
	// ReadSpec is how enqueue read the run's dataset, so that its rows can
	// be read again identically (enqueue results -join); nil for runs
	// enqueued by a version that did not record it.
	ReadSpec *ReadSpec `json:"read_spec,omitempty"`
	Counters
}

// ReadSpec is what it takes, beside the run's Type, Project, Batch and
// CallbackURL, to read a run's dataset again into the same rows: the
// submit's -format, -id-column, -instruction and -params. It is stored on
// the run record as one JSON field.
type ReadSpec struct {
	// Format is the dataset's syntax: "csv" or "jsonl".
	Format string `json:"format"`
	// IDColumn is the submit's -id-column.
	IDColumn string `json:"id_column,omitempty"`
	// Instruction is the submit's -instruction.
	Instruction string `json:"instruction,omitempty"`
	// Params is the submit's -params object (compact JSON), or empty.
	Params json.RawMessage `json:"params,omitempty"`
}

// AllSubmitted reports whether enqueue finished and every valid row has a
// task at the API or is terminal without one: the moment to finalize the run's
// batch (see Store.ClaimBatchFinalize).
func (r *Run) AllSubmitted() bool {
	return r.State != RunEnqueuing && r.State != RunAborted && r.Submitted+r.TerminalWithoutTask >= r.Valid
}

// Job is one row's job record.
type Job struct {
	Mode     refonte.Mode     `json:"mode"`
	UniqueID string           `json:"unique_id"`
	Run      string           `json:"run"` // the run that first enqueued it
	Line     int64            `json:"line"`
	TaskType refonte.TaskType `json:"task_type"`
	State    JobState         `json:"state"`
	TaskID   string           `json:"task_id,omitempty"`
	// Status is the API's task status from the newest callback or poll.
	Status   refonte.TaskStatus `json:"status,omitempty"`
	Attempts int64              `json:"attempts"`
	// Error is the last error: the API's message for a failed job.
	Error string `json:"error,omitempty"`
	// Response is the task's response JSON from the newest delivery.
	Response    json.RawMessage `json:"response,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	SubmittedAt time.Time       `json:"submitted_at,omitzero"`
	// DeliveredAt orders deliveries: a callback or poll older than this is ignored (newest wins).
	DeliveredAt time.Time `json:"delivered_at,omitzero"`
	UpdatedAt   time.Time `json:"updated_at"`
	// Generation counts `enqueue retry` re-queues of a failed job.
	Generation int64 `json:"generation,omitempty"`
	// Fingerprint identifies the content the job was enqueued with
	// (NewJob.Fingerprint); empty for records older than fingerprints.
	Fingerprint string `json:"-"`
}

// RunRow is one row of a run, in dataset order: its line and unique_id.
type RunRow struct {
	Line     int64
	UniqueID string
}
