package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// TestMiniredis runs the main paths on miniredis, so packages whose fast
// unit tests use miniredis can use the store there too.
func TestMiniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	e := &env{t: t, ctx: context.Background(), rdb: rdb, st: store.New(rdb, store.Options{})}
	m := refonte.ModeTest
	run := e.createRun(m)
	if outs := e.addRows(run, 1, 3); count(outs, store.AddedNew) != 3 {
		t.Fatalf("outcomes = %v", outs)
	}
	if outs := e.addRows(run, 1, 1); outs[0] != store.AddedDuplicate {
		t.Fatalf("outcomes = %v", outs)
	}
	if err := e.st.FinishEnqueue(e.ctx, run.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.MarkSubmitted(e.ctx, m, "uid-1", "t1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Fail(e.ctx, m, "uid-2", "400"); err != nil {
		t.Fatal(err)
	}
	tr, err := e.st.Complete(e.ctx, m, "uid-3", outcome("t3", refonte.StatusCompleted, time.Now()))
	if err != nil || !tr.Changed || len(tr.RunsAllSubmitted) != 1 {
		t.Fatalf("Complete = %+v, %v", tr, err)
	}
	tr, err = e.st.Complete(e.ctx, m, "uid-1", outcome("t1", refonte.StatusCompleted, time.Now()))
	if err != nil || len(tr.RunsDone) != 1 || len(tr.RunsAllSubmitted) != 0 {
		t.Fatalf("Complete = %+v, %v", tr, err)
	}
	want := store.Counters{Rows: 4, Valid: 4, Enqueued: 3, Duplicate: 1, Submitted: 3, Completed: 3, Failed: 1}
	if c := e.counters(run.ID); c != want {
		t.Fatalf("counters = %+v, want %+v", c, want)
	}
	if ok, err := e.st.ReserveLiveSpend(e.ctx, time.Now(), 1); !ok || err != nil {
		t.Fatalf("ReserveLiveSpend = %v, %v", ok, err)
	}
	if ok, _ := e.st.ReserveLiveSpend(e.ctx, time.Now(), 1); ok {
		t.Fatal("reserved past the cap")
	}
	rows := 0
	if err := e.st.RunRows(e.ctx, run.ID, func(store.RunRow, *store.Job) error { rows++; return nil }); err != nil || rows != 4 {
		t.Fatalf("RunRows: %d rows, %v", rows, err)
	}
}
