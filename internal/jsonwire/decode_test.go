package jsonwire

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// stdDecode decodes data into an any as encoding/json does in the mode of
// d: the first Decode of a json.Decoder, after checking, without
// AllowTrailing, that data is one valid JSON value as json.Unmarshal does.
func stdDecode(d *Decoder, data []byte) (any, error) {
	if !d.AllowTrailing && !json.Valid(data) {
		return nil, errors.New("invalid JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if d.UseNumber {
		dec.UseNumber()
	}
	var v any
	err := dec.Decode(&v)
	return v, err
}

// modes are the four configurations of the Decoder.
var modes = []Decoder{
	{},
	{UseNumber: true},
	{AllowTrailing: true},
	{UseNumber: true, AllowTrailing: true, InternKeys: true, ObjectSizeHint: 16},
}

func TestDecoderMatchesEncodingJSON(t *testing.T) {
	tests := []struct {
		in   string
		fast bool // whether the Decoder takes it (without trailing data)
	}{
		{`{}`, true},
		{` {"a":1,"b":[true,false,null,"x"],"c":{"d":-0.5e-3}} `, true},
		{`{"a":"\"\\\/\b\f\n\r\t","a":2}`, true},
		{`{"u":"x\u00e9\ud83d\ude00\ud800\uDC00z","k\u00e9y":"é日本 ✓"}`, true},
		{`{"n":[0,-0,1,-1.5,2e10,2E-3,1.0e+2,123456789012345678901234567890]}`, true},
		{`[1,"s",[],{}]`, true},
		{`"s"`, true},
		{`12.5`, true},
		{`null`, true},
		{`true`, true},
		{`{"n":1e400}`, false}, // float64 only: out of range
		{`{"n":01}`, false},
		{`{"n":1.}`, false},
		{`{"n":.5}`, false},
		{`{"t":tru}`, false},
		{`{"a":1,}`, false},
		{`{"a" 1}`, false},
		{`{a:1}`, false},
		{`{"a":"x`, false},
		{`{"esc":"\x"}`, false},
		{`{"esc":"\u00g0"}`, false},
		{"{\"ctl\":\"a\tb\"}", false},
		{"{\"bad\":\"\xff\"}", false},
		{"{\"bad\":\"\\n\xed\xa0\x80\"}", false},
		{``, false},
		{`   `, false},
		{strings.Repeat(`[`, MaxDepth) + strings.Repeat(`]`, MaxDepth), true},
		{strings.Repeat(`[`, MaxDepth+1) + strings.Repeat(`]`, MaxDepth+1), false},
	}
	for _, mode := range modes {
		for _, tt := range tests {
			for _, suffix := range []string{"", " x", "}"} {
				d := mode
				in := tt.in + suffix
				fast := (tt.fast || tt.in == `{"n":1e400}` && d.UseNumber) && (suffix == "" || d.AllowTrailing)
				v, ok := d.DecodeValue([]byte(in))
				if ok != fast {
					t.Errorf("%+v: DecodeValue(%.60q) ok = %v, want %v", mode, in, ok, fast)
				}
				checkDecoded(t, &d, []byte(in), v, ok)
				m, ok := d.DecodeObject([]byte(in))
				if wantObj := fast && strings.HasPrefix(strings.TrimSpace(in), "{"); ok != wantObj {
					t.Errorf("%+v: DecodeObject(%.60q) ok = %v, want %v", mode, in, ok, wantObj)
				}
				if ok {
					checkDecoded(t, &d, []byte(in), m, ok)
				}
			}
		}
	}
}

func TestDecoderInternsKeys(t *testing.T) {
	d := Decoder{InternKeys: true}
	a, _ := d.DecodeObject([]byte(`{"key":1}`))
	b, _ := d.DecodeObject([]byte(`{"k\u0065y":2}`))
	ka, kb := onlyKey(a), onlyKey(b)
	if ka != "key" || !sameString(ka, kb) {
		t.Fatalf("keys %q and %q are not one interned string", ka, kb)
	}
}

func onlyKey(m map[string]any) string {
	for k := range m {
		return k
	}
	return ""
}

func sameString(a, b string) bool {
	return a == b && unsafe.StringData(a) == unsafe.StringData(b)
}

// checkDecoded fails t if the Decoder accepted data (ok) and encoding/json
// decodes it, in d's mode, to something else or not at all.
func checkDecoded(t *testing.T, d *Decoder, data []byte, got any, ok bool) {
	t.Helper()
	if !ok {
		return
	}
	want, err := stdDecode(d, data)
	if err != nil {
		t.Fatalf("%+v: Decoder accepted %.80q, encoding/json refuses it: %v", *d, data, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%+v: %.80q: Decoder %#v, encoding/json %#v", *d, data, got, want)
	}
}

// FuzzDecoder checks, in every mode, that whatever the Decoder accepts
// encoding/json accepts too, with an equal value.
func FuzzDecoder(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":[true,false,null,"x\u00e9\ud83d\ude00\ud800"],"c":{"d":-0.5e-3}}`,
		`{"a":"\"\\\/\b\f\n\r\t","a":2}`, `[1,2]`, `"s"`, `{"n":01}`, `{"n":1e400}`, ` {} `, `{"a":{"b":{}}}x`,
		"{\"é\":\"\u2028<>\"}", "{\"bad\":\"\xff\"}", `12abc`, `truex`, `01`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, mode := range modes {
			d := mode
			v, ok := d.DecodeValue(data)
			checkDecoded(t, &d, data, v, ok)
			m, ok := d.DecodeObject(data)
			checkDecoded(t, &d, data, m, ok)
		}
	})
}
