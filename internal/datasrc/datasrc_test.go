package datasrc_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/internal/datasrc"
	"github.com/refonte-ai/refonte-batch/internal/testsrc"
)

func TestParse(t *testing.T) {
	abs, _ := filepath.Abs("data/a.csv")
	for _, tc := range []struct {
		in                     string
		kind                   datasrc.Kind
		name, path, base, dir  string
		gzip, secrets, invalid bool
	}{
		{in: "-", kind: datasrc.KindStdin, name: "stdin", base: "stdin"},
		{in: "data/a.csv", kind: datasrc.KindFile, name: abs, path: "data/a.csv", base: "a.csv", dir: "data"},
		{in: "/d/a.jsonl.GZ", kind: datasrc.KindFile, name: "/d/a.jsonl.GZ", path: "/d/a.jsonl.GZ", base: "a.jsonl.GZ", dir: "/d", gzip: true},
		{in: "./s3:x.csv", kind: datasrc.KindFile, name: mustAbs("s3:x.csv"), path: "./s3:x.csv", base: "s3:x.csv", dir: "."},
		{in: "s3://bucket/k/rows.csv.gz?region=eu-west-3", kind: datasrc.KindObject, name: "s3://bucket/k/rows.csv.gz?region=eu-west-3",
			path: "/k/rows.csv.gz", base: "rows.csv.gz", gzip: true},
		{in: "gs://b/rows.jsonl", kind: datasrc.KindObject, name: "gs://b/rows.jsonl", path: "/rows.jsonl", base: "rows.jsonl"},
		{in: "azblob://c/x/rows.csv", kind: datasrc.KindObject, name: "azblob://c/x/rows.csv", path: "/x/rows.csv", base: "rows.csv"},
		{in: "https://h.example/d/rows.csv.gz?X-Amz-Signature=PW_SECRET&x=1", kind: datasrc.KindHTTP,
			name: "https://h.example/d/rows.csv.gz?X-Amz-Signature=xxxxx&x=1", path: "/d/rows.csv.gz", base: "rows.csv.gz", gzip: true, secrets: true},
		{in: "http://u:PW_SECRET@h.example/", kind: datasrc.KindHTTP, name: "http://u:xxxxx@h.example/", path: "/", base: "dataset", secrets: true},
		{in: "s3://bucket", invalid: true},
		{in: "s3://bucket/", invalid: true},
		{in: "ftp://h/a.csv", invalid: true},
		{in: "https:///a.csv", invalid: true},
		{in: "https://u:PW_SECRET@h:port/a.csv", invalid: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			d, err := datasrc.Parse(tc.in)
			if tc.invalid {
				if !errors.Is(err, datasrc.ErrUnsupported) || strings.Contains(err.Error(), "PW_SECRET") {
					t.Fatalf("Parse(%q) = %v, want ErrUnsupported without the secret", tc.in, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Kind != tc.kind || d.Name != tc.name || d.Path != tc.path || d.Base != tc.base || d.Dir() != tc.dir ||
				d.Gzip != tc.gzip || d.HasSecrets() != tc.secrets {
				t.Errorf("Parse(%q) = kind %v name %q path %q base %q dir %q gzip %v secrets %v", tc.in,
					d.Kind, d.Name, d.Path, d.Base, d.Dir(), d.Gzip, d.HasSecrets())
			}
		})
	}
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		panic(err)
	}
	return a
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// read opens name and reads it all.
func read(t *testing.T, o *datasrc.Opener, name string) ([]byte, int64, error) {
	t.Helper()
	d, err := datasrc.Parse(name)
	if err != nil {
		t.Fatal(err)
	}
	rc, size, err := o.Open(context.Background(), d)
	if err != nil {
		return nil, size, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return b, size, err
}

func TestOpen(t *testing.T) {
	rows := []byte("a,b\n1,2\n3,4\n")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "rows.csv"), rows, 0o644)
	os.WriteFile(filepath.Join(dir, "rows.csv.gz"), gz(t, rows), 0o644)
	base := testsrc.Serve(t, map[string][]byte{"/rows.csv": rows, "/rows.csv.gz": gz(t, rows)})
	o := &datasrc.Opener{Stdin: bytes.NewReader(rows)}
	for _, tc := range []struct {
		name string
		size int64
	}{
		{"-", -1},
		{filepath.Join(dir, "rows.csv"), int64(len(rows))},
		{filepath.Join(dir, "rows.csv.gz"), -1},
		{base + "/rows.csv", int64(len(rows))},
		{base + "/rows.csv?X-Amz-Signature=s", int64(len(rows))},
		{base + "/rows.csv.gz", -1},
		{base + "/rows.csv.gz?sig=s&sp=r", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, size, err := read(t, o, tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, rows) || size != tc.size {
				t.Errorf("read %q (size %d), want %q (size %d)", b, size, rows, tc.size)
			}
		})
	}
}

