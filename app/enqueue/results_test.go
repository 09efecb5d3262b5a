package enqueue_test

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/refonte-ai/refonte-batch/app/enqueue"
	"github.com/refonte-ai/refonte-batch/internal/testsrc"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/dataset"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// The join datasets: three valid rows and one rejected line each, with
// the same outcomes played on their rows (see joinedRun).
const (
	joinCSV = "attachment,metadata.team,note\n" +
		"https://files.example.com/a.pdf,red,\"=HYPERLINK(\"\"http://evil\"\")\"\n" +
		"not-a-url,blue,x\n" +
		"https://files.example.com/b.pdf,,\"two\nlines\"\n" +
		"https://files.example.com/c.pdf,-3,plain\n"
	joinJSONL = `{"attachment":"https://files.example.com/a.pdf","metadata":{"team":"red","tags":["x","y"]},"note":null}` + "\n" +
		`{"attachment":"ftp://nope"}` + "\n" +
		"\n" +
		`{"attachment":"https://files.example.com/b.pdf","metadata":{"team":"blue","shift":{"n":2}},"extra":{}}` + "\n" +
		`{"attachment":"https://files.example.com/c.pdf","note":"+1 555 0100"}` + "\n"
)

// joinedRun submits a dataset (rows with one rejected line) and plays the
// outcomes: the first row completed, the second failed with an error that
// looks like a formula, the third left enqueued.
func (f *fixture) joinedRun(name, content string, extra ...string) (string, []*store.Job) {
	f.t.Helper()
	path := f.write(name, content)
	r := f.main(append(append([]string{"-type", "documenttranscription", "-json"}, extra...), path)...)
	if r.code != enqueue.ExitIncomplete {
		f.t.Fatalf("submit exit %d, want 3 (one invalid row): %s", r.code, r.stderr)
	}
	id := r.lastJSON(f.t)["run_id"].(string)
	js := f.jobsOf(id)
	if len(js) != 3 {
		f.t.Fatalf("run has %d rows, want 3", len(js))
	}
	f.complete(js[0], refonte.StatusCompleted, `{"text": "hi"}`, "")
	f.complete(js[1], refonte.StatusError, "", "@SUM(1) unreadable")
	return id, js
}

// taskID is the task ID complete gives a job.
func taskID(j *store.Job) string { return "task-" + j.UniqueID[len(j.UniqueID)-8:] }

func readCSV(t *testing.T, out string) [][]string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("output is not CSV: %v\n%s", err, out)
	}
	return recs
}

