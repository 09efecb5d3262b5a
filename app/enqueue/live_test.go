package enqueue_test

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/refonte-ai/refonte-batch/app/enqueue"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/refonte"
)

func TestLiveModeSafety(t *testing.T) {
	const liveKey = "live_abcdefgh12345678"
	tests := []struct {
		name     string
		env      map[string]string
		opts     mainOpts
		args     []string
		wantCode int
		wantErr  []string // substrings of stderr
		wantLive int      // pending tasks in refonte-live afterwards
	}{
		{name: "no key configured", args: []string{"-yes"}, wantCode: enqueue.ExitUsage,
			wantErr: []string{"REFONTE_LIVE_API_KEY"}},
		{name: "test key is not a live key", env: map[string]string{"REFONTE_LIVE_API_KEY": "test_abcdefgh"},
			args: []string{"-yes"}, wantCode: enqueue.ExitUsage, wantErr: []string{"not a live key"}},
		{name: "no terminal and no -yes", env: map[string]string{"REFONTE_LIVE_API_KEY": liveKey},
			wantCode: enqueue.ExitUsage, wantErr: []string{"5 billable rows", "-yes"}},
		{name: "over -max-live-tasks", env: map[string]string{"REFONTE_LIVE_API_KEY": liveKey},
			args: []string{"-yes", "-max-live-tasks", "3"}, wantCode: enqueue.ExitUsage, wantErr: []string{"5 billable rows", "-max-live-tasks 3"}},
		{name: "terminal answer no", env: map[string]string{"REFONTE_LIVE_API_KEY": liveKey},
			opts:     mainOpts{stdin: strings.NewReader("no\n"), stdinTTY: true, stderrTTY: true},
			wantCode: enqueue.ExitUsage, wantErr: []string{"About to create 5 billable live tasks", "not confirmed"}},
		{name: "terminal answer yes", env: map[string]string{"REFONTE_LIVE_API_KEY": liveKey},
			opts:     mainOpts{stdin: strings.NewReader("yes\n"), stdinTTY: true, stderrTTY: true},
			wantCode: enqueue.ExitOK, wantErr: []string{"About to create 5 billable live tasks in project \"p\""}, wantLive: 5},
		{name: "-yes within the cap", env: map[string]string{"REFONTE_LIVE_API_KEY": liveKey},
			args: []string{"-yes", "-max-live-tasks", "5"}, wantCode: enqueue.ExitOK, wantLive: 5},
		{name: "key file", env: map[string]string{"REFONTE_LIVE_API_KEY_FILE": "KEYFILE"},
			args: []string{"-yes"}, wantCode: enqueue.ExitOK, wantLive: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			for k, v := range tt.env {
				if v == "KEYFILE" {
					v = f.write("live.key", liveKey+"\n")
				}
				f.env[k] = v
			}
			ds := f.write("live.jsonl", rows(5, "live"))
			args := append([]string{"-mode", "live", "-type", "documenttranscription", "-project", "p"}, tt.args...)
			r := f.mainWith(tt.opts, append(args, ds)...)
			if r.code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr: %s", r.code, tt.wantCode, r.stderr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q: %s", w, r.stderr)
				}
			}
			if strings.Contains(r.stderr+r.stdout, liveKey) {
				t.Errorf("the live key leaked into the output")
			}
			if tt.wantCode == enqueue.ExitUsage {
				if n := f.dbsize(); n != 0 {
					t.Errorf("refused live run left %d Redis keys", n)
				}
			}
			if got := f.pending(jobs.Queue(refonte.ModeLive)); got != tt.wantLive {
				t.Errorf("pending live tasks = %d, want %d", got, tt.wantLive)
			}
			if got := f.pending(jobs.Queue(refonte.ModeTest)); got != 0 {
				t.Errorf("pending test tasks = %d, want 0", got)
			}
		})
	}
}

func TestLiveStdinIsSpooledForThePrePass(t *testing.T) {
	f := newFixture(t)
	f.env["REFONTE_LIVE_API_KEY"] = "live_abcdefgh12345678"
	r := f.mainWith(mainOpts{stdin: strings.NewReader(rows(7, "spool"))},
		"-mode", "live", "-yes", "-max-live-tasks", "7", "-type", "documenttranscription", "-format", "jsonl", "-json", "-")
	if r.code != enqueue.ExitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if m := r.lastJSON(t); num(t, m, "enqueued") != 7 {
		t.Errorf("summary = %v", m)
	}
	if got := f.pending(jobs.Queue(refonte.ModeLive)); got != 7 {
		t.Errorf("pending live = %d, want 7", got)
	}
}

