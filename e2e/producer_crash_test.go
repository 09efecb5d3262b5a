package e2e

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// Scenario 2, producer side: redis-server SIGKILLed while enqueue is
// writing, its AOF cut back (the last writes lost, as when the machine
// fails), restarted. enqueue stops with exit 1 saying how far it got; the
// same command run again queues every valid row exactly once: asynq's
// queue holds one task per valid row, none lost, none twice.
func TestRedisKilledDuringEnqueue(t *testing.T) {
	suite(t)
	rows := envRows(t, 100000, 40000)
	dir := t.TempDir()
	logDir := t.TempDir()
	redisDir := t.TempDir()
	rs := testredis.Start(t, testredis.Options{AOF: true, Dir: redisDir})
	ds := writeDataset(t, dir, "produce", rows, 211)
	args := []string{"-type", "imageannotation", "-project", "demo", "-callback-url", "http://127.0.0.1:9/callback",
		"-rejects", ds.rejects, "-json", "-redis", rs.URL(), ds.path}

	opt, err := redis.ParseURL(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// Start enqueue; cut the AOF back to its size at about 20% of the
	// rows; kill Redis at about 60%.
	first := make(chan result, 1)
	go func() { first <- runEnqueue(t, ctx, logDir, args...) }()
	rdb := redis.NewClient(opt)
	noAOFRewrite(t, rdb)
	var cutFile string
	var cutSize int64 = -1
	var cutKeys, killKeys int64
	for {
		select {
		case r := <-first:
			t.Fatalf("enqueue finished (exit %d) before the crash; raise E2E_ROWS\n%s", r.code, r.stdout)
		default:
		}
		n, err := rdb.DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if cutSize < 0 && n >= int64(ds.valid)*2/5 {
			cutFile = lastIncrAOF(t, redisDir)
			fi, err := os.Stat(cutFile)
			if err != nil {
				t.Fatal(err)
			}
			cutSize, cutKeys = fi.Size(), n
		}
		if n >= int64(ds.valid)*6/5 {
			killKeys = n
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	rdb.Close()
	rs.Kill()
	if aof := lastIncrAOF(t, redisDir); aof != cutFile {
		t.Fatalf("the AOF was rewritten during the run (%s, then %s)", cutFile, aof)
	}
	if err := os.Truncate(cutFile, cutSize); err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGKILL redis-server at %d keys; AOF cut back to %d keys", killKeys, cutKeys)

	r := <-first
	if r.code != 1 {
		t.Errorf("enqueue with Redis killed under it: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, tailBytes(r.stderr, 3000))
	}
	if !bytes.Contains(r.stderr, []byte("after reading")) {
		t.Errorf("enqueue's message does not say how far it got:\n%s", tailBytes(r.stderr, 3000))
	}
	rs.Restart()

	second := runEnqueue(t, ctx, logDir, args...)
	if second.code != 3 {
		t.Fatalf("re-run: exit %d, want 3 (invalid rows)\nstdout:\n%s\nstderr:\n%s", second.code, second.stdout, tailBytes(second.stderr, 3000))
	}
	var s summary
	second.lastJSON(t, &s)
	t.Logf("re-run: %s", s)
	if s.Rows != int64(ds.rows) || s.Valid != int64(ds.valid) || s.Invalid != int64(len(ds.invalid)) || s.Enqueued+s.Duplicate != int64(ds.valid) {
		t.Errorf("re-run summary %s, want rows %d valid %d invalid %d and enqueued+duplicate = valid", s, ds.rows, ds.valid, len(ds.invalid))
	}
	if s.Enqueued == 0 || s.Duplicate == 0 {
		t.Errorf("re-run summary %s: want both rows kept from the first run (duplicate) and rows it lost (enqueued)", s)
	}
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: rs.Addr()})
	defer insp.Close()
	q, err := insp.GetQueueInfo(jobs.Queue(refonte.ModeTest))
	if err != nil {
		t.Fatal(err)
	}
	if q.Size != ds.valid || q.Pending != ds.valid {
		t.Errorf("asynq queue %s: size %d, pending %d; want exactly %d (one task per valid row)", q.Queue, q.Size, q.Pending, ds.valid)
	}
	checkRejectsFile(t, ds)
	runs := runEnqueue(t, ctx, "", "runs", "-redis", rs.URL())
	t.Logf("enqueue runs:\n%s", runs.stdout)
	t.Logf("first enqueue's stderr tail:\n%s", tailBytes(r.stderr, 600))
}

// noAOFRewrite turns off Redis's automatic AOF rewrite until its restart,
// so the incremental AOF file a test cuts back stays the one written to.
func noAOFRewrite(t testing.TB, rdb *redis.Client) {
	t.Helper()
	if err := rdb.ConfigSet(context.Background(), "auto-aof-rewrite-percentage", "0").Err(); err != nil {
		t.Fatalf("CONFIG SET auto-aof-rewrite-percentage 0: %v", err)
	}
}
