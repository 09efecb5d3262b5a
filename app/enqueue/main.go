package enqueue

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/internal/buildinfo"
	"github.com/refonte-ai/refonte-batch/internal/datasrc"
	"github.com/refonte-ai/refonte-batch/internal/redisurl"
	"github.com/refonte-ai/refonte-batch/jobs/control"
	"github.com/refonte-ai/refonte-batch/jobs/store"
)

// Env is what Main takes from its process: streams, environment, whether
// stdin and stderr are terminals, and the logger.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// StdinTTY and StderrTTY say whether stdin and stderr are terminals:
	// both are needed for the live-mode prompt; StderrTTY selects the
	// progress bar over structured log lines.
	StdinTTY, StderrTTY bool
	// Logger writes structured logs to stderr.
	Logger *zap.Logger
	// Now returns the time (default time.Now).
	Now func() time.Time
	// PollInterval is the -wait polling period (default DefaultPollInterval).
	PollInterval time.Duration
	// Objects opens s3://, gs:// and azblob:// datasets: cmd/enqueue
	// passes cloud.Open (package datasrc/cloud, the SDKs' weight is only
	// there). Nil: such a dataset is refused (exit 2).
	Objects datasrc.ObjectOpener
	// StartDev starts the in-process system -dev submits to (cmd/enqueue
	// passes one built on package cmd/internal/devstack); its logs go to
	// logger. Nil: -dev is refused as a usage error.
	StartDev func(ctx context.Context, logger *zap.Logger) (DevStack, error)
}

// Main runs the command line with args (without the program name) and
// returns the process exit code (ExitOK, ExitError, ExitUsage or
// ExitIncomplete). Data goes to env.Stdout, progress and messages to
// env.Stderr.
func Main(ctx context.Context, args []string, env Env) int {
	if env.Logger == nil {
		env.Logger = zap.NewNop()
	}
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	if len(args) > 0 {
		switch args[0] {
		case "status", "results", "retry", "runs", "cancel", "pause", "resume":
			return runOps(ctx, args[0], args[1:], env)
		case "help":
			// The full usage, flags included, on stdout.
			_, _ = ParseSubmit([]string{"-h"}, env.Getenv, env.Stdout)
			return ExitOK
		}
	}
	cfg, err := ParseSubmit(args, env.Getenv, env.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		return fail(env, err)
	}
	if cfg.Version {
		fmt.Fprintln(env.Stdout, buildinfo.Read().Line("enqueue"))
		return ExitOK
	}
	if cfg.Dev {
		return runDev(ctx, cfg, env)
	}
	var st *store.Store
	if !cfg.DryRun || cfg.Mode == "live" {
		// A dry run writes nothing; a live one reads today's live spend.
		rdb, err := OpenRedis(cfg.RedisURL)
		if err != nil {
			return fail(env, err)
		}
		defer rdb.Close()
		if !cfg.DryRun {
			if err := ping(ctx, rdb, cfg.RedisURL); err != nil {
				return fail(env, err)
			}
		}
		st = store.New(rdb, store.Options{Retention: cfg.Retention})
	}
	opts := SubmitOptions{Stdin: env.Stdin, Objects: env.Objects, Getenv: env.Getenv, Logger: env.Logger, Now: env.Now,
		PollInterval: env.PollInterval}
	if env.StdinTTY && env.StderrTTY {
		opts.Confirm = TerminalConfirm(env.Stdin, env.Stderr)
	}
	if env.StderrTTY {
		opts.Progress = &BarProgress{W: env.Stderr}
	} else {
		opts.Progress = &LogProgress{Logger: env.Logger}
	}
	sum, err := Submit(ctx, st, cfg, opts)
	if sum != nil {
		writeSummary(env.Stdout, cfg, sum)
	}
	if err != nil {
		return fail(env, err)
	}
	return ExitCode(cfg, sum, nil)
}

// ExitCode maps a submit's outcome to the exit code: ExitUsage for errors
// matching ErrUsage (nothing written), ExitError for any other error,
// ExitIncomplete when rows were invalid or (with -wait) did not all
// complete, ExitOK otherwise.
func ExitCode(cfg *Config, sum *Summary, err error) int {
	switch {
	case errors.Is(err, ErrUsage):
		return ExitUsage
	case err != nil:
		return ExitError
	case sum == nil:
		return ExitError
	case sum.Preflight != nil && cfg.MaxLiveTasks > 0 && sum.Valid > cfg.MaxLiveTasks:
		return ExitUsage
	case sum.Invalid > 0:
		return ExitIncomplete
	case cfg.Wait && (sum.WaitCounts == nil || sum.Completed != sum.Valid):
		return ExitIncomplete
	}
	return ExitOK
}

func fail(env Env, err error) int {
	code := ExitError
	if errors.Is(err, ErrUsage) {
		code = ExitUsage
	}
	fmt.Fprintf(env.Stderr, "enqueue: %v\n", err)
	return code
}