// TestOpenFails: every failure is typed and names the URL without its
// credentials.
func TestOpenFails(t *testing.T) {
	testsrc.NoClouds(t)
	rows := bytes.Repeat([]byte("0123456789abcdef\n"), 4096)
	served := testsrc.Serve(t, map[string][]byte{"/plain.csv.gz": rows})
	cut := testsrc.Cut(t, rows, 1000)
	stall := testsrc.Stall(t, rows, 1000, 10*time.Second)
	const secret = "?X-Amz-Signature=PW_SECRET"
	for _, tc := range []struct {
		name, url string
		open      bool // the failure is at open (else while reading)
		is        error
		as        any
		want      string
	}{
		{"404", served + "/missing.csv" + secret, true, datasrc.ErrNotFound, new(*datasrc.StatusError), "404 Not Found"},
		{"refused", "http://" + testsrc.ClosedAddr(t) + "/a.csv" + secret, true, nil, new(*datasrc.Error), "connection refused"},
		{"cut", cut + "/a.csv" + secret, false, nil, new(*datasrc.ReadError), "broke after 1000 bytes: unexpected EOF"},
		{"stall", stall + "/a.csv" + secret, false, datasrc.ErrStalled, new(*datasrc.ReadError), "no data received for 200ms"},
		{"not gzip", served + "/plain.csv.gz" + secret, true, nil, nil, "gzip: invalid header"},
		{"no driver", "s3://bucket/a.csv?sig=PW_SECRET", true, datasrc.ErrUnsupported, new(*datasrc.Error), "no s3:// driver"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &datasrc.Opener{IdleTimeout: 200 * time.Millisecond}
			d, _ := datasrc.Parse(tc.url)
			rc, _, err := o.Open(context.Background(), d)
			if err == nil {
				if tc.open {
					rc.Close()
					t.Fatal("opened")
				}
				_, err = io.ReadAll(rc)
				rc.Close()
			} else if !tc.open {
				t.Fatalf("open: %v", err)
			}
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if strings.Contains(msg, "PW_SECRET") || !strings.Contains(msg, d.Name) || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q: want it to name %s, say %q, and hide the secret", msg, d.Name, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not match %v", err, tc.is)
			}
			if tc.as != nil && !errors.As(err, tc.as) {
				t.Errorf("error %v is not a %T", err, tc.as)
			}
		})
	}
}

// TestOpenStreams: the first bytes of a remote dataset are read before the
// server has sent the rest.
func TestOpenStreams(t *testing.T) {
	rows := bytes.Repeat([]byte("0123456789abcdef\n"), 4096)
	url := testsrc.Stall(t, rows, 100, 30*time.Second)
	d, _ := datasrc.Parse(url + "/a.csv")
	rc, size, err := (&datasrc.Opener{}).Open(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if size != int64(len(rows)) {
		t.Errorf("size %d, want %d", size, len(rows))
	}
	buf := make([]byte, 100)
	if _, err := io.ReadFull(rc, buf); err != nil || !bytes.Equal(buf, rows[:100]) {
		t.Fatalf("first bytes: %q, %v", buf, err)
	}
}

func TestTransient(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"404", &datasrc.StatusError{StatusCode: 404, Status: "404 Not Found"}, false},
		{"403", &datasrc.StatusError{StatusCode: 403, Status: "403 Forbidden"}, false},
		{"429", &datasrc.StatusError{StatusCode: 429, Status: "429 Too Many Requests"}, true},
		{"503", &datasrc.StatusError{StatusCode: 503, Status: "503 Service Unavailable"}, true},
		{"refused", &datasrc.Error{Op: "open", Err: syscall.ECONNREFUSED}, true},
		{"cut", &datasrc.ReadError{Err: io.ErrUnexpectedEOF}, true},
		{"stalled", &datasrc.ReadError{Err: datasrc.ErrStalled}, true},
		{"marked by a driver", fmt.Errorf("%w: SlowDown", datasrc.ErrTransient), true},
		{"not found", fmt.Errorf("%w: NoSuchKey", datasrc.ErrNotFound), false},
		{"unsupported", datasrc.ErrUnsupported, false},
		{"other", errors.New("AccountName is required"), false},
	} {
		if got := datasrc.Transient(tc.err); got != tc.want {
			t.Errorf("%s: Transient(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
