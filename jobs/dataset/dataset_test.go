package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refonte-ai/refonte-batch/refonte"
)

const geo = `{"box":{"objects_to_annotate":["car"]}}`

func TestMapping(t *testing.T) {
	tests := []struct {
		name      string
		opts      Options
		in        string
		wantBody  []string // bodies of the valid rows, unique_id removed when hashed
		wantLines []int64
		wantRej   []string // "line: error"
	}{
		{
			name:      "csv dotted and json columns",
			opts:      Options{Format: FormatCSV, TaskType: refonte.TypeImageAnnotation},
			in:        "attachment,geometries:json,metadata.source,metadata.cam.id,priority\nhttps://a.example/1.jpg,\"" + strings.ReplaceAll(geo, `"`, `""`) + "\",fleet,7,3\n",
			wantBody:  []string{`{"attachment":"https://a.example/1.jpg","geometries":` + geo + `,"metadata":{"cam":{"id":"7"},"source":"fleet"},"priority":3}`},
			wantLines: []int64{2},
		},
		{
			name:      "csv empty cells are omitted",
			opts:      Options{Format: FormatCSV, TaskType: refonte.TypeImageAnnotation},
			in:        "attachment,geometries:json,metadata.source,instruction\nhttps://a.example/1.jpg,\"" + strings.ReplaceAll(geo, `"`, `""`) + "\",,\n",
			wantBody:  []string{`{"attachment":"https://a.example/1.jpg","geometries":` + geo + `}`},
			wantLines: []int64{2},
		},
		{
			name:      "csv multi-line quoted field keeps line numbers",
			opts:      Options{Format: FormatCSV, TaskType: refonte.TypeDocumentTranscription},
			in:        "attachment,instruction\r\nhttps://a.example/1.pdf,\"two\r\nlines\"\r\nhttps://a.example/2.pdf,x\r\n",
			wantBody:  []string{`{"attachment":"https://a.example/1.pdf","instruction":"two\nlines"}`, `{"attachment":"https://a.example/2.pdf","instruction":"x"}`},
			wantLines: []int64{2, 4},
		},
		{
			name:      "csv type column is removed",
			opts:      Options{Format: FormatCSV},
			in:        "type,attachment\nlineannotation,https://a.example/1.jpg\n",
			wantBody:  []string{`{"attachment":"https://a.example/1.jpg"}`},
			wantLines: []int64{2},
		},
		{
			name: "defaults, flags and the row, in that order of strength",
			opts: Options{Format: FormatJSONL, TaskType: refonte.TypeImageAnnotation, Project: "p-flag", Batch: "b-flag", CallbackURL: "https://cb.example/h", Instruction: "i-flag",
				DefaultParams: map[string]any{"project": "p-default", "metadata": map[string]any{"source": "default", "team": "t"}, "priority": 5.0}},
			in: `{"attachment":"https://a.example/1.jpg","geometries":` + geo + `,"batch":"b-row","metadata":{"source":"row"}}` + "\n",
			wantBody: []string{`{"attachment":"https://a.example/1.jpg","batch":"b-row","callback_url":"https://cb.example/h","geometries":` + geo +
				`,"instruction":"i-flag","metadata":{"source":"row","team":"t"},"priority":5,"project":"p-flag"}`},
			wantLines: []int64{1},
		},
		{
			name:      "jsonl type field, blank lines and CRLF",
			opts:      Options{Format: FormatJSONL},
			in:        "\r\n{\"type\":\"categorization\",\"attachment\":\"https://a.example/1.jpg\",\"categories\":[\"a\"]}\r\n  \n{\"type\":\"nope\"}\n",
			wantBody:  []string{`{"attachment":"https://a.example/1.jpg","categories":["a"]}`},
			wantLines: []int64{2},
			wantRej:   []string{`4: type: unknown task type "nope"`},
		},
		{
			name:      "id column moves into unique_id",
			opts:      Options{Format: FormatCSV, TaskType: refonte.TypeLineAnnotation, IDColumn: "image_id"},
			in:        "image_id,attachment\nimg-1,https://a.example/1.jpg\n,https://a.example/2.jpg\n",
			wantBody:  []string{`{"attachment":"https://a.example/1.jpg","unique_id":"img-1"}`},
			wantLines: []int64{2},
			wantRej:   []string{"3: image_id: is required (it is the ID column)"},
		},
		{
			name:      "a row's own unique_id is kept",
			opts:      Options{Format: FormatJSONL, TaskType: refonte.TypeLineAnnotation},
			in:        `{"attachment":"https://a.example/1.jpg","unique_id":"mine"}` + "\n",
			wantBody:  []string{`{"attachment":"https://a.example/1.jpg","unique_id":"mine"}`},
			wantLines: []int64{1},
		},
		{
			name:      "html and control characters are escaped as json.Marshal does",
			opts:      Options{Format: FormatJSONL, TaskType: refonte.TypeLineAnnotation},
			in:        `{"attachment":"https://a.example/1.jpg?a=1&b=<2>","x":"\u2028\t\u0001é","n":[1e21,1e-7,0.5,-0,12345678901234567890]}` + "\n",
			wantBody:  []string{`{"attachment":"https://a.example/1.jpg?a=1\u0026b=\u003c2\u003e","n":[1e+21,1e-7,0.5,-0,12345678901234567000],"x":"\u2028\t\u0001é"}`},
			wantLines: []int64{1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, rejects, fatal := readAll(t, []byte(tt.in), "t", tt.opts)
			if fatal != nil {
				t.Fatal(fatal)
			}
			var bodies []string
			var lines []int64
			for _, r := range rows {
				p := refonte.TaskParams{}
				for k, v := range r.Params {
					p[k] = v
				}
				if strings.HasPrefix(r.UniqueID, UniqueIDPrefix) {
					if want := UniqueID(p.String("project"), r.Type, p); want != r.UniqueID {
						t.Errorf("UniqueID() = %q, the row has %q", want, r.UniqueID)
					}
					delete(p, "unique_id")
				}
				b, _ := json.Marshal(p)
				bodies = append(bodies, string(b))
				lines = append(lines, r.Line)
			}
			if strings.Join(bodies, "\n") != strings.Join(tt.wantBody, "\n") {
				t.Errorf("bodies:\n%s\nwant:\n%s", strings.Join(bodies, "\n"), strings.Join(tt.wantBody, "\n"))
			}
			if !equalLines(lines, tt.wantLines) {
				t.Errorf("lines %v, want %v", lines, tt.wantLines)
			}
			var rej []string
			for _, r := range rejects {
				rej = append(rej, strings.TrimPrefix(r.String(), "line "))
			}
			if strings.Join(rej, "\n") != strings.Join(tt.wantRej, "\n") {
				t.Errorf("rejects:\n%s\nwant:\n%s", strings.Join(rej, "\n"), strings.Join(tt.wantRej, "\n"))
			}
		})
	}
}

