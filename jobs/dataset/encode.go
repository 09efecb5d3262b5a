package dataset

import (
	"slices"
	"strings"

	"github.com/refonte-ai/refonte-batch/internal/jsonwire"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// kv is one top-level entry of a row's params, sorted by key.
type kv struct {
	k string
	v any
}

// rowEncoder encodes a row's body and its content fingerprint, and, when
// the row has no unique_id yet, derives the unique_id from the fingerprint,
// all in one pass: the canonical entries (every param but unique_id and
// callback_url) are encoded once, hashed, then copied into the body with
// the callback_url and unique_id entries inserted at their sorted places.
type rowEncoder struct {
	canon []byte // canonical JSON: '{' entries '}'
	keys  []kv   // sorted canonical entries
	spans []int  // start and end offset of each entry in canon
	cb    []byte // the callback_url entry, if any
}

// encode returns the body, the unique_id (the row's own, or derived from
// the content) and the content fingerprint (see Row.Fingerprint).
func (e *rowEncoder) encode(p refonte.TaskParams, typ refonte.TaskType) (body []byte, id, fp string, err error) {
	e.keys = e.keys[:0]
	for k, v := range p {
		if k != refonte.ParamUniqueID && k != refonte.ParamCallbackURL {
			e.keys = append(e.keys, kv{k, v})
		}
	}
	slices.SortFunc(e.keys, func(a, b kv) int { return strings.Compare(a.k, b.k) })
	// e.canon holds the hashed bytes: project NUL type NUL canonical JSON.
	b := append(e.canon[:0], p.String(refonte.ParamProject)...)
	b = append(b, 0)
	b = append(b, typ...)
	b = append(b, 0)
	jsonStart := len(b)
	b = append(b, '{')
	e.spans = e.spans[:0]
	for i, x := range e.keys {
		if i > 0 {
			b = append(b, ',')
		}
		start := len(b)
		b = jsonwire.AppendString(b, x.k)
		b = append(b, ':')
		if b, err = jsonwire.AppendValue(b, x.v); err != nil {
			e.canon = b
			return nil, "", "", err
		}
		e.spans = append(e.spans, start, len(b))
	}
	b = append(b, '}')
	e.canon = b
	fp = fingerprint(b)
	var own bool
	if id, own = p[refonte.ParamUniqueID].(string); !own {
		id = UniqueIDPrefix + fp
	}
	b = b[jsonStart:]

	e.cb = e.cb[:0]
	if v, ok := p[refonte.ParamCallbackURL]; ok {
		e.cb = jsonwire.AppendString(e.cb, refonte.ParamCallbackURL)
		e.cb = append(e.cb, ':')
		if e.cb, err = jsonwire.AppendValue(e.cb, v); err != nil {
			return nil, "", "", err
		}
	}
	body = make([]byte, 0, len(b)+len(e.cb)+len(id)+16)
	body = append(body, '{')
	cbDone, idDone := len(e.cb) == 0, false
	n := 0
	sep := func() {
		if n > 0 {
			body = append(body, ',')
		}
		n++
	}
	for i, x := range e.keys {
		k := x.k
		if !cbDone && k > refonte.ParamCallbackURL {
			sep()
			body = append(body, e.cb...)
			cbDone = true
		}
		if !idDone && k > refonte.ParamUniqueID {
			sep()
			body = appendIDEntry(body, id)
			idDone = true
		}
		sep()
		body = append(body, e.canon[e.spans[2*i]:e.spans[2*i+1]]...)
	}
	if !cbDone {
		sep()
		body = append(body, e.cb...)
	}
	if !idDone {
		sep()
		body = appendIDEntry(body, id)
	}
	body = append(body, '}')
	return body, id, fp, nil
}

func appendIDEntry(b []byte, id string) []byte {
	b = append(b, `"unique_id":`...)
	return jsonwire.AppendString(b, id)
}
