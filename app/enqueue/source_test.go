package enqueue_test

import (
	"bytes"
	"cmp"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/refonte-ai/refonte-batch/app/enqueue"
	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/internal/testsrc"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// withUserinfo puts user:password in an http URL.
func withUserinfo(t *testing.T, raw, user, password string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}

// TestSubmitFromURL submits datasets read from an in-process S3 and an
// http server: plain and .gz (also behind a query string), CSV and JSONL
// told by the name; the run records the URL; rejects are named after the
// key's base name, in -out-dir or else the current directory.
func TestSubmitFromURL(t *testing.T) {
	s3 := testsrc.StartS3(t)
	jsonl := rows(5, "url") + "not json\n"
	csv := "attachment\nhttps://files.example.com/u/1.pdf\nhttps://files.example.com/u/2.pdf\n"
	s3.Put(t, "data", "nightly/rows.jsonl", []byte(jsonl))
	s3.Put(t, "data", "nightly/rows.csv.gz", []byte(gzipped(t, csv)))
	web := testsrc.Serve(t, map[string][]byte{"/d/rows.jsonl.gz": []byte(gzipped(t, jsonl)), "/d/rows.csv": []byte(csv)})
	endpoint := "s3://data/nightly/rows.csv.gz?endpoint=" + url.QueryEscape(s3.URL) + "&use_path_style=true"
	for _, tc := range []struct {
		name, url, recorded, rejects string
		valid, invalid               int64
		outDir                       bool
	}{
		{"s3 jsonl", "s3://data/nightly/rows.jsonl", "", "rows.jsonl.rejects.jsonl", 5, 1, false},
		{"s3 jsonl, -out-dir", "s3://data/nightly/rows.jsonl", "", "rows.jsonl.rejects.jsonl", 5, 1, true},
		{"s3 csv.gz, endpoint in the URL", endpoint, "", "", 2, 0, false},
		{"http jsonl.gz with a query", web + "/d/rows.jsonl.gz?alt=media&X-Amz-Signature=abc",
			web + "/d/rows.jsonl.gz?X-Amz-Signature=xxxxx&alt=media", "rows.jsonl.gz.rejects.jsonl", 5, 1, false},
		{"http csv", web + "/d/rows.csv", "", "", 2, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			t.Chdir(f.dir)
			args := []string{"-type", "documenttranscription", "-json", tc.url}
			wantRejects := filepath.Join(".", tc.rejects)
			if tc.outDir {
				args = append([]string{"-out-dir", filepath.Join(f.dir, "out")}, args...)
				wantRejects = filepath.Join(f.dir, "out", tc.rejects)
			}
			r := f.main(args...)
			wantCode := enqueue.ExitOK
			if tc.invalid > 0 {
				wantCode = enqueue.ExitIncomplete
			}
			if r.code != wantCode {
				t.Fatalf("exit %d, want %d: %s", r.code, wantCode, r.stderr)
			}
			m := r.lastJSON(t)
			if num(t, m, "valid") != tc.valid || num(t, m, "invalid") != tc.invalid || num(t, m, "enqueued") != tc.valid {
				t.Errorf("summary %v", m)
			}
			if tc.invalid > 0 {
				if m["rejects"] != wantRejects {
					t.Errorf("rejects %v, want %s", m["rejects"], wantRejects)
				}
				if rj := readRejects(t, wantRejects); len(rj) != 1 || rj[0].Line != 6 {
					t.Errorf("rejects = %+v", rj)
				}
			}
			want := cmp.Or(tc.recorded, tc.url)
			if run := f.run(m["run_id"].(string)); run.Dataset != want {
				t.Errorf("run dataset %q, want %q", run.Dataset, want)
			}
		})
	}
}

