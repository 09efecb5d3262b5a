package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/internal/testsrc"
)

// Issue #15 object storage, with the shipped binary (cmd/enqueue wires the
// cloud drivers): enqueue reads an s3:// dataset (.gz) from an in-process
// S3 found through the AWS environment, streams it into a run that records
// the URL, and results -join reads it again from the record; gs:// and
// azblob:// without credentials fail at once (exit 2) with a clear error
// and no network beyond a closed loopback port.
func TestEnqueueFromObjectStorage(t *testing.T) {
	suite(t)
	s3 := testsrc.ServeS3(t)
	var rows strings.Builder
	for i := range 500 {
		fmt.Fprintf(&rows, `{"attachment":"https://files.example.com/os/%d.pdf","unique_id":"os-%d"}`+"\n", i, i)
	}
	s3.Put(t, "inbox", "2026-12-04/street.jsonl.gz", gzipBytes(t, rows.String()))
	rs := testredis.Start(t, testredis.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env := s3.Env(t)
	dir := t.TempDir()

	r := runEnqueueEnv(t, ctx, dir, env, "-type", "documenttranscription", "-project", "demo", "-json", "-out-dir", dir,
		"-redis", rs.URL(), "s3://inbox/2026-12-04/street.jsonl.gz")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, tailBytes(r.stderr, 2000))
	}
	var s summary
	r.lastJSON(t, &s)
	if s.Valid != 500 || s.Enqueued != 500 {
		t.Fatalf("summary %+v, want 500 rows enqueued", s)
	}
	joined := runEnqueueEnv(t, ctx, "", env, "results", "-join", "-redis", rs.URL(), s.RunID)
	if joined.code != 0 || strings.Count(string(joined.stdout), "\n") != 500 ||
		!strings.Contains(string(joined.stdout), `"row":{"attachment":"https://files.example.com/os/0.pdf","unique_id":"os-0"}`) {
		t.Errorf("results -join from the recorded s3 URL: exit %d, %d lines\n%s", joined.code,
			strings.Count(string(joined.stdout), "\n"), tailBytes(joined.stderr, 2000))
	}

	for _, tc := range []struct{ url, want string }{
		{"gs://inbox/rows.jsonl", "no Google Cloud credentials"},
		{"azblob://inbox/rows.jsonl", "AccountName is required"},
	} {
		r := runEnqueueEnv(t, ctx, dir, append(testsrc.NoCloudsEnv(t), "AZURE_STORAGE_KEY=AZ_SECRET"),
			"-type", "documenttranscription", "-redis", rs.URL(), tc.url)
		if r.code != 2 || !strings.Contains(string(r.stderr), tc.want) || strings.Contains(string(r.stderr), "AZ_SECRET") {
			t.Errorf("%s: exit %d, want 2 with %q:\n%s", tc.url, r.code, tc.want, tailBytes(r.stderr, 2000))
		}
	}
}

// gzipBytes compresses s.
func gzipBytes(t testing.TB, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
