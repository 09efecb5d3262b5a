package jobs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/refonte-ai/refonte-batch/refonte"
)

// decodeSubmitReference is DecodeSubmitPayload as it was before the fast
// path: encoding/json, then the same checks.
func decodeSubmitReference(b []byte) (SubmitPayload, error) {
	var p SubmitPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: %v", ErrBadPayload, err)
	}
	return p, p.check()
}

// checkDecodeSubmit fails t unless DecodeSubmitPayload(b) gives what
// decodeSubmitReference gives (value and error text), and unless whatever
// the fast path accepts is what json.Unmarshal gives without error.
func checkDecodeSubmit(t *testing.T, b []byte) (fast bool) {
	t.Helper()
	got, err := DecodeSubmitPayload(b)
	want, wantErr := decodeSubmitReference(b)
	if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("DecodeSubmitPayload(%q) error = %v, want %v", b, err, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeSubmitPayload(%q) = %#v, want %#v", b, got, want)
	}
	c := bytes.Clone(b)
	p, ok := decodeSubmitFast(c)
	if !ok {
		return false
	}
	clear(c) // what the fast path returns must not alias its input
	var ref SubmitPayload
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatalf("fast path accepted %q, which json.Unmarshal refuses: %v", b, err)
	}
	if !reflect.DeepEqual(p, ref) {
		t.Fatalf("fast path decoded %q to %#v, json.Unmarshal to %#v", b, p, ref)
	}
	return true
}

// samplePayloads are payloads as the producer writes them.
func samplePayloads() [][]byte {
	ps := []SubmitPayload{
		{V: 1, Run: "run-42", Line: 17, UniqueID: "run-42-000017", TaskType: refonte.TypeImageAnnotation, Mode: refonte.ModeTest, Params: json.RawMessage(benchParams)},
		{V: 1, Run: "r<1>&\"\\", Line: -1, UniqueID: "é\u2028😀\t", TaskType: refonte.TypeCategorization, Mode: refonte.ModeLive,
			Params: json.RawMessage(`{"a":{"b":[1,2.5e-7,{"c":null}],"d":"\u003cé\\\"\u2028"},"callback_url":"https://cb","metadata":{"k":[true,false]}}`)},
		{V: 1, Run: "r", UniqueID: "u", TaskType: refonte.TypeTextCollection, Mode: refonte.ModeTest, Params: json.RawMessage(`{"metadata":null,"callback_url":17}`)},
		{V: 1, Run: "r", Line: 1 << 40, UniqueID: "u", TaskType: refonte.TypeComparison, Mode: refonte.ModeTest, Params: json.RawMessage(`{"metadata":"x","callback_url":{"a":1}}`)},
		{V: 2, Run: "r", UniqueID: "u", TaskType: "nope", Mode: "prod"},
		{Run: "r", Line: 9, UniqueID: "u", TaskType: "ImageAnnotation", Mode: refonte.ModeLive, Params: json.RawMessage(`{}`)},
	}
	out := make([][]byte, len(ps))
	for i, p := range ps {
		out[i] = AppendSubmitPayload(nil, p)
	}
	return out
}

