package worker

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

// TestConnectionCap holds -max-connections keep-alive connections open on
// a real worker: a health check still gets in on the reserve (answered,
// connection closed), a callback there is answered 503, and with the
// reserve full too a new connection is not served until one closes.
// Once the held connections close, callbacks are served again.
func TestConnectionCap(t *testing.T) {
	redisURL := testredis.Fresh(t)
	_, api := startSandbox(t, sandbox.Config{NoAutoComplete: true})
	cfg := testConfig(t, redisURL, api)
	cfg.MaxConnections = 4
	r := startWorker(t, cfg, nil)
	addr := r.w.Addr().String()

	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	// roundTrip sends one request on c and returns its status and whether
	// the server said it closes the connection.
	roundTrip := func(c net.Conn, method, path string) (int, bool, error) {
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		defer c.SetDeadline(time.Time{})
		req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(`{"task_id":"x"}`))
		if err := req.Write(c); err != nil {
			return 0, false, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), req)
		if err != nil {
			return 0, false, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Close, nil
	}

	var held []net.Conn
	for i := range cfg.MaxConnections {
		c := dial()
		if code, _, err := roundTrip(c, http.MethodGet, "/healthz"); err != nil || code != http.StatusOK {
			t.Fatalf("regular connection %d: GET /healthz = %d, %v", i, code, err)
		}
		held = append(held, c) // an idle keep-alive connection, open for 60 s
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		code, closed, err := roundTrip(dial(), http.MethodGet, path)
		if err != nil || code != http.StatusOK || !closed {
			t.Errorf("GET %s at the cap: %d, closed %v, %v; want 200 on a reserve connection, closed after", path, code, closed, err)
		}
	}
	if code, closed, err := roundTrip(dial(), http.MethodPost, "/callback"); err != nil || code != http.StatusServiceUnavailable || !closed {
		t.Errorf("POST /callback at the cap: %d, closed %v, %v; want 503 and the connection closed", code, closed, err)
	}

	// Fill the reserve with connections that send nothing (each is closed
	// by the 5 s header timeout): the next client waits in the backlog.
	var spare []net.Conn
	for range HealthReserve {
		spare = append(spare, dial())
	}
	waiting := dial()
	if _, _, err := roundTrip(waiting, http.MethodGet, "/healthz"); err == nil {
		// roundTrip's 3 s deadline is within the 5 s the reserve is held.
		t.Errorf("a connection beyond -max-connections + %d was served; want it to wait", HealthReserve)
	}
	_ = waiting.Close()
	_ = spare[0].Close()
	if code, _, err := roundTrip(dial(), http.MethodGet, "/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("GET /healthz once a reserve connection closed: %d, %v", code, err)
	}

	for _, c := range append(held, spare...) {
		_ = c.Close()
	}
	waitFor(t, 10*time.Second, "callbacks served on a regular connection again", func() (bool, string) {
		// Without the key: 401 from the callback receiver, not the cap's 503.
		code, _, err := roundTrip(dial(), http.MethodPost, "/callback")
		return err == nil && code == http.StatusUnauthorized, fmt.Sprintf("%d %v", code, err)
	})
}

func TestAutoMaxConnections(t *testing.T) {
	n := AutoMaxConnections()
	if n < MaxConnectionsFloor || n > MaxConnectionsCeiling {
		t.Fatalf("AutoMaxConnections() = %d, want within [%d, %d]", n, MaxConnectionsFloor, MaxConnectionsCeiling)
	}
	if lim := fileLimit(); lim > 0 && uint64(n) > max(lim/2, MaxConnectionsFloor) {
		t.Errorf("AutoMaxConnections() = %d with a file limit of %d; want at most half of it", n, lim)
	}
}
