// Package testsrc serves datasets to tests on loopback: an in-process S3
// (gofakes3 on its in-memory backend) that the AWS SDK reaches through the
// environment, http servers that serve, cut or stall a body, and an
// environment that keeps every cloud SDK off the network.
package testsrc

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3 is an in-process S3 on 127.0.0.1.
type S3 struct {
	// URL is the endpoint (AWS_ENDPOINT_URL).
	URL     string
	backend *s3mem.Backend
}

// The fake S3's credentials (any work; they are set so that the SDK looks
// nowhere else).
const (
	S3AccessKey = "AKIATESTSRC"
	S3SecretKey = "testsrc-secret-key"
)

// StartS3 starts an in-process S3 and points the AWS SDK of this process
// at it through the environment (see S3.Env), for the rest of the test.
// Tests that call it cannot be parallel (t.Setenv); a parallel test that
// runs a program against it uses ServeS3 and passes S3.Env to the program.
func StartS3(t testing.TB) *S3 {
	t.Helper()
	s := ServeS3(t)
	for _, kv := range s.Env(t) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return s
}

// ServeS3 starts an in-process S3 on 127.0.0.1; the environment is left
// alone.
func ServeS3(t testing.TB) *S3 {
	t.Helper()
	b := s3mem.New()
	srv := httptest.NewServer(gofakes3.New(b).Server())
	t.Cleanup(srv.Close)
	return &S3{URL: srv.URL, backend: b}
}

// Env is the environment ("K=V") in which the AWS SDK reaches s and
// nothing else: NoCloudsEnv, then AWS_ENDPOINT_URL, static credentials and
// a region.
func (s *S3) Env(t testing.TB) []string {
	t.Helper()
	return append(NoCloudsEnv(t), "AWS_ENDPOINT_URL="+s.URL, "AWS_ACCESS_KEY_ID="+S3AccessKey,
		"AWS_SECRET_ACCESS_KEY="+S3SecretKey, "AWS_REGION=us-east-1")
}

// Put stores data as bucket/key, creating the bucket if needed.
func (s *S3) Put(t testing.TB, bucket, key string, data []byte) {
	t.Helper()
	if ok, _ := s.backend.BucketExists(bucket); !ok {
		if err := s.backend.CreateBucket(bucket); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.backend.PutObject(bucket, key, map[string]string{}, bytes.NewReader(data), int64(len(data)), nil); err != nil {
		t.Fatal(err)
	}
}

// NoClouds sets, for the rest of the test, the environment of NoCloudsEnv.
// Tests that call it cannot be parallel (t.Setenv).
func NoClouds(t testing.TB) {
	t.Helper()
	for _, kv := range NoCloudsEnv(t) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// NoCloudsEnv is an environment ("K=V", empty values unset a variable for
// the SDKs) in which no cloud SDK finds credentials or a network endpoint
// beyond loopback: no AWS shared files or instance metadata, a
// GOOGLE_APPLICATION_CREDENTIALS file that does not exist, no Azure
// account, and GCE/Azure metadata hosts on a closed loopback port.
func NoCloudsEnv(t testing.TB) []string {
	t.Helper()
	dir := t.TempDir()
	closed := ClosedAddr(t)
	env := map[string]string{
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
		"AWS_ENDPOINT_URL": "", "AWS_ROLE_ARN": "", "AWS_WEB_IDENTITY_TOKEN_FILE": "",
		"AWS_CONFIG_FILE":                   filepath.Join(dir, "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE":       filepath.Join(dir, "aws-credentials"),
		"AWS_EC2_METADATA_DISABLED":         "true",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://" + closed,
		"GOOGLE_APPLICATION_CREDENTIALS":    filepath.Join(dir, "no-google-credentials.json"),
		"CLOUDSDK_CONFIG":                   filepath.Join(dir, "gcloud"),
		"GCE_METADATA_HOST":                 closed,
		"STORAGE_EMULATOR_HOST":             "",
		"AZURE_STORAGE_ACCOUNT":             "", "AZURE_STORAGE_KEY": "", "AZURE_STORAGE_SAS_TOKEN": "",
		"AZURE_STORAGE_CONNECTION_STRING": "", "AZURE_STORAGEBLOB_CONNECTIONSTRING": "",
		"AZURE_CLIENT_ID": "", "AZURE_TENANT_ID": "", "AZURE_CLIENT_SECRET": "", "AZURE_FEDERATED_TOKEN_FILE": "",
		"IDENTITY_ENDPOINT": "http://" + closed, "MSI_ENDPOINT": "http://" + closed,
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// ClosedAddr returns a loopback address (host:port) nothing listens on.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Serve serves files by path ("/a.csv") on 127.0.0.1 with their length;
// other paths are 404. It returns the server's base URL.
func Serve(t testing.TB, files map[string][]byte) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// Cut serves body on every path, announcing its full length but closing
// the connection after its first after bytes: a connection cut mid-stream.
// It returns the server's base URL.
func Cut(t testing.TB, body []byte, after int) string {
	t.Helper()
	return hijack(t, body, after, 0)
}

// Stall serves body's first after bytes on every path, announcing its full
// length, then sends nothing more for d before closing.
func Stall(t testing.TB, body []byte, after int, d time.Duration) string {
	t.Helper()
	return hijack(t, body, after, d)
}

func hijack(t testing.TB, body []byte, after int, stall time.Duration) string {
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
			strconv.Itoa(len(body)) + "\r\n\r\n")
		buf.Write(body[:after])
		buf.Flush()
		if stall > 0 {
			select {
			case <-time.After(stall):
			case <-done:
			}
		}
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return srv.URL
}