// TestURLCredentialsNeverShown: a URL with a password and a signature is
// read with them, but neither is printed, logged, nor written to Redis;
// results -join of that run needs the URL again (-dataset), and works with it.
func TestURLCredentialsNeverShown(t *testing.T) {
	const secret, sig = "PW_SECRET_1", "SIG_SECRET_2"
	jsonl := rows(4, "creds") + "{broken\n"
	var auth atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pw, _ := r.BasicAuth(); pw != secret || r.URL.Query().Get("sig") != sig {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		auth.Store(true)
		w.Write([]byte(jsonl))
	}))
	t.Cleanup(srv.Close)
	f := newFixture(t)
	t.Chdir(f.dir)
	u := withUserinfo(t, srv.URL+"/rows.jsonl?sv=1&sig="+sig, "reader", secret)
	needles := []string{secret, sig}
	shown := func(r result) {
		t.Helper()
		for _, n := range needles {
			if strings.Contains(r.stdout+r.stderr, n) {
				t.Errorf("output shows the secret %s:\n%s\n%s", n, r.stdout, r.stderr)
			}
		}
	}
	r := f.main("-type", "documenttranscription", "-json", u)
	shown(r)
	if r.code != enqueue.ExitIncomplete || auth.Load() == nil {
		t.Fatalf("exit %d (want 3, with the credentials used): %s", r.code, r.stderr)
	}
	runID := r.lastJSON(t)["run_id"].(string)
	if d := f.run(runID).Dataset; d != "http://reader:xxxxx@"+strings.TrimPrefix(srv.URL, "http://")+"/rows.jsonl?sig=xxxxx&sv=1" {
		t.Errorf("run dataset %q", d)
	}
	testredis.ScanSecrets(t, f.url, needles)
	rj, _ := os.ReadFile(filepath.Join(f.dir, "rows.jsonl.rejects.jsonl"))
	for _, n := range needles {
		if bytes.Contains(rj, []byte(n)) {
			t.Errorf("the rejects file shows the secret %s", n)
		}
	}

	again := f.main("results", "-join", runID)
	shown(again)
	if again.code != enqueue.ExitUsage || !strings.Contains(again.stderr, "credentials are never stored") ||
		!strings.Contains(again.stderr, "-dataset") {
		t.Errorf("results -join of the redacted URL: exit %d, %s", again.code, again.stderr)
	}
	joined := f.main("results", "-join", "-dataset", u, runID)
	shown(joined)
	if joined.code != enqueue.ExitOK || strings.Count(joined.stdout, "\n") != 4 {
		t.Errorf("results -join -dataset URL: exit %d, %d lines: %s", joined.code, strings.Count(joined.stdout, "\n"), joined.stderr)
	}

	// A wrong password: a clear error naming the redacted URL, nothing written.
	f2 := newFixture(t)
	bad := f2.main("-type", "documenttranscription", withUserinfo(t, srv.URL+"/rows.jsonl?sig=WRONG_SIG", "reader", "WRONG_PW"))
	if bad.code != enqueue.ExitUsage || !strings.Contains(bad.stderr, "403 Forbidden") || !strings.Contains(bad.stderr, "reader:xxxxx@") ||
		strings.Contains(bad.stderr, "WRONG_") || f2.dbsize() != 0 {
		t.Errorf("wrong credentials: exit %d, DBSIZE %d: %s", bad.code, f2.dbsize(), bad.stderr)
	}
}

// TestURLCutMidStream: a connection cut mid-stream stops the run (exit 1)
// with an error naming the URL (redacted) and the line reached; the rows
// before it are enqueued, and a re-run of the complete dataset adds the
// rest (the first rows are duplicates).
func TestURLCutMidStream(t *testing.T) {
	f := newFixture(t)
	data := rows(400, "cut")
	after := len(data) * 3 / 5
	before := int64(strings.Count(data[:after], "\n"))
	cut := testsrc.Cut(t, []byte(data), after)
	r := f.main("-type", "documenttranscription", "-json", "-rejects", filepath.Join(f.dir, "rj.jsonl"),
		cut+"/rows.jsonl?X-Amz-Signature=SIG_SECRET")
	if r.code != enqueue.ExitError {
		t.Fatalf("exit %d, want 1: %s", r.code, r.stderr)
	}
	line := strconv.FormatInt(before+1, 10)
	for _, want := range []string{"stopped at line " + line, cut + "/rows.jsonl?X-Amz-Signature=xxxxx:" + line + ":",
		"broke after " + strconv.Itoa(after) + " bytes", "unexpected EOF", "aborted", "re-run the same command"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q: %s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr+r.stdout, "SIG_SECRET") {
		t.Errorf("the signature is shown: %s", r.stderr)
	}
	run := f.run(r.lastJSON(t)["run_id"].(string))
	if run.State != store.RunAborted || run.Enqueued != before {
		t.Errorf("run %s with %d enqueued, want aborted with %d", run.State, run.Enqueued, before)
	}
	if got := f.pending(jobs.Queue(refonte.ModeTest)); int64(got) != before {
		t.Errorf("pending %d, want the %d rows before the cut", got, before)
	}

	whole := testsrc.Serve(t, map[string][]byte{"/rows.jsonl": []byte(data)})
	again := f.main("-type", "documenttranscription", "-json", "-rejects", filepath.Join(f.dir, "rj.jsonl"), whole+"/rows.jsonl")
	if again.code != enqueue.ExitOK {
		t.Fatalf("re-run: exit %d: %s", again.code, again.stderr)
	}
	if m := again.lastJSON(t); num(t, m, "duplicate") != before || num(t, m, "enqueued") != 400-before {
		t.Errorf("re-run summary %v, want %d duplicate and %d enqueued", m, before, 400-before)
	}
	if got := f.pending(jobs.Queue(refonte.ModeTest)); got != 400 {
		t.Errorf("pending %d, want every row once (400)", got)
	}
}

