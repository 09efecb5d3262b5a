package submit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// buildParamsReference is buildParams as it was before the fast scan: the
// top level and metadata decoded by encoding/json.
func buildParamsReference(p jobs.SubmitPayload, defaultCallback string) (refonte.TaskParams, error) {
	var raw map[string]json.RawMessage
	if body := bytes.TrimSpace(p.Params); len(body) > 0 && !bytes.Equal(body, []byte("null")) {
		if err := json.Unmarshal(body, &raw); err != nil {
			return nil, fmt.Errorf("%w: params are not a JSON object: %v", jobs.ErrBadPayload, err)
		}
	}
	params := make(refonte.TaskParams, len(raw)+3)
	for k, v := range raw {
		params[k] = v
	}
	params[refonte.ParamUniqueID] = p.UniqueID
	var cb string
	if v, ok := raw[refonte.ParamCallbackURL]; ok {
		_ = json.Unmarshal(v, &cb)
	}
	switch {
	case cb != "":
		params[refonte.ParamCallbackURL] = cb
	case defaultCallback != "":
		params[refonte.ParamCallbackURL] = defaultCallback
	}
	ours := map[string]any{"run": p.Run, "line": p.Line}
	md := map[string]any{}
	if v, ok := raw[refonte.ParamMetadata]; ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(v, &obj); err == nil {
			for k, x := range obj {
				md[k] = x
			}
		} else {
			md["value"] = v
		}
	}
	md[MetadataKey] = ours
	params[refonte.ParamMetadata] = md
	return params, nil
}

// checkBuildParams fails t unless buildParams gives what
// buildParamsReference gives for the params body and default callback,
// and reports whether the fast scan took the body.
func checkBuildParams(t *testing.T, body []byte, defaultCallback string) (fast bool) {
	t.Helper()
	p := jobs.SubmitPayload{V: 1, Run: "run-1", Line: 17, UniqueID: "u-17", TaskType: refonte.TypeImageAnnotation, Mode: refonte.ModeTest}
	want, wantErr := buildParamsReference(withParams(p, body), defaultCallback)
	in := bytes.Clone(body)
	got, err := buildParams(withParams(p, in), defaultCallback)
	clear(in) // the result must not alias the payload, as encoding/json's copies do not
	if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("buildParams(%q) error = %v, want %v", body, err, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("buildParams(%q) =\n%#v\nwant\n%#v", body, got, want)
	}
	trimmed := bytes.TrimSpace(body)
	_, fast = scanObject(trimmed, 0)
	return fast
}

func withParams(p jobs.SubmitPayload, body []byte) jobs.SubmitPayload {
	if body != nil {
		p.Params = body
	}
	return p
}

func TestBuildParamsMatchesEncodingJSON(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	tests := []struct {
		name string
		in   string
		fast bool // whether scanObject takes the trimmed body
	}{
		{"typical", benchParams, true},
		{"empty object", `{}`, true},
		{"white space", " \n{ \"a\" : 1 ,\t\"b\":[ 1, {\"c\" : null} ] }\r\n", true},
		{"unicode space around", "\u00a0{\"a\":1}\v", true},
		{"nested and escapes", `{"a":{"b":[1,2.5e-7,{"c":null}],"d":"\u003cé\\\"\u2028"},"e":-0.0,"f":true,"g":false,"h":"😀"}`, true},
		{"escaped keys", `{"\u0061":1,"b\n\"":2,"\ud83d\ude00":3,"\ud800":4,"é":5}`, true},
		{"escaped key equal to plain one", `{"a":1,"\u0061":2}`, true},
		{"duplicate keys: last wins", `{"a":1,"b":2,"a":3}`, true},
		{"duplicate callback_url", `{"callback_url":"https://one","callback_url":"https://two"}`, true},
		{"invalid UTF-8 in a value", "{\"a\":\"\xff\xfe\"}", true},
		{"invalid UTF-8 in a key", "{\"\xff\":1}", false},
		{"more members than the stack holds", "{" + strings.TrimSuffix(strings.Repeat(`"k":1,`, 40), ",") + "}", true},
		{"callback_url string", `{"callback_url":"https://row"}`, true},
		{"callback_url escaped", `{"callback_url":"https:\/\/row\u002fx"}`, true},
		{"callback_url invalid UTF-8", "{\"callback_url\":\"https://\xff\"}", true},
		{"callback_url empty", `{"callback_url":""}`, true},
		{"callback_url null", `{"callback_url":null}`, true},
		{"callback_url number", `{"callback_url":17}`, true},
		{"callback_url object", `{"callback_url":{"u":"x"}}`, true},
		{"metadata object", `{"metadata":{"k":"v","n":[1,2],"refonte_batch":"theirs"}}`, true},
		{"metadata empty", `{"metadata":{}}`, true},
		{"metadata null", `{"metadata":null}`, true},
		{"metadata string", `{"metadata":"x"}`, true},
		{"metadata array", `{"metadata":[1,2]}`, true},
		{"metadata number", `{"metadata":1.5}`, true},
		{"metadata duplicate keys", `{"metadata":{"k":1,"k":2}}`, true},
		{"metadata escaped keys", `{"metadata":{"\u006b":1,"x\ty":2}}`, true},
		{"metadata invalid UTF-8 key", "{\"metadata\":{\"\xff\":1}}", true},
		{"unique_id overridden", `{"unique_id":"theirs"}`, true},
		{"as deep as allowed", `{"a":` + deep(9999) + `}`, true},
		{"too deep", `{"a":` + deep(10000) + `}`, false},
		{"null", `null`, false},
		{"null with space", ` null `, false},
		{"empty", ``, false},
		{"space only", `  `, false},
		{"array", `[1,2]`, false},
		{"string", `"x"`, false},
		{"number", `1`, false},
		{"trailing comma", `{"a":1,}`, false},
		{"trailing data", `{"a":1}x`, false},
		{"two objects", `{}{}`, false},
		{"truncated", `{"a":1`, false},
		{"missing colon", `{"a" 1}`, false},
		{"bad escape in key", `{"\q":1}`, false},
		{"control character in value", "{\"a\":\"\n\"}", false},
		{"bad number", `{"a":01}`, false},
	}
	for _, tt := range tests {
		for _, cb := range []string{"", "https://default"} {
			t.Run(tt.name+"/default "+cb, func(t *testing.T) {
				if fast := checkBuildParams(t, []byte(tt.in), cb); fast != tt.fast {
					t.Errorf("fast scan took it: %v, want %v", fast, tt.fast)
				}
			})
		}
	}
	t.Run("nil params", func(t *testing.T) { checkBuildParams(t, nil, "https://default") })
}

