package enqueue

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/internal/datasrc"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/dataset"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// StatusReport is a run's state and counters (status -json, runs -json).
type StatusReport struct {
	RunID        string         `json:"run_id"`
	State        store.RunState `json:"state"`
	PausedReason string         `json:"paused_reason,omitempty"`
	AbortReason  string         `json:"abort_reason,omitempty"`
	store.Counters
	// Retrying counts rows still queued whose last API attempt failed
	// (asynq retries them); LastError is the run's newest API error.
	Retrying    int64     `json:"retrying"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// ConflictingDeliveries counts deliveries for the run's rows that the
	// replay rule refused (they changed nothing; see store.Complete).
	ConflictingDeliveries int64 `json:"conflicting_deliveries,omitempty"`
	// CanceledAfterSubmit is Canceled - CanceledBeforeSubmit: rows whose
	// task was canceled at the API.
	CanceledAfterSubmit int64 `json:"canceled_after_submit"`
	// CancelRequestedAt is when enqueue cancel was first run on the run.
	CancelRequestedAt time.Time `json:"cancel_requested_at,omitzero"`
	// Priority is the run's -priority.
	Priority   string       `json:"priority,omitempty"`
	Mode       refonte.Mode `json:"mode"`
	Dataset    string       `json:"dataset"`
	Type       string       `json:"type,omitempty"`
	Project    string       `json:"project,omitempty"`
	Batch      string       `json:"batch,omitempty"`
	CreatedAt  time.Time    `json:"created_at"`
	FinishedAt time.Time    `json:"finished_at,omitzero"`
}

// NewStatusReport returns the report of a run record.
func NewStatusReport(r *store.Run) StatusReport {
	return StatusReport{
		RunID: r.ID, State: r.State, PausedReason: r.PausedReason, AbortReason: r.AbortReason,
		Counters: r.Counters, Retrying: r.Retrying, LastError: r.LastError, LastErrorAt: r.LastErrorAt,
		ConflictingDeliveries: r.Conflicts,
		CanceledAfterSubmit:   r.CanceledAfterSubmit(), CancelRequestedAt: r.CancelRequestedAt,
		Priority: string(jobs.PriorityOf(r.Priority)),
		Mode:     r.Mode, Dataset: r.Dataset, Type: string(r.Type), Project: r.Project, Batch: r.Batch,
		CreatedAt: r.CreatedAt, FinishedAt: r.FinishedAt,
	}
}

// Status writes a run's counters and state to w: a JSON object with asJSON,
// else a short human summary.
func Status(ctx context.Context, st *store.Store, runID string, asJSON bool, w io.Writer) (*store.Run, error) {
	run, err := st.GetRun(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", runID, err)
	}
	rep := NewStatusReport(run)
	keyPauses(ctx, st).apply(&rep)
	if asJSON {
		return run, json.NewEncoder(w).Encode(rep)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "run\t%s\n", rep.RunID)
	state := string(rep.State)
	if rep.PausedReason != "" {
		state += " (" + rep.PausedReason + ")"
	}
	fmt.Fprintf(tw, "state\t%s\n", state)
	if rep.AbortReason != "" {
		fmt.Fprintf(tw, "aborted\t%s\n", rep.AbortReason)
	}
	fmt.Fprintf(tw, "dataset\t%s\n", rep.Dataset)
	fmt.Fprintf(tw, "mode\t%s\tproject\t%s\tbatch\t%s\n", rep.Mode, rep.Project, rep.Batch)
	fmt.Fprintf(tw, "priority\t%s\n", jobs.PriorityOf(rep.Priority))
	fmt.Fprintf(tw, "rows\t%d\tvalid\t%d\tinvalid\t%d\n", rep.Rows, rep.Valid, rep.Invalid)
	fmt.Fprintf(tw, "enqueued\t%d\tduplicate\t%d\tsubmitted\t%d\n", rep.Enqueued, rep.Duplicate, rep.Submitted)
	fmt.Fprintf(tw, "completed\t%d\tfailed\t%d\tcanceled\t%d\n", rep.Completed, rep.Failed, rep.Canceled)
	fmt.Fprintf(tw, "retrying\t%d\n", rep.Retrying)
	if rep.LastError != "" {
		fmt.Fprintf(tw, "last API error\t%s  %s\n", rep.LastErrorAt.UTC().Format(time.RFC3339), oneLine(rep.LastError))
	}
	if rep.ConflictingDeliveries > 0 {
		fmt.Fprintf(tw, "conflicting deliveries\t%d (refused: they changed no row; see the worker logs)\n", rep.ConflictingDeliveries)
	}
	if rep.Canceled > 0 || !rep.CancelRequestedAt.IsZero() {
		fmt.Fprintf(tw, "canceled before submission\t%d\tafter submission\t%d\n", rep.CanceledBeforeSubmit, rep.CanceledAfterSubmit)
	}
	if !rep.CancelRequestedAt.IsZero() {
		fmt.Fprintf(tw, "cancel requested\t%s\n", rep.CancelRequestedAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "created\t%s\n", rep.CreatedAt.UTC().Format(time.RFC3339))
	if !rep.FinishedAt.IsZero() {
		fmt.Fprintf(tw, "finished\t%s\n", rep.FinishedAt.UTC().Format(time.RFC3339))
	}
	return run, tw.Flush()
}

// ResultLine is one line of `enqueue results`: a row's outcome.
type ResultLine struct {
	Line     int64  `json:"line"`
	UniqueID string `json:"unique_id"`
	// State is the job's state, or "expired" when its record is gone.
	State  string `json:"state"`
	TaskID string `json:"task_id"`
	// Response is the task's response JSON, or null.
	Response json.RawMessage `json:"response"`
	Error    string          `json:"error"`
}

// Results writes one JSON line per valid row of the run to w, in dataset
// order (invalid rows are in the rejects file, not here). It returns the
// number of lines written.
func Results(ctx context.Context, st *store.Store, runID string, w io.Writer) (int64, error) {
	return ResultsWhere(ctx, st, runID, nil, w)
}

// ResultsWhere is Results for the rows whose job keep accepts (job is nil
// for an expired record); a nil keep writes every row.
func ResultsWhere(ctx context.Context, st *store.Store, runID string, keep func(*store.Job) bool, w io.Writer) (int64, error) {
	if _, err := st.GetRun(ctx, runID); err != nil {
		return 0, fmt.Errorf("run %s: %w", runID, err)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	var n int64
	err := st.RunRows(ctx, runID, func(row store.RunRow, job *store.Job) error {
		if keep != nil && !keep(job) {
			return nil
		}
		n++
		return enc.Encode(newResultLine(row, job))
	})
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	return n, err
}

// RetryResult counts what Retry did.
type RetryResult struct {
	// Failed is the number of failed rows found.
	Failed int64 `json:"failed"`
	// Canceled is the number of canceled rows found in a run canceled by
	// enqueue cancel (re-queued with the failed ones; the cancel is lifted).
	Canceled int64 `json:"canceled"`
	// Requeued is the number re-queued (job enqueued again, asynq task written).
	Requeued int64 `json:"requeued"`
	// FromDataset counts the re-queued rows whose payload was rebuilt from the dataset.
	FromDataset int64 `json:"from_dataset"`
	// Skipped counts failed rows that could not be re-queued (see the log).
	Skipped int64 `json:"skipped"`
}

// RetryOptions are the dependencies of Retry.
type RetryOptions struct {
	Client    *asynq.Client
	Inspector *asynq.Inspector
	Logger    *zap.Logger
	// Dataset is read to rebuild the payloads asynq no longer holds (a row
	// whose task errored at the API after creation): "" means the run's own
	// dataset (see runDataset), "-" means Stdin; a URL is read like a
	// submit's.
	Dataset string
	Stdin   io.Reader
	// Objects opens s3://, gs:// and azblob:// datasets (cmd/enqueue
	// passes cloud.Open); nil refuses them.
	Objects datasrc.ObjectOpener
	// DatasetOptions are the reader options of the original submit; unset
	// ones default to the run's (see RunDatasetOptions). A row is only
	// matched by its unique_id, so options that change the rows' params
	// (another -params or -instruction) match nothing.
	DatasetOptions dataset.Options
}

// ErrNoPayload reports a failed row whose submit payload is nowhere to be
// found (its asynq task is gone and the dataset does not hold the row), so
// it cannot be re-queued.
var ErrNoPayload = errors.New("the row's submit payload is gone")

// Retry re-queues the run's failed rows, and, in a run canceled by enqueue
// cancel, takes the cancel back and re-queues its canceled rows too (a task
// canceled at the API gets its unique_id cleared and a new task, like an
// errored one). For each it needs the row's submit
// payload: from the row's asynq task when asynq still holds it (archived
// after a permanent failure at the worker), else rebuilt from the dataset
// (see RetryOptions.Dataset), matched by unique_id. It then moves the job
// record failed -> enqueued (store.Requeue, generation+1), deletes the old
// asynq task and enqueues the task again under the same task ID. A row
// whose task cannot be written is marked failed again, so it stays
// retryable.
func Retry(ctx context.Context, st *store.Store, runID string, opts RetryOptions) (RetryResult, error) {
	var res RetryResult
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	log := opts.Logger
	run, err := st.GetRun(ctx, runID)
	if err != nil {
		return res, fmt.Errorf("run %s: %w", runID, err)
	}
	// A run canceled by enqueue cancel: take the cancel back first (else
	// the workers would cancel the re-queued rows again), then re-queue its
	// canceled rows with the failed ones.
	canceledRun := !run.CancelRequestedAt.IsZero()
	if canceledRun {
		if _, err := st.LiftCancel(ctx, runID); err != nil {
			return res, err
		}
	}
	// Collect first: RunRows pages through the run while we write.
	var failed []*store.Job
	err = st.RunRows(ctx, runID, func(_ store.RunRow, job *store.Job) error {
		switch {
		case job == nil:
		case job.State == store.JobFailed:
			res.Failed++
			failed = append(failed, job)
		case job.State == store.JobCanceled && canceledRun:
			res.Canceled++
			failed = append(failed, job)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	skip := func(job *store.Job, err error) {
		res.Skipped++
		log.Warn("row not re-queued", zap.Int64("line", job.Line), zap.String("unique_id", job.UniqueID), zap.Error(err))
	}
	missing := map[string]*store.Job{}
	for _, job := range failed {
		p, err := asynqPayload(job, run, opts)
		if errors.Is(err, ErrNoPayload) {
			missing[job.UniqueID] = job
			continue
		}
		if err == nil {
			err = requeue(ctx, st, run, job.Mode, p, opts)
		}
		if err != nil {
			if ctx.Err() != nil {
				return res, err
			}
			skip(job, err)
			continue
		}
		res.Requeued++
	}
	if len(missing) > 0 {
		n, err := retryFromDataset(ctx, st, run, missing, opts)
		res.Requeued += n
		res.FromDataset += n
		if err != nil {
			if ctx.Err() != nil {
				return res, err
			}
			log.Warn("cannot rebuild payloads from the dataset", zap.String("dataset", run.Dataset), zap.Error(err))
		}
		for _, job := range missing {
			skip(job, ErrNoPayload)
		}
	}
	return res, nil
}

// asynqPayload returns the payload of the job's asynq task, or ErrNoPayload.
func asynqPayload(job *store.Job, run *store.Run, opts RetryOptions) (jobs.SubmitPayload, error) {
	if job.Mode == "" {
		job.Mode = run.Mode
	}
	info, err := findTask(opts.Inspector, jobs.RowQueues(run.Mode, jobs.PriorityOf(run.Priority)), jobs.TaskID(job.Mode, job.UniqueID))
	if err != nil {
		return jobs.SubmitPayload{}, err
	}
	if info == nil {
		return jobs.SubmitPayload{}, ErrNoPayload
	}
	if info.State == asynq.TaskStateActive {
		return jobs.SubmitPayload{}, errors.New("its task is being worked on right now; retry later")
	}
	return jobs.DecodeSubmitPayload(info.Payload)
}

// retryFromDataset reads the dataset and re-queues the missing rows it
// finds, removing them from missing.
func retryFromDataset(ctx context.Context, st *store.Store, run *store.Run, missing map[string]*store.Job, opts RetryOptions) (int64, error) {
	name, err := runDataset(run, opts.Dataset)
	if err != nil {
		return 0, err
	}
	src, err := openSource(ctx, name, &datasrc.Opener{Stdin: opts.Stdin, Objects: opts.Objects})
	if err != nil {
		return 0, err
	}
	defer src.cleanup()
	do, err := RunDatasetOptions(run, src.path, opts.DatasetOptions)
	if err != nil {
		return 0, err
	}
	in, err := src.open()
	if err != nil {
		return 0, fmt.Errorf("open dataset %s: %w", src.name, err)
	}
	defer in.Close()
	r, err := dataset.NewReader(in, src.name, do)
	if err != nil {
		return 0, err
	}
	var n int64
	for len(missing) > 0 {
		row, rej, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, err
		}
		job := missing[row.UniqueID]
		if rej != nil || job == nil {
			continue
		}
		if job.Fingerprint != "" && row.Fingerprint != job.Fingerprint {
			// Another task under the job's unique_id: never submit it.
			opts.Logger.Warn("row not re-queued: the dataset's row has other content than the run's",
				zap.Int64("line", job.Line), zap.Int64("dataset_line", row.Line), zap.String("unique_id", job.UniqueID))
			continue
		}
		p := jobs.SubmitPayload{V: jobs.PayloadVersion, Run: job.Run, Line: job.Line, UniqueID: job.UniqueID,
			TaskType: row.Type, Mode: job.Mode, Params: row.Body}
		if p.Run == "" {
			p.Run = run.ID
		}
		if err := requeue(ctx, st, run, job.Mode, p, opts); err != nil {
			if ctx.Err() != nil {
				return n, err
			}
			opts.Logger.Warn("row not re-queued", zap.Int64("line", job.Line), zap.String("unique_id", job.UniqueID), zap.Error(err))
		} else {
			n++
		}
		delete(missing, row.UniqueID)
	}
	return n, nil
}

// findTask looks for the asynq task id in queues (see jobs.RowQueues): nil
// when none holds it.
func findTask(insp *asynq.Inspector, queues []string, id string) (*asynq.TaskInfo, error) {
	for _, q := range queues {
		info, err := insp.GetTaskInfo(q, id)
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			continue
		}
		return info, err
	}
	return nil, nil
}

// requeue moves one failed job back to enqueued and writes its asynq task,
// in the queue of the retried run's priority.
func requeue(ctx context.Context, st *store.Store, run *store.Run, mode refonte.Mode, p jobs.SubmitPayload, opts RetryOptions) error {
	task, err := jobs.NewPrioritySubmitTask(p, jobs.PriorityOf(run.Priority))
	if err != nil {
		return err
	}
	tr, err := st.Requeue(ctx, mode, p.UniqueID)
	if err != nil {
		return err
	}
	if !tr.Changed {
		return fmt.Errorf("no longer failed nor canceled (state %s)", tr.To)
	}
	// The old task (archived, or in another priority's queue) goes first:
	// one task ID per row and mode.
	for _, q := range jobs.RowQueues(mode, jobs.PriorityOf(run.Priority)) {
		err = opts.Inspector.DeleteTask(q, jobs.TaskID(mode, p.UniqueID))
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			err = nil
		}
		if err != nil {
			break
		}
	}
	if err == nil {
		_, err = opts.Client.EnqueueContext(ctx, task)
	}
	if err != nil {
		// Keep the row retryable rather than enqueued without a task.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, ferr := st.Fail(fctx, mode, p.UniqueID, "enqueue retry could not queue the task: "+err.Error()); ferr != nil {
			return fmt.Errorf("%w (and the job stays enqueued without a task: %v)", err, ferr)
		}
		return err
	}
	return nil
}

// Runs writes up to limit runs, newest first: a table, or JSON lines of
// StatusReport with asJSON.
func Runs(ctx context.Context, st *store.Store, limit int, asJSON bool, w io.Writer) error {
	runs, err := st.ListRuns(ctx, limit)
	if err != nil {
		return err
	}
	kp := keyPauses(ctx, st)
	if asJSON {
		enc := json.NewEncoder(w)
		for _, r := range runs {
			rep := NewStatusReport(r)
			kp.apply(&rep)
			if err := enc.Encode(rep); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN_ID\tSTATE\tMODE\tROWS\tINVALID\tENQUEUED\tDUPLICATE\tCOMPLETED\tFAILED\tRETRYING\tCREATED\tDATASET\tLAST_API_ERROR")
	for _, r := range runs {
		lastErr := "-"
		if r.LastError != "" {
			lastErr = clip(oneLine(r.LastError), 60)
		}
		state := r.State
		if _, paused := kp[r.Mode]; paused && waitsForKey(state) {
			state = store.RunPaused
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", r.ID, state, r.Mode, r.Rows, r.Invalid,
			r.Enqueued, r.Duplicate, r.Completed, r.Failed, r.Retrying, r.CreatedAt.UTC().Format("2006-01-02 15:04:05"), r.Dataset, lastErr)
	}
	return tw.Flush()
}

// oneLine replaces the line breaks and tabs of an API error with spaces, so
// it keeps to its line of the table.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		return r
	}, s)
}

// clip cuts s to n runes, ending with "…" when it was cut.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// modePauses are the modes whose key the API rejects (store.ModePause).
type modePauses map[refonte.Mode]store.KeyPause

// keyPauses reads the key pauses of both modes; a read error shows none.
func keyPauses(ctx context.Context, st *store.Store) modePauses {
	kp := modePauses{}
	for _, m := range []refonte.Mode{refonte.ModeTest, refonte.ModeLive} {
		if p, ok, err := st.ModePause(ctx, m); err == nil && ok {
			kp[m] = p
		}
	}
	return kp
}

// apply shows a run whose rows wait for its mode's key as paused, with the
// reason (the run record itself is not changed: the pause is the mode's).
func (kp modePauses) apply(rep *StatusReport) {
	p, ok := kp[rep.Mode]
	if !ok || !waitsForKey(rep.State) {
		return
	}
	rep.State = store.RunPaused
	if rep.PausedReason != "" {
		rep.PausedReason += "; "
	}
	rep.PausedReason += p.Reason
}

// waitsForKey reports whether a run in state s has rows that a paused key holds back.
func waitsForKey(s store.RunState) bool {
	return s == store.RunRunning || s == store.RunEnqueuing || s == store.RunPaused
}
