package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// TestTaskOutcome checks the one task → stored outcome rule shared by the
// submit handler, the callback receiver and the reconciler.
func TestTaskOutcome(t *testing.T) {
	updated := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	completed := updated.Add(-time.Second)
	for _, tc := range []struct {
		name         string
		task         refonte.Task
		wantResponse string
		wantError    string
		wantAt       time.Time
	}{
		{"completed", refonte.Task{ID: "t1", Status: refonte.StatusCompleted, Response: json.RawMessage(`{"a":1}`), UpdatedAt: updated},
			`{"a":1}`, "", updated},
		{"null response dropped", refonte.Task{ID: "t1", Status: refonte.StatusCanceled, Response: json.RawMessage(` null `), CompletedAt: &completed},
			"", "", completed},
		{"error: the API's reason", refonte.Task{ID: "t1", Status: refonte.StatusError, Response: json.RawMessage(`{"error":"no such image"}`)},
			`{"error":"no such image"}`, "no such image", time.Time{}},
		{"error: a reason that is not a string", refonte.Task{ID: "t1", Status: refonte.StatusError, Response: json.RawMessage(`{"error":{"code":7}}`)},
			`{"error":{"code":7}}`, `{"code":7}`, time.Time{}},
		{"error without a reason", refonte.Task{ID: "t1", Status: refonte.StatusError, Response: json.RawMessage(`null`)},
			"", "the API reported status error without a reason", time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := store.TaskOutcome(&tc.task)
			if o.TaskID != tc.task.ID || o.Status != tc.task.Status || string(o.Response) != tc.wantResponse ||
				o.Error != tc.wantError || !o.At.Equal(tc.wantAt) {
				t.Fatalf("TaskOutcome = %+v (response %s); want response %q, error %q, at %v",
					o, o.Response, tc.wantResponse, tc.wantError, tc.wantAt)
			}
		})
	}
}
