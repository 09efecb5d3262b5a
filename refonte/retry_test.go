package refonte

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestRetryTransientThenSuccess(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	rec, c := newRecorder(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n <= 2 {
			apiError(w, 503, "queueing timeout")
			return
		}
		writeJSON(w, 200, taskJSON)
	}, WithLogger(zap.New(core)))
	task, err := c.GetTask(t.Context(), "t-1")
	must(t, err)
	if task.ID != "t-1" || len(rec.requests()) != 3 {
		t.Errorf("task %q after %d requests, want t-1 after 3", task.ID, len(rec.requests()))
	}
	entries := logs.FilterMessage("retrying the request").All()
	if len(entries) != 2 {
		t.Fatalf("%d retry log entries, want 2", len(entries))
	}
	for i, e := range entries {
		f := e.ContextMap()
		if e.Level != zapcore.DebugLevel || f["method"] != "GET" || f["path"] != "/task/t-1" ||
			f["status"] != int64(503) || f["attempt"] != int64(i+1) || f["delay"] == nil {
			t.Errorf("entry %d: %v %v", i, e.Level, f)
		}
	}
}

func TestRetryHonoursRetryAfter(t *testing.T) {
	rec, c := newRecorder(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			apiError(w, 429, "too many requests")
			return
		}
		writeJSON(w, 200, taskJSON)
	})
	_, err := c.CreateTask(t.Context(), TypeImageAnnotation, TaskParams{"unique_id": "u-1"})
	must(t, err)
	reqs := rec.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	// The policy's own delay is ~1ms: the gap is the server's Retry-After.
	if gap := reqs[1].At.Sub(reqs[0].At); gap < 900*time.Millisecond {
		t.Errorf("retried after %v, want about 1s (Retry-After)", gap)
	}
}

func TestRetryAfterBeyondMaxElapsedStops(t *testing.T) {
	rec, c := newRecorder(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.Header().Set("Retry-After", "60")
		apiError(w, 429, "too many requests")
	}, WithRetry(RetryPolicy{MaxElapsed: time.Second, InitialInterval: time.Millisecond}))
	start := time.Now()
	_, err := c.GetTask(t.Context(), "t")
	if !errors.Is(err, ErrRateLimited) || len(rec.requests()) != 1 || time.Since(start) > 5*time.Second {
		t.Errorf("error %v after %d requests in %v, want ErrRateLimited at once", err, len(rec.requests()), time.Since(start))
	}
	if ra, ok := RetryAfter(err); !ok || ra != time.Minute {
		t.Errorf("RetryAfter %v %v, want 1m", ra, ok)
	}
}

func TestCreateRetries(t *testing.T) {
	tests := []struct {
		name       string
		params     TaskParams
		statuses   []int // answers of the create attempts; 200 answers taskJSON
		wantCalls  int
		wantErr    error
		wantLookup bool
	}{
		{name: "no unique_id: not retried", params: TaskParams{"project": "demo"}, statuses: []int{503, 200},
			wantCalls: 1, wantErr: ErrServer},
		{name: "empty unique_id: not retried", params: TaskParams{"unique_id": ""}, statuses: []int{500, 200},
			wantCalls: 1, wantErr: ErrServer},
		{name: "no unique_id: 429 not retried", params: TaskParams{}, statuses: []int{429, 200},
			wantCalls: 1, wantErr: ErrRateLimited},
		{name: "unique_id: retried", params: TaskParams{"unique_id": "u-1"}, statuses: []int{503, 502, 200}, wantCalls: 3},
		{name: "409 on first attempt is a conflict", params: TaskParams{"unique_id": "u-1"}, statuses: []int{409},
			wantCalls: 1, wantErr: ErrConflict},
		{name: "500 then 409 resolves", params: TaskParams{"unique_id": "u-1"}, statuses: []int{500, 409},
			wantCalls: 2, wantLookup: true},
		{name: "400 not retried", params: TaskParams{"unique_id": "u-1"}, statuses: []int{400, 200},
			wantCalls: 1, wantErr: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, c := newRecorder(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if r.Method == http.MethodGet {
					if r.URL.Path != "/v1/tasks" || r.URL.Query().Get("unique_id") != "u-1" {
						apiError(w, 400, "unexpected lookup "+r.URL.String())
						return
					}
					writeJSON(w, 200, `{"docs":[`+taskJSON+`],"total":1,"limit":100,"offset":0,"has_more":false,"next_token":null}`)
					return
				}
				switch s := tt.statuses[min(n, len(tt.statuses))-1]; s {
				case 200:
					writeJSON(w, 200, taskJSON)
				default:
					apiError(w, s, "status "+http.StatusText(s))
				}
			})
			task, err := c.CreateTask(t.Context(), TypeImageAnnotation, tt.params)
			var creates, lookups int
			for _, r := range rec.requests() {
				if r.Method == http.MethodPost {
					creates++
					assertJSONEqual(t, r.Body, mustJSON(t, tt.params))
				} else {
					lookups++
				}
			}
			if creates != tt.wantCalls || (lookups == 1) != tt.wantLookup || lookups > 1 {
				t.Errorf("%d creates and %d lookups, want %d and lookup %v", creates, lookups, tt.wantCalls, tt.wantLookup)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("error %v, want %v", err, tt.wantErr)
				}
				return
			}
			must(t, err)
			if task.ID != "t-1" {
				t.Errorf("task %+v", task)
			}
		})
	}
}

