package refonte

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// rawParams returns TaskParams whose values are raw JSON, as the worker
// builds them.
func rawParams(kv ...string) TaskParams {
	p := TaskParams{}
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i]] = json.RawMessage(kv[i+1])
	}
	return p
}

type named string

type marshaler struct{}

func (marshaler) MarshalJSON() ([]byte, error) { return []byte(`{ "m" : 1 }`), nil }

type failing struct{}

func (failing) MarshalJSON() ([]byte, error) { return nil, errors.New("boom") }

func TestMarshalParamsMatchesEncodingJSON(t *testing.T) {
	self := map[string]any{}
	self["self"] = self
	deep := map[string]any{}
	for d, i := deep, 0; i < 100; i++ {
		n := map[string]any{}
		d["d"] = n
		d = n
	}
	tests := []struct {
		name   string
		params TaskParams
	}{
		{"nil", nil},
		{"empty", TaskParams{}},
		{"benchmark shape", TaskParams{"project": "demo", "attachment": "https://cdn.example.com/img/1.jpg",
			"geometries": map[string]any{"box": map[string]any{"objects_to_annotate": []string{"car"}}},
			"metadata":   map[string]any{"source_row": 17}, "unique_id": "bench:1"}},
		{"worker shape", TaskParams{"attachment": json.RawMessage(`"https://e/1.jpg"`), "unique_id": "u-1",
			"callback_url": "https://cb.example/x?a=1&b=<2>",
			"geometries":   json.RawMessage(" {\"box\" : {\"objects_to_annotate\": [\"car\", \"bus\"]}}\n"),
			"metadata":     map[string]any{"src": json.RawMessage(`17`), "refonte_batch": map[string]any{"run": "r1", "line": int64(17)}}}},
		{"raw with HTML and separators", rawParams("a", `"<b>&amp;</b>"`, "b", "\"\u2028\u2029\"", "c", `{"x" : "a&b"}`)},
		{"raw null and nil", TaskParams{"a": json.RawMessage(`null`), "b": json.RawMessage(nil), "c": nil}},
		{"invalid raw", rawParams("a", `{"x":`)},
		{"empty raw", TaskParams{"a": json.RawMessage{}}},
		{"escapes", TaskParams{"s": "quote\" back\\ nl\n tab\t cr\r bs\b ff\f nul\x00 del\x7f <>& \u2028\u2029 é 日本 \xff\xfe bad"}},
		{"keys need escaping", TaskParams{"<k>": 1, "a\"b": 2, "é": 3, "\xff": 4}},
		{"numbers", TaskParams{"i": -3, "i32": int32(7), "i64": int64(math.MaxInt64), "u64": uint64(math.MaxUint64),
			"f": 1.5, "fz": 0.0, "fneg": -0.0, "fsmall": 1e-7, "fbig": 1e21, "fint": 3.0, "f9": 1.23e-9, "u8": uint8(3), "f32": float32(0.1)}},
		{"NaN", TaskParams{"f": math.NaN()}},
		{"Inf", TaskParams{"f": math.Inf(1)}},
		{"bools and nulls", TaskParams{"t": true, "f": false, "n": nil}},
		{"slices", TaskParams{"a": []any{1, "x", nil, []any{}, map[string]any{}}, "s": []string{}, "ns": []string(nil),
			"na": []any(nil), "nm": map[string]any(nil), "b": []byte("hi")}},
		{"nested params", TaskParams{"p": TaskParams{"z": 1, "a": 2}, "np": TaskParams(nil)}},
		{"named and marshalers", TaskParams{"n": named("x<"), "m": marshaler{}, "t": time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
			"ms": map[string]string{"b": "1", "a": "2"}}},
		{"failing marshaler", TaskParams{"f": failing{}}},
		{"cycle", TaskParams{"c": self}},
		{"deep", TaskParams{"d": deep}},
		{"many keys", func() TaskParams {
			p := TaskParams{}
			for _, k := range strings.Fields("q w e r t y u i o p a s d f g h j k l z x c v b n m Q W E R T Y") {
				p[k] = k
			}
			return p
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, wantErr := json.Marshal(tt.params)
			got, err := marshalParams(tt.params)
			if !bytes.Equal(got, want) || (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
				t.Errorf("marshalParams = %s, %v\nwant %s, %v", got, err, want, wantErr)
			}
		})
	}
}

