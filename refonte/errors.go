package refonte

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	json "github.com/goccy/go-json"
)

// Sentinel errors matched by *Error through errors.Is, one per class of
// API answer in the reference.
var (
	// ErrInvalid is a 400: a missing or invalid parameter.
	ErrInvalid = errors.New("refonte: invalid request")
	// ErrUnauthorized is a 401: no valid API key.
	ErrUnauthorized = errors.New("refonte: unauthorized")
	// ErrNotEnabled is a 402: the task type is not enabled or funds are insufficient.
	ErrNotEnabled = errors.New("refonte: not enabled")
	// ErrNotFound is a 404: the task, project or batch does not exist in this mode.
	ErrNotFound = errors.New("refonte: not found")
	// ErrTimeout is a 408: the API timed the request out.
	ErrTimeout = errors.New("refonte: request timeout")
	// ErrConflict is a 409: the unique_id is held by another task, or the
	// name already exists.
	ErrConflict = errors.New("refonte: conflict")
	// ErrRateLimited is a 429: the key sends too fast.
	ErrRateLimited = errors.New("refonte: rate limited")
	// ErrServer is any 5xx answer.
	ErrServer = errors.New("refonte: server error")
)

// ErrDuplicate is the same sentinel as ErrConflict, under the name used
// for a unique_id that is already taken.
var ErrDuplicate = ErrConflict

// Error is an error answer of the API: its HTTP status, the API's message,
// the request's method and path (relative to the base URL) and the
// Retry-After delay when the answer carried one. It matches the sentinels
// (ErrNotFound, ErrRateLimited, …) with errors.Is.
type Error struct {
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Message is the API's "error" field, or the body text when it was not JSON.
	Message string
	// Method and Path identify the request (Path is relative to the base URL).
	Method, Path string
	// RetryAfter is the delay the server asked for with Retry-After, in
	// seconds or as an HTTP date (0 when none, invalid, past, or over a day).
	RetryAfter time.Duration
}

// Error returns e.g. "refonte: POST /task/imageannotation: 429 Too Many
// Requests: slow down (retry after 2s)".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("refonte: ")
	if e.Method != "" || e.Path != "" {
		b.WriteString(e.Method)
		b.WriteString(" ")
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(strconv.Itoa(e.StatusCode))
	if t := http.StatusText(e.StatusCode); t != "" {
		b.WriteString(" ")
		b.WriteString(t)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Is reports whether target is the sentinel of e's status code.
func (e *Error) Is(target error) bool {
	s := sentinelOf(e.StatusCode)
	return s != nil && s == target
}

// sentinelOf returns the sentinel of an HTTP status, or nil.
func sentinelOf(code int) error {
	switch {
	case code == http.StatusBadRequest:
		return ErrInvalid
	case code == http.StatusUnauthorized:
		return ErrUnauthorized
	case code == http.StatusPaymentRequired:
		return ErrNotEnabled
	case code == http.StatusNotFound:
		return ErrNotFound
	case code == http.StatusRequestTimeout:
		return ErrTimeout
	case code == http.StatusConflict:
		return ErrConflict
	case code == http.StatusTooManyRequests:
		return ErrRateLimited
	case code >= 500 && code <= 599:
		return ErrServer
	}
	return nil
}

// Retryable reports whether err is transient, so that the same request may
// succeed later: network errors (connection refused or reset, unexpected
// EOF, timeouts of the HTTP client) and the API answers 408, 429 and
// 500–599. It is false for other API answers, for nil, and for the
// cancellation or deadline of the caller's context. The client's retries
// and refonte-batch's job handler both use it.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) || chainHas(err, context.DeadlineExceeded) {
		// The caller's context ended (http.Client timeouts are other values
		// that only match DeadlineExceeded through errors.Is).
		return false
	}
	var ae *Error
	if errors.As(err, &ae) {
		c := ae.StatusCode
		return c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || (c >= 500 && c <= 599)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	// Dial, read and write failures (DNS, refused, reset, closed by peer).
	var oe *net.OpError
	return errors.As(err, &oe)
}

// Permanent reports whether err is final, so that no retry of the same
// request can change it: an answer of the API that Retryable does not call
// transient (400, 401, 402, 403, 404, 409, 413, 422, …: every status
// outside 408, 429 and 5xx), or params refused before sending
// (ErrInvalidParams). It is false for nil, for transient errors, for the
// end of the caller's context (even when it ended a retry of an API
// answer) and for any other error. Retryable holds the rule; refonte-batch's
// job handler fails a row at once when Permanent is true.
func Permanent(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || chainHas(err, context.DeadlineExceeded) {
		return false
	}
	var ae *Error
	if errors.As(err, &ae) {
		return !Retryable(ae)
	}
	return errors.Is(err, ErrInvalidParams)
}

// chainHas reports whether target itself (by identity, not through Is
// methods) is in err's chain.
func chainHas(err, target error) bool {
	for err != nil {
		if err == target {
			return true
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if chainHas(e, target) {
					return true
				}
			}
			return false
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		default:
			return false
		}
	}
	return false
}

// RetryAfter returns the delay an API error asked for with Retry-After,
// and whether it had one.
func RetryAfter(err error) (time.Duration, bool) {
	var ae *Error
	if errors.As(err, &ae) && ae.RetryAfter > 0 {
		return ae.RetryAfter, true
	}
	return 0, false
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// errorFromResponse builds the *Error of a non-2xx answer. now is the
// reference time for an HTTP-date Retry-After.
func errorFromResponse(resp *http.Response, method, path string, now time.Time) *Error {
	e := &Error{StatusCode: resp.StatusCode, Method: method, Path: path,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now)}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var wire struct {
		StatusCode int             `json:"status_code"`
		Error      json.RawMessage `json:"error"`
		Message    string          `json:"message"`
	}
	if json.Unmarshal(body, &wire) == nil {
		var s string
		switch {
		case len(wire.Error) > 0 && json.Unmarshal(wire.Error, &s) == nil:
			e.Message = s
		case len(wire.Error) > 0 && string(wire.Error) != "null":
			e.Message = string(wire.Error)
		default:
			e.Message = wire.Message
		}
	} else {
		e.Message = strings.TrimSpace(string(body))
	}
	const maxMessage = 500
	if len(e.Message) > maxMessage {
		e.Message = e.Message[:maxMessage] + "…"
	}
	return e
}

// parseRetryAfter parses a Retry-After value in seconds or as an HTTP date;
// it returns 0 when absent, invalid or in the past.
// maxRetryAfter bounds a credible Retry-After: a longer one, in either form,
// is ignored (the caller's own backoff applies) rather than letting a bogus
// header pause every worker for years through the shared cooldown.
const maxRetryAfter = 24 * time.Hour

func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		if n <= 0 || n > maxRetryAfter.Seconds() {
			return 0
		}
		return time.Duration(n * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 && d <= maxRetryAfter {
			return d
		}
	}
	return 0
}
