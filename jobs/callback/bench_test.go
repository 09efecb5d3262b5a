package callback_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/jobs/callback"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// BenchmarkCallbackHandler measures the callback endpoint alone: parallel
// POSTs of ~1 KB callbacks over real loopback HTTP (keep-alive) against a
// real redis-server holding b.N submitted jobs, each callback matching a
// different job. It reports callbacks/s matched.
//
//	go test -run '^$' -bench BenchmarkCallbackHandler -benchtime 20000x ./jobs/callback
func BenchmarkCallbackHandler(b *testing.B) {
	st := newStore(b)
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
	if testing.Verbose() {
		info, _ := st.Redis().Info(ctx, "commandstats", "cpu").Result()
		b.Log(info)
	}
	b.ReportMetric(matched/b.Elapsed().Seconds(), "callbacks/s")
	b.ReportMetric(float64(size)/float64(b.N), "body_bytes")
}
