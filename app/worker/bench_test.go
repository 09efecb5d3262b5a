package worker

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/internal/testkit"
	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

// benchRows is the rows per measured drain (BENCH_ROWS, default 5000).
func benchRows() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_ROWS")); err == nil && n > 0 {
		return n
	}
	return 5000
}

// noopDrain enqueues rows jobs exactly as enqueue does and measures how
// fast one asynq server with a handler that does nothing drains them.
func noopDrain(b *testing.B, rows, concurrency int) float64 {
	b.Helper()
	redisURL := testredis.Fresh(b)
	st, rdb := testkit.StoreOn(b, redisURL, store.Options{})
	addRun(b, st, refonte.ModeTest, rows, "")
	if f := os.Getenv("BENCH_REDIS_STATS"); f != "" {
		rdb.ConfigResetStat(context.Background())
		defer func() {
			info, _ := rdb.Info(context.Background(), "commandstats").Result()
			_ = os.WriteFile(f+".noop", []byte(info), 0o644)
		}()
	}
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		b.Fatal(err)
	}
	var done atomic.Int64
	finished := make(chan struct{})
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: opt.Addr, PoolSize: concurrency + 20}, asynq.Config{
		Concurrency: concurrency, Queues: map[string]int{jobs.Queue(refonte.ModeTest): 1},
		Logger: zap.NewNop().Sugar(), LogLevel: asynq.FatalLevel,
	})
	start := time.Now()
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		if done.Add(1) == int64(rows) {
			close(finished)
		}
		return nil
	})); err != nil {
		b.Fatal(err)
	}
	<-finished
	elapsed := time.Since(start)
	srv.Shutdown()
	return float64(rows) / elapsed.Seconds()
}

// workerDrain enqueues rows jobs, runs a worker (no rate limit) against
// the sandbox, which completes each task at once and POSTs its callback to
// the worker, and measures rows per second until every row is completed
// (submitted and its callback matched) in the store.
func workerDrain(b *testing.B, rows, concurrency int, latency time.Duration) float64 {
	b.Helper()
	return workerDrainOn(b, testredis.Fresh(b), "", rows, concurrency, latency)
}

// workerDrainOn is workerDrain on the Redis at redisURL; the worker's
// REDIS_URL is redisURL followed by query (such as "?wait_replicas=1").
func workerDrainOn(b *testing.B, redisURL, query string, rows, concurrency int, latency time.Duration) float64 {
	b.Helper()
	st, rdb := testkit.StoreOn(b, redisURL, store.Options{})
	_, api := startSandbox(b, sandbox.Config{CompleteAfter: sandbox.CompleteImmediately, Latency: latency,
		CallbackWorkers: 256})
	cfg := testConfig(b, redisURL+query, api)
	cfg.Concurrency = concurrency
	cfg.TestKey, cfg.LiveKey = testKey, ""
	if n, err := strconv.Atoi(os.Getenv("BENCH_FETCHERS")); err == nil && n > 0 {
		cfg.Fetchers = n
	}
	if n, err := strconv.Atoi(os.Getenv("BENCH_PREFETCH")); err == nil {
		cfg.Prefetch = n
	}
	run := addRun(b, st, refonte.ModeTest, rows, cfg.CallbackURL)
	if os.Getenv("BENCH_REDIS_STATS") != "" {
		rdb.ConfigResetStat(context.Background())
	}
	start := time.Now()
	r := startWorker(b, cfg, zap.NewNop())
	ctx := context.Background()
	var subAt time.Time
	for {
		got, err := st.GetRun(ctx, run.ID)
		if err != nil {
			b.Fatal(err)
		}
		if got.Submitted == int64(rows) && subAt.IsZero() {
			subAt = time.Now()
		}
		if got.Completed == int64(rows) {
			break
		}
		if got.Failed > 0 {
			b.Fatalf("%d rows failed", got.Failed)
		}
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start)
	if os.Getenv("BENCH_VERBOSE") != "" {
		dumpLatency(b, r.w)
		b.Logf("all submitted after %s (%.0f rows/s), all completed after %s", subAt.Sub(start),
			float64(rows)/subAt.Sub(start).Seconds(), elapsed)
	}
	if os.Getenv("BENCH_REDIS_STATS") != "" {
		info, _ := rdb.Info(ctx, "commandstats").Result()
		_ = os.WriteFile(os.Getenv("BENCH_REDIS_STATS"), []byte(info), 0o644)
	}
	if err := r.stop(); err != nil {
		b.Fatal(err)
	}
	return float64(rows) / elapsed.Seconds()
}

