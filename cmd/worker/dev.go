package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/app/worker"
	"github.com/refonte-ai/refonte-batch/cmd/internal/devstack"
)

// runDev is `worker -dev`: Redis, the API sandbox (test mode) and this
// worker, all in process on loopback (package cmd/internal/devstack), until
// SIGINT or SIGTERM. The environment's URLs and keys are not used: the
// sandbox's public quick-try keys are. -listen keeps its port on
// 127.0.0.1; -concurrency, -rate-limit and -rate-burst apply.
func runDev(ctx context.Context, cfg worker.Config, out io.Writer, logger *zap.Logger) int {
	opts := devstack.Options{
		Logger:      logger,
		Concurrency: cfg.Concurrency,
		RateLimit:   cfg.RateLimit,
		RateBurst:   cfg.RateBurst,
		WorkerAddr:  loopbackListen(cfg.Listen),
		ConsoleAddr: loopbackListen(cfg.AdminListen),
	}
	if cfg.RateLimit == 0 {
		opts.RateLimit = -1 // the worker's -rate-limit 0: no limit
	}
	err := devstack.Run(ctx, opts, out)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, devstack.ErrNotLoopback):
		fmt.Fprintf(out, "worker: -dev: %v (use -listen 127.0.0.1:PORT)\n", err)
		return 2
	default:
		fmt.Fprintf(out, "worker: -dev: %v\n", err)
		return 1
	}
}

// loopbackListen puts a listen address without a host (":8080") on
// 127.0.0.1; an address with a host is kept (devstack refuses it unless it
// is a loopback one).
func loopbackListen(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "" {
		return addr
	}
	return net.JoinHostPort("127.0.0.1", port)
}
