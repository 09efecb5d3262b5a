package refonte

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"
	"go.uber.org/zap"
)

// DefaultBaseURL is the base URL of the Refonte.AI API v1.
const DefaultBaseURL = "https://api.refonte.com/v1"

// DefaultUserAgent is the User-Agent header sent unless WithUserAgent
// changes it.
const DefaultUserAgent = "refonte-batch-go/1"

// Timeouts and pool size of the client's own HTTP client (see
// NewHTTPClient).
const (
	// DefaultRequestTimeout bounds one HTTP exchange, body included.
	DefaultRequestTimeout = 60 * time.Second
	// DefaultMaxConns is the idle connection pool size, per host and in
	// total: enough for 200 concurrent calls to the API to reuse their
	// connections.
	DefaultMaxConns = 256
)

// maxResponseBody bounds how much of a successful answer is decoded.
const maxResponseBody = 64 << 20

// clientConfig is what the Options set.
type clientConfig struct {
	baseURL   string
	http      *http.Client
	logger    *zap.Logger
	retry     RetryPolicy
	userAgent string
}

// Option configures a Client.
type Option func(*clientConfig)

// WithBaseURL sets the API's base URL (default DefaultBaseURL), e.g. a
// sandbox's "http://127.0.0.1:8089/v1".
func WithBaseURL(u string) Option { return func(c *clientConfig) { c.baseURL = u } }

// WithHTTPClient sets the HTTP client (default NewHTTPClient()). The Client
// adds the Authorization header itself.
func WithHTTPClient(h *http.Client) Option { return func(c *clientConfig) { c.http = h } }

// WithLogger sets the logger of retries (at debug level); the default
// discards. The key is never logged.
func WithLogger(l *zap.Logger) Option { return func(c *clientConfig) { c.logger = l } }

// WithRetry sets the retry policy of transient errors; zero fields take
// the defaults, and RetryPolicy{Disabled: true} turns retries off.
func WithRetry(p RetryPolicy) Option { return func(c *clientConfig) { c.retry = p } }

// WithUserAgent sets the User-Agent header (default DefaultUserAgent).
func WithUserAgent(ua string) Option { return func(c *clientConfig) { c.userAgent = ua } }

// NewHTTPClient returns the HTTP client a Client uses by default: a 60s
// overall timeout, dial, TLS handshake and response header timeouts, and a
// keep-alive pool sized for a few hundred concurrent calls to one host.
func NewHTTPClient() *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          DefaultMaxConns,
		MaxIdleConnsPerHost:   DefaultMaxConns,
		MaxConnsPerHost:       0,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 45 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Transport: tr, Timeout: DefaultRequestTimeout}
}

// Client is a client of the Refonte.AI API for one API key. It is safe for
// concurrent use. Its key never appears in its formatting, its errors or
// its logs.
type Client struct {
	// auth returns the Authorization header. A func, not a string field,
	// so that no reflective dump of the struct (fmt of an unexported field,
	// %s's bad-verb path) can reach the key: fmt prints funcs as addresses.
	auth func() Secret
	// setAuth replaces what auth returns (SetAPIKey).
	setAuth func(Secret)
	mode    Mode
	base    string // without a trailing slash
	http    *http.Client
	log     *zap.Logger
	retry   RetryPolicy
	agent   string
}

// NewClient returns a client for apiKey, whose "test_" or "live_" prefix
// gives the Mode. An empty key or one without these prefixes, or an invalid
// base URL, is an error (wrapping ErrInvalidKey for the key) that never
// contains the key.
func NewClient(apiKey string, opts ...Option) (*Client, error) {
	mode, err := ModeOf(apiKey)
	if err != nil {
		return nil, err
	}
	cfg := clientConfig{baseURL: DefaultBaseURL, userAgent: DefaultUserAgent}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if cfg.baseURL == "" {
		cfg.baseURL = DefaultBaseURL
	}
	u, err := url.Parse(cfg.baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL is not echoed: a mistaken configuration may hold a secret.
		return nil, errors.New("refonte: invalid base URL: want http(s)://host[/path]")
	}
	if u.User != nil {
		return nil, errors.New("refonte: the base URL must not carry credentials (the key is sent as Basic auth)")
	}
	auth := Secret("Basic " + base64.StdEncoding.EncodeToString([]byte(apiKey+":")))
	if cfg.http == nil {
		cfg.http = NewHTTPClient()
	}
	if cfg.logger == nil {
		cfg.logger = zap.NewNop()
	}
	var cur atomic.Pointer[Secret]
	cur.Store(&auth)
	return &Client{
		auth:    func() Secret { return *cur.Load() },
		setAuth: func(s Secret) { cur.Store(&s) },
		mode:    mode,
		base:    strings.TrimRight(cfg.baseURL, "/"),
		http:    cfg.http,
		log:     cfg.logger,
		retry:   cfg.retry.withDefaults(),
		agent:   cfg.userAgent,
	}, nil
}