// BenchmarkEndToEnd measures rows per second through one worker process
// (no rate limit, zero API latency; concurrency BENCH_CONCURRENCY, default
// 50; asynq servers BENCH_FETCHERS and jobs fetched ahead BENCH_PREFETCH,
// default as the worker picks): queued in Redis, created at the in-process sandbox, completed there
// at once and matched by the worker's /callback. Each iteration also
// measures asynq's own no-op-handler drain rate of the same number of rows
// on the same machine, just before, so the ratio compares like with like.
//
//	go test -run '^$' -bench BenchmarkEndToEnd -benchtime 3x ./app/worker/
func BenchmarkEndToEnd(b *testing.B) {
	rows, conc := benchRows(), 50
	if n, err := strconv.Atoi(os.Getenv("BENCH_CONCURRENCY")); err == nil && n > 0 {
		conc = n
	}
	var sum, noopSum float64
	for range b.N {
		noopSum += noopDrain(b, rows, conc)
		sum += workerDrain(b, rows, conc, 0)
	}
	rate, noop := sum/float64(b.N), noopSum/float64(b.N)
	b.ReportMetric(rate, "rows/s")
	b.ReportMetric(noop, "noop_rows/s")
	b.ReportMetric(rate/noop, "ratio_to_noop")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkEndToEndLatency100ms is BenchmarkEndToEnd at concurrency 200
// when every API call takes 100 ms.
//
//	go test -run '^$' -bench BenchmarkEndToEndLatency100ms -benchtime 3x ./app/worker/
func BenchmarkEndToEndLatency100ms(b *testing.B) {
	rows := benchRows()
	var sum float64
	for range b.N {
		sum += workerDrain(b, rows, 200, 100*time.Millisecond)
	}
	b.ReportMetric(sum/float64(b.N), "rows/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkWaitReplicaCost measures what wait_replicas=1 costs a row: one
// worker (concurrency 50, no rate limit) drains BENCH_ROWS rows through
// the in-process sandbox (zero API latency, so the CPU is the bound, as in
// BenchmarkEndToEnd) on a master with one replica (both redis-servers on
// this machine, AOF off), with REDIS_URL's wait_replicas=0 and =1 in turn,
// each iteration one drain of each. Every row then makes two WAITs (its
// job's acknowledgement, its callback's 2xx), each after a SET. It
// reports both rates and the difference in microseconds per row.
//
//	go test -run '^$' -bench BenchmarkWaitReplicaCost -benchtime 4x ./app/worker/
func BenchmarkWaitReplicaCost(b *testing.B) {
	rows := benchRows()
	master := testredis.Start(b, testredis.Options{})
	replica := testredis.Start(b, testredis.Options{ReplicaOf: master.Addr()})
	waitReplicaOnline(b, master)
	_ = replica
	var off, on float64
	for range b.N {
		off += workerDrainOn(b, master.URL(), "?wait_replicas=0", rows, 50, 0)
		on += workerDrainOn(b, master.URL(), "?wait_replicas=1", rows, 50, 0)
	}
	off, on = off/float64(b.N), on/float64(b.N)
	b.ReportMetric(off, "rows/s_wait0")
	b.ReportMetric(on, "rows/s_wait1")
	b.ReportMetric(1e6/on-1e6/off, "wait_us/row")
	b.ReportMetric(0, "ns/op")
}

// waitReplicaOnline waits until master sees a replica online.
func waitReplicaOnline(b *testing.B, master *testredis.Server) {
	b.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: master.Addr()})
	defer rdb.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := rdb.Info(context.Background(), "replication").Result()
		if err == nil && strings.Contains(info, "state=online") {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("the replica is not online after 20 s: %v %s", err, info)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// BenchmarkSharedRateLimit runs 3 workers (concurrency 50 each) with
// -rate-limit 100 against a sandbox that answers 429 beyond 100 creates per
// second, and reports the achieved create rate and the 429s (target: at
// least 97/s and none). Rows per run: BENCH_RL_ROWS (default 1000).
//
//	go test -run '^$' -bench BenchmarkSharedRateLimit -benchtime 1x ./app/worker/
func BenchmarkSharedRateLimit(b *testing.B) {
	rows := 1000
	if n, err := strconv.Atoi(os.Getenv("BENCH_RL_ROWS")); err == nil && n > 0 {
		rows = n
	}
	var rateSum, limited float64
	for range b.N {
		redisURL := testredis.Fresh(b)
		st, _ := testkit.StoreOn(b, redisURL, store.Options{})
		sb, api := startSandbox(b, sandbox.Config{NoAutoComplete: true, RateLimit: 100})
		run := addRun(b, st, refonte.ModeTest, rows, "")
		start := time.Now()
		for range 3 {
			cfg := testConfig(b, redisURL, api)
			cfg.TestKey, cfg.LiveKey = testKey, ""
			cfg.Concurrency = 50
			cfg.RateLimit, cfg.RateBurst = 100, 1
			startWorker(b, cfg, zap.NewNop())
		}
		for {
			got, err := st.GetRun(context.Background(), run.ID)
			if err != nil {
				b.Fatal(err)
			}
			if got.Submitted == int64(rows) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		rateSum += float64(rows) / time.Since(start).Seconds()
		limited += float64(sb.Stats().RateLimited)
	}
	b.ReportMetric(rateSum/float64(b.N), "creates/s")
	b.ReportMetric(limited/float64(b.N), "429s/op")
	b.ReportMetric(0, "ns/op")
}

// dumpLatency logs the mean API and callback latencies of a worker (BENCH_VERBOSE).
func dumpLatency(b *testing.B, w *Worker) {
	mfs, _ := w.reg.Gather()
	for _, mf := range mfs {
		switch mf.GetName() {
		case "refonte_api_request_duration_seconds", "refonte_callback_duration_seconds", "refonte_limiter_wait_seconds":
			for _, m := range mf.GetMetric() {
				h := m.GetHistogram()
				b.Logf("%s %v: n=%d mean=%.2fms", mf.GetName(), m.GetLabel(), h.GetSampleCount(), 1000*h.GetSampleSum()/float64(h.GetSampleCount()))
			}
		}
	}
}
