package enqueue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/dataset"
	"github.com/refonte-ai/refonte-batch/jobs/store"
)

// The producer of a submit is a pipeline:
//
//	dataset ──readAll──> batcher ──batches──> writers (cfg.Workers) ──> Redis
//	                        ^                    │
//	                        └──── free batches ──┘
//
// The reader (readAll) creates the run once the dataset proved readable and
// hands each valid row to the batcher, which fills batches and sends them
// to the writers (store.AddJobs). Each stage that cannot enqueue a line
// records it in producer.stop; submitRun then records the run's end:
// finished, or aborted with a *StoppedError naming the earliest such line.

// batchBufKeep is the largest payload buffer a finished batch hands back
// for reuse: the buffer of 256 ordinary rows fits; one grown by wide rows
// is dropped.
const batchBufKeep = 1 << 20

// batch is one store.AddJobs call's rows; buf holds their payloads.
type batch struct {
	firstLine int64
	jobs      []store.NewJob
	buf       []byte
}

// stopTracker keeps the earliest line that could not be enqueued. It is
// safe for concurrent use (the writers and the reader).
type stopTracker struct {
	mu   sync.Mutex
	line int64
}

// at records that line could not be enqueued.
func (s *stopTracker) at(line int64) {
	s.mu.Lock()
	if line > 0 && (s.line == 0 || line < s.line) {
		s.line = line
	}
	s.mu.Unlock()
}

// first returns the earliest line recorded, or 0.
func (s *stopTracker) first() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.line
}

// producer is one run's pipeline: the state its stages share.
type producer struct {
	st     *store.Store
	cfg    *Config
	run    *store.Run
	log    *zap.Logger
	counts *Counts
	rej    *rejectsFile
	stop   stopTracker
	// created is set once the run is in Redis; stopBeat then stops its
	// heartbeat.
	created  bool
	stopBeat func()
}

// submitRun streams the dataset into a new run through the pipeline, then
// records the run's end: finished (followed to its end with -wait) or, when
// a stage failed, aborted with a *StoppedError. confirmed >= 0 caps the
// valid rows (a live run's confirmed billable count).
func submitRun(ctx context.Context, st *store.Store, cfg *Config, opts *SubmitOptions, src *source, dopts dataset.Options, confirmed int64) (*Summary, error) {
	now := opts.now()
	run := &store.Run{
		ID: store.NewRunID(now), Dataset: src.name, Type: cfg.TaskType, Project: cfg.Project,
		Batch: cfg.Batch, Mode: cfg.Mode, CallbackURL: cfg.CallbackURL, State: store.RunEnqueuing, CreatedAt: now,
		ReadSpec: cfg.ReadSpec(), Priority: string(jobs.PriorityOf(string(cfg.Priority))),
	}
	p := &producer{st: st, cfg: cfg, run: run, log: opts.Logger.With(zap.String("run_id", run.ID)),
		counts: &Counts{Size: src.size}, rej: &rejectsFile{path: cfg.Rejects, log: opts.Logger}, stopBeat: func() {}}

	start := time.Now()
	stopProgress := opts.Progress.Start(p.counts)
	err := p.produce(ctx, src, dopts, confirmed)
	stopProgress()
	if !p.created {
		// Nothing was written: the dataset was unreadable from the start.
		return nil, err
	}
	sum := p.summary(time.Since(start))
	if err != nil {
		return sum, p.abort(ctx, err)
	}
	if err := st.FinishEnqueue(ctx, run.ID); err != nil {
		return sum, fmt.Errorf("run %s: every row was read and recorded, but marking the end of enqueue failed "+
			"(the run stays in state enqueuing; its rows are worked as usual): %w", run.ID, err)
	}
	p.log.Info("enqueue finished", zap.Int64("rows", sum.Rows), zap.Int64("valid", sum.Valid),
		zap.Int64("invalid", sum.Invalid), zap.Int64("enqueued", sum.Enqueued), zap.Int64("duplicate", sum.Duplicate),
		zap.Float64("rows_per_s", float64(sum.Rows)/max(sum.Seconds, 1e-9)))
	if cfg.Wait {
		return sum, wait(ctx, st, run.ID, opts, sum)
	}
	return sum, nil
}

