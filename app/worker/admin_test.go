package worker

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/internal/testkit"
	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

// TestConsoleOnItsOwnListener: the runs console answers on -admin-listen
// with the token, 401 without it, and never on the callback listener; the
// worker samples the runs' timelines.
func TestConsoleOnItsOwnListener(t *testing.T) {
	redisURL := testredis.Fresh(t)
	_, apiURL := startSandbox(t, sandbox.Config{})
	cfg := testConfig(t, redisURL, apiURL)
	cfg.AdminListen = fmt.Sprintf("127.0.0.1:%d", testredis.FreePort(t))
	cfg.AdminToken = "console-token"
	// The run exists before the worker starts: its sampler writes a point
	// at start and then once a minute, longer than this test waits.
	st, _ := testkit.StoreOn(t, redisURL, store.Options{})
	run := addRun(t, st, refonte.ModeTest, 3, cfg.CallbackURL)
	r := startWorker(t, cfg, nil)

	get := func(base, path, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	admin := r.w.AdminAddr().String()
	if code, _ := get(admin, "/runs", ""); code != http.StatusUnauthorized {
		t.Errorf("console without the token: %d, want 401", code)
	}
	if code, body := get(admin, "/runs/"+run.ID, "console-token"); code != http.StatusOK || !strings.Contains(body, run.ID) {
		t.Errorf("console run page: %d", code)
	}
	if code, _ := get(r.w.Addr().String(), "/runs", "console-token"); code != http.StatusNotFound {
		t.Errorf("callback listener answers /runs with %d, want 404", code)
	}
	waitFor(t, 30*time.Second, "a timeline point of the run", func() (bool, string) {
		pts, err := r.w.store.Timeline(context.Background(), run.ID)
		return err == nil && len(pts) > 0, fmt.Sprintf("%d points, %v", len(pts), err)
	})
}

// TestConsoleAddressTaken: a second worker on the same host whose console
// address is taken runs without a console.
func TestConsoleAddressTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	redisURL := testredis.Fresh(t)
	_, apiURL := startSandbox(t, sandbox.Config{})
	cfg := testConfig(t, redisURL, apiURL)
	cfg.AdminListen = ln.Addr().String()
	r := startWorker(t, cfg, nil)
	if a := r.w.AdminAddr(); a != nil {
		t.Errorf("AdminAddr = %v, want none", a)
	}
}
