package enqueue_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/refonte-ai/refonte-batch/app/enqueue"
	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// TestWaitSurvivesRedisOutage is issue #17.11: -wait keeps polling (with
// backoff) through a short Redis outage instead of exiting 1 on the first
// failed poll, and reports the run's end once Redis is back.
func TestWaitSurvivesRedisOutage(t *testing.T) {
	rs := testredis.Start(t, testredis.Options{AOF: true, Args: []string{"--appendfsync", "always"}})
	rdb := testredis.ClientOn(t, rs.URL())
	f := &fixture{t: t, url: rs.URL(), rdb: rdb, st: store.New(rdb, store.Options{}),
		insp: asynq.NewInspectorFromRedisClient(rdb), env: map[string]string{"REDIS_URL": rs.URL()}, dir: t.TempDir()}
	ds := f.write("one.jsonl", rows(1, "w"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan result, 1)
	go func() { done <- f.mainWith(mainOpts{ctx: ctx}, "-type", "documenttranscription", "-wait", "-json", ds) }()

	var run *store.Run
	for run == nil || run.State != store.RunRunning {
		select {
		case r := <-done:
			t.Fatalf("enqueue -wait ended before the outage: exit %d %s", r.code, r.stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if runs, err := f.st.ListRuns(ctx, 1); err == nil && len(runs) == 1 {
			run = runs[0]
		}
	}
	rs.Kill()
	select {
	case r := <-done:
		t.Fatalf("enqueue -wait gave up during a short Redis outage: exit %d\n%s", r.code, r.stderr)
	case <-time.After(5 * time.Second): // longer than go-redis's own retries of one call
	}
	rs.Restart()
	js := f.jobsOf(run.ID)
	if _, err := f.st.Complete(ctx, refonte.ModeTest, js[0].UniqueID, store.Outcome{TaskID: "t1", Status: refonte.StatusCompleted,
		Response: []byte(`{}`), At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.code != enqueue.ExitOK {
		t.Fatalf("exit %d, want 0 (every row completed)\n%s", r.code, r.stderr)
	}
	if m := r.lastJSON(t); m["state"] != "done" || num(t, m, "completed") != 1 {
		t.Errorf("summary = %v", m)
	}
}