// produce runs the stages until the dataset is read and every batch is
// written, or until one fails: a failing writer cancels the other writers
// and the reader. It returns the failure that stopped the run (the
// writers', else the batcher's last flush, the reader's, the rejects
// file's: a later one often only echoes an earlier one's cancellation). The
// heartbeat has stopped when it returns, so that none lands after the run's
// end is recorded.
func (p *producer) produce(ctx context.Context, src *source, dopts dataset.Options, confirmed int64) error {
	defer func() { p.stopBeat() }()
	g, gctx := errgroup.WithContext(ctx)
	batches := make(chan *batch, p.cfg.Workers)
	free := make(chan *batch, 2*p.cfg.Workers+1)
	for range p.cfg.Workers {
		g.Go(func() error { return p.write(gctx, batches, free) })
	}
	b := &batcher{st: p.st, run: p.run, counts: p.counts, stop: &p.stop, out: batches, free: free,
		rows: p.cfg.BatchSize, bytes: p.cfg.maxTaskBytes(), confirmed: confirmed}
	readErr := readAll(gctx, src, dopts, p.counts, p.rej,
		func() error { return p.create(ctx) },
		func(row dataset.Row) error { return b.add(gctx, row) })
	var se *StoppedError
	if errors.As(readErr, &se) {
		p.stop.at(se.Line)
	}
	// Rows read before a fatal read error are still enqueued.
	flushErr := b.flush(gctx)
	close(batches)
	writeErr := g.Wait()
	rejErr := p.rej.close()
	return cmp.Or(writeErr, flushErr, readErr, rejErr)
}

// create records the run in Redis and starts its heartbeat; the reader
// calls it once the dataset proved readable.
func (p *producer) create(ctx context.Context) error {
	if err := p.st.CreateRun(ctx, p.run); err != nil {
		return fmt.Errorf("create the run in Redis: %w", err)
	}
	p.created = true
	p.stopBeat = startHeartbeat(ctx, p.st, p.run.ID, p.cfg.Heartbeat, &p.counts.Line, p.log)
	p.log.Info("run created", zap.String("dataset", p.run.Dataset), zap.String("mode", string(p.cfg.Mode)))
	return nil
}

// write is one writer: it adds each batch to the run (store.AddJobs),
// counts its rows and hands the batch back for reuse.
func (p *producer) write(ctx context.Context, in <-chan *batch, free chan<- *batch) error {
	for b := range in {
		outs, err := p.st.AddJobs(ctx, p.run, b.jobs)
		if err != nil {
			p.stop.at(b.firstLine)
			return err
		}
		if err := p.count(ctx, b.jobs, outs); err != nil {
			return err
		}
		if cap(b.buf) <= batchBufKeep {
			select {
			case free <- b:
			default:
			}
		} // else: let a buffer grown by wide rows go
	}
	return nil
}

// count adds the outcomes of written rows to the counters. A row refused
// for a content conflict turns from valid to invalid and goes to the
// rejects file.
func (p *producer) count(ctx context.Context, js []store.NewJob, outs []store.AddOutcome) error {
	c := p.counts
	var added, dup int64
	defer func() {
		c.Enqueued.Add(added)
		c.Duplicate.Add(dup)
	}()
	for i, o := range outs {
		switch o {
		case store.AddedNew:
			added++
		case store.AddedConflict:
			c.Valid.Add(-1)
			c.Conflict.Add(1)
			if err := p.rej.write(conflictReject(ctx, p.st, p.run, &js[i])); err != nil {
				p.stop.at(js[i].Line)
				return err
			}
		default:
			dup++
		}
	}
	return nil
}

// summary is the run's Summary from the counters.
func (p *producer) summary(elapsed time.Duration) *Summary {
	c := p.counts
	sum := &Summary{RunID: p.run.ID, Rows: c.Read.Load(), Valid: c.Valid.Load(), Invalid: c.invalid(),
		Enqueued: c.Enqueued.Load(), Duplicate: c.Duplicate.Load(), Seconds: elapsed.Seconds()}
	if sum.Invalid > 0 {
		sum.Rejects = p.cfg.Rejects
	}
	return sum
}

// abort marks the run aborted after err stopped it and returns the
// *StoppedError saying where (the earliest line a stage could not enqueue),
// how far it got and what Redis holds of the run.
func (p *producer) abort(ctx context.Context, err error) error {
	var se *StoppedError
	if !errors.As(err, &se) {
		se = &StoppedError{Err: err}
	}
	c := p.counts
	se.RunID, se.Line = p.run.ID, p.stop.first()
	se.RowsRead, se.Enqueued = c.Read.Load(), c.Enqueued.Load()+c.Duplicate.Load()
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if r, gerr := p.st.GetRun(actx, p.run.ID); gerr == nil {
		se.Recorded, se.RecordedKnown = r.Enqueued+r.Duplicate, true
	}
	if aerr := p.st.AbortRun(actx, p.run.ID, se.Error()); aerr != nil {
		p.log.Error("could not mark the run aborted", zap.Error(aerr))
	}
	p.log.Error("enqueue stopped", zap.Int64("line", se.Line), zap.Int64("rows_read", se.RowsRead),
		zap.Int64("enqueued", se.Enqueued), zap.Error(se.Err))
	return se
}

