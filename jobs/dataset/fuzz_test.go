package dataset

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

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

// FuzzDecoder checks that whatever the fast decoder accepts, encoding/json
// accepts too, with equal values; the rest goes to encoding/json anyway.
func FuzzDecoder(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":[true,false,null,"x\u00e9\ud83d\ude00\ud800"],"c":{"d":-0.5e-3}}`,
		`{"a":"\"\\\/\b\f\n\r\t","a":2}`, `[1,2]`, `"s"`, `{"n":01}`, `{"n":1e400}`, ` {} `, `{"a":{"b":{}}}x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !utf8.Valid(data) {
			return
		}
		var d decoder
		if got, err := d.decodeObject(data); err == nil {
			var want map[string]any
			if err := json.Unmarshal(data, &want); err != nil {
				t.Fatalf("fast decoder accepted %q, encoding/json says %v", data, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%q: fast %#v, encoding/json %#v", data, got, want)
			}
		}
		got, err := d.decodeValue(data)
		var want any
		wantErr := json.Unmarshal(data, &want)
		if (err == nil) != (wantErr == nil) || (err == nil && !reflect.DeepEqual(got, want)) {
			t.Fatalf("%q: decodeValue %#v, %v; encoding/json %#v, %v", data, got, err, want, wantErr)
		}
	})
}
