package dataset

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/refonte-ai/refonte-batch/internal/testfs"
	"github.com/refonte-ai/refonte-batch/refonte"
)

func jsonlRows(from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, `{"attachment":"https://a.example/%d.jpg"}`+"\n", i)
	}
	return b.String()
}

// TestNotADataset: a file whose first MaxLeadingUndecodable records (or
// all, when it has fewer) do not decode stops at the first Next with
// ErrNotDataset and no reject; undecodable records followed by one that
// decodes are rejects, in order, and reading goes on.
func TestNotADataset(t *testing.T) {
	garbage := func(n int) string { return strings.Repeat("\x89\xfa\x00binary\xff\n", n) }
	latin1 := "attachment\n" + strings.Repeat("https://a.example/caf\xe9.jpg\n", 25)
	tests := []struct {
		name        string
		format      Format
		in          []byte
		notDataset  string  // the error's text names this; "" = a dataset
		wantRejects []int64 // lines of the rejects, in order
		wantRows    []int64
	}{
		{"png", FormatJSONL, testfs.PNG(t), "as JSONL (line 1: invalid UTF-8", nil, nil},
		{"gzip of a png", FormatJSONL, testfs.Gzip(t, testfs.PNG(t)), "as JSONL (line 1: invalid UTF-8", nil, nil},
		{"utf-16 without a byte order mark", FormatJSONL, testfs.UTF16LE(jsonlRows(1, 30)), "none of its first 20 records decodes as JSONL", nil, nil},
		{"csv named jsonl", FormatJSONL, []byte("attachment\n" + strings.Repeat("https://a.example/1.jpg\n", 30)), "none of its first 20 records", nil, nil},
		{"3 garbage lines only", FormatJSONL, []byte(garbage(3)), "none of its 3 records decodes", nil, nil},
		{"1 garbage line only", FormatJSONL, []byte("\x00\x01\x02"), "its only record does not decode", nil, nil},
		{"latin-1 csv", FormatCSV, []byte(latin1), "none of its first 20 records decodes as CSV", nil, nil},
		{"19 garbage lines then rows", FormatJSONL, []byte(garbage(19) + jsonlRows(20, 21) + garbage(1)),
			"", []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 22}, []int64{20, 21}},
		{"garbage then a decodable invalid row", FormatJSONL, []byte(garbage(2) + `{"attachment":"ftp://x"}` + "\n" + jsonlRows(4, 4)),
			"", []int64{1, 2, 3}, []int64{4}},
		{"blank lines are not records", FormatJSONL, []byte("\n\n" + garbage(1) + "\n" + jsonlRows(5, 5)), "", []int64{3}, []int64{5}},
		{"empty file", FormatJSONL, nil, "", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, rejects, err := readAll(t, tt.in, "photo."+string(tt.format), Options{Format: tt.format, TaskType: refonte.TypeImageAnnotation,
				DefaultParams: map[string]any{"geometries": map[string]any{"box": map[string]any{"objects_to_annotate": []any{"car"}}}}})
			if tt.notDataset != "" {
				if !errors.Is(err, ErrNotDataset) || !strings.HasPrefix(err.Error(), "photo."+string(tt.format)+":") ||
					!strings.Contains(err.Error(), tt.notDataset) {
					t.Fatalf("err = %v; want ErrNotDataset naming the file and saying %q", err, tt.notDataset)
				}
				if len(rows)+len(rejects) != 0 {
					t.Errorf("%d rows and %d rejects before the error; want none", len(rows), len(rejects))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var rl, vl []int64
			for _, r := range rejects {
				rl = append(rl, r.Line)
			}
			for _, r := range rows {
				vl = append(vl, r.Line)
			}
			if !equalLines(rl, tt.wantRejects) || !equalLines(vl, tt.wantRows) {
				t.Errorf("rejects at %v, rows at %v; want %v and %v", rl, vl, tt.wantRejects, tt.wantRows)
			}
		})
	}
}
