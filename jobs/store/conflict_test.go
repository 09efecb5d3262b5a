package store_test

import (
	"testing"

	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// TestAddJobsContentConflict is issue #17.9: a row whose unique_id is
// already recorded with another content fingerprint is refused (counted
// invalid, not a row of RunRows, nothing written); identical content and
// rows without a fingerprint stay duplicates.
func TestAddJobsContentConflict(t *testing.T) {
	e := newEnv(t)
	fp := func(j store.NewJob, f string) store.NewJob { j.Fingerprint = f; return j }
	run := e.createRun(refonte.ModeTest)
	outs, err := e.st.AddJobs(e.ctx, run, []store.NewJob{
		fp(newJob(t, run, 1, "a"), "f1"),
		fp(newJob(t, run, 2, "b"), "f2"),
		fp(newJob(t, run, 3, "a"), "f1"),    // identical: duplicate
		fp(newJob(t, run, 4, "a"), "other"), // same ID, other content: conflict
		fp(newJob(t, run, 5, "b"), ""),      // no fingerprint: duplicate
		fp(newJob(t, run, 6, "c"), "f3"),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []store.AddOutcome{store.AddedNew, store.AddedNew, store.AddedDuplicate, store.AddedConflict, store.AddedDuplicate, store.AddedNew}
	for i := range want {
		if outs[i] != want[i] {
			t.Errorf("row %d: outcome %d, want %d", i+1, outs[i], want[i])
		}
	}
	r, err := e.st.GetRun(e.ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Rows != 6 || r.Valid != 5 || r.Invalid != 1 || r.Enqueued != 3 || r.Duplicate != 2 {
		t.Errorf("counters = %+v, want rows 6 valid 5 invalid 1 enqueued 3 duplicate 2", r.Counters)
	}
	var lines []int64
	if err := e.st.RunRows(e.ctx, run.ID, func(row store.RunRow, _ *store.Job) error {
		lines = append(lines, row.Line)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(lines) != 5 || lines[3] != 5 {
		t.Errorf("run rows = %v, want 1 2 3 5 6", lines)
	}

	// A later run: the changed row conflicts with the first run's record,
	// which GetJob names; the whole batch may conflict.
	run2 := e.createRun(refonte.ModeTest)
	outs, err = e.st.AddJobs(e.ctx, run2, []store.NewJob{fp(newJob(t, run2, 7, "c"), "changed")})
	if err != nil {
		t.Fatal(err)
	}
	if outs[0] != store.AddedConflict {
		t.Errorf("cross-run outcome %d, want conflict", outs[0])
	}
	j, err := e.st.GetJob(e.ctx, refonte.ModeTest, "c")
	if err != nil || j.Run != run.ID || j.Line != 6 {
		t.Errorf("job c = %+v, %v; want run %s line 6", j, err, run.ID)
	}
	if r2, _ := e.st.GetRun(e.ctx, run2.ID); r2.Rows != 1 || r2.Invalid != 1 || r2.Valid != 0 || r2.Duplicate != 0 {
		t.Errorf("run 2 counters = %+v", r2.Counters)
	}
}
