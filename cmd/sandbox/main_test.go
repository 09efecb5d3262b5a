package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/internal/syncbuf"
)

func TestRunServesAndNeverPrintsEnvKeys(t *testing.T) {
	dir := t.TempDir()
	liveFile := filepath.Join(dir, "live")
	if err := os.WriteFile(liveFile, []byte("live_fromfile_secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"REFONTE_TEST_API_KEY":      "test_fromenv_secret",
		"REFONTE_LIVE_API_KEY_FILE": liveFile,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncbuf.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-complete-after", "0"}, func(k string) string { return env[k] }, &stdout, &stderr)
	}()
	re := regexp.MustCompile(`base URL: (http://\S+/v1)`)
	var base string
	for deadline := time.Now().Add(10 * time.Second); base == ""; {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no base URL printed: %s %s", stdout.String(), stderr.String())
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	for key, want := range map[string]int{"test_fromenv_secret": 200, "live_fromfile_secret": 200, "test_sandbox_key": 401} {
		req, _ := http.NewRequest(http.MethodGet, base+"/projects", nil)
		req.SetBasicAuth(key, "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("key %s: status %d, want %d", key[:5], resp.StatusCode, want)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit code %d: %s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not stop")
	}
	out := stdout.String() + stderr.String()
	if strings.Contains(out, "fromenv") || strings.Contains(out, "fromfile") {
		t.Fatalf("output shows an env key: %s", out)
	}
	if !strings.Contains(out, "REFONTE_CALLBACK_AUTH_KEY=sandbox_callback_secret") {
		t.Errorf("defaults in use not printed: %s", out)
	}
}

func TestRunRejectsBadKey(t *testing.T) {
	var stdout, stderr syncbuf.Buffer
	env := map[string]string{"REFONTE_TEST_API_KEY": "live_wrongmode"}
	code := run(context.Background(), []string{"-addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, &stdout, &stderr)
	if code != 2 || strings.Contains(stderr.String(), "wrongmode") {
		t.Fatalf("code %d, stderr %q", code, stderr.String())
	}
}

// TestHelp is issue #14.9: -h exits 0 with a description, the
// environment variables and the flags.
func TestHelp(t *testing.T) {
	var stdout, stderr syncbuf.Buffer
	code := run(context.Background(), []string{"-h"}, func(string) string { return "" }, &stdout, &stderr)
	if code != 0 {
		t.Errorf("-h exit %d, want 0", code)
	}
	for _, want := range []string{"fake Refonte.AI API", "REFONTE_TEST_API_KEY", "REFONTE_LIVE_API_KEY", "REFONTE_CALLBACK_AUTH_KEY", "_FILE", "-complete-after"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("-h output lacks %q:\n%s", want, stderr.String())
		}
	}
	if code := run(context.Background(), []string{"-bogus"}, func(string) string { return "" }, &stdout, &stderr); code != 2 {
		t.Errorf("bad flag exit %d, want 2", code)
	}
}
