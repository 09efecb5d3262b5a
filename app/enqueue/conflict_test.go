package enqueue_test

import (
	"strings"
	"testing"

	"github.com/refonte-ai/refonte-batch/app/enqueue"
)

// TestSameIDDifferentContent is issue #17.9: a row reusing a unique_id
// for other content is a reject naming the line (or the earlier run) that
// holds the ID, never a silent duplicate; identical rows stay duplicates.
func TestSameIDDifferentContent(t *testing.T) {
	f := newFixture(t)
	row := func(id, file string) string {
		return `{"id":"` + id + `","attachment":"https://files.example.com/` + file + `.pdf"}` + "\n"
	}
	ds := f.write("ids.jsonl", row("x", "a")+row("y", "b")+row("x", "a")+row("x", "changed"))
	r := f.main("-type", "documenttranscription", "-id-column", "id", "-json", ds)
	if r.code != enqueue.ExitIncomplete {
		t.Fatalf("exit %d, want 3; stderr: %s", r.code, r.stderr)
	}
	m := r.lastJSON(t)
	for k, want := range map[string]int64{"rows": 4, "valid": 3, "invalid": 1, "enqueued": 2, "duplicate": 1} {
		if got := num(t, m, k); got != want {
			t.Errorf("%s = %d, want %d", k, got, want)
		}
	}
	run1 := m["run_id"].(string)
	if run := f.run(run1); run.Rows != 4 || run.Valid != 3 || run.Invalid != 1 {
		t.Errorf("run counters = %+v", run.Counters)
	}
	rj := readRejects(t, ds+".rejects.jsonl")
	if len(rj) != 1 || rj[0].Line != 4 || !strings.Contains(rj[0].Error, "line 1") ||
		!strings.Contains(rj[0].Error, `"x"`) || !strings.Contains(rj[0].Raw, "changed") {
		t.Errorf("rejects = %+v, want line 4 naming line 1", rj)
	}

	// The same dataset again: the same outcome (duplicates, one conflict).
	// A changed row in a later run names the run that holds its ID.
	f.write("ids.jsonl", row("x", "a")+row("y", "b2"))
	r = f.main("-type", "documenttranscription", "-id-column", "id", "-json", ds)
	if r.code != enqueue.ExitIncomplete {
		t.Fatalf("second run exit %d, want 3; stderr: %s", r.code, r.stderr)
	}
	if m := r.lastJSON(t); num(t, m, "duplicate") != 1 || num(t, m, "invalid") != 1 || num(t, m, "enqueued") != 0 {
		t.Errorf("second run = %v", m)
	}
	rj = readRejects(t, ds+".rejects.jsonl")
	if len(rj) != 1 || rj[0].Line != 2 || !strings.Contains(rj[0].Error, "run "+run1) || !strings.Contains(rj[0].Error, "line 2") {
		t.Errorf("rejects = %+v, want line 2 naming run %s", rj, run1)
	}

	// Identical rows only: duplicates, exit 0.
	f.write("ids.jsonl", row("x", "a")+row("x", "a"))
	if r := f.main("-type", "documenttranscription", "-id-column", "id", ds); r.code != enqueue.ExitOK {
		t.Errorf("identical rows: exit %d; %s", r.code, r.stderr)
	}
}
