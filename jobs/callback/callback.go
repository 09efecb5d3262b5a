package callback

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// Defaults of Config.
const (
	// DefaultTimeout bounds the store work of one callback when Config.Timeout is zero.
	DefaultTimeout = 10 * time.Second
	// DefaultBodyTimeout bounds the reading of one authenticated body when
	// Config.BodyTimeout is zero: a 1 MiB callback arrives in it at 100 KiB/s.
	DefaultBodyTimeout = 10 * time.Second
	// DefaultMaxConcurrent is the number of callbacks handled at once when
	// Config.MaxConcurrent is zero. At the measured ~14,000 callbacks/s a
	// handler lasts well under a millisecond, so the cap is reached only by
	// slow senders (or a Redis much slower than usual).
	DefaultMaxConcurrent = 128
)

// Config configures a Handler.
type Config struct {
	// Store holds the job records. Required.
	Store *store.Store
	// AuthKey is the callback auth key the platform sends in the
	// refonte.ai-callback-auth header. Required.
	AuthKey refonte.Secret
	// Logger receives the handler's logs. Nil means no logs.
	Logger *zap.Logger
	// Registerer receives the handler's Prometheus collectors
	// (refonte_callbacks_total by outcome and
	// refonte_callback_duration_seconds). Nil means no metrics.
	Registerer prometheus.Registerer
	// MaxBytes is the largest accepted body. Zero means refonte.MaxCallbackBytes (1 MiB).
	MaxBytes int64
	// Timeout bounds the store work of one callback; a callback that
	// cannot be recorded in time is answered 503. Zero means DefaultTimeout.
	Timeout time.Duration
	// BodyTimeout bounds the reading of an authenticated body, from the
	// moment the headers were checked (408 and the connection closed
	// beyond it). Zero means DefaultBodyTimeout.
	BodyTimeout time.Duration
	// MaxConcurrent caps the authenticated callbacks handled at once
	// (reading their body or recording them); more are answered 503 with
	// Retry-After at once, their body unread, and the connection closed:
	// the platform delivers them again. Zero means DefaultMaxConcurrent.
	MaxConcurrent int
	// OnTransition, if set, is called synchronously after every callback
	// that changed a job (not for duplicates), before the answer is sent;
	// the worker uses it to finalize batches. It must be quick or hand its
	// work off. Its context is not canceled when the request ends.
	OnTransition func(context.Context, store.Transition)
	// Durable, if set, is called before every 2xx answer: it returns once
	// the writes behind the answer would survive a Redis failover (see
	// redisurl.Durability), or an error, and the callback is answered 503
	// so the platform delivers it again.
	Durable func(context.Context) error
}

// Outcome labels of the refonte_callbacks_total counter.
const (
	OutcomeMatched      = "matched"      // applied to its job (state or response changed)
	OutcomeDuplicate    = "duplicate"    // matched but a no-op: a repeat of what the row holds
	OutcomePending      = "pending"      // a non-terminal status (audit, recall): nothing terminal recorded
	OutcomeUnknown      = "unknown"      // matches no job: kept with store.KeepCallback
	OutcomeConflict     = "conflict"     // refused by the replay rule (store.Complete): kept with store.KeepCallback, 200
	OutcomeUnauthorized = "unauthorized" // missing or wrong auth header: 401
	OutcomeBadRequest   = "bad_request"  // malformed body or no task ID: 400
	OutcomeTooLarge     = "too_large"    // body over MaxBytes: 413
	OutcomeBadMethod    = "bad_method"   // not a POST: 405
	OutcomeError        = "error"        // the store failed (Redis down): 503
	OutcomeOverloaded   = "overloaded"   // MaxConcurrent callbacks already in progress: 503
	OutcomeTimeout      = "timeout"      // the body did not arrive within BodyTimeout: 408
)

// Handler is the http.Handler of POST /callback. It is safe for concurrent use.
type Handler struct {
	store       *store.Store
	key         refonte.Secret
	log         *zap.Logger
	maxBytes    int64
	timeout     time.Duration
	bodyTimeout time.Duration
	maxInFlight int64
	inFlight    atomic.Int64
	refusedLog  everySecond
	// notRecordedLog paces the lines of callbacks Redis did not take (an
	// outage would otherwise log every delivery the platform retries).
	notRecordedLog everySecond
	onTransition   func(context.Context, store.Transition)
	durable        func(context.Context) error
	m              *metrics
}