// TestCreate500Then409LookupFails reports both errors when the 409 cannot
// be resolved.
func TestCreate500Then409LookupFails(t *testing.T) {
	_, c := newRecorder(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch {
		case r.Method == http.MethodGet:
			writeJSON(w, 200, `{"docs":[],"total":0,"limit":100,"offset":0,"has_more":false,"next_token":null}`)
		case n == 1:
			apiError(w, 500, "oops")
		default:
			apiError(w, 409, "unique_id already used")
		}
	})
	_, err := c.CreateTask(t.Context(), TypeImageAnnotation, TaskParams{"unique_id": "u-1"})
	if !errors.Is(err, ErrConflict) || !errors.Is(err, ErrNotFound) {
		t.Errorf("error %v, want ErrConflict and ErrNotFound", err)
	}
}

func TestRetryStopsOnContextCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rec, c := newRecorder(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n == 2 {
			cancel()
		}
		apiError(w, 503, "queueing timeout")
	}, WithRetry(RetryPolicy{MaxElapsed: time.Minute, InitialInterval: 50 * time.Millisecond, MaxInterval: 50 * time.Millisecond}))
	start := time.Now()
	_, err := c.GetTask(ctx, "t")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	if Retryable(err) {
		t.Error("an error of the caller's canceled context must not be retryable")
	}
	if n := len(rec.requests()); n != 2 {
		t.Errorf("%d requests, want 2 (no retry after the cancel)", n)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

// roundTripFunc is an http.RoundTripper made of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestRetryStopsWhenCanceledDuringAttempt: the caller's context is
// canceled while an attempt runs and the attempt still brings back a
// retryable answer (deterministically here: the transport cancels, then
// answers 503). The retries stop with the caller's cause in the error,
// which is then not retryable.
func TestRetryStopsWhenCanceledDuringAttempt(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cause error
	}{
		{"plain cancel", nil},
		{"cancel with a cause", errors.New("shutting down")},
	} {
		t.Run(tc.name, func(t *testing.T) { retryStopsWhenCanceledDuringAttempt(t, tc.cause) })
	}
}