func TestBuildParamsResult(t *testing.T) {
	p := jobs.SubmitPayload{Run: "r", Line: 3, UniqueID: "u",
		Params: json.RawMessage(`{"a":{"x": 1},"callback_url":"https://row","metadata":{"k":"v"},"unique_id":"theirs"}`)}
	got, err := buildParams(p, "https://default")
	if err != nil {
		t.Fatal(err)
	}
	want := refonte.TaskParams{
		"a":            json.RawMessage(`{"x": 1}`),
		"callback_url": "https://row",
		"unique_id":    "u",
		"metadata": map[string]any{
			"k":         json.RawMessage(`"v"`),
			MetadataKey: map[string]any{"run": "r", "line": int64(3)},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("buildParams = %#v\nwant %#v", got, want)
	}
	if _, err := buildParams(jobs.SubmitPayload{Params: json.RawMessage(`[1]`)}, ""); err == nil ||
		!strings.Contains(err.Error(), "params are not a JSON object: json: cannot unmarshal array") {
		t.Errorf("array params: error %v", err)
	}
}

// FuzzBuildParams: for any params body and default callback, buildParams
// gives exactly what encoding/json gives (value and error text).
func FuzzBuildParams(f *testing.F) {
	seeds := []string{
		benchParams,
		`{"a":{"b":[1,2.5e-7,{"c":null}],"d":"\u003cé\\\"\u2028"},"callback_url":"https://cb","metadata":{"k":[true,false]}}`,
		`{"\u0061":1,"a":2,"callback_url":17,"metadata":null}`,
		`{"callback_url":"h\u00e9","metadata":"x"}`,
		`{"metadata":{"\ud800":1,"k":2,"k":3},"callback_url":null}`,
		"{\"\xff\":\"\xfe\",\"metadata\":{\"\xff\":1}}",
		` {"a" : [ ] } `,
		`null`,
		`[1]`,
	}
	for _, s := range seeds {
		// As the producer writes it: inside a payload, decoded back.
		b := jobs.AppendSubmitPayload(nil, jobs.SubmitPayload{Run: "r", UniqueID: "u", Mode: refonte.ModeTest,
			TaskType: refonte.TypeImageAnnotation, Params: json.RawMessage(s)})
		if p, err := jobs.DecodeSubmitPayload(b); err == nil {
			f.Add([]byte(p.Params), "")
		}
		f.Add([]byte(s), "https://default")
	}
	f.Fuzz(func(t *testing.T, body []byte, defaultCallback string) {
		checkBuildParams(t, body, defaultCallback)
	})
}

// benchParams is a typical row's create body, as json.Marshal writes it.
const benchParams = `{"attachment":"https://example.com/images/000123.jpg","attachment_type":"image","batch":"batch-2026-11","callback_url":"https://hooks.example.com/refonte","instruction":"Draw a box around every car","metadata":{"row":17,"source":"images.csv"},"project":"cars","unique_id":"run-42-000017"}`

func BenchmarkBuildParams(b *testing.B) {
	p := jobs.SubmitPayload{V: 1, Run: "run-42", Line: 17, UniqueID: "run-42-000017",
		TaskType: refonte.TypeImageAnnotation, Mode: refonte.ModeTest, Params: json.RawMessage(benchParams)}
	for _, bm := range []struct {
		name  string
		build func(jobs.SubmitPayload, string) (refonte.TaskParams, error)
	}{
		{"fast", buildParams},
		{"encoding-json", buildParamsReference},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bm.build(p, "https://default.example/cb"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
