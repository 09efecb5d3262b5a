package refonte

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
)

func TestVerifyCallbackAuth(t *testing.T) {
	const key = Secret("cb-key-123")
	long := strings.Repeat("k", 300)
	tests := []struct {
		name   string
		header http.Header
		key    Secret
		want   bool
	}{
		{"match", http.Header{"Refonte.ai-Callback-Auth": {"cb-key-123"}}, key, true},
		{"set through Set", func() http.Header { h := http.Header{}; h.Set(CallbackAuthHeader, "cb-key-123"); return h }(), key, true},
		{"missing", http.Header{}, key, false},
		{"empty value", http.Header{"Refonte.ai-Callback-Auth": {""}}, key, false},
		{"wrong", http.Header{"Refonte.ai-Callback-Auth": {"cb-key-124"}}, key, false},
		{"prefix", http.Header{"Refonte.ai-Callback-Auth": {"cb-key"}}, key, false},
		{"longer", http.Header{"Refonte.ai-Callback-Auth": {"cb-key-1234"}}, key, false},
		{"case differs", http.Header{"Refonte.ai-Callback-Auth": {"CB-KEY-123"}}, key, false},
		{"two values", http.Header{"Refonte.ai-Callback-Auth": {"cb-key-123", "x"}}, key, false},
		{"empty key", http.Header{"Refonte.ai-Callback-Auth": {""}}, "", false},
		{"empty key, header set", http.Header{"Refonte.ai-Callback-Auth": {"x"}}, "", false},
		{"long key", http.Header{"Refonte.ai-Callback-Auth": {long}}, Secret(long), true},
		{"long key, other value", http.Header{"Refonte.ai-Callback-Auth": {long + "x"}}, Secret(long), false},
		{"non-canonical header key", http.Header{CallbackAuthHeader: {"cb-key-123"}}, key, false},
	}
	if c := http.CanonicalHeaderKey(CallbackAuthHeader); c != callbackAuthCanonical {
		t.Fatalf("callbackAuthCanonical = %q, want %q", callbackAuthCanonical, c)
	}
	for _, tt := range tests {
		if got := VerifyCallbackAuth(tt.header, tt.key); got != tt.want {
			t.Errorf("%s: VerifyCallbackAuth = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestParseCallback(t *testing.T) {
	completed, err := os.ReadFile("testdata/callback_completed.json")
	must(t, err)
	errored, err := os.ReadFile("testdata/callback_error.json")
	must(t, err)
	tests := []struct {
		name         string
		body         string
		limit        int64
		wantErr      error
		wantID       string
		wantStatus   TaskStatus
		wantUID      string
		wantMeta     string
		wantResponse string
		wantTask     bool
	}{
		{name: "completed", body: string(completed), wantID: "5f1a9c2e7b", wantStatus: StatusCompleted, wantUID: "r-42:17",
			wantMeta: `{"source_row":17,"run":"r-42"}`, wantResponse: `{"annotations":[{"type":"box","label":"car","left":10,"top":20,"width":30,"height":40}]}`, wantTask: true},
		{name: "error at creation", body: string(errored), wantID: "6a2b", wantStatus: StatusError, wantUID: "r-42:3",
			wantMeta: `{"source_row":3}`, wantResponse: `{"error":"the attachment could not be downloaded"}`, wantTask: true},
		{name: "top level only", body: `{"task_id":"t1","status":"completed","response":{"a":1}}`,
			wantID: "t1", wantStatus: StatusCompleted, wantResponse: `{"a":1}`},
		{name: "task only", body: `{"task":{"task_id":"t2","status":"canceled","unique_id":"u","metadata":{"m":1},"response":null}}`,
			wantID: "t2", wantStatus: StatusCanceled, wantUID: "u", wantMeta: `{"m":1}`, wantTask: true},
		{name: "top level wins", body: `{"task":{"task_id":"t3","status":"pending"},"task_id":"t3","status":"completed","response":{"r":2}}`,
			wantID: "t3", wantStatus: StatusCompleted, wantResponse: `{"r":2}`, wantTask: true},
		{name: "null task", body: `{"task":null,"task_id":"t4","status":"completed"}`, wantID: "t4", wantStatus: StatusCompleted},
		{name: "missing task_id", body: `{"status":"completed","response":{}}`, wantErr: ErrBadCallback},
		{name: "empty task_id", body: `{"task_id":"","task":{"task_id":""}}`, wantErr: ErrBadCallback},
		{name: "not JSON", body: `task_id=t1`, wantErr: ErrBadCallback},
		{name: "array", body: `[1,2]`, wantErr: ErrBadCallback},
		{name: "task not an object", body: `{"task":"t1","task_id":"t1"}`, wantErr: ErrBadCallback},
		{name: "empty", body: ``, wantErr: ErrBadCallback},
		{name: "over the limit", body: `{"task_id":"t1","pad":"` + strings.Repeat("x", 100) + `"}`, limit: 64, wantErr: ErrCallbackTooLarge},
		{name: "exactly the limit", body: `{"task_id":"t1"}`, limit: 16, wantID: "t1"},
		{name: "over the default limit", body: `{"task_id":"t1","pad":"` + strings.Repeat("x", MaxCallbackBytes) + `"}`, wantErr: ErrCallbackTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cb, err := ParseCallback(strings.NewReader(tt.body), tt.limit)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
				return
			}
			must(t, err)
			if cb.TaskID != tt.wantID || cb.Status != tt.wantStatus || cb.UniqueID != tt.wantUID ||
				string(cb.Metadata) != tt.wantMeta || string(cb.Response) != tt.wantResponse || (cb.Task != nil) != tt.wantTask {
				t.Errorf("got id %q status %q uid %q meta %s response %s task %v", cb.TaskID, cb.Status, cb.UniqueID,
					cb.Metadata, cb.Response, cb.Task != nil)
			}
			if string(cb.Raw) != tt.body {
				t.Errorf("Raw differs from the body")
			}
		})
	}
}

func FuzzParseCallback(f *testing.F) {
	for _, name := range []string{"testdata/callback_completed.json", "testdata/callback_error.json"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{"task_id":"t1","status":"completed","response":{"a":1}}`,
		`{"task":{"task_id":"t2","status":"canceled","unique_id":"u","metadata":{"m":1},"response":null}}`,
		`{"task":null,"task_id":"t4"}`, `{"task":{"task_id":"x","completed_at":"bad"}}`, `[]`, `null`, ``, `{"task_id":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		const limit = 4096
		cb, err := ParseCallback(bytes.NewReader(body), limit)
		if err != nil {
			if !errors.Is(err, ErrBadCallback) && !errors.Is(err, ErrCallbackTooLarge) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			if errors.Is(err, ErrCallbackTooLarge) != (len(body) > limit) {
				t.Fatalf("ErrCallbackTooLarge = %v for %d bytes", errors.Is(err, ErrCallbackTooLarge), len(body))
			}
			return
		}
		if cb.TaskID == "" || len(body) > limit || !bytes.Equal(cb.Raw, body) {
			t.Fatalf("accepted a body with task id %q, %d bytes", cb.TaskID, len(body))
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		// Parsing is deterministic.
		again, err := ParseCallback(bytes.NewReader(cb.Raw), limit)
		if err != nil || again.TaskID != cb.TaskID || again.Status != cb.Status || !bytes.Equal(again.Response, cb.Response) {
			t.Fatalf("re-parse differs: %v", err)
		}
	})
}

// BenchmarkParseCallback measures the parse of a ~1 KB completed callback.
//
//	go test -run '^$' -bench ParseCallback -benchmem ./refonte/
func BenchmarkParseCallback(b *testing.B) {
	body, err := os.ReadFile("testdata/callback_completed.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		cb, err := ParseCallback(bytes.NewReader(body), 0)
		if err != nil || cb.TaskID == "" {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCallbackAuth measures the check of the auth header.
func BenchmarkVerifyCallbackAuth(b *testing.B) {
	const key = Secret("cb_secret_0123456789abcdef0123456789abcdef")
	h := http.Header{}
	h.Set(CallbackAuthHeader, key.Reveal())
	b.ReportAllocs()
	for b.Loop() {
		if !VerifyCallbackAuth(h, key) {
			b.Fatal("refused")
		}
	}
}
