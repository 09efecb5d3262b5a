package dataset

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/refonte-ai/refonte-batch/internal/defaults"
	"github.com/refonte-ai/refonte-batch/internal/jsonwire"
	"github.com/refonte-ai/refonte-batch/refonte"
)

const readBufferSize = 64 << 10

// Reader streams the rows of one dataset. It is not safe for concurrent use.
type Reader struct {
	name string
	opts Options
	src  *bufio.Reader
	lr   lineReader
	enc  rowEncoder
	dec  jsonwire.Decoder // object keys interned across rows
	err  error            // sticky: io.EOF or a fatal error
	init bool

	// decoded is set at the first record that decodes; held are the
	// undecodable records before it, then that record (see Next).
	decoded bool
	held    []heldRecord

	// obj is the JSON object of the current JSONL line (see Record).
	obj []byte

	// CSV state.
	cols      []column
	typeCol   int
	fieldBuf  []byte
	fieldEnds []int
	raw       []byte
	inQuote   bool
	quoteLine int64
}

type cellKind uint8

const (
	cellString cellKind = iota
	cellJSON
	cellInt
	cellBool
)

type column struct {
	header string   // as written, e.g. "geometries:json"
	param  string   // dotted param path, e.g. "metadata.source"
	path   []string // param split on dots
	kind   cellKind
}

// NewReader returns a Reader of the dataset r, whose name (e.g.
// "images.csv") prefixes fatal errors. Gzip input is detected by its magic
// bytes and decompressed. It fails only on invalid options; problems with
// the data are reported by Next.
func NewReader(r io.Reader, name string, opts Options) (*Reader, error) {
	switch opts.Format {
	case FormatCSV, FormatJSONL:
	default:
		return nil, fmt.Errorf("%w %q (want csv or jsonl)", ErrFormat, opts.Format)
	}
	if opts.TaskType != "" {
		t, err := refonte.ParseTaskType(string(opts.TaskType))
		if err != nil {
			return nil, err
		}
		opts.TaskType = t
	}
	for _, k := range []string{"type", refonte.ParamUniqueID} {
		if _, ok := opts.DefaultParams[k]; ok {
			return nil, fmt.Errorf("%w: the default params must not set %q", ErrOptions, k)
		}
	}
	opts.MaxLineBytes = defaults.Positive(opts.MaxLineBytes, DefaultMaxLineBytes)
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	opts.IDColumn = strings.TrimSpace(opts.IDColumn)
	// The map of a row gets room for the params enqueue adds (project,
	// batch, callback_url, instruction, unique_id).
	return &Reader{name: name, opts: opts, src: bufio.NewReaderSize(r, readBufferSize), typeCol: -1,
		dec: jsonwire.Decoder{InternKeys: true, ObjectSizeHint: 16}}, nil
}

// start detects gzip and the byte order mark.
func (r *Reader) start() error {
	br := r.src
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return r.lineError(1, err)
		}
		gz.Multistream(true)
		br = bufio.NewReaderSize(gz, readBufferSize)
	} else if err != nil && err != io.EOF {
		return r.lineError(1, err)
	}
	head, err := br.Peek(3)
	if err != nil && err != io.EOF {
		return r.lineError(1, err)
	}
	switch {
	case bytes.HasPrefix(head, []byte{0xEF, 0xBB, 0xBF}):
		br.Discard(3)
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}), bytes.HasPrefix(head, []byte{0xFE, 0xFF}):
		return r.lineError(1, fmt.Errorf("%w: the file starts with a UTF-16 byte order mark; convert it to UTF-8", ErrEncoding))
	}
	r.lr = lineReader{br: br, max: r.opts.MaxLineBytes}
	return nil
}

