package dataset

// The source text of a record, for callers that show a row as the dataset
// holds it (enqueue results -join) rather than as the task params it
// becomes.

// Columns returns the CSV header's column names as written (surrounding
// spaces trimmed, a ":json" suffix kept), in file order; nil for JSONL or
// before the first call of Next. The slice is fresh.
func (r *Reader) Columns() []string {
	if r.opts.Format != FormatCSV || len(r.cols) == 0 {
		return nil
	}
	names := make([]string, len(r.cols))
	for i := range r.cols {
		names[i] = r.cols[i].header
	}
	return names
}

// Record appends to dst[:0] the source text of the valid row Next last
// returned and returns it; the slices are valid until the next call of
// Next (a Reject carries its own text in Raw). For CSV, one element per
// column of Columns: the cell's text, unquoted (an empty cell is empty).
// For JSONL, one element: the line's JSON object, surrounding spaces
// trimmed. Empty before the first row and after the end.
func (r *Reader) Record(dst [][]byte) [][]byte {
	dst = dst[:0]
	if r.err != nil || !r.init {
		return dst
	}
	if r.opts.Format == FormatJSONL {
		if r.obj == nil {
			return dst
		}
		return append(dst, r.obj)
	}
	for i := range r.fieldEnds {
		dst = append(dst, r.field(i))
	}
	return dst
}
