// Package datasrc is the one opener of datasets for every command that
// reads one (enqueue's submit, retry -dataset, results -dataset): a local
// file, stdin ("-"), an http(s):// URL, or an object in S3 (s3://), Google
// Cloud Storage (gs://) or Azure Blob Storage (azblob://).
//
// A dataset is always streamed: never downloaded in full before the first
// row is read. A name (file path or URL path, without the query) ending in
// .gz is decompressed. The name also tells the format (see Dataset.Path).
//
// Credentials: a URL may carry them (userinfo, a presigned URL's signature,
// an Azure SAS token); they are used to open the URL and never shown:
// Dataset.Name is the redacted URL (package redact), every error names that
// one only, and that is what a run records. Object storage takes its
// credentials from the environment as each cloud's SDK reads them (see
// Opener.Objects and package datasrc/cloud, which implements it).
//
// The object-storage drivers are not imported here: they weigh about
// 60 MB of binary, and this package is linked into the worker too (through
// the runs console). A program that opens s3://, gs:// or azblob:// URLs
// sets Opener.Objects (cmd/enqueue passes cloud.Open).
package datasrc

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/refonte-ai/refonte-batch/internal/redact"
)

// Kind says where a dataset is read from.
type Kind int

// The kinds of dataset.
const (
	// KindFile is a local file.
	KindFile Kind = iota
	// KindStdin is the standard input ("-").
	KindStdin
	// KindHTTP is an http:// or https:// URL.
	KindHTTP
	// KindObject is an object in a bucket: s3://, gs:// or azblob://.
	KindObject
)

// StdinName is the Name of the standard input.
const StdinName = "stdin"

// Errors matched with errors.Is.
var (
	// ErrUnsupported reports a URL whose scheme enqueue does not read, or
	// an object-storage URL in a program without the drivers.
	ErrUnsupported = errors.New("unsupported dataset URL")
	// ErrNotFound reports a URL or object that does not exist (HTTP 404,
	// a missing key or bucket).
	ErrNotFound = errors.New("not found")
	// ErrStalled reports a stream that sent no byte for the idle timeout.
	ErrStalled = errors.New("no data received")
	// ErrNoStdin reports "-" without a standard input to read.
	ErrNoStdin = errors.New("the dataset is stdin but no stdin is available")
)

// Dataset is a parsed dataset name: what to open, and the names to show.
// Parse builds it without any I/O.
type Dataset struct {
	// Kind says where the dataset is read from.
	Kind Kind
	// Name names the dataset in messages, logs and the run record: the
	// absolute path of a file (the path as given if it has none), "stdin",
	// or the URL with its credentials redacted.
	Name string
	// Path is the name whose extension tells the format and compression:
	// the file path, or the URL's path (its query left out). Empty for stdin.
	Path string
	// Base is the dataset's file name, for output files named after it
	// (NAME.rejects.jsonl): the last element of Path, "stdin" for stdin, or
	// "dataset" for a URL whose path has no file name.
	Base string
	// Gzip says the data is gzip-compressed: Path ends in .gz.
	Gzip bool

	raw string   // as given: may hold credentials, never shown
	u   *url.URL // the parsed URL (KindHTTP, KindObject)
}

// IsURL reports whether name is a URL rather than a file path: it starts
// with a scheme followed by "://". A file whose name looks like one must be
// given as ./name.
func IsURL(name string) bool {
	i := strings.Index(name, "://")
	if i <= 0 {
		return false
	}
	for j, r := range name[:i] {
		alpha := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !alpha && (j == 0 || !(r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.')) {
			return false
		}
	}
	return true
}

// Parse parses a dataset name: "-" for stdin, a URL (http, https, s3, gs,
// azblob), or a file path. Errors name the redacted URL and match
// ErrUnsupported for a URL enqueue cannot read.
func Parse(name string) (*Dataset, error) {
	switch {
	case name == "-":
		return &Dataset{Kind: KindStdin, Name: StdinName, Base: StdinName, raw: name}, nil
	case !IsURL(name):
		d := &Dataset{Kind: KindFile, Name: name, Path: name, Base: filepath.Base(name), raw: name}
		if abs, err := filepath.Abs(name); err == nil {
			d.Name = abs
		}
		d.Gzip = strings.HasSuffix(strings.ToLower(name), ".gz")
		return d, nil
	}
	red := redact.URL(name)
	u, err := url.Parse(name)
	if err != nil {
		return nil, fmt.Errorf("dataset URL %s: %w: %s", red, ErrUnsupported, redact.Scrub(errors.Unwrap(err).Error(), name))
	}
	d := &Dataset{Name: red, raw: name, u: u}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme == "http" || scheme == "https":
		d.Kind = KindHTTP
		if u.Host == "" {
			return nil, fmt.Errorf("dataset URL %s: %w: no host", red, ErrUnsupported)
		}
	case scheme == "s3" || scheme == "gs" || scheme == "azblob":
		d.Kind = KindObject
		if u.Host == "" || strings.Trim(u.Path, "/") == "" {
			return nil, fmt.Errorf("dataset URL %s: %w: want %s://BUCKET/KEY (the object's key after the bucket)", red, ErrUnsupported, scheme)
		}
	default:
		return nil, fmt.Errorf("dataset URL %s: %w: the scheme %q is not one of http, https, s3, gs, azblob", red, ErrUnsupported, u.Scheme)
	}
	d.Path = u.Path
	d.Base = path.Base(u.Path)
	if d.Base == "/" || d.Base == "." || strings.HasSuffix(u.Path, "/") {
		d.Base = "dataset"
	}
	d.Gzip = strings.HasSuffix(strings.ToLower(u.Path), ".gz")
	return d, nil
}

