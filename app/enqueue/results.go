package enqueue

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/refonte-ai/refonte-batch/internal/datasrc"
	"github.com/refonte-ai/refonte-batch/jobs/dataset"
	"github.com/refonte-ai/refonte-batch/jobs/store"
)

// ResultsFormat is the output format of enqueue results (-format).
type ResultsFormat string

// The results formats.
const (
	// ResultsJSONL is one JSON object per row (the default).
	ResultsJSONL ResultsFormat = "jsonl"
	// ResultsCSV is RFC 4180 CSV with a header line.
	ResultsCSV ResultsFormat = "csv"
)

// ParseResultsFormat parses "jsonl" or "csv".
func ParseResultsFormat(s string) (ResultsFormat, error) {
	switch f := ResultsFormat(s); f {
	case ResultsJSONL, ResultsCSV:
		return f, nil
	}
	return "", usagef("-format %q: want jsonl or csv", s)
}

// StateExpired is the state results show for a row whose job record
// outlived the retention (-retention): its outcome is gone.
const StateExpired = "expired"

// MaxJoinColumns bounds the distinct flattened keys of a JSONL dataset
// written as CSV (-join -format csv): a dataset whose rows carry more is
// refused before anything is written (use -format jsonl).
const MaxJoinColumns = 10000

// The outcome columns of the CSV results, after the row's own columns.
var outcomeColumns = []string{"task_id", "state", "error", "response"}

// ResultsOptions say what enqueue results writes.
type ResultsOptions struct {
	// Format is the output format; "" means ResultsJSONL.
	Format ResultsFormat
	// Join writes every valid row's own fields next to its outcome, read
	// again from the dataset.
	Join bool
	// Dataset is the dataset -join reads: "" means the run's own, "-"
	// means Stdin.
	Dataset string
	// Stdin is read for Dataset "-".
	Stdin io.Reader
	// Objects opens s3://, gs:// and azblob:// datasets (cmd/enqueue
	// passes cloud.Open); nil refuses them.
	Objects datasrc.ObjectOpener
}

// ErrRowChanged reports a dataset that no longer holds, at a line of
// the run, the row enqueued from it (see RowChangedError).
var ErrRowChanged = errors.New("the dataset changed since enqueue")

// RowChangedError says where a re-read dataset differs from the run:
// File and Line, and what is different there. It matches
// ErrRowChanged.
type RowChangedError struct {
	File string
	Line int64
	// Reason says what differs, e.g. `its unique_id is "b", the run's is "a"`.
	Reason string
}

// Error names the file, the line and the fix.
func (e *RowChangedError) Error() string {
	return fmt.Sprintf("%s:%d: %s: %v; pass the dataset the run was enqueued from with -dataset", e.File, e.Line, e.Reason, ErrRowChanged)
}

// Unwrap returns ErrRowChanged.
func (e *RowChangedError) Unwrap() error { return ErrRowChanged }

// newResultLine is a row's outcome as results print it: the job's state,
// task, error and response, or StateExpired when the job record is gone.
func newResultLine(row store.RunRow, job *store.Job) ResultLine {
	l := ResultLine{Line: row.Line, UniqueID: row.UniqueID, State: StateExpired}
	if job != nil {
		l.State, l.TaskID, l.Error = string(job.State), job.TaskID, job.Error
		if len(job.Response) > 0 {
			l.Response = job.Response
		}
	}
	return l
}

// JoinedLine is one line of `enqueue results -join` (JSONL): a valid row's
// own fields next to its outcome.
type JoinedLine struct {
	Line int64 `json:"line"`
	// Row is the row as the dataset holds it: a JSONL line's object, or a
	// CSV record's cells as strings keyed by the header as written.
	Row      json.RawMessage `json:"row"`
	UniqueID string          `json:"unique_id"`
	State    string          `json:"state"`
	TaskID   string          `json:"task_id"`
	Response json.RawMessage `json:"response"`
	Error    string          `json:"error"`
}

