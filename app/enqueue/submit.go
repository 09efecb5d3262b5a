package enqueue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/internal/datasrc"
	"github.com/refonte-ai/refonte-batch/internal/defaults"
	"github.com/refonte-ai/refonte-batch/jobs/dataset"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// SubmitOptions are the process-level inputs of Submit.
type SubmitOptions struct {
	// Stdin is read when the dataset is "-".
	Stdin io.Reader
	// Objects opens s3://, gs:// and azblob:// datasets (cmd/enqueue
	// passes cloud.Open); nil refuses them.
	Objects datasrc.ObjectOpener
	// Getenv reads the environment (the live-key rule). Default os.Getenv.
	Getenv func(string) string
	// Confirm asks the operator to confirm a live run; nil when there is no
	// terminal (then a live run needs Config.Yes).
	Confirm func(prompt string) (bool, error)
	// Progress receives progress (default: none).
	Progress Progress
	// Logger logs (default: none).
	Logger *zap.Logger
	// Now returns the time (default time.Now).
	Now func() time.Time
	// PollInterval is the -wait polling period (default DefaultPollInterval).
	PollInterval time.Duration
	// WaitRetry is how long -wait keeps polling (with backoff, up to 5 s
	// apart) while Redis fails, before it gives up (default
	// DefaultWaitRetry). The run is never at risk: it goes on without -wait.
	WaitRetry time.Duration
}

// DefaultWaitRetry is how long -wait retries failing Redis polls.
const DefaultWaitRetry = 2 * time.Minute

// DefaultPollInterval is how often -wait reads the run: it returns within
// that long of the run's end.
const DefaultPollInterval = 100 * time.Millisecond

func (o *SubmitOptions) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

