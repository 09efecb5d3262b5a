package worker

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/refonte-ai/refonte-batch/internal/redisurl"
	"github.com/refonte-ai/refonte-batch/jobs/callback"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// Environment variables read by LoadConfig. Each secret may instead be
// given as a file path in NAME_FILE (a mounted Kubernetes secret); the
// file's content is trimmed of surrounding white space. Setting both NAME
// and NAME_FILE is an error.
const (
	EnvRedisURL        = "REDIS_URL"
	EnvAPIURL          = "REFONTE_API_URL"
	EnvTestKey         = "REFONTE_TEST_API_KEY"
	EnvLiveKey         = "REFONTE_LIVE_API_KEY"
	EnvCallbackAuthKey = "REFONTE_CALLBACK_AUTH_KEY"
	EnvCallbackURL     = "REFONTE_CALLBACK_URL"
	// EnvAdminToken, when set, is required by the runs console
	// (-admin-listen): as a Bearer token or as the Basic auth password.
	EnvAdminToken = "REFONTE_ADMIN_TOKEN"
)

// Defaults of Config.
const (
	DefaultRedisURL          = "redis://127.0.0.1:6379/0"
	DefaultAPIURL            = "https://api.refonte.com/v1"
	DefaultConcurrency       = 50
	DefaultListen            = ":8080"
	DefaultRateLimit         = 10
	DefaultRateBurst         = 1
	DefaultCallbackGrace     = 10 * time.Minute
	DefaultShutdownTimeout   = 30 * time.Second
	DefaultMaxCallbacks      = callback.DefaultMaxConcurrent
	DefaultKeptCallbackBytes = store.DefaultKeptCallbackBytes
	// DefaultAdminListen is where the runs console listens: loopback only,
	// never the callback listener.
	DefaultAdminListen = "127.0.0.1:8081"
)

// prefetch returns how many jobs beyond Concurrency the process holds (Config.Prefetch).
func (c Config) prefetch() int {
	switch {
	case c.Prefetch < 0:
		return 0
	case c.Prefetch > 0:
		return c.Prefetch
	}
	return max(c.Concurrency/4, 1)
}

// ErrConfig is wrapped by every configuration error of LoadConfig and
// Config.Validate: the worker refuses to start (cmd/worker exits 2).
var ErrConfig = errors.New("worker: configuration error")

