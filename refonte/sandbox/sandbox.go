package sandbox

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"
	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/refonte"
)

// Quick-try defaults used when a Config leaves a key empty. They are not
// secrets: cmd/sandbox prints them when it falls back to them.
const (
	DefaultTestKey         = "test_sandbox_key"
	DefaultLiveKey         = "live_sandbox_key"
	DefaultCallbackAuthKey = "sandbox_callback_secret"
	DefaultProject         = "demo"
	DefaultCompleteAfter   = 500 * time.Millisecond
	DefaultCallbackRetries = 20
	DefaultCallbackBackoff = 100 * time.Millisecond
	DefaultCallbackMaxWait = 5 * time.Second
	DefaultCallbackWorkers = 64
)

// CompleteImmediately is a Config.CompleteAfter value that completes tasks
// as soon as they are created (the zero value means DefaultCompleteAfter).
const CompleteImmediately time.Duration = -1

// CallbackAuthHeader is the header carrying the callback auth key on every
// callback POST, as in the API reference.
const CallbackAuthHeader = "refonte.ai-callback-auth"

// Config configures a Server. The zero value is usable: default keys, the
// project "demo" in both modes, completion after 500ms, no faults. The key
// fields are never logged; Config's String method redacts them.
type Config struct {
	// TestKey and LiveKey are the only API keys accepted (HTTP Basic auth
	// username); they decide the mode. Defaults DefaultTestKey and
	// DefaultLiveKey. Each must start with "test_" / "live_".
	TestKey, LiveKey string
	// CallbackAuthKey is sent in the refonte.ai-callback-auth header of
	// every callback. Default DefaultCallbackAuthKey.
	CallbackAuthKey string
	// Projects are created at start in both modes, type imageannotation,
	// with no params. Nil means ["demo"]; an empty non-nil slice means none.
	Projects []string
	// CompleteAfter is how long after its creation a task completes. Zero
	// means DefaultCompleteAfter; CompleteImmediately (any negative value)
	// completes tasks at creation.
	CompleteAfter time.Duration
	// NoAutoComplete leaves tasks pending until Server.Complete is called.
	NoAutoComplete bool
	// HoldUntilFinalize keeps the tasks of a staging batch pending until the
	// batch is finalized ("work starts"); their CompleteAfter runs from the
	// finalize. By default they complete on their own timer.
	HoldUntilFinalize bool
	// DisabledTypes are task types the account is not enabled for: their
	// creates answer 402.
	DisabledTypes []refonte.TaskType
	// CallbackRetries is the number of delivery attempts of one callback
	// (default 20, as the platform); CallbackBackoff the first retry delay
	// (default 100ms), doubled per attempt up to CallbackMaxBackoff (5s).
	CallbackRetries    int
	CallbackBackoff    time.Duration
	CallbackMaxBackoff time.Duration
	// CallbackWorkers bounds concurrent callback deliveries (default 64).
	CallbackWorkers int
	// CallbackTimeout bounds one callback attempt (default 10s).
	CallbackTimeout time.Duration
	// RateLimit, ErrorRate, LostResponseRate, Latency and the Callback*Rate
	// fields are the initial faults; see Faults for their meaning.
	RateLimit         float64
	ErrorRate         float64
	LostResponseRate  float64
	Latency           time.Duration
	CallbackDropRate  float64
	CallbackDupRate   float64
	CallbackEarlyRate float64
	// Seed seeds fault rolls and task ids; 0 picks a random seed.
	Seed int64
	// Logger receives operational logs; nil means zap.NewNop().
	Logger *zap.Logger
	// HTTPClient delivers callbacks; nil means a keep-alive client sized
	// for CallbackWorkers concurrent deliveries.
	HTTPClient *http.Client
}