// batcher fills batches with valid rows and sends each to the writers when
// it holds `rows` rows or `bytes` of payloads (-write-batch,
// -max-task-bytes: wide rows never hold more than about a limit per
// batch). Before each batch it records in the run the rows the reader found
// invalid since the last one. It runs on the reader's goroutine.
type batcher struct {
	st        *store.Store
	run       *store.Run
	counts    *Counts
	stop      *stopTracker
	out       chan<- *batch
	free      <-chan *batch
	rows      int
	bytes     int
	confirmed int64 // >= 0: the most valid rows allowed (a live run's confirmed count)

	cur             *batch
	invalidRecorded int64 // the invalid rows recorded in the run (store.AddInvalid)
}

// add puts a valid row in the current batch and sends the batch when full.
func (b *batcher) add(ctx context.Context, row dataset.Row) error {
	if b.confirmed >= 0 && b.counts.Valid.Load() > b.confirmed {
		b.stop.at(row.Line)
		return fmt.Errorf("%w: more than the %d billable rows confirmed", ErrDatasetChanged, b.confirmed)
	}
	if b.cur == nil {
		b.cur = b.newBatch()
		b.cur.firstLine = row.Line
	}
	b.cur.jobs = append(b.cur.jobs, newJob(b.cur, b.run, row))
	if len(b.cur.jobs) >= b.rows || len(b.cur.buf) >= b.bytes {
		return b.flush(ctx)
	}
	return nil
}

// newBatch returns a batch a writer handed back, or a new one.
func (b *batcher) newBatch() *batch {
	select {
	case nb := <-b.free:
		nb.jobs, nb.buf = nb.jobs[:0], nb.buf[:0]
		return nb
	default:
		return &batch{jobs: make([]store.NewJob, 0, b.rows), buf: make([]byte, 0, b.rows*640)}
	}
}

// flush records the rows found invalid since the last batch and sends the
// current batch, if any. Once ctx is done it sends nothing more; a batch
// it could not send is a stop at its first line.
func (b *batcher) flush(ctx context.Context) error {
	if n := b.counts.Invalid.Load() - b.invalidRecorded; n > 0 {
		if err := b.st.AddInvalid(ctx, b.run.ID, n); err != nil {
			return b.unsent(err)
		}
		b.invalidRecorded += n
	}
	if b.cur == nil || len(b.cur.jobs) == 0 {
		return nil
	}
	if ctx.Err() != nil {
		return b.unsent(context.Cause(ctx))
	}
	select {
	case b.out <- b.cur:
		b.cur = nil
		return nil
	case <-ctx.Done():
		return b.unsent(context.Cause(ctx))
	}
}

// unsent records the current batch as not enqueued and returns err.
func (b *batcher) unsent(err error) error {
	if b.cur != nil && len(b.cur.jobs) > 0 {
		b.stop.at(b.cur.firstLine)
	}
	return err
}

// newJob builds the store job of a valid row, its payload appended to b.buf.
func newJob(b *batch, run *store.Run, row dataset.Row) store.NewJob {
	start := len(b.buf)
	b.buf = jobs.AppendSubmitPayload(b.buf, jobs.SubmitPayload{
		V: jobs.PayloadVersion, Run: run.ID, Line: row.Line, UniqueID: row.UniqueID,
		TaskType: row.Type, Mode: run.Mode, Params: row.Body,
	})
	return store.NewJob{
		Line: row.Line, UniqueID: row.UniqueID, TaskType: row.Type, Fingerprint: row.Fingerprint,
		AsynqType: jobs.TypeSubmit, Queue: jobs.PriorityQueue(run.Mode, jobs.PriorityOf(run.Priority)), TaskID: jobs.TaskID(run.Mode, row.UniqueID),
		Payload: b.buf[start:len(b.buf):len(b.buf)], MaxRetry: jobs.DefaultMaxRetry, Timeout: jobs.DefaultTimeout,
	}
}
