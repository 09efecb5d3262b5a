package worker

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/refonte-ai/refonte-batch/internal/testkit"
	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

// TestRevokedKeyPausesTheModeOnEveryWorker: the test key is revoked at the
// API (401 on every call) under a 100-row run on two workers sharing a real
// redis-server. No row fails: the mode is paused on both workers (their
// /readyz says why, refonte_api_key_rejected is 1, one log line for the
// fleet). When the secret file is rotated to the key the API now takes,
// the probe resumes the mode and every row completes, each task created
// once. (Before, every row failed within seconds with the 401.)
func TestRevokedKeyPausesTheModeOnEveryWorker(t *testing.T) {
	redisURL := testredis.Fresh(t)
	sb, api := startSandbox(t, sandbox.Config{CompleteAfter: 20 * time.Millisecond})
	st, _ := testkit.StoreOn(t, redisURL, store.Options{})
	keyFile := filepath.Join(t.TempDir(), "refonte-test-api-key")
	if err := os.WriteFile(keyFile, []byte(testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	var cfgs []Config
	var ws []*running
	for range 2 {
		cfg := testConfig(t, redisURL, api)
		cfg.LiveKey = "" // a test-mode worker: nothing to submit while the key is refused
		cfg.TestKeyFile = keyFile
		cfg.KeyProbeInterval = 300 * time.Millisecond
		cfg.Concurrency = 5
		cfgs = append(cfgs, cfg)
		ws = append(ws, startWorker(t, cfg, zap.New(core)))
	}
	get := func(w *running, path string) (int, string) {
		resp, err := http.Get("http://" + w.w.Addr().String() + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	const rotated = "test_rotated_worker_key"
	if err := sb.SetKey(refonte.ModeTest, rotated); err != nil { // the old key is revoked
		t.Fatal(err)
	}
	run := addRun(t, st, refonte.ModeTest, 100, cfgs[0].CallbackURL)
	waitFor(t, 20*time.Second, "both workers paused and not ready", func() (bool, string) {
		for _, w := range ws {
			code, body := get(w, "/readyz")
			if code != http.StatusServiceUnavailable || !strings.Contains(body, "the API rejects the test key") {
				return false, body
			}
			if _, m := get(w, "/metrics"); !strings.Contains(m, `refonte_api_key_rejected{mode="test"} 1`) {
				return false, "metric not 1"
			}
		}
		return true, ""
	})
	time.Sleep(time.Second) // probes with the revoked key keep the pause
	r := runState(t, st, run.ID)
	if r.Failed != 0 || r.Submitted != 0 || r.State != "running" {
		t.Fatalf("run while the key is refused: %s %+v; want running, nothing failed", r.State, r.Counters)
	}
	if p, ok, err := st.ModePause(context.Background(), refonte.ModeTest); err != nil || !ok || strings.Contains(p.Reason, testKey) {
		t.Fatalf("mode pause = %+v, %v, %v; want one, without the key", p, ok, err)
	}
	if n := logs.FilterMessageSnippet("API key rejected").Len(); n != 1 {
		t.Errorf("%d log lines about the rejected key, want 1 for the fleet", n)
	}

	if err := os.WriteFile(keyFile, []byte(rotated+"\n"), 0o600); err != nil { // the secret is rotated
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the run done after the rotation", func() (bool, string) {
		r := runState(t, st, run.ID)
		return r.State == "done", string(r.State)
	})
	r = runState(t, st, run.ID)
	if r.Completed != 100 || r.Failed != 0 {
		t.Errorf("run after the rotation: %+v; want 100 completed", r.Counters)
	}
	if s := sb.Stats(); s.TasksCreated != 100 || s.UniqueIDsCreatedTwice != 0 {
		t.Errorf("sandbox created %d tasks (%d twice), want 100", s.TasksCreated, s.UniqueIDsCreatedTwice)
	}
	for i, w := range ws {
		if code, body := get(w, "/readyz"); code != http.StatusOK {
			t.Errorf("worker %d /readyz after the rotation = %d %s", i, code, body)
		}
		if _, m := get(w, "/metrics"); !strings.Contains(m, `refonte_api_key_rejected{mode="test"} 0`) {
			t.Errorf("worker %d: refonte_api_key_rejected not back to 0", i)
		}
	}
	if n := logs.FilterMessageSnippet("API key works again").Len(); n != 1 {
		t.Errorf("%d log lines about the resumed key, want 1", n)
	}
	for _, e := range logs.All() {
		for _, k := range []string{testKey, rotated} {
			if strings.Contains(e.Message, k) || strings.Contains(fmt.Sprint(e.ContextMap()), k) {
				t.Errorf("a log line shows a key: %s", e.Message)
			}
		}
	}
}
