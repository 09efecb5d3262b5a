package asynqwire

import "testing"

// TestDequeueQueue: only asynq's dequeue keys are recognized.
func TestDequeueQueue(t *testing.T) {
	tests := []struct {
		keys []string
		q    string
		ok   bool
	}{
		{[]string{"asynq:{refonte-test}:pending", "asynq:{refonte-test}:paused", "asynq:{refonte-test}:active", "asynq:{refonte-test}:lease"}, "refonte-test", true},
		{[]string{"asynq:{a}:pending", "asynq:{b}:paused", "asynq:{a}:active", "asynq:{a}:lease"}, "", false},
		{[]string{"asynq:{a}:pending", "asynq:{a}:paused", "asynq:{a}:active"}, "", false},
		{[]string{"asynq:{a}:t:1", "asynq:{a}:pending", "asynq:{a}:active", "asynq:{a}:lease"}, "", false},
		{nil, "", false},
		{[]string{"asynq:{a}:pending", "asynq:{a}:paused", "asynq:{a}:active", "asynq:{a}:leases"}, "", false},
		{[]string{"asynq:{a}:pending", "asynq:{a}:paused", "asynq:{ab}:active", "asynq:{a}:lease"}, "", false},
	}
	for _, tc := range tests {
		q, ok := DequeueQueue(tc.keys)
		if q != tc.q || ok != tc.ok {
			t.Errorf("DequeueQueue(%q) = %q, %v; want %q, %v", tc.keys, q, ok, tc.q, tc.ok)
		}
	}
}
