package enqueue

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/jobs/store"
)

// Progress shows a submit's progress on stderr.
type Progress interface {
	// Start begins showing the enqueue counters; the returned function stops
	// (it may be called more than once).
	Start(c *Counts) (stop func())
	// Wait shows the run's counters while -wait polls it.
	Wait(run *store.Run)
}

type nopProgress struct{}

func (nopProgress) Start(*Counts) func() { return func() {} }
func (nopProgress) Wait(*store.Run)      {}

// ticker runs fn every period until stopped, and once more at the stop.
func ticker(period time.Duration, fn func(final bool)) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				fn(true)
				return
			case <-t.C:
				fn(false)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// rate computes rows per second between snapshots.
type rate struct {
	start time.Time
}

func (r rate) perSecond(n int64) float64 {
	d := time.Since(r.start).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(n) / d
}

// LogProgress logs the counters as structured lines every Period (for
// stderr that is not a terminal).
type LogProgress struct {
	Logger *zap.Logger
	Period time.Duration
	last   time.Time
}

// Start implements Progress.
func (p *LogProgress) Start(c *Counts) func() {
	period := p.Period
	if period <= 0 {
		period = 2 * time.Second
	}
	r := rate{start: time.Now()}
	return ticker(period, func(final bool) {
		if final {
			return // the caller logs the final summary
		}
		fields := []zap.Field{zap.String("phase", phase(c)), zap.Int64("rows_read", c.Read.Load()), zap.Int64("valid", c.Valid.Load()),
			zap.Int64("invalid", c.invalid()), zap.Int64("enqueued", c.Enqueued.Load()),
			zap.Int64("duplicate", c.Duplicate.Load()), zap.Float64("rows_per_s", r.perSecond(c.Read.Load()))}
		if c.Size > 0 {
			fields = append(fields, zap.Float64("percent", 100*float64(c.Bytes.Load())/float64(c.Size)))
		}
		p.Logger.Info("progress", fields...)
	})
}

// Wait implements Progress.
func (p *LogProgress) Wait(run *store.Run) {
	period := p.Period
	if period <= 0 {
		period = 2 * time.Second
	}
	if time.Since(p.last) < period {
		return
	}
	p.last = time.Now()
	p.Logger.Info("waiting", zap.String("run_id", run.ID), zap.String("state", string(run.State)),
		zap.Int64("valid", run.Valid), zap.Int64("submitted", run.Submitted), zap.Int64("completed", run.Completed),
		zap.Int64("failed", run.Failed), zap.Int64("canceled", run.Canceled), zap.String("paused_reason", run.PausedReason))
}

func phase(c *Counts) string {
	if c.Phase == "" {
		return "enqueue"
	}
	return c.Phase
}

// BarProgress draws progress bars on a terminal (stderr).
type BarProgress struct {
	W       io.Writer
	waitBar *progressbar.ProgressBar
	start   time.Time
}

// Start implements Progress: a bar over the dataset's bytes (a spinner when
// the size is unknown) described by the row counters and rate.
func (p *BarProgress) Start(c *Counts) func() {
	max := c.Size
	if max <= 0 {
		max = -1
	}
	bar := progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(p.W),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionShowDescriptionAtLineEnd(),
	)
	r := rate{start: time.Now()}
	return ticker(200*time.Millisecond, func(final bool) {
		if c.Phase != "" {
			bar.Describe(fmt.Sprintf("%s: read %d  valid %d  invalid %d  %.0f rows/s",
				c.Phase, c.Read.Load(), c.Valid.Load(), c.invalid(), r.perSecond(c.Read.Load())))
		} else {
			bar.Describe(fmt.Sprintf("read %d  enqueued %d  duplicate %d  invalid %d  %.0f rows/s",
				c.Read.Load(), c.Enqueued.Load(), c.Duplicate.Load(), c.invalid(), r.perSecond(c.Read.Load())))
		}
		if max > 0 {
			_ = bar.Set64(c.Bytes.Load())
		} else {
			_ = bar.Add64(0)
		}
		if final {
			_ = bar.Finish()
			fmt.Fprintln(p.W)
		}
	})
}

// Wait implements Progress: a bar of terminal rows over valid rows.
func (p *BarProgress) Wait(run *store.Run) {
	if p.waitBar == nil {
		p.start = time.Now()
		p.waitBar = progressbar.NewOptions64(max(run.Valid, 1),
			progressbar.OptionSetWriter(p.W),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionShowDescriptionAtLineEnd(),
		)
	}
	desc := fmt.Sprintf("submitted %d  completed %d  failed %d  canceled %d", run.Submitted, run.Completed, run.Failed, run.Canceled)
	if run.State == store.RunPaused {
		desc += "  PAUSED: " + run.PausedReason
	}
	p.waitBar.Describe(desc)
	_ = p.waitBar.Set64(run.Terminal())
	if run.State.Terminal() {
		_ = p.waitBar.Finish()
		fmt.Fprintln(p.W)
	}
}