// retryStopsWhenCanceledDuringAttempt cancels the context with cause
// (nil: a plain cancel) while the first attempt runs.
func retryStopsWhenCanceledDuringAttempt(t *testing.T, cause error) {
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	calls := 0
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls++
		cancel(cause)
		return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable",
			Header: http.Header{"Content-Type": {"application/json"}}, Request: r,
			Body: io.NopCloser(strings.NewReader(`{"status_code":503,"message":"queueing timeout"}`))}, nil
	})}
	c, err := NewClient("test_key", WithBaseURL("http://api.invalid/v1"), WithHTTPClient(hc),
		WithRetry(RetryPolicy{MaxElapsed: time.Minute, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetTask(ctx, "t")
	if !errors.Is(err, context.Canceled) || Retryable(err) {
		t.Fatalf("error %v (retryable %v), want one matching context.Canceled, not retryable", err, Retryable(err))
	}
	if cause != nil && !errors.Is(err, cause) {
		t.Errorf("error %v does not carry the cancel's cause %v", err, cause)
	}
	var ae *Error
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("error %v lost the API's answer", err)
	}
	if calls != 1 {
		t.Errorf("%d attempts, want 1 (no retry after the cancel)", calls)
	}
}

func TestRetryLimits(t *testing.T) {
	tests := []struct {
		name   string
		policy RetryPolicy
		want   int
	}{
		{"disabled", RetryPolicy{Disabled: true}, 1},
		{"max attempts", RetryPolicy{MaxAttempts: 4, InitialInterval: time.Millisecond, MaxInterval: time.Millisecond}, 4},
		{"max elapsed", RetryPolicy{MaxElapsed: 150 * time.Millisecond, InitialInterval: 20 * time.Millisecond, MaxInterval: 20 * time.Millisecond}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, c := newRecorder(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
				apiError(w, 502, "bad gateway")
			}, WithRetry(tt.policy))
			start := time.Now()
			_, err := c.FinalizeBatch(t.Context(), "b")
			if !errors.Is(err, ErrServer) {
				t.Errorf("error %v", err)
			}
			n := len(rec.requests())
			if tt.want > 0 && n != tt.want {
				t.Errorf("%d requests, want %d", n, tt.want)
			}
			if tt.want == 0 && (n < 2 || time.Since(start) > 2*time.Second) {
				t.Errorf("%d requests in %v, want several within about 150ms", n, time.Since(start))
			}
		})
	}
}

// TestRetryNetworkError retries a GET whose connection was closed without
// an answer.
func TestRetryNetworkError(t *testing.T) {
	rec, c := newRecorder(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		if n == 1 {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			_ = conn.Close()
			return
		}
		writeJSON(w, 200, taskJSON)
	})
	_, err := c.GetTask(t.Context(), "t-1")
	must(t, err)
	if n := len(rec.requests()); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

// mustJSON encodes v.
func mustJSON(t *testing.T, v any) string {
	t.Helper()
	var b strings.Builder
	if err := jsonEncode(&b, v); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestRetryBeforeRetryGatesEveryRetry(t *testing.T) {
	stop := errors.New("gate closed")
	tests := []struct {
		name      string
		gate      func(calls int) error // the gate's answer on its n-th call
		wantReqs  int
		wantCalls int
		wantErr   error
	}{
		{"gate passes: every retry goes through it", func(int) error { return nil }, 3, 2, nil},
		{"gate stops the second retry", func(n int) error {
			if n == 2 {
				return stop
			}
			return nil
		}, 2, 2, stop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls int
			var seen []error
			rec, c := newRecorder(t, func(w http.ResponseWriter, _ *http.Request, n int) {
				if n <= 2 {
					apiError(w, 503, "queueing timeout")
					return
				}
				writeJSON(w, 200, taskJSON)
			}, WithRetry(RetryPolicy{InitialInterval: time.Millisecond, BeforeRetry: func(_ context.Context, last error) error {
				calls++
				seen = append(seen, last)
				return tt.gate(calls)
			}}))
			_, err := c.GetTask(t.Context(), "t-1")
			if got := len(rec.requests()); got != tt.wantReqs || calls != tt.wantCalls {
				t.Fatalf("%d requests and %d gate calls, want %d and %d", got, calls, tt.wantReqs, tt.wantCalls)
			}
			for _, e := range seen {
				if !errors.Is(e, ErrServer) {
					t.Errorf("gate saw %v, want the 503", e)
				}
			}
			if tt.wantErr == nil && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != nil && (!errors.Is(err, tt.wantErr) || !errors.Is(err, ErrServer)) {
				t.Fatalf("err = %v, want it to wrap both %v and the 503", err, tt.wantErr)
			}
		})
	}
}