func (o *SubmitOptions) defaults() {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Progress == nil {
		o.Progress = nopProgress{}
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	o.PollInterval = defaults.Positive(o.PollInterval, DefaultPollInterval)
	o.WaitRetry = defaults.Positive(o.WaitRetry, DefaultWaitRetry)
}

// WaitCounts are the row counts past enqueue, reported with -wait.
type WaitCounts struct {
	Submitted int64 `json:"submitted"`
	Completed int64 `json:"completed"`
	Failed    int64 `json:"failed"`
	Canceled  int64 `json:"canceled"`
}

// Summary is the outcome of Submit (with -json, the last line of stdout).
type Summary struct {
	RunID     string `json:"run_id"`
	Rows      int64  `json:"rows"`
	Valid     int64  `json:"valid"`
	Invalid   int64  `json:"invalid"`
	Enqueued  int64  `json:"enqueued"`
	Duplicate int64  `json:"duplicate"`
	// WaitCounts is set with -wait.
	*WaitCounts
	// State is the run's state at the end (with -wait), or empty.
	State store.RunState `json:"state,omitempty"`
	// DryRun is set for a dry run (RunID is then empty).
	DryRun bool `json:"dry_run,omitempty"`
	// Rejects is the rejects file, when some rows were invalid.
	Rejects string `json:"rejects,omitempty"`
	// Preflight is set for a live dry run.
	*Preflight `json:"preflight,omitempty"`
	// Seconds is the enqueue time (reading to the last write).
	Seconds float64 `json:"seconds"`
}

// StoppedError reports a run stopped by an error: how far it got and, when
// the run was created, that it was marked aborted with its enqueued rows
// kept (they are worked as usual).
type StoppedError struct {
	// RunID is the aborted run, or "" if none was created.
	RunID string
	// Line is the first dataset line that was not enqueued (0 if unknown).
	Line int64
	// RowsRead counts the rows read. Enqueued counts the rows whose write
	// to the run (new or duplicate) was confirmed; when Redis died with a
	// write's reply in flight, that write may have been recorded too, and
	// re-running the dataset counts such rows as duplicates.
	RowsRead, Enqueued int64
	// Recorded, when RecordedKnown, is what Redis holds of the run after
	// the stop (its enqueued and duplicate counters, written atomically
	// with the rows): fewer than Enqueued when Redis lost writes.
	Recorded      int64
	RecordedKnown bool
	Err           error
}

// Error says where the run stopped, how far it got, why, and what happened to the run.
func (e *StoppedError) Error() string {
	where := ""
	if e.Line > 0 {
		where = fmt.Sprintf(" at line %d", e.Line)
	}
	run := ""
	switch {
	case e.RunID != "" && e.RecordedKnown:
		run = fmt.Sprintf("; run %s aborted: Redis holds %d of its rows (read after the stop), which stay queued and are worked "+
			"(enqueue status %s); re-run the same command to add the rest", e.RunID, e.Recorded, e.RunID)
	case e.RunID != "":
		run = fmt.Sprintf("; run %s: Redis could not be read after the stop, so how many of the %d rows confirmed before it "+
			"survived is unknown (enqueue status %s once Redis answers; without its producer the run shows aborted); "+
			"re-run the same command to add the rest", e.RunID, e.Enqueued, e.RunID)
	}
	return fmt.Sprintf("stopped%s after reading %d rows and enqueuing %d rows: %v%s", where, e.RowsRead, e.Enqueued, e.Err, run)
}

// Unwrap returns the cause.
func (e *StoppedError) Unwrap() error { return e.Err }

// WaitInterruptedError reports that -wait stopped (the context ended) while
// the run goes on.
type WaitInterruptedError struct {
	RunID string
	Err   error
}

// Error names the run and the command to follow it.
func (e *WaitInterruptedError) Error() string {
	return fmt.Sprintf("stopped waiting for run %s (%v); the run goes on: enqueue status %s", e.RunID, e.Err, e.RunID)
}

// Unwrap returns the cause.
func (e *WaitInterruptedError) Unwrap() error { return e.Err }

// Counts are the live counters of a submit, read by a Progress.
type Counts struct {
	Read, Valid, Invalid, Enqueued, Duplicate atomic.Int64
	// Line is the dataset line of the last row read.
	Line atomic.Int64
	// Conflict counts rows refused by the store because their unique_id
	// is already used for other content (invalid rows too, see invalid).
	Conflict atomic.Int64
	// Bytes is the number of dataset bytes read (of Size, 0 if unknown).
	Bytes atomic.Int64
	Size  int64
	// Phase names a pass other than the enqueue ("counting" for the live pre-pass).
	Phase string
}

// invalid returns the invalid rows: rejected by the reader or refused for
// a content conflict.
func (c *Counts) invalid() int64 { return c.Invalid.Load() + c.Conflict.Load() }

// Submit runs one submit: it validates the configuration, applies the
// live-mode rule (see CheckLiveKey; a live run is counted in a first pass,
// capped by MaxLiveTasks and confirmed before anything is written), then
// streams the dataset into a new run (or, with DryRun, only validates and
// counts, writing nothing to Redis: st may be nil). Invalid rows go to the
// rejects file. With Wait it then polls the run until it is done.
//
// Errors: ErrUsage-matching errors before anything was written (dataset
// missing, live refusals); *StoppedError after the run was created;
// *WaitInterruptedError when ctx ends during -wait.
func Submit(ctx context.Context, st *store.Store, cfg *Config, opts SubmitOptions) (*Summary, error) {
	opts.defaults()
	if st == nil && !cfg.DryRun {
		return nil, usagef("no Redis store configured")
	}
	src, err := openSource(ctx, cfg.Dataset, &datasrc.Opener{Stdin: opts.Stdin, Objects: opts.Objects})
	if err != nil {
		return nil, err
	}
	defer func() { src.cleanup() }()
	if err := cfg.resolveOutputs(outputNote(opts.Logger)); err != nil {
		return nil, err
	}
	dopts := cfg.DatasetOptions()
	live := cfg.Mode == refonte.ModeLive
	var confirmed int64 = -1 // live: the billable rows confirmed; the enqueue never goes past them
	if live && !cfg.DryRun {
		if err := CheckLiveKey(opts.Getenv); err != nil {
			return nil, err
		}
		// Stdin and URLs are spooled by the pre-pass, and the enqueue reads
		// the spool: the same bytes, downloaded once.
		if src, err = spool(src); err != nil {
			return nil, err
		}
		counts := &Counts{Size: src.size, Phase: "counting billable rows"}
		stop := opts.Progress.Start(counts)
		err := readAll(ctx, src, dopts, counts, nil, nil, nil)
		stop()
		if err != nil {
			return nil, fmt.Errorf("live pre-pass (counting billable rows): %w", err)
		}
		if err := confirmLive(cfg, &opts, counts.Valid.Load()); err != nil {
			return nil, err
		}
		confirmed = counts.Valid.Load()
		opts.Logger.Info("live run confirmed", zap.Int64("billable", counts.Valid.Load()),
			zap.String("project", cfg.Project), zap.String("batch", cfg.Batch))
	}
	if cfg.DryRun {
		return dryRun(ctx, st, cfg, &opts, src, dopts)
	}
	return submitRun(ctx, st, cfg, &opts, src, dopts, confirmed)
}

// ErrDatasetChanged reports a live dataset that holds more billable rows
// than the counting pass found and the operator confirmed.
var ErrDatasetChanged = errors.New("the dataset changed after the live counting pass")

// rejectsFile creates the rejects file lazily, on the first reject, and
// removes a stale one when the run has none. It is safe for concurrent use
// (the reader's rejects and the writers' content conflicts).
type rejectsFile struct {
	path string
	log  *zap.Logger
	mu   sync.Mutex
	f    *os.File
	w    *dataset.RejectsWriter
}

func (r *rejectsFile) write(rej dataset.Reject) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w == nil {
		f, err := os.Create(r.path)
		if err != nil {
			return fmt.Errorf("rejects file: %w", err)
		}
		r.f, r.w = f, dataset.NewRejectsWriter(f)
	}
	return r.w.Write(&rej)
}

