// Command worker submits queued dataset rows to the Refonte API under a
// shared rate limit, receives the completion callbacks, reconciles late
// ones and serves /healthz, /readyz and /metrics.
//
// Usage:
//
//	worker [flags]
//
// Configuration comes from flags (see worker -h) and the environment:
// REDIS_URL, REFONTE_API_URL, REFONTE_TEST_API_KEY, REFONTE_LIVE_API_KEY and
// REFONTE_CALLBACK_AUTH_KEY (each secret also as NAME_FILE). Secrets are
// never flags and never logged.
//
// With -dev it runs the quick start instead: an in-process Redis, the API
// sandbox in test mode and this worker, all on 127.0.0.1, and prints the
// URLs and the enqueue command a second terminal can run against them.
//
// Exit codes: 0 after a clean shutdown (SIGTERM or SIGINT), 1 on a runtime
// failure, 2 on a configuration error (no key, a key of the wrong mode, no
// callback auth key, a bad flag).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"

	"github.com/refonte-ai/refonte-batch/app/worker"
	"github.com/refonte-ai/refonte-batch/internal/buildinfo"
	"github.com/refonte-ai/refonte-batch/internal/zapredis"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// devUsage is the -dev flag's help; the flag is this command's, not the
// worker package's: the quick start is assembled above it (devstack).
const devUsage = "quick start: run an in-process Redis, the API sandbox (test mode) and this worker on 127.0.0.1,\nprint their URLs and an enqueue command; ignores REDIS_URL, REFONTE_API_URL and the keys"

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	var dev, version bool
	cfg, err := worker.ParseFlags(args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&dev, "dev", false, devUsage)
		fs.BoolVar(&version, "version", false, "print the version, VCS revision and Go version, and exit")
	})
	if err == nil && version {
		fmt.Fprintln(stdout, buildinfo.Read().Line("worker"))
		return 0
	}
	if err == nil && !dev {
		// The quick start uses the sandbox's public keys: it reads no secret.
		err = cfg.LoadSecrets(getenv)
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	logger, err := newLogger(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "worker: logger: %v\n", err)
		return 1
	}
	defer func() { _ = logger.Sync() }()
	redis.SetLogger(zapredis.Logger{L: logger.Named("redis")})

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if dev {
		return runDev(ctx, cfg, stderr, logger)
	}
	err = worker.Run(ctx, cfg, logger)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, worker.ErrConfig):
		fmt.Fprintln(stderr, err)
		return 2
	default:
		logger.Error("worker failed", zap.Error(err))
		return 1
	}
}

// newLogger logs JSON lines, or a console format on a terminal.
func newLogger(w io.Writer) (*zap.Logger, error) {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	var encoder zapcore.Encoder = zapcore.NewJSONEncoder(enc)
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		encoder = zapcore.NewConsoleEncoder(enc)
	}
	core := zapcore.NewCore(encoder, zapcore.AddSync(w), zapcore.InfoLevel)
	return zap.New(core), nil
}
