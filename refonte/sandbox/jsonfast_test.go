package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/internal/jsonwire"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// odd strings exercise every escaping rule of encoding/json.
var oddStrings = []string{
	"", "plain", `quote " and \ backslash`, "<b>&amp;</b>", "tab\tnl\ncr\rbs\bff\f", "\x00\x01\x1f\x7f",
	"héllo wörld ✓ 日本", "line\u2028para\u2029", "bad utf8 \xff\xfe end", "trunc \xe2\x80", "emoji 🐈",
}

func TestAppendTaskMatchesMarshal(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
	yes, no := true, false
	paris := time.FixedZone("CEST", 2*3600)
	odd := time.FixedZone("odd", 3600+30)
	local := now.In(paris)
	base := refonte.Task{ID: "0123456789abcdef01234567", Type: refonte.TypeImageAnnotation, Status: refonte.StatusPending,
		CreatedAt: now, UpdatedAt: now, Tags: []string{}, IsTest: true, Response: json.RawMessage("null"),
		Params: json.RawMessage(`{"attachment":"https://example.com/cat.jpg"}`), Metadata: json.RawMessage(`{"row":1}`)}
	tests := []struct {
		name   string
		mutate func(*refonte.Task)
	}{
		{"created", func(*refonte.Task) {}},
		{"zero", func(t *refonte.Task) { *t = refonte.Task{} }},
		{"completed", func(t *refonte.Task) {
			t.Status, t.CompletedAt, t.Response = refonte.StatusCompleted, &now, completedResponse(t.Metadata)
			t.CallbackSucceeded = &yes
		}},
		{"callback failed", func(t *refonte.Task) { t.CallbackSucceeded = &no }},
		{"all strings", func(t *refonte.Task) {
			t.Project, t.Batch, t.CallbackURL, t.Instruction, t.UniqueID = "p", "b", "http://h/cb?a=1&b=<2>", "box <cats>", "u-1"
			t.Tags = []string{"a", "b & c"}
		}},
		{"nil tags and raws", func(t *refonte.Task) { t.Tags, t.Params, t.Metadata, t.Response = nil, nil, nil, nil }},
		{"empty raws", func(t *refonte.Task) { t.Params, t.Metadata = json.RawMessage{}, json.RawMessage{} }},
		{"raw with spaces", func(t *refonte.Task) { t.Params = json.RawMessage(`{ "a" : [1, 2] }`) }},
		{"raw with html", func(t *refonte.Task) { t.Metadata = json.RawMessage(`{"a":"<&>"}`) }},
		{"raw with escaped quote", func(t *refonte.Task) { t.Metadata = json.RawMessage(`{"a":"x\" y"}`) }},
		{"raw with line separator", func(t *refonte.Task) { t.Metadata = json.RawMessage("{\"a\":\"\u2028\"}") }},
		{"other zone", func(t *refonte.Task) { t.CreatedAt, t.UpdatedAt, t.CompletedAt = local, local, &local }},
		{"zone with seconds", func(t *refonte.Task) { t.UpdatedAt = now.In(odd) }},
		{"whole milliseconds", func(t *refonte.Task) { t.CreatedAt = now.Truncate(time.Second) }},
		{"not live", func(t *refonte.Task) { t.IsTest = false }},
	}
	for _, s := range oddStrings {
		tests = append(tests, struct {
			name   string
			mutate func(*refonte.Task)
		}{fmt.Sprintf("string %q", s), func(t *refonte.Task) {
			t.ID, t.Project, t.Instruction, t.UniqueID, t.Tags = s, s, s, s, []string{s}
		}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := base
			tt.mutate(&task)
			want, err := json.Marshal(task)
			if err != nil {
				t.Fatal(err)
			}
			got, err := appendTask([]byte("prefix"), &task)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "prefix"+string(want) {
				t.Fatalf("appendTask\n got %s\nwant prefix%s", got, want)
			}
			body, err := encodeCallback(&task)
			if err != nil {
				t.Fatal(err)
			}
			wantBody, _ := json.Marshal(callbackBody{Task: task, Response: task.Response, TaskID: task.ID, Status: task.Status})
			if !bytes.Equal(body, wantBody) {
				t.Fatalf("encodeCallback\n got %s\nwant %s", body, wantBody)
			}
		})
	}
}

// TestAppendTaskRefusesWhatMarshalRefuses covers the times json.Marshal
// refuses. (Invalid raw fields are not checked: the sandbox only stores
// raw JSON it encoded itself; see task.)
func TestAppendTaskRefusesWhatMarshalRefuses(t *testing.T) {
	late := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	early := time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, task := range []refonte.Task{{CreatedAt: late}, {UpdatedAt: early}, {CompletedAt: &late}} {
		_, want := json.Marshal(task)
		if _, err := appendTask(nil, &task); (err == nil) != (want == nil) {
			t.Errorf("appendTask error %v, json.Marshal error %v", err, want)
		}
	}
}