func ping(ctx context.Context, rdb redis.UniversalClient, url string) error {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		if redis.IsAuthError(err) {
			return usagef("Redis at %s refuses the credentials (%v): check the user and password in -redis or %s",
				redisurl.Redact(url), err, EnvRedisURL)
		}
		return fmt.Errorf("cannot reach Redis at %s (set -redis or %s): %w", redisurl.Redact(url), EnvRedisURL, err)
	}
	return nil
}

// writeSummary prints the summary: a human line, and with -json the JSON
// object as the last line.
func writeSummary(w io.Writer, cfg *Config, s *Summary) {
	if cfg.JSON {
		_ = json.NewEncoder(w).Encode(s)
		return
	}
	if s.DryRun {
		fmt.Fprintf(w, "dry run: %d rows, %d valid, %d invalid; nothing written to Redis\n", s.Rows, s.Valid, s.Invalid)
		if s.Preflight != nil {
			writePreflight(w, cfg, s.Preflight)
		}
	} else {
		fmt.Fprintf(w, "run %s: %d rows, %d valid, %d invalid, %d enqueued, %d duplicate (%.0f rows/s)\n",
			s.RunID, s.Rows, s.Valid, s.Invalid, s.Enqueued, s.Duplicate, float64(s.Rows)/max(s.Seconds, 1e-9))
		if s.WaitCounts != nil {
			fmt.Fprintf(w, "run %s %s: %d submitted, %d completed, %d failed, %d canceled\n",
				s.RunID, s.State, s.Submitted, s.Completed, s.Failed, s.Canceled)
		}
	}
	if s.Rejects != "" {
		fmt.Fprintf(w, "invalid rows: %s\n", s.Rejects)
	}
}

func runOps(ctx context.Context, name string, args []string, env Env) int {
	cfg, err := parseOps(name, args, env.Getenv, env.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		return fail(env, err)
	}
	rdb, err := OpenRedis(cfg.RedisURL)
	if err != nil {
		return fail(env, err)
	}
	defer rdb.Close()
	if err := ping(ctx, rdb, cfg.RedisURL); err != nil {
		return fail(env, err)
	}
	st := store.New(rdb, store.Options{})
	switch name {
	case "status":
		_, err = Status(ctx, st, cfg.RunID, cfg.JSON, env.Stdout)
	case "results":
		_, err = WriteResults(ctx, st, cfg.RunID, ResultsOptions{Format: cfg.ResultsFormat, Join: cfg.Join,
			Dataset: cfg.Dataset, Stdin: env.Stdin, Objects: env.Objects}, env.Stdout)
	case "runs":
		err = Runs(ctx, st, cfg.Limit, cfg.JSON, env.Stdout)
	case "cancel":
		var rep control.CancelReport
		rep, err = control.Cancel(ctx, st, asynq.NewClientFromRedisClient(rdb), cfg.RunID, cfg.Tasks)
		if err == nil {
			err = writeCancelReport(env.Stdout, rep, cfg.JSON)
		}
	case "pause", "resume":
		var res store.PauseResult
		var woken int64
		res, woken, err = control.Pause(ctx, st, asynq.NewInspectorFromRedisClient(rdb), cfg.RunID, name == "pause", env.Logger)
		if err == nil {
			switch {
			case name == "pause" && !res.Changed:
				fmt.Fprintf(env.Stdout, "run %s was already paused by its operator (state %s)\n", cfg.RunID, res.State)
			case name == "pause":
				fmt.Fprintf(env.Stdout, "run %s paused: no new task is created for it until enqueue resume (state %s)\n", cfg.RunID, res.State)
			case !res.Changed:
				fmt.Fprintf(env.Stdout, "run %s was not paused by its operator (state %s); %d waiting jobs woken\n", cfg.RunID, res.State, woken)
			default:
				fmt.Fprintf(env.Stdout, "run %s resumed (state %s); %d waiting jobs woken\n", cfg.RunID, res.State, woken)
			}
		}
	case "retry":
		client := asynq.NewClientFromRedisClient(rdb)
		insp := asynq.NewInspectorFromRedisClient(rdb)
		var res RetryResult
		res, err = Retry(ctx, st, cfg.RunID, RetryOptions{Client: client, Inspector: insp, Logger: env.Logger,
			Dataset: cfg.Dataset, Stdin: env.Stdin, Objects: env.Objects, DatasetOptions: cfg.DatasetOptions})
		if err == nil {
			canceled := ""
			if res.Canceled > 0 {
				canceled = fmt.Sprintf("%d canceled rows (the cancel is lifted), ", res.Canceled)
			}
			fmt.Fprintf(env.Stdout, "run %s: %d failed rows, %s%d re-queued (%d rebuilt from the dataset), %d not re-queued\n",
				cfg.RunID, res.Failed, canceled, res.Requeued, res.FromDataset, res.Skipped)
			if res.Skipped > 0 {
				return ExitIncomplete
			}
		}
	}
	if err != nil {
		return fail(env, err)
	}
	return ExitOK
}
