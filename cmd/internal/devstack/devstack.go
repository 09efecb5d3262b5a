// Package devstack runs the whole of refonte-batch in one process on
// embedded defaults, for the quick start (`enqueue -dev`, `worker -dev`)
// and for tests: an in-process Redis (miniredis), the Refonte API sandbox
// in test mode on a loopback port, and a worker (package app/worker) with
// its callback receiver on another loopback port, wired to both.
//
// Nothing here touches the environment: the stack uses the sandbox's
// documented quick-try keys (sandbox.DefaultTestKey and
// sandbox.DefaultCallbackAuthKey), which are not secrets and may be printed.
// Every address is on 127.0.0.1.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/app/worker"
	"github.com/refonte-ai/refonte-batch/internal/defaults"
	"github.com/refonte-ai/refonte-batch/refonte"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

// Defaults of Options.
const (
	// DefaultCompleteAfter is how long after its creation the sandbox
	// completes a task (and sends its callback).
	DefaultCompleteAfter = 300 * time.Millisecond
	// DefaultConcurrency is the worker's number of jobs handled at once.
	DefaultConcurrency = 20
	// DefaultRateLimit is the worker's create calls per second, enforced by
	// the shared Redis limiter (running on miniredis).
	DefaultRateLimit = 50
	// DefaultRateBurst is the worker's create calls allowed at once.
	DefaultRateBurst = 10
	// DefaultCallbackGrace is how late a callback may be before the
	// reconciler polls the task (short: the sandbox answers in milliseconds).
	DefaultCallbackGrace = 10 * time.Second
	// DefaultShutdownTimeout bounds Close's wait for in-flight jobs.
	DefaultShutdownTimeout = 5 * time.Second
	// LoopbackAddr is the default listen address of every component: a free
	// port on 127.0.0.1.
	LoopbackAddr = "127.0.0.1:0"
	// sandboxGrace bounds the wait for in-flight sandbox calls on Close.
	sandboxGrace = 300 * time.Millisecond
)

// ErrNotLoopback is returned by Start when a listen address is not on the
// loopback interface: the dev stack uses public quick-try keys and must not
// be reachable from the network.
var ErrNotLoopback = errors.New("devstack: listen address must be on 127.0.0.1, ::1 or localhost")

// Options configure Start. The zero value is usable: every field has a
// documented default.
type Options struct {
	// Logger receives the logs of every component; nil means none.
	Logger *zap.Logger
	// CompleteAfter is how long after its creation the sandbox completes a
	// task. Zero means DefaultCompleteAfter; sandbox.CompleteImmediately
	// (any negative value) completes tasks at creation.
	CompleteAfter time.Duration
	// Concurrency is the worker's number of jobs handled at once. Zero
	// means DefaultConcurrency.
	Concurrency int
	// RateLimit is the worker's create calls per second. Zero means
	// DefaultRateLimit; a negative value turns the limiter off.
	RateLimit float64
	// RateBurst is the worker's create calls allowed at once. Zero means
	// DefaultRateBurst.
	RateBurst int
	// CallbackGrace is how late a callback may be before the reconciler
	// polls the task. Zero means DefaultCallbackGrace.
	CallbackGrace time.Duration
	// ShutdownTimeout bounds Close's wait for in-flight jobs. Zero means
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// RedisAddr, SandboxAddr and WorkerAddr are the listen addresses of the
	// in-process Redis, the sandbox API and the worker's HTTP server
	// (/callback, /healthz, /readyz, /metrics). Empty means LoopbackAddr (a
	// free port). Each must be a loopback address (ErrNotLoopback).
	RedisAddr, SandboxAddr, WorkerAddr string
	// ConsoleAddr is the listen address of the worker's runs console
	// (-admin-listen). Empty means LoopbackAddr; it must be a loopback
	// address too.
	ConsoleAddr string
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.CompleteAfter == 0 {
		o.CompleteAfter = DefaultCompleteAfter
	}
	o.Concurrency = defaults.Positive(o.Concurrency, DefaultConcurrency)
	switch {
	case o.RateLimit == 0:
		o.RateLimit = DefaultRateLimit
	case o.RateLimit < 0:
		o.RateLimit = 0 // the worker's "no limit"
	}
	o.RateBurst = defaults.Positive(o.RateBurst, DefaultRateBurst)
	o.CallbackGrace = defaults.Positive(o.CallbackGrace, DefaultCallbackGrace)
	o.ShutdownTimeout = defaults.Positive(o.ShutdownTimeout, DefaultShutdownTimeout)
	for _, a := range []*string{&o.RedisAddr, &o.SandboxAddr, &o.WorkerAddr, &o.ConsoleAddr} {
		if *a == "" {
			*a = LoopbackAddr
		}
	}
}