// Remote reports whether the dataset is a URL.
func (d *Dataset) Remote() bool { return d.Kind == KindHTTP || d.Kind == KindObject }

// Dir is the folder of a file dataset, where outputs may go beside it; ""
// for stdin and URLs (there is no "beside").
func (d *Dataset) Dir() string {
	if d.Kind != KindFile {
		return ""
	}
	return filepath.Dir(d.raw)
}

// HasSecrets reports whether the dataset's URL carries credentials, which
// Name hides. A run records Name; opening a recorded Name for which
// HasSecrets holds would send the redaction marker as the credential, so
// the operator must give the URL again (see redact.HasSecrets).
func (d *Dataset) HasSecrets() bool { return d.Remote() && redact.HasSecrets(d.raw) }

// Opener opens datasets. The zero value opens files and http(s) URLs with
// the defaults below; stdin and object storage need their fields.
type Opener struct {
	// Stdin is read for "-".
	Stdin io.Reader
	// HTTP fetches http(s) URLs (default NewHTTPClient()).
	HTTP HTTPDoer
	// Objects opens s3://, gs:// and azblob:// objects (package
	// datasrc/cloud's Open); nil refuses them (ErrUnsupported).
	Objects ObjectOpener
	// IdleTimeout ends a remote stream that sends no byte for that long
	// (ErrStalled); default DefaultIdleTimeout. It is not a limit on the
	// whole download: a big file streams for as long as it sends.
	IdleTimeout time.Duration
}

// DefaultIdleTimeout is Opener.IdleTimeout's default.
const DefaultIdleTimeout = 2 * time.Minute

// ObjectOpener opens the object key of the bucket named by bucketURL
// (scheme://bucket?params, the dataset URL without its key) for streaming,
// and returns its size in bytes (-1 if unknown). The reader's Close
// releases everything the call opened. Errors need not be redacted (the
// caller does it) but should match ErrNotFound for a missing object.
type ObjectOpener func(ctx context.Context, bucketURL *url.URL, key string) (io.ReadCloser, int64, error)

// OpenRaw opens the dataset's bytes as stored (not decompressed) and
// returns their size (-1 if unknown). For a remote dataset, the stream ends
// ctx's use when closed; read errors are *ReadError naming the redacted URL.
func (o *Opener) OpenRaw(ctx context.Context, d *Dataset) (io.ReadCloser, int64, error) {
	switch d.Kind {
	case KindStdin:
		if o.Stdin == nil {
			return nil, -1, ErrNoStdin
		}
		return io.NopCloser(o.Stdin), -1, nil
	case KindFile:
		f, err := os.Open(d.raw)
		if err != nil {
			return nil, -1, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, -1, err
		}
		if fi.IsDir() {
			f.Close()
			return nil, -1, fmt.Errorf("%s is a directory", d.raw)
		}
		return f, fi.Size(), nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	var (
		rc   io.ReadCloser
		size int64
		err  error
	)
	if d.Kind == KindHTTP {
		rc, size, err = o.openHTTP(ctx, d)
	} else {
		rc, size, err = o.openObject(ctx, d)
	}
	if err != nil {
		cancel(nil)
		return nil, -1, &Error{URL: d.Name, Op: "open", Err: err, raw: d.raw}
	}
	idle := o.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	return newStream(ctx, rc, d, idle, cancel), size, nil
}

// Open opens the dataset for reading: its bytes, decompressed when it is
// gzip (Dataset.Gzip), and their size when known (-1 for compressed data,
// whose decompressed size is unknown, and for stdin).
func (o *Opener) Open(ctx context.Context, d *Dataset) (io.ReadCloser, int64, error) {
	rc, size, err := o.OpenRaw(ctx, d)
	if err != nil {
		return nil, -1, err
	}
	if !d.Gzip {
		return rc, size, nil
	}
	gz, err := Decompress(rc, d)
	return gz, -1, err
}

// Decompress returns the decompressed stream of a gzip dataset opened with
// OpenRaw (a spooled copy of it too); closing it closes rc. On error rc is
// closed.
func Decompress(rc io.ReadCloser, d *Dataset) (io.ReadCloser, error) {
	gz, err := gzip.NewReader(rc)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("%s: %w", d.Name, err)
	}
	return &gzipStream{Reader: gz, under: rc}, nil
}

type gzipStream struct {
	*gzip.Reader
	under io.Closer
}

// Close closes the decompressor and the stream under it.
func (g *gzipStream) Close() error {
	err := g.Reader.Close()
	if cerr := g.under.Close(); err == nil {
		err = cerr
	}
	return err
}

// openObject opens an object-storage dataset with o.Objects.
func (o *Opener) openObject(ctx context.Context, d *Dataset) (io.ReadCloser, int64, error) {
	if o.Objects == nil {
		return nil, -1, fmt.Errorf("%w: this program has no %s:// driver", ErrUnsupported, d.u.Scheme)
	}
	bucket := &url.URL{Scheme: strings.ToLower(d.u.Scheme), Host: d.u.Host, RawQuery: d.u.RawQuery}
	return o.Objects(ctx, bucket, strings.TrimPrefix(d.u.Path, "/"))
}
