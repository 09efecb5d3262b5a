package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/app/enqueue"
	"github.com/refonte-ai/refonte-batch/internal/testredis"
)

// TestDevProcess runs `worker -dev` as a real process: it prints the
// Redis and callback URLs, a batch submitted from outside (as the banner's
// enqueue command does) completes, keys in the environment are neither
// read (a missing key file is no error) nor shown, and SIGINT makes it
// exit 0.
func TestDevProcess(t *testing.T) {
	bin := buildWorker(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testredis.FreePort(t))
	const envKey, envCallbackKey = "test_from_the_environment", "callback_key_from_the_environment"
	cmd := exec.Command(bin, "-dev", "-listen", addr)
	cmd.Env = append(os.Environ(), "REFONTE_TEST_API_KEY="+envKey, "REFONTE_CALLBACK_AUTH_KEY="+envCallbackKey,
		"REDIS_URL=redis://127.0.0.1:1/0", "REFONTE_LIVE_API_KEY_FILE="+filepath.Join(t.TempDir(), "missing"))
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	})
	var out syncLines
	banner := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		closed := false
		for sc.Scan() {
			out.add(sc.Text())
			if !closed && strings.Contains(sc.Text(), "go run ./cmd/enqueue") {
				close(banner)
				closed = true
			}
		}
	}()
	select {
	case <-banner:
	case <-time.After(30 * time.Second):
		t.Fatalf("no banner after 30s:\n%s", out.String())
	}

	text := out.String()
	redisURL := regexp.MustCompile(`REDIS_URL=(redis://127\.0\.0\.1:\d+/0)`).FindStringSubmatch(text)
	if redisURL == nil || !strings.Contains(text, "-callback-url http://"+addr+"/callback") {
		t.Fatalf("banner lacks the Redis URL or the callback URL http://%s/callback:\n%s", addr, text)
	}
	dir := t.TempDir()
	ds := filepath.Join(dir, "rows.csv")
	csv := "attachment,geometries:json\n"
	for i := range 5 {
		csv += fmt.Sprintf("https://images.example.com/%d.jpg,\"{\"\"box\"\":{\"\"objects_to_annotate\"\":[\"\"car\"\"]}}\"\n", i)
	}
	if err := os.WriteFile(ds, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env := map[string]string{"REDIS_URL": redisURL[1], "REFONTE_CALLBACK_URL": "http://" + addr + "/callback"}
	var stdout, stderr strings.Builder
	code := enqueue.Main(ctx, []string{"-type", "imageannotation", "-project", "demo", "-wait", ds}, enqueue.Env{
		Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return env[k] }, PollInterval: 50 * time.Millisecond,
	})
	if code != enqueue.ExitOK || !strings.Contains(stdout.String(), "5 completed") {
		t.Fatalf("enqueue against worker -dev: exit %d\nstdout:\n%s\nstderr:\n%s\nworker:\n%s", code, stdout.String(), stderr.String(), out.String())
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("worker -dev exited with %v after SIGINT, want 0\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("worker -dev still running 20s after SIGINT\n%s", out.String())
	}
	for _, secret := range []string{envKey, envCallbackKey} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("a key from the environment appears in the output")
		}
	}
}

// syncLines collects output lines from one goroutine for another.
type syncLines struct {
	mu    sync.Mutex
	lines []string
}

func (s *syncLines) add(l string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, l)
}

func (s *syncLines) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}
