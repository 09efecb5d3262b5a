package enqueue_test

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/app/enqueue"
	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

func TestSubmitEnqueuesAndRerunIsDuplicate(t *testing.T) {
	f := newFixture(t)
	ds := f.write("docs.jsonl", rows(600, "a"))

	r := f.main("-type", "documenttranscription", "-project", "p1", "-batch", "b1", "-json", ds)
	if r.code != enqueue.ExitOK {
		t.Fatalf("exit %d, stderr: %s", r.code, r.stderr)
	}
	m := r.lastJSON(t)
	for k, want := range map[string]int64{"rows": 600, "valid": 600, "invalid": 0, "enqueued": 600, "duplicate": 0} {
		if got := num(t, m, k); got != want {
			t.Errorf("%s = %d, want %d", k, got, want)
		}
	}
	runID, _ := m["run_id"].(string)
	if got := f.pending(jobs.Queue(refonte.ModeTest)); got != 600 {
		t.Fatalf("pending asynq tasks = %d, want 600", got)
	}
	run := f.run(runID)
	if run.State != store.RunRunning || run.Enqueued != 600 || run.Project != "p1" || run.Batch != "b1" {
		t.Errorf("run = %+v", run)
	}
	// Rows are recorded in dataset order with their lines, and each task's
	// payload carries the run, line, mode and params.
	js := f.jobsOf(runID)
	if len(js) != 600 {
		t.Fatalf("run rows = %d, want 600", len(js))
	}
	for i, j := range js {
		if j == nil || j.Line != int64(i+1) || j.State != store.JobEnqueued {
			t.Fatalf("row %d: job %+v", i, j)
		}
	}
	info, err := f.insp.GetTaskInfo(jobs.Queue(refonte.ModeTest), jobs.TaskID(refonte.ModeTest, js[41].UniqueID))
	if err != nil {
		t.Fatal(err)
	}
	p, err := jobs.DecodeSubmitPayload(info.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if p.Run != runID || p.Line != 42 || p.Mode != refonte.ModeTest || p.TaskType != refonte.TypeDocumentTranscription {
		t.Errorf("payload = %+v", p)
	}
	var params map[string]any
	if err := json.Unmarshal(p.Params, &params); err != nil {
		t.Fatal(err)
	}
	if params["attachment"] != "https://files.example.com/a/41.pdf" || params["project"] != "p1" || params["unique_id"] != p.UniqueID {
		t.Errorf("params = %v", params)
	}

	// The same dataset again (flags after the dataset this time): every row
	// is a duplicate and no asynq task is added.
	r = f.main(ds, "-type", "documenttranscription", "-project", "p1", "-batch", "b1", "-json")
	if r.code != enqueue.ExitOK {
		t.Fatalf("rerun exit %d, stderr: %s", r.code, r.stderr)
	}
	m = r.lastJSON(t)
	if num(t, m, "enqueued") != 0 || num(t, m, "duplicate") != 600 {
		t.Errorf("rerun summary = %v", m)
	}
	if got := f.pending(jobs.Queue(refonte.ModeTest)); got != 600 {
		t.Errorf("pending asynq tasks after rerun = %d, want 600", got)
	}
}

func TestSubmitInvalidRowsGoToRejects(t *testing.T) {
	f := newFixture(t)
	ds := f.write("mixed.jsonl", strings.Join([]string{
		`{"attachment":"https://files.example.com/1.pdf"}`,
		`{"attachment":"ftp://files.example.com/2.pdf"}`,
		`not json`,
		``,
		`{"metadata":{"x":1}}`,
		`{"attachment":"https://files.example.com/6.pdf"}`,
	}, "\n")+"\n")
	r := f.main("-type", "documenttranscription", "-json", ds)
	if r.code != enqueue.ExitIncomplete {
		t.Fatalf("exit %d, want 3; stderr: %s", r.code, r.stderr)
	}
	m := r.lastJSON(t)
	if num(t, m, "rows") != 5 || num(t, m, "valid") != 2 || num(t, m, "invalid") != 3 || num(t, m, "enqueued") != 2 {
		t.Errorf("summary = %v", m)
	}
	if m["rejects"] != ds+".rejects.jsonl" {
		t.Errorf("rejects = %v", m["rejects"])
	}
	rejects := readRejects(t, ds+".rejects.jsonl")
	wantLines := []int64{2, 3, 5}
	if len(rejects) != len(wantLines) {
		t.Fatalf("rejects = %+v", rejects)
	}
	for i, rj := range rejects {
		if rj.Line != wantLines[i] || rj.Error == "" || rj.Raw == "" {
			t.Errorf("reject %d = %+v, want line %d", i, rj, wantLines[i])
		}
	}
	if !strings.Contains(rejects[0].Error, "attachment") || !strings.Contains(rejects[2].Error, "attachment") {
		t.Errorf("reject errors should name the field: %q, %q", rejects[0].Error, rejects[2].Error)
	}
	run := f.run(m["run_id"].(string))
	if run.Rows != 5 || run.Invalid != 3 || run.Valid != 2 {
		t.Errorf("run counters = %+v", run.Counters)
	}

	// A later clean run of the same path removes the stale rejects file.
	f.write("mixed.jsonl", rows(2, "clean"))
	if r := f.main("-type", "documenttranscription", ds); r.code != enqueue.ExitOK {
		t.Fatalf("clean run exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(ds + ".rejects.jsonl"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale rejects file kept: %v", err)
	}
}

type rejectLine struct {
	Line  int64  `json:"line"`
	Error string `json:"error"`
	Raw   string `json:"raw"`
}

func readRejects(t *testing.T, path string) []rejectLine {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var out []rejectLine
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		var r rejectLine
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("rejects line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

func TestDryRunTouchesNothing(t *testing.T) {
	f := newFixture(t)
	ds := f.write("d.jsonl", rows(10, "x")+`{"attachment":"nope"}`+"\n")
	r := f.main("-type", "documenttranscription", "-dry-run", "-json", ds)
	if r.code != enqueue.ExitIncomplete {
		t.Fatalf("exit %d, want 3; stderr %s", r.code, r.stderr)
	}
	m := r.lastJSON(t)
	if num(t, m, "valid") != 10 || num(t, m, "invalid") != 1 || m["dry_run"] != true || m["run_id"] != "" {
		t.Errorf("summary = %v", m)
	}
	if rj := readRejects(t, ds+".rejects.jsonl"); len(rj) != 1 || rj[0].Line != 11 {
		t.Errorf("rejects = %+v", rj)
	}
	if n := f.dbsize(); n != 0 {
		t.Errorf("DBSIZE after -dry-run = %d, want 0", n)
	}

	clean := f.write("clean.jsonl", rows(10, "y"))
	if r := f.main("-type", "documenttranscription", "-dry-run", clean); r.code != enqueue.ExitOK {
		t.Errorf("clean dry run exit %d: %s", r.code, r.stderr)
	} else if !strings.Contains(r.stdout, "10 valid") {
		t.Errorf("dry run output: %q", r.stdout)
	}
	if n := f.dbsize(); n != 0 {
		t.Errorf("DBSIZE after -dry-run = %d, want 0", n)
	}
}

func TestStdinCSVAndGzip(t *testing.T) {
	f := newFixture(t)
	t.Chdir(f.dir) // the stdin rejects file goes to the working directory
	csv := "attachment,metadata.source\nhttps://files.example.com/1.pdf,scan\nftp://bad,scan\nhttps://files.example.com/3.pdf,fax\n"
	r := f.mainWith(mainOpts{stdin: strings.NewReader(csv)}, "-type", "documenttranscription", "-format", "csv", "-json", "-")
	if r.code != enqueue.ExitIncomplete {
		t.Fatalf("exit %d, want 3: %s", r.code, r.stderr)
	}
	if m := r.lastJSON(t); num(t, m, "valid") != 2 || num(t, m, "invalid") != 1 || m["rejects"] != enqueue.StdinRejects {
		t.Errorf("summary = %v", m)
	}
	if rj := readRejects(t, enqueue.StdinRejects); len(rj) != 1 || rj[0].Line != 3 {
		t.Errorf("stdin rejects = %+v", rj)
	}

	// stdin without -format is a usage error.
	if r := f.mainWith(mainOpts{stdin: strings.NewReader(csv)}, "-type", "documenttranscription", "-"); r.code != enqueue.ExitUsage {
		t.Errorf("stdin without -format: exit %d, want 2", r.code)
	}

	gz := f.dir + "/docs.jsonl.gz"
	fh, err := os.Create(gz)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(fh)
	_, _ = io.WriteString(zw, rows(20, "gz"))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	r = f.main("-type", "documenttranscription", "-json", gz)
	if r.code != enqueue.ExitOK {
		t.Fatalf(".gz exit %d: %s", r.code, r.stderr)
	}
	if m := r.lastJSON(t); num(t, m, "enqueued") != 20 {
		t.Errorf(".gz summary = %v", m)
	}
}

// failingReader yields its data, then an I/O error.
type failingReader struct{ r io.Reader }

func (f failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errors.New("disk on fire")
	}
	return n, err
}

func TestReadErrorStopsAndAbortsTheRun(t *testing.T) {
	f := newFixture(t)
	in := failingReader{strings.NewReader(rows(300, "e"))}
	r := f.mainWith(mainOpts{stdin: in}, "-type", "documenttranscription", "-format", "jsonl", "-json", "-rejects", f.dir+"/rj.jsonl", "-")
	if r.code != enqueue.ExitError {
		t.Fatalf("exit %d, want 1; stderr %s", r.code, r.stderr)
	}
	for _, want := range []string{"stopped at line 301", "after reading 300 rows and enqueuing 300 rows", "disk on fire", "aborted"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q: %s", want, r.stderr)
		}
	}
	m := r.lastJSON(t)
	run := f.run(m["run_id"].(string))
	if run.State != store.RunAborted || run.Enqueued != 300 {
		t.Errorf("run state %s enqueued %d, want aborted with 300", run.State, run.Enqueued)
	}
	if got := f.pending(jobs.Queue(refonte.ModeTest)); got != 300 {
		t.Errorf("pending = %d, want the 300 rows read before the error", got)
	}
	st := f.main("status", "-json", run.ID).lastJSON(t)
	if st["state"] != "aborted" || !strings.Contains(st["abort_reason"].(string), "disk on fire") {
		t.Errorf("status of the aborted run = %v", st)
	}
}

func TestUnreadableDatasetWritesNothing(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		args []string
	}{
		{"missing file", []string{"-type", "documenttranscription", f.dir + "/nope.jsonl"}},
		{"duplicate csv header", []string{"-type", "documenttranscription", f.write("dup.csv", "attachment,attachment\nhttps://x.example/1,https://x.example/2\n")}},
		{"utf-16", []string{"-type", "documenttranscription", f.write("u16.jsonl", "\xff\xfe{\x00}\x00")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := f.main(tt.args...); r.code != enqueue.ExitUsage {
				t.Errorf("exit %d, want 2; stderr %s", r.code, r.stderr)
			}
			if n := f.dbsize(); n != 0 {
				t.Errorf("DBSIZE = %d, want 0", n)
			}
		})
	}
}