func equalLines(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestUniqueIDIsContentOnly(t *testing.T) {
	base := refonte.TaskParams{"attachment": "https://a.example/1.jpg", "metadata": map[string]any{"b": 1.0, "a": "x"}}
	id := UniqueID("p", refonte.TypeImageAnnotation, base)
	if !strings.HasPrefix(id, UniqueIDPrefix) || len(id) != len(UniqueIDPrefix)+32 {
		t.Fatalf("UniqueID = %q", id)
	}
	same := refonte.TaskParams{"metadata": map[string]any{"a": "x", "b": 1.0}, "attachment": "https://a.example/1.jpg",
		"callback_url": "https://cb.example/x", "unique_id": "whatever"}
	if got := UniqueID("p", refonte.TypeImageAnnotation, same); got != id {
		t.Errorf("callback_url and unique_id changed the ID: %q vs %q", got, id)
	}
	for name, other := range map[string]string{
		"project": UniqueID("q", refonte.TypeImageAnnotation, base),
		"type":    UniqueID("p", refonte.TypeCategorization, base),
		"params":  UniqueID("p", refonte.TypeImageAnnotation, refonte.TaskParams{"attachment": "https://a.example/2.jpg"}),
	} {
		if other == id {
			t.Errorf("a different %s gives the same ID", name)
		}
	}
}

func TestCSVAndJSONLGiveTheSameIDs(t *testing.T) {
	var j, c bytes.Buffer
	if err := WriteSyntheticJSONL(&j, 50, 3); err != nil {
		t.Fatal(err)
	}
	// The CSV form has metadata.frame as a string, so compare a CSV made
	// from the JSONL rows' attachment and geometries only.
	c.WriteString("attachment,geometries:json\n")
	var want []string
	for _, line := range strings.Split(strings.TrimSpace(j.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		g, _ := json.Marshal(m["geometries"])
		c.WriteString(m["attachment"].(string) + `,"` + strings.ReplaceAll(string(g), `"`, `""`) + "\"\n")
		want = append(want, UniqueID("", refonte.TypeImageAnnotation, refonte.TaskParams{"attachment": m["attachment"], "geometries": m["geometries"]}))
	}
	rows, rejects, err := readAll(t, c.Bytes(), "c.csv", Options{Format: FormatCSV, TaskType: refonte.TypeImageAnnotation})
	if err != nil || len(rejects) != 0 || len(rows) != 50 {
		t.Fatalf("%d rows, rejects %v, err %v", len(rows), rejects, err)
	}
	seen := map[string]bool{}
	for i, r := range rows {
		if r.UniqueID != want[i] {
			t.Errorf("row %d: %s, want %s", i, r.UniqueID, want[i])
		}
		seen[r.UniqueID] = true
	}
	if len(seen) != 50 {
		t.Errorf("%d distinct IDs for 50 distinct rows", len(seen))
	}
}

func TestHugeLines(t *testing.T) {
	const max = 1 << 16
	long := strings.Repeat("x", max+10)
	tests := []struct {
		name   string
		format Format
		in     string
	}{
		{"jsonl", FormatJSONL, `{"attachment":"https://a.example/1.jpg"}` + "\n" + `{"attachment":"https://a.example/` + long + `"}` + "\n" + `{"attachment":"https://a.example/3.jpg"}` + "\n"},
		{"jsonl at EOF", FormatJSONL, `{"attachment":"https://a.example/1.jpg"}` + "\n\n" + `{"attachment":"https://a.example/3.jpg"}` + "\n" + long},
		{"csv line", FormatCSV, "attachment\nhttps://a.example/1.jpg\nhttps://a.example/" + long + "\nhttps://a.example/3.jpg\n"},
		{"csv quoted record", FormatCSV, "attachment\nhttps://a.example/1.jpg\n\"https://a.example/" + strings.Repeat(strings.Repeat("y", 1000)+"\n", max/1000+1) + "\"\nhttps://a.example/3.jpg\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, rejects, err := readAll(t, []byte(tt.in), "h", Options{Format: tt.format, TaskType: refonte.TypeLineAnnotation, MaxLineBytes: max})
			if err != nil {
				t.Fatal(err)
			}
			if len(rejects) == 0 || !strings.Contains(rejects[0].Error, "longer than 65536 bytes") || len(rejects[0].Raw) > RawLimit {
				t.Fatalf("rejects %+v", rejects)
			}
			if len(rows) < 1 || rows[0].Params["attachment"] != "https://a.example/1.jpg" {
				t.Errorf("rows %+v", rows)
			}
			if tt.name != "csv quoted record" && tt.name != "jsonl at EOF" && (len(rows) != 2 || rows[1].Params["attachment"] != "https://a.example/3.jpg") {
				t.Errorf("reading did not continue after the long line: %d rows", len(rows))
			}
		})
	}
}

func TestDefaultLineLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 20 MiB of input")
	}
	ok := `{"attachment":"https://a.example/` + strings.Repeat("a", DefaultMaxLineBytes-100) + `"}`
	tooLong := `{"attachment":"https://a.example/` + strings.Repeat("b", DefaultMaxLineBytes) + `"}`
	in := ok + "\n" + tooLong + "\n" + `{"attachment":"https://a.example/3"}` + "\n"
	// The line limit alone: no body limit.
	rows, rejects, err := readAll(t, []byte(in), "big", Options{Format: FormatJSONL, TaskType: refonte.TypeLineAnnotation, MaxBodyBytes: -1})
	if err != nil || len(rows) != 2 || len(rejects) != 1 || rejects[0].Line != 2 {
		t.Fatalf("%d rows, rejects %d, err %v", len(rows), len(rejects), err)
	}
}

