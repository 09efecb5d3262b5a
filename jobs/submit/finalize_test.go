package submit

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/control"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

// TestCanceledRunBatchFinalizedWhoeverCancels: a canceled run whose rows
// all settle has its batch finalized the same way whether the worker
// (its check before a create) or enqueue cancel's sweep canceled the last
// rows: the sweep hands the finalize to the workers (a finalize job),
// which apply the rule of their own transitions.
func TestCanceledRunBatchFinalizedWhoeverCancels(t *testing.T) {
	for _, tt := range []struct {
		name      string
		submitted int  // rows created before the cancel
		bySweep   bool // enqueue cancel's sweep cancels the rest, else the worker does
	}{
		{"worker cancels every row", 0, false},
		{"worker cancels the last rows", 1, false},
		{"sweep cancels every row", 0, true},
		{"sweep cancels the last rows", 1, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st, rdb := newStore(t)
			_, base := newSandbox(t, sandbox.Config{})
			client := newClient(t, testKey, base)
			h, err := New(Options{Store: st, Clients: map[refonte.Mode]*refonte.Client{refonte.ModeTest: client}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := client.CreateBatch(ctx, refonte.CreateBatchRequest{Project: "demo", Name: "night-1"}); err != nil {
				t.Fatal(err)
			}
			run := &store.Run{ID: store.NewRunID(time.Now()), Dataset: "rows.jsonl", Type: refonte.TypeImageAnnotation,
				Project: "demo", Batch: "night-1", Mode: refonte.ModeTest, CreatedAt: time.Now()}
			_, tasks := addRunWith(t, st, run, 3, func(i int) map[string]any {
				p := rowParams(i)
				p["batch"] = "night-1"
				return p
			})
			for _, task := range tasks[:tt.submitted] {
				if err := h.ProcessTask(ctx, task); err != nil {
					t.Fatal(err)
				}
			}
			if tt.bySweep {
				rep, err := control.Cancel(ctx, st, asynq.NewClientFromRedisClient(rdb), run.ID, false)
				if err != nil {
					t.Fatal(err)
				}
				if rep.CanceledNow != int64(3-tt.submitted) {
					t.Fatalf("canceled now %d, want %d", rep.CanceledNow, 3-tt.submitted)
				}
				// What a worker serving the run's mode does with the queue.
				info, err := asynq.NewInspectorFromRedisClient(rdb).GetTaskInfo(
					jobs.PriorityQueue(refonte.ModeTest, jobs.PriorityHigh), jobs.FinalizeTaskID(run.ID))
				if err != nil {
					t.Fatalf("no finalize job queued for the workers: %v", err)
				}
				if err := h.ProcessFinalize(ctx, asynq.NewTask(info.Type, info.Payload)); err != nil {
					t.Fatal(err)
				}
			} else {
				if err := st.RequestCancel(ctx, run.ID, false); err != nil {
					t.Fatal(err)
				}
				for _, task := range tasks[tt.submitted:] {
					if err := h.ProcessTask(ctx, task); err != nil {
						t.Fatal(err)
					}
				}
			}
			r, err := st.GetRun(ctx, run.ID)
			if err != nil {
				t.Fatal(err)
			}
			b, err := client.GetBatch(ctx, "night-1")
			if err != nil {
				t.Fatal(err)
			}
			if b.Status == refonte.BatchStaging || !r.BatchFinalized {
				t.Errorf("batch %s, run batch_finalized %v: want finalized", b.Status, r.BatchFinalized)
			}
			wantState := store.RunCanceled
			if tt.submitted > 0 {
				wantState = store.RunCanceling // a created task still runs
			}
			if r.State != wantState || r.CanceledBeforeSubmit != int64(3-tt.submitted) {
				t.Errorf("run %s, canceled before submit %d; want %s, %d", r.State, r.CanceledBeforeSubmit, wantState, 3-tt.submitted)
			}
		})
	}
}