// String describes the Config without its keys.
func (c Config) String() string {
	after := c.CompleteAfter.String()
	switch {
	case c.NoAutoComplete:
		after = "never"
	case c.CompleteAfter < 0:
		after = "immediately"
	case c.CompleteAfter == 0:
		after = DefaultCompleteAfter.String()
	}
	return fmt.Sprintf("sandbox.Config{keys:[redacted], projects:%v, complete_after:%s, faults:%+v}", c.Projects, after, c.faults())
}

func (c Config) faults() Faults {
	return Faults{RateLimit: c.RateLimit, ErrorRate: c.ErrorRate, LostResponseRate: c.LostResponseRate,
		Latency: c.Latency, CallbackDropRate: c.CallbackDropRate, CallbackDupRate: c.CallbackDupRate,
		CallbackEarlyRate: c.CallbackEarlyRate}
}

// GoString is like String, so %#v does not print the keys either.
func (c Config) GoString() string { return c.String() }

// Faults are the faults a Server injects. They can be changed at runtime
// with Server.SetFaults or POST /_sandbox/faults (a JSON object whose
// present fields replace the current ones; latency as "250ms" or
// nanoseconds).
type Faults struct {
	// RateLimit is the number of task creations per second accepted per key
	// (token bucket, burst of one second); beyond it creates answer 429
	// with Retry-After in whole seconds. 0 means no limit.
	RateLimit float64 `json:"rate_limit"`
	// ErrorRate is the probability that a task creation answers 500 or 503
	// without creating anything.
	ErrorRate float64 `json:"error_rate"`
	// LostResponseRate is the probability that a task creation creates the
	// task and then answers 500 anyway (the platform's known behaviour).
	LostResponseRate float64 `json:"lost_response_rate"`
	// Latency is added to every API call.
	Latency time.Duration `json:"-"`
	// CallbackDropRate is the probability that a task's callback is never
	// sent (lost, no retry).
	CallbackDropRate float64 `json:"callback_drop_rate"`
	// CallbackDupRate is the probability that a task's callback is
	// delivered two or three times.
	CallbackDupRate float64 `json:"callback_dup_rate"`
	// CallbackEarlyRate is the probability that a created task completes
	// instantly and its callback is delivered before the create is
	// answered.
	CallbackEarlyRate float64 `json:"callback_early_rate"`
	// Down makes every API call answer 503.
	Down bool `json:"down"`
}

type faultsWire struct {
	RateLimit         *float64        `json:"rate_limit"`
	ErrorRate         *float64        `json:"error_rate"`
	LostResponseRate  *float64        `json:"lost_response_rate"`
	Latency           json.RawMessage `json:"latency"`
	CallbackDropRate  *float64        `json:"callback_drop_rate"`
	CallbackDupRate   *float64        `json:"callback_dup_rate"`
	CallbackEarlyRate *float64        `json:"callback_early_rate"`
	Down              *bool           `json:"down"`
	DownFor           json.RawMessage `json:"down_for"`
}

// MarshalJSON encodes the faults with latency as a Go duration string.
func (f Faults) MarshalJSON() ([]byte, error) {
	type plain Faults
	return json.Marshal(struct {
		plain
		Latency string `json:"latency"`
	}{plain(f), f.Latency.String()})
}

// UnmarshalJSON updates only the fields present in data, so a partial
// object changes only what it names. Latency is "250ms" or nanoseconds.
func (f *Faults) UnmarshalJSON(data []byte) error {
	var w faultsWire
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	_, err := f.apply(w)
	return err
}

func parseDuration(raw json.RawMessage) (time.Duration, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return time.ParseDuration(s)
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, fmt.Errorf("want a duration like \"250ms\" or nanoseconds")
	}
	return time.Duration(n), nil
}

