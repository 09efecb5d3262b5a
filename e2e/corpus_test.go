package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/internal/testcorpus"
	"github.com/refonte-ai/refonte-batch/internal/testredis"
)

// corpusDir is jobs/dataset's corpus of malformed datasets, each with its
// golden rejects (<file>.rejects.jsonl), golden outcome (<file>.want.json)
// and optional reader options (<file>.opts.json).
const corpusDir = "../jobs/dataset/testdata/malformed"

// storeConflicts lists, per corpus file, the lines the reader accepts but a
// real run refuses: they reuse an earlier line's unique_id with other
// content (issue 17, item 9), which only the store's content fingerprint
// sees. The dry run, which writes nothing, still counts them valid.
var storeConflicts = map[string][]int64{
	"jsonl_unique_id.jsonl": {5},
}

// corpusFlags returns the enqueue flags equivalent to a corpus file's options.
func corpusFlags(t *testing.T, dir, file string) []string {
	t.Helper()
	o := testcorpus.ReadOptions(t, corpusDir, file)
	var flags []string
	switch {
	case o.Type == nil:
		flags = append(flags, "-type", "imageannotation")
	case *o.Type != "":
		flags = append(flags, "-type", *o.Type)
	}
	for _, f := range []struct{ name, v string }{
		{"-project", o.Project}, {"-batch", o.Batch}, {"-callback-url", o.CallbackURL},
		{"-instruction", o.Instruction}, {"-id-column", o.IDColumn},
	} {
		if f.v != "" {
			flags = append(flags, f.name, f.v)
		}
	}
	if o.Params != nil {
		p := filepath.Join(dir, "params.json")
		b, _ := json.Marshal(o.Params)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		flags = append(flags, "-params", p)
	}
	return flags
}

