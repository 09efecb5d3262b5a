package enqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

const (
	// defaultResultsE is the suffix of the -dev results file (see Config.Results).
	defaultResultsE = ".results.jsonl"
	// StdinResults is the -dev results file when the dataset is stdin.
	StdinResults = stdinName + defaultResultsE
)

// DevSummary is the outcome of a -dev run (with -json, the last line of
// stdout).
type DevSummary struct {
	*Summary
	// Results is the results file (one JSON line per valid row).
	Results string `json:"results,omitempty"`
	// Elapsed is the whole run's wall time in seconds, start of the
	// in-process stack to the last callback.
	Elapsed float64 `json:"elapsed_seconds"`
}

// DevStack is the whole system running in this process for -dev: Redis,
// the API sandbox in test mode and a worker with its callback receiver,
// all on loopback (see Env.StartDev).
type DevStack interface {
	// RedisURL is the in-process Redis's URL.
	RedisURL() string
	// SandboxURL is the API sandbox's base URL.
	SandboxURL() string
	// CallbackURL is the worker's POST /callback URL.
	CallbackURL() string
	// ConsoleURL is the worker's runs console ("" if it has none).
	ConsoleURL() string
	// Close stops everything the stack started.
	Close() error
}

// checkDev refuses what -dev cannot do: it runs the sandbox in test mode
// and waits for the callbacks, and never reaches a real Redis or API.
func checkDev(c *Config) error {
	switch {
	case c.Mode != refonte.ModeTest:
		return usagef("-dev runs against the in-process sandbox in test mode; drop -mode %s", c.Mode)
	case c.DryRun:
		return usagef("-dev submits and waits; for a validation only, drop -dev and use -dry-run")
	}
	return nil
}

// startDev starts the -dev stack through env.StartDev; without one (a
// caller that did not wire it), -dev is a usage error.
func startDev(ctx context.Context, env Env) (DevStack, error) {
	if env.StartDev == nil {
		return nil, usagef("-dev is not available here: the caller did not wire the in-process stack (use the enqueue command)")
	}
	// The stack's own logs only matter when something goes wrong.
	stack, err := env.StartDev(ctx, env.Logger.WithOptions(zap.IncreaseLevel(zap.WarnLevel)))
	if err != nil {
		return nil, fmt.Errorf("-dev: %w", err)
	}
	return stack, nil
}

// runDev is `enqueue -dev`: it starts the whole system in this process
// (Env.StartDev: miniredis, the sandbox in test mode, a worker with its
// callback receiver), submits the dataset to it, waits for every row to be
// terminal, writes the results to the output folder (see Config.OutDir;
// checked before the stack starts), prints a summary table and stops
// everything.
func runDev(ctx context.Context, cfg *Config, env Env) int {
	start := time.Now()
	if err := checkDev(cfg); err != nil {
		return fail(env, err)
	}
	if err := cfg.resolveOutputs(outputNote(env.Logger)); err != nil {
		return fail(env, err)
	}
	stack, err := startDev(ctx, env)
	if err != nil {
		return fail(env, err)
	}
	defer func() {
		if err := stack.Close(); err != nil {
			env.Logger.Warn("dev stack close", zap.Error(err))
		}
	}()
	fmt.Fprintf(env.Stderr, "dev: in-process Redis %s, sandbox %s (test mode), worker callback %s\n",
		stack.RedisURL(), stack.SandboxURL(), stack.CallbackURL())
	if u := stack.ConsoleURL(); u != "" {
		fmt.Fprintf(env.Stderr, "dev: runs console %s (open it in a browser while the run goes)\n", u)
	}
	if cfg.CallbackURL != "" && cfg.CallbackURL != stack.CallbackURL() {
		fmt.Fprintf(env.Stderr, "dev: using the in-process worker's callback URL instead of %s\n", cfg.CallbackURL)
	}
	cfg.RedisURL, cfg.CallbackURL, cfg.Wait = stack.RedisURL(), stack.CallbackURL(), true

	rdb, err := OpenRedis(cfg.RedisURL)
	if err != nil {
		return fail(env, err)
	}
	defer rdb.Close()
	st := store.New(rdb, store.Options{Retention: cfg.Retention})
	opts := SubmitOptions{Stdin: env.Stdin, Objects: env.Objects, Getenv: env.Getenv, Logger: env.Logger, Now: env.Now,
		PollInterval: env.PollInterval}
	if env.StderrTTY {
		opts.Progress = &BarProgress{W: env.Stderr}
	} else {
		opts.Progress = &LogProgress{Logger: env.Logger}
	}
	sum, err := Submit(ctx, st, cfg, opts)
	if sum == nil || sum.RunID == "" {
		if err == nil {
			err = errors.New("-dev: the run was not created")
		}
		return fail(env, err)
	}
	ds := &DevSummary{Summary: sum}
	// The results are written even after an interrupted wait: they show
	// how far the run got.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	path, _, rerr := writeResults(rctx, st, cfg, sum.RunID)
	cancel()
	ds.Results = path
	ds.Elapsed = time.Since(start).Seconds()
	writeDevSummary(env.Stdout, cfg, ds)
	if err != nil {
		return fail(env, err)
	}
	if rerr != nil {
		return fail(env, rerr)
	}
	return ExitCode(cfg, sum, nil)
}

// writeResults writes the run's results (see Results) to cfg.Results,
// whose folder resolveOutputs checked before the run. It returns the path
// written and the number of lines.
func writeResults(ctx context.Context, st *store.Store, cfg *Config, runID string) (string, int64, error) {
	path := cfg.Results
	f, err := os.Create(path)
	if err != nil {
		return "", 0, fmt.Errorf("results file: %w", err)
	}
	n, err := Results(ctx, st, runID, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return path, n, fmt.Errorf("results file %s: %w", path, err)
	}
	return path, n, nil
}

// writeDevSummary prints the -dev summary table (or, with -json, the JSON
// object as the last line).
func writeDevSummary(w io.Writer, cfg *Config, s *DevSummary) {
	if cfg.JSON {
		_ = json.NewEncoder(w).Encode(s)
		return
	}
	var wc WaitCounts
	if s.WaitCounts != nil {
		wc = *s.WaitCounts
	}
	fmt.Fprintf(w, "\nrun %s %s (dev: Redis, sandbox and worker ran in this process)\n\n", s.RunID, s.State)
	row := func(name string, v any) { fmt.Fprintf(w, "  %-10s %10v\n", name, v) }
	row("rows", s.Rows)
	row("valid", s.Valid)
	row("invalid", s.Invalid)
	row("submitted", wc.Submitted)
	row("completed", wc.Completed)
	row("failed", wc.Failed)
	if wc.Canceled > 0 {
		row("canceled", wc.Canceled)
	}
	row("elapsed", time.Duration(s.Elapsed*float64(time.Second)).Round(10*time.Millisecond))
	fmt.Fprintln(w)
	if s.Results != "" {
		fmt.Fprintf(w, "results: %s (one JSON line per valid row)\n", s.Results)
	}
	if s.Rejects != "" {
		fmt.Fprintf(w, "rejects: %s (one JSON line per invalid row: line, error, raw)\n", s.Rejects)
	}
}