// decodeTaskStd decodes a task answer as the client did before the fast
// path: the first value of the stream.
func decodeTaskStd(body []byte) (Task, error) {
	var t Task
	err := json.NewDecoder(bytes.NewReader(body)).Decode(&t)
	return t, err
}

func taskBodies(t testing.TB) []string {
	completed, err := os.ReadFile("testdata/callback_completed.json")
	if err != nil {
		t.Fatal(err)
	}
	errored, err := os.ReadFile("testdata/callback_error.json")
	if err != nil {
		t.Fatal(err)
	}
	return []string{
		taskJSON,
		string(completed),
		string(errored),
		`{}`, ` {"task_id":"a"} trailing`, `{"task_id":"a"}{"task_id":"b"}`, `null`, ``, ` `, `[]`, `"x"`, `{`,
		`{"task_id":"a\"b\u00e9\ud83d\ude00","instruction":"Dessinez les boîtes\n<b>","tags":["é","\u2028",null]}`,
		`{"task_id":"bad utf8 \xff","project":"\xed\xa0\x80"}`,
		`{"task_id":"a","task_id":"b"}`,
		`{"TASK_ID":"a"}`, `{"Task_Id":"a","Status":"completed"}`, "{\"\u212a\":1,\"is_test\":true}", `{"ta\u0073k_id":"x"}`,
		`{"unknown":{"deep":[1,2,{"x":null}]},"task_id":"a","other":-1.5e+10}`,
		`{"task_id":1}`, `{"status":true}`, `{"tags":"a"}`, `{"tags":[1]}`, `{"tags":[]}`, `{"tags":null}`,
		`{"is_test":null,"callback_succeeded":null,"completed_at":null,"params":null,"metadata":null,"response":null}`,
		`{"is_test":false,"callback_succeeded":false}`, `{"is_test":1}`, `{"callback_succeeded":"yes"}`,
		`{"created_at":"2026-11-26T20:08:31.573+02:00","updated_at":"2026-11-26T20:08:31Z","completed_at":"2026-11-26T21:00:00.000000001Z"}`,
		`{"created_at":"bad"}`, `{"created_at":1}`, `{"created_at":{}}`, `{"created_at":null,"updated_at":null}`,
		`{"completed_at":"bad"}`, `{"created_at":"2026-11-26T20:08:31\u002e573Z"}`,
		`{"params":{"a":[1,2,3],"b":"<&>"},"metadata":[],"response":"text"}`,
		`{"params":01}`, `{"params":1.}`, `{"params":-}`, `{"params":1e}`, `{"params":tru}`, `{"params":"\x01"}`,
		`{"params":"\q"}`, `{"params":"\u12"}`, `{"params":[1,]}`, `{"params":{"a":1,}}`, `{"params":{"a"}}`,
		`{"task_id":"a",}`, `{"task_id" "a"}`, `{,}`, `{"task_id":"a"`, `{"task_id":"a"  ,  "type" : "x" }`,
		`{"params":` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `}`,
		`{"params":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`,
	}
}

func TestDecodeTaskAnswerMatchesEncodingJSON(t *testing.T) {
	for _, body := range taskBodies(t) {
		name := body
		if len(name) > 60 {
			name = name[:60]
		}
		t.Run(name, func(t *testing.T) {
			checkTaskDecode(t, []byte(body))
		})
	}
}

// checkTaskDecode checks that decodeAnswer decodes body as a json.Decoder
// does: same task, same error.
func checkTaskDecode(t *testing.T, body []byte) {
	want, wantErr := decodeTaskStd(body)
	var got Task
	_, err := decodeAnswer(&http.Response{Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body))}, &got)
	if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("error %v, want %v", err, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded %+v\nwant %+v", got, want)
	}
	// The fast path alone never accepts what the Decoder refuses.
	var fast Task
	if decodeTaskAnswer(body, &fast) && (wantErr != nil || !reflect.DeepEqual(fast, want)) {
		t.Fatalf("fast path accepted %q: %+v, want %+v, %v", body, fast, want, wantErr)
	}
}

