package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/app/enqueue"
	"github.com/refonte-ai/refonte-batch/internal/syncbuf"
)

// result is one Main run's exit code and output.
type result struct {
	code           int
	stdout, stderr string
}

// devMain runs Main with -dev prepended and this command's StartDev, with
// an environment pointing at a Redis and a callback URL that do not exist:
// -dev must not use them.
func devMain(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env := map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0", "REFONTE_CALLBACK_URL": "http://127.0.0.1:1/callback"}
	var out, errb syncbuf.Buffer
	code := enqueue.Main(ctx, append([]string{"-dev"}, args...), enqueue.Env{
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		Getenv:       func(k string) string { return env[k] },
		PollInterval: 20 * time.Millisecond,
		StartDev:     startDev,
	})
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// example copies examples/NAME into a temporary directory (the results
// and rejects files are written beside it) and returns the copy's path.
func example(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// readLines returns the JSON lines of a file, decoded.
func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: %v: %s", path, err, sc.Text())
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDevQuickStart runs the README's quick start on a copy of the example
// and checks the exit code, the summary table and the results file.
func TestDevQuickStart(t *testing.T) {
	ds := example(t, "street-scenes.csv")
	r := devMain(t, "-type", "imageannotation", "-project", "demo",
		"-params", filepath.Join("..", "..", "examples", "street-scenes.params.json"), ds)
	if r.code != enqueue.ExitOK {
		t.Fatalf("exit %d, want 0; stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	data, _ := os.ReadFile(ds)
	rows := strings.Count(strings.TrimSpace(string(data)), "\n") // minus the header
	for _, want := range []string{"rows", "valid", "invalid", "submitted", "completed", "failed", "elapsed",
		"results: " + ds + ".results.jsonl"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, r.stdout)
		}
	}
	results := readLines(t, ds+".results.jsonl")
	if len(results) != rows {
		t.Fatalf("%d result lines, want %d", len(results), rows)
	}
	for i, l := range results {
		if l["state"] != "completed" || l["task_id"] == "" || l["response"] == nil {
			t.Errorf("result %d = %v, want completed with a task and a response", i, l)
		}
	}
	if _, err := os.Stat(ds + ".rejects.jsonl"); !os.IsNotExist(err) {
		t.Errorf("a rejects file exists for a valid dataset (%v)", err)
	}
}

// TestDevBrokenExample checks the broken example: valid rows complete,
// invalid ones are in the rejects file, exit code 3, and -json's summary.
func TestDevBrokenExample(t *testing.T) {
	ds := example(t, "broken.csv")
	r := devMain(t, "-json", "-type", "imageannotation", "-project", "demo", ds)
	if r.code != enqueue.ExitIncomplete {
		t.Fatalf("exit %d, want %d; stdout:\n%s\nstderr:\n%s", r.code, enqueue.ExitIncomplete, r.stdout, r.stderr)
	}
	var sum struct {
		Rows, Valid, Invalid, Completed int64
		Results, Rejects                string
		Elapsed                         *float64 `json:"elapsed_seconds"`
	}
	last := r.stdout[strings.LastIndex(strings.TrimSpace(r.stdout), "\n")+1:]
	if err := json.Unmarshal([]byte(last), &sum); err != nil {
		t.Fatalf("last stdout line is not the JSON summary: %q (%v)", last, err)
	}
	if sum.Valid == 0 || sum.Invalid == 0 || sum.Completed != sum.Valid || sum.Rows != sum.Valid+sum.Invalid {
		t.Errorf("summary = %+v", sum)
	}
	if sum.Results != ds+".results.jsonl" || sum.Rejects != ds+".rejects.jsonl" {
		t.Errorf("summary paths = %v, %v", sum.Results, sum.Rejects)
	}
	if sum.Elapsed == nil {
		t.Errorf("summary lacks elapsed_seconds: %s", last)
	}
	if n := len(readLines(t, ds+".results.jsonl")); int64(n) != sum.Valid {
		t.Errorf("%d result lines, want %d", n, sum.Valid)
	}
	rejects := readLines(t, ds+".rejects.jsonl")
	if int64(len(rejects)) != sum.Invalid {
		t.Errorf("%d rejects, want %d", len(rejects), sum.Invalid)
	}
	for _, rj := range rejects {
		if rj["line"] == nil || rj["error"] == "" {
			t.Errorf("reject %v lacks its line or error", rj)
		}
	}
}

// TestDevRefusals checks what -dev refuses before starting anything.
func TestDevRefusals(t *testing.T) {
	ds := example(t, "street-scenes.csv")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"live mode", []string{"-mode", "live", "-yes", ds}, "test mode"},
		{"dry run", []string{"-dry-run", ds}, "-dry-run"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := devMain(t, append([]string{"-type", "imageannotation"}, tc.args...)...)
			if r.code != enqueue.ExitUsage || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", r.code, enqueue.ExitUsage, r.stderr, tc.want)
			}
		})
	}
}
