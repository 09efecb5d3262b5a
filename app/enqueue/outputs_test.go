package enqueue_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refonte-ai/refonte-batch/app/enqueue"
	"github.com/refonte-ai/refonte-batch/internal/testfs"
	"github.com/refonte-ai/refonte-batch/jobs/store"
)

// readOnlyDataset writes a dataset (and a stale rejects file from an
// earlier run beside it) into a folder and returns the dataset's path
// through a read-only mount of that folder: the CronJob's /data.
func readOnlyDataset(t *testing.T, f *fixture, name, content string) string {
	t.Helper()
	src := filepath.Join(f.dir, "data")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for p, c := range map[string]string{name: content, name + ".rejects.jsonl": `{"line":1,"error":"stale","raw":"x"}` + "\n"} {
		if err := os.WriteFile(filepath.Join(src, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(testfs.ReadOnlyDir(t, src), name)
}

// TestReadOnlyDatasetFolder is issue #14.1: enqueue never needs to write
// beside the dataset, and an output location that cannot be written is
// found before anything is enqueued.
func TestReadOnlyDatasetFolder(t *testing.T) {
	const typ = "documenttranscription"
	t.Run("valid rows: run done, stale rejects file left alone", func(t *testing.T) {
		f := newFixture(t)
		ds := readOnlyDataset(t, f, "ok.jsonl", rows(20, "ro"))
		t.Chdir(t.TempDir())
		r := f.main("-type", typ, "-json", ds)
		if r.code != enqueue.ExitOK {
			t.Fatalf("exit %d, want 0; stderr: %s", r.code, r.stderr)
		}
		m := r.lastJSON(t)
		if run := f.run(m["run_id"].(string)); run.State != store.RunRunning || run.Enqueued != 20 {
			t.Errorf("run = %s %+v", run.State, run.Counters)
		}
		if _, err := os.Stat("ok.jsonl.rejects.jsonl"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a rejects file in the current directory for a valid dataset (%v)", err)
		}
	})
	t.Run("invalid rows: rejects in the current directory", func(t *testing.T) {
		f := newFixture(t)
		ds := readOnlyDataset(t, f, "mixed.jsonl", rows(3, "ro")+`{"attachment":"ftp://x"}`+"\n")
		cwd := t.TempDir()
		t.Chdir(cwd)
		r := f.main("-type", typ, "-json", ds)
		if r.code != enqueue.ExitIncomplete {
			t.Fatalf("exit %d, want 3; stderr: %s", r.code, r.stderr)
		}
		if m := r.lastJSON(t); m["rejects"] != "mixed.jsonl.rejects.jsonl" {
			t.Errorf("rejects = %v, want mixed.jsonl.rejects.jsonl (current directory)", m["rejects"])
		}
		if rj := readRejects(t, filepath.Join(cwd, "mixed.jsonl.rejects.jsonl")); len(rj) != 1 || rj[0].Line != 4 {
			t.Errorf("rejects = %+v", rj)
		}
	})
	t.Run("-out-dir: created, rejects and nothing else there", func(t *testing.T) {
		f := newFixture(t)
		ds := readOnlyDataset(t, f, "mixed.jsonl", rows(3, "ro")+`{"attachment":"ftp://x"}`+"\n")
		out := filepath.Join(t.TempDir(), "out", "nested")
		t.Chdir(testfs.ReadOnlyDir(t, t.TempDir()))
		r := f.main("-type", typ, "-json", "-out-dir", out, ds)
		if r.code != enqueue.ExitIncomplete {
			t.Fatalf("exit %d, want 3; stderr: %s", r.code, r.stderr)
		}
		want := filepath.Join(out, "mixed.jsonl.rejects.jsonl")
		if m := r.lastJSON(t); m["rejects"] != want {
			t.Errorf("rejects = %v, want %s", m["rejects"], want)
		}
		if rj := readRejects(t, want); len(rj) != 1 {
			t.Errorf("rejects = %+v", rj)
		}
	})
	// Nowhere to write: exit 2 before anything is written to Redis.
	for _, tc := range []struct {
		name string
		args func(f *fixture, ro string) []string
		want string
	}{
		{"dataset folder and current directory read-only", func(_ *fixture, _ string) []string { return nil }, "-out-dir"},
		{"-out-dir read-only", func(_ *fixture, ro string) []string { return []string{"-out-dir", ro} }, "-out-dir"},
		{"-rejects in a read-only folder", func(_ *fixture, ro string) []string {
			return []string{"-rejects", filepath.Join(ro, "r.jsonl")}
		}, "-rejects"},
		{"-dry-run too", func(_ *fixture, _ string) []string { return []string{"-dry-run"} }, "-out-dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			ds := readOnlyDataset(t, f, "ok.jsonl", rows(5, "ro"))
			ro := testfs.ReadOnlyDir(t, t.TempDir())
			t.Chdir(ro)
			args := append([]string{"-type", typ}, tc.args(f, ro)...)
			r := f.main(append(args, ds)...)
			if r.code != enqueue.ExitUsage {
				t.Fatalf("exit %d, want 2; stderr: %s", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "nothing was written") {
				t.Errorf("stderr %q should name %s and say nothing was written", r.stderr, tc.want)
			}
			if n := f.dbsize(); n != 0 {
				t.Errorf("DBSIZE = %d, want 0", n)
			}
		})
	}
}

// TestHelpTexts is issue #14.9: `enqueue help` lists the flags under its
// "submit flags:" heading, and an unknown extension says "use -format" once.
func TestHelpTexts(t *testing.T) {
	f := newFixture(t)
	r := f.main("help")
	if r.code != enqueue.ExitOK {
		t.Fatalf("help exit %d", r.code)
	}
	_, flags, ok := strings.Cut(r.stdout, "submit flags:\n")
	if !ok || !strings.Contains(flags, "-out-dir") || !strings.Contains(r.stdout, "REDIS_URL") {
		t.Errorf("help without its flags or environment:\n%s", r.stdout)
	}
	r = f.main("-h")
	if r.code != enqueue.ExitOK || !strings.Contains(r.stderr, "-out-dir") || strings.Count(r.stderr, "submit flags:") != 1 {
		t.Errorf("-h: exit %d\n%s", r.code, r.stderr)
	}
	r = f.main("data.txt")
	if r.code != enqueue.ExitUsage || strings.Count(r.stderr, "use -format") != 1 {
		t.Errorf("unknown extension: exit %d, %q", r.code, r.stderr)
	}
}
