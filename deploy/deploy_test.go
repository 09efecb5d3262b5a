package deploy

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// doc is one parsed YAML document and the file it came from.
type doc struct {
	file string
	obj  map[string]any
}

func loadYAML(t *testing.T) []doc {
	t.Helper()
	var docs []doc
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || (!strings.HasSuffix(path, ".yaml") && !strings.HasSuffix(path, ".yml")) {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, part := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
			if strings.TrimSpace(stripComments(part)) == "" {
				continue
			}
			j, err := yaml.YAMLToJSON([]byte(part))
			if err != nil {
				t.Errorf("%s: document %d does not parse: %v", path, i+1, err)
				continue
			}
			var obj map[string]any
			if err := json.Unmarshal(j, &obj); err != nil {
				t.Errorf("%s: document %d is not a mapping: %v", path, i+1, err)
				continue
			}
			docs = append(docs, doc{file: path, obj: obj})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) < 8 {
		t.Fatalf("found only %d YAML documents under deploy/", len(docs))
	}
	return docs
}

func stripComments(s string) string {
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// get walks a path of map keys.
func get(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func list(v any) []any { l, _ := v.([]any); return l }

func str(v any) string { s, _ := v.(string); return s }

func kinds(docs []doc, kind string) []doc {
	var out []doc
	for _, d := range docs {
		if d.obj["kind"] == kind {
			out = append(out, d)
		}
	}
	return out
}

// podSpec returns the pod spec of a workload document.
func podSpec(d doc) map[string]any {
	switch d.obj["kind"] {
	case "CronJob":
		m, _ := get(d.obj, "spec", "jobTemplate", "spec", "template", "spec").(map[string]any)
		return m
	default:
		m, _ := get(d.obj, "spec", "template", "spec").(map[string]any)
		return m
	}
}

func workerDeployment(t *testing.T, docs []doc) doc {
	t.Helper()
	for _, d := range kinds(docs, "Deployment") {
		if get(d.obj, "metadata", "name") == "refonte-worker" {
			return d
		}
	}
	t.Fatal("no Deployment refonte-worker")
	return doc{}
}

func TestWorkerDeploymentProbesAndShutdown(t *testing.T) {
	docs := loadYAML(t)
	d := workerDeployment(t, docs)
	spec := podSpec(d)
	containers := list(spec["containers"])
	if len(containers) != 1 {
		t.Fatalf("worker pod has %d containers, want 1", len(containers))
	}
	c := containers[0]
	if p := str(get(c, "livenessProbe", "httpGet", "path")); p != "/healthz" {
		t.Errorf("liveness probe path = %q, want /healthz", p)
	}
	if p := str(get(c, "readinessProbe", "httpGet", "path")); p != "/readyz" {
		t.Errorf("readiness probe path = %q, want /readyz", p)
	}
	for _, r := range []string{"requests", "limits"} {
		for _, k := range []string{"cpu", "memory"} {
			if get(c, "resources", r, k) == nil {
				t.Errorf("worker resources.%s.%s missing", r, k)
			}
		}
	}
	shutdown := 30 * time.Second // the worker's default
	for _, a := range list(get(c, "args")) {
		if v, ok := strings.CutPrefix(str(a), "-shutdown-timeout="); ok {
			var err error
			if shutdown, err = time.ParseDuration(v); err != nil {
				t.Fatalf("bad -shutdown-timeout %q: %v", v, err)
			}
		}
	}
	grace, _ := spec["terminationGracePeriodSeconds"].(float64)
	if time.Duration(grace)*time.Second <= shutdown {
		t.Errorf("terminationGracePeriodSeconds %vs must exceed -shutdown-timeout %v", grace, shutdown)
	}
	ann := get(d.obj, "spec", "template", "metadata", "annotations")
	if get(ann, "prometheus.io/scrape") != "true" || get(ann, "prometheus.io/path") != "/metrics" {
		t.Errorf("worker pods lack Prometheus scrape annotations: %v", ann)
	}
}

// secretEnv names the environment variables that carry secrets.
var secretEnv = regexp.MustCompile(`^REFONTE_((TEST_API|LIVE_API|CALLBACK_AUTH)_KEY|ADMIN_TOKEN)$`)

func TestNoSecretValuesInline(t *testing.T) {
	docs := loadYAML(t)
	for _, d := range kinds(docs, "Secret") {
		if get(d.obj, "data") != nil || get(d.obj, "stringData") != nil {
			t.Errorf("%s: Secret %v has inline values; build it from files kept out of git", d.file, get(d.obj, "metadata", "name"))
		}
	}
	for _, d := range docs {
		if cm := d.obj["kind"]; cm == "ConfigMap" {
			for k := range asMap(d.obj["data"]) {
				if secretEnv.MatchString(k) {
					t.Errorf("%s: ConfigMap carries the secret %s", d.file, k)
				}
			}
		}
		spec := podSpec(d)
		if spec == nil {
			continue
		}
		for _, c := range list(spec["containers"]) {
			for _, e := range list(get(c, "env")) {
				if secretEnv.MatchString(str(get(e, "name"))) && get(e, "value") != nil {
					t.Errorf("%s: env %s has an inline value; mount the secret and use %s_FILE", d.file, get(e, "name"), get(e, "name"))
				}
			}
		}
	}
	// No key-looking literal anywhere in the manifests or the compose file.
	key := regexp.MustCompile(`\b(test|live)_[A-Za-z0-9]{8,}`)
	for _, d := range docs {
		b, _ := json.Marshal(d.obj)
		if m := key.Find(b); m != nil {
			t.Errorf("%s: looks like an API key inline: %q", d.file, m)
		}
	}
}

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }

var pinned = regexp.MustCompile(`^[a-z0-9./-]+(:[0-9][A-Za-z0-9._-]*|@sha256:[0-9a-f]{64})$|^[a-z0-9./-]+:[0-9]+(\.[0-9]+)*-[a-z0-9.-]+$`)

func TestImagesPinned(t *testing.T) {
	docs := loadYAML(t)
	images := map[string]string{}
	var walk func(file string, v any)
	walk = func(file string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "image" {
					images[str(x)] = file
				}
				walk(file, x)
			}
		case []any:
			for _, x := range v {
				walk(file, x)
			}
		}
	}
	for _, d := range docs {
		walk(d.file, d.obj)
	}
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(string(b), -1) {
		if m[1] != "scratch" {
			images[m[1]] = "Dockerfile"
		}
	}
	if len(images) < 3 {
		t.Fatalf("found only %d images", len(images))
	}
	for img, file := range images {
		if strings.HasSuffix(img, ":latest") || !pinned.MatchString(img) {
			t.Errorf("%s: image %q is not pinned to a version or digest", file, img)
		}
	}
}