// apply updates f from w and returns the down_for duration, if any.
func (f *Faults) apply(w faultsWire) (time.Duration, error) {
	set := func(dst *float64, src *float64, name string) error {
		if src == nil {
			return nil
		}
		if *src < 0 || (name != "rate_limit" && *src > 1) {
			return fmt.Errorf("%s: out of range", name)
		}
		*dst = *src
		return nil
	}
	for _, e := range []error{
		set(&f.RateLimit, w.RateLimit, "rate_limit"),
		set(&f.ErrorRate, w.ErrorRate, "error_rate"),
		set(&f.LostResponseRate, w.LostResponseRate, "lost_response_rate"),
		set(&f.CallbackDropRate, w.CallbackDropRate, "callback_drop_rate"),
		set(&f.CallbackDupRate, w.CallbackDupRate, "callback_dup_rate"),
		set(&f.CallbackEarlyRate, w.CallbackEarlyRate, "callback_early_rate"),
	} {
		if e != nil {
			return 0, e
		}
	}
	if len(w.Latency) > 0 {
		d, err := parseDuration(w.Latency)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("latency: want a duration like \"250ms\" or nanoseconds")
		}
		f.Latency = d
	}
	if w.Down != nil {
		f.Down = *w.Down
	}
	var downFor time.Duration
	if len(w.DownFor) > 0 {
		d, err := parseDuration(w.DownFor)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("down_for: want a duration like \"30s\" or nanoseconds")
		}
		downFor = d
	}
	return downFor, nil
}

// Server is the fake Refonte API. It implements http.Handler. Create it with
// New and stop it with Close.
type Server struct {
	cfg     Config
	log     *zap.Logger
	client  *http.Client
	cbAuth  []string // the callback auth header's value, shared read-only
	lastURL atomic.Pointer[callbackURL]

	faultsMu sync.RWMutex
	faults   Faults
	downGen  uint64
	downT    *time.Timer

	rngMu sync.Mutex
	rng   *rand.Rand

	idPrefix uint64
	idSeq    atomic.Uint64

	worlds map[refonte.Mode]*world
	stats  counters
	// keys are the API keys accepted now, by mode (SetKey rotates them).
	keys map[refonte.Mode]*atomic.Pointer[string]

	sched *scheduler
	table []route

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once
}

// New returns a Server for cfg with its pre-created projects, and starts its
// completion scheduler and callback workers.
func New(cfg Config) *Server {
	if cfg.TestKey == "" {
		cfg.TestKey = DefaultTestKey
	}
	if cfg.LiveKey == "" {
		cfg.LiveKey = DefaultLiveKey
	}
	if cfg.CallbackAuthKey == "" {
		cfg.CallbackAuthKey = DefaultCallbackAuthKey
	}
	if cfg.Projects == nil {
		cfg.Projects = []string{DefaultProject}
	}
	if cfg.CompleteAfter == 0 {
		cfg.CompleteAfter = DefaultCompleteAfter
	}
	if cfg.CompleteAfter < 0 {
		cfg.CompleteAfter = 0
	}
	if cfg.CallbackRetries <= 0 {
		cfg.CallbackRetries = DefaultCallbackRetries
	}
	if cfg.CallbackBackoff <= 0 {
		cfg.CallbackBackoff = DefaultCallbackBackoff
	}
	if cfg.CallbackMaxBackoff <= 0 {
		cfg.CallbackMaxBackoff = DefaultCallbackMaxWait
	}
	if cfg.CallbackWorkers <= 0 {
		cfg.CallbackWorkers = DefaultCallbackWorkers
	}
	if cfg.CallbackTimeout <= 0 {
		cfg.CallbackTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.HTTPClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = cfg.CallbackWorkers * 4
		tr.MaxIdleConnsPerHost = cfg.CallbackWorkers
		tr.IdleConnTimeout = 90 * time.Second
		cfg.HTTPClient = &http.Client{Transport: tr, Timeout: cfg.CallbackTimeout}
	}
	seed := uint64(cfg.Seed)
	if seed == 0 {
		seed = rand.Uint64()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		client:   cfg.HTTPClient,
		cbAuth:   []string{cfg.CallbackAuthKey},
		faults:   cfg.faults(),
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		idPrefix: splitmix(seed) & 0xffffffff,
		worlds:   map[refonte.Mode]*world{},
		keys:     map[refonte.Mode]*atomic.Pointer[string]{},
		ctx:      ctx,
		cancel:   cancel,
	}
	for m, k := range map[refonte.Mode]string{refonte.ModeTest: cfg.TestKey, refonte.ModeLive: cfg.LiveKey} {
		s.keys[m] = new(atomic.Pointer[string])
		s.keys[m].Store(&k)
	}
	now := s.now()
	for _, m := range []refonte.Mode{refonte.ModeTest, refonte.ModeLive} {
		w := newWorld(m, cfg.RateLimit)
		for _, name := range cfg.Projects {
			if name = strings.TrimSpace(name); name != "" {
				_, _ = w.createProject(name, refonte.TypeImageAnnotation, nil, now)
			}
		}
		s.worlds[m] = w
	}
	s.table = s.routes()
	s.sched = newScheduler(s)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.sched.run(ctx)
	}()
	for range cfg.CallbackWorkers {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.deliveryWorker(ctx)
		}()
	}
	return s
}