// TestResultsJoin: -join writes each valid row's own fields next to its
// outcome, for CSV and JSONL datasets in both formats, rejected lines
// left out, cells of the CSV guarded against formula injection.
func TestResultsJoin(t *testing.T) {
	f := newFixture(t)
	csvRun, cj := f.joinedRun("docs.csv", joinCSV)
	jsonlRun, jj := f.joinedRun("docs.jsonl", joinJSONL)
	gzRun, gj := f.joinedRun("docs.csv.gz", gzipped(t, joinCSV))

	csvWant := func(js []*store.Job) [][]string {
		return [][]string{
			{"attachment", "metadata.team", "note", "task_id", "state", "error", "response"},
			{"https://files.example.com/a.pdf", "red", `'=HYPERLINK("http://evil")`, taskID(js[0]), "completed", "", `{"text":"hi"}`},
			{"https://files.example.com/b.pdf", "", "two\nlines", taskID(js[1]), "failed", "'@SUM(1) unreadable", ""},
			{"https://files.example.com/c.pdf", "-3", "plain", "", "enqueued", "", ""},
		}
	}
	tests := []struct {
		name    string
		runID   string
		args    []string
		wantCSV [][]string
		// wantJSONL: line, row and state of each line.
		wantJSONL []string
	}{
		{name: "csv dataset as csv", runID: csvRun, args: []string{"-format", "csv"}, wantCSV: csvWant(cj)},
		{name: "gzip csv dataset as csv", runID: gzRun, args: []string{"-format", "csv"}, wantCSV: csvWant(gj)},
		{name: "jsonl dataset as csv", runID: jsonlRun, args: []string{"-format", "csv"}, wantCSV: [][]string{
			{"attachment", "metadata.team", "metadata.tags", "note", "metadata.shift.n", "extra", "task_id", "state", "error", "response"},
			{"https://files.example.com/a.pdf", "red", `["x","y"]`, "", "", "", taskID(jj[0]), "completed", "", `{"text":"hi"}`},
			{"https://files.example.com/b.pdf", "blue", "", "", "2", "{}", taskID(jj[1]), "failed", "'@SUM(1) unreadable", ""},
			{"https://files.example.com/c.pdf", "", "", "'+1 555 0100", "", "", "", "enqueued", "", ""},
		}},
		{name: "csv dataset as jsonl", runID: csvRun, args: []string{"-format", "jsonl"}, wantJSONL: []string{
			`2 {"attachment":"https://files.example.com/a.pdf","metadata.team":"red","note":"=HYPERLINK(\"http://evil\")"} completed`,
			`4 {"attachment":"https://files.example.com/b.pdf","metadata.team":"","note":"two\nlines"} failed`,
			`6 {"attachment":"https://files.example.com/c.pdf","metadata.team":"-3","note":"plain"} enqueued`,
		}},
		{name: "jsonl dataset as jsonl (default format)", runID: jsonlRun, wantJSONL: []string{
			`1 {"attachment":"https://files.example.com/a.pdf","metadata":{"team":"red","tags":["x","y"]},"note":null} completed`,
			`4 {"attachment":"https://files.example.com/b.pdf","metadata":{"team":"blue","shift":{"n":2}},"extra":{}} failed`,
			`5 {"attachment":"https://files.example.com/c.pdf","note":"+1 555 0100"} enqueued`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.main(append(append([]string{"results", "-join"}, tc.args...), tc.runID)...)
			if r.code != enqueue.ExitOK {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if tc.wantCSV != nil {
				crlf := len(tc.wantCSV) // line ends, and each line break inside a cell
				for _, rec := range tc.wantCSV {
					for _, cell := range rec {
						crlf += strings.Count(cell, "\n")
					}
				}
				if !strings.HasSuffix(r.stdout, "\r\n") || strings.Count(r.stdout, "\r\n") != crlf || strings.Count(r.stdout, "\n") != crlf {
					t.Errorf("want CRLF line breaks only (RFC 4180): %q", r.stdout)
				}
				if got := readCSV(t, r.stdout); !slices.EqualFunc(got, tc.wantCSV, slices.Equal) {
					t.Errorf("CSV =\n%q\nwant\n%q", got, tc.wantCSV)
				}
				return
			}
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			if len(lines) != len(tc.wantJSONL) {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), len(tc.wantJSONL), r.stdout)
			}
			js := f.jobsOf(tc.runID)
			for i, l := range lines {
				var m map[string]json.RawMessage
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					t.Fatalf("line %q: %v", l, err)
				}
				keys := make([]string, 0, len(m))
				for k := range m {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				if want := []string{"error", "line", "response", "row", "state", "task_id", "unique_id"}; !slices.Equal(keys, want) {
					t.Errorf("keys %v, want %v", keys, want)
				}
				var state string
				_ = json.Unmarshal(m["state"], &state)
				if got := string(m["line"]) + " " + string(m["row"]) + " " + state; got != tc.wantJSONL[i] {
					t.Errorf("line %d = %s\nwant     %s", i, got, tc.wantJSONL[i])
				}
				if string(m["unique_id"]) != `"`+js[i].UniqueID+`"` {
					t.Errorf("line %d unique_id = %s, want %s", i, m["unique_id"], js[i].UniqueID)
				}
				wantResp, wantErr := `null`, `""`
				switch i {
				case 0:
					wantResp = `{"text":"hi"}`
				case 1:
					wantErr = `"@SUM(1) unreadable"`
				}
				if string(m["response"]) != wantResp || string(m["error"]) != wantErr {
					t.Errorf("line %d response %s error %s, want %s %s", i, m["response"], m["error"], wantResp, wantErr)
				}
			}
		})
	}
}

