package cloud_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/internal/datasrc"
	"github.com/refonte-ai/refonte-batch/internal/datasrc/cloud"
	"github.com/refonte-ai/refonte-batch/internal/testsrc"
)

func open(ctx context.Context, name string) (io.ReadCloser, int64, *datasrc.Dataset, error) {
	d, err := datasrc.Parse(name)
	if err != nil {
		return nil, -1, nil, err
	}
	rc, size, err := (&datasrc.Opener{Objects: cloud.Open}).Open(ctx, d)
	return rc, size, d, err
}

// TestS3 reads objects from an in-process S3 found through
// AWS_ENDPOINT_URL, and through the URL's own endpoint parameters.
func TestS3(t *testing.T) {
	s3 := testsrc.StartS3(t)
	rows := []byte("a,b\n1,2\n")
	var z bytes.Buffer
	w := gzip.NewWriter(&z)
	w.Write(rows)
	w.Close()
	s3.Put(t, "data", "nightly/rows.csv", rows)
	s3.Put(t, "data", "nightly/rows.csv.gz", z.Bytes())
	for _, name := range []string{
		"s3://data/nightly/rows.csv",
		"s3://data/nightly/rows.csv.gz",
		"s3://data/nightly/rows.csv?endpoint=" + s3.URL + "&use_path_style=true&region=eu-west-3",
		"s3://data/nightly/rows.csv?endpoint=" + s3.URL + "&s3ForcePathStyle=true",
	} {
		t.Run(name, func(t *testing.T) {
			rc, _, _, err := open(context.Background(), name)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			b, err := io.ReadAll(rc)
			if err != nil || !bytes.Equal(b, rows) {
				t.Fatalf("read %q, %v; want %q", b, err, rows)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		_, _, d, err := open(context.Background(), "s3://data/nightly/none.csv")
		if !errors.Is(err, datasrc.ErrNotFound) || !strings.Contains(err.Error(), d.Name) {
			t.Fatalf("err = %v, want ErrNotFound naming %s", err, d.Name)
		}
	})
	t.Run("bad credentials", func(t *testing.T) {
		t.Setenv("AWS_SECRET_ACCESS_KEY", "PW_SECRET")
		_, _, _, err := open(context.Background(), "s3://data/nightly/rows.csv")
		// gofakes3 does not check signatures; the point is that nothing
		// quotes the key even when the SDK fails or succeeds.
		if err != nil && strings.Contains(err.Error(), "PW_SECRET") {
			t.Fatalf("error quotes the secret key: %v", err)
		}
	})
}

// TestWithoutCredentials: gs:// and azblob:// without credentials fail at
// once with a clear error that names the URL, quotes no credential, and
// contacts nothing (testsrc.NoClouds leaves no endpoint beyond a closed
// loopback port).
func TestWithoutCredentials(t *testing.T) {
	testsrc.NoClouds(t)
	// A key without its account is no credential: azblob must not use it
	// (nor quote it).
	t.Setenv("AZURE_STORAGE_KEY", "PW_SECRET")
	for _, tc := range []struct{ url, want string }{
		{"gs://bucket/rows.csv?sig=PW_SECRET", "no Google Cloud credentials"},
		{"azblob://container/rows.csv", "AccountName is required"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			rc, _, d, err := open(ctx, tc.url)
			if err == nil {
				rc.Close()
				t.Fatal("opened")
			}
			msg := err.Error()
			if !strings.Contains(msg, d.Name) || !strings.Contains(msg, tc.want) || strings.Contains(msg, "PW_SECRET") {
				t.Fatalf("error %q: want it to name %s and say %q, without the secret", msg, d.Name, tc.want)
			}
		})
	}
}