// WriteResults writes the run's results to w in dataset order, valid rows
// only, and returns the number of rows written. Without Join it is Results
// (JSONL) or, as CSV, the columns line, unique_id, task_id, state, error,
// response. With Join see WriteJoined.
//
// Errors: ErrUsage-matching ones before anything was written (a dataset
// that cannot be opened or read); store.ErrRunNotFound; a
// *RowChangedError, after the rows before it were written.
func WriteResults(ctx context.Context, st *store.Store, runID string, opts ResultsOptions, w io.Writer) (int64, error) {
	if opts.Join {
		return WriteJoined(ctx, st, runID, opts, w)
	}
	if opts.Format != ResultsCSV {
		return Results(ctx, st, runID, w)
	}
	if _, err := st.GetRun(ctx, runID); err != nil {
		return 0, fmt.Errorf("run %s: %w", runID, err)
	}
	enc := newCSVResults(w)
	if err := enc.header([]string{"line", "unique_id"}); err != nil {
		return 0, err
	}
	var n int64
	lead := make([]string, 2)
	err := st.RunRows(ctx, runID, func(row store.RunRow, job *store.Job) error {
		lead[0], lead[1] = strconv.FormatInt(row.Line, 10), row.UniqueID
		n++
		return enc.row(lead, newResultLine(row, job))
	})
	return n, enc.flush(err)
}

// WriteJoined writes every valid row of the run with its own fields, read
// again from the dataset (opts.Dataset, else the run's file) and matched by
// line, streamed with flat memory. ResultsJSONL writes JoinedLine objects;
// ResultsCSV the row's columns (the CSV header as written, or a JSONL
// dataset's flattened keys: see flattenJSON) followed by task_id, state,
// error and response (its JSON, empty when none), cells guarded against
// formula injection (see csvSafe). A JSONL dataset written as CSV is read
// twice: a first pass collects its columns.
//
// The row at each line of the run must still be there: when the run
// recorded how it read the dataset (store.ReadSpec), the row read again
// must have the run's unique_id and, while the job record is kept, the same
// content; else WriteJoined stops with a *RowChangedError naming the
// file and the line (rows before it are written).
func WriteJoined(ctx context.Context, st *store.Store, runID string, opts ResultsOptions, w io.Writer) (int64, error) {
	run, err := st.GetRun(ctx, runID)
	if err != nil {
		return 0, fmt.Errorf("run %s: %w", runID, err)
	}
	src, dopts, err := joinSource(ctx, run, opts)
	if err != nil {
		return 0, err
	}
	defer func() { src.cleanup() }()
	var columns []string
	if opts.Format == ResultsCSV && dopts.Format == dataset.FormatJSONL {
		if columns, err = jsonlColumns(ctx, src, dopts); err != nil {
			return 0, err
		}
	}
	j, err := newJoiner(src, dopts, run.ReadSpec != nil)
	if err != nil {
		return 0, err
	}
	defer j.close()
	if opts.Format == ResultsCSV {
		if dopts.Format == dataset.FormatCSV {
			columns = j.rd.Columns()
		}
		return j.writeCSV(ctx, st, runID, columns, w)
	}
	return j.writeJSONL(ctx, st, runID, w)
}

// JoinReadable reports whether WriteJoined can read the run's own dataset
// from this process without -dataset: a regular file at the recorded path
// (the console shows its joined CSV download only then). A run read from
// stdin, or whose file is not here (enqueue ran on another machine), is
// not; nor, for now, a URL dataset (the worker serving the console has no
// object-storage drivers).
func JoinReadable(run *store.Run) bool {
	if run.Dataset == "" || run.Dataset == stdinName || run.Dataset == "-" || datasrc.IsURL(run.Dataset) {
		return false
	}
	fi, err := os.Stat(run.Dataset)
	return err == nil && fi.Mode().IsRegular()
}

