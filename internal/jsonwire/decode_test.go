package jsonwire

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// stdDecode decodes data into an any as json.Unmarshal does.
func stdDecode(data []byte) (any, error) {
	var v any
	err := json.Unmarshal(data, &v)
	return v, err
}

// modes are the configurations of the Decoder.
var modes = []Decoder{{}, {InternKeys: true, ObjectSizeHint: 16}}

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
				fast := tt.fast && suffix == ""
				v, ok := d.fastValue([]byte(in))
				if ok != fast {
					t.Errorf("%+v: fastValue(%.60q) ok = %v, want %v", mode, in, ok, fast)
				}
				checkDecoded(t, &d, []byte(in), v, ok)
				m, ok := d.fastObject([]byte(in))
				if wantObj := fast && strings.HasPrefix(strings.TrimSpace(in), "{"); ok != wantObj {
					t.Errorf("%+v: fastObject(%.60q) ok = %v, want %v", mode, in, ok, wantObj)
				}
				if ok {
					checkDecoded(t, &d, []byte(in), m, ok)
				}
				// Object and Value: the fast path's value, or encoding/json's
				// value and error.
				want, wantErr := stdDecode([]byte(in))
				got, err := d.Value([]byte(in))
				if (err == nil) != (wantErr == nil) || err == nil && !reflect.DeepEqual(got, want) ||
					err != nil && err.Error() != wantErr.Error() {
					t.Errorf("%+v: Value(%.60q) = %#v, %v; json.Unmarshal %#v, %v", mode, in, got, err, want, wantErr)
				}
			}
		}
	}
}

func TestDecoderInternsKeys(t *testing.T) {
	d := Decoder{InternKeys: true}
	a, _ := d.Object([]byte(`{"key":1}`))
	b, _ := d.Object([]byte(`{"k\u0065y":2}`))
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

// checkDecoded fails t if the fast path accepted data (ok) and
// encoding/json decodes it to something else or not at all.
func checkDecoded(t *testing.T, d *Decoder, data []byte, got any, ok bool) {
	t.Helper()
	if !ok {
		return
	}
	want, err := stdDecode(data)
	if err != nil {
		t.Fatalf("%+v: Decoder accepted %.80q, encoding/json refuses it: %v", *d, data, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%+v: %.80q: Decoder %#v, encoding/json %#v", *d, data, got, want)
	}
}

// FuzzDecoder checks, in every mode, that whatever the fast path accepts
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
			v, ok := d.fastValue(data)
			checkDecoded(t, &d, data, v, ok)
			m, ok := d.fastObject(data)
			checkDecoded(t, &d, data, m, ok)
		}
	})
}
