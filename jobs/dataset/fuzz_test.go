package dataset

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refonte-ai/refonte-batch/refonte"
)

func seedCorpus(f *testing.F, ext string) {
	files := corpusFiles(f)
	for _, file := range files {
		if !strings.HasSuffix(file, ext) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(corpusDir, file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
}

// fuzzRead checks readAll's invariants (no panic, valid rows, unique IDs,
// bodies equal to json.Marshal, increasing lines) with a small line limit
// so that the long-line paths are reached too.
func fuzzRead(t *testing.T, data []byte, perRowType bool, format Format) {
	opts := Options{Format: format, TaskType: refonte.TypeImageAnnotation, MaxLineBytes: 512,
		DefaultParams: map[string]any{"metadata": map[string]any{"d": "x"}}}
	if perRowType {
		opts.TaskType = ""
	}
	readAll(t, data, "fuzz", opts)
}

func FuzzReadCSV(f *testing.F) {
	seedCorpus(f, ".csv")
	f.Add([]byte("type,attachment,geometries:json\nimageannotation,https://a.example/x,\"{\"\"box\"\":{\"\"objects_to_annotate\"\":[\"\"a\"\"]}}\"\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, perRowType bool) { fuzzRead(t, data, perRowType, FormatCSV) })
}

func FuzzReadJSONL(f *testing.F) {
	seedCorpus(f, ".jsonl")
	f.Add([]byte(`{"type":"lineannotation","attachment":"https://a.example/x","tags":["a"],"priority":1}`), true)
	f.Fuzz(func(t *testing.T, data []byte, perRowType bool) { fuzzRead(t, data, perRowType, FormatJSONL) })
}