// joinSource opens the dataset a join reads (see runDataset and
// openSource, the submit's opener) and returns it with the reader options
// that rebuild the run's rows.
func joinSource(ctx context.Context, run *store.Run, opts ResultsOptions) (*source, dataset.Options, error) {
	name, err := runDataset(run, opts.Dataset)
	if err != nil {
		return nil, dataset.Options{}, err
	}
	src, err := openSource(ctx, name, &datasrc.Opener{Stdin: opts.Stdin, Objects: opts.Objects})
	if err != nil {
		return nil, dataset.Options{}, err
	}
	// No body size limit: a row is read, not submitted.
	dopts, err := RunDatasetOptions(run, src.path, dataset.Options{MaxBodyBytes: -1})
	if err != nil {
		src.cleanup()
		return nil, dopts, err
	}
	if opts.Format == ResultsCSV && dopts.Format == dataset.FormatJSONL {
		// Two passes (columns, then rows): spool stdin or a URL like a
		// live submit.
		spooled, err := spool(src)
		if err != nil {
			src.cleanup()
			return nil, dopts, err
		}
		src = spooled
	}
	return src, dopts, nil
}

// RunDatasetOptions returns the reader options that read the run's
// dataset at path into the rows the run was enqueued with: o's non-zero
// fields, else the run's type, project, batch and callback URL and its
// recorded store.ReadSpec. The format is o's, else the one path's
// extension names, else the recorded one.
func RunDatasetOptions(run *store.Run, path string, o dataset.Options) (dataset.Options, error) {
	if o.TaskType == "" {
		o.TaskType = run.Type
	}
	if o.Project == "" {
		o.Project = run.Project
	}
	if o.Batch == "" {
		o.Batch = run.Batch
	}
	if o.CallbackURL == "" {
		o.CallbackURL = run.CallbackURL
	}
	spec := run.ReadSpec
	if spec == nil {
		spec = &store.ReadSpec{}
	}
	if o.IDColumn == "" {
		o.IDColumn = spec.IDColumn
	}
	if o.Instruction == "" {
		o.Instruction = spec.Instruction
	}
	if o.DefaultParams == nil && len(spec.Params) > 0 {
		if err := json.Unmarshal(spec.Params, &o.DefaultParams); err != nil {
			return o, fmt.Errorf("run %s: its recorded -params: %w", run.ID, err)
		}
	}
	if o.Format == "" {
		f, err := dataset.DetectFormat(path)
		if err != nil && spec.Format == "" {
			return o, usagef("%v", err)
		}
		if err != nil {
			f = dataset.Format(spec.Format)
		}
		o.Format = f
	}
	return o, nil
}

// jsonlColumns is the first pass over a JSONL dataset written as CSV: the
// flattened keys of its valid rows, in order of first appearance.
func jsonlColumns(ctx context.Context, src *source, dopts dataset.Options) ([]string, error) {
	in, err := src.open()
	if err != nil {
		return nil, usagef("open dataset: %v", err)
	}
	defer in.Close()
	rd, err := dataset.NewReader(in, src.name, dopts)
	if err != nil {
		return nil, usagef("dataset: %v", err)
	}
	var columns []string
	seen := map[string]bool{}
	var rec [][]byte
	for n := 0; ; n++ {
		if n&1023 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		_, rej, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return columns, nil
		}
		if err != nil {
			return nil, usagef("dataset: %v", err)
		}
		if rej != nil {
			continue
		}
		rec = rd.Record(rec)
		err = flattenJSON(rec[0], func(key string, _ []byte) {
			if !seen[key] {
				seen[key] = true
				columns = append(columns, key)
			}
		})
		if err != nil {
			return nil, err
		}
		if len(columns) > MaxJoinColumns {
			return nil, usagef("%s: the rows have more than %d distinct keys (flattened): too many CSV columns; use -format jsonl", src.name, MaxJoinColumns)
		}
	}
}