func gzipped(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestResultsJoinDataset: -dataset reads another copy of the dataset (a
// file, or stdin with -), a run enqueued from stdin needs it, and the
// params and ID column the submit used are applied again.
func TestResultsJoinDataset(t *testing.T) {
	f := newFixture(t)
	params := f.write("params.json", `{"instruction":"Transcribe.","metadata":{"team":"default"}}`)
	runID, js := f.joinedRun("docs.jsonl", joinJSONL, "-params", params)
	copyPath := f.write("copy.jsonl", joinJSONL)

	stdinSubmit := f.mainWith(mainOpts{stdin: strings.NewReader(rows(2, "piped"))},
		"-type", "documenttranscription", "-format", "jsonl", "-json", "-")
	if stdinSubmit.code != enqueue.ExitOK {
		t.Fatalf("stdin submit exit %d: %s", stdinSubmit.code, stdinSubmit.stderr)
	}
	stdinRun := stdinSubmit.lastJSON(t)["run_id"].(string)

	idRun := f.main("-type", "documenttranscription", "-id-column", "doc", "-json",
		f.write("ids.csv", "doc,attachment\nd-1,https://files.example.com/1.pdf\nd-2,https://files.example.com/2.pdf\n"))
	if idRun.code != enqueue.ExitOK {
		t.Fatalf("id-column submit exit %d: %s", idRun.code, idRun.stderr)
	}

	// The same dataset over http(s) (httptest), and a run enqueued from it.
	web := testsrc.Serve(t, map[string][]byte{"/d/docs.jsonl": []byte(joinJSONL),
		"/d/edited.jsonl": []byte(strings.Replace(joinJSONL, "b.pdf", "z.pdf", 1))})
	urlRun := f.main("-type", "documenttranscription", "-json", web+"/d/docs.jsonl")
	if urlRun.code != enqueue.ExitIncomplete {
		t.Fatalf("URL submit exit %d: %s", urlRun.code, urlRun.stderr)
	}

	tests := []struct {
		name     string
		stdin    string
		args     []string
		wantCode int
		want     []string // substrings of stdout (exit 0) or stderr
		rows     int
	}{
		{name: "-dataset URL", args: []string{"-dataset", web + "/d/docs.jsonl", runID}, rows: 3,
			want: []string{`"row":{"attachment":"https://files.example.com/b.pdf","metadata":{"team":"blue","shift":{"n":2}},"extra":{}}`}},
		{name: "-dataset URL, jsonl as csv (two passes)", args: []string{"-format", "csv", "-dataset", web + "/d/docs.jsonl", runID}, rows: 4,
			want: []string{"attachment,metadata.team,metadata.tags,note,metadata.shift.n,extra,task_id,state,error,response\r\n", "'+1 555 0100"}},
		{name: "a run enqueued from a URL", args: []string{"-format", "csv", urlRun.lastJSON(t)["run_id"].(string)}, rows: 4,
			want: []string{"https://files.example.com/c.pdf,,,'+1 555 0100,,,,enqueued,,\r\n"}},
		{name: "a URL whose rows changed", args: []string{"-dataset", web + "/d/edited.jsonl", runID}, wantCode: enqueue.ExitError,
			want: []string{web + `/d/edited.jsonl:4: the row's unique_id is`, "the dataset changed since enqueue"}}, // line 1 written
		{name: "another copy", args: []string{"-dataset", copyPath, runID}, rows: 3, want: []string{taskID(js[0])}},
		{name: "stdin, jsonl as csv (spooled for two passes)", stdin: joinJSONL, args: []string{"-format", "csv", "-dataset", "-", runID},
			rows: 4, want: []string{"attachment,metadata.team,metadata.tags,note,metadata.shift.n,extra,task_id,state,error,response\r\n"}},
		{name: "a run read from stdin needs -dataset", args: []string{stdinRun}, wantCode: enqueue.ExitUsage,
			want: []string{"read its dataset from stdin", "-dataset"}},
		{name: "a run read from stdin, piped again", stdin: rows(2, "piped"), args: []string{"-dataset", "-", stdinRun}, rows: 2},
		{name: "the ID column", args: []string{idRun.lastJSON(t)["run_id"].(string)}, rows: 2,
			want: []string{`"row":{"doc":"d-1","attachment":"https://files.example.com/1.pdf"},"unique_id":"d-1"`}},
		{name: "missing file", args: []string{"-dataset", f.dir + "/nope.jsonl", runID}, wantCode: enqueue.ExitUsage, want: []string{"nope.jsonl"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.mainWith(mainOpts{stdin: strings.NewReader(tc.stdin)}, append([]string{"results", "-join"}, tc.args...)...)
			if r.code != tc.wantCode {
				t.Fatalf("exit %d, want %d: %s", r.code, tc.wantCode, r.stderr)
			}
			text := r.stdout
			if tc.wantCode != enqueue.ExitOK {
				text = r.stderr
				if r.stdout != "" && tc.wantCode == enqueue.ExitUsage {
					t.Errorf("stdout = %q, want nothing", r.stdout)
				}
			} else if n := strings.Count(r.stdout, "\n"); n != tc.rows {
				t.Errorf("%d lines, want %d:\n%s", n, tc.rows, r.stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("output lacks %q:\n%s", w, text)
				}
			}
		})
	}
}

// TestResultsJoinChanged: a dataset that no longer holds the run's rows
// stops the join with exit 1 and an error naming the file and the line.
func TestResultsJoinChanged(t *testing.T) {
	f := newFixture(t)
	runID, _ := f.joinedRun("docs.csv", joinCSV)
	tests := []struct {
		name    string
		content string
		want    string
		lines   int // rows written before the error
	}{
		{name: "a row edited", content: strings.Replace(joinCSV, "c.pdf", "d.pdf", 1), lines: 3,
			want: `docs-a row edited.csv:6: the row's unique_id is "rb1_`},
		{name: "the header changed", content: strings.Replace(joinCSV, "attachment,", "unique_id,attachment,", 1), lines: 1,
			want: `:2: the row is invalid now (the record has 3 fields, the header has 4)`},
		{name: "rows removed", content: strings.Join(strings.SplitAfter(joinCSV, "\n")[:3], ""), lines: 2,
			want: `:4: no row starts at this line (the dataset's last record is at line 3)`},
		{name: "a line inserted", content: strings.Replace(joinCSV, "\n", "\nhttps://files.example.com/new.pdf,x,y\n", 1), lines: 1,
			want: `:2: the row's unique_id is`},
		{name: "rows appended", content: joinCSV + "https://files.example.com/new.pdf,x,y\n", lines: 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := f.write("docs-"+tc.name+".csv", tc.content)
			r := f.main("results", "-join", "-format", "csv", "-dataset", path, runID)
			wantCode := enqueue.ExitError
			if tc.want == "" {
				wantCode = enqueue.ExitOK
			}
			if r.code != wantCode || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, wantCode, tc.want)
			}
			if wantCode == enqueue.ExitError && !strings.Contains(r.stderr, "the dataset changed since enqueue") {
				t.Errorf("stderr %q does not say the dataset changed", r.stderr)
			}
			if got := len(readCSV(t, r.stdout)); got != tc.lines {
				t.Errorf("%d CSV lines written (header included), want %d", got, tc.lines)
			}
		})
	}
	// Same unique_id, other content: the job's fingerprint tells.
	idRun := f.main("-type", "documenttranscription", "-json", f.write("ids.csv", "unique_id,attachment\nu1,https://files.example.com/1.pdf\n"))
	if idRun.code != enqueue.ExitOK {
		t.Fatalf("submit exit %d: %s", idRun.code, idRun.stderr)
	}
	r := f.main("results", "-join", "-dataset", f.write("ids2.csv", "unique_id,attachment\nu1,https://files.example.com/9.pdf\n"), idRun.lastJSON(t)["run_id"].(string))
	if want := `ids2.csv:2: the row has other content than the one enqueued under unique_id "u1"`; r.code != enqueue.ExitError || !strings.Contains(r.stderr, want) {
		t.Errorf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, want)
	}

	// The typed error, through the API.
	path := f.write("edited.csv", strings.Replace(joinCSV, "b.pdf", "z.pdf", 1))
	_, err := enqueue.WriteResults(t.Context(), f.st, runID, enqueue.ResultsOptions{Join: true, Dataset: path}, &bytes.Buffer{})
	var ce *enqueue.RowChangedError
	if !errors.As(err, &ce) || !errors.Is(err, enqueue.ErrRowChanged) || ce.Line != 4 || ce.File != path {
		t.Errorf("err = %v (%+v), want a RowChangedError at %s:4", err, ce, path)
	}
}

