package store

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/refonte"
)

// What the runs console reads beside the run records: each run's timeline
// (one point per minute), its failures grouped by error, and the 429
// answers of the last minutes. All of it is bounded and written by the
// worker (the timeline sampler, the transition scripts, the submit
// handler), so a page reads a few small keys per run and never a job key.

// Bounds of the console's data.
const (
	// MaxTimelinePoints is how many points a run's timeline keeps (one
	// per minute: 14 days, the default retention).
	MaxTimelinePoints = 14 * 24 * 60
	// FailureGroupBytes is how much of an error message names its group.
	FailureGroupBytes = 200
	// MaxFailureGroups is how many groups a run keeps; failures with other
	// messages are counted together (FailureGroup.Other).
	MaxFailureGroups = 50
	// FailureExamples is how many example lines a group keeps.
	FailureExamples = 3
	// Window429 is how long the 429 counters are kept.
	Window429 = 15 * time.Minute

	// The same bounds, spelled for the Lua scripts (TestConsoleLuaBounds
	// checks they agree).
	failureGroupBytesLua = "200"
	maxFailureGroupsLua  = "50"
)

func (s *Store) timelineKey(id string) string { return s.opts.Prefix + "run:" + id + ":timeline" }
func (s *Store) failsKey(id string) string    { return s.opts.Prefix + "run:" + id + ":fails" }
func (s *Store) count429Key(m refonte.Mode, minute int64) string {
	return s.opts.Prefix + "fleet:429:" + string(m) + ":" + strconv.FormatInt(minute, 10)
}

// TimelinePoint is a run's counters at one time.
type TimelinePoint struct {
	At        time.Time `json:"at"`
	Submitted int64     `json:"submitted"`
	Completed int64     `json:"completed"`
	Failed    int64     `json:"failed"`
	Canceled  int64     `json:"canceled"`
}

func (p TimelinePoint) member() string {
	return fmt.Sprintf("%d %d %d %d %d", p.At.UnixMilli(), p.Submitted, p.Completed, p.Failed, p.Canceled)
}

func parsePoint(m string) (TimelinePoint, bool) {
	f := strings.Fields(m)
	if len(f) != 5 {
		return TimelinePoint{}, false
	}
	var n [5]int64
	for i, x := range f {
		v, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return TimelinePoint{}, false
		}
		n[i] = v
	}
	return TimelinePoint{At: time.UnixMilli(n[0]).UTC(), Submitted: n[1], Completed: n[2], Failed: n[3], Canceled: n[4]}, true
}

// PointOf returns the run's counters as a timeline point at t.
func PointOf(r *Run, t time.Time) TimelinePoint {
	return TimelinePoint{At: t.UTC(), Submitted: r.Submitted, Completed: r.Completed, Failed: r.Failed, Canceled: r.Canceled}
}

// RecordTimelines writes one point of each run's timeline at now (one
// pipeline, EVAL: a pipeline cannot fall back from EVALSHA): the point replaces any earlier point of the same minute, so
// several workers sampling the same runs keep one point per minute.
func (s *Store) RecordTimelines(ctx context.Context, runs []*Run, now time.Time) error {
	if len(runs) == 0 {
		return nil
	}
	at := now.UTC().Truncate(time.Millisecond)
	minute := at.Truncate(time.Minute).UnixMilli()
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, r := range runs {
			timelinePointScript.Eval(ctx, p, []string{s.timelineKey(r.ID)},
				at.UnixMilli(), minute, PointOf(r, at).member(), MaxTimelinePoints, s.ttlMS())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: record timelines: %w", err)
	}
	return nil
}

