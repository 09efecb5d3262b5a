package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/app/console"
)

// admin is the runs console's own listener (-admin-listen), apart from the
// callback listener: never behind the ingress.
type admin struct {
	ln  net.Listener
	srv *http.Server
	// stop ends the console's requests (event streams, downloads) at shutdown.
	stop context.CancelFunc
}

// newAdmin builds the console and binds its listener ("" address: nil, no console).
func (w *Worker) newAdmin() (*admin, error) {
	if w.cfg.AdminListen == "" {
		return nil, nil
	}
	c, err := console.New(console.Options{
		Store:          w.store,
		Inspector:      w.insp,
		Client:         asynq.NewClientFromRedisClient(w.rdb),
		RateLimit:      w.cfg.RateLimit,
		LiveDailyLimit: w.handler.LiveDailyLimit,
		Token:          w.cfg.AdminToken,
		Logger:         w.log.Named("console"),
	})
	if err != nil {
		return nil, fmt.Errorf("worker: console: %w", err)
	}
	ln, err := net.Listen("tcp", w.cfg.AdminListen)
	if errors.Is(err, syscall.EADDRINUSE) {
		// Another worker on this host serves the console already; it shows
		// the same runs (all state is in Redis).
		w.log.Warn("the console's address is taken (another worker on this host?); this worker serves no console",
			zap.String("admin_listen", w.cfg.AdminListen))
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: -admin-listen %s: %v", ErrConfig, w.cfg.AdminListen, err)
	}
	base, stop := context.WithCancel(context.Background())
	// No WriteTimeout: event streams (bounded by console.DefaultStreamFor)
	// and results downloads last longer than a page.
	srv := &http.Server{
		Handler:           c,
		ReadHeaderTimeout: HTTPReadHeaderTimeout,
		ReadTimeout:       HTTPReadTimeout,
		IdleTimeout:       HTTPIdleTimeout,
		ErrorLog:          zap.NewStdLog(w.log.Named("console")),
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	return &admin{ln: ln, srv: srv, stop: stop}, nil
}

// AdminAddr returns the runs console's address (nil when it is off).
func (w *Worker) AdminAddr() net.Addr {
	if w.admin == nil {
		return nil
	}
	return w.admin.ln.Addr()
}

// serveAdmin serves the console until shutdownAdmin.
func (w *Worker) serveAdmin() error {
	if w.admin == nil {
		return nil
	}
	if err := w.admin.srv.Serve(w.admin.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("worker: console server: %w", err)
	}
	return nil
}

func (w *Worker) shutdownAdmin() {
	if w.admin == nil {
		return
	}
	w.admin.stop()
	ctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
	defer cancel()
	if err := w.admin.srv.Shutdown(ctx); err != nil {
		w.log.Warn("console server shutdown", zap.Error(err))
	}
}

// sampleTimelines writes the runs' timeline points (one a minute, see
// console.SampleTimelines) until ctx ends, whether or not this worker
// serves the console: every worker's console reads them.
func (w *Worker) sampleTimelines(ctx context.Context) {
	t := time.NewTicker(console.TimelineInterval)
	defer t.Stop()
	for {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := console.SampleTimelines(sctx, w.store, time.Now()); err != nil && ctx.Err() == nil {
			w.log.Debug("sampling the runs' timelines failed", zap.Error(err))
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
