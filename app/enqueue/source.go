package enqueue

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/refonte-ai/refonte-batch/internal/datasrc"
	"github.com/refonte-ai/refonte-batch/internal/redact"
	"github.com/refonte-ai/refonte-batch/jobs/store"
)

// Every command that reads a dataset (submit, retry -dataset, results
// -join) opens it with openSource, on package datasrc: a file, stdin ("-"),
// an http(s) URL, or an object in S3, GCS or Azure (s3://, gs://,
// azblob://; the drivers come from Env.Objects). A second pass over stdin
// or a URL (the live counting pre-pass, a JSONL dataset joined as CSV)
// reads a spool written by the first pass (see spool): stdin cannot be
// read twice, and a URL read twice would cost its download (egress) twice
// and could change between the passes.

// source opens the dataset for one pass.
type source struct {
	// name names the dataset in messages and the run record: the absolute
	// path, "stdin", or the URL with its credentials redacted.
	name string
	// path is the name whose extension tells the format ("-" for stdin,
	// a URL's path without its query).
	path string
	// size is the byte size of what open returns (0 if unknown).
	size int64
	// open returns the dataset's bytes, decompressed when its name ends
	// in .gz.
	open func() (io.ReadCloser, error)
	// cleanup releases what the source holds: a stream opened but never
	// read, a spool file. It is never nil.
	cleanup func()
	// once says another open reads the data again from its origin: stdin
	// cannot, a URL downloads it again. A second pass spools (see spool).
	once bool
	// raw opens the stored bytes; decode (nil: none) decompresses them.
	raw    func() (io.ReadCloser, error)
	decode func(io.ReadCloser) (io.ReadCloser, error)
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// openSource prepares the dataset name for reading with o. A URL is opened
// at once, so that a wrong URL, a missing object or missing credentials
// fail before anything else (and its size is known); a file is checked.
// Nothing was read nor written on error; errors match ErrUsage (exit 2)
// but a transient failure to open a URL (datasrc.Transient: network, 5xx,
// throttling), which is worth running again (exit 1).
func openSource(ctx context.Context, name string, o *datasrc.Opener) (*source, error) {
	d, err := datasrc.Parse(name)
	if err != nil {
		return nil, usagef("dataset: %v", err)
	}
	s := &source{name: d.Name, path: d.Path, cleanup: func() {}}
	if d.Gzip {
		s.decode = func(rc io.ReadCloser) (io.ReadCloser, error) { return datasrc.Decompress(rc, d) }
	}
	s.raw = func() (io.ReadCloser, error) {
		rc, _, err := o.OpenRaw(ctx, d)
		return rc, err
	}
	switch d.Kind {
	case datasrc.KindStdin:
		if o.Stdin == nil {
			return nil, usagef("the dataset is stdin but no stdin is available")
		}
		s.path, s.once = "-", true
	case datasrc.KindFile:
		fi, err := os.Stat(name)
		if err != nil {
			return nil, usagef("dataset: %v", err)
		}
		if fi.IsDir() {
			return nil, usagef("dataset %s is a directory", name)
		}
		if !d.Gzip {
			s.size = fi.Size()
		}
	default:
		rc, size, err := o.OpenRaw(ctx, d)
		if datasrc.Transient(err) {
			// Exit 1, so that a scheduler retries; exit 2 would say that
			// only a change of command helps.
			return nil, fmt.Errorf("dataset: %w; nothing was written; run the same command again", err)
		}
		if err != nil {
			return nil, usagef("dataset: %v; nothing was written", err)
		}
		if !d.Gzip && size > 0 {
			s.size = size
		}
		s.once = true
		first := rc
		s.raw = func() (io.ReadCloser, error) {
			if rc := first; rc != nil {
				first = nil
				return rc, nil
			}
			rc, _, err := o.OpenRaw(ctx, d)
			return rc, err
		}
		s.cleanup = func() {
			if first != nil {
				first.Close()
				first = nil
			}
		}
	}
	s.open = func() (io.ReadCloser, error) { return s.decoded(s.raw()) }
	return s, nil
}

// decoded decompresses rc when the source needs it.
func (s *source) decoded(rc io.ReadCloser, err error) (io.ReadCloser, error) {
	if err != nil || s.decode == nil {
		return rc, err
	}
	return s.decode(rc)
}

// spool makes a source that can be read only once (stdin, a URL)
// re-readable: the first pass copies the stored bytes it reads (still
// compressed for a .gz URL) to a temporary file in os.TempDir(), which
// later passes read. The file is removed by cleanup. Other sources are
// returned as they are.
func spool(src *source) (*source, error) {
	if !src.once {
		return src, nil
	}
	f, err := os.CreateTemp("", "enqueue-spool-*")
	if err != nil {
		return nil, fmt.Errorf("spool %s for a second pass: %w", src.name, err)
	}
	first := true
	s := *src
	s.once = false
	s.cleanup = func() { src.cleanup(); f.Close(); os.Remove(f.Name()) }
	s.open = func() (io.ReadCloser, error) {
		if first {
			first = false
			in, err := src.raw()
			if err != nil {
				return nil, err
			}
			return s.decoded(struct {
				io.Reader
				io.Closer
			}{io.TeeReader(in, f), in}, nil)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		return s.decoded(io.NopCloser(f), nil)
	}
	return &s, nil
}

// runDataset names the dataset a command reads again for a run (retry,
// results -join): given (-dataset, "-" for stdin) when set, else the run's
// recorded dataset. A run that read stdin, or whose URL carried
// credentials (recorded redacted: they are never stored), needs -dataset:
// the error says so and matches ErrUsage.
func runDataset(run *store.Run, given string) (string, error) {
	if given != "" {
		return given, nil
	}
	switch name := run.Dataset; {
	case name == "" || name == stdinName || name == "-":
		return "", usagef("run %s read its dataset from stdin: pass it with -dataset FILE|URL (or -dataset - to pipe it)", run.ID)
	case datasrc.IsURL(name) && redact.HasSecrets(name):
		return "", usagef("run %s read %s, whose credentials are never stored (they show as %s): pass the URL again with -dataset URL",
			run.ID, name, redact.Marker)
	default:
		return name, nil
	}
}
