package enqueue_test

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/app/enqueue"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/dataset"
	"github.com/refonte-ai/refonte-batch/refonte"
)

func TestParseSubmit(t *testing.T) {
	dir := t.TempDir()
	params := filepath.Join(dir, "params.json")
	if err := os.WriteFile(params, []byte(`{"categories":["a","b"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	badParams := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(badParams, []byte(`[1,2]`), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"REDIS_URL": "redis://127.0.0.1:7777/3", "REFONTE_CALLBACK_URL": "https://cb.example.com/callback"}
	getenv := func(k string) string { return env[k] }

	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, c *enqueue.Config)
		wantErr string // "" for success
	}{
		{name: "defaults", args: []string{"data.csv"}, check: func(t *testing.T, c *enqueue.Config) {
			if c.Dataset != "data.csv" || c.Format != dataset.FormatCSV || c.Mode != refonte.ModeTest ||
				c.Rejects != "data.csv.rejects.jsonl" || c.RedisURL != env["REDIS_URL"] ||
				c.CallbackURL != env["REFONTE_CALLBACK_URL"] || c.Retention != 336*time.Hour ||
				c.Workers != enqueue.DefaultWorkers || c.BatchSize != enqueue.DefaultBatchSize {
				t.Errorf("config = %+v", c)
			}
		}},
		{name: "flags before and after the dataset", args: []string{"-type", "categorization", "d.jsonl.gz", "-mode", "live", "-json", "-params", params},
			check: func(t *testing.T, c *enqueue.Config) {
				if c.TaskType != refonte.TypeCategorization || c.Mode != refonte.ModeLive || !c.JSON || c.Format != dataset.FormatJSONL {
					t.Errorf("config = %+v", c)
				}
				if cats, _ := c.DefaultParams["categories"].([]any); len(cats) != 2 {
					t.Errorf("default params = %v", c.DefaultParams)
				}
			}},
		{name: "stdin", args: []string{"-format", "jsonl", "-"}, check: func(t *testing.T, c *enqueue.Config) {
			if c.Dataset != "-" || c.Rejects != enqueue.StdinRejects || c.Format != dataset.FormatJSONL {
				t.Errorf("config = %+v", c)
			}
		}},
		{name: "explicit flags win over env", args: []string{"-redis", "redis://127.0.0.1:1/0", "-callback-url", "http://x.example/cb", "-rejects", "r.jsonl", "x.csv"},
			check: func(t *testing.T, c *enqueue.Config) {
				if c.RedisURL != "redis://127.0.0.1:1/0" || c.CallbackURL != "http://x.example/cb" || c.Rejects != "r.jsonl" {
					t.Errorf("config = %+v", c)
				}
			}},
		{name: "dataset after --", args: []string{"-json", "--", "-odd.csv"}, check: func(t *testing.T, c *enqueue.Config) {
			if c.Dataset != "-odd.csv" {
				t.Errorf("dataset = %q", c.Dataset)
			}
		}},
		{name: "missing dataset", args: []string{"-json"}, wantErr: "missing DATASET"},
		{name: "two datasets", args: []string{"a.csv", "b.csv"}, wantErr: "one DATASET expected"},
		{name: "unknown flag", args: []string{"-bogus", "a.csv"}, wantErr: "bogus"},
		{name: "bad mode", args: []string{"-mode", "prod", "a.csv"}, wantErr: "-mode"},
		{name: "default priority", args: []string{"a.csv"}, check: func(t *testing.T, c *enqueue.Config) {
			if c.Priority != jobs.PriorityNormal {
				t.Errorf("priority = %q, want normal", c.Priority)
			}
		}},
		{name: "high priority", args: []string{"-priority", "high", "a.csv"}, check: func(t *testing.T, c *enqueue.Config) {
			if c.Priority != jobs.PriorityHigh {
				t.Errorf("priority = %q, want high", c.Priority)
			}
		}},
		{name: "low priority", args: []string{"a.csv", "-priority", "low"}, check: func(t *testing.T, c *enqueue.Config) {
			if c.Priority != jobs.PriorityLow {
				t.Errorf("priority = %q, want low", c.Priority)
			}
		}},
		{name: "bad priority", args: []string{"-priority", "urgent", "a.csv"}, wantErr: "-priority"},
		{name: "empty priority", args: []string{"-priority", "", "a.csv"}, wantErr: "-priority"},
		{name: "bad type", args: []string{"-type", "nope", "a.csv"}, wantErr: "-type"},
		{name: "bad format", args: []string{"-format", "xml", "a.csv"}, wantErr: "-format"},
		{name: "stdin without format", args: []string{"-"}, wantErr: "-format"},
		{name: "unknown extension", args: []string{"a.txt"}, wantErr: "-format"},
		{name: "bad callback", args: []string{"-callback-url", "ftp://x", "a.csv"}, wantErr: "http(s)"},
		{name: "bad retention", args: []string{"-retention", "0s", "a.csv"}, wantErr: "-retention"},
		{name: "negative cap", args: []string{"-max-live-tasks", "-1", "a.csv"}, wantErr: "-max-live-tasks"},
		{name: "dry-run and wait", args: []string{"-dry-run", "-wait", "a.csv"}, wantErr: "cannot be combined"},
		{name: "params not an object", args: []string{"-params", badParams, "a.csv"}, wantErr: "JSON object"},
		{name: "params missing", args: []string{"-params", filepath.Join(dir, "none.json"), "a.csv"}, wantErr: "-params"},
		{name: "dev", args: []string{"-dev", "a.csv"}, check: func(t *testing.T, c *enqueue.Config) {
			if !c.Dev || c.Dataset != "a.csv" {
				t.Errorf("-dev: Dev=%v Dataset=%q", c.Dev, c.Dataset)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := enqueue.ParseSubmit(tt.args, getenv, io.Discard)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				tt.check(t, c)
				return
			}
			if err == nil || !errors.Is(err, enqueue.ErrUsage) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want a usage error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseSubmitHelp(t *testing.T) {
	var out strings.Builder
	_, err := enqueue.ParseSubmit([]string{"-h"}, func(string) string { return "" }, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v", err)
	}
	for _, w := range []string{"enqueue status", "exit codes", "-max-live-tasks", "-dry-run"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("usage lacks %q", w)
		}
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	f := newFixture(t)
	for _, args := range [][]string{
		{},
		{"-mode", "nope", "a.csv"},
		{"-priority", "urgent", "a.csv"},
		{"status"},
		{"results", "a", "b"},
		{"runs", "extra"},
		{"retry"},
		{"-redis", "http://not-redis", "x.jsonl"},
	} {
		if r := f.main(args...); r.code != enqueue.ExitUsage || r.stderr == "" {
			t.Errorf("%q: exit %d, stderr %q; want 2 with a message", args, r.code, r.stderr)
		}
	}
	if r := f.main("-h"); r.code != enqueue.ExitOK {
		t.Errorf("-h: exit %d", r.code)
	}
	// -dev needs the in-process stack that cmd/enqueue wires (Env.StartDev).
	if r := f.main("-dev", "-type", "imageannotation", f.write("a.csv", "image_url\nhttps://x/1.jpg\n")); r.code != enqueue.ExitUsage ||
		!strings.Contains(r.stderr, "-dev is not available") {
		t.Errorf("-dev without Env.StartDev: exit %d, stderr %q; want 2 saying -dev is not available", r.code, r.stderr)
	}
	if n := f.dbsize(); n != 0 {
		t.Errorf("DBSIZE = %d after usage errors", n)
	}
}

func TestExitCode(t *testing.T) {
	cfg := &enqueue.Config{}
	wait := &enqueue.Config{Wait: true}
	tests := []struct {
		name string
		cfg  *enqueue.Config
		sum  *enqueue.Summary
		err  error
		want int
	}{
		{"ok", cfg, &enqueue.Summary{Rows: 2, Valid: 2}, nil, 0},
		{"invalid rows", cfg, &enqueue.Summary{Rows: 2, Valid: 1, Invalid: 1}, nil, 3},
		{"usage", cfg, nil, &enqueue.UsageError{Msg: "x"}, 2},
		{"stopped", cfg, &enqueue.Summary{}, &enqueue.StoppedError{Err: errors.New("boom")}, 1},
		{"wait all completed", wait, &enqueue.Summary{Valid: 2, WaitCounts: &enqueue.WaitCounts{Completed: 2}}, nil, 0},
		{"wait some failed", wait, &enqueue.Summary{Valid: 2, WaitCounts: &enqueue.WaitCounts{Completed: 1, Failed: 1}}, nil, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := enqueue.ExitCode(tt.cfg, tt.sum, tt.err); got != tt.want {
				t.Errorf("ExitCode = %d, want %d", got, tt.want)
			}
		})
	}
}