// joiner walks the dataset alongside the run's rows (both in line order).
type joiner struct {
	in     io.Closer
	name   string
	rd     *dataset.Reader
	verify bool
	// The record read last: a valid row (rec holds its source) or a reject.
	row  dataset.Row
	rej  *dataset.Reject
	line int64 // its line; 0 before the first, -1 at the end
	last int64 // the dataset's last record line seen
	rec  [][]byte
}

// newJoiner opens the dataset and reads its first record, so that a CSV
// header is known before anything is written.
func newJoiner(src *source, dopts dataset.Options, verify bool) (*joiner, error) {
	in, err := src.open()
	if err != nil {
		return nil, usagef("open dataset: %v", err)
	}
	rd, err := dataset.NewReader(in, src.name, dopts)
	if err != nil {
		in.Close()
		return nil, usagef("dataset: %v", err)
	}
	j := &joiner{in: in, name: src.name, rd: rd, verify: verify}
	if err := j.next(); err != nil {
		in.Close()
		return nil, usagef("dataset: %v", err)
	}
	return j, nil
}

func (j *joiner) close() { j.in.Close() }

// next reads the next record.
func (j *joiner) next() error {
	row, rej, err := j.rd.Next()
	switch {
	case errors.Is(err, io.EOF):
		j.line = -1
		return nil
	case err != nil:
		return err
	}
	j.row, j.rej = row, rej
	if rej != nil {
		j.line = rej.Line
	} else {
		j.line = row.Line
		j.rec = j.rd.Record(j.rec)
	}
	j.last = j.line
	return nil
}

