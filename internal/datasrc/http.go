package datasrc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// HTTPDoer sends an HTTP request (an *http.Client).
type HTTPDoer interface {
	Do(*http.Request) (*http.Response, error)
}

// HTTP timeouts of NewHTTPClient. There is no timeout on the whole
// response: a big dataset streams for as long as it takes, and a stream
// that stops sending is ended by Opener.IdleTimeout.
const (
	DialTimeout           = 30 * time.Second
	TLSHandshakeTimeout   = 15 * time.Second
	ResponseHeaderTimeout = 60 * time.Second
)

// NewHTTPClient returns the client of http(s) datasets: the default
// transport (proxies from the environment) with connect, TLS handshake
// and response header timeouts, following up to 10 redirects.
func NewHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = TLSHandshakeTimeout
	t.ResponseHeaderTimeout = ResponseHeaderTimeout
	return &http.Client{Transport: t}
}

// openHTTP sends GET and returns the body of a 2xx answer.
func (o *Opener) openHTTP(ctx context.Context, d *Dataset) (io.ReadCloser, int64, error) {
	client := o.HTTP
	if client == nil {
		client = NewHTTPClient()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.raw, nil)
	if err != nil {
		return nil, -1, err
	}
	// The body is decompressed by name (.gz), never by the transport: ask
	// for the stored bytes.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := client.Do(req)
	if err != nil {
		// *url.Error quotes the URL (a redirect's too) with its query:
		// keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			err = cause
		}
		return nil, -1, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return nil, -1, &StatusError{StatusCode: resp.StatusCode, Status: resp.Status}
	}
	return resp.Body, resp.ContentLength, nil
}

// stream is an opened remote dataset: it counts the bytes read, turns read
// errors into *ReadError, and ends the request when no byte arrived for
// the idle timeout.
type stream struct {
	ctx    context.Context
	rc     io.ReadCloser
	d      *Dataset
	n      int64
	idle   time.Duration
	timer  *time.Timer
	cancel context.CancelCauseFunc
}

func newStream(ctx context.Context, rc io.ReadCloser, d *Dataset, idle time.Duration, cancel context.CancelCauseFunc) *stream {
	s := &stream{ctx: ctx, rc: rc, d: d, idle: idle, cancel: cancel}
	s.timer = time.AfterFunc(idle, func() { cancel(fmt.Errorf("%w for %v", ErrStalled, idle)) })
	return s
}

// Read reads from the stream, restarting the idle timer.
func (s *stream) Read(p []byte) (int, error) {
	n, err := s.rc.Read(p)
	s.n += int64(n)
	if n > 0 {
		s.timer.Reset(s.idle)
	}
	if err != nil && err != io.EOF {
		if cause := context.Cause(s.ctx); errors.Is(cause, ErrStalled) {
			err = cause
		}
		return n, &ReadError{URL: s.d.Name, Offset: s.n, Err: err, raw: s.d.raw}
	}
	return n, err
}

// Close ends the request.
func (s *stream) Close() error {
	s.timer.Stop()
	err := s.rc.Close()
	s.cancel(nil)
	return err
}
