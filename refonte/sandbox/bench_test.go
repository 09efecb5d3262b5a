package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkCreateTask measures task creations per second over real loopback
// HTTP: parallel clients with keep-alive connections, each create with its
// own unique_id, tasks completing 500ms later (no callback URL), as the
// worker's benchmark drives the sandbox.
//
//	go test -run '^$' -bench BenchmarkCreateTask -benchtime 5s ./refonte/sandbox
func BenchmarkCreateTask(b *testing.B) {
	for _, cb := range []bool{false, true} {
		b.Run(fmt.Sprintf("callbacks=%v", cb), func(b *testing.B) { benchCreate(b, cb) })
	}
}

func benchCreate(b *testing.B, withCallbacks bool) {
	s := New(Config{})
	ts := httptest.NewServer(s)
	defer func() { ts.Close(); s.Close() }()
	var received atomic.Int64
	cbURL := ""
	if withCallbacks {
		rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			received.Add(1)
		}))
		defer rcv.Close()
		cbURL = rcv.URL
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 512
	tr.MaxIdleConnsPerHost = 512
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	var seq atomic.Int64
	url := ts.URL + "/v1/task/imageannotation"
	b.SetParallelism(16) // 16×GOMAXPROCS concurrent callers, like many worker goroutines
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := imageTask(map[string]any{"unique_id": fmt.Sprintf("bench-%d", seq.Add(1)), "metadata": map[string]any{"row": 1}})
			if cbURL != "" {
				body["callback_url"] = cbURL
			}
			raw, _ := json.Marshal(body)
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(raw))
			req.SetBasicAuth(DefaultTestKey, "")
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "creates/s")
	if st := s.Stats(); st.UniqueIDsCreatedTwice != 0 || st.TasksCreated != int64(b.N) {
		b.Fatalf("stats %+v", st)
	}
}
