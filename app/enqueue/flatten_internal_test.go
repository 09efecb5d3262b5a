package enqueue

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// refFlatten is flattenJSON's definition written with a json.Decoder: the
// reference the scanner is checked against.
func refFlatten(prefix string, obj []byte, fn func(key string, val []byte)) error {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil {
		return err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return err
		}
		var m map[string]json.RawMessage
		if val[0] == '{' && json.Unmarshal(val, &m) == nil && len(m) > 0 {
			if err := refFlatten(prefix+key+".", val, fn); err != nil {
				return err
			}
			continue
		}
		fn(prefix+key, val)
	}
	return nil
}

// leaves returns "key=compact JSON" of each leaf.
func leaves(t testing.TB, flatten func([]byte, func(string, []byte)) error, obj []byte) ([]string, error) {
	var out []string
	err := flatten(obj, func(k string, v []byte) {
		var b bytes.Buffer
		if json.Compact(&b, v) != nil {
			out = append(out, k+"="+string(v)) // from an invalid input
			return
		}
		out = append(out, k+"="+b.String())
	})
	return out, err
}

func TestFlattenJSON(t *testing.T) {
	tests := []struct {
		in   string
		want []string // nil: an error
	}{
		{`{}`, []string{}},
		{` { "a" : 1 , "b":"x,}" } `, []string{`a=1`, `b="x,}"`}},
		{`{"m":{"team":"red","tags":["x",{"y":"]"}],"deep":{"n":-2.5e3}},"e":{ },"z":null,"t":true}`,
			[]string{`m.team="red"`, `m.tags=["x",{"y":"]"}]`, `m.deep.n=-2.5e3`, `e={}`, `z=null`, `t=true`}},
		{`{"a\"b":"q\\\"","\u00e9":"\ud83d\ude00"}`, []string{`a"b="q\\\""`, `é="\ud83d\ude00"`}},
		{`{"a":1`, nil},
		{`{"a":1} x`, nil},
		{`[1]`, nil},
		{`{"a":}`, nil},
		{`{"a":"unterminated}`, nil},
		{``, nil},
	}
	for _, tc := range tests {
		got, err := leaves(t, flattenJSON, []byte(tc.in))
		if tc.want == nil {
			if err == nil {
				t.Errorf("flattenJSON(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("flattenJSON(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// FuzzFlattenJSON: on every valid JSON object the scanner gives the
// reference's leaves; on anything else it returns (never panics).
func FuzzFlattenJSON(f *testing.F) {
	for _, s := range []string{`{"a":{"b":[1,{"c":"}"}]},"d":"\"","e":{}}`, `{"x":1.5e-3,"y":[[]],"z":{"w":{"v":null}}}`, `{"a":1`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := leaves(t, flattenJSON, data)
		trimmed := bytes.TrimSpace(data)
		// The dataset reader lets only UTF-8 through (encoding/json would
		// replace invalid bytes of a key, the scanner keeps them).
		if !json.Valid(data) || !utf8.Valid(data) || len(trimmed) == 0 || trimmed[0] != '{' {
			return
		}
		want, rerr := leaves(t, func(b []byte, fn func(string, []byte)) error { return refFlatten("", b, fn) }, data)
		if err != nil || rerr != nil || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("flattenJSON(%q) = %q, %v; reference %q, %v", data, got, err, want, rerr)
		}
	})
}