// Close stops completions and callback deliveries and waits for the
// server's goroutines. In-flight HTTP requests to the handler are not
// affected; stop the http.Server first.
func (s *Server) Close() {
	s.closed.Do(func() {
		s.faultsMu.Lock()
		if s.downT != nil {
			s.downT.Stop()
		}
		s.faultsMu.Unlock()
		s.cancel()
		s.wg.Wait()
	})
}

// Faults returns the current faults.
func (s *Server) Faults() Faults {
	s.faultsMu.RLock()
	defer s.faultsMu.RUnlock()
	return s.faults
}

// SetFaults replaces the current faults.
func (s *Server) SetFaults(f Faults) {
	s.faultsMu.Lock()
	s.faults = f
	s.downGen++
	if s.downT != nil {
		s.downT.Stop()
		s.downT = nil
	}
	s.faultsMu.Unlock()
	for _, w := range s.worlds {
		w.setRate(f.RateLimit)
	}
}

// SetDown takes the API down (every API call answers 503) or brings it back.
func (s *Server) SetDown(down bool) {
	f := s.Faults()
	f.Down = down
	s.SetFaults(f)
}

// DownFor takes the API down for d, then brings it back up (unless the
// faults were changed in between).
func (s *Server) DownFor(d time.Duration) {
	s.SetDown(true)
	s.faultsMu.Lock()
	defer s.faultsMu.Unlock()
	gen := s.downGen
	s.downT = time.AfterFunc(d, func() {
		s.faultsMu.Lock()
		if s.downGen == gen {
			s.faults.Down = false
			s.downT = nil
		}
		s.faultsMu.Unlock()
	})
}

// roll returns true with probability p.
func (s *Server) roll(p float64) bool {
	if p <= 0 {
		return false
	}
	if p >= 1 {
		return true
	}
	s.rngMu.Lock()
	f := s.rng.Float64()
	s.rngMu.Unlock()
	return f < p
}

func (s *Server) intn(n int) int {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.IntN(n)
}

func (s *Server) now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// newTaskID returns a 24-hex-digit id that looks random and is unique per
// Server (a bijective mix of a counter under a per-server prefix).
func (s *Server) newTaskID() string {
	n := s.idSeq.Add(1)
	var b [24]byte
	appendHex(b[:8], s.idPrefix)
	appendHex(b[8:], splitmix(n^s.idPrefix<<32))
	return string(b[:])
}

// appendHex writes x in lower-case hex into all of dst, zero-padded (as
// %0Nx with N = len(dst), for x that fits).
func appendHex(dst []byte, x uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = "0123456789abcdef"[x&0xf]
		x >>= 4
	}
}