// Config is the worker's configuration: flags for the non-secret settings,
// the environment for the Redis and API URLs and for every secret.
type Config struct {
	// RedisURL is redis://, rediss:// or redis-sentinel://…?master=NAME.
	RedisURL string
	// APIURL is the Refonte API base URL.
	APIURL string
	// TestKey and LiveKey are the API keys; the worker serves the queue of
	// each mode it holds a key for. At least one is required.
	TestKey, LiveKey refonte.Secret
	// TestKeyFile and LiveKeyFile are the files the keys were read from
	// (NAME_FILE), if any: while the API rejects a key (401) the worker
	// re-reads its file before each probe, so a rotated secret is used.
	TestKeyFile, LiveKeyFile string
	// CallbackAuthKey authenticates POST /callback. Required.
	CallbackAuthKey refonte.Secret
	// CallbackURL is sent as callback_url for rows whose params carry none
	// (normally enqueue puts the run's URL in every row). Optional.
	CallbackURL string
	// Concurrency is the number of jobs handled at once: at most this many
	// wait for a rate-limit slot or talk to the API at the same time (the
	// process holds Prefetch more, fetched and checked, ready for a slot).
	Concurrency int
	// Listen is the HTTP address of /callback, /healthz, /readyz and /metrics.
	Listen string
	// RateLimit is the create calls per second per mode, shared by every
	// worker on the same Redis; 0 turns the limiter off.
	RateLimit float64
	// RateBurst is how many calls may go at once after an idle period.
	RateBurst int
	// CallbackGrace is how long after its submission a task without a
	// callback is polled by the reconciler.
	CallbackGrace time.Duration
	// ShutdownTimeout bounds the wait for in-flight jobs on SIGTERM; jobs
	// still running then are handed back to the queue.
	ShutdownTimeout time.Duration
	// LiveDailyLimit caps the live tasks created per UTC day across all
	// workers; 0 means no cap.
	LiveDailyLimit int64
	// MaxCallbacks caps the authenticated POST /callback requests handled
	// at once; more are answered 503 (the platform delivers them again).
	// /healthz, /readyz and /metrics are not subject to it. Zero means
	// DefaultMaxCallbacks.
	MaxCallbacks int
	// MaxConnections caps the connections open at once on Listen (a
	// flood of connections would otherwise take every file descriptor);
	// HealthReserve more are kept for /healthz, /readyz and /metrics.
	// Zero means AutoMaxConnections (half the file limit, at most
	// MaxConnectionsCeiling).
	MaxConnections int
	// KeptCallbackBytes is the Redis memory the kept callbacks (unknown
	// tasks and conflicting deliveries, see store.KeepCallback) may take,
	// shared by all workers. Zero means DefaultKeptCallbackBytes.
	KeptCallbackBytes int64
	// AdminListen is the address of the runs console (package
	// app/console), a listener of its own; "" turns the console off.
	AdminListen string
	// AdminToken, when set, is required on every console request. A
	// console on an address other than loopback needs one.
	AdminToken refonte.Secret

	// PausedRecheck is how often a live job paused by the daily cap looks
	// at the cap again; not a flag (tests shorten it). Zero: submit.PausedRecheck.
	PausedRecheck time.Duration
	// Fetchers is the number of asynq servers the concurrency is split
	// over (each fetches jobs in its own loop); not a flag. Zero: one per
	// 4 of concurrency, at most 16. The low lane (see jobs.LowLaneShare)
	// is one more server, its slots taken from the concurrency.
	Fetchers int
	// Prefetch is how many jobs the process holds beyond Concurrency:
	// fetched, checked and waiting for an API slot, so a slot freed by an
	// answered create is taken at once instead of after the next fetch;
	// not a flag. Zero: a quarter of Concurrency, at least 1; negative: none.
	Prefetch int
	// KeyProbeInterval is how often a key the API rejected is probed; not
	// a flag (tests shorten it). Zero: keyguard.DefaultProbeInterval.
	KeyProbeInterval time.Duration
	// ClientMaxElapsed bounds the API client's own retries of one call
	// before the error goes back to asynq; not a flag. Zero: ClientMaxElapsed.
	ClientMaxElapsed time.Duration
}

// Modes returns the modes the worker holds a key for, live first.
func (c Config) Modes() []refonte.Mode {
	var ms []refonte.Mode
	if c.LiveKey != "" {
		ms = append(ms, refonte.ModeLive)
	}
	if c.TestKey != "" {
		ms = append(ms, refonte.ModeTest)
	}
	return ms
}

// KeyFile returns the file a mode's key was read from ("" when none).
func (c Config) KeyFile(m refonte.Mode) string {
	switch m {
	case refonte.ModeLive:
		return c.LiveKeyFile
	case refonte.ModeTest:
		return c.TestKeyFile
	}
	return ""
}

// Key returns the API key of a mode ("" when the worker has none).
func (c Config) Key(m refonte.Mode) refonte.Secret {
	switch m {
	case refonte.ModeLive:
		return c.LiveKey
	case refonte.ModeTest:
		return c.TestKey
	}
	return ""
}

// LoadConfig parses the flags in args (without the program name) and the
// environment read through getenv, then validates the result: ParseFlags
// then LoadSecrets. Usage and flag errors are written to output. It
// returns flag.ErrHelp for -h, and errors wrapping ErrConfig for anything
// that must stop the worker.
func LoadConfig(args []string, getenv func(string) string, output io.Writer) (Config, error) {
	c, err := ParseFlags(args, getenv, output, nil)
	if err != nil {
		return c, err
	}
	return c, c.LoadSecrets(getenv)
}

