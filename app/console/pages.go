package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/app/enqueue"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// maxText bounds any free text a page shows (dataset names, reasons).
const maxText = 300

var funcs = template.FuncMap{
	"clip": clip,
	"num":  func(n int64) string { return groupDigits(n) },
	"rate": formatRate,
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"pct": func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"query": func(kv ...string) string {
		q := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			q.Set(kv[i], kv[i+1])
		}
		return q.Encode()
	},
	"live": func(m refonte.Mode) bool { return m == refonte.ModeLive },
}

// formatRate prints a rate per second.
func formatRate(f float64) string {
	if f >= 10 {
		return fmt.Sprintf("%.0f", f)
	}
	return fmt.Sprintf("%.1f", f)
}

// clip shortens s to maxText bytes (on a rune boundary) with an ellipsis.
func clip(s string) string {
	if len(s) <= maxText {
		return s
	}
	cut := maxText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// groupDigits prints n with thin spaces between groups of three digits.
func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	var b []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b = append(b, ',')
		}
		b = append(b, s[i])
	}
	if neg {
		return "-" + string(b)
	}
	return string(b)
}

// render executes a page into a buffer first, so a failed render is a 500
// and never half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, page, block string, status int, data any) {
	var buf bytes.Buffer
	if err := s.pages[page].ExecuteTemplate(&buf, block, data); err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail answers 500 and logs the error (never shown: it may name keys).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() == nil {
		s.opts.Logger.Warn("console page failed", zap.String("path", r.URL.Path), zap.Error(err))
	}
	http.Error(w, "500 internal error: the console could not read Redis; see the worker's log", http.StatusInternalServerError)
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request, msg string) {
	s.render(w, r, "notfound", "layout.html", http.StatusNotFound, map[string]any{"Title": "Not found", "Message": msg, "Now": s.opts.Now()})
}

// runsData is the runs list page.
type runsData struct {
	Title       string
	Fleet       fleet
	Runs        []*runView
	Shown, Read int
	MaxRuns     int
	Filter      filter
	States      []string
	Modes       []refonte.Mode
	Now         time.Time
}

func (s *Server) runsPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := s.opts.Now()
	q := r.URL.Query()
	f := filter{State: q.Get("state"), Mode: q.Get("mode"), Project: q.Get("project")}
	runs, err := s.opts.Store.ListRuns(ctx, s.opts.MaxRuns)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	views, err := s.runViews(ctx, runs, now)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	fl, err := s.fleet(ctx, views, now)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := runsData{Title: "Runs", Fleet: fl, Read: len(runs), MaxRuns: s.opts.MaxRuns, Filter: f,
		States: states(runs), Modes: modes[:], Now: now}
	for _, v := range views {
		if f.keep(v.Run) {
			d.Runs = append(d.Runs, v)
		}
	}
	d.Shown = len(d.Runs)
	s.render(w, r, "runs", "layout.html", http.StatusOK, d)
}

// runData is the run page.
type runData struct {
	Title    string
	Fleet    fleet
	Run      *runView
	Chart    chart
	Failures []failureView
	// LiveSpend and LiveCap are the day's live spend and cap (live runs).
	LiveSpend, LiveCap int64
	Now                time.Time
	// Actions is set when the console can steer runs; Did names the
	// action just done (the ?did= of the redirect after a POST).
	Actions bool
	Did     string
	// JoinedCSV is set when the worker can read the run's dataset, so
	// results.csv (the rows joined to their outcomes) can be served.
	JoinedCSV bool
}

// failureView is a failure group with its download link.
type failureView struct {
	store.FailureGroup
	Download string
}

// loadRun reads what the run page shows; store.ErrRunNotFound for an unknown run.
func (s *Server) loadRun(ctx context.Context, id string) (*runData, error) {
	now := s.opts.Now()
	run, err := s.opts.Store.GetRun(ctx, id)
	if err != nil {
		return nil, err
	}
	views, err := s.runViews(ctx, []*store.Run{run}, now)
	if err != nil {
		return nil, err
	}
	fl, err := s.fleet(ctx, views, now)
	if err != nil {
		return nil, err
	}
	points, err := s.opts.Store.Timeline(ctx, id)
	if err != nil {
		return nil, err
	}
	groups, err := s.opts.Store.FailureGroups(ctx, id)
	if err != nil {
		return nil, err
	}
	d := &runData{Title: "Run " + id, Fleet: fl, Run: views[0], Now: now,
		Chart: newChart(run, points, now), JoinedCSV: enqueue.JoinReadable(run)}
	for _, g := range groups {
		q := url.Values{"state": {"failed"}}
		if g.Other {
			q.Set("other", "1")
		} else {
			q.Set("group", g.Message)
		}
		d.Failures = append(d.Failures, failureView{FailureGroup: g,
			Download: "/runs/" + url.PathEscape(id) + "/results.jsonl?" + q.Encode()})
	}
	if run.Mode == refonte.ModeLive {
		for _, m := range fl.Modes {
			if m.Mode == refonte.ModeLive {
				d.LiveSpend, d.LiveCap = m.LiveSpend, m.LiveCap
			}
		}
	}
	return d, nil
}