// Scenario 6: every malformed dataset of the corpus through the real
// enqueue program, as a dry run and as a real run against redis-server: the
// rejects file equals the golden one byte for byte, the valid rows and
// their unique_ids equal the golden ones, the exit code is 1 (or 2 before
// anything was written) for a fatal error, 3 with invalid rows, 0
// otherwise, and nothing panics.
func TestMalformedCorpus(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end scenario: skipped with -short")
	}
	t.Parallel()
	bin(t, progEnqueue)
	files := testcorpus.Files(t, corpusDir)
	if len(files) < 30 {
		t.Fatalf("the corpus has %d datasets, want at least 30", len(files))
	}
	redisURL := testredis.Start(t, testredis.Options{}).URL()
	logDir := t.TempDir()

	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			dir := t.TempDir()
			want := testcorpus.ReadWant(t, corpusDir, file)
			goldenRejects, err := os.ReadFile(filepath.Join(corpusDir, file+".rejects.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			invalid := int64(bytes.Count(goldenRejects, []byte("\n")))
			wantCode := 0
			switch {
			case want.Fatal != "":
				wantCode = 1
			case invalid > 0:
				wantCode = 3
			}
			// The dataset is copied so the default rejects path would not
			// write into the source tree; -rejects is given anyway.
			data, err := os.ReadFile(filepath.Join(corpusDir, file))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, file)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			flags := corpusFlags(t, dir, file)

			for _, mode := range []string{"dry-run", "real"} {
				if mode == "real" && want.Fatal != "" {
					continue // a fatal error stops the run midway; the dry run covered the output
				}
				rejects := filepath.Join(dir, mode+".rejects.jsonl")
				args := append(slices.Clone(flags), "-json", "-rejects", rejects, "-redis", redisURL)
				if mode == "dry-run" {
					args = append(args, "-dry-run")
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				r := runEnqueue(t, ctx, logDir, append(args, path)...)
				cancel()
				for _, bad := range []string{"panic", "goroutine ", "runtime error"} {
					if bytes.Contains(r.stderr, []byte(bad)) {
						t.Fatalf("%s: stderr contains %q:\n%s", mode, bad, r.stderr)
					}
				}
				// A fatal error is exit 1 (the run stopped), or 2 when it
				// comes before anything was written (an unusable header or
				// encoding, which enqueue reports as a usage error).
				if r.code != wantCode && !(wantCode == 1 && r.code == 2) {
					t.Errorf("%s: exit %d, want %d (fatal %q, %d invalid)\nstdout:\n%s\nstderr:\n%s", mode, r.code, wantCode, want.Fatal, invalid, r.stdout, tailBytes(r.stderr, 2000))
				}
				got, err := os.ReadFile(rejects)
				if errors.Is(err, os.ErrNotExist) && len(goldenRejects) == 0 {
					got, err = nil, nil
				}
				conflicts := storeConflicts[file]
				if mode == "dry-run" {
					conflicts = nil
				}
				if err == nil && len(conflicts) > 0 {
					got = conflictRejects(t, got, conflicts)
				}
				if err != nil {
					t.Errorf("%s: rejects file: %v", mode, err)
				} else if !bytes.Equal(got, goldenRejects) {
					t.Errorf("%s: rejects file:\n%s\nwant (golden %s.rejects.jsonl):\n%s", mode, got, file, goldenRejects)
				}
				if want.Fatal != "" {
					if !bytes.Contains(r.stderr, []byte(lastWords(want.Fatal))) {
						t.Errorf("%s: stderr does not report the fatal error %q:\n%s", mode, want.Fatal, tailBytes(r.stderr, 2000))
					}
					continue
				}
				var s summary
				r.lastJSON(t, &s)
				wantValid, wantInvalid := int64(want.Valid-len(conflicts)), invalid+int64(len(conflicts))
				if s.Valid != wantValid || s.Invalid != wantInvalid || s.Rows != s.Valid+s.Invalid {
					t.Errorf("%s: summary %s, want valid %d invalid %d", mode, s, wantValid, wantInvalid)
				}
				if mode == "dry-run" {
					continue
				}
				if s.Enqueued+s.Duplicate != wantValid {
					t.Errorf("real: enqueued %d + duplicate %d, want %d", s.Enqueued, s.Duplicate, wantValid)
				}
				res := runEnqueue(t, context.Background(), "", "results", "-redis", redisURL, s.RunID)
				if res.code != 0 {
					t.Fatalf("enqueue results: exit %d: %s", res.code, res.stderr)
				}
				var lines []int64
				var ids []string
				for _, l := range bytes.Split(bytes.TrimSpace(res.stdout), []byte("\n")) {
					if len(l) == 0 {
						continue
					}
					var row rowResult
					if err := json.Unmarshal(l, &row); err != nil {
						t.Fatalf("results line %q: %v", l, err)
					}
					lines, ids = append(lines, row.Line), append(ids, row.UniqueID)
				}
				wantLines, wantIDs := want.Lines, want.IDs
				for _, c := range conflicts {
					if i := slices.Index(wantLines, c); i >= 0 {
						wantLines, wantIDs = slices.Delete(slices.Clone(wantLines), i, i+1), slices.Delete(slices.Clone(wantIDs), i, i+1)
					}
				}
				if !slices.Equal(lines, wantLines) || !slices.Equal(ids, wantIDs) {
					t.Errorf("real: results lines %v ids %v, want lines %v ids %v", lines, ids, wantLines, wantIDs)
				}
			}
		})
	}
}

// conflictRejects checks that the rejects file got from a real run has one
// reject per line of conflicts, each naming the earlier line that holds its
// unique_id, and returns the file without them (what the reader alone
// rejects, the golden file's content).
func conflictRejects(t *testing.T, got []byte, conflicts []int64) []byte {
	t.Helper()
	var rest []byte
	seen := map[int64]bool{}
	for _, l := range bytes.SplitAfter(got, []byte("\n")) {
		var r struct {
			Line  int64  `json:"line"`
			Error string `json:"error"`
		}
		if len(bytes.TrimSpace(l)) > 0 && json.Unmarshal(l, &r) == nil && slices.Contains(conflicts, r.Line) {
			if !strings.Contains(r.Error, "same unique_id as line") {
				t.Errorf("real: line %d's reject does not name the line holding its unique_id: %q", r.Line, r.Error)
			}
			seen[r.Line] = true
			continue
		}
		rest = append(rest, l...)
	}
	for _, c := range conflicts {
		if !seen[c] {
			t.Errorf("real: line %d reuses a unique_id with other content but is not rejected", c)
		}
	}
	return rest
}

// lastWords returns the end of a fatal error message (after its last ": "),
// the part any wrapping keeps.
func lastWords(msg string) string {
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}
