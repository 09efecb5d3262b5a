package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/internal/testfs"
	"github.com/refonte-ai/refonte-batch/internal/testredis"
)

// buildEnqueue compiles cmd/enqueue into a temp dir.
func buildEnqueue(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "enqueue")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runBin runs the binary with REDIS_URL=redisURL and returns its exit
// code and combined output.
func runBin(t *testing.T, bin, redisURL string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "REDIS_URL=" + redisURL}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run %s: %v", bin, err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// TestSentinelURLDatabaseAndPassword runs enqueue against a real Sentinel
// topology with a password through a sentinel URL naming database 3: the
// run lands in database 3 of the master, and nothing prints the password.
func TestSentinelURLDatabaseAndPassword(t *testing.T) {
	bin := buildEnqueue(t)
	const pw = "enq-sentinel-pw"
	tp := testredis.StartTopology(t, testredis.TopologyOptions{Replicas: 1, Sentinels: 1, Password: pw})
	ds := filepath.Join(t.TempDir(), "s.jsonl")
	var rows strings.Builder
	for i := range 5 {
		fmt.Fprintf(&rows, `{"attachment":"https://files.example.com/%d.pdf"}`+"\n", i)
	}
	if err := os.WriteFile(ds, []byte(rows.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := runBin(t, bin, tp.URL(3), "-type", "documenttranscription", "-project", "p",
		"-callback-url", "http://127.0.0.1:9/callback", ds)
	if code != 0 {
		t.Fatalf("enqueue: exit %d\n%s", code, out)
	}
	code, runs := runBin(t, bin, tp.URL(3), "runs")
	if code != 0 || !strings.Contains(runs, "s.jsonl") {
		t.Fatalf("enqueue runs: exit %d\n%s", code, runs)
	}
	ctx := context.Background()
	for db, want := range map[int]bool{3: true, 0: false} {
		rdb := redis.NewClient(&redis.Options{Addr: tp.Master.Addr(), Password: pw, DB: db})
		n, err := rdb.DBSize(ctx).Result()
		_ = rdb.Close()
		if err != nil || (n > 0) != want {
			t.Errorf("database %d of the master holds %d keys (%v); want keys only in database 3", db, n, err)
		}
	}
	for _, o := range []string{out, runs} {
		// go-redis' sentinel notices ("sentinel: selected addr…") are debug
		// lines (internal/zapredis): a CLI call prints none.
		if strings.Contains(o, pw) || strings.Contains(o, "sentinel:") {
			t.Errorf("output shows the password or sentinel chatter:\n%s", o)
		}
	}
}

// TestMessagesRedactRedisURLs checks that no message of enqueue shows the
// password of its Redis URL: a URL that does not parse, one with a bad
// option, and a server refusing the password (exit 2: a configuration
// error).
func TestMessagesRedactRedisURLs(t *testing.T) {
	bin := buildEnqueue(t)
	const pw = "PW_enqueue_secret"
	srv := testredis.Start(t, testredis.Options{Password: "the-right-one"})
	for _, c := range []struct {
		url  string
		code int
	}{
		{"redis://:" + pw + "@127.0.0.1:notaport/0", 2},
		{"redis://:" + pw + "@127.0.0.1:6379/0?bogus=1", 2},
		{"redis-sentinel://:" + pw + "@127.0.0.1:1/0", 2},
		{"redis://:" + pw + "@" + srv.Addr() + "/0", 2}, // a refused password is a configuration error
		{"redis://" + pw + "@" + srv.Addr() + "/0", 2},
	} {
		for _, args := range [][]string{{"runs"}, {"status", "r1"}, {"-type", "documenttranscription", "-project", "p", "-callback-url", "http://127.0.0.1:9/cb", "-format", "jsonl", "-"}} {
			code, out := runBin(t, bin, c.url, args...)
			if code != c.code || strings.Contains(out, pw) || !strings.Contains(out, "xxxxx") {
				t.Errorf("REDIS_URL=%s enqueue %s: exit %d (want %d), output (want the URL redacted):\n%s",
					c.url, strings.Join(args, " "), code, c.code, out)
			}
		}
	}
}

// TestNotADatasetIsAUsageError gives enqueue files named .jsonl that are
// not JSONL at all: a PNG, a gzip-compressed PNG, UTF-16 text without a
// byte order mark. Each is a usage error (exit 2) naming the file, and
// nothing is written: no run in Redis, no rejects file.
func TestNotADatasetIsAUsageError(t *testing.T) {
	bin := buildEnqueue(t)
	redisURL := testredis.Fresh(t)
	dir := t.TempDir()
	var jsonl strings.Builder
	for i := range 40 {
		fmt.Fprintf(&jsonl, `{"attachment":"https://files.example.com/%d.pdf"}`+"\n", i)
	}
	for name, content := range map[string][]byte{
		"photo.jsonl":   testfs.PNG(t),
		"archive.jsonl": testfs.Gzip(t, testfs.PNG(t)),
		"utf16.jsonl":   testfs.UTF16LE(jsonl.String()),
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		rejects := filepath.Join(dir, name+".rejects")
		code, out := runBin(t, bin, redisURL, "-type", "documenttranscription", "-project", "p",
			"-callback-url", "http://127.0.0.1:9/callback", "-rejects", rejects, path)
		if code != 2 || !strings.Contains(out, path) || !strings.Contains(out, "not a dataset") {
			t.Errorf("enqueue %s: exit %d, want 2 with a message naming the file:\n%s", name, code, out)
		}
		if _, err := os.Stat(rejects); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("enqueue %s: a rejects file was written (%v)", name, err)
		}
	}
	rdb := testredis.ClientOn(t, redisURL)
	if n, err := rdb.DBSize(context.Background()).Result(); err != nil || n != 0 {
		t.Errorf("Redis holds %d keys (%v) after enqueue refused every file; want none", n, err)
	}
}
