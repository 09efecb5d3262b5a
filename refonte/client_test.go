package refonte

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testKey is the API key of the tests; TestRedaction asserts it never
// leaks.
const testKey = "test_k3y-SHOULD-NEVER-LEAK-7f3a"

// recordedRequest is what the test server saw of one request.
type recordedRequest struct {
	Method, Path, RawQuery, Auth, ContentType string
	Body                                      []byte
	At                                        time.Time
}

// recorder is an httptest server that records every request and answers
// with reply, called with the 1-based request number.
type recorder struct {
	mu   sync.Mutex
	reqs []recordedRequest
	srv  *httptest.Server
}

// requests returns a copy of the recorded requests.
func (r *recorder) requests() []recordedRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recordedRequest(nil), r.reqs...)
}

// newRecorder starts a server answering with reply and returns it with a
// client of testKey whose base URL is the server's "/v1" and whose retries
// are fast. opts are applied after the defaults.
func newRecorder(t *testing.T, reply func(w http.ResponseWriter, r *http.Request, n int), opts ...Option) (*recorder, *Client) {
	t.Helper()
	rec := &recorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading the request body: %v", err)
		}
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, recordedRequest{Method: r.Method, Path: r.URL.EscapedPath(),
			RawQuery: r.URL.RawQuery, Auth: r.Header.Get("Authorization"),
			ContentType: r.Header.Get("Content-Type"), Body: body, At: time.Now()})
		n := len(rec.reqs)
		rec.mu.Unlock()
		reply(w, r, n)
	}))
	t.Cleanup(rec.srv.Close)
	all := append([]Option{WithBaseURL(rec.srv.URL + "/v1"),
		WithRetry(RetryPolicy{MaxElapsed: 5 * time.Second, InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond})},
		opts...)
	c, err := NewClient(testKey, all...)
	if err != nil {
		t.Fatal(err)
	}
	return rec, c
}

// writeJSON answers status with body.
func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// apiError answers the reference's JSON error.
func apiError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]any{"status_code": status, "error": msg})
	writeJSON(w, status, string(b))
}

// wantAuth is the Authorization header of testKey.
var wantAuth = "Basic " + base64.StdEncoding.EncodeToString([]byte(testKey+":"))

