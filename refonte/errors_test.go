package refonte

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestErrorMapping maps every status of the reference to its sentinel,
// retryability and Retry-After.
func TestErrorMapping(t *testing.T) {
	httpDate := func() string { return time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat) }
	tests := []struct {
		status     int
		body       string // "" for the reference's JSON error
		retryAfter func() string
		sentinel   error
		retryable  bool
		wantRA     [2]time.Duration // inclusive bounds; zero for none
		wantMsg    string
	}{
		{status: 400, sentinel: ErrInvalid, wantMsg: "geometries: required"},
		{status: 401, sentinel: ErrUnauthorized, wantMsg: "no valid API key"},
		{status: 402, sentinel: ErrNotEnabled, wantMsg: "not enabled"},
		{status: 404, sentinel: ErrNotFound, wantMsg: "task not found"},
		{status: 408, sentinel: ErrTimeout, retryable: true, wantMsg: "request timeout"},
		{status: 409, sentinel: ErrConflict, wantMsg: "unique_id already used"},
		{status: 429, sentinel: ErrRateLimited, retryable: true, wantMsg: "too many requests"},
		{status: 429, sentinel: ErrRateLimited, retryable: true, retryAfter: func() string { return "2" },
			wantRA: [2]time.Duration{2 * time.Second, 2 * time.Second}, wantMsg: "too many requests"},
		{status: 429, sentinel: ErrRateLimited, retryable: true, retryAfter: httpDate,
			wantRA: [2]time.Duration{time.Second, 3 * time.Second}, wantMsg: "too many requests"},
		{status: 429, sentinel: ErrRateLimited, retryable: true, retryAfter: func() string { return "soon" }, wantMsg: "too many requests"},
		{status: 500, sentinel: ErrServer, retryable: true, wantMsg: "internal error"},
		{status: 502, sentinel: ErrServer, retryable: true, body: "<html>Bad Gateway</html>", wantMsg: "<html>Bad Gateway</html>"},
		{status: 503, sentinel: ErrServer, retryable: true, retryAfter: func() string { return "1" },
			wantRA: [2]time.Duration{time.Second, time.Second}, wantMsg: "queueing timeout"},
		{status: 504, sentinel: ErrServer, retryable: true, body: "", wantMsg: "gateway timeout"},
		{status: 530, sentinel: ErrServer, retryable: true, wantMsg: "origin error"},
	}
	sentinels := []error{ErrInvalid, ErrUnauthorized, ErrNotEnabled, ErrNotFound, ErrTimeout, ErrConflict, ErrRateLimited, ErrServer}
	for _, tt := range tests {
		name := fmt.Sprintf("%d %s", tt.status, tt.wantMsg)
		if tt.retryAfter != nil {
			name += " retry-after"
		}
		t.Run(name, func(t *testing.T) {
			_, c := newRecorder(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
				if tt.retryAfter != nil {
					w.Header().Set("Retry-After", tt.retryAfter())
				}
				if tt.body != "" {
					w.Header().Set("Content-Type", "text/html")
					w.WriteHeader(tt.status)
					_, _ = io.WriteString(w, tt.body)
					return
				}
				apiError(w, tt.status, tt.wantMsg)
			}, WithRetry(RetryPolicy{Disabled: true}))
			_, err := c.GetTask(t.Context(), "t 1")
			var ae *Error
			if !errors.As(err, &ae) {
				t.Fatalf("error %T %v, want *Error", err, err)
			}
			if ae.StatusCode != tt.status || ae.Message != tt.wantMsg || ae.Method != "GET" || ae.Path != "/task/t%201" {
				t.Errorf("got %+v", ae)
			}
			for _, s := range sentinels {
				if got := errors.Is(err, s); got != (s == tt.sentinel) {
					t.Errorf("errors.Is(err, %v) = %v", s, got)
				}
			}
			if got := Retryable(err); got != tt.retryable {
				t.Errorf("Retryable = %v, want %v", got, tt.retryable)
			}
			ra, ok := RetryAfter(err)
			if ok != (tt.wantRA[1] > 0) || ra < tt.wantRA[0] || ra > tt.wantRA[1] {
				t.Errorf("RetryAfter = %v %v, want within %v", ra, ok, tt.wantRA)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("GET /task/t%%201: %d", tt.status)) {
				t.Errorf("message %q lacks method, path and status", err)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	e := &Error{StatusCode: 429, Message: "slow down", Method: "POST", Path: "/task/imageannotation", RetryAfter: 2 * time.Second}
	want := "refonte: POST /task/imageannotation: 429 Too Many Requests: slow down (retry after 2s)"
	if e.Error() != want {
		t.Errorf("got %q, want %q", e.Error(), want)
	}
	if got := (&Error{StatusCode: 404}).Error(); got != "refonte: 404 Not Found" {
		t.Errorf("got %q", got)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"0", 0}, {"-3", 0}, {"5", 5 * time.Second}, {" 7 ", 7 * time.Second}, {"1.5", 1500 * time.Millisecond},
		{"abc", 0}, {"999999", 0},
		{now.Add(10 * time.Second).Format(http.TimeFormat), 10 * time.Second},
		{now.Add(-10 * time.Second).Format(http.TimeFormat), 0},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), 0},
		{"Fri, 31 Dec 9999 23:59:59 GMT", 0},
		{now.Add(90 * time.Second).Format(time.RFC850), 90 * time.Second},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// timeoutErr is a net.Error that timed out.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// TestRetryable checks the one classifier and Permanent, which follows it
// for API answers: an error is retryable, permanent, or neither (nil, a
// local failure, the caller's context).
func TestRetryable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	tests := []struct {
		name             string
		err              error
		retry, permanent bool
	}{
		{"nil", nil, false, false},
		{"plain", errors.New("x"), false, false},
		{"invalid params", fmt.Errorf("row: %w", ErrInvalidParams), false, true},
		{"unexpected EOF", fmt.Errorf("decode: %w", io.ErrUnexpectedEOF), true, false},
		{"connection reset", &url.Error{Op: "Post", URL: "u", Err: &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}}, true, false},
		{"connection refused", &url.Error{Op: "Get", URL: "u", Err: &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}, true, false},
		{"net timeout", &url.Error{Op: "Get", URL: "u", Err: timeoutErr{}}, true, false},
		{"caller canceled", &url.Error{Op: "Get", URL: "u", Err: context.Canceled}, false, false},
		{"caller deadline", &url.Error{Op: "Get", URL: "u", Err: ctx.Err()}, false, false},
		{"canceled while retrying a 503", fmt.Errorf("%w (retries stopped: %w)", &Error{StatusCode: 503}, context.Canceled), false, false},
		{"canceled while retrying a 403", fmt.Errorf("%w (retries stopped: %w)", &Error{StatusCode: 403}, context.Canceled), false, false},
		{"408", &Error{StatusCode: 408}, true, false},
		{"429", fmt.Errorf("wrapped: %w", &Error{StatusCode: 429}), true, false},
		{"599", &Error{StatusCode: 599}, true, false},
		{"400", &Error{StatusCode: 400}, false, true},
		{"409", &Error{StatusCode: 409}, false, true},
		{"403", &Error{StatusCode: 403}, false, true},
		{"413", fmt.Errorf("wrapped: %w", &Error{StatusCode: 413}), false, true},
		{"422", &Error{StatusCode: 422}, false, true},
	}
	for _, tt := range tests {
		if got := Retryable(tt.err); got != tt.retry {
			t.Errorf("%s: Retryable(%v) = %v, want %v", tt.name, tt.err, got, tt.retry)
		}
		if got := Permanent(tt.err); got != tt.permanent {
			t.Errorf("%s: Permanent(%v) = %v, want %v", tt.name, tt.err, got, tt.permanent)
		}
	}
}

// TestRetryableHTTPClientTimeout checks that the http.Client's own timeout
// (which matches context.DeadlineExceeded through errors.Is) is retryable.
func TestRetryableHTTPClientTimeout(t *testing.T) {
	block := make(chan struct{})
	rec, c := newRecorder(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}, WithHTTPClient(&http.Client{Timeout: 50 * time.Millisecond}), WithRetry(RetryPolicy{Disabled: true}))
	defer close(block)
	_, err := c.GetTask(t.Context(), "t1")
	if err == nil || !Retryable(err) {
		t.Fatalf("error %v: Retryable = false, want true", err)
	}
	if len(rec.requests()) != 1 {
		t.Errorf("%d requests", len(rec.requests()))
	}
}
