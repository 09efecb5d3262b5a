package dataset

import (
	"bufio"
	"encoding/json"
	"io"
)

// RejectsWriter writes rejects as JSON lines: {"line":n,"error":"…","raw":"…"}.
// It buffers; call Flush or Close at the end. It is not safe for concurrent
// use.
type RejectsWriter struct {
	w  io.Writer
	bw *bufio.Writer
	n  int64
}

// NewRejectsWriter returns a RejectsWriter writing to w.
func NewRejectsWriter(w io.Writer) *RejectsWriter {
	return &RejectsWriter{w: w, bw: bufio.NewWriter(w)}
}

// Write writes one reject as a line of JSON.
func (w *RejectsWriter) Write(r *Reject) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if _, err := w.bw.Write(b); err != nil {
		return err
	}
	w.n++
	return nil
}

// Count returns how many rejects were written.
func (w *RejectsWriter) Count() int64 { return w.n }

// Flush writes buffered rejects to the underlying writer.
func (w *RejectsWriter) Flush() error { return w.bw.Flush() }

// Close flushes, then closes the underlying writer if it is an io.Closer.
func (w *RejectsWriter) Close() error {
	err := w.bw.Flush()
	if c, ok := w.w.(io.Closer); ok {
		if cerr := c.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