// TestResultsFlags: the results command's usage errors and plain CSV.
func TestResultsFlags(t *testing.T) {
	f := newFixture(t)
	runID, js := f.submitted(2, "flags")
	f.complete(js[0], refonte.StatusCompleted, `{"text":"=1+1"}`, "")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"wrong format", []string{"-format", "xml", runID}, enqueue.ExitUsage, `-format "xml": want jsonl or csv`},
		{"wrong format with join", []string{"-join", "-format", "tsv", runID}, enqueue.ExitUsage, `want jsonl or csv`},
		{"dataset without join", []string{"-dataset", "x.csv", runID}, enqueue.ExitUsage, "-dataset is read by -join only"},
		{"unknown run", []string{"r-nope"}, enqueue.ExitError, "not found"},
		{"unknown run, joined", []string{"-join", "-format", "csv", "r-nope"}, enqueue.ExitError, "not found"},
		{"no run", []string{"-join"}, enqueue.ExitUsage, "usage: enqueue results RUN_ID"},
		{"plain csv", []string{"-format", "csv", runID}, enqueue.ExitOK,
			"line,unique_id,task_id,state,error,response\r\n1," + js[0].UniqueID + "," + taskID(js[0]) + `,completed,,"{""text"":""=1+1""}"` + "\r\n2," + js[1].UniqueID + ",,enqueued,,\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.main(append([]string{"results"}, tc.args...)...)
			text := r.stderr
			if tc.wantCode == enqueue.ExitOK {
				text = r.stdout
			}
			if r.code != tc.wantCode || !strings.Contains(text, tc.want) {
				t.Errorf("exit %d, output %q; want exit %d and %q (stderr %q)", r.code, text, tc.wantCode, tc.want, r.stderr)
			}
		})
	}
}