func TestAppendValueMatchesMarshal(t *testing.T) {
	values := []any{
		nil, true, false, "", json.Number("0"), json.Number("-1.5e+10"), json.Number(""),
		0.0, 1.0, -2.5, 1e20, 1e21, 1e-6, 1e-7, 123456789.125, 5e-324,
		map[string]any{}, map[string]any(nil), []any{}, []any(nil),
		map[string]any{"b": 1.0, "a": []any{"x", nil, true, map[string]any{"z": "<>", "y": json.Number("3")}}},
		map[string]any{"é": "ü", "A": "a", "_": 0.5, "": ""},
		[]string{"not", "decoded"}, 42, struct{ X int }{1},
	}
	for _, s := range oddStrings {
		values = append(values, s, map[string]any{s: s})
	}
	for i, v := range values {
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			want, wantErr := json.Marshal(v)
			got, err := marshalValue(v)
			if (err == nil) != (wantErr == nil) || string(got) != string(want) {
				t.Fatalf("marshalValue(%#v) = %s, %v; json.Marshal = %s, %v", v, got, err, want, wantErr)
			}
		})
	}
	if _, ok := appendValue(nil, json.Number("1x")); ok {
		t.Error("appendValue accepted an invalid json.Number")
	}
	if _, ok := appendValue(nil, []any{1.0, map[string]any{"x": json.Number("--")}}); ok {
		t.Error("appendValue accepted a nested invalid json.Number")
	}
}

// decodeStd is what decodeBody made of a create body.
func decodeStd(data []byte) (refonte.TaskParams, error) {
	var p refonte.TaskParams
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	err := dec.Decode(&p)
	return p, err
}

func TestParseObjectMatchesDecoder(t *testing.T) {
	tests := []struct {
		body string
		fast bool // whether the fast parser takes it
	}{
		{`{}`, true},
		{" \t\r\n{ } trailing garbage", true},
		{`{"project":"demo","attachment":"https://example.com/cat.jpg","geometries":{"box":{"objects_to_annotate":["cat"]}},"metadata":{"row":1,"source":"bench"},"unique_id":"u-1"}`, true},
		{`{"a":[],"b":{},"c":[[]],"d":null,"e":true,"f":false}`, true},
		{`{"n":[0,-0,1,-1.5,2e10,2E-3,1.0e+2,123456789012345678901234567890]}`, true},
		{`{"dup":1,"dup":"two"}`, true},
		{`{"ü":"日本 ✓"}`, true},
		{`{ "spaced" : [ 1 , 2 ] , "x" : { "y" : "z" } }`, true},
		{`{"esc":"a\"b"}`, true},
		{`{"esc":"\u00e9"}`, true},
		{`{"e\u0073c":"\ud83d\ude00\ud800\/\b\f\n\r\t\\","esc":"é\n"}`, true},
		{`{"esc":"\x"}`, false},
		{`{"esc":"\u00g0"}`, false},
		{"{\"bad\":\"\\n\xff\"}", false},
		{"{\"bad\":\"\xff\"}", false},
		{"{\"ctl\":\"a\tb\"}", false},
		{`{"n":01}`, false},
		{`{"n":1.}`, false},
		{`{"n":-}`, false},
		{`{"n":.5}`, false},
		{`{"n":1e}`, false},
		{`{"t":tru}`, false},
		{`{"t":truex}`, false},
		{`{"a":1,}`, false},
		{`{"a" 1}`, false},
		{`{"a":[1,]}`, false},
		{`{"a":[1 2]}`, false},
		{`{a:1}`, false},
		{`{"a":1`, false},
		{`{"a":"x`, false},
		{``, false},
		{`null`, false},
		{`[1]`, false},
		{`"s"`, false},
		{strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100), true},
		{strings.Repeat(`{"a":`, jsonwire.MaxDepth) + "1" + strings.Repeat("}", jsonwire.MaxDepth), true},
		{strings.Repeat(`{"a":`, jsonwire.MaxDepth+1) + "1" + strings.Repeat("}", jsonwire.MaxDepth+1), false},
	}
	for _, tt := range tests {
		name := tt.body
		if len(name) > 64 {
			name = name[:64] + "..."
		}
		t.Run(name, func(t *testing.T) {
			got, ok := parseObject([]byte(tt.body))
			if ok != tt.fast {
				t.Fatalf("parseObject ok = %v, want %v", ok, tt.fast)
			}
			if !ok {
				return
			}
			want, err := decodeStd([]byte(tt.body))
			if err != nil {
				t.Fatalf("fast parser accepted what encoding/json refuses (%v)", err)
			}
			if !reflect.DeepEqual(refonte.TaskParams(got), want) {
				t.Fatalf("parseObject = %#v, want %#v", got, want)
			}
		})
	}
}

