package deploy

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// promQL returns every PromQL expression of the rules and the dashboard,
// keyed by where it is, and the recording rules' names.
func promQL(t *testing.T) (map[string]string, map[string]bool) {
	t.Helper()
	exprs := map[string]string{}
	records := map[string]bool{}
	var rule struct {
		Spec struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Record string `json:"record"`
					Alert  string `json:"alert"`
					Expr   string `json:"expr"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	b, err := os.ReadFile("observability/prometheus-rule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &rule); err != nil {
		t.Fatal(err)
	}
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			exprs["rule "+r.Record+r.Alert] = r.Expr
			if r.Record != "" {
				records[r.Record] = true
			}
		}
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				RefID string `json:"refId"`
				Expr  string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	b, err = os.ReadFile("observability/grafana/refonte-batch.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("observability/grafana/refonte-batch.json: %v", err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs["panel "+p.Title+" "+tg.RefID] = tg.Expr
		}
	}
	if len(exprs) < 20 {
		t.Fatalf("only %d PromQL expressions found", len(exprs))
	}
	return exprs, records
}

// exposition is what a worker's /metrics showed: sample names with their
// label names, and each family's type.
type exposition struct {
	labels map[string]map[string]bool // sample name -> label names
	types  map[string]string          // family -> counter, gauge, histogram…
}

var (
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s`)
	labelName  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
)

func (e *exposition) add(text string) {
	for _, l := range strings.Split(text, "\n") {
		if f := strings.Fields(l); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			e.types[f[2]] = f[3]
			continue
		}
		m := sampleLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if e.labels[m[1]] == nil {
			e.labels[m[1]] = map[string]bool{}
		}
		for _, ln := range labelName.FindAllStringSubmatch(m[2], -1) {
			e.labels[m[1]][ln[1]] = true
		}
	}
}

var (
	metricRef = regexp.MustCompile(`\b(refonte_[a-zA-Z0-9_]+)\s*(\{[^}]*\})?`)
	matcher   = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	recordRef = regexp.MustCompile(`\brefonte:[a-zA-Z0-9_:]+`)
)

// TestObservabilityMetricsAreExported runs a worker stack (the Deployment's
// args), pushes runs through it, and checks every metric name and label
// matcher of the Prometheus rules and the Grafana dashboard against what
// its /metrics really showed, and the README's metric table against it.
func TestObservabilityMetricsAreExported(t *testing.T) {
	exprs, records := promQL(t)
	wanted := map[string]bool{}
	for _, e := range exprs {
		for _, m := range metricRef.FindAllStringSubmatch(e, -1) {
			wanted[m[1]] = true
		}
	}

	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// Callbacks never come and are overdue after a second: the reconciler
	// polls too.
	st := startStack(t, "demo", stackOptions{extraArgs: []string{"-callback-grace=1s"}, dropCallbacks: true})
	// An unfinished run (its rows show in refonte_run_rows) and a finished one.
	abs, err := filepath.Abs("../examples")
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runEnqueue(t, st, t.TempDir(), []string{"-type", "categorization",
		"-params", filepath.Join(abs, "products.categorization.params.json"), "-out-dir", t.TempDir(), "-json", "-wait",
		filepath.Join(abs, "products.categorization.jsonl")})
	if code != 0 {
		t.Fatalf("enqueue: exit %d\n%s\n%s", code, stdout, stderr)
	}
	waitRunDone(t, st, stdout)
	holdOpenRun(t, st)

	exp := exposition{labels: map[string]map[string]bool{}, types: map[string]string{}}
	missing := func() []string {
		var out []string
		for n := range wanted {
			if exp.labels[n] == nil {
				out = append(out, n)
			}
		}
		sort.Strings(out)
		return out
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(strings.TrimSuffix(st.callbackURL, "/callback") + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		exp.add(string(b))
		if len(missing()) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if m := missing(); len(m) > 0 {
		t.Errorf("the rules or the dashboard use metrics no worker exported: %v", m)
	}
	for where, e := range exprs {
		for _, m := range metricRef.FindAllStringSubmatch(e, -1) {
			have := exp.labels[m[1]]
			for _, lm := range matcher.FindAllStringSubmatch(m[2], -1) {
				if have != nil && !have[lm[1]] {
					t.Errorf("%s: %s has no label %q (it has %v)", where, m[1], lm[1], keys(have))
				}
			}
		}
		for _, r := range recordRef.FindAllString(e, -1) {
			if !records[r] {
				t.Errorf("%s: uses %s, which no recording rule defines", where, r)
			}
		}
	}
	checkReadmeTable(t, readme, &exp)
}

// holdOpenRun creates a run that stays unfinished (enqueue still reading,
// as far as the store knows), so refonte_run_rows has series.
func holdOpenRun(t *testing.T, st stack) {
	t.Helper()
	s := store.New(testredis.ClientOn(t, st.redisURL), store.Options{})
	run := &store.Run{ID: store.NewRunID(time.Now()), Dataset: "open.jsonl", Mode: refonte.ModeTest, CreatedAt: time.Now()}
	if err := s.CreateRun(context.Background(), run); err != nil {
		t.Fatal(err)
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkReadmeTable compares the README's metric table with the worker's
// refonte_* families and their labels.
func checkReadmeTable(t *testing.T, b []byte, exp *exposition) {
	t.Helper()
	readme := map[string][]string{} // metric -> labels
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "| metric | labels | meaning |") {
			in = true
			continue
		}
		if in && !strings.HasPrefix(l, "|") {
			break
		}
		cols := strings.Split(l, "|")
		if !in || len(cols) < 4 || strings.HasPrefix(cols[1], "---") {
			continue
		}
		var labels []string
		for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(cols[2], -1) {
			labels = append(labels, m[1])
		}
		sort.Strings(labels)
		for _, m := range regexp.MustCompile("`(refonte_[a-z_]+)`").FindAllStringSubmatch(cols[1], -1) {
			readme[m[1]] = labels
		}
	}
	if len(readme) < 10 {
		t.Fatalf("README: found only %d metrics in the metric table", len(readme))
	}
	families := map[string][]string{}
	for name, labels := range exp.labels {
		if !strings.HasPrefix(name, "refonte_") {
			continue
		}
		fam := name
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suf); ok && exp.types[base] == "histogram" {
				fam = base
			}
		}
		var ls []string
		for l := range labels {
			if l != "le" {
				ls = append(ls, l)
			}
		}
		sort.Strings(ls)
		if fam != name && families[fam] != nil {
			continue
		}
		families[fam] = ls
	}
	for fam, ls := range families {
		rl, ok := readme[fam]
		switch {
		case !ok:
			t.Errorf("README metric table lacks %s (labels %v)", fam, ls)
		case !slices.Equal(rl, ls) && !(len(rl) == 0 && len(ls) == 0):
			t.Errorf("README metric table: %s has labels %v, /metrics %v", fam, rl, ls)
		}
	}
	for m := range readme {
		if _, ok := families[m]; !ok {
			t.Errorf("README metric table names %s, which /metrics did not show", m)
		}
	}
}

// TestPrometheusRulesPassPromtool runs promtool check rules on the rule
// groups of the PrometheusRule (its spec is a Prometheus rules file).
func TestPrometheusRulesPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian: apt-get install prometheus; .ci/run does)")
	}
	b, err := os.ReadFile("observability/prometheus-rule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := yaml.Unmarshal(b, &obj); err != nil {
		t.Fatal(err)
	}
	spec, err := yaml.Marshal(obj["spec"])
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "refonte-batch.rules.yml")
	if err := os.WriteFile(f, spec, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
