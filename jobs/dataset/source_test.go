package dataset

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/refonte-ai/refonte-batch/refonte"
)

// TestRecord: Columns and Record give each valid row's source text as the
// file holds it, rejects in between skipped, line numbers kept.
func TestRecord(t *testing.T) {
	doc := refonte.TypeDocumentTranscription
	tests := []struct {
		name    string
		opts    Options
		in      string
		columns []string
		want    map[int64][]string // line -> record
	}{
		{
			name:    "csv quoted, multi-line, empty cell, reject",
			opts:    Options{Format: FormatCSV, TaskType: doc},
			in:      " attachment , geometries:json ,note\nhttps://a.example/1.pdf,\"{\"\"a\"\":1}\",\"two\nlines\"\nnot a url,,\nhttps://a.example/2.pdf,,\n",
			columns: []string{"attachment", "geometries:json", "note"},
			want: map[int64][]string{
				2: {"https://a.example/1.pdf", `{"a":1}`, "two\nlines"},
				5: {"https://a.example/2.pdf", "", ""},
			},
		},
		{
			name: "jsonl blank lines, spaces, reject",
			opts: Options{Format: FormatJSONL, TaskType: doc},
			in:   "  {\"attachment\":\"https://a.example/1.pdf\", \"m\": {\"k\": [1, 2]}}  \n\n{\"attachment\":1}\n{\"attachment\":\"https://a.example/2.pdf\"}\n",
			want: map[int64][]string{
				1: {`{"attachment":"https://a.example/1.pdf", "m": {"k": [1, 2]}}`},
				4: {`{"attachment":"https://a.example/2.pdf"}`},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewReader(strings.NewReader(tc.in), "d", tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Record(nil); len(got) != 0 {
				t.Errorf("Record before Next = %q", got)
			}
			got := map[int64][]string{}
			var buf [][]byte
			for {
				row, rej, err := r.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if rej != nil {
					continue
				}
				buf = r.Record(buf)
				for _, f := range buf {
					got[row.Line] = append(got[row.Line], string(f))
				}
			}
			if !slices.Equal(r.Columns(), tc.columns) {
				t.Errorf("Columns = %q, want %q", r.Columns(), tc.columns)
			}
			if len(got) != len(tc.want) {
				t.Errorf("records = %v, want %v", got, tc.want)
			}
			for line, w := range tc.want {
				if !slices.Equal(got[line], w) {
					t.Errorf("line %d: Record = %q, want %q", line, got[line], w)
				}
			}
			if rec := r.Record(buf); len(rec) != 0 {
				t.Errorf("Record after the end = %q", rec)
			}
		})
	}
}
