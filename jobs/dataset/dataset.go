package dataset

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/refonte-ai/refonte-batch/internal/jsonwire"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// Format is the syntax of a dataset file.
type Format string

// The dataset formats.
const (
	// FormatCSV is comma-separated values with a header line naming the params.
	FormatCSV Format = "csv"
	// FormatJSONL is one JSON object of params per line (also called NDJSON).
	FormatJSONL Format = "jsonl"
)

// Limits and defaults.
const (
	// DefaultMaxLineBytes is the default longest line (JSONL) or record (CSV)
	// accepted: 10 MiB. Longer ones are rejected and reading continues.
	DefaultMaxLineBytes = 10 << 20
	// DefaultMaxBodyBytes is the default largest encoded task body: 4 MiB,
	// a create request the API accepts with room to spare (its limit is not
	// published; the sandbox accepts 8 MiB) and what bounds enqueue's
	// memory (write batches are capped by it too).
	DefaultMaxBodyBytes = 4 << 20
	// MaxUniqueIDBytes is the longest unique_id accepted from a row or an
	// ID column.
	MaxUniqueIDBytes = 255
	// RawLimit is how many bytes of a rejected record Reject.Raw keeps.
	RawLimit = 4 << 10
	// UniqueIDPrefix starts every unique_id computed by UniqueID; the digit
	// is the version of the hashing scheme.
	UniqueIDPrefix = "rb1_"
)

// ErrFormat reports a dataset whose format cannot be determined or is not
// supported.
var ErrFormat = errors.New("dataset: unknown format")

// ErrOptions reports invalid Options.
var ErrOptions = errors.New("dataset: invalid options")

// ErrHeader reports an unusable CSV header (missing, duplicate or
// conflicting names); it stops reading.
var ErrHeader = errors.New("dataset: bad CSV header")

// ErrEncoding reports a file that is not UTF-8 (for example UTF-16 with a
// byte order mark); it stops reading.
var ErrEncoding = errors.New("dataset: not UTF-8")

// LineError is a fatal error of a Reader (I/O, gzip corruption, a UTF-16
// file, an unusable CSV header): the dataset and the line it stopped at
// travel with the cause, for errors.As. Its text is "name:line: cause".
type LineError struct {
	// Name is the dataset's name as given to NewReader.
	Name string
	// Line is the 1-based line where reading stopped: the first line whose
	// row was not returned.
	Line int64
	// Err is the cause (it may match ErrHeader, ErrEncoding, an I/O error…).
	Err error
}

// Error returns "name:line: cause".
func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.Name, e.Line, e.Err) }

// Unwrap returns the cause.
func (e *LineError) Unwrap() error { return e.Err }

// ErrNotDataset reports a file none of whose first records decodes (up to
// MaxLeadingUndecodable of them: an image, an archive, UTF-16 text, CSV
// named .jsonl): it is not a dataset of its format, so reading stops
// before anything is written.
var ErrNotDataset = errors.New("dataset: not a dataset")

// ParseFormat parses "csv" or "jsonl" (also "ndjson"), case-insensitively.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "csv":
		return FormatCSV, nil
	case "jsonl", "ndjson":
		return FormatJSONL, nil
	}
	return "", fmt.Errorf("%w %q (want csv or jsonl)", ErrFormat, s)
}

// DetectFormat returns the format named by a path's extension: .csv, .jsonl
// or .ndjson, optionally followed by .gz. Stdin ("-") has no extension, so it
// fails with an error saying -format is required.
func DetectFormat(path string) (Format, error) {
	if path == "-" {
		return "", fmt.Errorf("%w: -format is required for stdin", ErrFormat)
	}
	base := strings.ToLower(filepath.Base(path))
	base = strings.TrimSuffix(base, ".gz")
	switch filepath.Ext(base) {
	case ".csv":
		return FormatCSV, nil
	case ".jsonl", ".ndjson":
		return FormatJSONL, nil
	}
	return "", fmt.Errorf("%w: cannot tell the format of %q from its extension (want .csv, .jsonl or .ndjson, optionally .gz); use -format", ErrFormat, path)
}