// SetAPIKey replaces the client's key for the next requests (a rotated
// secret); requests already sent keep the old one. The new key must be of
// the client's mode; an error never contains the key.
func (c *Client) SetAPIKey(apiKey string) error {
	mode, err := ModeOf(apiKey)
	if err != nil {
		return err
	}
	if mode != c.mode {
		return fmt.Errorf("%w: the new key is a %s key, the client's mode is %s", ErrInvalidKey, mode, c.mode)
	}
	c.setAuth(Secret("Basic " + base64.StdEncoding.EncodeToString([]byte(apiKey+":"))))
	return nil
}

// Mode returns the mode of the client's key.
func (c *Client) Mode() Mode { return c.mode }

// BaseURL returns the API base URL the client calls.
func (c *Client) BaseURL() string { return c.base }

// String describes the client without its key.
func (c Client) String() string {
	return fmt.Sprintf("refonte.Client{mode: %s, base_url: %s, key: %s}", c.mode, c.base, Redacted)
}

// GoString is String, so that %#v does not dump the fields.
func (c Client) GoString() string { return c.String() }

// Format prints String for every verb.
func (c Client) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", c.String())
		return
	}
	_, _ = io.WriteString(f, c.String())
}

// escapePath joins URL-escaped path segments: ("batches", "a b/c") gives
// "/batches/a%20b%2Fc".
func escapePath(segments ...string) string {
	var b strings.Builder
	n := 0
	for _, s := range segments {
		n += 1 + len(s)
	}
	b.Grow(n)
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// request describes one API call.
type request struct {
	method string
	path   string     // escaped, relative to the base URL
	query  url.Values // may be nil
	body   any        // JSON-encoded when not nil
	retry  bool       // whether transient errors are retried
}

// do performs req, retrying as the policy and req.retry allow, and decodes
// a 2xx answer's JSON into out (when not nil). It returns the number of
// attempts made.
func (c *Client) do(ctx context.Context, req request, out any) (int, error) {
	if c.auth == nil {
		return 0, errors.New("refonte: the Client was not created by NewClient")
	}
	var payload []byte
	if req.body != nil {
		var err error
		if payload, err = json.Marshal(req.body); err != nil {
			return 0, fmt.Errorf("refonte: %s %s: encoding the body: %w", req.method, req.path, err)
		}
	}
	target := c.base + req.path
	if len(req.query) > 0 {
		target += "?" + req.query.Encode()
	}
	return c.retrying(ctx, req.method, req.path, req.retry, func() error {
		return c.once(ctx, req, target, payload, out)
	})
}

// once sends one attempt of req.
func (c *Client) once(ctx context.Context, req request, target string, payload []byte, out any) error {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, target, body)
	if err != nil {
		return fmt.Errorf("refonte: %s %s: %w", req.method, req.path, err)
	}
	// The header's keys are canonical already, and its values share one
	// array: one allocation instead of one per header.
	values := make([]string, 0, 4)
	add := func(k, v string) {
		values = append(values, v)
		hr.Header[k] = values[len(values)-1 : len(values) : len(values)]
	}
	add("Authorization", c.auth().Reveal())
	add("Accept", "application/json")
	if payload != nil {
		add("Content-Type", "application/json")
	}
	if c.agent != "" {
		add("User-Agent", c.agent)
	}
	resp, err := c.http.Do(hr)
	if err != nil {
		return fmt.Errorf("refonte: %s %s: %w", req.method, req.path, err)
	}
	defer func() {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errorFromResponse(resp, req.method, req.path, time.Now())
	}
	if out == nil {
		return nil
	}
	// The first JSON value of the answer, of at most maxResponseBody bytes.
	if derr := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBody)).Decode(out); derr != nil {
		// A truncated body is a transport failure worth a retry.
		return fmt.Errorf("refonte: %s %s: decoding the %d answer: %w", req.method, req.path, resp.StatusCode, derr)
	}
	return nil
}
