package dataset

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A CSV record is parsed line by line with the quoting rules of RFC 4180
// (and encoding/csv without LazyQuotes): a quoted field may hold commas,
// doubled quotes and line breaks; a quote inside an unquoted field, or text
// after a closing quote, is an error. Unlike encoding/csv a quoting error
// rejects only its record: reading resumes at the next physical line.

// readRecord reads the next non-blank record into fieldBuf/fieldEnds and
// raw. It returns the record's first line and, for a malformed record, the
// reason; io.EOF at the end; or a read error.
func (r *Reader) readRecord() (start int64, problem string, err error) {
	r.fieldBuf = r.fieldBuf[:0]
	r.fieldEnds = r.fieldEnds[:0]
	r.raw = r.raw[:0]
	r.inQuote = false
	size := 0
	for {
		line, tooLong, err := r.lr.next()
		if err == io.EOF && start != 0 {
			return start, fmt.Sprintf("unterminated quoted field: the quote opened on line %d is never closed", r.quoteLine), nil
		}
		if err != nil {
			return 0, "", err
		}
		if start == 0 {
			if !tooLong && isBlank(line) {
				continue
			}
			start = r.lr.n
		} else if len(r.raw) < RawLimit {
			r.raw = append(r.raw, '\n')
		}
		if len(r.raw) < RawLimit {
			r.raw = append(r.raw, line[:min(len(line), RawLimit-len(r.raw))]...)
		}
		size += len(line) + 1
		if tooLong || size > r.opts.MaxLineBytes+1 {
			return start, fmt.Sprintf("record is longer than %d bytes", r.opts.MaxLineBytes), nil
		}
		done, problem := r.parseLine(line)
		if problem != "" || done {
			return start, problem, nil
		}
	}
}

// parseLine adds one physical line to the current record and reports
// whether the record is complete.
func (r *Reader) parseLine(line []byte) (done bool, problem string) {
	i := 0
	for {
		if !r.inQuote {
			if i < len(line) && line[i] == '"' {
				r.inQuote = true
				r.quoteLine = r.lr.n
				i++
			} else {
				j := bytes.IndexByte(line[i:], ',')
				end := len(line)
				if j >= 0 {
					end = i + j
				}
				field := line[i:end]
				if bytes.IndexByte(field, '"') >= 0 {
					return false, r.fieldName(len(r.fieldEnds)) + `: bare " in a non-quoted field (quote the field and double the quote: "")`
				}
				r.fieldBuf = append(r.fieldBuf, field...)
				r.fieldEnds = append(r.fieldEnds, len(r.fieldBuf))
				if j < 0 {
					return true, ""
				}
				i = end + 1
				continue
			}
		}
		for {
			j := bytes.IndexByte(line[i:], '"')
			if j < 0 {
				r.fieldBuf = append(r.fieldBuf, line[i:]...)
				r.fieldBuf = append(r.fieldBuf, '\n')
				return false, ""
			}
			r.fieldBuf = append(r.fieldBuf, line[i:i+j]...)
			i += j + 1
			if i < len(line) && line[i] == '"' {
				r.fieldBuf = append(r.fieldBuf, '"')
				i++
				continue
			}
			break
		}
		r.inQuote = false
		r.fieldEnds = append(r.fieldEnds, len(r.fieldBuf))
		if i == len(line) {
			return true, ""
		}
		if line[i] != ',' {
			return false, r.fieldName(len(r.fieldEnds)-1) + `: extraneous text after a closing quote`
		}
		i++
	}
}

// fieldName names the i-th field of a record: its header, or its position.
func (r *Reader) fieldName(i int) string {
	if i < len(r.cols) {
		return r.cols[i].header
	}
	return fmt.Sprintf("field %d", i+1)
}

func (r *Reader) field(i int) []byte {
	return r.fieldBuf[r.fieldStart(i):r.fieldEnds[i]]
}

func (r *Reader) fieldStart(i int) int {
	if i == 0 {
		return 0
	}
	return r.fieldEnds[i-1]
}