// NewHandler returns the callback handler described by cfg.
func NewHandler(cfg Config) (*Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("callback: Config.Store is required")
	}
	if cfg.AuthKey == "" {
		return nil, errors.New("callback: Config.AuthKey is required: without it callbacks cannot be authenticated")
	}
	if cfg.MaxBytes < 0 || cfg.Timeout < 0 || cfg.BodyTimeout < 0 || cfg.MaxConcurrent < 0 {
		return nil, errors.New("callback: Config.MaxBytes, Timeout, BodyTimeout and MaxConcurrent must not be negative")
	}
	h := &Handler{
		store:        cfg.Store,
		key:          cfg.AuthKey,
		log:          cfg.Logger,
		maxBytes:     cfg.MaxBytes,
		timeout:      cmp.Or(cfg.Timeout, DefaultTimeout),
		bodyTimeout:  cmp.Or(cfg.BodyTimeout, DefaultBodyTimeout),
		maxInFlight:  int64(cmp.Or(cfg.MaxConcurrent, DefaultMaxConcurrent)),
		onTransition: cfg.OnTransition,
		durable:      cfg.Durable,
	}
	if h.log == nil {
		h.log = zap.NewNop()
	}
	if h.maxBytes == 0 {
		h.maxBytes = refonte.MaxCallbackBytes
	}
	if cfg.Registerer != nil {
		m, err := newMetrics(cfg.Registerer)
		if err != nil {
			return nil, fmt.Errorf("callback: metrics: %w", err)
		}
		h.m = m
	}
	return h, nil
}

// ServeHTTP handles one callback delivery.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	outcome := h.serve(w, r)
	h.m.observe(outcome, time.Since(start))
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) string {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		refuse(w, "callbacks are POSTed", http.StatusMethodNotAllowed)
		return OutcomeBadMethod
	}
	// Nothing of the body is read before the key is checked, and a refused
	// request's connection is closed: net/http would otherwise read (and
	// wait for) up to 256 KiB of an unread body to keep the connection.
	if !refonte.VerifyCallbackAuth(r.Header, h.key) {
		// At most one line a second: a flood of forged requests must not
		// flood the log (refonte_callbacks_total counts every one).
		if n, ok := h.refusedLog.tick(time.Now()); ok {
			h.log.Warn("callback refused: missing or wrong "+refonte.CallbackAuthHeader+" header",
				zap.String("remote", r.RemoteAddr), zap.Int64("refused_since_last_line", n))
		}
		refuse(w, "missing or wrong "+refonte.CallbackAuthHeader+" header", http.StatusUnauthorized)
		return OutcomeUnauthorized
	}
	if h.inFlight.Add(1) > h.maxInFlight {
		h.inFlight.Add(-1)
		w.Header().Set("Retry-After", "5")
		refuse(w, "too many callbacks in progress, retry later", http.StatusServiceUnavailable)
		return OutcomeOverloaded
	}
	h.m.admitted(1)
	defer func() {
		h.inFlight.Add(-1)
		h.m.admitted(-1)
	}()
	if r.ContentLength > h.maxBytes {
		refuse(w, fmt.Sprintf("callback body over %d bytes", h.maxBytes), http.StatusRequestEntityTooLarge)
		return OutcomeTooLarge
	}
	// The server's read timeout bounds the whole request; this bounds the
	// body of an authenticated one (not supported by every ResponseWriter,
	// such as httptest's recorder: then the server's timeouts alone apply).
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(h.bodyTimeout))
	cb, err := refonte.ParseCallback(r.Body, h.maxBytes)
	switch {
	case errors.Is(err, refonte.ErrCallbackTooLarge):
		refuse(w, fmt.Sprintf("callback body over %d bytes", h.maxBytes), http.StatusRequestEntityTooLarge)
		return OutcomeTooLarge
	case errors.Is(err, os.ErrDeadlineExceeded):
		h.log.Warn("callback refused: body not received in time", zap.Duration("body_timeout", h.bodyTimeout),
			zap.String("remote", r.RemoteAddr))
		refuse(w, "callback body not received within "+h.bodyTimeout.String(), http.StatusRequestTimeout)
		return OutcomeTimeout
	case err != nil:
		h.log.Warn("callback refused: bad body", zap.Error(err))
		http.Error(w, "bad callback body: "+err.Error(), http.StatusBadRequest)
		return OutcomeBadRequest
	}
	d := delivery(cb)
	if d.taskID == "" {
		http.Error(w, "bad callback body: no task_id", http.StatusBadRequest)
		return OutcomeBadRequest
	}

	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), h.timeout)
	defer cancel()
	outcome, err := h.apply(ctx, d)
	if err != nil {
		// At most one line a second: during a Redis outage every delivery
		// fails alike (refonte_callbacks_total{outcome="error"} counts them).
		if n, ok := h.notRecordedLog.tick(time.Now()); ok {
			h.log.Error("callback not recorded; the platform will deliver it again",
				zap.String("task_id", d.taskID), zap.Int64("not_recorded_since_last_line", n), zap.Error(err))
		}
		w.Header().Set("Retry-After", "5")
		http.Error(w, "callback not recorded, retry later", http.StatusServiceUnavailable)
		return OutcomeError
	}
	if h.durable != nil {
		if err := h.durable(ctx); err != nil {
			h.log.Warn("callback recorded but not yet on enough Redis replicas; answered 503 so the platform delivers it again",
				zap.String("task_id", d.taskID), zap.Error(err))
			w.Header().Set("Retry-After", "5")
			http.Error(w, "callback not yet durable, retry later", http.StatusServiceUnavailable)
			return OutcomeError
		}
	}
	w.WriteHeader(http.StatusOK)
	return outcome
}

