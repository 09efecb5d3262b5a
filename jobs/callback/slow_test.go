package callback_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/refonte-ai/refonte-batch/jobs/callback"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// rawRequest opens a connection to srvURL and sends a POST /callback head
// with the given Content-Length and extra header lines, then the first
// bytes of a body; it returns the connection (closed in t.Cleanup).
func rawRequest(t *testing.T, srvURL string, contentLength int, headers []string, body string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(srvURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	head := "POST /callback HTTP/1.1\r\nHost: callback.test\r\nContent-Type: application/json\r\n" +
		fmt.Sprintf("Content-Length: %d\r\n", contentLength)
	for _, h := range headers {
		head += h + "\r\n"
	}
	if _, err := io.WriteString(conn, head+"\r\n"+body); err != nil {
		t.Fatal(err)
	}
	return conn
}

// answer reads the response on conn within d; then it reports whether the
// server closed the connection after it (EOF or a reset within d).
func answer(t *testing.T, conn net.Conn, d time.Duration) (code int, closed bool) {
	t.Helper()
	br := bufio.NewReader(conn)
	code = status(t, conn, br, d)
	_, err := br.ReadByte()
	return code, err != nil && !isTimeout(err)
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// status reads the response on conn (through br) within d and returns its status code.
func status(t *testing.T, conn net.Conn, br *bufio.Reader, d time.Duration) int {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer within %s: %v", d, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestRefusedBodyNeverRead: a request the handler refuses before its body
// (no or a wrong key, too many callbacks at once) is answered at once, the
// body it announced unread and never waited for, and its connection is
// closed, so a slow sender holds nothing.
func TestRefusedBodyNeverRead(t *testing.T) {
	e := newEnv(t)
	wrong := refonte.CallbackAuthHeader + ": " + strings.Repeat("x", len(authKey.Reveal()))
	for _, tc := range []struct {
		name    string
		headers []string
		want    int
		outcome string
	}{
		{"no key", nil, http.StatusUnauthorized, callback.OutcomeUnauthorized},
		{"wrong key", []string{wrong}, http.StatusUnauthorized, callback.OutcomeUnauthorized},
		{"wrong key, expects 100-continue", []string{wrong, "Expect: 100-continue"}, http.StatusUnauthorized, callback.OutcomeUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := count(t, e.reg, tc.outcome)
			// 100,000 bytes announced, 10 sent: the rest never comes.
			conn := rawRequest(t, e.srv.URL, 100000, tc.headers, `{"task_id"`)
			code, closed := answer(t, conn, 3*time.Second)
			if code != tc.want || !closed {
				t.Errorf("answer %d, connection closed %v; want %d and closed", code, closed, tc.want)
			}
			if got := count(t, e.reg, tc.outcome); got != before+1 {
				t.Errorf("callbacks_total{outcome=%q} = %v, want %v", tc.outcome, got, before+1)
			}
		})
	}
}

// TestSlowBodyTimesOut: an authenticated body that does not arrive within
// BodyTimeout is answered 408 and its connection closed.
func TestSlowBodyTimesOut(t *testing.T) {
	e := newEnv(t, func(c *callback.Config) { c.BodyTimeout = 300 * time.Millisecond })
	conn := rawRequest(t, e.srv.URL, 100000, []string{refonte.CallbackAuthHeader + ": " + authKey.Reveal()}, `{"task_id"`)
	// Without the body deadline no answer ever comes (the body never does).
	code, closed := answer(t, conn, 10*time.Second)
	if code != http.StatusRequestTimeout || !closed {
		t.Errorf("answer %d, connection closed %v; want 408 and closed", code, closed)
	}
	if got := count(t, e.reg, callback.OutcomeTimeout); got != 1 {
		t.Errorf("callbacks_total{outcome=timeout} = %v, want 1", got)
	}
	if n := unknown(t, e.st); n != 0 {
		t.Errorf("%d unknown callbacks kept, want 0", n)
	}
}

// TestConcurrentCallbackCap: beyond MaxConcurrent authenticated callbacks
// in progress, one more is answered 503 with Retry-After at once (its body
// unread, its connection closed); once they finish, callbacks are taken
// again.
func TestConcurrentCallbackCap(t *testing.T) {
	e := newEnv(t, func(c *callback.Config) { c.MaxConcurrent = 2; c.BodyTimeout = time.Minute }) // the held bodies outlast any wait below
	auth := refonte.CallbackAuthHeader + ": " + authKey.Reveal()
	body := `{"task_id":"t-capped","status":"completed","response":{}}`
	var held []net.Conn
	for range 2 {
		// The whole head and half the body: the handler waits for the rest.
		held = append(held, rawRequest(t, e.srv.URL, len(body), []string{auth}, body[:len(body)/2]))
	}
	waitGauge(t, e.reg, "refonte_callbacks_in_flight", 2)
	// Waits, not speed requirements: generous for a loaded CI machine.
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn := rawRequest(t, e.srv.URL, len(body), []string{auth}, body)
		br := bufio.NewReader(conn)
		code := status(t, conn, br, 10*time.Second)
		if code == http.StatusServiceUnavailable {
			if _, err := br.ReadByte(); err == nil || isTimeout(err) {
				t.Errorf("the 503 left the connection open (%v)", err)
			}
			break
		}
		_ = conn.Close()
		if time.Now().After(deadline) {
			t.Fatalf("a third callback with 2 in progress and MaxConcurrent 2: %d, want 503", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := count(t, e.reg, callback.OutcomeOverloaded); got < 1 {
		t.Errorf("callbacks_total{outcome=overloaded} = %v, want ≥ 1", got)
	}
	for _, conn := range held {
		if _, err := io.WriteString(conn, body[len(body)/2:]); err != nil {
			t.Fatal(err)
		}
		if code := status(t, conn, bufio.NewReader(conn), 15*time.Second); code != http.StatusOK {
			t.Errorf("held callback answered %d once complete, want 200", code)
		}
	}
	if code := e.post(t, []byte(body), nil); code != http.StatusOK {
		t.Errorf("a callback after the held ones finished: %d, want 200", code)
	}
}

// waitGauge waits up to 30 s (a loaded machine) for the gauge name of reg to read want.
func waitGauge(t *testing.T, reg *prometheus.Registry, name string, want float64) {
	t.Helper()
	var got float64
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				got = mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		if got == want {
			return
		}
	}
	t.Fatalf("%s = %v after 5s, want %v", name, got, want)
}