func TestDecodeAnswerReadError(t *testing.T) {
	reset := errors.New("connection reset")
	tests := []struct {
		name string
		body string
	}{
		{"complete value before the error", `{"task_id":"a"}`},
		{"truncated value", `{"task_id":"a"`},
		{"nothing", ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := func() io.Reader { return io.MultiReader(strings.NewReader(tt.body), errReader{reset}) }
			var want Task
			wantErr := json.NewDecoder(src()).Decode(&want)
			var got Task
			_, err := decodeAnswer(&http.Response{Body: io.NopCloser(src()), ContentLength: -1}, &got)
			if !errors.Is(err, wantErr) && (err != nil || wantErr != nil) {
				t.Fatalf("error %v, want %v", err, wantErr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("decoded %+v, want %+v", got, want)
			}
		})
	}
}

func TestDecodedTaskRawValuesAreIndependent(t *testing.T) {
	var task Task
	if !decodeTaskAnswer([]byte(`{"params":{"a":1},"metadata":{"b":2},"task_id":"t"}`), &task) {
		t.Fatal("fast path refused a plain task")
	}
	task.Params = append(task.Params, "xxxxxxxx"...)
	if string(task.Metadata) != `{"b":2}` || task.ID != "t" {
		t.Errorf("appending to Params changed Metadata %s or ID %q", task.Metadata, task.ID)
	}
}

func TestDecodeCallbackMatchesEncodingJSON(t *testing.T) {
	bodies := []string{
		`{"task_id":"t1","status":"completed","response":{"a":1}}`,
		`{"task":{"task_id":"t2","status":"canceled","unique_id":"u","metadata":{"m":1},"response":null}}`,
		`{"task":null,"task_id":"t4"}`, `{"task":{}}`, `{"task":"x"}`, `{"task":{"task_id":"x","completed_at":"bad"}}`,
		`[]`, `null`, ``, `{"task_id":1}`, `{}`, ` {"task_id":"a"} `, `{"task_id":"a"} x`, `{"task_id":"a"}{}`,
		`{"task_id":null,"status":null,"unique_id":null,"response":null,"metadata":null}`,
		`{"task_id":"a","task_id":"b"}`, `{"Task_ID":"a"}`, `{"TASK":{"task_id":"x"}}`, `{"extra":[{"a":"\u00e9"}],"task_id":"é"}`,
		`{"task":{"task_id":"a","task_id":"b"}}`, `{"task":{"task_id":"a"},"task":{"status":"completed"}}`,
	}
	bodies = append(bodies, taskBodies(t)...)
	for _, tb := range taskBodies(t) {
		bodies = append(bodies, `{"task":`+tb+`,"task_id":"x"}`)
	}
	for _, body := range bodies {
		checkCallbackDecode(t, []byte(body))
	}
}

// checkCallbackDecode checks that decodeCallback never accepts what
// json.Unmarshal refuses, nor decodes differently.
func checkCallbackDecode(t *testing.T, body []byte) {
	var std callbackWire
	wantErr := json.Unmarshal(body, &std)
	want := std.fields()
	var got callbackFields
	if decodeCallback(body, bytes.Clone(body), &got) {
		if wantErr != nil {
			t.Fatalf("fast path accepted %q, json.Unmarshal: %v", body, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: decoded %+v\nwant %+v", body, got, want)
		}
	}
}

// FuzzWireJSON checks the fast decoders against encoding/json on any input.
func FuzzWireJSON(f *testing.F) {
	for _, b := range taskBodies(f) {
		f.Add([]byte(b))
		f.Add([]byte(`{"task":` + b + `}`))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkTaskDecode(t, body)
		checkCallbackDecode(t, body)
	})
}