// everySecond lets one event a second through and counts the others.
type everySecond struct {
	last  atomic.Int64 // unix second of the last event let through
	count atomic.Int64 // events since then, this one included
}

// tick records an event at now; it reports whether to let it through and
// how many events (this one included) happened since the last one let through.
func (e *everySecond) tick(now time.Time) (int64, bool) {
	n := e.count.Add(1)
	sec, last := now.Unix(), e.last.Load()
	if sec == last || !e.last.CompareAndSwap(last, sec) {
		return 0, false
	}
	e.count.Add(-n)
	return n, true
}

// refuse answers an error and closes the connection after it, without
// reading what is left of the request body: "Connection: close" stops
// net/http from reading the rest to keep the connection, and a read
// deadline in the past makes its closing of the body (which reads up to
// 256 KiB too) return at once instead of waiting for a slow sender.
func refuse(w http.ResponseWriter, msg string, code int) {
	w.Header().Set("Connection", "close")
	http.Error(w, msg, code)
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}

// parsed is what the handler uses of a callback.
type parsed struct {
	taskID, uniqueID string
	status           refonte.TaskStatus
	modes            [2]refonte.Mode // modes to try, in order: the first nmodes
	nmodes           int
	modeKnown        bool
	outcome          store.Outcome
	raw              []byte // the whole body
}

// isTestKey is the JSON key of Task.IsTest.
const isTestKey = `"is_test"`

// delivery extracts the task ID, unique_id, status, mode and terminal
// outcome of a callback.
func delivery(cb *refonte.Callback) parsed {
	// ParseCallback already resolved the task ID, status, unique_id and
	// response from the envelope and the task object.
	d := parsed{taskID: cb.TaskID, uniqueID: cb.UniqueID, status: cb.Status, raw: cb.Raw}
	resp := cb.Response
	t := cb.Task
	if t != nil && bytes.Contains(cb.Raw, []byte(isTestKey)) {
		// Task.IsTest is a plain bool: the key must be there to trust a false.
		d.modeKnown = true
		d.nmodes = 1
		if t.IsTest {
			d.modes[0] = refonte.ModeTest
		} else {
			d.modes[0] = refonte.ModeLive
		}
	}
	if !d.modeKnown {
		d.modes, d.nmodes = [2]refonte.Mode{refonte.ModeTest, refonte.ModeLive}, 2
	}
	d.outcome = store.NewOutcome(d.taskID, d.status, resp, store.DeliveryTime(t))
	return d
}

// step is one way of finding a callback's job.
type step struct {
	mode    refonte.Mode
	byIndex bool // by the task ID index, else by the unique_id
}

// steps returns the ways of finding the callback's job, in order, in buf
// (at most four: two modes, by index then by unique_id).
func (d *parsed) steps(buf *[4]step) []step {
	s := buf[:0]
	if d.modeKnown {
		if d.uniqueID != "" {
			s = append(s, step{mode: d.modes[0]})
		}
		return append(s, step{mode: d.modes[0], byIndex: true})
	}
	// Mode unknown: exact task ID matches first, then unique_ids.
	for _, m := range d.modes[:d.nmodes] {
		s = append(s, step{mode: m, byIndex: true})
	}
	if d.uniqueID != "" {
		for _, m := range d.modes[:d.nmodes] {
			s = append(s, step{mode: m})
		}
	}
	return s
}