// Timeline returns a run's timeline, oldest first.
func (s *Store) Timeline(ctx context.Context, runID string) ([]TimelinePoint, error) {
	ms, err := s.rdb.ZRange(ctx, s.timelineKey(runID), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("store: timeline %s: %w", runID, err)
	}
	out := make([]TimelinePoint, 0, len(ms))
	for _, m := range ms {
		if p, ok := parsePoint(m); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// PointsBefore returns, for each run ID, the newest timeline point taken
// at or before t (ok false when there is none), in one pipeline: what a
// rate over the last minutes is measured from.
func (s *Store) PointsBefore(ctx context.Context, runIDs []string, t time.Time) ([]TimelinePoint, []bool, error) {
	cmds := make([]*redis.StringSliceCmd, len(runIDs))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range runIDs {
			cmds[i] = p.ZRevRangeByScore(ctx, s.timelineKey(id), &redis.ZRangeBy{
				Max: strconv.FormatInt(t.UnixMilli(), 10), Min: "-inf", Count: 1})
		}
		return nil
	})
	if err != nil && !isNotFound(err) {
		return nil, nil, fmt.Errorf("store: timeline points: %w", err)
	}
	pts := make([]TimelinePoint, len(runIDs))
	oks := make([]bool, len(runIDs))
	for i, c := range cmds {
		if v := c.Val(); len(v) == 1 {
			pts[i], oks[i] = parsePoint(v[0])
		}
	}
	return pts, oks, nil
}

// FailureGroup is the failed rows of a run that share an error message
// (its first FailureGroupBytes bytes).
type FailureGroup struct {
	// Message is the group's error message ("" for failures without one).
	Message string `json:"message"`
	// Other is set on the group of the failures whose message found no
	// room (past MaxFailureGroups groups); Message is then "".
	Other bool  `json:"other,omitempty"`
	Count int64 `json:"count"`
	// Lines are up to FailureExamples source lines of failed rows.
	Lines []int64 `json:"lines"`
}

// FailureGroupOf returns the group name of an error message.
func FailureGroupOf(msg string) string {
	if len(msg) > FailureGroupBytes {
		return msg[:FailureGroupBytes]
	}
	return msg
}

// FailureGroups returns the run's failures grouped by error, largest
// group first (the "other" group last). It reads one small hash.
func (s *Store) FailureGroups(ctx context.Context, runID string) ([]FailureGroup, error) {
	m, err := s.rdb.HGetAll(ctx, s.failsKey(runID)).Result()
	if err != nil {
		return nil, fmt.Errorf("store: failure groups %s: %w", runID, err)
	}
	lines := func(v string) []int64 {
		var out []int64
		for _, f := range strings.Fields(v) {
			if n, err := strconv.ParseInt(f, 10, 64); err == nil {
				out = append(out, n)
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
		return out
	}
	var gs []FailureGroup
	var other *FailureGroup
	for k, v := range m {
		n, _ := strconv.ParseInt(v, 10, 64)
		switch {
		case k == "other":
			if n > 0 {
				other = &FailureGroup{Other: true, Count: n, Lines: lines(m["xother"])}
			}
		case strings.HasPrefix(k, "n:") && n > 0:
			g := k[2:]
			gs = append(gs, FailureGroup{Message: g, Count: n, Lines: lines(m["x:"+g])})
		}
	}
	sort.Slice(gs, func(i, j int) bool {
		if gs[i].Count != gs[j].Count {
			return gs[i].Count > gs[j].Count
		}
		return gs[i].Message < gs[j].Message
	})
	if other != nil {
		gs = append(gs, *other)
	}
	return gs, nil
}

// Count429 counts one 429 answer of the API in mode's counter of the
// current minute (kept Window429).
func (s *Store) Count429(ctx context.Context, mode refonte.Mode, now time.Time) error {
	k := s.count429Key(mode, now.Unix()/60)
	if err := count429Script.Run(ctx, s.rdb, []string{k}, Window429.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("store: count 429: %w", err)
	}
	return nil
}

// Recent429 returns the 429 answers counted for mode in the minutes that
// overlap the window ending at now (at most Window429).
func (s *Store) Recent429(ctx context.Context, mode refonte.Mode, now time.Time, window time.Duration) (int64, error) {
	window = min(window, Window429)
	last := now.Unix() / 60
	first := now.Add(-window).Unix() / 60
	keys := make([]string, 0, last-first+1)
	for m := first; m <= last; m++ {
		keys = append(keys, s.count429Key(mode, m))
	}
	vs, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return 0, fmt.Errorf("store: recent 429s: %w", err)
	}
	var total int64
	for _, v := range vs {
		if str, ok := v.(string); ok {
			n, _ := strconv.ParseInt(str, 10, 64)
			total += n
		}
	}
	return total, nil
}