func TestDetectFormat(t *testing.T) {
	tests := []struct {
		path string
		want Format
		err  string
	}{
		{"a.csv", FormatCSV, ""},
		{"dir.x/A.CSV.gz", FormatCSV, ""},
		{"a.jsonl", FormatJSONL, ""},
		{"a.ndjson.gz", FormatJSONL, ""},
		{"-", "", "-format is required for stdin"},
		{"a.json", "", "cannot tell the format"},
		{"a.gz", "", "cannot tell the format"},
	}
	for _, tt := range tests {
		got, err := DetectFormat(tt.path)
		if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("DetectFormat(%q) = %q, %v; want %q, %q", tt.path, got, err, tt.want, tt.err)
		}
		if err != nil && !errors.Is(err, ErrFormat) {
			t.Errorf("DetectFormat(%q) error does not wrap ErrFormat", tt.path)
		}
	}
}

func TestOpenFileGzip(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte("attachment\nhttps://a.example/1.jpg\n"))
	zw.Close()
	path := filepath.Join(dir, "d.csv.gz")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// OpenFile decompresses; NewReader must then read plain text.
	r, err := NewReader(f, path, Options{Format: FormatCSV, TaskType: refonte.TypeLineAnnotation})
	if err != nil {
		t.Fatal(err)
	}
	row, rej, err := r.Next()
	if err != nil || rej != nil || row.Params["attachment"] != "https://a.example/1.jpg" {
		t.Fatalf("row %+v rej %+v err %v", row, rej, err)
	}
	if _, _, err := r.Next(); err != io.EOF {
		t.Fatalf("err %v, want EOF", err)
	}
	if _, err := OpenFile(filepath.Join(dir, "missing.csv")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenFile(missing) = %v", err)
	}
}

