package store_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// TestRunRetryingAndLastError: a failed attempt of a queued row counts the
// row as retrying in every run that holds it (once, however many attempts
// fail) and becomes the runs' last API error; whatever moves the row on
// (a create, a callback, a failure, a successful attempt) takes it out of
// retrying, and the last error stays for the operator.
func TestRunRetryingAndLastError(t *testing.T) {
	m := refonte.ModeTest
	tests := []struct {
		name  string
		after func(e *env) error // what happens to uid-1 after two failed attempts
		want  int64              // retrying afterwards
	}{
		{"still queued", func(*env) error { return nil }, 1},
		{"created", func(e *env) error { _, err := e.st.RecordCreated(e.ctx, m, "uid-1", "t1"); return err }, 0},
		{"409 resolved", func(e *env) error { _, err := e.st.MarkSubmitted(e.ctx, m, "uid-1", "t1"); return err }, 0},
		{"created finished", func(e *env) error {
			_, err := e.st.RecordCreatedTerminal(e.ctx, m, "uid-1", outcome("t1", refonte.StatusCompleted, time.Now()))
			return err
		}, 0},
		{"callback first", func(e *env) error {
			_, err := e.st.Complete(e.ctx, m, "uid-1", outcome("t1", refonte.StatusCompleted, time.Now()))
			return err
		}, 0},
		{"failed for good", func(e *env) error { _, err := e.st.Fail(e.ctx, m, "uid-1", "gave up"); return err }, 0},
		{"a later attempt succeeded", func(e *env) error { return e.st.RecordAttempt(e.ctx, m, "uid-1", "") }, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			run := e.enqueuedRun(m, 1, 2)
			rerun := e.enqueuedRun(m, 1, 1) // a second run holding uid-1
			for _, msg := range []string{"503 service unavailable", "refonte: POST /task/imageannotation: context deadline exceeded"} {
				if err := e.st.RecordAttempt(e.ctx, m, "uid-1", msg); err != nil {
					t.Fatal(err)
				}
			}
			for _, id := range []string{run.ID, rerun.ID} {
				r := e.run(id)
				if r.Retrying != 1 || !strings.Contains(r.LastError, "deadline exceeded") || r.LastErrorAt.IsZero() {
					t.Fatalf("run %s after two failed attempts: retrying %d, last error %q at %v; want 1 and the newest error",
						id, r.Retrying, r.LastError, r.LastErrorAt)
				}
			}
			if err := tc.after(e); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{run.ID, rerun.ID} {
				if r := e.run(id); r.Retrying != tc.want || r.LastError == "" {
					t.Errorf("run %s: retrying %d, last error %q; want %d and the error kept", id, r.Retrying, r.LastError, tc.want)
				}
			}
		})
	}
}

// TestRunLastErrorIsBounded: a huge API error is cut on the run record
// (at a UTF-8 boundary), not on the row's own record.
func TestRunLastErrorIsBounded(t *testing.T) {
	e := newEnv(t)
	m := refonte.ModeTest
	run := e.enqueuedRun(m, 1, 1)
	huge := strings.Repeat("é", 10_000)
	if err := e.st.RecordAttempt(e.ctx, m, "uid-1", huge); err != nil {
		t.Fatal(err)
	}
	r := e.run(run.ID)
	if len(r.LastError) > store.MaxRunErrorBytes || !utf8.ValidString(r.LastError) || !strings.HasSuffix(r.LastError, "…") {
		t.Errorf("run last error: %d bytes, valid UTF-8 %v; want at most %d, cut with …", len(r.LastError),
			utf8.ValidString(r.LastError), store.MaxRunErrorBytes)
	}
	if j := e.job(m, "uid-1"); j.Error != huge {
		t.Errorf("the row's own error was cut to %d bytes", len(j.Error))
	}
	// An attempt of a row that is not queued any more is no retry.
	if _, err := e.st.MarkSubmitted(e.ctx, m, "uid-1", "t1"); err != nil {
		t.Fatal(err)
	}
	if err := e.st.RecordAttempt(e.ctx, m, "uid-1", "late error"); err != nil {
		t.Fatal(err)
	}
	if r := e.run(run.ID); r.Retrying != 0 {
		t.Errorf("retrying %d after an attempt error of a submitted row, want 0", r.Retrying)
	}
}
