package store_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// groups returns the run's failure groups as "message=count:lines".
func (e *env) groups(runID string) []string {
	e.t.Helper()
	gs, err := e.st.FailureGroups(e.ctx, runID)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, g := range gs {
		msg := g.Message
		if g.Other {
			msg = "<other>"
		}
		out = append(out, fmt.Sprintf("%s=%d:%v", msg, g.Count, g.Lines))
	}
	return out
}

// TestFailureGroups drives jobs in and out of state failed through every
// transition that can do it and checks the run's groups follow.
func TestFailureGroups(t *testing.T) {
	base := newEnv(t)
	m := refonte.ModeTest
	errOut := func(tid, msg string, at int) store.Outcome {
		return store.Outcome{TaskID: tid, Status: refonte.StatusError, Error: msg, At: time.UnixMilli(int64(at))}
	}
	type step func(e *env) error
	failRow := func(uid, msg string) step {
		return func(e *env) error { _, err := e.st.Fail(e.ctx, m, uid, msg); return err }
	}
	deliver := func(uid string, o store.Outcome) step {
		return func(e *env) error { _, err := e.st.Complete(e.ctx, m, uid, o); return err }
	}
	created := func(uid string, o store.Outcome) step {
		return func(e *env) error { _, err := e.st.RecordCreatedTerminal(e.ctx, m, uid, o); return err }
	}
	requeue := func(uid string) step {
		return func(e *env) error { _, err := e.st.Requeue(e.ctx, m, uid); return err }
	}
	long := strings.Repeat("x", store.FailureGroupBytes+50)
	tests := []struct {
		name  string
		steps []step
		want  []string
	}{
		{"none", nil, nil},
		{"fail groups by message, examples capped at 3", []step{
			failRow("uid-1", "bad attachment"), failRow("uid-2", "bad attachment"), failRow("uid-3", "bad attachment"),
			failRow("uid-4", "bad attachment"), failRow("uid-5", "no project"),
		}, []string{"bad attachment=4:[1 2 3]", "no project=1:[5]"}},
		{"callback error and created-terminal error", []step{
			deliver("uid-1", errOut("t1", "rejected", 1)), created("uid-2", errOut("t2", "rejected", 1)),
		}, []string{"rejected=2:[1 2]"}},
		{"a newer delivery moves a row to another group, then out", []step{
			deliver("uid-1", errOut("t1", "first", 1)), deliver("uid-1", errOut("t1", "second", 2)),
			deliver("uid-2", errOut("t2", "second", 1)),
			deliver("uid-2", store.Outcome{TaskID: "t2", Status: refonte.StatusCompleted, At: time.UnixMilli(3)}),
		}, []string{"second=1:[1]"}},
		{"requeue takes the row out; the group goes when empty", []step{
			failRow("uid-1", "boom"), failRow("uid-2", "boom"), requeue("uid-1"), requeue("uid-2"), failRow("uid-3", "later"),
		}, []string{"later=1:[3]"}},
		{"long messages group by their first bytes", []step{
			failRow("uid-1", long+"a"), failRow("uid-2", long+"b"),
		}, []string{long[:store.FailureGroupBytes] + "=2:[1 2]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := base.sub(t)
			run := e.enqueuedRun(m, 1, 6)
			for i, s := range tc.steps {
				if err := s(e); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
			if got := e.groups(run.ID); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("groups = %q, want %q", got, tc.want)
			}
			var sum int64
			gs, _ := e.st.FailureGroups(e.ctx, run.ID)
			for _, g := range gs {
				sum += g.Count
			}
			if f := e.counters(run.ID).Failed; sum != f {
				t.Errorf("groups hold %d rows, the run counts %d failed", sum, f)
			}
		})
	}
}