// readHeader reads and checks the header line.
func (r *Reader) readHeader() error {
	start, problem, err := r.readRecord()
	if err == io.EOF {
		return io.EOF
	}
	if err != nil {
		return r.fatal(err)
	}
	if problem != "" {
		return r.lineError(start, fmt.Errorf("%w: %s", ErrHeader, problem))
	}
	seen := make(map[string]string, len(r.fieldEnds))
	for i := range r.fieldEnds {
		f := r.field(i)
		if !utf8.Valid(f) {
			return r.lineError(start, fmt.Errorf("%w: column %d: %w: invalid UTF-8 in the name", ErrHeader, i+1, ErrEncoding))
		}
		c := column{header: strings.TrimSpace(string(f))}
		c.param = c.header
		if p, ok := strings.CutSuffix(c.param, ":json"); ok {
			c.param, c.kind = strings.TrimSpace(p), cellJSON
		}
		if c.param == "" {
			return r.lineError(start, fmt.Errorf("%w: column %d has no name", ErrHeader, i+1))
		}
		c.path = strings.Split(c.param, ".")
		for _, seg := range c.path {
			if seg == "" {
				return r.lineError(start, fmt.Errorf("%w: column %d %q has an empty name part", ErrHeader, i+1, c.header))
			}
		}
		if c.kind == cellString {
			switch c.param {
			case "priority":
				c.kind = cellInt
			case "clear_unique_id_on_error":
				c.kind = cellBool
			}
		}
		if prev, dup := seen[c.param]; dup {
			return r.lineError(start, fmt.Errorf("%w: columns %q and %q both set %q", ErrHeader, prev, c.header, c.param))
		}
		seen[c.param] = c.header
		if c.param == "type" {
			r.typeCol = i
		}
		r.cols = append(r.cols, c)
	}
	for _, c := range r.cols {
		for k := 1; k < len(c.path); k++ {
			prefix := strings.Join(c.path[:k], ".")
			if prev, ok := seen[prefix]; ok {
				return r.lineError(start, fmt.Errorf("%w: columns %q and %q conflict (%q is inside %q)", ErrHeader, prev, c.header, c.param, prefix))
			}
		}
	}
	if r.opts.TaskType == "" && r.typeCol < 0 {
		return r.lineError(start, fmt.Errorf("%w: no \"type\" column and no task type given for the dataset", ErrHeader))
	}
	return nil
}

func (r *Reader) nextCSV() (Row, *Reject, error) {
	start, problem, err := r.readRecord()
	if err != nil {
		return Row{}, nil, r.fatal(err)
	}
	if problem != "" {
		return Row{}, reject(start, r.raw, "%s", problem), nil
	}
	if n := len(r.fieldEnds); n != len(r.cols) {
		return Row{}, reject(start, r.raw, "the record has %d fields, the header has %d", n, len(r.cols)), nil
	}
	if !utf8.Valid(r.fieldBuf) {
		for i := range r.cols {
			if !utf8.Valid(r.field(i)) {
				return Row{}, undecodable(reject(start, r.raw, "%s: invalid UTF-8 in column %q", r.cols[i].param, r.cols[i].header)), nil
			}
		}
	}
	if max := r.opts.MaxBodyBytes; max > 0 {
		if floor := r.bodyFloor(); floor > max {
			return Row{}, tooBig(start, r.raw, floor, "at least ", max), nil
		}
	}
	params := make(map[string]any, len(r.cols)+6)
	// One string for all the cells; string cells are slices of it.
	cells := string(r.fieldBuf)
	for i := range r.cols {
		c := &r.cols[i]
		cell := r.field(i)
		if len(cell) == 0 {
			continue
		}
		var v any
		switch c.kind {
		case cellString:
			v = cells[r.fieldStart(i):r.fieldEnds[i]]
		case cellJSON:
			var err error
			if v, err = r.dec.Value(cell); err != nil {
				return Row{}, reject(start, r.raw, "%s: invalid JSON in column %q: %s", c.param, c.header, jsonError(err)), nil
			}
		case cellInt:
			n, err := strconv.ParseInt(strings.TrimSpace(string(cell)), 10, 64)
			if err != nil {
				return Row{}, reject(start, r.raw, "%s: must be an integer, got %q", c.param, truncate(string(cell), 80)), nil
			}
			v = float64(n)
		case cellBool:
			b, err := strconv.ParseBool(strings.TrimSpace(string(cell)))
			if err != nil {
				return Row{}, reject(start, r.raw, "%s: must be true or false, got %q", c.param, truncate(string(cell), 80)), nil
			}
			v = b
		}
		setPath(params, c.path, v)
	}
	row, rej := r.finish(start, params, r.raw)
	return row, rej, nil
}

// setPath sets a nested value; the header check guarantees that no column
// is inside another, so intermediate values are always maps made here.
// bodyFloor is a lower bound of the encoded body of the current record,
// from its cells alone: every non-empty cell (but the type and ID columns,
// which leave the params) becomes a distinct `"leaf":value,` entry, a
// string value quoted. It costs no allocation, so a record far over the
// body limit is refused before its params are built.
func (r *Reader) bodyFloor() int {
	n := 2
	for i := range r.cols {
		c := &r.cols[i]
		cell := len(r.field(i))
		if cell == 0 || i == r.typeCol || c.param == r.opts.IDColumn {
			continue
		}
		n += len(c.path[len(c.path)-1]) + 4 // quotes, colon, comma
		if c.kind == cellString {
			n += cell + 2
		} else {
			n++
		}
	}
	return n
}

func setPath(m map[string]any, path []string, v any) {
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = make(map[string]any, 4)
			m[k] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
