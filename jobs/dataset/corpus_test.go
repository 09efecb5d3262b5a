package dataset

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/refonte-ai/refonte-batch/internal/testcorpus"
	"github.com/refonte-ai/refonte-batch/refonte"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/malformed")

const corpusDir = "testdata/malformed"

func corpusFiles(t testing.TB) []string { return testcorpus.Files(t, corpusDir) }

func corpusOpts(t testing.TB, file string) Options {
	format, err := DetectFormat(file)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Format: format, TaskType: refonte.TypeImageAnnotation}
	c := testcorpus.ReadOptions(t, corpusDir, file)
	if c.Type != nil {
		o.TaskType = refonte.TaskType(*c.Type)
	}
	o.Project, o.Batch, o.CallbackURL, o.Instruction = c.Project, c.Batch, c.CallbackURL, c.Instruction
	o.DefaultParams, o.IDColumn = c.Params, c.IDColumn
	return o
}

// readAll reads a whole dataset, checking the invariants every output must
// keep: valid rows pass ValidateTaskParams, have a unique_id and a body equal
// to json.Marshal of the params, and lines increase.
func readAll(t testing.TB, data []byte, name string, opts Options) (rows []Row, rejects []Reject, fatal error) {
	r, err := NewReader(bytes.NewReader(data), name, opts)
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	for {
		row, rej, err := r.Next()
		if err == io.EOF {
			return rows, rejects, nil
		}
		if err != nil {
			if _, _, again := r.Next(); again != err {
				t.Errorf("Next after a fatal error returned %v, want the same error", again)
			}
			return rows, rejects, err
		}
		line := row.Line
		if rej != nil {
			line = rej.Line
			if rej.Error == "" {
				t.Errorf("reject at line %d without an error", rej.Line)
			}
			rejects = append(rejects, *rej)
		} else {
			if err := refonte.ValidateTaskParams(row.Type, row.Params); err != nil {
				t.Errorf("line %d: a returned row is invalid: %v", row.Line, err)
			}
			if row.UniqueID == "" || row.Params[refonte.ParamUniqueID] != row.UniqueID {
				t.Errorf("line %d: unique_id %q, params %v", row.Line, row.UniqueID, row.Params[refonte.ParamUniqueID])
			}
			want, err := json.Marshal(row.Params)
			if err != nil || !bytes.Equal(want, row.Body) {
				t.Errorf("line %d: body\n%s\nwant json.Marshal\n%s (%v)", row.Line, row.Body, want, err)
			}
			rows = append(rows, row)
		}
		if line <= last {
			t.Errorf("line %d after line %d", line, last)
		}
		last = line
	}
}

func TestMalformedCorpus(t *testing.T) {
	files := corpusFiles(t)
	if len(files) < 30 {
		t.Fatalf("the corpus has %d files, want at least 30", len(files))
	}
	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(corpusDir, file))
			if err != nil {
				t.Fatal(err)
			}
			rows, rejects, fatal := readAll(t, data, file, corpusOpts(t, file))
			got := testcorpus.Want{Valid: len(rows), Lines: []int64{}, IDs: []string{}}
			for _, r := range rows {
				got.Lines = append(got.Lines, r.Line)
				got.IDs = append(got.IDs, r.UniqueID)
			}
			if fatal != nil {
				got.Fatal = fatal.Error()
			}
			var rej bytes.Buffer
			w := NewRejectsWriter(&rej)
			for i := range rejects {
				if err := w.Write(&rejects[i]); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if w.Count() != int64(len(rejects)) {
				t.Errorf("Count() = %d, want %d", w.Count(), len(rejects))
			}
			wantJSON, _ := json.MarshalIndent(got, "", " ")
			wantJSON = append(wantJSON, '\n')
			base := filepath.Join(corpusDir, file)
			if *update {
				if err := os.WriteFile(base+".want.json", wantJSON, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(base+".rejects.jsonl", rej.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			golden, err := os.ReadFile(base + ".want.json")
			if err != nil {
				t.Fatalf("%v (run go test -run TestMalformedCorpus -update)", err)
			}
			if !bytes.Equal(golden, wantJSON) {
				t.Errorf("summary:\n%s\nwant (%s.want.json):\n%s", wantJSON, file, golden)
			}
			goldenRej, err := os.ReadFile(base + ".rejects.jsonl")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(goldenRej, rej.Bytes()) {
				t.Errorf("rejects:\n%s\nwant (%s.rejects.jsonl):\n%s", rej.Bytes(), file, goldenRej)
			}
		})
	}
}
