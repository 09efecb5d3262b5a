package console_test

import (
	"encoding/csv"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/refonte-ai/refonte-batch/app/console"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// TestResultsCSV: the run page links results.csv, and the route streams
// the rows joined to their outcomes, only while the worker can read the
// run's dataset; else no link and a 404.
func TestResultsCSV(t *testing.T) {
	st := newStore(t)
	ds := filepath.Join(t.TempDir(), "docs.jsonl")
	var b strings.Builder
	for _, n := range []string{"1", "2", "3"} {
		b.WriteString(`{"type":"documenttranscription","attachment":"https://x/` + n + `.pdf","meta":{"n":` + n + "}}\n")
	}
	if err := os.WriteFile(ds, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	run := seedRun(t, st, &store.Run{Dataset: ds}, 3, completed(st, refonte.ModeTest))
	c := newConsole(t, st, console.Options{})
	link := `href="/runs/` + run.ID + `/results.csv"`

	if _, page, _ := get(t, c, "/runs/"+run.ID); !strings.Contains(page, link) {
		t.Errorf("run page lacks the results.csv link")
	}
	code, body, hdr := get(t, c, "/runs/"+run.ID+"/results.csv")
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/csv") ||
		!strings.Contains(hdr.Get("Content-Disposition"), run.ID+".results.csv") {
		t.Fatalf("GET results.csv: %d %v\n%s", code, hdr, body)
	}
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("results.csv is not CSV: %v\n%s", err, body)
	}
	want := []string{"type", "attachment", "meta.n", "task_id", "state", "error", "response"}
	if len(recs) != 4 || !slices.Equal(recs[0], want) {
		t.Fatalf("results.csv = %q, want the header %q and 3 rows", recs, want)
	}
	if r := recs[1]; r[1] != "https://x/1.pdf" || r[2] != "1" || r[4] != "completed" || recs[3][4] != "enqueued" {
		t.Errorf("results.csv rows = %q", recs[1:])
	}

	// The dataset is gone (enqueue ran elsewhere): no link, 404.
	if err := os.Remove(ds); err != nil {
		t.Fatal(err)
	}
	if _, page, _ := get(t, c, "/runs/"+run.ID); strings.Contains(page, link) {
		t.Errorf("run page links results.csv of an unreadable dataset")
	}
	if code, body, _ := get(t, c, "/runs/"+run.ID+"/results.csv"); code != http.StatusNotFound || !strings.Contains(body, "not readable by this worker") {
		t.Errorf("GET results.csv of an unreadable dataset: %d %q", code, body)
	}
	if code, _, _ := get(t, c, "/runs/r-unknown/results.csv"); code != http.StatusNotFound {
		t.Errorf("GET results.csv of an unknown run: %d", code)
	}
}