// close flushes the file, or removes a stale one if nothing was rejected.
// A stale file that cannot be removed is logged, never an error: the run
// itself went well.
func (r *rejectsFile) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w == nil {
		if err := os.Remove(r.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			r.log.Warn("no row was rejected, but a stale rejects file from an earlier run could not be removed; ignore it",
				zap.String("rejects", r.path), zap.Error(err))
		}
		return nil
	}
	return r.w.Close() // closes r.f too
}

// readAll reads the whole dataset, counting rows; rejects go to rej (if not
// nil) and valid rows to onValid (if not nil), whose errors it returns as
// they are. A fatal error of its own is returned as a *StoppedError without
// a run, whose Line is the reader's (a *dataset.LineError) or the reject's
// that could not be written.
//
// onStart (if not nil) is called once the dataset proved readable: after
// the first record or at the end of an empty dataset. A fatal error before
// that (unreadable file, bad CSV header, not UTF-8) is a configuration
// error matching ErrUsage.
func readAll(ctx context.Context, src *source, dopts dataset.Options, c *Counts, rej *rejectsFile,
	onStart func() error, onValid func(dataset.Row) error) error {
	in, err := src.open()
	if err != nil {
		return usagef("open dataset: %v", err)
	}
	defer in.Close()
	r, err := dataset.NewReader(countingReader{in, &c.Bytes}, src.name, dopts)
	if err != nil {
		return usagef("dataset: %v; nothing was written", err)
	}
	for n := 0; ; n++ {
		if n&1023 == 0 && ctx.Err() != nil {
			return &StoppedError{RowsRead: c.Read.Load(), Err: context.Cause(ctx)}
		}
		row, reject, err := r.Next()
		if err != nil && !errors.Is(err, io.EOF) && n == 0 {
			return usagef("dataset: %v; nothing was written", err)
		}
		if n == 0 && onStart != nil {
			if err := onStart(); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			se := &StoppedError{RowsRead: c.Read.Load(), Err: err}
			if le := (*dataset.LineError)(nil); errors.As(err, &le) {
				se.Line = le.Line
			}
			return se
		}
		c.Read.Add(1)
		if reject != nil {
			c.Line.Store(reject.Line)
			c.Invalid.Add(1)
			if rej != nil {
				if err := rej.write(*reject); err != nil {
					return &StoppedError{Line: reject.Line, RowsRead: c.Read.Load(), Err: err}
				}
			}
			continue
		}
		c.Line.Store(row.Line)
		c.Valid.Add(1)
		if onValid != nil {
			if err := onValid(row); err != nil {
				return err
			}
		}
	}
}

