package dataset

import (
	"fmt"
	"strings"
)

// MaxLeadingUndecodable is how many records at the start of a file may
// fail to decode (invalid UTF-8, not JSON, over the line limit) before the
// file is taken for something else than a dataset (ErrNotDataset): a PNG
// or a zip named .jsonl would otherwise give hundreds of rejects and a run
// with no row. A real dataset with a few broken first lines still reads:
// its undecodable rows are rejects once a record decodes.
const MaxLeadingUndecodable = 20

// heldRecord is a record Next holds back while no record has decoded yet.
type heldRecord struct {
	row Row
	rej *Reject
}

// undecodable marks rej as a record that does not decode at all.
func undecodable(rej *Reject) *Reject {
	rej.undecodable = true
	return rej
}

// unhold returns the first held record.
func (r *Reader) unhold() (Row, *Reject, error) {
	h := r.held[0]
	r.held[0] = heldRecord{}
	r.held = r.held[1:]
	if len(r.held) == 0 {
		r.held = nil
	}
	return h.row, h.rej, nil
}

// notDataset is the error of a file whose held records are all
// undecodable; it drops them.
func (r *Reader) notDataset() error {
	first := r.held[0].rej
	var what string
	switch n := len(r.held); {
	case n >= MaxLeadingUndecodable:
		what = fmt.Sprintf("none of its first %d records decodes", n)
	case n == 1:
		what = "its only record does not decode"
	default:
		what = fmt.Sprintf("none of its %d records decodes", n)
	}
	r.held = nil
	return r.lineError(first.Line, fmt.Errorf("%w: %s as %s (line %d: %s); is it the right file and -format?",
		ErrNotDataset, what, strings.ToUpper(string(r.opts.Format)), first.Line, first.Error))
}
