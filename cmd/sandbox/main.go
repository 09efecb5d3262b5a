// Command sandbox serves a fake Refonte.AI API (package refonte/sandbox) for
// tests, benchmarks and trying refonte-batch without an account.
//
// Keys come from REFONTE_TEST_API_KEY, REFONTE_LIVE_API_KEY and
// REFONTE_CALLBACK_AUTH_KEY (or the same names with _FILE, naming a file
// holding the key). Unset keys fall back to the package's quick-try
// defaults, which are printed; keys read from the environment never are.
//
// Exit codes: 0 after a clean shutdown on SIGINT/SIGTERM, 1 on a runtime
// error, 2 on bad flags or keys.
package main

import (
	"context"
	"errors"
	goflag "flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/refonte-ai/refonte-batch/internal/buildinfo"
	"github.com/refonte-ai/refonte-batch/refonte"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usage is the -h text before the flags.
const usage = `usage: sandbox [flags]

Serves a fake Refonte.AI API (tasks, batches, projects, completion callbacks, fault injection) for
tests, benchmarks and trying refonte-batch without an account. Base URL: http://ADDR/v1; counters
at http://ADDR/_sandbox/stats.

environment (each also as NAME_FILE, a file holding the value; unset keys fall back to the
quick-try defaults, which are printed; keys from the environment never are):
  REFONTE_TEST_API_KEY       the test-mode key the API accepts (starts with test_)
  REFONTE_LIVE_API_KEY       the live-mode key the API accepts (starts with live_)
  REFONTE_CALLBACK_AUTH_KEY  sent in the refonte.ai-callback-auth header of every callback

exit codes: 0 after a clean shutdown on SIGINT/SIGTERM (or -h), 1 a runtime error, 2 bad flags or keys.

flags:
`

// run serves until ctx is done and returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	var cfg sandbox.Config
	flag := goflag.NewFlagSet("sandbox", goflag.ContinueOnError)
	flag.SetOutput(stderr)
	addr := flag.String("addr", "127.0.0.1:8089", "listen address")
	projects := flag.String("projects", sandbox.DefaultProject, "comma-separated projects pre-created in both modes")
	flag.DurationVar(&cfg.CompleteAfter, "complete-after", sandbox.DefaultCompleteAfter, "tasks complete this long after creation (0: immediately)")
	flag.BoolVar(&cfg.NoAutoComplete, "no-auto-complete", false, "leave tasks pending forever")
	flag.BoolVar(&cfg.HoldUntilFinalize, "hold-until-finalize", false, "tasks of a staging batch wait for its finalize before completing")
	flag.Float64Var(&cfg.RateLimit, "rate-limit", 0, "task creations per second per key; beyond it 429 (0: unlimited)")
	flag.Float64Var(&cfg.ErrorRate, "error-rate", 0, "probability that a create answers 500/503 without creating")
	flag.Float64Var(&cfg.LostResponseRate, "lost-response-rate", 0, "probability that a create creates the task and answers 500")
	flag.DurationVar(&cfg.Latency, "latency", 0, "latency added to every API call")
	flag.Float64Var(&cfg.CallbackDropRate, "callback-drop-rate", 0, "probability that a callback is never sent")
	flag.Float64Var(&cfg.CallbackDupRate, "callback-dup-rate", 0, "probability that a callback is delivered 2-3 times")
	flag.Float64Var(&cfg.CallbackEarlyRate, "callback-early-rate", 0, "probability that a task completes and calls back before its create is answered")
	flag.Int64Var(&cfg.Seed, "seed", 0, "seed of the fault rolls (0: random)")
	verbose := flag.Bool("v", false, "debug logging")
	flag.Usage = func() {
		fmt.Fprint(stderr, usage)
		flag.PrintDefaults()
	}
	version := flag.Bool("version", false, "print the version, VCS revision and Go version, and exit")
	if err := flag.Parse(args); err != nil {
		if errors.Is(err, goflag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *version {
		fmt.Fprintln(stdout, buildinfo.Read().Line("sandbox"))
		return 0
	}
	if cfg.CompleteAfter == 0 {
		cfg.CompleteAfter = sandbox.CompleteImmediately
	}
	cfg.Projects = strings.Split(*projects, ",")

	level := zapcore.InfoLevel
	if *verbose {
		level = zapcore.DebugLevel
	}
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(stderr), level))
	defer func() { _ = log.Sync() }()
	cfg.Logger = log

	var defaults []string
	for _, k := range []struct {
		env  string
		dst  *string
		def  string
		mode refonte.Mode
	}{
		{"REFONTE_TEST_API_KEY", &cfg.TestKey, sandbox.DefaultTestKey, refonte.ModeTest},
		{"REFONTE_LIVE_API_KEY", &cfg.LiveKey, sandbox.DefaultLiveKey, refonte.ModeLive},
		{"REFONTE_CALLBACK_AUTH_KEY", &cfg.CallbackAuthKey, sandbox.DefaultCallbackAuthKey, ""},
	} {
		v, err := secretFromEnv(getenv, k.env)
		if err != nil {
			fmt.Fprintln(stderr, "sandbox:", err)
			return 2
		}
		if v == "" {
			v = k.def
			defaults = append(defaults, fmt.Sprintf("%s=%s", k.env, k.def))
		}
		if k.mode != "" {
			if m, err := refonte.ModeOf(v); err != nil || m != k.mode {
				fmt.Fprintf(stderr, "sandbox: %s must start with %q\n", k.env, string(k.mode)+"_")
				return 2
			}
		}
		*k.dst = v
	}

	srv := sandbox.New(cfg)
	defer srv.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(stderr, "sandbox:", err)
		return 1
	}
	base := sandbox.BaseURL(ln.Addr())
	fmt.Fprintf(stdout, "refonte sandbox listening\nbase URL: %s\nstats: http://%s/_sandbox/stats\n", base, ln.Addr())
	if len(defaults) > 0 {
		fmt.Fprintf(stdout, "using quick-try default keys (set the variables to override): %s\n", strings.Join(defaults, " "))
	}
	log.Info("sandbox started", zap.String("base_url", base), zap.Stringer("config", cfg))
	if err := srv.Serve(ctx, ln); err != nil {
		log.Error("serve", zap.Error(err))
		return 1
	}
	log.Info("sandbox stopped")
	return 0
}

// secretFromEnv returns $name, or the trimmed content of the file named by
// $name_FILE. The error never contains the value.
func secretFromEnv(getenv func(string) string, name string) (string, error) {
	if v := getenv(name); v != "" {
		return v, nil
	}
	path := getenv(name + "_FILE")
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s_FILE: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}
