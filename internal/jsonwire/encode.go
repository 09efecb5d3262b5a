package jsonwire

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// entry is one map entry, sorted by key for encoding.
type entry struct {
	k string
	v any
}

// AppendValue appends the JSON of v to b exactly as json.Marshal writes
// it — compact, map keys sorted, strings HTML-escaped — without reflection
// for the values a Decoder gives (nil, bool, float64, string, []any,
// map[string]any); other types go through json.Marshal. The error is
// json.Marshal's (NaN and the infinities among float64s).
func AppendValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return AppendString(b, v), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case float64:
		b, ok := AppendFloat(b, v)
		if !ok {
			return b, fmt.Errorf("json: unsupported value: %v", v)
		}
		return b, nil
	case []any:
		b = append(b, '[')
		var err error
		for i, x := range v {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = AppendValue(b, x); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	case map[string]any:
		return AppendObject(b, v)
	default:
		j, err := json.Marshal(v)
		if err != nil {
			return b, err
		}
		return append(b, j...), nil
	}
}

// AppendObject is AppendValue for a map, leaving out the keys omit names.
func AppendObject(b []byte, m map[string]any, omit ...string) ([]byte, error) {
	var stack [16]entry
	entries := stack[:0]
	for k, v := range m {
		if !slices.Contains(omit, k) {
			entries = append(entries, entry{k, v})
		}
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.k, b.k) })
	b = append(b, '{')
	var err error
	for i, e := range entries {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, e.k)
		b = append(b, ':')
		if b, err = AppendValue(b, e.v); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}