func (s *Server) runPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("run_id")
	d, err := s.loadRun(r.Context(), id)
	if errors.Is(err, store.ErrRunNotFound) {
		s.notFound(w, r, "No run "+clip(id)+": it never existed or expired (runs are kept for the store's retention).")
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d.Actions = s.actions()
	switch did := r.URL.Query().Get("did"); did {
	case "pause", "resume", "cancel":
		d.Did = did
	}
	s.render(w, r, "run", "layout.html", http.StatusOK, d)
}

// update is one live update of the run page: the run's status as
// `enqueue status -json` prints it, and the page's live section.
type update struct {
	Status enqueue.StatusReport `json:"status"`
	HTML   string               `json:"html"`
}

// events streams the run page's live section as server-sent events, one
// "update" event every UpdateInterval, for at most StreamFor.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("run_id")
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.StreamFor)
	defer cancel()
	if _, err := s.opts.Store.GetRun(ctx, id); errors.Is(err, store.ErrRunNotFound) {
		s.notFound(w, r, "No run "+clip(id)+".")
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	t := time.NewTicker(s.opts.UpdateInterval)
	defer t.Stop()
	for {
		d, err := s.loadRun(ctx, id)
		if err != nil {
			if ctx.Err() == nil {
				s.opts.Logger.Warn("console events failed", zap.String("run_id", id), zap.Error(err))
			}
			return
		}
		var buf bytes.Buffer
		if err := s.pages["run"].ExecuteTemplate(&buf, "live", d); err != nil {
			s.opts.Logger.Warn("console events render failed", zap.Error(err))
			return
		}
		msg, err := json.Marshal(update{Status: enqueue.NewStatusReport(d.Run.Run), HTML: buf.String()})
		if err != nil {
			return
		}
		if _, err := fmt.Fprintf(w, "event: update\ndata: %s\n\n", msg); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// resultsJSONL streams the run's results as `enqueue results` writes
// them; with state=failed and group=MESSAGE (or other=1), only the failed
// rows of that failure group.
func (s *Server) resultsJSONL(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("run_id")
	if _, err := s.opts.Store.GetRun(ctx, id); errors.Is(err, store.ErrRunNotFound) {
		s.notFound(w, r, "No run "+clip(id)+".")
		return
	} else if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	var keep func(*store.Job) bool
	name := id + ".results.jsonl"
	if st := q.Get("state"); st != "" {
		keep = func(j *store.Job) bool { return j != nil && string(j.State) == st }
		name = id + "." + st + ".jsonl"
	}
	if q.Has("group") || q.Get("other") == "1" {
		groups, err := s.opts.Store.FailureGroups(ctx, id)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		named := map[string]bool{}
		for _, g := range groups {
			if !g.Other {
				named[g.Message] = true
			}
		}
		group, other := q.Get("group"), q.Get("other") == "1"
		keep = func(j *store.Job) bool {
			if j == nil || j.State != store.JobFailed {
				return false
			}
			g := store.FailureGroupOf(j.Error)
			if other {
				return !named[g]
			}
			return g == group
		}
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	if _, err := enqueue.ResultsWhere(ctx, s.opts.Store, id, keep, w); err != nil && ctx.Err() == nil {
		// Headers are gone: the truncated body is all the client gets.
		s.opts.Logger.Warn("console results download failed", zap.String("run_id", id), zap.Error(err))
	}
}

// resultsCSV streams the run's rows joined to their outcomes as CSV, as
// `enqueue results -join -format csv` writes them (enqueue.WriteJoined),
// when the worker can read the run's dataset; else a 404 page.
func (s *Server) resultsCSV(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("run_id")
	run, err := s.opts.Store.GetRun(ctx, id)
	if errors.Is(err, store.ErrRunNotFound) {
		s.notFound(w, r, "No run "+clip(id)+".")
		return
	} else if err != nil {
		s.fail(w, r, err)
		return
	}
	if !enqueue.JoinReadable(run) {
		s.notFound(w, r, "No CSV results for this run: its dataset is not readable by this worker (run enqueue results -join -format csv where the file is); download results.jsonl.")
		return
	}
	out := &firstWrite{w: w, before: func() {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", id+".results.csv"))
	}}
	_, err = enqueue.WriteJoined(ctx, s.opts.Store, id, enqueue.ResultsOptions{Format: enqueue.ResultsCSV, Join: true}, out)
	switch {
	case err == nil || ctx.Err() != nil:
	case !out.wrote:
		s.fail(w, r, err)
	default:
		// Headers are gone: the truncated body is all the client gets.
		s.opts.Logger.Warn("console joined results download failed", zap.String("run_id", id), zap.Error(err))
	}
}

// firstWrite calls before once, at the first Write, so that headers for a
// body are set only when the body starts (an error before it can still be
// an error page).
type firstWrite struct {
	w      io.Writer
	before func()
	wrote  bool
}

func (f *firstWrite) Write(p []byte) (int, error) {
	if !f.wrote {
		f.wrote = true
		f.before()
	}
	return f.w.Write(p)
}