// TestURLOpenFails: a URL that cannot be read stops enqueue before
// anything is written, with an error naming it: exit 2 when only another
// command helps (a 404, a missing object, an azblob:// URL without
// credentials — no network: testsrc.NoClouds —, a scheme enqueue does not
// read), exit 1 when the same command may work later (a refused
// connection, a 503), so that a scheduler retries.
func TestURLOpenFails(t *testing.T) {
	s3 := testsrc.StartS3(t)
	s3.Put(t, "data", "rows.jsonl", []byte(rows(2, "x")))
	web := testsrc.Serve(t, nil)
	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "try later", http.StatusServiceUnavailable)
	}))
	t.Cleanup(busy.Close)
	for _, tc := range []struct {
		name, url, want string
		code            int
	}{
		{"404", web + "/missing.jsonl", "404 Not Found", enqueue.ExitUsage},
		{"missing object", "s3://data/missing.jsonl", "not found", enqueue.ExitUsage},
		{"missing bucket", "s3://nobucket/rows.jsonl", "not found", enqueue.ExitUsage},
		{"azblob without credentials", "azblob://container/rows.jsonl", "AccountName is required", enqueue.ExitUsage},
		{"unsupported scheme", "ftp://h.example/rows.jsonl", "not one of http, https, s3, gs, azblob", enqueue.ExitUsage},
		{"no key", "s3://data/", "want s3://BUCKET/KEY", enqueue.ExitUsage},
		{"connection refused", "http://" + testsrc.ClosedAddr(t) + "/rows.jsonl", "connection refused", enqueue.ExitError},
		{"503", busy.URL + "/rows.jsonl", "503 Service Unavailable", enqueue.ExitError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AZURE_STORAGE_KEY", "AZ_SECRET")
			f := newFixture(t)
			r := f.main("-type", "documenttranscription", "-format", "jsonl", tc.url)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "nothing was written") || f.dbsize() != 0 {
				t.Errorf("exit %d, DBSIZE %d, want %d and 0 with %q: %s", r.code, f.dbsize(), tc.code, tc.want, r.stderr)
			}
			if strings.Contains(r.stderr, "AZ_SECRET") {
				t.Errorf("stderr shows a secret: %s", r.stderr)
			}
		})
	}
}

// TestLiveURLIsDownloadedOnce: the live counting pre-pass spools a URL
// (like stdin), so the enqueue reads the same bytes without a second
// download.
func TestLiveURLIsDownloadedOnce(t *testing.T) {
	data := gzipped(t, rows(9, "live-url"))
	var gets atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		w.Write([]byte(data))
	}))
	t.Cleanup(srv.Close)
	f := newFixture(t)
	f.env["REFONTE_LIVE_API_KEY"] = "live_abcdefgh12345678"
	r := f.main("-mode", "live", "-yes", "-max-live-tasks", "9", "-type", "documenttranscription", "-json",
		"-rejects", filepath.Join(f.dir, "rj.jsonl"), srv.URL+"/rows.jsonl.gz")
	if r.code != enqueue.ExitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if m := r.lastJSON(t); num(t, m, "enqueued") != 9 {
		t.Errorf("summary %v", m)
	}
	if n := gets.Load(); n != 1 {
		t.Errorf("%d downloads, want 1", n)
	}
	if got := f.pending(jobs.Queue(refonte.ModeLive)); got != 9 {
		t.Errorf("pending live = %d, want 9", got)
	}
}

// TestRetryFromURL: retry rebuilds a failed row's payload from the run's
// URL dataset (recorded without credentials, so read again as is).
func TestRetryFromURL(t *testing.T) {
	s3 := testsrc.StartS3(t)
	s3.Put(t, "data", "rows.jsonl", []byte(rows(3, "retry-url")))
	f := newFixture(t)
	r := f.main("-type", "documenttranscription", "-json", "-rejects", filepath.Join(f.dir, "rj.jsonl"), "s3://data/rows.jsonl")
	if r.code != enqueue.ExitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	runID := r.lastJSON(t)["run_id"].(string)
	job := f.jobsOf(runID)[1]
	// The task errored at the API after creation: asynq forgot it.
	if err := f.insp.DeleteTask(jobs.Queue(refonte.ModeTest), jobs.TaskID(refonte.ModeTest, job.UniqueID)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Fail(t.Context(), refonte.ModeTest, job.UniqueID, "boom"); err != nil {
		t.Fatal(err)
	}
	rr := f.main("retry", runID)
	if rr.code != enqueue.ExitOK || !strings.Contains(rr.stdout, "1 re-queued (1 rebuilt from the dataset)") {
		t.Errorf("retry: exit %d: %s%s", rr.code, rr.stdout, rr.stderr)
	}
}
