package sandbox

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/refonte-ai/refonte-batch/internal/jsonwire"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// This file holds the append-based JSON encoder and the fast create-body
// parser of the hot path (create, completion, callback). Both produce
// exactly what encoding/json would (the tests compare them byte for byte)
// and hand anything they do not handle to encoding/json itself.

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string exactly as encoding/json encodes
// it (HTML-escaped, invalid UTF-8 replaced, U+2028/U+2029 escaped).
func appendString(dst []byte, s string) []byte { return jsonwire.AppendString(dst, s) }

// isValidNumber reports whether s is a JSON number literal.
func isValidNumber(s string) bool {
	n := jsonwire.ScanNumber(s)
	return n > 0 && n == len(s)
}

// appendValue appends v, a value as encoding/json decodes into an any
// (maps, slices, strings, json.Number, float64, bools, nil), exactly as
// json.Marshal would encode it. Other types go through json.Marshal; ok
// is false when json.Marshal fails.
func appendValue(dst []byte, v any) ([]byte, bool) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), true
	case string:
		return appendString(dst, x), true
	case bool:
		if x {
			return append(dst, "true"...), true
		}
		return append(dst, "false"...), true
	case json.Number:
		if x == "" {
			return append(dst, '0'), true
		}
		if !isValidNumber(string(x)) {
			return dst, false
		}
		return append(dst, x...), true
	case float64:
		return jsonwire.AppendFloat(dst, x)
	case map[string]any:
		if x == nil {
			return append(dst, "null"...), true
		}
		return appendMap(dst, x, nil)
	case []any:
		if x == nil {
			return append(dst, "null"...), true
		}
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var ok bool
			if dst, ok = appendValue(dst, e); !ok {
				return dst, false
			}
		}
		return append(dst, ']'), true
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return dst, false
		}
		return append(dst, b...), true
	}
}

// appendMap appends m as a JSON object with sorted keys, as json.Marshal
// does, leaving out the keys for which skip returns true.
func appendMap(dst []byte, m map[string]any, skip func(string) bool) ([]byte, bool) {
	var arr [16]string
	keys := arr[:0]
	for k := range m {
		if skip == nil || !skip(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		var ok bool
		if dst, ok = appendValue(dst, m[k]); !ok {
			return dst, false
		}
	}
	return append(dst, '}'), true
}

// marshalValue is json.Marshal(v) through appendValue.
func marshalValue(v any) ([]byte, error) {
	if b, ok := appendValue(make([]byte, 0, 64), v); ok {
		return b, nil
	}
	return json.Marshal(v)
}

// appendTime appends t as time.Time's MarshalJSON does; ok is false for
// years it refuses.
func appendTime(dst []byte, t time.Time) ([]byte, bool) {
	if y := t.Year(); y < 0 || y > 9999 {
		return dst, false
	}
	_, off := t.Zone()
	if off%60 != 0 || off <= -24*3600 || off >= 24*3600 {
		return dst, false
	}
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"'), true
}

// rawSafe reports whether raw can be copied into an encoding as is: what
// json.Marshal does to a json.RawMessage (compact it, escape <, > and &,
// U+2028 and U+2029) would leave it unchanged. Every raw field the
// sandbox stores was produced by json.Marshal or appendValue, so it is
// valid; this only guards the byte-for-byte promise.
func rawSafe(raw []byte) bool {
	in := false
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; c {
		case '"':
			in = !in
		case '\\':
			if in {
				i++
			}
		case ' ', '\t', '\n', '\r':
			if !in {
				return false
			}
		case '<', '>', '&':
			return false
		case 0xE2:
			if i+2 < len(raw) && raw[i+1] == 0x80 && (raw[i+2] == 0xA8 || raw[i+2] == 0xA9) {
				return false
			}
		}
	}
	return len(raw) > 0
}

// appendRaw appends raw as json.Marshal encodes a json.RawMessage field.
func appendRaw(dst []byte, raw json.RawMessage) ([]byte, bool) {
	if raw == nil {
		return append(dst, "null"...), true
	}
	if !rawSafe(raw) {
		return dst, false
	}
	return append(dst, raw...), true
}