// apply matches the callback to its job and records it. It returns the
// outcome label, or an error when the store failed.
func (h *Handler) apply(ctx context.Context, d parsed) (string, error) {
	pending := !d.status.Terminal()
	var stepsBuf [4]step
	for _, st := range d.steps(&stepsBuf) {
		uid := d.uniqueID
		if st.byIndex {
			u, err := h.store.UniqueIDByTaskID(ctx, st.mode, d.taskID)
			if errors.Is(err, store.ErrJobNotFound) {
				continue
			}
			if err != nil {
				return "", err
			}
			if pending {
				// Indexed means already recorded as submitted.
				return OutcomePending, nil
			}
			uid = u
		}
		var (
			t   store.Transition
			err error
		)
		if pending {
			t, err = h.store.MarkSubmitted(ctx, st.mode, uid, d.taskID)
		} else {
			t, err = h.store.Complete(ctx, st.mode, uid, d.outcome)
		}
		if errors.Is(err, store.ErrJobNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		return h.applied(ctx, st.mode, uid, d, t), nil
	}
	mode := d.modes[0]
	if err := h.keep(ctx, store.KeptCallback{Kind: store.KeptUnknown, Mode: mode}, d); err != nil {
		return "", err
	}
	h.log.Warn("callback for an unknown task kept for inspection",
		zap.String("task_id", d.taskID), zap.String("unique_id", d.uniqueID),
		zap.String("status", string(d.status)), zap.Stringer("mode", mode))
	return OutcomeUnknown, nil
}

func (h *Handler) applied(ctx context.Context, mode refonte.Mode, uid string, d parsed, t store.Transition) string {
	if !d.status.Terminal() {
		if t.Changed {
			if ce := h.log.Check(zap.DebugLevel, "callback recorded a submission"); ce != nil {
				ce.Write(zap.Stringer("mode", mode), zap.String("unique_id", uid), zap.String("task_id", d.taskID))
			}
			h.changed(ctx, t)
		}
		return OutcomePending
	}
	if t.Conflict != "" {
		h.log.Warn("conflicting callback refused: the row keeps its recorded outcome; the delivery is kept for inspection",
			zap.String("reason", string(t.Conflict)), zap.Stringer("mode", mode), zap.String("unique_id", uid),
			zap.String("task_id", d.taskID), zap.String("status", string(d.status)), zap.String("row_state", string(t.From)))
		if err := h.keep(ctx, store.KeptCallback{Kind: store.KeptConflict, Reason: t.Conflict, Mode: mode}, d); err != nil {
			// Counted in the run already; the entry is only for diagnosis.
			h.log.Warn("keeping the conflicting callback failed", zap.String("task_id", d.taskID), zap.Error(err))
		}
		h.changed(ctx, t)
		return OutcomeConflict
	}
	if !t.Changed {
		if ce := h.log.Check(zap.DebugLevel, "duplicate or older callback ignored"); ce != nil {
			ce.Write(zap.Stringer("mode", mode), zap.String("unique_id", uid), zap.String("task_id", d.taskID))
		}
		return OutcomeDuplicate
	}
	if ce := h.log.Check(zap.DebugLevel, "callback applied"); ce != nil {
		ce.Write(zap.Stringer("mode", mode), zap.String("unique_id", uid), zap.String("task_id", d.taskID),
			zap.String("from", string(t.From)), zap.String("to", string(t.To)))
	}
	h.changed(ctx, t)
	return OutcomeMatched
}

// keep keeps what diagnosis needs of the callback d (store.KeepCallback,
// k giving its kind, reason and mode) and counts the entries the store
// dropped to stay within its limits.
func (h *Handler) keep(ctx context.Context, k store.KeptCallback, d parsed) error {
	k.TaskID, k.UniqueID, k.Status, k.TaskTime = d.taskID, d.uniqueID, d.status, d.outcome.At
	dropped, err := h.store.KeepCallback(ctx, k, d.raw)
	h.m.keptDropped(dropped)
	return err
}

func (h *Handler) changed(ctx context.Context, t store.Transition) {
	for _, id := range t.RunsDone {
		h.store.LogRunDone(ctx, h.log, id)
	}
	if h.onTransition != nil {
		h.onTransition(ctx, t)
	}
}
