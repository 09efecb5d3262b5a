package enqueue

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/internal/datasrc"
)

// Output files of a submit. enqueue never needs to write beside the
// dataset: its folder may be a read-only mount (a Kubernetes volume, a
// compose bind mount).
//
//   - -rejects FILE names the rejects file exactly.
//   - -out-dir DIR puts the rejects file (NAME.rejects.jsonl, NAME being the
//     dataset's file name — a URL's last path element, stdin.rejects.jsonl
//     for stdin) and the -dev results file (NAME.results.jsonl) in DIR,
//     created if missing.
//   - Without them: beside the dataset when its folder is writable, else (and
//     for stdin and URLs, which have no folder) in the current directory.
//
// Every place an output may go is checked before anything is enqueued: one
// that cannot be written is a usage error (exit 2, nothing written), never
// a failure at the end of a run.

// outputs resolves where the rejects file (and with -dev the results file)
// go, and checks that each can be written. It runs before anything is
// written to Redis; it is idempotent. note, if not nil, is told when the
// dataset's folder is not writable and the current directory is used.
func (c *Config) resolveOutputs(note func(msg string)) error {
	if c.outputsResolved {
		return nil
	}
	name := datasetBase(c.Dataset)
	needDir := !c.rejectsSet || c.Dev
	if needDir {
		dir, err := c.outDir(note)
		if err != nil {
			return err
		}
		if !c.rejectsSet {
			c.Rejects = filepath.Join(dir, name+defaultRejectsE)
		}
		c.Results = filepath.Join(dir, name+defaultResultsE)
	}
	if c.rejectsSet {
		if err := writable(c.Rejects); err != nil {
			return usagef("-rejects %s cannot be written: %v; nothing was written", c.Rejects, err)
		}
	}
	c.outputsResolved = true
	return nil
}

// outDir returns the folder of the default outputs (see resolveOutputs).
func (c *Config) outDir(note func(string)) (string, error) {
	if c.OutDir != "" {
		if err := os.MkdirAll(c.OutDir, 0o755); err != nil {
			return "", usagef("-out-dir %s: %v; nothing was written", c.OutDir, err)
		}
		if err := probeDir(c.OutDir); err != nil {
			return "", usagef("-out-dir %s is not writable: %v; nothing was written", c.OutDir, err)
		}
		return c.OutDir, nil
	}
	var dataErr error
	dir := datasetDir(c.Dataset)
	if dir != "" {
		if dataErr = probeDir(dir); dataErr == nil {
			return dir, nil
		}
	}
	cwdErr := probeDir(".")
	switch {
	case cwdErr == nil && dataErr != nil:
		if note != nil {
			note(fmt.Sprintf("the dataset's folder %s is not writable (%v): outputs go to the current directory (set -out-dir to choose)",
				dir, dataErr))
		}
		return ".", nil
	case cwdErr == nil:
		return ".", nil
	case dataErr != nil:
		return "", usagef("no writable folder for the rejects file: the dataset's folder %s (%v) and the current directory (%v); "+
			"set -out-dir DIR or -rejects FILE; nothing was written", dir, dataErr, cwdErr)
	}
	return "", usagef("no writable folder for the rejects file of %s: the current directory (%v); "+
		"set -out-dir DIR or -rejects FILE; nothing was written", datasetKind(c.Dataset), cwdErr)
}

// datasetBase is the file name outputs are named after: the dataset's
// file name, a URL's last path element, "stdin" for stdin.
func datasetBase(name string) string {
	if d, err := datasrc.Parse(name); err == nil {
		return d.Base
	}
	return filepath.Base(name)
}

// datasetDir is the folder of a dataset file, where outputs may go beside
// it; "" for stdin and URLs, which have none.
func datasetDir(name string) string {
	if d, err := datasrc.Parse(name); err == nil {
		return d.Dir()
	}
	return ""
}

// datasetKind names a dataset without a folder, for messages.
func datasetKind(name string) string {
	if datasrc.IsURL(name) {
		return "a URL dataset"
	}
	return "stdin"
}

// probeDir checks that a file can be created (and removed) in dir.
func probeDir(dir string) error {
	f, err := os.CreateTemp(dir, ".enqueue-probe-*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return pe.Err
		}
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// writable checks that path can be written: an existing file is opened for
// writing (not truncated), else a file can be created in its folder.
func writable(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err == nil {
		return f.Close()
	}
	if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return probeDir(filepath.Dir(path))
}

// outputNote logs resolveOutputs' fallback note as a warning.
func outputNote(log *zap.Logger) func(string) {
	return func(msg string) { log.Warn(msg) }
}