func dryRun(ctx context.Context, st *store.Store, cfg *Config, opts *SubmitOptions, src *source, dopts dataset.Options) (*Summary, error) {
	start := time.Now()
	c := &Counts{Size: src.size}
	stop := opts.Progress.Start(c)
	rej := &rejectsFile{path: cfg.Rejects, log: opts.Logger}
	err := readAll(ctx, src, dopts, c, rej, nil, nil)
	stop()
	if cerr := rej.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	s := &Summary{DryRun: true, Rows: c.Read.Load(), Valid: c.Valid.Load(), Invalid: c.Invalid.Load(),
		Seconds: time.Since(start).Seconds()}
	if s.Invalid > 0 {
		s.Rejects = cfg.Rejects
	}
	if cfg.Mode == refonte.ModeLive {
		s.Preflight = preflight(ctx, st, cfg, opts, s.Valid)
	}
	return s, nil
}

// wait polls the run until it is done or aborted, updating sum.
func wait(ctx context.Context, st *store.Store, runID string, opts *SubmitOptions, sum *Summary) error {
	t := time.NewTimer(opts.PollInterval)
	defer t.Stop()
	var lastPaused string
	var failing pollFailures
	for {
		run, err := st.GetRun(ctx, runID)
		delay := opts.PollInterval
		if err != nil && ctx.Err() == nil {
			if errors.Is(err, store.ErrRunNotFound) {
				return &WaitInterruptedError{RunID: runID, Err: err}
			}
			var giveUp bool
			if delay, giveUp = failing.failed(err, opts); giveUp {
				return &WaitInterruptedError{RunID: runID, Err: fmt.Errorf("Redis polls failed for %v: %w", opts.WaitRetry, err)}
			}
		} else if err == nil {
			failing.recovered(runID, opts)
		}
		if run != nil {
			sum.WaitCounts = &WaitCounts{Submitted: run.Submitted, Completed: run.Completed, Failed: run.Failed, Canceled: run.Canceled}
			sum.State = run.State
			opts.Progress.Wait(run)
			if run.PausedReason != lastPaused {
				lastPaused = run.PausedReason
				if lastPaused != "" {
					opts.Logger.Warn("run paused", zap.String("run_id", runID), zap.String("reason", lastPaused))
				}
			}
			if run.State.Terminal() {
				return nil
			}
		}
		t.Reset(delay)
		select {
		case <-ctx.Done():
			return &WaitInterruptedError{RunID: runID, Err: context.Cause(ctx)}
		case <-t.C:
		}
	}
}

// maxPollBackoff caps the delay between -wait's polls while Redis fails.
const maxPollBackoff = 5 * time.Second

// pollFailures tracks -wait's failing Redis polls: from PollInterval the
// delay doubles up to maxPollBackoff, and after WaitRetry of failures the
// wait gives up (the run itself goes on).
type pollFailures struct {
	since time.Time
	delay time.Duration
}

// failed records a failed poll and returns the delay before the next one,
// or giveUp once the polls have failed for opts.WaitRetry.
func (f *pollFailures) failed(err error, opts *SubmitOptions) (delay time.Duration, giveUp bool) {
	now := time.Now()
	if f.since.IsZero() {
		f.since, f.delay = now, opts.PollInterval
		opts.Logger.Warn("-wait: polling the run in Redis failed; retrying with backoff",
			zap.Duration("for_up_to", opts.WaitRetry), zap.Error(err))
	} else {
		f.delay = min(2*f.delay, maxPollBackoff)
	}
	if now.Sub(f.since) >= opts.WaitRetry {
		return 0, true
	}
	return f.delay, false
}

// recovered notes a successful poll after failures.
func (f *pollFailures) recovered(runID string, opts *SubmitOptions) {
	if !f.since.IsZero() {
		opts.Logger.Info("-wait: polling the run works again", zap.String("run_id", runID),
			zap.Duration("failed_for", time.Since(f.since).Round(time.Millisecond)))
		f.since = time.Time{}
	}
}