func TestDecodeSubmitPayloadMatchesEncodingJSON(t *testing.T) {
	ok := `{"v":1,"run":"r","line":3,"unique_id":"u","task_type":"imageannotation","mode":"test","params":{"a":1}}`
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	tests := []struct {
		name string
		in   string
		fast bool // whether the fast path takes it
	}{
		{"producer", ok, true},
		{"white space", " {\n\t\"v\" : 1 ,\r\"run\":\"r\", \"line\": 3, \"unique_id\":\"u\",\"task_type\":\"imageannotation\",\"mode\":\"test\",\"params\": { \"a\" : [ 1 , 2 ] } } \n", true},
		{"reordered", `{"params":{},"mode":"live","task_type":"comparison","unique_id":"u","line":-0,"run":"r","v":1}`, true},
		{"missing params", `{"v":1,"run":"r","unique_id":"u","task_type":"imageannotation","mode":"test"}`, true},
		{"missing run", `{"v":1,"unique_id":"u","task_type":"imageannotation","mode":"test"}`, true},
		{"empty object", `{}`, true},
		{"escaped values", `{"v":1,"run":"r\u00e9\"\n","line":3,"unique_id":"\ud83d\ude00\ud800","task_type":"imageannotation","mode":"t\u0065st"}`, true},
		{"params null", `{"v":1,"run":"r","unique_id":"u","task_type":"imageannotation","mode":"test","params":null}`, true},
		{"params array", `{"v":1,"run":"r","unique_id":"u","task_type":"imageannotation","mode":"test","params":[1,"x"]}`, true},
		{"params string", `{"v":1,"run":"r","unique_id":"u","task_type":"imageannotation","mode":"test","params":"x"}`, true},
		{"params invalid UTF-8 kept", "{\"v\":1,\"run\":\"r\",\"unique_id\":\"u\",\"task_type\":\"imageannotation\",\"mode\":\"test\",\"params\":{\"a\":\"\xff\"}}", true},
		{"params as deep as allowed", `{"v":1,"params":` + deep(9999) + `}`, true},
		{"params too deep", `{"v":1,"params":` + deep(10000) + `}`, false},
		{"version 2", strings.Replace(ok, `"v":1`, `"v":2`, 1), true},
		{"big line", strings.Replace(ok, `"line":3`, `"line":-999999999999999999`, 1), true},
		{"line out of range", strings.Replace(ok, `"line":3`, `"line":99999999999999999999`, 1), false},
		{"line 19 digits", strings.Replace(ok, `"line":3`, `"line":9223372036854775807`, 1), false},
		{"line fraction", strings.Replace(ok, `"line":3`, `"line":3.0`, 1), false},
		{"line exponent", strings.Replace(ok, `"line":3`, `"line":3e0`, 1), false},
		{"line string", strings.Replace(ok, `"line":3`, `"line":"3"`, 1), false},
		{"line null", strings.Replace(ok, `"line":3`, `"line":null`, 1), false},
		{"v float", strings.Replace(ok, `"v":1`, `"v":1.5`, 1), false},
		{"v bool", strings.Replace(ok, `"v":1`, `"v":true`, 1), false},
		{"run number", strings.Replace(ok, `"run":"r"`, `"run":5`, 1), false},
		{"run null", strings.Replace(ok, `"run":"r"`, `"run":null`, 1), false},
		{"run invalid UTF-8", strings.Replace(ok, `"run":"r"`, "\"run\":\"r\xff\"", 1), false},
		{"run control character", strings.Replace(ok, `"run":"r"`, "\"run\":\"r\n\"", 1), false},
		{"run bad escape", strings.Replace(ok, `"run":"r"`, `"run":"\x"`, 1), false},
		{"duplicate key", strings.Replace(ok, `"run":"r"`, `"run":"r","run":"s"`, 1), false},
		{"case-folded key", strings.Replace(ok, `"run":"r"`, `"RUN":"s"`, 1), false},
		{"case-folded duplicate", strings.Replace(ok, `"run":"r"`, `"run":"r","Run":"s"`, 1), false},
		{"escaped key", strings.Replace(ok, `"run":"r"`, `"r\u0075n":"s"`, 1), false},
		{"unknown key", strings.Replace(ok, `"run":"r"`, `"run":"r","extra":{"x":1}`, 1), false},
		{"trailing comma", strings.Replace(ok, `}}`, `},}`, 1), false},
		{"trailing data", ok + `x`, false},
		{"two objects", ok + ok, false},
		{"truncated", ok[:len(ok)-1], false},
		{"truncated params", ok[:len(ok)-3], false},
		{"missing colon", strings.Replace(ok, `"run":`, `"run"`, 1), false},
		{"array", `[1]`, false},
		{"null", `null`, false},
		{"empty", ``, false},
		{"space", ` `, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if fast := checkDecodeSubmit(t, []byte(tt.in)); fast != tt.fast {
				t.Errorf("fast path took it: %v, want %v", fast, tt.fast)
			}
		})
	}
	for i, b := range samplePayloads() {
		t.Run(fmt.Sprintf("sample %d", i), func(t *testing.T) {
			if !checkDecodeSubmit(t, b) {
				t.Errorf("fast path declined the producer's payload %s", b)
			}
		})
	}
}

// FuzzDecodeSubmitPayload: for any input, DecodeSubmitPayload gives
// exactly what encoding/json and the checks give (value and error text).
func FuzzDecodeSubmitPayload(f *testing.F) {
	for _, b := range samplePayloads() {
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"RUN":"r","line":1e2,"params":null}`))
	f.Add([]byte(`{"v":1,"run":"a","run":"b","unique_id":"\u0075"}`))
	f.Add([]byte("{\"v\":1,\"params\":{\"\xff\":[1,{\"x\":\"\\ud800\"}]}}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecodeSubmit(t, b)
	})
}

// benchParams is a typical row's create body, as json.Marshal writes it.
const benchParams = `{"attachment":"https://example.com/images/000123.jpg","attachment_type":"image","batch":"batch-2026-11","callback_url":"https://hooks.example.com/refonte","instruction":"Draw a box around every car","metadata":{"row":17,"source":"images.csv"},"project":"cars","unique_id":"run-42-000017"}`

func BenchmarkDecodeSubmitPayload(b *testing.B) {
	payload := samplePayloads()[0]
	for _, bm := range []struct {
		name   string
		decode func([]byte) (SubmitPayload, error)
	}{
		{"fast", DecodeSubmitPayload},
		{"encoding-json", decodeSubmitReference},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				if _, err := bm.decode(payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