// Next returns the next row. Exactly one of these happens: a valid row (rej
// nil, err nil); an invalid row as a *Reject, after which reading continues;
// io.EOF at the end; or a fatal error (I/O, gzip corruption, unusable CSV
// header, a file that is not a dataset: ErrNotDataset), a *LineError,
// after which Next keeps returning it.
//
// Records that do not decode at all (invalid UTF-8, not JSON, over the line
// limit) at the start of the file are held back until a record that
// decodes, valid or not, shows the file is a dataset; they are then
// returned in order. If the first MaxLeadingUndecodable records, or all of
// them in a shorter file, do not decode, the first call of Next returns
// ErrNotDataset and none of them.
func (r *Reader) Next() (row Row, rej *Reject, err error) {
	if len(r.held) > 0 && r.decoded {
		return r.unhold()
	}
	if r.err != nil {
		return Row{}, nil, r.err
	}
	for {
		row, rej, err = r.next()
		if r.decoded {
			return row, rej, err
		}
		switch {
		case err != nil && len(r.held) > 0 && errors.Is(err, io.EOF):
			r.err = r.notDataset()
			return Row{}, nil, r.err
		case err != nil:
			r.held = nil
			return Row{}, nil, err
		case rej != nil && rej.undecodable:
			r.held = append(r.held, heldRecord{rej: rej})
			if len(r.held) >= MaxLeadingUndecodable {
				r.err = r.notDataset()
				return Row{}, nil, r.err
			}
			continue
		}
		r.decoded = true
		if len(r.held) == 0 {
			return row, rej, nil
		}
		r.held = append(r.held, heldRecord{row: row, rej: rej})
		return r.unhold()
	}
}

// next reads the next record of the file.
func (r *Reader) next() (row Row, rej *Reject, err error) {
	if r.err != nil {
		return Row{}, nil, r.err
	}
	if !r.init {
		r.init = true
		if err := r.start(); err != nil {
			r.err = err
			return Row{}, nil, err
		}
		if r.opts.Format == FormatCSV {
			if err := r.readHeader(); err != nil {
				r.err = err
				return Row{}, nil, err
			}
		}
	}
	if r.opts.Format == FormatCSV {
		row, rej, err = r.nextCSV()
	} else {
		row, rej, err = r.nextJSONL()
	}
	if err != nil {
		r.err = err
	}
	return row, rej, err
}

// fatal is a read error at the line after the last one read (io.EOF as is).
func (r *Reader) fatal(err error) error {
	if err == io.EOF {
		return err
	}
	return r.lineError(r.lr.n+1, err)
}

// lineError is a fatal error at a line of this dataset.
func (r *Reader) lineError(line int64, err error) error {
	return &LineError{Name: r.name, Line: line, Err: err}
}

// tooBig rejects a row whose task body is over the limit: size bytes, or
// at least size bytes when atLeast is "at least ".
func tooBig(line int64, raw []byte, size int, atLeast string, max int) *Reject {
	return reject(line, raw, "the task body is %s%d bytes, over the limit of %d bytes (-max-task-bytes); "+
		"split the row or move its bulk to an attachment URL", atLeast, size, max)
}

func reject(line int64, raw []byte, format string, args ...any) *Reject {
	return &Reject{Line: line, Error: fmt.Sprintf(format, args...), Raw: rawText(raw)}
}

func rawText(raw []byte) string {
	if len(raw) > RawLimit {
		raw = raw[:RawLimit]
	}
	if utf8.Valid(raw) {
		return string(raw)
	}
	return strings.ToValidUTF8(string(raw), "\uFFFD")
}

func (r *Reader) nextJSONL() (Row, *Reject, error) {
	for {
		line, tooLong, err := r.lr.next()
		if err != nil {
			return Row{}, nil, r.fatal(err)
		}
		n := r.lr.n
		if tooLong {
			return Row{}, undecodable(reject(n, line, "line is longer than %d bytes", r.opts.MaxLineBytes)), nil
		}
		t := bytes.TrimSpace(line)
		if len(t) == 0 {
			continue
		}
		r.obj = t
		if !utf8.Valid(t) {
			return Row{}, undecodable(reject(n, line, "invalid UTF-8 at byte %d", firstInvalid(line)+1)), nil
		}
		if t[0] != '{' {
			return Row{}, undecodable(reject(n, line, "not a JSON object: each line must be one object of params")), nil
		}
		m, err := r.dec.Object(t)
		if err != nil {
			return Row{}, undecodable(reject(n, line, "invalid JSON: %s", jsonError(err))), nil
		}
		row, rej := r.finish(n, m, line)
		return row, rej, nil
	}
}

