package console

import (
	"context"
	"fmt"
	"html/template"
	"math"
	"slices"
	"time"

	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// rateWindow is how far back the rates (creates/s, completions/s) look:
// the newest timeline point at least this old.
const rateWindow = time.Minute

// modes are the modes the fleet strip shows, live first.
var modes = [...]refonte.Mode{refonte.ModeLive, refonte.ModeTest}

// runView is a run with what the pages show about it.
type runView struct {
	*store.Run
	// Active is set while rows may still move (enqueuing, running, paused).
	Active bool
	// Percent widths of the progress bar's segments, of the valid rows.
	PctCompleted, PctFailed, PctCanceled, PctInFlight float64
	// Offsets of the segments after the first.
	OffFailed, OffCanceled, OffInFlight float64
	// Done is the share of valid rows that are terminal, in percent.
	Done float64
	// CreatesPerSec and TerminalPerSec are measured over the last minute or so.
	CreatesPerSec, TerminalPerSec float64
	// ETASubmitted and ETACompleted are durations, or "" when unknown.
	ETASubmitted, ETACompleted string
	Age                        string

	// Display strings, computed once: the runs list shows a thousand rows,
	// and a template reaching through the embedded record or calling a
	// function per field costs reflection on every one.
	// Prio is the run's priority (normal for runs older than -priority).
	ID, State, Mode, Reason, Dataset, Kind, Prio string
	IsLive                                       bool
	NCompleted, NFailed, NCanceled               string
	NSubmitted, NValid, Creates, BarLabel        string
	// Bar and Nums are the progress bar (SVG) and its counts, made of
	// numbers only (nothing from a dataset or the API), so they are built
	// here as markup: a thousand rows of template actions cost more than
	// the rest of the list.
	Bar, Nums template.HTML
}

// active reports whether a run in state st may still change.
func active(st store.RunState) bool { return !st.Terminal() }

// newRunView computes a run's view at now from an earlier point of its
// timeline (ok false: none, the run's start is used).
func newRunView(r *store.Run, past store.TimelinePoint, ok bool, now time.Time) *runView {
	v := &runView{Run: r, Active: active(r.State), Age: duration(now.Sub(r.CreatedAt)),
		ID: r.ID, State: string(r.State), Mode: string(r.Mode), Reason: clip(r.PausedReason), Dataset: clip(r.Dataset),
		IsLive:     r.Mode == refonte.ModeLive,
		NCompleted: groupDigits(r.Completed), NFailed: groupDigits(r.Failed), NCanceled: groupDigits(r.Canceled),
		NSubmitted: groupDigits(r.Submitted), NValid: groupDigits(r.Valid), Prio: string(jobs.PriorityOf(r.Priority))}
	kind := "per row"
	if r.Type != "" {
		kind = clip(string(r.Type))
	}
	for _, x := range []string{r.Project, r.Batch} {
		if x != "" {
			kind += " · " + clip(x)
		}
	}
	if v.Prio != string(jobs.PriorityNormal) {
		kind += " · " + v.Prio + " priority"
	}
	v.Kind = kind
	defer func() {
		v.Creates = "—"
		if v.Active {
			v.Creates = formatRate(v.CreatesPerSec)
		}
		v.BarLabel = fmt.Sprintf("%.1f%% done: %d completed, %d failed, %d canceled, %d submitted of %d valid rows",
			v.Done, r.Completed, r.Failed, r.Canceled, r.Submitted, r.Valid)
		v.Bar = template.HTML(fmt.Sprintf(`<svg class="bar" viewBox="0 0 100 10" preserveAspectRatio="none" role="img" aria-label="%s">`+
			`<rect class="b-bg" x="0" y="0" width="100" height="10"></rect>`+
			`<rect class="b-c" x="0" y="0" width="%g" height="10"></rect>`+
			`<rect class="b-f" x="%g" y="0" width="%g" height="10"></rect>`+
			`<rect class="b-x" x="%g" y="0" width="%g" height="10"></rect>`+
			`<rect class="b-s" x="%g" y="0" width="%g" height="10"></rect></svg>`,
			v.BarLabel, v.PctCompleted, v.OffFailed, v.PctFailed, v.OffCanceled, v.PctCanceled, v.OffInFlight, v.PctInFlight))
		v.Nums = template.HTML(fmt.Sprintf(`<span data-count="completed">%s</span> completed · <span data-count="failed">%s</span> failed · `+
			`<span data-count="canceled">%s</span> canceled · <span data-count="submitted">%s</span> submitted / <span data-count="valid">%s</span>`,
			v.NCompleted, v.NFailed, v.NCanceled, v.NSubmitted, v.NValid))
	}()
	if r.Valid > 0 {
		pct := func(n int64) float64 { return math.Round(1000*float64(n)/float64(r.Valid)) / 10 }
		v.PctCompleted, v.PctFailed, v.PctCanceled = pct(r.Completed), pct(r.Failed), pct(r.Canceled)
		v.PctInFlight = pct(max(0, r.Submitted-(r.Terminal()-r.TerminalWithoutTask)))
		v.Done = pct(r.Terminal())
		v.OffFailed = v.PctCompleted
		v.OffCanceled = v.OffFailed + v.PctFailed
		v.OffInFlight = v.OffCanceled + v.PctCanceled
	}
	if !v.Active {
		return v
	}
	if !ok {
		past = store.TimelinePoint{At: r.CreatedAt}
	}
	if dt := now.Sub(past.At).Seconds(); dt >= 1 {
		v.CreatesPerSec = max(0, float64(r.Submitted-past.Submitted)/dt)
		term := r.Completed + r.Failed + r.Canceled
		v.TerminalPerSec = max(0, float64(term-(past.Completed+past.Failed+past.Canceled))/dt)
	}
	if left := r.Valid - r.Submitted - r.TerminalWithoutTask; r.State != store.RunEnqueuing && left <= 0 {
		v.ETASubmitted = "all in"
	} else if v.CreatesPerSec > 0 && left > 0 {
		v.ETASubmitted = duration(time.Duration(float64(left) / v.CreatesPerSec * float64(time.Second)))
	}
	if left := r.Valid - r.Terminal(); v.TerminalPerSec > 0 && left > 0 {
		v.ETACompleted = duration(time.Duration(float64(left) / v.TerminalPerSec * float64(time.Second)))
	}
	return v
}

// runViews returns the views of runs, with rates for the active ones (one
// pipeline of timeline reads).
func (s *Server) runViews(ctx context.Context, runs []*store.Run, now time.Time) ([]*runView, error) {
	var ids []string
	var idx []int
	for i, r := range runs {
		if active(r.State) {
			ids = append(ids, r.ID)
			idx = append(idx, i)
		}
	}
	pts, oks, err := s.opts.Store.PointsBefore(ctx, ids, now.Add(-rateWindow))
	if err != nil {
		return nil, err
	}
	past := make([]store.TimelinePoint, len(runs))
	has := make([]bool, len(runs))
	for k, i := range idx {
		past[i], has[i] = pts[k], oks[k]
	}
	out := make([]*runView, len(runs))
	for i, r := range runs {
		out[i] = newRunView(r, past[i], has[i], now)
	}
	return out, nil
}

// modeFleet is one mode's line of the fleet strip.
type modeFleet struct {
	Mode                              refonte.Mode
	Pending, Active, Scheduled, Retry int
	QueueKnown                        bool
	CreatesPerSec, Limit              float64
	Recent429                         int64
	LiveSpend, LiveCap                int64
	ShowSpend                         bool
	Runs                              int
}

// fleet is the fleet strip: the same sources as /metrics, read across
// every worker (asynq's server heartbeats and queues, the store's counters).
type fleet struct {
	Workers      int
	WorkersKnown bool
	Modes        []modeFleet
}

func (s *Server) fleet(ctx context.Context, views []*runView, now time.Time) (fleet, error) {
	var f fleet
	if insp := s.opts.Inspector; insp != nil {
		if srvs, err := insp.Servers(); err == nil {
			type proc struct {
				host string
				pid  int
			}
			seen := map[proc]bool{}
			for _, sv := range srvs {
				seen[proc{sv.Host, sv.PID}] = true
			}
			f.Workers, f.WorkersKnown = len(seen), true
		}
	}
	for _, m := range modes {
		mf := modeFleet{Mode: m, Limit: s.opts.RateLimit}
		if insp := s.opts.Inspector; insp != nil {
			for _, q := range jobs.Queues(m) { // the mode's queues of every priority
				if qi, err := insp.GetQueueInfo(q); err == nil {
					mf.Pending += qi.Pending
					mf.Active += qi.Active
					mf.Scheduled += qi.Scheduled
					mf.Retry += qi.Retry
				}
			}
			mf.QueueKnown = true
		}
		for _, v := range views {
			if v.Run.Mode == m && v.Active {
				mf.CreatesPerSec += v.CreatesPerSec
				mf.Runs++
			}
		}
		n, err := s.opts.Store.Recent429(ctx, m, now, 5*time.Minute)
		if err != nil {
			return f, err
		}
		mf.Recent429 = n
		if m == refonte.ModeLive {
			if mf.LiveSpend, err = s.opts.Store.LiveSpend(ctx, now); err != nil {
				return f, err
			}
			mf.LiveCap, mf.ShowSpend = s.opts.LiveDailyLimit(), true
		}
		f.Modes = append(f.Modes, mf)
	}
	return f, nil
}

// filter is the runs list's filter (query parameters state, mode, project).
type filter struct {
	State, Mode, Project string
}

func (f filter) keep(r *store.Run) bool {
	return (f.State == "" || string(r.State) == f.State) &&
		(f.Mode == "" || string(r.Mode) == f.Mode) &&
		(f.Project == "" || r.Project == f.Project)
}

// states lists the run states the filter offers (the store's, then any
// other state a run holds, such as one added later).
func states(runs []*store.Run) []string {
	out := []string{string(store.RunEnqueuing), string(store.RunRunning), string(store.RunPaused),
		string(store.RunDone), string(store.RunAborted), "canceled"}
	for _, r := range runs {
		if !slices.Contains(out, string(r.State)) {
			out = append(out, string(r.State))
		}
	}
	return out
}

// duration prints d as a short human duration (45s, 12m, 3h 20m, 2d 4h).
func duration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
}
