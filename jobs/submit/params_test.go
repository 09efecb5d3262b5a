package submit

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/refonte"
)

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

// TestBuildParamsEdgeCases: absent params, a callback_url that is not a
// string (absent), and metadata that is not an object (kept under "value").
func TestBuildParamsEdgeCases(t *testing.T) {
	ours := map[string]any{"run": "r", "line": int64(3)}
	for _, tc := range []struct {
		name, params string
		want         refonte.TaskParams
	}{
		{"null", `null`, refonte.TaskParams{"unique_id": "u", "callback_url": "https://default",
			"metadata": map[string]any{MetadataKey: ours}}},
		{"callback_url not a string", `{"callback_url":17}`, refonte.TaskParams{"unique_id": "u",
			"callback_url": "https://default", "metadata": map[string]any{MetadataKey: ours}}},
		{"metadata not an object", `{"metadata":[1,2]}`, refonte.TaskParams{"unique_id": "u",
			"callback_url": "https://default", "metadata": map[string]any{"value": json.RawMessage(`[1,2]`), MetadataKey: ours}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := buildParams(jobs.SubmitPayload{Run: "r", Line: 3, UniqueID: "u", Params: json.RawMessage(tc.params)}, "https://default")
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("buildParams(%s) = %#v, %v\nwant %#v", tc.params, got, err, tc.want)
			}
		})
	}
}

// benchParams is a typical row's create body, as json.Marshal writes it.
const benchParams = `{"attachment":"https://example.com/images/000123.jpg","attachment_type":"image","batch":"batch-2026-11","callback_url":"https://hooks.example.com/refonte","instruction":"Draw a box around every car","metadata":{"row":17,"source":"images.csv"},"project":"cars","unique_id":"run-42-000017"}`

func BenchmarkBuildParams(b *testing.B) {
	p := jobs.SubmitPayload{V: 1, Run: "run-42", Line: 17, UniqueID: "run-42-000017",
		TaskType: refonte.TypeImageAnnotation, Mode: refonte.ModeTest, Params: json.RawMessage(benchParams)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := buildParams(p, "https://default.example/cb"); err != nil {
			b.Fatal(err)
		}
	}
}
