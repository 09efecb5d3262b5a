package enqueue_test

import (
	"context"
	"regexp"
	"testing"

	"github.com/refonte-ai/refonte-batch/app/enqueue"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// TestPriorityQueuesStatusRetry: -priority puts a run's tasks in its
// mode's queue of that priority, status shows it, and retry re-queues a
// failed row (payload from asynq, or rebuilt from the dataset) in the same
// queue.
func TestPriorityQueuesStatusRetry(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		args []string
		want jobs.Priority
	}{
		{nil, jobs.PriorityNormal},
		{[]string{"-priority", "high"}, jobs.PriorityHigh},
		{[]string{"-priority", "low"}, jobs.PriorityLow},
	} {
		t.Run(string(tt.want), func(t *testing.T) {
			f := newFixture(t)
			args := append([]string{"-type", "documenttranscription", "-json"}, tt.args...)
			r := f.main(append(args, f.write("p.jsonl", rows(5, "prio")))...)
			if r.code != enqueue.ExitOK {
				t.Fatalf("submit exit %d: %s", r.code, r.stderr)
			}
			runID := r.lastJSON(t)["run_id"].(string)
			own := jobs.PriorityQueue(refonte.ModeTest, tt.want)
			for _, q := range jobs.Queues(refonte.ModeTest) {
				want := 0
				if q == own {
					want = 5
				}
				if got := f.pending(q); got != want {
					t.Errorf("pending in %s = %d, want %d", q, got, want)
				}
			}
			r = f.main("status", "-json", runID)
			if got := r.lastJSON(t)["priority"]; got != string(tt.want) {
				t.Errorf("status -json priority = %v, want %s", got, tt.want)
			}
			if r = f.main("status", runID); !regexp.MustCompile(`(?m)^priority +` + string(tt.want) + `$`).MatchString(r.stdout) {
				t.Errorf("status: %q, want the priority", r.stdout)
			}

			// Row 0 failed at the worker (asynq archived it); row 1 at the
			// API (its task is gone: rebuilt from the dataset).
			js := f.jobsOf(runID)
			id := func(i int) string { return jobs.TaskID(refonte.ModeTest, js[i].UniqueID) }
			if err := f.insp.ArchiveTask(own, id(0)); err != nil {
				t.Fatal(err)
			}
			if _, err := f.st.Fail(ctx, refonte.ModeTest, js[0].UniqueID, "400: bad"); err != nil {
				t.Fatal(err)
			}
			if err := f.insp.DeleteTask(own, id(1)); err != nil {
				t.Fatal(err)
			}
			f.complete(js[1], refonte.StatusError, "", "labeler gave up")
			if r = f.main("retry", runID); r.code != enqueue.ExitOK {
				t.Fatalf("retry exit %d: %s", r.code, r.stderr)
			}
			for i := range 2 {
				info, err := f.insp.GetTaskInfo(own, id(i))
				if err != nil {
					t.Fatalf("row %d after retry: not in %s: %v", i, own, err)
				}
				if info.Queue != own {
					t.Errorf("row %d re-queued in %s, want %s", i, info.Queue, own)
				}
			}
			if got := f.pending(own); got != 5 {
				t.Errorf("pending in %s after retry = %d, want 5", own, got)
			}
		})
	}
}
