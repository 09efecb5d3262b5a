package dataset

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/refonte-ai/refonte-batch/internal/jsonwire"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// The functions below write the JSON of decoded values (nil, bool, float64,
// string, []any, map[string]any) exactly as json.Marshal does — compact,
// map keys sorted, HTML-escaped strings — without reflection. Other types
// fall back to json.Marshal.

// kv is one map entry, sorted by key for encoding.
type kv struct {
	k string
	v any
}

func cmpKV(a, b kv) int { return strings.Compare(a.k, b.k) }

func appendMap(b []byte, m map[string]any, skipOperational bool) ([]byte, error) {
	var stack [16]kv
	entries := stack[:0]
	for k, v := range m {
		if skipOperational && (k == refonte.ParamUniqueID || k == refonte.ParamCallbackURL) {
			continue
		}
		entries = append(entries, kv{k, v})
	}
	slices.SortFunc(entries, cmpKV)
	b = append(b, '{')
	var err error
	for i, e := range entries {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonwire.AppendString(b, e.k)
		b = append(b, ':')
		if b, err = appendValue(b, e.v); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

func appendValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return jsonwire.AppendString(b, v), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case float64:
		return appendFloat(b, v)
	case []any:
		b = append(b, '[')
		var err error
		for i, x := range v {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendValue(b, x); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	case map[string]any:
		return appendMap(b, v, false)
	default:
		j, err := json.Marshal(v)
		if err != nil {
			return b, err
		}
		return append(b, j...), nil
	}
}

// appendFloat mirrors encoding/json's float64 encoding and its error for
// NaN and the infinities.
func appendFloat(b []byte, f float64) ([]byte, error) {
	b, ok := jsonwire.AppendFloat(b, f)
	if !ok {
		return b, fmt.Errorf("json: unsupported value: %v", f)
	}
	return b, nil
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
	slices.SortFunc(e.keys, cmpKV)
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
		if b, err = appendValue(b, x.v); err != nil {
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
		if e.cb, err = appendValue(e.cb, v); err != nil {
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
