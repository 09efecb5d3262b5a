package validate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// builtin are the k8s.io/api types objects are decoded into, by apiVersion/kind.
var builtin = map[string]func() any{
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                              func() any { return &corev1.Secret{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"v1/Namespace":                           func() any { return &corev1.Namespace{} },
	"v1/PersistentVolumeClaim":               func() any { return &corev1.PersistentVolumeClaim{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                    func() any { return &appsv1.StatefulSet{} },
	"batch/v1/CronJob":                       func() any { return &batchv1.CronJob{} },
	"networking.k8s.io/v1/Ingress":           func() any { return &networkingv1.Ingress{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
}

// build copies deploy/ into an in-memory file system (with placeholder
// secret files for the overlay, which git does not hold), writes a
// kustomization that adds components to base (none: the base itself), and
// returns the built objects.
func build(t *testing.T, dir string, edit func(path, content string) string, components ...string) []map[string]any {
	t.Helper()
	fs := filesys.MakeFsInMemory()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if strings.HasPrefix(rel, "validate"+string(filepath.Separator)) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if edit != nil {
			b = []byte(edit(filepath.ToSlash(rel), string(b)))
		}
		return fs.WriteFile("/deploy/"+filepath.ToSlash(rel), b)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"test-api-key", "callback-auth-key", "live-api-key", "admin-token"} {
		if err := fs.WriteFile("/deploy/k8s/overlays/example/secrets/"+f, []byte("placeholder\n")); err != nil {
			t.Fatal(err)
		}
	}
	target := "/deploy/" + dir
	if len(components) > 0 {
		k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../" + dir + "\ncomponents:\n"
		for _, c := range components {
			k += "  - ../" + c + "\n"
		}
		target = "/deploy/checked"
		if err := fs.WriteFile(target+"/kustomization.yaml", []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, target)
	if err != nil {
		t.Fatalf("kustomize build %s %v: %v", dir, components, err)
	}
	out, err := resMap.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	var objs []map[string]any
	for _, part := range strings.Split(string(out), "\n---\n") {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(part), &obj); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if obj != nil {
			objs = append(objs, obj)
		}
	}
	return objs
}

// decodeStrict decodes obj into its k8s.io/api type, failing on any
// unknown field, or checks a KEDA ScaledObject against its CRD's fields.
func decodeStrict(t *testing.T, where string, obj map[string]any) {
	t.Helper()
	gvk := fmt.Sprintf("%v/%v", obj["apiVersion"], obj["kind"])
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case builtin[gvk] != nil:
		if err := yaml.UnmarshalStrict(b, builtin[gvk]()); err != nil {
			t.Errorf("%s: %s %v: %v", where, gvk, get(obj, "metadata", "name"), err)
		}
	case gvk == "keda.sh/v1alpha1/ScaledObject":
		checkScaledObject(t, where, obj)
	case gvk == "monitoring.coreos.com/v1/PrometheusRule", gvk == "monitoring.coreos.com/v1/ServiceMonitor":
		// Checked by go test ./deploy (promtool, metric names).
	default:
		t.Errorf("%s: %s has no type to check it against", where, gvk)
	}
}

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

// TestKustomizationsBuildAndDecodeStrictly builds the base, the base with
// each component, and the example overlay with every component.
func TestKustomizationsBuildAndDecodeStrictly(t *testing.T) {
	for _, tc := range []struct {
		dir        string
		components []string
		wantKinds  []string
	}{
		{"k8s/base", nil, []string{"ConfigMap", "CronJob", "Deployment", "Ingress", "PodDisruptionBudget", "Service", "StatefulSet"}},
		{"k8s/base", []string{"k8s/components/keda"}, []string{"ScaledObject"}},
		{"k8s/base", []string{"k8s/components/hpa"}, []string{"HorizontalPodAutoscaler"}},
		{"k8s/base", []string{"k8s/components/live"}, []string{"Deployment"}},
		{"k8s/base", []string{"observability"}, []string{"PrometheusRule", "ServiceMonitor"}},
		{"k8s/overlays/example", nil, []string{"Namespace", "Secret", "PersistentVolumeClaim", "HorizontalPodAutoscaler"}},
		{"k8s/overlays/example", []string{"k8s/components/keda", "k8s/components/live", "observability"}, []string{"ScaledObject", "PrometheusRule"}},
	} {
		name := tc.dir + "+" + strings.Join(tc.components, "+")
		t.Run(name, func(t *testing.T) {
			objs := build(t, tc.dir, nil, tc.components...)
			kinds := map[string]bool{}
			for _, o := range objs {
				kinds[fmt.Sprint(o["kind"])] = true
				decodeStrict(t, name, o)
				if o["kind"] == "Deployment" && get(o, "spec", "replicas") != nil {
					t.Errorf("%s: the Deployment sets replicas, which fights the autoscaler", name)
				}
			}
			for _, k := range tc.wantKinds {
				if !kinds[k] {
					t.Errorf("%s: no %s among %v", name, k, kinds)
				}
			}
		})
	}
}

// TestOverlayWiring checks what only a built overlay shows: KEDA's Redis
// address carries the namespace, the Secret's name is hashed and every
// reference to it follows, and the observability component leaves no
// Prometheus annotation (no double scrape).
func TestOverlayWiring(t *testing.T) {
	// The overlay as a user turns the components on: uncommented in its
	// own list (so its replacements see them), the live key added.
	objs := build(t, "k8s/overlays/example", func(path, content string) string {
		if path != "k8s/overlays/example/kustomization.yaml" {
			return content
		}
		content = strings.ReplaceAll(content, "  # - ../../", "  - ../../")
		return strings.Replace(content, "      - callback-auth-key=secrets/callback-auth-key\n",
			"      - callback-auth-key=secrets/callback-auth-key\n      - live-api-key=secrets/live-api-key\n", 1)
	})
	var secret string
	for _, o := range objs {
		if o["kind"] == "Secret" {
			secret = fmt.Sprint(get(o, "metadata", "name"))
		}
	}
	if !strings.HasPrefix(secret, "refonte-batch-secrets-") {
		t.Errorf("Secret name %q has no content hash suffix: a rotated key would not restart the pods", secret)
	}
	for _, o := range objs {
		b, _ := json.Marshal(o)
		if strings.Contains(string(b), `"refonte-batch-secrets"`) {
			t.Errorf("%v %v still names the unhashed Secret", o["kind"], get(o, "metadata", "name"))
		}
		switch o["kind"] {
		case "ScaledObject":
			for _, tr := range get(o, "spec", "triggers").([]any) {
				if a := get(tr, "metadata", "address"); a != "refonte-redis.refonte-batch.svc.cluster.local:6379" {
					t.Errorf("KEDA trigger address %v: want the Service's full DNS name in namespace refonte-batch", a)
				}
			}
		case "Deployment":
			if ann := get(o, "spec", "template", "metadata", "annotations"); ann != nil {
				if m, _ := ann.(map[string]any); len(m) > 0 {
					t.Errorf("with the ServiceMonitor the pods still carry annotations %v: scraped twice", m)
				}
			}
		}
	}
}

// checkScaledObject checks every field of a ScaledObject's spec against
// the CRD's field list (testdata/keda-scaledobject-fields.txt) and each
// redis trigger's metadata keys against the scaler's
// (testdata/keda-redis-trigger-metadata.txt).
func checkScaledObject(t *testing.T, where string, obj map[string]any) {
	t.Helper()
	fields := map[string]string{} // path -> type
	required := map[string][]string{}
	readLines(t, "testdata/keda-scaledobject-fields.txt", func(f []string) {
		fields[f[0]] = f[1]
		if len(f) > 2 && f[2] == "required" {
			parent := f[0][:strings.LastIndex(f[0], ".")]
			required[parent] = append(required[parent], f[0][strings.LastIndex(f[0], ".")+1:])
		}
	})
	redisKeys := map[string]bool{}
	readLines(t, "testdata/keda-redis-trigger-metadata.txt", func(f []string) {
		redisKeys[f[0]] = true
		if len(f) > 1 && f[1] == "env" {
			redisKeys[f[0]+"FromEnv"] = true
		}
	})
	var walk func(path string, v any)
	walk = func(path string, v any) {
		typ, ok := fields[path]
		if !ok {
			t.Errorf("%s: ScaledObject field %s is not in KEDA's CRD", where, path)
			return
		}
		switch v := v.(type) {
		case map[string]any:
			if typ != "object" {
				t.Errorf("%s: ScaledObject %s is an object, the CRD says %s", where, path, typ)
			}
			for _, r := range required[path] {
				if _, ok := v[r]; !ok {
					t.Errorf("%s: ScaledObject %s lacks the required %s", where, path, r)
				}
			}
			for k, x := range v {
				if _, ok := fields[path+"{}"]; ok {
					walk(path+"{}", x)
					continue
				}
				walk(path+"."+k, x)
			}
		case []any:
			if typ != "array" {
				t.Errorf("%s: ScaledObject %s is a list, the CRD says %s", where, path, typ)
			}
			for _, x := range v {
				walk(path+"[]", x)
			}
		case string:
			if typ != "string" && typ != "any" {
				t.Errorf("%s: ScaledObject %s is a string, the CRD says %s", where, path, typ)
			}
		case float64:
			if typ != "integer" && typ != "number" && typ != "any" {
				t.Errorf("%s: ScaledObject %s is a number, the CRD says %s", where, path, typ)
			}
		case bool:
			if typ != "boolean" {
				t.Errorf("%s: ScaledObject %s is a boolean, the CRD says %s", where, path, typ)
			}
		}
	}
	walk(".spec", obj["spec"])
	for _, tr := range get(obj, "spec", "triggers").([]any) {
		if get(tr, "type") != "redis" {
			continue
		}
		md, _ := get(tr, "metadata").(map[string]any)
		for k := range md {
			if !redisKeys[k] {
				t.Errorf("%s: redis trigger metadata %q is not a key KEDA's redis scaler reads", where, k)
			}
		}
		if md["address"] == nil && md["addressFromEnv"] == nil {
			t.Errorf("%s: redis trigger without address or addressFromEnv", where)
		}
	}
}

func readLines(t *testing.T, path string, fn func([]string)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 && !strings.HasPrefix(f[0], "#") {
			fn(f)
		}
	}
}

// TestComposeLoads loads the compose file with compose-go (the library
// docker compose uses), with the example env file standing for .env.
func TestComposeLoads(t *testing.T) {
	// The services read .env (git-ignored): a copy of env.example stands for it.
	dir := filepath.Join(t.TempDir(), "deploy", "compose")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for src, dst := range map[string]string{"docker-compose.yml": "docker-compose.yml", "env.example": ".env"} {
		b, err := os.ReadFile(filepath.Join("..", "compose", src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "docker-compose.yml")},
		cli.WithWorkingDirectory(dir), cli.WithDotEnv, cli.WithProfiles([]string{"tools"}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose-go: %v", err)
	}
	var names []string
	for n := range p.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "enqueue,redis,sandbox,worker-1,worker-2" {
		t.Errorf("services %v", names)
	}
	enq := p.Services["enqueue"]
	var ro bool
	for _, v := range enq.Volumes {
		if v.Target == "/examples" && v.ReadOnly {
			ro = true
		}
	}
	if !ro || !strings.Contains(strings.Join(enq.Command, " "), "-out-dir /reports") {
		t.Errorf("enqueue service: examples read-only %v, command %q: want -out-dir /reports", ro, enq.Command)
	}
}
