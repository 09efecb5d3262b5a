package datasrc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/refonte-ai/refonte-batch/internal/redact"
)

// Error is a remote dataset that could not be opened. Its message names the
// redacted URL only: credentials a library quoted in the cause are
// scrubbed too.
type Error struct {
	// URL is the redacted URL.
	URL string
	// Op is what failed ("open").
	Op  string
	Err error

	raw string
}

// Error says what failed on which URL, and why.
func (e *Error) Error() string {
	return fmt.Sprintf("%s %s: %s", e.Op, e.URL, redact.Scrub(e.Err.Error(), e.raw))
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ReadError is a remote stream that broke after it was opened (a connection
// cut, a stall): Offset bytes of the dataset's stored form were read.
type ReadError struct {
	// URL is the redacted URL.
	URL    string
	Offset int64
	Err    error

	raw string
}

// Error names the URL and how far the stream got.
func (e *ReadError) Error() string {
	return fmt.Sprintf("reading %s broke after %d bytes: %s", e.URL, e.Offset, redact.Scrub(e.Err.Error(), e.raw))
}

// Unwrap returns the cause.
func (e *ReadError) Unwrap() error { return e.Err }

// StatusError is an http(s) dataset whose server answered with a status
// other than 2xx. A 404 or 410 also matches ErrNotFound.
type StatusError struct {
	StatusCode int
	// Status is the status line's text ("404 Not Found").
	Status string
}

// Error gives the status and what to check.
func (e *StatusError) Error() string {
	hint := ""
	switch {
	case e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden:
		hint = " (check the URL's credentials: a presigned URL may have expired)"
	case e.StatusCode == http.StatusNotFound || e.StatusCode == http.StatusGone:
		hint = " (check the URL)"
	}
	return fmt.Sprintf("the server answered %s%s", e.Status, hint)
}

// Is makes a 404 or 410 match ErrNotFound.
func (e *StatusError) Is(target error) bool {
	return target == ErrNotFound && (e.StatusCode == http.StatusNotFound || e.StatusCode == http.StatusGone)
}

// ErrTransient marks a failure that may pass if the same command runs again
// (an object store's 5xx or throttling); see Transient.
var ErrTransient = errors.New("transient failure")

// Transient reports whether a failure to open or read a remote dataset may
// pass on its own: a network error (connection refused or reset, a
// timeout, a cut stream, a stall), an HTTP 408, 429 or 5xx, or an error an
// ObjectOpener marked with ErrTransient. Not found, refused credentials and
// unsupported URLs are not: running again changes nothing.
func Transient(err error) bool {
	var se *StatusError
	var ne net.Error
	var oe *net.OpError
	switch {
	case err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnsupported):
		return false
	case errors.As(err, &se):
		return se.StatusCode == http.StatusRequestTimeout || se.StatusCode == http.StatusTooManyRequests || se.StatusCode >= 500
	case errors.Is(err, ErrTransient), errors.Is(err, ErrStalled), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return true
	case errors.As(err, &oe), errors.As(err, &ne) && ne.Timeout():
		return true
	}
	return false
}