// TestFastPathsTaken keeps the hot shapes on the fast paths: a fallback to
// encoding/json would be correct but slow.
func TestFastPathsTaken(t *testing.T) {
	completed, err := os.ReadFile("testdata/callback_completed.json")
	must(t, err)
	tasks := []string{taskJSON, `{"task_id":"a","instruction":"Dessinez les boîtes\n","tags":["é"],"extra":{"x":[1,true,null]}}`}
	for _, body := range tasks {
		var task Task
		if !decodeTaskAnswer([]byte(body), &task) {
			t.Errorf("task answer left to encoding/json: %s", body)
		}
	}
	callbacks := []string{string(completed), `{"task_id":"t1","status":"completed","response":{"a":1}}`,
		`{"task":` + taskJSON + `,"task_id":"t-1","status":"completed","response":{"annotations":[]}}`}
	for _, body := range callbacks {
		var wire callbackFields
		if !decodeCallback([]byte(body), []byte(body), &wire) {
			t.Errorf("callback left to encoding/json: %s", body)
		}
	}
	params := []TaskParams{
		{"project": "demo", "attachment": "https://e/1.jpg", "metadata": map[string]any{"source_row": 17}, "tags": []string{"a"}},
		{"geometries": json.RawMessage(`{"box":{}}`), "unique_id": "u", "metadata": map[string]any{"refonte_batch": map[string]any{"run": "r", "line": int64(1)}}},
	}
	for _, p := range params {
		buf := new(bytes.Buffer)
		if !appendParams(buf, p) {
			t.Errorf("params left to encoding/json: %v", p)
		}
	}
}

// BenchmarkTaskWire compares the fast paths with encoding/json on the
// create's body and answer (the shapes of BenchmarkCreateTask).
//
//	go test -run '^$' -bench TaskWire -benchmem ./refonte/
func BenchmarkTaskWire(b *testing.B) {
	params := TaskParams{"project": "demo", "attachment": "https://cdn.example.com/img/17.jpg",
		"geometries": json.RawMessage(`{"box":{"objects_to_annotate":["car"]}}`),
		"metadata":   map[string]any{"source_row": json.RawMessage(`17`), "refonte_batch": map[string]any{"run": "r1", "line": int64(17)}},
		"unique_id":  "bench:17", "callback_url": "https://cb.example/callback"}
	answer := []byte(taskJSON)
	b.Run("encode/encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(params); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode/wirejson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := marshalParams(params); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var t Task
			if err := json.NewDecoder(io.LimitReader(bytes.NewReader(answer), maxResponseBody)).Decode(&t); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/wirejson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var t Task
			resp := &http.Response{Body: io.NopCloser(bytes.NewReader(answer)), ContentLength: int64(len(answer))}
			if _, err := decodeAnswer(resp, &t); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzMarshalParams checks the fast encoder against json.Marshal.
func FuzzMarshalParams(f *testing.F) {
	f.Add("project", "demo <&> \u2028", []byte(` {"a" : [1, "x"]} `), 1.5)
	f.Add("\xff", "\x00\"\\", []byte(`{"a":`), math.Inf(1))
	f.Fuzz(func(t *testing.T, k, v string, raw []byte, x float64) {
		p := TaskParams{k: v, "raw": json.RawMessage(raw), "f": x,
			"m": map[string]any{v: []any{k, x, json.RawMessage(raw)}, "s": []string{k, v}}}
		want, wantErr := json.Marshal(p)
		got, err := marshalParams(p)
		if !bytes.Equal(got, want) || (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
			t.Fatalf("marshalParams = %s, %v\nwant %s, %v", got, err, want, wantErr)
		}
	})
}

func TestReadAtMost(t *testing.T) {
	boom := errors.New("boom")
	long := strings.Repeat("x", 3000)
	tests := []struct {
		name    string
		r       io.Reader
		limit   int64
		want    string
		wantErr error
	}{
		{"empty", strings.NewReader(""), 10, "", nil},
		{"under the limit", strings.NewReader("abc"), 10, "abc", nil},
		{"at the limit", strings.NewReader("abc"), 3, "abc", nil},
		{"over the limit", strings.NewReader("abcdef"), 4, "abcd", nil},
		{"several reads", io.MultiReader(strings.NewReader(long), strings.NewReader(long)), 1 << 20, long + long, nil},
		{"zero limit", strings.NewReader("abc"), 0, "", nil},
		{"error after data", io.MultiReader(strings.NewReader("abc"), errReader{boom}), 10, "abc", boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := readAtMost(&buf, tt.r, tt.limit)
			if buf.String() != tt.want || !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Errorf("read %q, %v; want %q, %v", buf.String(), err, tt.want, tt.wantErr)
			}
		})
	}
}
