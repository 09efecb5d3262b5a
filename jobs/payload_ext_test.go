package jobs

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/refonte-ai/refonte-batch/refonte"
)

func TestAppendSubmitPayloadMatchesMarshal(t *testing.T) {
	tests := []struct {
		name string
		p    SubmitPayload
	}{
		{"plain", SubmitPayload{V: 1, Run: "r1", Line: 7, UniqueID: "abc", TaskType: refonte.TaskType("imageannotation"), Mode: refonte.ModeTest, Params: json.RawMessage(`{"a":1}`)}},
		{"default version", SubmitPayload{Run: "r1", Line: 1, UniqueID: "u", Mode: refonte.ModeLive, Params: json.RawMessage(`{}`)}},
		{"escapes", SubmitPayload{V: 1, Run: "r\"1\\", Line: 1 << 40, UniqueID: "é<>&\n\x01", Mode: refonte.ModeTest, Params: json.RawMessage(`{"x":"y"}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendSubmitPayload([]byte("prefix"), tt.p)
			if !bytes.HasPrefix(got, []byte("prefix")) {
				t.Fatalf("dst prefix lost: %s", got)
			}
			got = got[len("prefix"):]
			want := tt.p
			if want.V == 0 {
				want.V = PayloadVersion
			}
			wantJSON, err := json.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, wantJSON) {
				t.Errorf("AppendSubmitPayload = %s\nwant %s", got, wantJSON)
			}
		})
	}
}

func TestAppendSubmitPayloadEmptyParams(t *testing.T) {
	got := AppendSubmitPayload(nil, SubmitPayload{Run: "r", UniqueID: "u", Mode: refonte.ModeTest})
	var p SubmitPayload
	if err := json.Unmarshal(got, &p); err != nil {
		t.Fatalf("not JSON: %s: %v", got, err)
	}
	if string(p.Params) != "{}" {
		t.Errorf("params = %s, want {}", p.Params)
	}
}

// TestAppendSubmitPayloadCoversEveryField fills every field of
// SubmitPayload, found by reflection, and compares AppendSubmitPayload with
// json.Marshal: a field added to the struct only fails here.
func TestAppendSubmitPayloadCoversEveryField(t *testing.T) {
	var p SubmitPayload
	v := reflect.ValueOf(&p).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch {
		case f.Type() == reflect.TypeOf(json.RawMessage(nil)):
			f.SetBytes([]byte(`{"k":1}`))
		case f.Kind() == reflect.String:
			f.SetString("s" + v.Type().Field(i).Name)
		case f.CanInt():
			f.SetInt(int64(7 + i))
		default:
			t.Fatalf("field %s of kind %s: teach AppendSubmitPayload (and this test) to write it",
				v.Type().Field(i).Name, f.Kind())
		}
	}
	want, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := AppendSubmitPayload(nil, p); !bytes.Equal(got, want) {
		t.Fatalf("AppendSubmitPayload = %s\njson.Marshal   = %s", got, want)
	}
}

// BenchmarkSubmitPayload compares AppendSubmitPayload with json.Marshal on a
// typical row's payload (the producer writes one per row).
func BenchmarkSubmitPayload(b *testing.B) {
	p := SubmitPayload{V: PayloadVersion, Run: "r-0123456789", Line: 123456, UniqueID: "rb1_0123456789abcdef0123456789abcdef",
		TaskType: refonte.TypeImageAnnotation, Mode: refonte.ModeTest,
		Params: []byte(`{"attachment":"https://images.example.com/img/000123.jpg","attachment_type":"image","batch":"b1",` +
			`"callback_url":"https://cb.example.com/hook","geometries":{"box":{"objects_to_annotate":["car","person","bicycle"],` +
			`"min_height":10,"min_width":10}},"instruction":"Annotate every vehicle and person in the image.",` +
			`"metadata":{"row":123,"source":"synthetic"},"project":"bench","unique_id":"rb1_0123456789abcdef0123456789abcdef"}`)}
	b.Run("append", func(b *testing.B) {
		var buf []byte
		for range b.N {
			buf = AppendSubmitPayload(buf[:0], p)
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		for range b.N {
			if _, err := json.Marshal(p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