// appendTask appends the JSON of t exactly as json.Marshal(t) would, and
// fails as it would.
func appendTask(dst []byte, t *refonte.Task) ([]byte, error) {
	if b, ok := appendTaskFast(dst, t); ok {
		return b, nil
	}
	b, err := json.Marshal(t)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

func appendTaskFast(dst []byte, t *refonte.Task) ([]byte, bool) {
	start := len(dst)
	fail := func() ([]byte, bool) { return dst[:start], false }
	var ok bool
	dst = append(dst, `{"task_id":`...)
	dst = appendString(dst, t.ID)
	dst = append(dst, `,"type":`...)
	dst = appendString(dst, string(t.Type))
	dst = append(dst, `,"status":`...)
	dst = appendString(dst, string(t.Status))
	dst = append(dst, `,"created_at":`...)
	if dst, ok = appendTime(dst, t.CreatedAt); !ok {
		return fail()
	}
	dst = append(dst, `,"updated_at":`...)
	if dst, ok = appendTime(dst, t.UpdatedAt); !ok {
		return fail()
	}
	dst = append(dst, `,"completed_at":`...)
	if t.CompletedAt == nil {
		dst = append(dst, "null"...)
	} else if dst, ok = appendTime(dst, *t.CompletedAt); !ok {
		return fail()
	}
	if t.Project != "" {
		dst = append(dst, `,"project":`...)
		dst = appendString(dst, t.Project)
	}
	if t.Batch != "" {
		dst = append(dst, `,"batch":`...)
		dst = appendString(dst, t.Batch)
	}
	if t.CallbackURL != "" {
		dst = append(dst, `,"callback_url":`...)
		dst = appendString(dst, t.CallbackURL)
	}
	dst = append(dst, `,"callback_succeeded":`...)
	switch {
	case t.CallbackSucceeded == nil:
		dst = append(dst, "null"...)
	case *t.CallbackSucceeded:
		dst = append(dst, "true"...)
	default:
		dst = append(dst, "false"...)
	}
	if t.Instruction != "" {
		dst = append(dst, `,"instruction":`...)
		dst = appendString(dst, t.Instruction)
	}
	if len(t.Params) > 0 {
		dst = append(dst, `,"params":`...)
		if dst, ok = appendRaw(dst, t.Params); !ok {
			return fail()
		}
	}
	if len(t.Metadata) > 0 {
		dst = append(dst, `,"metadata":`...)
		if dst, ok = appendRaw(dst, t.Metadata); !ok {
			return fail()
		}
	}
	if t.UniqueID != "" {
		dst = append(dst, `,"unique_id":`...)
		dst = appendString(dst, t.UniqueID)
	}
	dst = append(dst, `,"tags":`...)
	if t.Tags == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i, tag := range t.Tags {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, tag)
		}
		dst = append(dst, ']')
	}
	if t.IsTest {
		dst = append(dst, `,"is_test":true`...)
	} else {
		dst = append(dst, `,"is_test":false`...)
	}
	dst = append(dst, `,"response":`...)
	if dst, ok = appendRaw(dst, t.Response); !ok {
		return fail()
	}
	return append(dst, '}'), true
}

// parseObject decodes data as json.Decoder with UseNumber decodes its
// first value into a map[string]any, for the bodies jsonwire.Decoder
// handles: a JSON object, of valid UTF-8 and nested at most
// jsonwire.MaxDepth deep. ok is false for anything else (including every
// invalid body), which the caller hands to encoding/json. Like the
// Decoder, it ignores whatever follows the object.
//
// The strings in m without escapes (keys, values, numbers) share one copy
// of data: callers clone the few they keep beyond the request.
func parseObject(data []byte) (m map[string]any, ok bool) {
	d := jsonwire.Decoder{UseNumber: true, AllowTrailing: true}
	return d.DecodeObject(data)
}
