package enqueue

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// ErrLiveRefused marks a live run refused by the safety rule (no live key
// configured, no confirmation, or over -max-live-tasks). It matches ErrUsage,
// so the exit code is ExitUsage, and nothing was written to Redis.
var ErrLiveRefused = errors.New("live run refused")

// liveRefusedError is a refusal of a live run.
type liveRefusedError struct{ msg string }

// Error returns the refusal message.
func (e *liveRefusedError) Error() string { return e.msg }

// Is makes the refusal match both ErrLiveRefused and ErrUsage.
func (e *liveRefusedError) Is(target error) bool {
	return target == ErrLiveRefused || target == ErrUsage
}

func refusef(format string, args ...any) error {
	return &liveRefusedError{msg: fmt.Sprintf(format, args...)}
}

// CheckLiveKey applies the first half of the live-mode safety rule: the
// environment must name a live API key, in REFONTE_LIVE_API_KEY or in the
// file REFONTE_LIVE_API_KEY_FILE points to, and that key must start with
// "live_". Setting it is the operator's statement that live mode is
// configured on purpose. The key is only checked for its prefix: it is never
// kept, logged, written to Redis or put in a payload. Errors match
// ErrLiveRefused.
func CheckLiveKey(getenv func(string) string) error {
	key := getenv(EnvLiveKey)
	from := EnvLiveKey
	if key == "" {
		path := getenv(EnvLiveKeyFile)
		if path == "" {
			return refusef("-mode live needs %s or %s in the environment (the live key the workers use); nothing was written",
				EnvLiveKey, EnvLiveKeyFile)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return refusef("-mode live: cannot read %s (%s): %v", EnvLiveKeyFile, path, errors.Unwrap(err))
		}
		key, from = strings.TrimSpace(string(b)), EnvLiveKeyFile
	}
	if m, err := refonte.ModeOf(key); err != nil || m != refonte.ModeLive {
		return refusef("-mode live: the key in %s is not a live key (it must start with \"live_\"); nothing was written", from)
	}
	return nil
}

// Preflight is the live-mode pre-flight report of a dry run.
type Preflight struct {
	// Billable is the number of live tasks the run would create (its valid rows).
	Billable int64 `json:"billable"`
	// MaxLiveTasks is the per-run cap (0: none).
	MaxLiveTasks int64 `json:"max_live_tasks"`
	// LiveSpendToday is the number of live tasks the workers reserved today
	// (UTC), across all runs; nil when Redis could not be read.
	LiveSpendToday *int64 `json:"live_spend_today"`
	// WouldStop lists what would stop or pause the run, empty if nothing would.
	WouldStop []string `json:"would_stop"`
}

// preflight builds the pre-flight report of a live dry run.
func preflight(ctx context.Context, st *store.Store, cfg *Config, opts *SubmitOptions, valid int64) *Preflight {
	p := &Preflight{Billable: valid, MaxLiveTasks: cfg.MaxLiveTasks, WouldStop: []string{}}
	if err := CheckLiveKey(opts.Getenv); err != nil {
		p.WouldStop = append(p.WouldStop, err.Error())
	}
	if cfg.MaxLiveTasks > 0 && valid > cfg.MaxLiveTasks {
		p.WouldStop = append(p.WouldStop, fmt.Sprintf("-max-live-tasks %d: the run has %d billable rows", cfg.MaxLiveTasks, valid))
	}
	if !cfg.Yes && (opts.Confirm == nil || cfg.Dataset == "-") {
		p.WouldStop = append(p.WouldStop, "no terminal to confirm on: add -yes")
	}
	if st != nil {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if n, err := st.LiveSpend(cctx, opts.now()); err == nil {
			p.LiveSpendToday = &n
		}
	}
	return p
}

// writePreflight prints the human form of a pre-flight report.
func writePreflight(w io.Writer, cfg *Config, p *Preflight) {
	fmt.Fprintf(w, "live pre-flight: %d billable live tasks in project %q, batch %q\n", p.Billable, cfg.Project, cfg.Batch)
	if p.MaxLiveTasks > 0 {
		fmt.Fprintf(w, "  per-run cap -max-live-tasks: %d\n", p.MaxLiveTasks)
	} else {
		fmt.Fprintf(w, "  per-run cap -max-live-tasks: none\n")
	}
	if p.LiveSpendToday != nil {
		fmt.Fprintf(w, "  live tasks reserved today (UTC, all runs): %d; the workers' -live-daily-limit pauses the run past their cap\n", *p.LiveSpendToday)
	} else {
		fmt.Fprintf(w, "  live tasks reserved today: unknown (Redis not readable)\n")
	}
	if len(p.WouldStop) == 0 {
		fmt.Fprintf(w, "  nothing would stop this run\n")
	}
	for _, s := range p.WouldStop {
		fmt.Fprintf(w, "  would stop: %s\n", s)
	}
}

// TerminalConfirm returns a confirmation function that prints the prompt to
// out and reads one line from in; only "yes" confirms.
func TerminalConfirm(in io.Reader, out io.Writer) func(prompt string) (bool, error) {
	return func(prompt string) (bool, error) {
		fmt.Fprint(out, prompt)
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && line == "" {
			return false, err
		}
		return strings.TrimSpace(line) == "yes", nil
	}
}

// confirmLive applies the second half of the live-mode safety rule, after
// the pre-pass has counted the billable rows: -yes, or a "yes" typed on the
// terminal; without a terminal and without -yes the run is refused.
func confirmLive(cfg *Config, opts *SubmitOptions, valid int64) error {
	if cfg.MaxLiveTasks > 0 && valid > cfg.MaxLiveTasks {
		return refusef("live run refused: %d billable rows is more than -max-live-tasks %d; nothing was written", valid, cfg.MaxLiveTasks)
	}
	if cfg.Yes {
		return nil
	}
	if opts.Confirm == nil || cfg.Dataset == "-" {
		return refusef("live run refused: %d billable rows and no terminal to confirm on; add -yes to confirm; nothing was written", valid)
	}
	ok, err := opts.Confirm(fmt.Sprintf("About to create %d billable live tasks in project %q, batch %q. Type yes to continue: ",
		valid, cfg.Project, cfg.Batch))
	if err != nil {
		return refusef("live run not confirmed (%v); nothing was written", err)
	}
	if !ok {
		return refusef("live run not confirmed; nothing was written")
	}
	return nil
}