func TestSubmitCanceledAborts(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := f.mainWith(mainOpts{ctx: ctx}, "-type", "documenttranscription", f.write("c.jsonl", rows(50, "c")))
	if r.code != enqueue.ExitError {
		t.Fatalf("exit %d, want 1: %s", r.code, r.stderr)
	}
}

func TestRedisLostMidRunStops(t *testing.T) {
	srv := testredis.Start(t, testredis.Options{})
	f := newFixture(t)
	f.env["REDIS_URL"] = srv.URL()
	opt, _ := redis.ParseURL(srv.URL())
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	st := store.New(rdb, store.Options{})

	pr, pw := io.Pipe()
	done := make(chan result, 1)
	go func() {
		done <- f.mainWith(mainOpts{stdin: pr}, "-type", "documenttranscription", "-format", "jsonl", "-rejects", f.dir+"/r.jsonl", "-")
	}()
	if _, err := io.WriteString(pw, rows(512, "first")); err != nil {
		t.Fatal(err)
	}
	// Wait until both full batches are in (generous: a loaded machine), then lose Redis.
	deadline := time.Now().Add(60 * time.Second)
	for {
		runs, err := st.ListRuns(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) == 1 && runs[0].Enqueued == 512 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first 512 rows were not enqueued")
		}
		time.Sleep(5 * time.Millisecond)
	}
	srv.Kill()
	go func() {
		_, _ = io.WriteString(pw, rows(600, "second"))
		pw.Close()
	}()
	r := <-done
	if r.code != enqueue.ExitError {
		t.Fatalf("exit %d, want 1: %s", r.code, r.stderr)
	}
	// The second batch's reply may be lost with the server even though it
	// ran: enqueue then reports what it knows was confirmed.
	if !strings.Contains(r.stderr, "stopped at line 513 after reading") || !strings.Contains(r.stderr, "enqueuing 512 rows") {
		if !strings.Contains(r.stderr, "stopped at line 257 after reading") || !strings.Contains(r.stderr, "enqueuing 256 rows") {
			t.Errorf("stderr does not say where it stopped: %s", r.stderr)
		}
	}
}
