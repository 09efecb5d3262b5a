package store_test

import (
	"reflect"
	"testing"

	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// TestRunReadSpec: the read spec a run is created with comes back from
// GetRun; a run created without one has none.
func TestRunReadSpec(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name string
		spec *store.ReadSpec
	}{
		{"none", nil},
		{"format only", &store.ReadSpec{Format: "csv"}},
		{"all", &store.ReadSpec{Format: "jsonl", IDColumn: "image_id", Instruction: "Box every car.",
			Params: []byte(`{"metadata":{"team":"a"},"priority":2}`)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &store.Run{Dataset: "d.csv", Mode: refonte.ModeTest, ReadSpec: tc.spec}
			if err := e.st.CreateRun(e.ctx, r); err != nil {
				t.Fatal(err)
			}
			got := e.run(r.ID).ReadSpec
			if !reflect.DeepEqual(got, tc.spec) {
				t.Errorf("ReadSpec = %+v, want %+v", got, tc.spec)
			}
		})
	}
}