// OpenFile opens a dataset: "-" is stdin (closing it does not close
// os.Stdin), a name ending in .gz is decompressed. NewReader also detects
// gzip by its magic bytes, so either may be used on a compressed file.
func OpenFile(path string) (io.ReadCloser, error) {
	if path == "-" {
		return io.NopCloser(os.Stdin), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(strings.ToLower(path), ".gz") {
		return f, nil
	}
	gz, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &gzipFile{Reader: gz, f: f}, nil
}

type gzipFile struct {
	*gzip.Reader
	f *os.File
}

func (g *gzipFile) Close() error {
	err := g.Reader.Close()
	if cerr := g.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Options says how rows become task creation bodies. The zero value reads
// rows that each carry a "type", with no defaults and a 10 MiB line limit;
// Format must be set.
type Options struct {
	// Format is the dataset's syntax (see DetectFormat).
	Format Format
	// TaskType is the type of every row; "" means each row names its own in
	// a "type" column or field.
	TaskType refonte.TaskType
	// Project, Batch, CallbackURL and Instruction fill the params of the same
	// name when a row does not set them.
	Project, Batch, CallbackURL, Instruction string
	// DefaultParams are params under every row (not "type" nor "unique_id",
	// which NewReader refuses): the row's values win, and
	// nested objects (metadata…) are merged one level deep. The map is only
	// read.
	DefaultParams map[string]any
	// IDColumn names the column or field holding each row's unique_id;
	// "" means the row's own unique_id or else UniqueID's hash.
	IDColumn string
	// MaxLineBytes is the longest JSONL line or CSV record; 0 means
	// DefaultMaxLineBytes.
	MaxLineBytes int
	// MaxBodyBytes is the largest encoded task body (Row.Body) of a valid
	// row; a bigger row is rejected with its size. 0 means
	// DefaultMaxBodyBytes, negative no limit. A CSV record whose cells alone
	// exceed it is rejected before its params are built, so a very wide row
	// costs no more memory than its line.
	MaxBodyBytes int
}

// Row is one valid dataset row. Params and Body are fresh for every row and
// the caller may keep them, but Params should be treated as read-only: values
// taken from Options.DefaultParams (below the first level) are shared
// between rows.
type Row struct {
	// Line is the 1-based physical line where the record starts.
	Line int64
	// Type is the row's task type.
	Type refonte.TaskType
	// UniqueID is the row's unique_id, also present in Params.
	UniqueID string
	// Params is the full creation body: the row's params, defaults,
	// project/batch/callback_url/instruction and unique_id.
	Params refonte.TaskParams
	// Body is Params as compact JSON with sorted keys, byte for byte what
	// json.Marshal(Params) gives. It is a fresh slice for every row.
	Body []byte
	// Fingerprint identifies the row's content: 32 hex digits of the
	// SHA-256 of what UniqueID hashes (project, type and the params but
	// unique_id and callback_url), whether the unique_id is the row's own
	// or derived. Two rows with one unique_id and different fingerprints
	// are different tasks under one ID.
	Fingerprint string
}

// Reject is an invalid row: where it starts, why, and its text.
type Reject struct {
	// Line is the 1-based physical line where the record starts.
	Line int64 `json:"line"`
	// Error names the field and the reason, e.g. "geometries: is required"
	// or `attachment: must be an http(s) URL, got "ftp://x"`.
	Error string `json:"error"`
	// Raw is the record's original text, at most RawLimit bytes, with
	// invalid UTF-8 replaced by U+FFFD.
	Raw string `json:"raw"`

	// undecodable marks a record that is not text of the dataset's format
	// at all (invalid UTF-8, not JSON, a line over the limit): see
	// MaxLeadingUndecodable.
	undecodable bool
}

// String returns "line N: error".
func (r *Reject) String() string { return fmt.Sprintf("line %d: %s", r.Line, r.Error) }

// UniqueID returns the content-derived unique_id of a task: UniqueIDPrefix
// followed by the first 32 hex digits (128 bits) of the SHA-256 of
// "project NUL type NUL canonical-JSON", where the canonical JSON is that of
// params without unique_id and callback_url (operational, not content). The canonical JSON is what
// json.Marshal gives for the map: compact, keys sorted at every level. A row
// read from CSV or JSONL gets the same ID when its values have the same JSON
// types (CSV cells are strings unless ":json", priority or
// clear_unique_id_on_error).
func UniqueID(project string, typ refonte.TaskType, params refonte.TaskParams) string {
	b := make([]byte, 0, 512)
	b = append(b, project...)
	b = append(b, 0)
	b = append(b, typ...)
	b = append(b, 0)
	b, err := jsonwire.AppendObject(b, params, refonte.ParamUniqueID, refonte.ParamCallbackURL)
	if err != nil {
		// A value encoding/json cannot encode either (NaN, a channel…):
		// hash its fmt text so that the result stays deterministic.
		b = fmt.Appendf(b[:0], "%s\x00%s\x00%v", project, typ, map[string]any(params))
	}
	return sumID(b)
}

// sumID hashes "project NUL type NUL canonical-JSON" into a unique_id.
func sumID(b []byte) string { return UniqueIDPrefix + fingerprint(b) }

// fingerprint is the first 32 hex digits of the SHA-256 of "project NUL
// type NUL canonical-JSON" (see Row.Fingerprint).
func fingerprint(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