// ParseFlags parses the flags in args (without the program name) into a
// Config whose Redis and API URLs come from the environment; it reads no
// secret and does not validate. extra, when not nil, registers the
// caller's own flags on the same flag set before parsing (cmd/worker's
// -dev), so that they are parsed and listed by -h with the worker's. It
// returns flag.ErrHelp for -h, and errors wrapping ErrConfig for bad flags.
func ParseFlags(args []string, getenv func(string) string, output io.Writer, extra func(*flag.FlagSet)) (Config, error) {
	c := Config{
		RedisURL: envOr(getenv, EnvRedisURL, DefaultRedisURL),
		APIURL:   envOr(getenv, EnvAPIURL, DefaultAPIURL),
	}
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.IntVar(&c.Concurrency, "concurrency", DefaultConcurrency, "jobs handled at once by this process: at most this many wait on the rate limiter or call the API at once (a quarter more are fetched ahead)")
	fs.StringVar(&c.Listen, "listen", DefaultListen, "HTTP address of /callback, /healthz, /readyz and /metrics")
	fs.Float64Var(&c.RateLimit, "rate-limit", DefaultRateLimit, "create calls per second per mode, shared by all workers through Redis (0 = no limit)")
	fs.IntVar(&c.RateBurst, "rate-burst", DefaultRateBurst, "create calls allowed at once after an idle period")
	fs.DurationVar(&c.CallbackGrace, "callback-grace", DefaultCallbackGrace, "poll a submitted task whose callback is this late")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", DefaultShutdownTimeout, "on SIGTERM, wait this long for in-flight jobs, then hand them back")
	fs.Int64Var(&c.LiveDailyLimit, "live-daily-limit", 0, "live tasks created per UTC day across all workers (0 = no cap; setting one is recommended)")
	fs.StringVar(&c.AdminListen, "admin-listen", DefaultAdminListen, "address of the runs console (a browser UI; \"\" = off); off loopback it needs "+EnvAdminToken)
	fs.IntVar(&c.MaxCallbacks, "max-callbacks", DefaultMaxCallbacks, "authenticated callback requests handled at once; more are answered 503 (the platform retries)")
	fs.IntVar(&c.MaxConnections, "max-connections", 0, "connections open at once on -listen; beyond it new ones wait, but for a reserve of 16 serving only /healthz, /readyz and /metrics (0 = half the open-file limit, at most 4096)")
	fs.Int64Var(&c.KeptCallbackBytes, "kept-callbacks-bytes", DefaultKeptCallbackBytes, "bytes of Redis for the callbacks kept for inspection (unknown tasks, conflicting deliveries); the oldest are dropped beyond it")
	fs.StringVar(&c.CallbackURL, "callback-url", getenv(EnvCallbackURL), "callback_url for rows that carry none (env "+EnvCallbackURL+")")
	if extra != nil {
		extra(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: worker [flags]

Submits queued rows to the Refonte API, receives completion callbacks and
reconciles late ones. Environment: %s (default %s), %s (default %s),
%s, %s, %s (each also as NAME_FILE).

Flags:
`, EnvRedisURL, DefaultRedisURL, EnvAPIURL, DefaultAPIURL, EnvTestKey, EnvLiveKey, EnvCallbackAuthKey)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%w: unexpected arguments %q", ErrConfig, fs.Args())
	}
	return c, nil
}

// LoadSecrets reads the API keys and the callback auth key from the
// environment through getenv (each also as NAME_FILE), then validates c.
// Every error wraps ErrConfig and never contains a secret.
func (c *Config) LoadSecrets(getenv func(string) string) error {
	var err error
	if c.AdminToken, err = secret(getenv, EnvAdminToken); err != nil {
		return err
	}
	if c.TestKey, err = secret(getenv, EnvTestKey); err != nil {
		return err
	}
	if c.LiveKey, err = secret(getenv, EnvLiveKey); err != nil {
		return err
	}
	c.TestKeyFile, c.LiveKeyFile = getenv(EnvTestKey+"_FILE"), getenv(EnvLiveKey+"_FILE")
	if c.CallbackAuthKey, err = secret(getenv, EnvCallbackAuthKey); err != nil {
		return err
	}
	return c.Validate()
}

// Validate checks the configuration; every error wraps ErrConfig and never
// contains a secret.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	if c.TestKey == "" && c.LiveKey == "" {
		return bad("no API key: set %s and/or %s (or their _FILE variants)", EnvTestKey, EnvLiveKey)
	}
	for _, k := range []struct {
		env  string
		key  refonte.Secret
		want refonte.Mode
	}{{EnvTestKey, c.TestKey, refonte.ModeTest}, {EnvLiveKey, c.LiveKey, refonte.ModeLive}} {
		if k.key == "" {
			continue
		}
		m, err := refonte.ModeOf(k.key.Reveal())
		if err != nil {
			return bad("%s: %v", k.env, err)
		}
		if m != k.want {
			return bad("%s holds a %s key; it must start with %q", k.env, m, string(k.want)+"_")
		}
	}
	if c.CallbackAuthKey == "" {
		return bad("%s is required: without it POST /callback cannot authenticate the API's callbacks", EnvCallbackAuthKey)
	}
	if err := checkRedisURL(c.RedisURL); err != nil {
		return bad("%s: %v", EnvRedisURL, err)
	}
	u, err := url.Parse(c.APIURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("%s must be an http(s) URL, got %q", EnvAPIURL, c.APIURL)
	}
	if c.CallbackURL != "" {
		if u, err := url.Parse(c.CallbackURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("-callback-url must be an http(s) URL, got %q", c.CallbackURL)
		}
	}
	switch {
	case c.Concurrency < 1:
		return bad("-concurrency must be at least 1, got %d", c.Concurrency)
	case c.RateLimit < 0:
		return bad("-rate-limit must be >= 0, got %g", c.RateLimit)
	case c.RateBurst < 1:
		return bad("-rate-burst must be at least 1, got %d", c.RateBurst)
	case c.CallbackGrace <= 0:
		return bad("-callback-grace must be positive, got %s", c.CallbackGrace)
	case c.ShutdownTimeout <= 0:
		return bad("-shutdown-timeout must be positive, got %s", c.ShutdownTimeout)
	case c.KeptCallbackBytes < 0:
		return bad("-kept-callbacks-bytes must be at least 1, got %d", c.KeptCallbackBytes)
	case c.MaxCallbacks < 0:
		return bad("-max-callbacks must be at least 1, got %d", c.MaxCallbacks)
	case c.MaxConnections < 0:
		return bad("-max-connections must be at least 1 (0: automatic), got %d", c.MaxConnections)
	case c.LiveDailyLimit < 0:
		return bad("-live-daily-limit must be >= 0, got %d", c.LiveDailyLimit)
	case c.Listen == "":
		return bad("-listen must not be empty")
	}
	return c.validateAdmin()
}

// validateAdmin refuses a console reachable from the network without a
// token, and a console on the callback listener's address.
func (c Config) validateAdmin() error {
	if c.AdminListen == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(c.AdminListen)
	if err != nil {
		return fmt.Errorf("%w: -admin-listen %q: %v", ErrConfig, c.AdminListen, err)
	}
	if c.AdminListen == c.Listen && port != "0" {
		return fmt.Errorf("%w: -admin-listen %s is the callback listener's address; the console needs its own", ErrConfig, c.AdminListen)
	}
	if ip := net.ParseIP(host); c.AdminToken == "" && host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%w: -admin-listen %s is reachable from the network: set %s (or %s_FILE), or listen on 127.0.0.1:%s",
			ErrConfig, c.AdminListen, EnvAdminToken, EnvAdminToken, port)
	}
	return nil
}

// checkRedisURL accepts what package redisurl parses; its errors name the
// URL redacted.
func checkRedisURL(raw string) error {
	_, err := redisurl.Parse(raw)
	return err
}

func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}

// secret reads NAME or the file named by NAME_FILE (trimmed).
func secret(getenv func(string) string, name string) (refonte.Secret, error) {
	v, file := getenv(name), getenv(name+"_FILE")
	switch {
	case v != "" && file != "":
		return "", fmt.Errorf("%w: both %s and %s_FILE are set; set only one", ErrConfig, name, name)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%w: %s_FILE: %v", ErrConfig, name, err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("%w: %s_FILE: %s is empty", ErrConfig, name, file)
		}
		return refonte.Secret(s), nil
	}
	return refonte.Secret(strings.TrimSpace(v)), nil
}