// authenticate returns the world of the request's API key.
func (s *Server) authenticate(r *http.Request) (*world, bool) {
	user, _, ok := r.BasicAuth()
	if !ok || user == "" {
		return nil, false
	}
	switch {
	case subtle.ConstantTimeCompare([]byte(user), []byte(*s.keys[refonte.ModeTest].Load())) == 1:
		return s.worlds[refonte.ModeTest], true
	case subtle.ConstantTimeCompare([]byte(user), []byte(*s.keys[refonte.ModeLive].Load())) == 1:
		return s.worlds[refonte.ModeLive], true
	}
	return nil, false
}

// SetKey replaces the API key accepted for mode (a revoked or rotated key):
// from now on the old key is answered 401 and the new one works, with the
// same tasks, projects and batches. The key must start with the mode's
// prefix.
func (s *Server) SetKey(mode refonte.Mode, key string) error {
	m, err := refonte.ModeOf(key)
	if err != nil {
		return err
	}
	if m != mode || s.keys[mode] == nil {
		return fmt.Errorf("sandbox: a %s key cannot replace the %s key", m, mode)
	}
	s.keys[mode].Store(&key)
	return nil
}

// apiError is the JSON error body of the reference.
type apiError struct {
	StatusCode int    `json:"status_code"`
	Error      string `json:"error"`
}

// jsonContentType is the Content-Type header value of every JSON answer,
// shared (never mutated) so that setting it does not allocate.
var jsonContentType = []string{"application/json"}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(apiError{status, "encode response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, apiError{status, fmt.Sprintf(format, args...)})
}

// ServeHTTP serves the API under /v1 (or with /v1 already stripped) and the
// unauthenticated /_sandbox/stats and /_sandbox/faults endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	if p == "/v1" || strings.HasPrefix(p, "/v1/") {
		p = p[len("/v1"):]
	}
	seg := strings.Split(strings.Trim(p, "/"), "/")
	for i, e := range seg {
		u, err := url.PathUnescape(e)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid path segment %q", e)
			return
		}
		seg[i] = u
	}
	if len(seg) > 0 && seg[0] == "_sandbox" {
		s.serveControl(w, r, seg[1:])
		return
	}
	s.stats.apiCalls.Add(1)
	f := s.Faults()
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if f.Down {
		s.stats.downRejected.Add(1)
		writeError(w, http.StatusServiceUnavailable, "service unavailable")
		return
	}
	wld, ok := s.authenticate(r)
	if !ok {
		writeError(w, http.StatusUnauthorized, "no valid API key provided: use HTTP Basic auth with the key as username and an empty password")
		return
	}
	s.route(w, r, wld, seg, f)
}

type route struct {
	method string
	path   string // pattern with {} for one segment
	handle func(http.ResponseWriter, *http.Request, *world, []string, Faults)
	pat    []string // path split on "/", set by routes
}

