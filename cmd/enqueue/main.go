// Command enqueue submits a CSV or JSONL dataset to refonte-batch's queues
// and reports on runs. See package app/enqueue for the command line:
//
//	enqueue [flags] DATASET        submit a dataset (.csv, .jsonl, .gz, - for stdin, or an
//	                               https://, s3://, gs:// or azblob:// URL)
//	enqueue status [-json] RUN_ID  a run's counts and state
//	enqueue results RUN_ID         one JSON line per row
//	enqueue retry RUN_ID           re-queue the run's failed rows
//	enqueue runs                   recent runs, newest first
//	enqueue cancel [-tasks] RUN_ID stop a run
//	enqueue pause|resume RUN_ID    hold a run / let it go on
//
// Exit codes: 0 all rows valid and enqueued (with -wait: completed), 1 an
// error stopped the run, 2 usage or configuration error, 3 the run finished
// but some rows were invalid or failed.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"

	"github.com/refonte-ai/refonte-batch/app/enqueue"
	"github.com/refonte-ai/refonte-batch/cmd/internal/devstack"
	"github.com/refonte-ai/refonte-batch/internal/datasrc/cloud"
	"github.com/refonte-ai/refonte-batch/internal/zapredis"
)

func main() {
	os.Exit(run())
}

// GC tuning, used unless GOGC or GOMEMLIMIT is set: enqueue streams, so its
// live heap is small and flat (a few MiB); a higher GOGC spends ~15% less
// CPU on garbage collection, and the soft memory limit keeps the peak RSS
// well under the 64 MiB target.
const (
	gcPercent   = 400
	memoryLimit = 32 << 20
)

func run() int {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// The first signal stops enqueue cleanly (the run is marked aborted);
		// a second one kills the process the default way.
		<-ctx.Done()
		stop()
	}()
	env := enqueue.Env{
		Stdin:     os.Stdin,
		Stdout:    os.Stdout,
		Stderr:    os.Stderr,
		Getenv:    os.Getenv,
		StdinTTY:  term.IsTerminal(int(os.Stdin.Fd())),
		StderrTTY: term.IsTerminal(int(os.Stderr.Fd())),
		StartDev:  startDev,
		Objects:   cloud.Open,
	}
	env.Logger = newLogger(env.StderrTTY)
	defer func() { _ = env.Logger.Sync() }()
	redis.SetLogger(zapredis.Logger{L: env.Logger.Named("redis")})
	return enqueue.Main(ctx, os.Args[1:], env)
}

// startDev starts the -dev stack: Redis, the API sandbox in test mode and a
// worker in this process, on package devstack's defaults.
func startDev(ctx context.Context, logger *zap.Logger) (enqueue.DevStack, error) {
	s, err := devstack.Start(ctx, devstack.Options{Logger: logger})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// newLogger logs JSON lines to stderr, or (on a terminal, where the
// progress bar shows progress) only warnings and errors in console form.
func newLogger(tty bool) *zap.Logger {
	if tty {
		enc := zap.NewDevelopmentEncoderConfig()
		enc.TimeKey = ""
		return zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(os.Stderr), zap.WarnLevel))
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(os.Stderr), zap.InfoLevel))
}
