// Package testcorpus reads jobs/dataset's corpus of malformed datasets
// (jobs/dataset/testdata/malformed) for the tests that run it: each dataset
// file has its golden outcome (<file>.want.json), its golden rejects
// (<file>.rejects.jsonl) and optional reader options (<file>.opts.json).
// jobs/dataset's reader tests and the e2e scenario through the enqueue
// program share these definitions, so the corpus's format is kept in one
// place. It is imported by tests only.
package testcorpus

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Options is a corpus file's optional <file>.opts.json: a missing "type"
// (nil) means imageannotation, "" a type per row.
type Options struct {
	Type        *string        `json:"type"`
	Project     string         `json:"project"`
	Batch       string         `json:"batch"`
	CallbackURL string         `json:"callback_url"`
	Instruction string         `json:"instruction"`
	Params      map[string]any `json:"params"`
	IDColumn    string         `json:"id_column"`
}

// Want is the golden <file>.want.json: the valid rows (their lines and
// unique_ids) and the fatal error, if reading stopped.
type Want struct {
	Valid int      `json:"valid"`
	Lines []int64  `json:"valid_lines"`
	IDs   []string `json:"unique_ids"`
	Fatal string   `json:"fatal,omitempty"`
}

// Files lists the datasets of the corpus in dir: every file but the golden
// and options files and the Markdown notes.
func Files(tb testing.TB, dir string) []string {
	tb.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		n := e.Name()
		if strings.HasSuffix(n, ".opts.json") || strings.HasSuffix(n, ".want.json") || strings.HasSuffix(n, ".rejects.jsonl") || strings.HasSuffix(n, ".md") {
			continue
		}
		files = append(files, n)
	}
	return files
}

// ReadOptions returns the options of the corpus file dir/file: the zero
// Options when it has no <file>.opts.json.
func ReadOptions(tb testing.TB, dir, file string) Options {
	tb.Helper()
	var o Options
	b, err := os.ReadFile(filepath.Join(dir, file+".opts.json"))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		tb.Fatal(err)
	default:
		if err := json.Unmarshal(b, &o); err != nil {
			tb.Fatalf("%s.opts.json: %v", file, err)
		}
	}
	return o
}

// ReadWant returns the golden outcome <file>.want.json of the corpus file
// dir/file.
func ReadWant(tb testing.TB, dir, file string) Want {
	tb.Helper()
	var w Want
	b, err := os.ReadFile(filepath.Join(dir, file+".want.json"))
	if err != nil {
		tb.Fatal(err)
	}
	if err := json.Unmarshal(b, &w); err != nil {
		tb.Fatalf("%s.want.json: %v", file, err)
	}
	return w
}