func (s *Server) routes() []route {
	table := []route{
		{http.MethodGet, "tasks", s.listTasks, nil},
		{http.MethodPost, "task/{}/cancel", s.cancelTask, nil},
		{http.MethodPost, "task/{}/setMetadata", s.setMetadata, nil},
		{http.MethodPost, "task/{}/unique_id", s.setUniqueID, nil},
		{http.MethodDelete, "task/{}/unique_id", s.clearUniqueID, nil},
		{http.MethodPost, "task/{}", s.createTask, nil},
		{http.MethodGet, "task/{}", s.getTask, nil},
		{http.MethodPost, "batches", s.createBatch, nil},
		{http.MethodGet, "batches", s.listBatches, nil},
		{http.MethodPost, "batches/{}/finalize", s.finalizeBatch, nil},
		{http.MethodGet, "batches/{}/status", s.batchStatus, nil},
		{http.MethodGet, "batches/{}", s.getBatch, nil},
		{http.MethodPost, "projects", s.createProject, nil},
		{http.MethodGet, "projects", s.listProjects, nil},
		{http.MethodPost, "projects/{}/setParams", s.setProjectParams, nil},
		{http.MethodGet, "projects/{}", s.getProject, nil},
	}
	for i := range table {
		table[i].pat = strings.Split(table[i].path, "/")
	}
	return table
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, wld *world, seg []string, f Faults) {
	pathFound := false
	var argsBuf [2]string
	for _, rt := range s.table {
		pat := rt.pat
		if len(pat) != len(seg) {
			continue
		}
		args := argsBuf[:0]
		match := true
		for i, p := range pat {
			if p == "{}" {
				args = append(args, seg[i])
				continue
			}
			if p != seg[i] {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		pathFound = true
		if rt.method == r.Method {
			rt.handle(w, r, wld, args, f)
			return
		}
	}
	if pathFound {
		writeError(w, http.StatusMethodNotAllowed, "method %s not allowed on %s", r.Method, r.URL.Path)
		return
	}
	writeError(w, http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
}

const maxBody = 8 << 20

// decodeParams decodes a task creation body (see decodeBody).
func decodeParams(w http.ResponseWriter, r *http.Request) (refonte.TaskParams, bool) {
	var params refonte.TaskParams
	if !decodeBody(w, r, &params) {
		return nil, false
	}
	return params, true
}

// decodeBody decodes a JSON object body, keeping numbers exact.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: %v", err)
		return false
	}
	return true
}

func (s *Server) serveControl(w http.ResponseWriter, r *http.Request, seg []string) {
	name := strings.Join(seg, "/")
	switch {
	case name == "stats" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.Stats())
	case name == "keys" && r.Method == http.MethodPost:
		s.setKeys(w, r)
	case name == "faults" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.Faults())
	case name == "faults" && r.Method == http.MethodPost:
		var wire faultsWire
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&wire); err != nil {
			writeError(w, http.StatusBadRequest, "invalid JSON body: %v", err)
			return
		}
		f := s.Faults()
		downFor, err := f.apply(wire)
		if err != nil {
			writeError(w, http.StatusBadRequest, "%v", err)
			return
		}
		s.SetFaults(f)
		if downFor > 0 {
			s.DownFor(downFor)
		}
		s.log.Info("sandbox faults changed", zap.Any("faults", s.Faults()), zap.Duration("down_for", downFor))
		writeJSON(w, http.StatusOK, s.Faults())
	default:
		writeError(w, http.StatusNotFound, "no such sandbox endpoint: %s %s", r.Method, r.URL.Path)
	}
}

// setKeys serves POST /_sandbox/keys: {"test_key": "...", "live_key": "..."}
// (either may be absent) replaces the accepted keys (SetKey), so a test can
// revoke a key and restore it or rotate to another. The keys are never
// logged nor echoed.
func (s *Server) setKeys(w http.ResponseWriter, r *http.Request) {
	var body struct {
		TestKey *string `json:"test_key"`
		LiveKey *string `json:"live_key"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body")
		return
	}
	for _, k := range []struct {
		mode refonte.Mode
		key  *string
	}{{refonte.ModeTest, body.TestKey}, {refonte.ModeLive, body.LiveKey}} {
		if k.key == nil {
			continue
		}
		if err := s.SetKey(k.mode, *k.key); err != nil {
			writeError(w, http.StatusBadRequest, "%s_key: must start with %q", k.mode, string(k.mode)+"_")
			return
		}
	}
	s.log.Info("sandbox API keys changed", zap.Bool("test", body.TestKey != nil), zap.Bool("live", body.LiveKey != nil))
	w.WriteHeader(http.StatusNoContent)
}

// Serve serves the sandbox on ln until ctx is done, then shuts the HTTP
// server down gracefully (waiting up to 10s for in-flight calls). It does
// not Close the Server. BaseURL(ln.Addr()) is the API base URL it serves.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// BaseURL returns the API base URL of a sandbox listening on addr:
// "http://<addr>/v1".
func BaseURL(addr net.Addr) string { return "http://" + addr.String() + "/v1" }