func TestLiveDryRunPreflight(t *testing.T) {
	f := newFixture(t)
	ds := f.write("pre.jsonl", rows(12, "pre")+"{\"attachment\":\"x\"}\n")
	r := f.main("-mode", "live", "-dry-run", "-max-live-tasks", "10", "-type", "documenttranscription", "-project", "p", "-json", ds)
	if r.code != enqueue.ExitUsage {
		t.Fatalf("exit %d, want 2 (over the cap): %s", r.code, r.stderr)
	}
	m := r.lastJSON(t)
	pre, ok := m["preflight"].(map[string]any)
	if !ok {
		t.Fatalf("no preflight in %v", m)
	}
	if num(t, pre, "billable") != 12 || num(t, pre, "max_live_tasks") != 10 || num(t, pre, "live_spend_today") != 0 {
		t.Errorf("preflight = %v", pre)
	}
	stops, _ := pre["would_stop"].([]any)
	joined := ""
	for _, s := range stops {
		joined += s.(string) + "\n"
	}
	for _, w := range []string{"-max-live-tasks 10", "REFONTE_LIVE_API_KEY", "-yes"} {
		if !strings.Contains(joined, w) {
			t.Errorf("would_stop lacks %q: %v", w, stops)
		}
	}
	if n := f.dbsize(); n != 0 {
		t.Errorf("DBSIZE after a live dry run = %d, want 0", n)
	}

	// Human form, within the cap, key configured.
	f.env["REFONTE_LIVE_API_KEY"] = "live_abcdefgh12345678"
	r = f.main("-mode", "live", "-dry-run", "-yes", "-type", "documenttranscription", "-project", "p", ds)
	if r.code != enqueue.ExitIncomplete { // one invalid row
		t.Fatalf("exit %d, want 3: %s", r.code, r.stderr)
	}
	for _, w := range []string{"12 billable live tasks", "nothing would stop this run", "live tasks reserved today (UTC, all runs): 0"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("stdout lacks %q: %s", w, r.stdout)
		}
	}
	if _, err := os.Stat(ds + ".rejects.jsonl"); err != nil {
		t.Errorf("dry run rejects file: %v", err)
	}
}

// TestLiveNeverPassesTheConfirmedCount grows the dataset while the operator
// is being asked: the enqueue stops at the confirmed count.
func TestLiveNeverPassesTheConfirmedCount(t *testing.T) {
	f := newFixture(t)
	ds := f.write("grow.jsonl", rows(300, "grow"))
	cfg, err := enqueue.ParseSubmit([]string{"-mode", "live", "-type", "documenttranscription", ds},
		func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var prompt string
	confirm := func(p string) (bool, error) {
		prompt = p
		fh, err := os.OpenFile(ds, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return false, err
		}
		defer fh.Close()
		_, err = io.WriteString(fh, rows(10, "extra"))
		return true, err
	}
	getenv := func(k string) string {
		if k == "REFONTE_LIVE_API_KEY" {
			return "live_abcdefgh12345678"
		}
		return ""
	}
	sum, err := enqueue.Submit(context.Background(), f.st, cfg, enqueue.SubmitOptions{Getenv: getenv, Confirm: confirm})
	if !errors.Is(err, enqueue.ErrDatasetChanged) {
		t.Fatalf("err = %v, want ErrDatasetChanged", err)
	}
	if !strings.Contains(prompt, "300 billable live tasks") {
		t.Errorf("prompt = %q", prompt)
	}
	var se *enqueue.StoppedError
	if !errors.As(err, &se) || se.Line != 301 || se.Enqueued != 300 {
		t.Errorf("stopped error = %+v", se)
	}
	if sum.Enqueued != 300 || f.pending(jobs.Queue(refonte.ModeLive)) != 300 {
		t.Errorf("enqueued %d, pending live %d; want 300", sum.Enqueued, f.pending(jobs.Queue(refonte.ModeLive)))
	}
}