// Stack is a running dev stack. Build it with Start; Close stops it.
type Stack struct {
	opts Options
	log  *zap.Logger

	redis     *miniredis.Miniredis
	sandbox   *sandbox.Server
	sandboxLn net.Listener
	worker    *worker.Worker
	// callbackClient delivers the sandbox's callbacks to the worker.
	callbackClient *http.Client

	redisURL, sandboxURL, callbackURL string

	// sandboxHTTP serves the sandbox on sandboxLn.
	sandboxHTTP *http.Server
	// stopWorker ends the worker's Run.
	stopWorker              context.CancelFunc
	sandboxDone, workerDone chan struct{}
	sandboxErr, workerErr   error

	// done is closed when a component stopped on its own (a failure) or
	// after Close; err is the first failure.
	done      chan struct{}
	doneOnce  sync.Once
	errMu     sync.Mutex
	err       error
	closeOnce sync.Once
	closeErr  error
	watchers  sync.WaitGroup
}

// Start starts the in-process Redis, the sandbox and the worker, and
// returns once all three accept connections. ctx bounds the start only;
// the stack runs until Close (call it even when ctx ends). On an error
// everything already started is stopped.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	opts.defaults()
	for _, a := range []string{opts.RedisAddr, opts.SandboxAddr, opts.WorkerAddr, opts.ConsoleAddr} {
		if !isLoopback(a) {
			return nil, fmt.Errorf("%w: %q", ErrNotLoopback, a)
		}
	}
	s := &Stack{opts: opts, log: opts.Logger.Named("devstack"), done: make(chan struct{})}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()

	// Redis. ClockTTL makes keys expire on the wall clock as on a real
	// server (miniredis otherwise expires keys only on FastForward), so
	// leases and retention TTLs behave.
	s.redis = miniredis.NewMiniRedis()
	s.redis.ClockTTL(true)
	if err := s.redis.StartAddr(opts.RedisAddr); err != nil {
		s.redis = nil
		return nil, fmt.Errorf("devstack: start in-process redis on %s: %w", opts.RedisAddr, err)
	}
	s.redisURL = "redis://" + s.redis.Addr() + "/0"

	// Sandbox API, test mode, quick-try keys.
	lc := net.ListenConfig{}
	if s.sandboxLn, err = lc.Listen(ctx, "tcp", opts.SandboxAddr); err != nil {
		return nil, fmt.Errorf("devstack: sandbox listener on %s: %w", opts.SandboxAddr, err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = sandbox.DefaultCallbackWorkers
	s.callbackClient = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	s.sandbox = sandbox.New(sandbox.Config{
		TestKey:         sandbox.DefaultTestKey,
		CallbackAuthKey: sandbox.DefaultCallbackAuthKey,
		CompleteAfter:   opts.CompleteAfter,
		Logger:          opts.Logger.Named("sandbox"),
		HTTPClient:      s.callbackClient,
	})
	s.sandboxURL = sandbox.BaseURL(s.sandboxLn.Addr())
	// Not sandbox.Serve: its graceful stop waits up to 5 s for the
	// connections a client dialed but never used (see closeSandbox).
	s.sandboxHTTP = worker.NewHTTPServer(s.sandbox, opts.Logger.Named("sandbox.http"))
	s.sandboxDone = make(chan struct{})
	go func() {
		defer close(s.sandboxDone)
		if err := s.sandboxHTTP.Serve(s.sandboxLn); !errors.Is(err, http.ErrServerClosed) {
			s.sandboxErr = err
		}
	}()
	s.watch(s.sandboxDone, func() error { return s.sandboxErr }, "sandbox")

	// Worker, against both.
	if err := s.startWorker(); err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx); err != nil {
		return nil, err
	}
	s.log.Info("dev stack started", zap.String("redis_url", s.redisURL),
		zap.String("sandbox_url", s.sandboxURL), zap.String("callback_url", s.callbackURL))
	return s, nil
}