// at returns the source record of the run's row at line, or a
// *RowChangedError.
func (j *joiner) at(row store.RunRow, job *store.Job) ([][]byte, error) {
	for j.line != -1 && j.line < row.Line {
		if err := j.next(); err != nil {
			return nil, err
		}
	}
	changed := func(format string, args ...any) error {
		return &RowChangedError{File: j.name, Line: row.Line, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case j.line == -1:
		return nil, changed("no row starts at this line (the dataset's last record is at line %d)", j.last)
	case j.line != row.Line:
		return nil, changed("no row starts at this line (the next one is at line %d)", j.line)
	case j.rej != nil:
		return nil, changed("the row is invalid now (%s)", j.rej.Error)
	case j.verify && j.row.UniqueID != row.UniqueID:
		return nil, changed("the row's unique_id is %q, the run's is %q", j.row.UniqueID, row.UniqueID)
	case j.verify && job != nil && job.Fingerprint != "" && j.row.Fingerprint != job.Fingerprint:
		return nil, changed("the row has other content than the one enqueued under unique_id %q", row.UniqueID)
	}
	return j.rec, nil
}

// writeJSONL writes JoinedLine objects.
func (j *joiner) writeJSONL(ctx context.Context, st *store.Store, runID string, w io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	columns := j.rd.Columns()
	var obj []byte
	var n int64
	err := st.RunRows(ctx, runID, func(row store.RunRow, job *store.Job) error {
		rec, err := j.at(row, job)
		if err != nil {
			return err
		}
		l := newResultLine(row, job)
		out := JoinedLine{Line: l.Line, UniqueID: l.UniqueID, State: l.State, TaskID: l.TaskID, Response: l.Response, Error: l.Error}
		if columns == nil {
			out.Row = rec[0]
		} else {
			obj = appendCSVObject(obj[:0], columns, rec)
			out.Row = obj
		}
		n++
		return enc.Encode(out)
	})
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	return n, err
}

// appendCSVObject appends a CSV record as a JSON object of its cells
// (strings) keyed by the header's names, in header order.
func appendCSVObject(b []byte, columns []string, rec [][]byte) []byte {
	b = append(b, '{')
	for i, c := range columns {
		if i > 0 {
			b = append(b, ',')
		}
		k, _ := json.Marshal(c) // strings always encode
		v, _ := json.Marshal(string(rec[i]))
		b = append(b, k...)
		b = append(b, ':')
		b = append(b, v...)
	}
	return append(b, '}')
}

// writeCSV writes the row's columns then the outcome columns.
func (j *joiner) writeCSV(ctx context.Context, st *store.Store, runID string, columns []string, w io.Writer) (int64, error) {
	enc := newCSVResults(w)
	if err := enc.header(columns); err != nil {
		return 0, err
	}
	flat := j.rd.Columns() == nil
	index := make(map[string]int, len(columns))
	for i, c := range columns {
		index[c] = i
	}
	lead := make([]string, len(columns))
	var n int64
	err := st.RunRows(ctx, runID, func(row store.RunRow, job *store.Job) error {
		rec, err := j.at(row, job)
		if err != nil {
			return err
		}
		if flat {
			clear(lead)
			err = flattenJSON(rec[0], func(key string, val []byte) {
				if i, ok := index[key]; ok {
					lead[i] = jsonCell(val)
				}
			})
			if err != nil {
				return fmt.Errorf("%s:%d: %w", j.name, row.Line, err)
			}
		} else {
			for i := range lead {
				lead[i] = string(rec[i])
			}
		}
		n++
		return enc.row(lead, newResultLine(row, job))
	})
	return n, enc.flush(err)
}

// jsonCell is the CSV cell of a flattened JSON leaf: a string's text, a
// null's empty cell, any other value's compact JSON.
func jsonCell(val []byte) string {
	switch val[0] {
	case '"':
		var s string
		_ = json.Unmarshal(val, &s) // the decoder checked it
		return s
	case 'n':
		return ""
	case '[', '{':
		var b bytes.Buffer
		if json.Compact(&b, val) == nil {
			return b.String()
		}
	}
	return string(val)
}

// csvResults writes results as CSV: lead cells then the outcome columns.
type csvResults struct {
	bw    *bufio.Writer
	w     *csv.Writer
	cells []string
	buf   bytes.Buffer
}

func newCSVResults(out io.Writer) *csvResults {
	bw := bufio.NewWriterSize(out, 64<<10)
	w := csv.NewWriter(bw)
	w.UseCRLF = true // RFC 4180; encoding/csv reads the cells back unchanged
	return &csvResults{bw: bw, w: w}
}

// header writes the header line: lead names then the outcome columns.
func (c *csvResults) header(lead []string) error {
	c.cells = append(c.cells[:0], lead...)
	c.cells = append(c.cells, outcomeColumns...)
	for i := range c.cells {
		c.cells[i] = csvSafe(c.cells[i])
	}
	return c.w.Write(c.cells)
}

// row writes one row: lead cells then the outcome (the response as its
// JSON, empty when there is none).
func (c *csvResults) row(lead []string, l ResultLine) error {
	c.cells = append(c.cells[:0], lead...)
	resp := ""
	if len(l.Response) > 0 {
		c.buf.Reset()
		if json.Compact(&c.buf, l.Response) == nil {
			resp = c.buf.String()
		} else {
			resp = string(l.Response)
		}
	}
	c.cells = append(c.cells, l.TaskID, l.State, l.Error, resp)
	for i := range c.cells {
		c.cells[i] = csvSafe(c.cells[i])
	}
	return c.w.Write(c.cells)
}

// flush flushes the output and returns err, else the first write error.
func (c *csvResults) flush(err error) error {
	c.w.Flush()
	if werr := c.w.Error(); err == nil {
		err = werr
	}
	if ferr := c.bw.Flush(); err == nil {
		err = ferr
	}
	return err
}

// csvSafe guards a cell against formula injection when the CSV is opened
// in a spreadsheet (the OWASP rule): a cell starting with =, +, -, @, a tab
// or a carriage return gets a leading single quote, unless it is a number
// ("-12.5" stays a number). The rows and the API's messages come from
// outside, and the file is meant for spreadsheets; -format jsonl is the
// lossless format for programs.
func csvSafe(s string) string {
	if s == "" || !strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return s
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return s
	}
	return "'" + s
}
