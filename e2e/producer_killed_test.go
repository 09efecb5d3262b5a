package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// Issue #17.5: enqueue SIGKILLed mid-file. Its run does not stay
// `enqueuing` for ever: once the heartbeat lapses, `status` and `runs`
// show it aborted ("producer stopped at line N"); the same command run
// again queues every valid row exactly once.
func TestProducerKilledMidFile(t *testing.T) {
	suite(t)
	rows := envRows(t, 60000, 60000)
	dir, logDir := t.TempDir(), t.TempDir()
	rs := testredis.Start(t, testredis.Options{})
	ds := writeDataset(t, dir, "killed", rows, 0)
	args := []string{"-type", "imageannotation", "-project", "demo", "-callback-url", "http://127.0.0.1:9/callback",
		"-rejects", ds.rejects, "-json", "-redis", rs.URL(), "-heartbeat", "200ms", ds.path}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	p := newProc(t, logDir, "enqueue-killed", bin(t, progEnqueue), args, baseEnv())
	p.start()
	opt, err := redis.ParseURL(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	waitFor(t, time.Minute, "enqueue to write a fifth of the rows", func() (bool, string) {
		n, err := rdb.DBSize(ctx).Result()
		if p.exited() {
			t.Fatalf("enqueue finished before the kill; raise E2E_ROWS")
		}
		return err == nil && n >= int64(ds.valid)/5, "keys so far"
	})
	p.kill()

	list := runEnqueue(t, ctx, logDir, "runs", "-json", "-redis", rs.URL())
	var first summary
	if err := json.Unmarshal([]byte(strings.SplitN(string(list.stdout), "\n", 2)[0]), &first); err != nil || first.RunID == "" {
		t.Fatalf("runs -json: %v\n%s", err, list.stdout)
	}
	var reason string
	waitFor(t, 30*time.Second, "the killed producer's run to show aborted", func() (bool, string) {
		r := runEnqueue(t, ctx, "", "status", "-json", "-redis", rs.URL(), first.RunID)
		var s struct {
			summary
			AbortReason string `json:"abort_reason"`
		}
		r.lastJSON(t, &s)
		reason = s.AbortReason
		return s.State == "aborted", s.State
	})
	if !strings.Contains(reason, "producer stopped at line") {
		t.Errorf("abort reason %q does not say where the producer stopped", reason)
	}
	if r := runEnqueue(t, ctx, "", "runs", "-redis", rs.URL()); !strings.Contains(string(r.stdout), first.RunID+"  aborted") {
		t.Errorf("enqueue runs does not show the run aborted:\n%s", r.stdout)
	}
	t.Logf("aborted: %s", reason)

	again := runEnqueue(t, ctx, logDir, args...)
	if again.code != 0 {
		t.Fatalf("re-run: exit %d\n%s", again.code, tailBytes(again.stderr, 2000))
	}
	var s summary
	again.lastJSON(t, &s)
	if s.Valid != int64(ds.valid) || s.Enqueued+s.Duplicate != int64(ds.valid) || s.Enqueued == 0 || s.Duplicate == 0 {
		t.Errorf("re-run %s: want enqueued (the rest) + duplicate (the killed run's rows) = %d, both > 0", s, ds.valid)
	}
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: rs.Addr()})
	defer insp.Close()
	q, err := insp.GetQueueInfo(jobs.Queue(refonte.ModeTest))
	if err != nil {
		t.Fatal(err)
	}
	if q.Pending != ds.valid {
		t.Errorf("asynq pending = %d, want exactly %d (one task per valid row)", q.Pending, ds.valid)
	}
}