func TestNewReaderOptions(t *testing.T) {
	if _, err := NewReader(strings.NewReader(""), "x", Options{}); !errors.Is(err, ErrFormat) {
		t.Errorf("no format: %v", err)
	}
	if _, err := NewReader(strings.NewReader(""), "x", Options{Format: FormatCSV, TaskType: "bogus"}); !errors.Is(err, refonte.ErrUnknownTaskType) {
		t.Errorf("bad type: %v", err)
	}
	for _, k := range []string{"type", "unique_id"} {
		_, err := NewReader(strings.NewReader(""), "x", Options{Format: FormatCSV, DefaultParams: map[string]any{k: "x"}})
		if !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), k) {
			t.Errorf("default %s: %v", k, err)
		}
	}
}

type failingReader struct{ data []byte }

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, errors.New("disk on fire")
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

// TestFatalErrorsAreLineErrors checks that every error that stops a Reader
// is a *LineError carrying the dataset's name and the line it stopped at,
// with the cause still matchable.
func TestFatalErrorsAreLineErrors(t *testing.T) {
	const okRow = `{"attachment":"https://a.example/1.jpg"}` + "\n"
	gzipped := func(s string) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = io.WriteString(zw, s)
		_ = zw.Close()
		return b.Bytes()[:b.Len()-8] // truncated trailer: corrupt
	}
	jsonl := Options{Format: FormatJSONL, TaskType: refonte.TypeLineAnnotation}
	csv := Options{Format: FormatCSV, TaskType: refonte.TypeLineAnnotation}
	tests := []struct {
		name  string
		in    io.Reader
		opts  Options
		rows  int // valid rows before the error
		line  int64
		cause error // matched with errors.Is, when not nil
		text  string
	}{
		{"io error", &failingReader{data: []byte(okRow + `{"attachment":"https://a.exa`)}, jsonl, 1, 2, nil,
			"d:2: disk on fire"},
		{"io error at the start", &failingReader{}, jsonl, 0, 1, nil, "d:1: disk on fire"},
		{"utf-16", strings.NewReader("\xff\xfe{\x00}\x00"), jsonl, 0, 1, ErrEncoding,
			"d:1: dataset: not UTF-8: the file starts with a UTF-16 byte order mark; convert it to UTF-8"},
		{"csv header", strings.NewReader("\n\nattachment,attachment\n"), csv, 0, 3, ErrHeader,
			`d:3: dataset: bad CSV header: columns "attachment" and "attachment" both set "attachment"`},
		{"csv header not utf-8", strings.NewReader("a\xffb\n"), csv, 0, 1, ErrEncoding,
			"d:1: dataset: bad CSV header: column 1: dataset: not UTF-8: invalid UTF-8 in the name"},
		{"gzip corrupt", bytes.NewReader(gzipped(strings.Repeat(okRow, 3))), jsonl, 3, 4, io.ErrUnexpectedEOF,
			"d:4: unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader(tt.in, "d", tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			rows := 0
			for {
				_, rej, err := r.Next()
				if err == nil {
					if rej != nil {
						t.Fatalf("reject %v", rej)
					}
					rows++
					continue
				}
				var le *LineError
				if !errors.As(err, &le) {
					t.Fatalf("err = %v (%T), want a *LineError", err, err)
				}
				if rows != tt.rows || le.Name != "d" || le.Line != tt.line || err.Error() != tt.text {
					t.Errorf("after %d rows: %q at line %d; want after %d rows %q at line %d", rows, err, le.Line, tt.rows, tt.text, tt.line)
				}
				if tt.cause != nil && !errors.Is(err, tt.cause) {
					t.Errorf("%v does not match %v", err, tt.cause)
				}
				return
			}
		})
	}
}

func TestRejectsWriterClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := NewRejectsWriter(f)
	if err := w.Write(&Reject{Line: 3, Error: "x: is required", Raw: "a,b"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != `{"line":3,"error":"x: is required","raw":"a,b"}`+"\n" || w.Count() != 1 {
		t.Errorf("file %q, count %d", b, w.Count())
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"csv": FormatCSV, " CSV ": FormatCSV, "jsonl": FormatJSONL, "NDJSON": FormatJSONL, "json": "", "": ""} {
		got, err := ParseFormat(in)
		if got != want || (want == "") != errors.Is(err, ErrFormat) {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestFingerprint: a row's fingerprint is its content (project, type,
// params but unique_id and callback_url), whether the unique_id is the
// row's own or derived, and a derived unique_id is the fingerprint.
func TestFingerprint(t *testing.T) {
	read := func(opts Options, lines ...string) []Row {
		t.Helper()
		r, err := NewReader(strings.NewReader(strings.Join(lines, "\n")+"\n"), "f.jsonl", opts)
		if err != nil {
			t.Fatal(err)
		}
		var rows []Row
		for {
			row, rej, err := r.Next()
			if err == io.EOF {
				return rows
			}
			if err != nil || rej != nil {
				t.Fatalf("row: %v %v", rej, err)
			}
			rows = append(rows, row)
		}
	}
	opts := Options{Format: FormatJSONL, TaskType: refonte.TypeDocumentTranscription, Project: "p", IDColumn: "id"}
	rows := read(opts,
		`{"id":"x","attachment":"https://a.example/1.pdf"}`,
		`{"id":"y","attachment":"https://a.example/1.pdf","callback_url":"https://cb.example/2"}`,
		`{"id":"x","attachment":"https://a.example/2.pdf"}`)
	if rows[0].Fingerprint == "" || rows[0].Fingerprint != rows[1].Fingerprint {
		t.Errorf("same content, other id and callback: fingerprints %q, %q", rows[0].Fingerprint, rows[1].Fingerprint)
	}
	if rows[2].Fingerprint == rows[0].Fingerprint {
		t.Errorf("other content, same fingerprint %q", rows[0].Fingerprint)
	}
	opts.IDColumn = ""
	derived := read(opts, `{"attachment":"https://a.example/1.pdf"}`)[0]
	if derived.Fingerprint != rows[0].Fingerprint || derived.UniqueID != UniqueIDPrefix+derived.Fingerprint {
		t.Errorf("derived row: id %q fingerprint %q, want the own-id row's fingerprint %q", derived.UniqueID, derived.Fingerprint, rows[0].Fingerprint)
	}
}

// TestBodyLimit is issue #17.4: a row whose encoded task body is over
// MaxBodyBytes is rejected by line with its size (a wide CSV record before
// its params are built), and reading goes on.
func TestBodyLimit(t *testing.T) {
	const max = 4096
	wideHeader := "attachment"
	wideRow := "https://a.example/2.jpg"
	for i := range 400 {
		wideHeader += fmt.Sprintf(",c%d", i)
		wideRow += ",7"
	}
	tests := []struct {
		name, in string
		format   Format
		want     string
		line     int64
	}{
		{"jsonl", `{"attachment":"https://a.example/1.jpg"}` + "\n" + `{"attachment":"https://a.example/2.jpg","x":"` +
			strings.Repeat("x", max) + `"}` + "\n" + `{"attachment":"https://a.example/3.jpg"}` + "\n", FormatJSONL, "the task body is 4", 2},
		{"csv wide", wideHeader + "\nhttps://a.example/1.jpg" + strings.Repeat(",", 400) + "\n" + wideRow + "\nhttps://a.example/3.jpg" +
			strings.Repeat(",", 400) + "\n", FormatCSV, "the task body is at least ", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, rejects, err := readAll(t, []byte(tt.in), "b", Options{Format: tt.format, TaskType: refonte.TypeLineAnnotation, MaxBodyBytes: max})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 2 || len(rejects) != 1 || rejects[0].Line != tt.line || !strings.Contains(rejects[0].Error, tt.want) ||
				!strings.Contains(rejects[0].Error, "limit of 4096 bytes (-max-task-bytes)") {
				t.Fatalf("%d rows, rejects %+v", len(rows), rejects)
			}
			for _, r := range rows {
				if len(r.Body) > max {
					t.Errorf("row %d body %d bytes", r.Line, len(r.Body))
				}
			}
		})
	}
	// The floor never rejects a row the exact check would accept.
	rows, rejects, err := readAll(t, []byte(wideHeader+"\n"+wideRow+"\n"), "b", Options{Format: FormatCSV, TaskType: refonte.TypeLineAnnotation, MaxBodyBytes: -1})
	if err != nil || len(rejects) != 0 {
		t.Fatal(rejects, err)
	}
	size := len(rows[0].Body)
	if _, rejects, _ = readAll(t, []byte(wideHeader+"\n"+wideRow+"\n"), "b", Options{Format: FormatCSV, TaskType: refonte.TypeLineAnnotation, MaxBodyBytes: size}); len(rejects) != 0 {
		t.Errorf("a row of exactly the limit (%d bytes) was rejected: %+v", size, rejects)
	}
}