// TestFailureGroupsOverflowAndReruns: past MaxFailureGroups messages new
// ones count as "other"; a re-run meeting a failed row counts it too.
func TestFailureGroupsOverflowAndReruns(t *testing.T) {
	e := newEnv(t)
	m := refonte.ModeTest
	n := store.MaxFailureGroups + 5
	run := e.enqueuedRun(m, 1, n)
	for i := 1; i <= n; i++ {
		if _, err := e.st.Fail(e.ctx, m, fmt.Sprintf("uid-%d", i), fmt.Sprintf("error %03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	gs, err := e.st.FailureGroups(e.ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != store.MaxFailureGroups+1 || !gs[len(gs)-1].Other || gs[len(gs)-1].Count != 5 {
		t.Fatalf("got %d groups, last %+v; want %d named and other=5", len(gs), gs[len(gs)-1], store.MaxFailureGroups)
	}
	// Requeue one overflowed row: "other" drops by one.
	if _, err := e.st.Requeue(e.ctx, m, fmt.Sprintf("uid-%d", n)); err != nil {
		t.Fatal(err)
	}
	if gs, _ = e.st.FailureGroups(e.ctx, run.ID); gs[len(gs)-1].Count != 4 {
		t.Errorf("other = %d after a requeue, want 4", gs[len(gs)-1].Count)
	}
	// A second run of the same rows follows the failed jobs.
	rerun := e.createRun(m)
	e.addRows(rerun, 1, 2)
	if got, want := e.groups(rerun.ID), []string{"error 001=1:[1]", "error 002=1:[2]"}; !reflect.DeepEqual(got, want) {
		t.Errorf("re-run groups = %q, want %q", got, want)
	}
}

func TestTimeline(t *testing.T) {
	e := newEnv(t)
	m := refonte.ModeTest
	run := e.enqueuedRun(m, 1, 3)
	t0 := time.Date(2026, 12, 4, 10, 0, 5, 0, time.UTC)
	rec := func(at time.Time) {
		t.Helper()
		if err := e.st.RecordTimelines(e.ctx, []*store.Run{e.run(run.ID)}, at); err != nil {
			t.Fatal(err)
		}
	}
	rec(t0)
	if _, err := e.st.MarkSubmitted(e.ctx, m, "uid-1", "t1"); err != nil {
		t.Fatal(err)
	}
	rec(t0.Add(30 * time.Second)) // same minute: replaces the first point
	if _, err := e.st.Complete(e.ctx, m, "uid-1", outcome("t1", refonte.StatusCompleted, time.Now())); err != nil {
		t.Fatal(err)
	}
	rec(t0.Add(time.Minute))
	got, err := e.st.Timeline(e.ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.TimelinePoint{
		{At: t0.Add(30 * time.Second), Submitted: 1},
		{At: t0.Add(time.Minute), Submitted: 1, Completed: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("timeline = %+v, want %+v", got, want)
	}
	pts, oks, err := e.st.PointsBefore(e.ctx, []string{run.ID, "nope"}, t0.Add(50*time.Second))
	if err != nil || !oks[0] || oks[1] || pts[0] != want[0] {
		t.Errorf("PointsBefore = %+v %v %v, want the first point only", pts, oks, err)
	}
	if ttl := e.rdb.PTTL(e.ctx, prefixOf(e)+"run:"+run.ID+":timeline").Val(); ttl <= 0 {
		t.Errorf("timeline TTL = %v", ttl)
	}
}

func TestRecent429(t *testing.T) {
	e := newEnv(t)
	now := time.Date(2026, 12, 4, 10, 0, 30, 0, time.UTC)
	for _, at := range []time.Time{now.Add(-10 * time.Minute), now.Add(-4 * time.Minute), now, now} {
		if err := e.st.Count429(e.ctx, refonte.ModeLive, at); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.st.Count429(e.ctx, refonte.ModeTest, now); err != nil {
		t.Fatal(err)
	}
	n, err := e.st.Recent429(e.ctx, refonte.ModeLive, now, 5*time.Minute)
	if err != nil || n != 3 {
		t.Errorf("Recent429(live, 5m) = %d, %v; want 3", n, err)
	}
}