// TestResultsJoinFlatMemory streams the join of a large synthetic dataset
// (JSONL, written as CSV: two passes) and checks that the live heap stays
// flat: sampled every 1,000 rows, it never grows by more than a few MiB
// over its level after the first rows, far below the dataset's size.
func TestResultsJoinFlatMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("large dataset")
	}
	f := newFixture(t)
	const n = 40_000
	path := f.dir + "/big.jsonl"
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeSynthetic(fh, n); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	r := f.main("-type", "imageannotation", "-json", path)
	if r.code != enqueue.ExitOK {
		t.Fatalf("submit exit %d: %s", r.code, r.stderr)
	}
	runID := r.lastJSON(t)["run_id"].(string)
	fi, _ := os.Stat(path)
	for _, format := range []enqueue.ResultsFormat{enqueue.ResultsCSV, enqueue.ResultsJSONL} {
		t.Run(string(format), func(t *testing.T) {
			w := newHeapSampler(1000)
			got, err := enqueue.WriteResults(t.Context(), f.st, runID, enqueue.ResultsOptions{Format: format, Join: true}, w)
			if err != nil || got != n {
				t.Fatalf("WriteResults = %d, %v; want %d rows", got, err, n)
			}
			const limit = 8 << 20
			if growth := w.max - w.first; growth > limit {
				t.Errorf("live heap grew by %d bytes while streaming %d rows (%d-byte dataset, %d-byte output); want under %d",
					growth, n, fi.Size(), w.bytes, limit)
			}
			t.Logf("%s: heap after the first rows %d, max %d, output %d bytes", format, w.first, w.max, w.bytes)
		})
	}
}

// writeSynthetic writes n rows of the benchmark dataset.
func writeSynthetic(w io.Writer, n int) error { return dataset.WriteSyntheticJSONL(w, n, 1) }

// heapSampler is an output that counts lines and, every `every` lines,
// measures the live heap (after a GC).
type heapSampler struct {
	every, lines, next int
	bytes              int64
	first, max         uint64
}

func newHeapSampler(every int) *heapSampler { return &heapSampler{every: every, next: every} }

func (h *heapSampler) Write(p []byte) (int, error) {
	h.bytes += int64(len(p))
	h.lines += bytes.Count(p, []byte("\n"))
	if h.lines >= h.next {
		h.next = h.lines + h.every
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if h.first == 0 {
			h.first = ms.HeapAlloc
		}
		h.max = max(h.max, ms.HeapAlloc)
	}
	return len(p), nil
}

// TestRetryUsesRecordedReadOptions: retry rebuilds a payload from the
// dataset with the -params and -instruction the run recorded, without
// the flags (RunDatasetOptions, shared with results -join).
func TestRetryUsesRecordedReadOptions(t *testing.T) {
	f := newFixture(t)
	params := f.write("params.json", `{"metadata":{"team":"default"}}`)
	r := f.main("-type", "documenttranscription", "-params", params, "-instruction", "Transcribe.", "-json",
		f.write("retry.jsonl", rows(2, "recorded")))
	if r.code != enqueue.ExitOK {
		t.Fatalf("submit exit %d: %s", r.code, r.stderr)
	}
	runID := r.lastJSON(t)["run_id"].(string)
	js := f.jobsOf(runID)
	q := jobs.Queue(refonte.ModeTest)
	tid := jobs.TaskID(refonte.ModeTest, js[0].UniqueID)
	if err := f.insp.DeleteTask(q, tid); err != nil {
		t.Fatal(err)
	}
	f.complete(js[0], refonte.StatusError, "", "labeler gave up")
	r = f.main("retry", runID)
	if r.code != enqueue.ExitOK || !strings.Contains(r.stdout, "1 re-queued (1 rebuilt from the dataset), 0 not re-queued") {
		t.Fatalf("retry: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}
	info, err := f.insp.GetTaskInfo(q, tid)
	if err != nil {
		t.Fatal(err)
	}
	p, err := jobs.DecodeSubmitPayload(info.Payload)
	if err != nil || !strings.Contains(string(p.Params), `"instruction":"Transcribe."`) || !strings.Contains(string(p.Params), `"team":"default"`) {
		t.Errorf("rebuilt params %s (%v), want the recorded -params and -instruction", p.Params, err)
	}
}