// startWorker builds and runs the worker. The worker binds its own
// listener from Config.Listen, and its callback URL must be known before,
// so for a free port the port is picked first and bound again by the
// worker (retried if another process took it in between).
func (s *Stack) startWorker() error {
	var lastErr error
	for range 5 {
		addr, err := resolvePort(s.opts.WorkerAddr)
		if err != nil {
			return err
		}
		cfg := worker.Config{
			RedisURL:        s.redisURL,
			APIURL:          s.sandboxURL,
			TestKey:         refonte.Secret(sandbox.DefaultTestKey),
			CallbackAuthKey: refonte.Secret(sandbox.DefaultCallbackAuthKey),
			CallbackURL:     "http://" + addr + "/callback",
			Concurrency:     s.opts.Concurrency,
			Listen:          addr,
			AdminListen:     s.opts.ConsoleAddr,
			RateLimit:       s.opts.RateLimit,
			RateBurst:       s.opts.RateBurst,
			CallbackGrace:   s.opts.CallbackGrace,
			ShutdownTimeout: s.opts.ShutdownTimeout,
		}
		w, err := worker.New(cfg, s.opts.Logger.Named("worker"))
		if err != nil {
			lastErr = err
			if s.opts.WorkerAddr != LoopbackAddr && !strings.HasSuffix(s.opts.WorkerAddr, ":0") {
				break // a fixed port: retrying does not help
			}
			continue
		}
		s.worker, s.callbackURL = w, cfg.CallbackURL
		wctx, stopWorker := context.WithCancel(context.Background())
		s.stopWorker, s.workerDone = stopWorker, make(chan struct{})
		go func() {
			defer close(s.workerDone)
			s.workerErr = w.Run(wctx)
		}()
		s.watch(s.workerDone, func() error { return s.workerErr }, "worker")
		return nil
	}
	return fmt.Errorf("devstack: start worker: %w", lastErr)
}

