package deploy

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/app/enqueue"
	"github.com/refonte-ai/refonte-batch/app/worker"
	"github.com/refonte-ai/refonte-batch/internal/testfs"
	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

const (
	stackTestKey = "test_deploystack"
	stackCbKey   = "deploystack_callback"
)

// stack is a running Redis, API sandbox and worker, the worker started
// with the exact arguments of the Deployment in the base.
type stack struct {
	redisURL    string
	callbackURL string
}

// stackOptions change the stack a test needs.
type stackOptions struct {
	// extraArgs are added after the Deployment's worker args.
	extraArgs []string
	// dropCallbacks: the sandbox never calls back (the reconciler polls).
	dropCallbacks bool
}

func startStack(t *testing.T, project string, opts stackOptions) stack {
	t.Helper()
	redisURL := testredis.Fresh(t)
	sbCfg := sandbox.Config{TestKey: stackTestKey, LiveKey: "live_deploystack", CallbackAuthKey: stackCbKey,
		Projects: []string{project}, CompleteAfter: sandbox.CompleteImmediately}
	if opts.dropCallbacks {
		// Tasks complete after their create is answered, and no callback
		// tells: the reconciler finds out.
		sbCfg.CallbackDropRate = 1
		sbCfg.CompleteAfter = 100 * time.Millisecond
	}
	sb := sandbox.New(sbCfg)
	api := httptest.NewServer(sb)
	t.Cleanup(func() { api.Close(); sb.Close() })

	args := append(containerArgs(t, workerDeployment(t, loadYAML(t))), opts.extraArgs...)
	listen := fmt.Sprintf("127.0.0.1:%d", testredis.FreePort(t))
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, "-listen="):
			args[i] = "-listen=" + listen // the pod's :8080, on loopback
		case strings.HasPrefix(a, "-admin-listen="):
			// the pod's console port, on loopback
			args[i] = fmt.Sprintf("-admin-listen=127.0.0.1:%d", testredis.FreePort(t))
		}
	}
	// The secrets the pod reads from its Secret's files, as plain env.
	env := map[string]string{"REDIS_URL": redisURL, "REFONTE_API_URL": api.URL + "/v1",
		"REFONTE_TEST_API_KEY": stackTestKey, "REFONTE_CALLBACK_AUTH_KEY": stackCbKey,
		"REFONTE_ADMIN_TOKEN": "deploy-test-admin-token"}
	getenv := func(k string) string { return env[k] }
	cfg, err := worker.ParseFlags(args, getenv, io.Discard, nil)
	if err == nil {
		err = cfg.LoadSecrets(getenv)
	}
	if err != nil {
		t.Fatalf("worker %v: %v", args, err)
	}
	w, err := worker.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	})
	return stack{redisURL: redisURL, callbackURL: "http://" + listen + "/callback"}
}

// containerArgs returns the args of a workload's only container.
func containerArgs(t *testing.T, d doc) []string {
	t.Helper()
	cs := list(podSpec(d)["containers"])
	if len(cs) != 1 {
		t.Fatalf("%s: %d containers, want 1", d.file, len(cs))
	}
	return strs(get(cs[0], "args"))
}

// mapPaths rewrites every argument (or -flag=value) under a container
// path of mounts to the host folder it stands for.
func mapPaths(t *testing.T, args []string, mounts map[string]string) []string {
	t.Helper()
	out := make([]string, len(args))
	for i, a := range args {
		prefix, val := "", a
		if f, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(a, "-") {
			prefix, val = f+"=", v
		}
		for cpath, host := range mounts {
			if rest, ok := strings.CutPrefix(val, cpath+"/"); ok {
				val = filepath.Join(host, rest)
				break
			}
		}
		out[i] = prefix + val
	}
	return out
}

// runEnqueue runs enqueue in-process with args, from a read-only working
// folder (a container's root file system is read-only), and returns its
// exit code and outputs.
func runEnqueue(t *testing.T, st stack, cwd string, args []string) (int, string, string) {
	t.Helper()
	t.Chdir(cwd)
	var stdout, stderr bytes.Buffer
	env := map[string]string{"REDIS_URL": st.redisURL, "REFONTE_CALLBACK_URL": st.callbackURL}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := enqueue.Main(ctx, args, enqueue.Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return env[k] }})
	return code, stdout.String(), stderr.String()
}

