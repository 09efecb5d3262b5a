package enqueue_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/refonte-ai/refonte-batch/jobs/store"
)

// TestBinary runs cmd/enqueue as a real process: data on stdout, JSON log
// lines on stderr (not a terminal), exit codes from the process.
func TestBinary(t *testing.T) {
	f := newFixture(t)
	bin := filepath.Join(t.TempDir(), "enqueue")
	build := exec.Command("go", "build", "-o", bin, "github.com/refonte-ai/refonte-batch/cmd/enqueue")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ds := f.write("bin.jsonl", rows(40, "bin"))
	run := func(env []string, args ...string) (int, string, string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "REDIS_URL=" + f.url}, env...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("run %s: %v", bin, err)
		}
		return cmd.ProcessState.ExitCode(), out.String(), errb.String()
	}

	code, out, errOut := run(nil, "-type", "documenttranscription", "-json", ds)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var sum struct {
		RunID    string `json:"run_id"`
		Enqueued int64  `json:"enqueued"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &sum); err != nil || sum.Enqueued != 40 {
		t.Fatalf("stdout %q: %v", out, err)
	}
	sc := bufio.NewScanner(strings.NewReader(errOut))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil || m["msg"] == nil {
			t.Errorf("stderr line is not a zap JSON log line: %q", sc.Text())
		}
	}

	code, out, _ = run(nil, "status", "-json", sum.RunID)
	if code != 0 || !strings.Contains(out, `"state":"running"`) {
		t.Errorf("status: exit %d, %q", code, out)
	}

	// SIGINT during -wait: exit 1, the run goes on.
	cmd := exec.Command(bin, "-type", "documenttranscription", "-wait", f.write("wait.jsonl", rows(5, "sigint")))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "REDIS_URL=" + f.url}
	var werr strings.Builder
	cmd.Stderr = &werr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	waitID := f.waitForRun(store.RunRunning, sum.RunID)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(werr.String(), "enqueue status "+waitID) {
		t.Errorf("SIGINT during -wait: exit %d, stderr %q", code, werr.String())
	}
	if run := f.run(waitID); run.State != store.RunRunning {
		t.Errorf("run after SIGINT = %s, want running", run.State)
	}

	// Live without a terminal and without -yes: exit 2, nothing written.
	before := f.dbsize()
	code, _, errOut = run([]string{"REFONTE_LIVE_API_KEY=live_0123456789abcdef"}, "-mode", "live", "-type", "documenttranscription", f.write("live.jsonl", rows(3, "live")))
	if code != 2 || !strings.Contains(errOut, "-yes") {
		t.Errorf("live without -yes: exit %d, stderr %q", code, errOut)
	}
	if after := f.dbsize(); after != before {
		t.Errorf("refused live run changed DBSIZE %d -> %d", before, after)
	}
}