// resolvePort turns a host:0 address into host:PORT with a port that was
// free a moment ago; other addresses are returned as they are.
func resolvePort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("devstack: worker address %q: %w", addr, err)
	}
	if port != "0" {
		return addr, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("devstack: find a free port on %s: %w", host, err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitReady polls the worker's /readyz (its HTTP server serving and Redis
// answering) until it says ready, a component fails or ctx ends. The
// sandbox's listener is bound before, so it accepts connections already.
func (s *Stack) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	client := newLoopbackClient()
	defer client.CloseIdleConnections()
	readyz := "http://" + s.worker.Addr().String() + "/readyz"
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if probe(ctx, client, readyz) {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("devstack: a component stopped during start: %w", s.Err())
		case <-ctx.Done():
			return fmt.Errorf("devstack: the stack did not become ready: %w", context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// watch records a component's unexpected stop as the stack's failure.
func (s *Stack) watch(done <-chan struct{}, errOf func() error, name string) {
	s.watchers.Go(func() {
		select {
		case <-done:
		case <-s.done:
			return
		}
		err := errOf()
		if err == nil {
			err = errors.New("stopped")
		}
		s.fail(fmt.Errorf("devstack: %s: %w", name, err))
	})
}

func (s *Stack) fail(err error) {
	s.errMu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.errMu.Unlock()
	s.doneOnce.Do(func() { close(s.done) })
}

// Done is closed when a component stopped on its own (see Err) or when
// Close was called.
func (s *Stack) Done() <-chan struct{} { return s.done }

// Err returns why a component stopped on its own, or nil.
func (s *Stack) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// RedisURL returns the in-process Redis URL (redis://127.0.0.1:PORT/0).
func (s *Stack) RedisURL() string { return s.redisURL }

// SandboxURL returns the sandbox API base URL (http://127.0.0.1:PORT/v1).
func (s *Stack) SandboxURL() string { return s.sandboxURL }

// CallbackURL returns the worker's callback URL
// (http://127.0.0.1:PORT/callback); the worker also uses it for rows that
// carry no callback_url.
func (s *Stack) CallbackURL() string { return s.callbackURL }

// ConsoleURL returns the URL of the worker's runs console ("" if it has
// none: its address was taken).
func (s *Stack) ConsoleURL() string {
	if a := s.worker.AdminAddr(); a != nil {
		return "http://" + a.String() + "/runs"
	}
	return ""
}

// WorkerAddr returns the address of the worker's HTTP server.
func (s *Stack) WorkerAddr() net.Addr { return s.worker.Addr() }

// Sandbox returns the in-process sandbox (for its Stats, or to inject faults).
func (s *Stack) Sandbox() *sandbox.Server { return s.sandbox }

// Redis returns the in-process Redis server.
func (s *Stack) Redis() *miniredis.Miniredis { return s.redis }

// EnqueueEnv returns the environment ("NAME=value") a separate enqueue
// process needs to submit to this stack: REDIS_URL and REFONTE_CALLBACK_URL.
// It holds no secret (enqueue needs none in test mode).
func (s *Stack) EnqueueEnv() []string {
	return []string{worker.EnvRedisURL + "=" + s.redisURL, worker.EnvCallbackURL + "=" + s.callbackURL}
}

// WorkerEnv returns the environment a second worker process needs to join
// this stack. Its keys are the sandbox's public quick-try defaults, not
// secrets.
func (s *Stack) WorkerEnv() []string {
	return []string{
		worker.EnvRedisURL + "=" + s.redisURL,
		worker.EnvAPIURL + "=" + s.sandboxURL,
		worker.EnvTestKey + "=" + sandbox.DefaultTestKey,
		worker.EnvCallbackAuthKey + "=" + sandbox.DefaultCallbackAuthKey,
		worker.EnvCallbackURL + "=" + s.callbackURL,
	}
}

// EnqueueCommand returns a shell command line that submits a dataset to
// this stack from a second terminal at the repository root, for example
// EnqueueCommand("-type", "imageannotation", "examples/street-scenes.csv").
// Arguments are quoted for a POSIX shell where needed.
func (s *Stack) EnqueueCommand(args ...string) string {
	parts := []string{worker.EnvRedisURL + "=" + shellQuote(s.redisURL), "go", "run", "./cmd/enqueue",
		"-callback-url", shellQuote(s.callbackURL)}
	for _, a := range args {
		parts = append(parts, shellQuote(a))
	}
	return strings.Join(parts, " ")
}

// Close stops the worker (in-flight jobs get ShutdownTimeout, then go back
// to the queue), then the sandbox, then Redis, and waits for every
// goroutine the stack started. It is safe to call more than once and
// returns the first error a component reported while stopping.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		s.doneOnce.Do(func() { close(s.done) })
		var errs []error
		if s.stopWorker != nil {
			s.stopWorker()
			s.waitWorker()
			if s.workerErr != nil {
				errs = append(errs, fmt.Errorf("worker: %w", s.workerErr))
			}
		}
		if s.sandboxHTTP != nil {
			s.closeSandbox()
			<-s.sandboxDone
			if s.sandboxErr != nil {
				errs = append(errs, fmt.Errorf("sandbox: %w", s.sandboxErr))
			}
		} else if s.sandboxLn != nil {
			_ = s.sandboxLn.Close()
		}
		if s.sandbox != nil {
			s.sandbox.Close()
		}
		if s.redis != nil {
			s.redis.Close()
		}
		s.watchers.Wait()
		if len(errs) > 0 {
			s.closeErr = fmt.Errorf("devstack: close: %w", errors.Join(errs...))
		}
	})
	return s.closeErr
}

// waitWorker waits for the worker's Run to return. Meanwhile it keeps
// closing the sandbox's idle callback connections: the worker's HTTP
// server counts a connection that never carried a request as active for
// 5 s, so an idle keep-alive pool would hold up its graceful shutdown.
func (s *Stack) waitWorker() {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if s.callbackClient != nil {
			s.callbackClient.CloseIdleConnections()
		}
		select {
		case <-s.workerDone:
			return
		case <-t.C:
		}
	}
}

// closeSandbox stops the sandbox's HTTP server once the worker is down:
// it gives in-flight calls (from other processes on the stack) a moment,
// then closes every connection. A graceful Shutdown alone would wait 5 s
// for the connections the worker's API client dialed but never used, which
// Go's http.Server counts as active until they are 5 s old.
func (s *Stack) closeSandbox() {
	ctx, cancel := context.WithTimeout(context.Background(), sandboxGrace)
	defer cancel()
	if err := s.sandboxHTTP.Shutdown(ctx); err != nil {
		_ = s.sandboxHTTP.Close()
	}
}

// isLoopback reports whether addr's host is a loopback IP or localhost.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// shellQuote quotes s for a POSIX shell unless it is made only of safe characters.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,@%+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// newLoopbackClient returns an HTTP client for probes of the stack's own
// loopback servers.
func newLoopbackClient() *http.Client {
	return &http.Client{Transport: &http.Transport{}, Timeout: time.Second}
}

// probe reports whether GET u answers 200.
func probe(ctx context.Context, client *http.Client, u string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