func TestNewClient(t *testing.T) {
	tests := []struct {
		name     string
		key      string
		opts     []Option
		wantMode Mode
		wantErr  error
		wantBase string
	}{
		{name: "test key", key: "test_abc", wantMode: ModeTest, wantBase: DefaultBaseURL},
		{name: "live key", key: "live_abc", wantMode: ModeLive, wantBase: DefaultBaseURL},
		{name: "base URL trailing slash", key: "test_abc", opts: []Option{WithBaseURL("http://127.0.0.1:8089/v1/")},
			wantMode: ModeTest, wantBase: "http://127.0.0.1:8089/v1"},
		{name: "empty key", key: "", wantErr: ErrInvalidKey},
		{name: "no prefix", key: "sk_SECRETVALUE", wantErr: ErrInvalidKey},
		{name: "prefix only", key: "live_", wantErr: ErrInvalidKey},
		{name: "upper-case prefix", key: "TEST_SECRETVALUE", wantErr: ErrInvalidKey},
		{name: "bad base URL", key: "test_SECRETVALUE", opts: []Option{WithBaseURL("ftp://x")}},
		{name: "base URL with credentials", key: "test_SECRETVALUE", opts: []Option{WithBaseURL("https://u:SECRETVALUE@h/v1")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClient(tt.key, tt.opts...)
			if tt.wantMode == "" {
				if err == nil {
					t.Fatalf("NewClient succeeded, want an error")
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("error %v, want one matching %v", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "SECRETVALUE") {
					t.Errorf("the error %q contains the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Mode() != tt.wantMode || c.BaseURL() != tt.wantBase {
				t.Errorf("Mode %q BaseURL %q, want %q %q", c.Mode(), c.BaseURL(), tt.wantMode, tt.wantBase)
			}
		})
	}
}

func TestDefaultHTTPClient(t *testing.T) {
	c, err := NewClient("test_abc")
	if err != nil {
		t.Fatal(err)
	}
	if c.http.Timeout != 60*time.Second {
		t.Errorf("overall timeout %v, want 60s", c.http.Timeout)
	}
	tr, ok := c.http.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("transport %T, want *http.Transport", c.http.Transport)
	}
	if tr.MaxIdleConnsPerHost < 200 || tr.MaxIdleConns < 200 || tr.MaxConnsPerHost != 0 || tr.DisableKeepAlives {
		t.Errorf("pool: MaxIdleConnsPerHost %d MaxIdleConns %d MaxConnsPerHost %d DisableKeepAlives %v",
			tr.MaxIdleConnsPerHost, tr.MaxIdleConns, tr.MaxConnsPerHost, tr.DisableKeepAlives)
	}
	if tr.DialContext == nil || tr.TLSHandshakeTimeout <= 0 || tr.ResponseHeaderTimeout <= 0 || tr.IdleConnTimeout <= 0 {
		t.Errorf("timeouts missing: TLS %v header %v idle %v", tr.TLSHandshakeTimeout, tr.ResponseHeaderTimeout, tr.IdleConnTimeout)
	}
	if c.retry.MaxElapsed != DefaultMaxElapsed || c.retry.InitialInterval != DefaultInitialInterval || c.retry.MaxInterval != DefaultMaxInterval {
		t.Errorf("retry defaults %+v", c.retry)
	}
}

// TestConnectionReuse checks that 200 concurrent calls to one host reuse
// their connections on the next round instead of dialing again.
func TestConnectionReuse(t *testing.T) {
	const concurrency = 200
	var newConns atomic.Int64
	release := make(chan struct{})
	var inFlight atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Hold the first round until all calls are in flight, so that it
		// really needs 200 connections.
		if inFlight.Add(1) == concurrency {
			close(release)
		}
		<-release
		writeJSON(w, 200, `{"task_id":"t1","status":"pending"}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			newConns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c, err := NewClient(testKey, WithBaseURL(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	round := func() {
		var wg sync.WaitGroup
		for range concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := c.GetTask(t.Context(), "t1"); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	round()
	first := newConns.Load()
	if first != concurrency {
		t.Errorf("first round opened %d connections, want %d", first, concurrency)
	}
	round()
	if extra := newConns.Load() - first; extra > concurrency/10 {
		t.Errorf("second round opened %d new connections; the idle pool should serve it", extra)
	}
}

// wireCase is one endpoint call and the request it must send.
type wireCase struct {
	name      string
	call      func(t *testing.T, c *Client) // makes the call and checks its result
	reply     string                        // the 200 answer's body
	method    string
	path      string // escaped, with the /v1 prefix
	query     string // exact raw query ("" for none)
	body      string // JSON the request body must equal ("" for no body)
	wantCType bool
}

// runWireCases runs each case against a recording server and asserts
// method, escaped path, query, Authorization header and JSON body.
func runWireCases(t *testing.T, cases []wireCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec, c := newRecorder(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
				writeJSON(w, 200, tc.reply)
			})
			tc.call(t, c)
			reqs := rec.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Method != tc.method || r.Path != tc.path || r.RawQuery != tc.query {
				t.Errorf("request %s %s?%s, want %s %s?%s", r.Method, r.Path, r.RawQuery, tc.method, tc.path, tc.query)
			}
			if r.Auth != wantAuth {
				t.Errorf("Authorization %q, want %q", r.Auth, wantAuth)
			}
			if tc.body == "" {
				if len(r.Body) != 0 {
					t.Errorf("body %s, want none", r.Body)
				}
				return
			}
			if r.ContentType != "application/json" {
				t.Errorf("Content-Type %q, want application/json", r.ContentType)
			}
			assertJSONEqual(t, r.Body, tc.body)
		})
	}
}

// assertJSONEqual fails unless got and want are equal JSON values.
func assertJSONEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("body %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want %q: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("body\n got %s\nwant %s", gb, wb)
	}
}

// must fails the test on err.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// jsonEncode writes v as JSON to w.
func jsonEncode(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

// TestSetAPIKey: a rotated key is sent from the next request on; a key of
// the other mode is refused without being echoed.
func TestSetAPIKey(t *testing.T) {
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _, _ := r.BasicAuth()
		got.Store(user)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"task_id":"t1","status":"pending"}`))
	}))
	defer srv.Close()
	c, err := NewClient("test_old_key", WithBaseURL(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"test_old_key", "test_new_key"} {
		if key != "test_old_key" {
			if err := c.SetAPIKey(key); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.GetTask(context.Background(), "t1"); err != nil {
			t.Fatal(err)
		}
		if got.Load() != key {
			t.Errorf("request sent with key %v, want %s", got.Load(), key)
		}
	}
	for _, bad := range []string{"live_other_mode", "nokeyprefix", ""} {
		err := c.SetAPIKey(bad)
		if !errors.Is(err, ErrInvalidKey) || (bad != "" && strings.Contains(err.Error(), bad)) {
			t.Errorf("SetAPIKey(%q) = %v, want ErrInvalidKey without the key", bad, err)
		}
	}
	if _, err := c.GetTask(context.Background(), "t1"); err != nil || got.Load() != "test_new_key" {
		t.Errorf("after refused keys: key %v, err %v; want the last good key", got.Load(), err)
	}
}
