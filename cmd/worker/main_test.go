package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

const (
	testKey = "test_cmd_worker_key"
	cbKey   = "cmd_worker_callback_auth"
)

// buildWorker compiles cmd/worker into a temp dir.
func buildWorker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "worker")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestProcessStartsAndStopsOnSIGTERM runs the real binary: /healthz
// answers, SIGTERM makes it exit 0, and no secret reaches its logs.
func TestProcessStartsAndStopsOnSIGTERM(t *testing.T) {
	bin := buildWorker(t)
	redisURL := testredis.Fresh(t)
	sb := sandbox.New(sandbox.Config{TestKey: testKey, CallbackAuthKey: cbKey, NoAutoComplete: true})
	ts := httptest.NewServer(sb)
	t.Cleanup(func() { ts.Close(); sb.Close() })
	addr := fmt.Sprintf("127.0.0.1:%d", testredis.FreePort(t))
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "-listen", addr, "-concurrency", "4", "-shutdown-timeout", "5s")
	cmd.Env = append(os.Environ(), "REDIS_URL="+redisURL, "REFONTE_API_URL="+ts.URL+"/v1",
		"REFONTE_TEST_API_KEY_FILE="+keyFile, "REFONTE_CALLBACK_AUTH_KEY="+cbKey)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	})

	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz never answered 200: %v\nlogs:\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("worker exited with %v after SIGTERM, want 0\nlogs:\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("worker still running 20s after SIGTERM\nlogs:\n%s", logs.String())
	}
	for _, secret := range []string{testKey, cbKey} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("a secret appears in the logs")
		}
	}
	if !strings.Contains(logs.String(), "worker stopped") {
		t.Errorf("logs lack the shutdown line:\n%s", logs.String())
	}
}

// TestRunRefusesBadConfig checks the exit code 2 refusals in-process.
func TestRunRefusesBadConfig(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"no key", map[string]string{"REFONTE_CALLBACK_AUTH_KEY": "x"}, nil, 2, "no API key"},
		{"bad prefix", map[string]string{"REFONTE_TEST_API_KEY": "abc", "REFONTE_CALLBACK_AUTH_KEY": "x"}, nil, 2, "test_"},
		{"no callback key", map[string]string{"REFONTE_TEST_API_KEY": "test_abc"}, nil, 2, "REFONTE_CALLBACK_AUTH_KEY"},
		{"dev", nil, []string{"-dev"}, 2, "not available yet"},
		{"help", nil, []string{"-h"}, 0, "Usage: worker"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(c.args, func(k string) string { return c.env[k] }, &stderr)
			if code != c.code || !strings.Contains(stderr.String(), c.want) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, c.code, stderr.String(), c.want)
			}
			if strings.Contains(stderr.String(), "test_abc") {
				t.Errorf("stderr shows the key")
			}
		})
	}
}

// TestProcessRefusesWithoutKeyExit2 checks the real exit status.
func TestProcessRefusesWithoutKeyExit2(t *testing.T) {
	bin := buildWorker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "no API key") {
		t.Fatalf("worker without keys: %v, output %q; want exit 2 and a clear message", err, out)
	}
}