func firstInvalid(b []byte) int {
	for i := 0; i < len(b); {
		c, size := utf8.DecodeRune(b[i:])
		if c == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return -1
}

func jsonError(err error) string {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return "cannot decode " + ute.Value
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// finish turns a row's params into a Row or a Reject: type, ID column,
// defaults, validation, unique_id and body.
func (r *Reader) finish(line int64, p map[string]any, raw []byte) (Row, *Reject) {
	params := refonte.TaskParams(p)
	typ := r.opts.TaskType
	if v, ok := params["type"]; ok {
		s, isString := v.(string)
		if !isString {
			return Row{}, reject(line, raw, "type: must be a string")
		}
		t, err := refonte.ParseTaskType(s)
		if err != nil {
			return Row{}, reject(line, raw, "type: unknown task type %q", s)
		}
		if typ != "" && t != typ {
			return Row{}, reject(line, raw, "type: the row says %q but the dataset's type is %q", t, typ)
		}
		typ = t
		delete(params, "type")
	} else if typ == "" {
		return Row{}, reject(line, raw, "type: is required (no task type was given for the dataset)")
	}

	if col := r.opts.IDColumn; col != "" {
		v, ok := lookup(params, col)
		if !ok {
			return Row{}, reject(line, raw, "%s: is required (it is the ID column)", col)
		}
		id, reason := idString(v)
		if reason != "" {
			return Row{}, reject(line, raw, "%s: %s", col, reason)
		}
		if !strings.Contains(col, ".") {
			delete(params, col)
		}
		params[refonte.ParamUniqueID] = id
	} else if v, ok := params[refonte.ParamUniqueID]; ok {
		s, isString := v.(string)
		if !isString {
			return Row{}, reject(line, raw, "unique_id: must be a string")
		}
		if _, reason := idString(s); reason != "" {
			return Row{}, reject(line, raw, "unique_id: %s", reason)
		}
	}

	r.fill(params)
	if err := refonte.ValidateTaskParams(typ, params); err != nil {
		return Row{}, reject(line, raw, "%s", strings.TrimPrefix(err.Error(), "refonte: "))
	}
	body, id, fp, err := r.enc.encode(params, typ)
	if err != nil {
		return Row{}, reject(line, raw, "cannot encode the params: %v", err)
	}
	if max := r.opts.MaxBodyBytes; max > 0 && len(body) > max {
		return Row{}, tooBig(line, raw, len(body), "", max)
	}
	params[refonte.ParamUniqueID] = id
	return Row{Line: line, Type: typ, UniqueID: id, Params: params, Body: body, Fingerprint: fp}, nil
}

// fill applies the option params then DefaultParams under the row's own.
func (r *Reader) fill(params refonte.TaskParams) {
	for _, kv := range [...]struct{ k, v string }{
		{refonte.ParamProject, r.opts.Project},
		{refonte.ParamBatch, r.opts.Batch},
		{refonte.ParamCallbackURL, r.opts.CallbackURL},
		{refonte.ParamInstruction, r.opts.Instruction},
	} {
		if kv.v == "" {
			continue
		}
		if _, ok := params[kv.k]; !ok {
			params[kv.k] = kv.v
		}
	}
	for k, dv := range r.opts.DefaultParams {
		rv, ok := params[k]
		dm, dIsMap := dv.(map[string]any)
		if !ok {
			if dIsMap {
				c := make(map[string]any, len(dm))
				for kk, vv := range dm {
					c[kk] = vv
				}
				dv = c
			}
			params[k] = dv
			continue
		}
		rm, rIsMap := rv.(map[string]any)
		if dIsMap && rIsMap {
			for kk, vv := range dm {
				if _, set := rm[kk]; !set {
					rm[kk] = vv
				}
			}
		}
	}
}

// lookup finds a top-level or dotted nested value.
func lookup(m map[string]any, path string) (any, bool) {
	for {
		head, rest, nested := strings.Cut(path, ".")
		v, ok := m[head]
		if !ok || !nested {
			return v, ok
		}
		if m, ok = v.(map[string]any); !ok {
			return nil, false
		}
		path = rest
	}
}

// idString converts an explicit ID to a string, or says what is wrong.
func idString(v any) (string, string) {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case float64:
		if v != float64(int64(v)) {
			return "", "must be a string or an integer"
		}
		s = strconv.FormatInt(int64(v), 10)
	default:
		return "", "must be a string or an integer"
	}
	switch {
	case strings.TrimSpace(s) == "":
		return "", "must not be empty"
	case len(s) > MaxUniqueIDBytes:
		return "", fmt.Sprintf("must be at most %d bytes, got %d", MaxUniqueIDBytes, len(s))
	}
	return s, ""
}
