package jobs

import (
	"bytes"
	"encoding/json"
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
