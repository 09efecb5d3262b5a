package console

import (
	"fmt"
	"strings"
	"time"

	"github.com/refonte-ai/refonte-batch/jobs/store"
)

// Chart geometry (SVG user units) and the most points one line draws.
const (
	chartW, chartH = 720.0, 220.0
	chartPoints    = 360
)

// chart is the run page's timeline: submitted and completed rows over
// time, drawn as SVG polylines on the server (no script needed).
type chart struct {
	Submitted, Completed, Failed string // polyline points
	Max                          int64
	From, To                     time.Time
	Points                       int
	// Summary describes the chart for screen readers.
	Summary string
}

// newChart draws the run's timeline from its creation (all zero) through
// its recorded points to now (or its end), at most chartPoints points per
// line (evenly thinned).
func newChart(r *store.Run, points []store.TimelinePoint, now time.Time) chart {
	end := now
	if !r.FinishedAt.IsZero() && !active(r.State) {
		end = r.FinishedAt
	}
	pts := make([]store.TimelinePoint, 0, len(points)+2)
	pts = append(pts, store.TimelinePoint{At: r.CreatedAt})
	for _, p := range points {
		if p.At.After(r.CreatedAt) && p.At.Before(end) {
			pts = append(pts, p)
		}
	}
	pts = append(pts, store.PointOf(r, end))
	if len(pts) > chartPoints {
		thin := make([]store.TimelinePoint, 0, chartPoints)
		step := float64(len(pts)-1) / float64(chartPoints-1)
		for i := range chartPoints {
			thin = append(thin, pts[int(float64(i)*step+0.5)])
		}
		pts = thin
	}
	c := chart{Max: max(r.Valid, 1), From: r.CreatedAt, To: end, Points: len(pts)}
	for _, p := range pts {
		c.Max = max(c.Max, p.Submitted)
	}
	span := end.Sub(r.CreatedAt).Seconds()
	var sb, cb, fb strings.Builder
	for _, p := range pts {
		x := 0.0
		if span > 0 {
			x = chartW * p.At.Sub(r.CreatedAt).Seconds() / span
		}
		y := func(n int64) float64 { return chartH - chartH*float64(n)/float64(c.Max) }
		fmt.Fprintf(&sb, "%.1f,%.1f ", x, y(p.Submitted))
		fmt.Fprintf(&cb, "%.1f,%.1f ", x, y(p.Completed))
		fmt.Fprintf(&fb, "%.1f,%.1f ", x, y(p.Failed))
	}
	c.Submitted, c.Completed, c.Failed = sb.String(), cb.String(), fb.String()
	c.Summary = fmt.Sprintf("Rows over time from %s to %s: %d submitted, %d completed, %d failed of %d valid.",
		r.CreatedAt.UTC().Format("2006-01-02 15:04Z"), end.UTC().Format("2006-01-02 15:04Z"),
		r.Submitted, r.Completed, r.Failed, r.Valid)
	return c
}
