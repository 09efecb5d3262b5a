package sandbox

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/refonte"
)

// start runs a sandbox behind an httptest server and returns it with the
// API base URL; both are stopped in t.Cleanup.
func start(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	s := New(cfg)
	ts := httptest.NewServer(s)
	t.Cleanup(func() {
		ts.Close()
		s.Close()
	})
	return s, ts.URL + "/v1"
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r reply) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	r.decode(t, &m)
	return m
}

func (r reply) task(t *testing.T) refonte.Task {
	t.Helper()
	var task refonte.Task
	r.decode(t, &task)
	return task
}

// call sends one API request with key as the Basic auth username (none
// when key is empty) and body JSON-encoded (none when nil).
func call(t *testing.T, method, url, key string, body any) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.SetBasicAuth(key, "")
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

// wantError asserts an error reply in the reference's JSON shape.
func wantError(t *testing.T, r reply, status int) string {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	var e struct {
		StatusCode *int    `json:"status_code"`
		Error      *string `json:"error"`
	}
	r.decode(t, &e)
	if e.StatusCode == nil || *e.StatusCode != status || e.Error == nil || *e.Error == "" {
		t.Fatalf("error body %s: want {status_code:%d, error:…}", r.body, status)
	}
	return *e.Error
}

func imageTask(extra map[string]any) map[string]any {
	body := map[string]any{
		"project":    "demo",
		"attachment": "https://example.com/cat.jpg",
		"geometries": map[string]any{"box": map[string]any{"objects_to_annotate": []string{"cat"}}},
	}
	for k, v := range extra {
		body[k] = v
	}
	return body
}

// waitFor polls cond until it is true or fails the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// receiver is a callback endpoint that records deliveries.
type receiver struct {
	mu      sync.Mutex
	got     []receivedCallback
	fail    int // answer 500 to the first fail requests
	answers int
	srv     *httptest.Server
}

type receivedCallback struct {
	auth string
	body callbackBody
	at   time.Time
}

func newReceiver(t *testing.T, fail int) *receiver {
	t.Helper()
	rc := &receiver{fail: fail}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body callbackBody
		err := json.NewDecoder(r.Body).Decode(&body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.answers++
		if err != nil || rc.answers <= rc.fail {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		rc.got = append(rc.got, receivedCallback{r.Header.Get(CallbackAuthHeader), body, time.Now()})
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) received() []receivedCallback {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]receivedCallback(nil), rc.got...)
}

func (rc *receiver) attempts() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.answers
}
