package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
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
			if !benchPost(b, client, url, raw) {
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

// benchPost POSTs a create body with the test key, drains the answer and
// reports whether it was a 200 (an error is recorded on b otherwise).
func benchPost(b *testing.B, client *http.Client, url string, body []byte) bool {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.SetBasicAuth(DefaultTestKey, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		b.Error(err)
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Errorf("status %d", resp.StatusCode)
		return false
	}
	return true
}

// BenchmarkCreateWithCallback measures the whole per-task cost of the
// worker's benchmark path over loopback HTTP: a create with its own
// unique_id and a callback_url, the task completing at creation
// (CompleteImmediately, 256 callback workers), and its callback POSTed to
// a local receiver that reads the body and answers 200. The timer stops
// once every callback has been received.
//
//	go test -run '^$' -bench BenchmarkCreateWithCallback -benchmem -benchtime 2s -count 3 ./refonte/sandbox
func BenchmarkCreateWithCallback(b *testing.B) {
	s := New(Config{CompleteAfter: CompleteImmediately, CallbackWorkers: 256})
	ts := httptest.NewServer(s)
	var received atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		received.Add(1)
	}))
	defer func() { ts.Close(); rcv.Close(); s.Close() }()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 512
	tr.MaxIdleConnsPerHost = 512
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	var seq atomic.Int64
	url := ts.URL + "/v1/task/imageannotation"
	// The body as the worker sends it, built without reflection so the
	// client's own cost stays small next to the sandbox's.
	head := []byte(`{"project":"demo","attachment":"https://example.com/cat.jpg",` +
		`"geometries":{"box":{"objects_to_annotate":["cat"]}},"metadata":{"row":1,"source":"bench"},"callback_url":"` +
		rcv.URL + `/callback","unique_id":"bench-`)
	b.SetParallelism(16)
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 0, 512)
		for pb.Next() {
			buf = append(strconv.AppendInt(append(buf[:0], head...), seq.Add(1), 10), `"}`...)
			if !benchPost(b, client, url, buf) {
				return
			}
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for received.Load() < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Microsecond)
	}
	elapsed, cpu := time.Since(start), processCPU()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "tasks/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	if got := received.Load(); got != int64(b.N) {
		b.Fatalf("received %d callbacks, want %d", got, b.N)
	}
	// The receiver counts a callback before the sandbox reads its answer.
	for s.Stats().CallbacksOK < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if st := s.Stats(); st.UniqueIDsCreatedTwice != 0 || st.TasksCreated != int64(b.N) || st.CallbacksOK != int64(b.N) {
		b.Fatalf("stats %+v", st)
	}
}

// BenchmarkCreateHandler measures the server side of one task without the
// API client: ServeHTTP called directly, the task completing at creation
// and its callback delivered over loopback to a receiver that answers 200.
// The timer stops once every callback has been received.
//
//	go test -run '^$' -bench BenchmarkCreateHandler -benchmem ./refonte/sandbox
func BenchmarkCreateHandler(b *testing.B) {
	var received atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		received.Add(1)
	}))
	s := New(Config{CompleteAfter: CompleteImmediately, CallbackWorkers: 256})
	defer func() { rcv.Close(); s.Close() }()
	head := []byte(`{"project":"demo","attachment":"https://example.com/cat.jpg",` +
		`"geometries":{"box":{"objects_to_annotate":["cat"]}},"metadata":{"row":1,"source":"bench"},"callback_url":"` +
		rcv.URL + `/callback","unique_id":"bench-`)
	buf := make([]byte, 0, 512)
	rec := &discardWriter{h: http.Header{}}
	b.ResetTimer()
	cpu0 := processCPU()
	for i := range b.N {
		buf = append(strconv.AppendInt(append(buf[:0], head...), int64(i), 10), `"}`...)
		req, _ := http.NewRequest(http.MethodPost, "/v1/task/imageannotation", bytes.NewReader(buf))
		req.SetBasicAuth(DefaultTestKey, "")
		clear(rec.h)
		rec.code = 0
		s.ServeHTTP(rec, req)
		if rec.code != http.StatusOK {
			b.Fatalf("status %d", rec.code)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for received.Load() < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Microsecond)
	}
	cpu := processCPU() - cpu0
	b.StopTimer()
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	if got := received.Load(); got != int64(b.N) {
		b.Fatalf("received %d callbacks, want %d", got, b.N)
	}
}

// discardWriter is a ResponseWriter that keeps only the status.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header  { return d.h }
func (d *discardWriter) WriteHeader(code int) { d.code = code }
func (d *discardWriter) Write(p []byte) (int, error) {
	if d.code == 0 {
		d.code = http.StatusOK
	}
	return len(p), nil
}