// waitRunDone waits until the run named in enqueue's JSON summary is done.
func waitRunDone(t *testing.T, st stack, stdout string) *store.Run {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var sum struct {
		RunID string `json:"run_id"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil || sum.RunID == "" {
		t.Fatalf("enqueue's last stdout line is no JSON summary with a run_id (%v): %q", err, stdout)
	}
	s := store.New(testredis.ClientOn(t, st.redisURL), store.Options{})
	deadline := time.Now().Add(time.Minute)
	for {
		r, err := s.GetRun(context.Background(), sum.RunID)
		if err != nil {
			t.Fatal(err)
		}
		if r.State == store.RunDone {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s still %s after a minute: %+v", r.ID, r.State, r.Counters)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCronJobRunsOnReadOnlyDataset runs the CronJob's exact container args
// (host folders standing for its mounts, the dataset's read-only) against a
// running worker stack: exit 0 and the run done, every row completed.
func TestCronJobRunsOnReadOnlyDataset(t *testing.T) {
	docs := loadYAML(t)
	crons := kinds(docs, "CronJob")
	if len(crons) != 1 {
		t.Fatalf("%d CronJobs, want 1", len(crons))
	}
	cron := crons[0]
	args := containerArgs(t, cron)
	var project string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "-project="); ok {
			project = v
		}
	}

	// The dataset folder: the night's file (the street-scenes example as
	// gzipped JSONL) and the params file the args name.
	src := t.TempDir()
	writeNightly(t, filepath.Join(src, "nightly.jsonl.gz"))
	params, err := os.ReadFile("../examples/street-scenes.params.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "street-scenes.params.json"), params, 0o644); err != nil {
		t.Fatal(err)
	}
	data := testfs.ReadOnlyDir(t, src)
	reports := t.TempDir()
	mounts := map[string]string{}
	for _, m := range list(get(list(podSpec(cron)["containers"])[0], "volumeMounts")) {
		switch path, ro := str(get(m, "mountPath")), get(m, "readOnly") == true; {
		case path == "/tmp":
		case ro:
			mounts[path] = data
		default:
			mounts[path] = reports
		}
	}
	if len(mounts) != 2 {
		t.Fatalf("CronJob mounts %v: want a read-only dataset folder and a writable reports folder", mounts)
	}
	st := startStack(t, project, stackOptions{})
	code, stdout, stderr := runEnqueue(t, st, data, mapPaths(t, args, mounts))
	if code != 0 {
		t.Fatalf("enqueue %v: exit %d, want 0\nstdout: %s\nstderr: %s", args, code, stdout, stderr)
	}
	r := waitRunDone(t, st, stdout)
	if r.Completed != 40 || r.Valid != 40 {
		t.Errorf("run %s: %+v, want 40 valid rows, all completed", r.ID, r.Counters)
	}
}

// TestComposeEnqueueRunsOnReadOnlyExamples runs compose's enqueue service
// command (examples mounted :ro as in the compose file) against a running
// worker stack: exit 0 (it waits), run done.
func TestComposeEnqueueRunsOnReadOnlyExamples(t *testing.T) {
	var svc any
	for _, d := range loadYAML(t) {
		if s := get(d.obj, "services", "enqueue"); s != nil {
			svc = s
		}
	}
	if svc == nil {
		t.Fatal("no compose service enqueue")
	}
	abs, err := filepath.Abs("../examples")
	if err != nil {
		t.Fatal(err)
	}
	examples := testfs.ReadOnlyDir(t, abs)
	mounts := map[string]string{}
	for _, v := range strs(get(svc, "volumes")) {
		parts := strings.Split(v, ":")
		switch {
		case len(parts) == 3 && parts[2] == "ro" && parts[0] == "../../examples":
			mounts[parts[1]] = examples
		case len(parts) == 2 && !strings.HasPrefix(parts[0], "."):
			mounts[parts[1]] = t.TempDir() // a named volume
		default:
			t.Fatalf("compose enqueue: unexpected volume %q", v)
		}
	}
	args := strs(get(svc, "command"))
	var project string
	for i, a := range args {
		if a == "-project" && i+1 < len(args) {
			project = args[i+1]
		}
	}
	st := startStack(t, project, stackOptions{})
	code, stdout, stderr := runEnqueue(t, st, examples, append(mapPaths(t, args, mounts), "-json"))
	if code != 0 {
		t.Fatalf("enqueue %v: exit %d, want 0\nstdout: %s\nstderr: %s", args, code, stdout, stderr)
	}
	if r := waitRunDone(t, st, stdout); r.Completed != r.Valid || r.Valid == 0 {
		t.Errorf("run %s: %+v, want every valid row completed", r.ID, r.Counters)
	}
}

// writeNightly writes the street-scenes example as gzipped JSON lines.
func writeNightly(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open("../examples/street-scenes.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	enc := json.NewEncoder(zw)
	for _, rec := range recs[1:] {
		row := map[string]any{"attachment": rec[0], "metadata": map[string]string{"scene_id": rec[1], "camera": rec[2]}}
		var geo any
		if err := json.Unmarshal([]byte(rec[5]), &geo); err != nil {
			t.Fatal(err)
		}
		row["geometries"] = geo
		if err := enc.Encode(row); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