// FuzzParseObject checks that whatever the fast parser accepts, encoding/json
// decodes to the same value, and that appendValue re-encodes it as
// json.Marshal does.
func FuzzParseObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,"x",{"b":null}],"c":true}`, `{"n":-1.5e3}`, "{\"é\":\"\u2028<>\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := parseObject(data)
		if !ok {
			return
		}
		want, err := decodeStd(data)
		if err != nil {
			t.Fatalf("fast parser accepted %q, encoding/json refuses it: %v", data, err)
		}
		if !reflect.DeepEqual(refonte.TaskParams(got), want) {
			t.Fatalf("parseObject(%q) = %#v, want %#v", data, got, want)
		}
		enc, err := marshalValue(map[string]any(want))
		wantEnc, wantErr := json.Marshal(want)
		if (err == nil) != (wantErr == nil) || !bytes.Equal(enc, wantEnc) {
			t.Fatalf("marshalValue = %s, %v; json.Marshal = %s, %v", enc, err, wantEnc, wantErr)
		}
	})
}

// TestCreateBodyErrorsUnchanged checks that bad create bodies get the
// error encoding/json's Decoder gave them.
func TestCreateBodyErrorsUnchanged(t *testing.T) {
	s := New(Config{NoAutoComplete: true})
	defer s.Close()
	bodies := []string{``, `null`, `[1]`, `{"a":`, `{"a":1,}`, `{"n":01}`, `"str"`, `{"esc":"\q"}`, "{\"x\":\"\x01\"}", `  `}
	for _, body := range bodies {
		t.Run(body, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/v1/task/imageannotation", strings.NewReader(body))
			req.SetBasicAuth(DefaultTestKey, "")
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			p, err := decodeStd([]byte(body))
			want := "invalid JSON body: want an object"
			if err != nil {
				want = "invalid JSON body: " + err.Error()
			} else if p != nil {
				t.Fatalf("test body %q decodes to an object", body)
			}
			var e apiError
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error != want {
				t.Fatalf("error %q (%v), want %q", e.Error, err, want)
			}
		})
	}
	big := `{"a":"` + strings.Repeat("x", maxBody) + `"}`
	req := httptest.NewRequest(http.MethodPost, "/v1/task/imageannotation", strings.NewReader(big))
	req.SetBasicAuth(DefaultTestKey, "")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "request body too large") {
		t.Fatalf("oversized body: %d %s", rec.Code, rec.Body)
	}
}

func TestNewTaskIDFormat(t *testing.T) {
	for _, seed := range []int64{1, 42, -7} {
		s := New(Config{Seed: seed, NoAutoComplete: true})
		for range 5 {
			n := s.idSeq.Load() + 1
			want := fmt.Sprintf("%08x%016x", s.idPrefix, splitmix(n^s.idPrefix<<32))
			if got := s.newTaskID(); got != want {
				t.Errorf("newTaskID() = %q, want %q", got, want)
			}
		}
		s.Close()
	}
}

// TestCallbackRequestMatchesNewRequest checks that the callback request
// is the one http.NewRequestWithContext builds, plus the callback headers,
// including when the parsed URL is reused.
func TestCallbackRequestMatchesNewRequest(t *testing.T) {
	s := New(Config{NoAutoComplete: true, CallbackAuthKey: "k"})
	defer s.Close()
	ctx := t.Context()
	urls := []string{
		"http://127.0.0.1:8080/callback", "http://127.0.0.1:8080/callback", "https://example.com/cb?x=1&y=%20",
		"http://example.com:/cb", "http://[::1]:9/cb", "http://[::1]:/cb", "http://user:pw@h/cb#frag", "http://h/a%2Fb",
	}
	for _, raw := range urls {
		for _, body := range [][]byte{[]byte(`{"task":{}}`), nil} {
			t.Run(fmt.Sprintf("%s %q", raw, body), func(t *testing.T) {
				want, err := http.NewRequestWithContext(ctx, http.MethodPost, raw, bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				want.Header.Set("Content-Type", "application/json")
				want.Header.Set(CallbackAuthHeader, "k")
				got, err := s.callbackRequest(ctx, &delivery{url: raw, body: body})
				if err != nil {
					t.Fatal(err)
				}
				if got.Method != want.Method || got.URL.String() != want.URL.String() || got.Host != want.Host ||
					got.Proto != want.Proto || got.ProtoMajor != want.ProtoMajor || got.ProtoMinor != want.ProtoMinor ||
					got.ContentLength != want.ContentLength || !reflect.DeepEqual(got.Header, want.Header) ||
					got.Context() != want.Context() || (got.Body == http.NoBody) != (want.Body == http.NoBody) {
					t.Fatalf("callbackRequest = %+v\nwant %+v", got, want)
				}
				for range 2 { // the body and a rewound copy
					rc, _ := got.GetBody()
					var b bytes.Buffer
					_, _ = b.ReadFrom(rc)
					if !bytes.Equal(b.Bytes(), body) {
						t.Fatalf("GetBody gives %q, want %q", b.Bytes(), body)
					}
				}
			})
		}
	}
	if _, err := s.callbackRequest(ctx, &delivery{url: "http://bad host/%zz"}); err == nil {
		t.Fatal("callbackRequest accepted an invalid URL")
	}
}
