package callback_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/internal/testkit"
	"github.com/refonte-ai/refonte-batch/jobs/callback"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// BenchmarkCallbackHandler measures the callback endpoint alone: parallel
// POSTs of ~1 KB callbacks over real loopback HTTP (keep-alive) against a
// real redis-server holding b.N submitted jobs, each callback matching a
// different job. It reports callbacks/s matched.
//
//	go test -run '^$' -bench BenchmarkCallbackHandler -benchtime 20000x ./jobs/callback
func BenchmarkCallbackHandler(b *testing.B) {
	st, rdb := testkit.Store(b, store.Options{})
	ctx := context.Background()
	uids := make([]string, b.N)
	for i := range uids {
		uids[i] = fmt.Sprintf("bench-%08d", i)
	}
	run := addJobs(b, st, refonte.ModeTest, uids...)
	bodies := make([][]byte, b.N)
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		fail atomic.Value
	)
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < b.N; i = int(next.Add(1) - 1) {
				taskID := fmt.Sprintf("task-%08d", i)
				if _, err := st.MarkSubmitted(ctx, refonte.ModeTest, uids[i], taskID); err != nil {
					fail.Store(err)
					return
				}
				bodies[i] = cb{taskID: taskID, uid: uids[i], updated: base.Add(time.Duration(i) * time.Millisecond)}.body(b)
			}
		})
	}
	wg.Wait()
	if err := fail.Load(); err != nil {
		b.Fatal(err)
	}
	size := 0
	for _, body := range bodies {
		size += len(body)
	}

	reg := prometheus.NewRegistry()
	h, err := callback.NewHandler(callback.Config{Store: st, AuthKey: authKey, Logger: zap.NewNop(), Registerer: reg})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	url := srv.URL + "/callback"

	var sent atomic.Int64
	b.SetParallelism(16) // 16 × GOMAXPROCS concurrent deliveries
	goCPU0, redisCPU0 := processCPU(b), redisCPU(b, rdb)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := sent.Add(1) - 1
			req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(bodies[i]))
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(refonte.CallbackAuthHeader, authKey.Reveal())
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	goCPU, redisCPUUsed := processCPU(b)-goCPU0, redisCPU(b, rdb)-redisCPU0
	matched := count(b, reg, callback.OutcomeMatched)
	if int(matched) != b.N {
		b.Fatalf("%v callbacks matched, want %d", matched, b.N)
	}
	got, err := st.GetRun(ctx, run.ID)
	if err != nil {
		b.Fatal(err)
	}
	if got.Completed != int64(b.N) {
		b.Fatalf("run counts %d completed, want %d", got.Completed, b.N)
	}
	b.ReportMetric(matched/b.Elapsed().Seconds(), "callbacks/s")
	// CPU per callback, less sensitive than the rate to other load on the
	// machine: the Go process (HTTP client and server, handler) and Redis.
	b.ReportMetric(float64(goCPU.Microseconds())/float64(b.N), "go_cpu_us/callback")
	b.ReportMetric(float64(redisCPUUsed.Microseconds())/float64(b.N), "redis_cpu_us/callback")
	b.ReportMetric(float64(size)/float64(b.N), "body_bytes")
}

// processCPU returns the user+system CPU time of this process.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU returns the user+system CPU time of the redis-server.
func redisCPU(b *testing.B, rdb redis.UniversalClient) time.Duration {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (k == "used_cpu_user" || k == "used_cpu_sys") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}