func TestCronJobsForbidOverlap(t *testing.T) {
	docs := loadYAML(t)
	crons := kinds(docs, "CronJob")
	if len(crons) == 0 {
		t.Fatal("no CronJob")
	}
	for _, d := range crons {
		if p := get(d.obj, "spec", "concurrencyPolicy"); p != "Forbid" {
			t.Errorf("%s: CronJob %v concurrencyPolicy = %v, want Forbid", d.file, get(d.obj, "metadata", "name"), p)
		}
	}
}

func TestRedisPersistsWithAOF(t *testing.T) {
	docs := loadYAML(t)
	var k8s, compose bool
	for _, d := range docs {
		if d.obj["kind"] == "ConfigMap" && strings.Contains(str(get(d.obj, "data", "redis.conf")), "appendonly yes") {
			k8s = true
		}
		if svc := get(d.obj, "services", "redis"); svc != nil {
			cmd := strings.Join(strs(get(svc, "command")), " ")
			compose = strings.Contains(cmd, "--appendonly yes")
		}
	}
	if !k8s || !compose {
		t.Errorf("AOF persistence: kubernetes=%v compose=%v, want both", k8s, compose)
	}
	if len(kinds(docs, "StatefulSet")) == 0 {
		t.Error("no Redis StatefulSet")
	}
}

func strs(v any) []string {
	var out []string
	for _, x := range list(v) {
		out = append(out, str(x))
	}
	return out
}

func TestAutoscalingOnQueueDepth(t *testing.T) {
	docs := loadYAML(t)
	want := map[string]bool{}
	for _, m := range []refonte.Mode{refonte.ModeTest, refonte.ModeLive} {
		for _, q := range jobs.Queues(m) { // every priority's queue
			want["asynq:{"+q+"}:pending"] = false
		}
	}
	for _, d := range kinds(docs, "ScaledObject") {
		for _, tr := range list(get(d.obj, "spec", "triggers")) {
			if l := str(get(tr, "metadata", "listName")); l != "" {
				if _, ok := want[l]; ok {
					want[l] = true
				}
			}
		}
	}
	for l, found := range want {
		if !found {
			t.Errorf("no KEDA trigger on %s", l)
		}
	}
	if len(kinds(docs, "HorizontalPodAutoscaler")) == 0 {
		t.Error("no plain HPA alternative")
	}
}

func TestComposeSecretsFromIgnoredEnvFile(t *testing.T) {
	b, err := os.ReadFile("../.gitignore")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "deploy/compose/.env") {
		t.Error(".gitignore does not ignore deploy/compose/.env")
	}
	if _, err := os.Stat("compose/env.example"); err != nil {
		t.Errorf("no example env file: %v", err)
	}
}

// TestReadmeWritesEveryOverlaySecret: the README's set-up for the example
// overlay writes every secret file its secretGenerator reads (kubectl apply
// -k fails on a missing one), apart from the live key, which the README
// adds with the live component.
func TestReadmeWritesEveryOverlaySecret(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	written := map[string]bool{}
	for _, m := range regexp.MustCompile(`>\s*deploy/k8s/overlays/example/(secrets/[\w.-]+)`).FindAllSubmatch(readme, -1) {
		written[string(m[1])] = true
	}
	var overlay doc
	for _, d := range loadYAML(t) {
		if filepath.ToSlash(d.file) == "k8s/overlays/example/kustomization.yaml" {
			overlay = d
		}
	}
	if overlay.obj == nil {
		t.Fatal("no k8s/overlays/example/kustomization.yaml")
	}
	n := 0
	for _, g := range list(overlay.obj["secretGenerator"]) {
		for _, f := range list(get(g, "files")) {
			_, path, _ := strings.Cut(str(f), "=")
			n++
			if !written[path] && path != "secrets/live-api-key" {
				t.Errorf("the README's set-up never writes %s, which the example overlay's secretGenerator reads", path)
			}
		}
	}
	if n == 0 {
		t.Fatal("the example overlay's secretGenerator lists no file")
	}
}
