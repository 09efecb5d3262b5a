// Package keyguard pauses a mode on every worker when the API rejects its
// key (401), probes the key, and resumes the mode when it works again.
//
// A revoked or rotated key would otherwise fail every remaining row of a
// run within seconds. Instead, the first worker whose create gets a 401
// records a pause of the mode in Redis (one log line, for the whole
// fleet) and pauses the mode's asynq queue, so no worker fetches its jobs:
// they wait, neither failed nor rescheduled over and over. Jobs already
// fetched are rescheduled without counting a failure (like the live daily
// cap). Every worker serving the mode sees the pause within
// RefreshInterval (its /readyz and the refonte_api_key_rejected gauge say
// why) and probes the key every ProbeInterval with one cheap call
// (GET /tasks?limit=1), re-reading the key's *_FILE first, so a rotated
// Kubernetes secret is picked up. The first probe that succeeds deletes
// the pause and resumes the queue (one log line).
package keyguard

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/internal/promreg"
	"github.com/refonte-ai/refonte-batch/jobs"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/ratelimit"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// Defaults of Config.
const (
	// DefaultProbeInterval is how often a paused mode's key is probed.
	DefaultProbeInterval = 30 * time.Second
	// DefaultRefreshInterval is how often a worker reads the shared pauses.
	DefaultRefreshInterval = 2 * time.Second
	// probeTimeout bounds one probe call.
	probeTimeout = 10 * time.Second
)

// QueuePauser pauses and resumes asynq queues for every server on the
// Redis (an *asynq.Inspector).
type QueuePauser interface {
	PauseQueue(queue string) error
	UnpauseQueue(queue string) error
}

// Config configures a Guard.
type Config struct {
	// Store holds the shared pause records. Required.
	Store *store.Store
	// Queues pauses the mode's queue while its key is rejected; nil pauses
	// no queue (the fetched jobs are still rescheduled).
	Queues QueuePauser
	// Clients are the API clients by mode, whose keys are guarded. At least one.
	Clients map[refonte.Mode]*refonte.Client
	// Keys are the clients' current keys (to tell a rotated secret file
	// from the key in use, and to name the rejected key by fingerprint).
	Keys map[refonte.Mode]refonte.Secret
	// KeyFiles are the files the keys were read from (NAME_FILE), by mode:
	// re-read before each probe. A mode without a file keeps its key.
	KeyFiles map[refonte.Mode]string
	// ProbeInterval is how often a paused mode's key is probed. Zero means
	// DefaultProbeInterval.
	ProbeInterval time.Duration
	// RefreshInterval is how often the shared pauses are read. Zero means
	// DefaultRefreshInterval.
	RefreshInterval time.Duration
	// Logger receives the guard's logs; nil logs nothing.
	Logger *zap.Logger
	// Registerer receives refonte_api_key_rejected{mode}; nil: no metric.
	Registerer prometheus.Registerer
	// Now returns the time (tests); nil means time.Now.
	Now func() time.Time
}

// Guard tracks the modes whose key the API rejects. It is safe for
// concurrent use; Run keeps its view of the other workers' pauses fresh.
type Guard struct {
	cfg     Config
	log     *zap.Logger
	modes   map[refonte.Mode]*modeState
	order   []refonte.Mode
	gauge   *prometheus.GaugeVec
	probeMu sync.Mutex // one probe at a time
}

// modeState is one mode's guard.
type modeState struct {
	client *refonte.Client
	file   string
	key    atomic.Pointer[refonte.Secret]
	pause  atomic.Pointer[store.KeyPause] // nil: not paused (this worker's view)
	probed time.Time                      // last probe (under probeMu)
}

// New returns the Guard described by cfg.
func New(cfg Config) (*Guard, error) {
	if cfg.Store == nil {
		return nil, errors.New("keyguard: Config.Store is required")
	}
	if len(cfg.Clients) == 0 {
		return nil, errors.New("keyguard: Config.Clients needs a client for at least one mode")
	}
	cfg.ProbeInterval = cmp.Or(cfg.ProbeInterval, DefaultProbeInterval)
	cfg.RefreshInterval = cmp.Or(cfg.RefreshInterval, DefaultRefreshInterval)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	g := &Guard{cfg: cfg, log: cfg.Logger, modes: map[refonte.Mode]*modeState{}}
	if g.log == nil {
		g.log = zap.NewNop()
	}
	for _, m := range []refonte.Mode{refonte.ModeLive, refonte.ModeTest} {
		c := cfg.Clients[m]
		if c == nil {
			continue
		}
		st := &modeState{client: c, file: cfg.KeyFiles[m]}
		key := cfg.Keys[m]
		st.key.Store(&key)
		g.modes[m] = st
		g.order = append(g.order, m)
	}
	if cfg.Registerer != nil {
		f := promreg.With(cfg.Registerer)
		g.gauge = f.GaugeVec("refonte_api_key_rejected",
			"1 while the API rejects the mode's key (401): its jobs wait and the key is probed, else 0.", "mode")
		if err := f.Err(); err != nil {
			return nil, fmt.Errorf("keyguard: metrics: %w", err)
		}
		for _, m := range g.order {
			g.gauge.WithLabelValues(string(m)).Set(0)
		}
	}
	return g, nil
}

// Paused returns the pause of mode as this worker last saw it.
func (g *Guard) Paused(mode refonte.Mode) (store.KeyPause, bool) {
	if g == nil {
		return store.KeyPause{}, false
	}
	st := g.modes[mode]
	if st == nil {
		return store.KeyPause{}, false
	}
	if p := st.pause.Load(); p != nil {
		return *p, true
	}
	return store.KeyPause{}, false
}

// RecheckDelay is how long a job of a paused mode is rescheduled for: about
// one probe interval (up to 20 % less, so the jobs do not all come back at once).
func (g *Guard) RecheckDelay() time.Duration {
	d := g.cfg.ProbeInterval
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// Rejected records that the API answered a 401 to mode's key (apiMsg is
// its answer, such as "401 no valid API key provided"): the mode is paused
// on every worker (the first worker to record it logs it and pauses the
// mode's queue). It returns the pause in force.
func (g *Guard) Rejected(ctx context.Context, mode refonte.Mode, apiMsg string) store.KeyPause {
	st := g.modes[mode]
	now := g.cfg.Now().UTC().Truncate(time.Millisecond)
	p := store.KeyPause{Since: now,
		Reason: fmt.Sprintf("the API rejects the %s key since %s UTC (%s); its jobs wait, the key is probed every %s",
			mode, now.Format("2006-01-02 15:04:05"), apiMsg, g.cfg.ProbeInterval)}
	if st != nil {
		p.KeyFingerprint = ratelimit.KeyFingerprint(st.key.Load().Reveal())
	}
	created, err := g.cfg.Store.PauseMode(context.WithoutCancel(ctx), mode, p)
	if err != nil {
		g.log.Warn("recording the key pause failed; this worker pauses the mode on its own", zap.Stringer("mode", mode), zap.Error(err))
	} else if !created {
		if cur, ok, err := g.cfg.Store.ModePause(context.WithoutCancel(ctx), mode); err == nil && ok {
			p = cur
		}
	} else {
		g.log.Error("API key rejected (401): the mode is paused on every worker until a probe finds the key working (rotate the secret or restore the key)",
			zap.Stringer("mode", mode), zap.String("key_fingerprint", p.KeyFingerprint), zap.String("answer", apiMsg),
			zap.Duration("probe_interval", g.cfg.ProbeInterval))
		g.pauseQueue(mode)
	}
	g.setLocal(mode, &p)
	return p
}

// NotReady returns why the worker cannot submit anything (every mode it
// serves is paused), or "" when at least one mode works.
func (g *Guard) NotReady() string {
	if g == nil || len(g.order) == 0 {
		return ""
	}
	var why []string
	for _, m := range g.order {
		p, ok := g.Paused(m)
		if !ok {
			return ""
		}
		why = append(why, p.Reason)
	}
	return strings.Join(why, "; ")
}

// Run keeps the worker's view of the pauses fresh and probes the paused
// modes' keys until ctx ends.
func (g *Guard) Run(ctx context.Context) {
	t := time.NewTicker(g.cfg.RefreshInterval)
	defer t.Stop()
	for {
		g.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Check reads the shared pauses once and probes every paused mode whose
// last probe is ProbeInterval old (Run calls it every RefreshInterval).
func (g *Guard) Check(ctx context.Context) {
	for _, m := range g.order {
		p, ok, err := g.cfg.Store.ModePause(ctx, m)
		if err != nil {
			g.log.Debug("reading the key pause failed", zap.Stringer("mode", m), zap.Error(err))
			continue
		}
		if !ok {
			if _, was := g.Paused(m); was {
				// Another worker found the key working: take a rotated secret too.
				g.reloadKey(m, g.modes[m])
			}
			g.setLocal(m, nil)
			continue
		}
		if _, was := g.Paused(m); !was {
			// Seen from another worker's record: make sure the queue waits too.
			g.pauseQueue(m)
		}
		g.setLocal(m, &p)
		g.probe(ctx, m, p)
	}
}

// probe calls the API with mode's key (re-read from its file) if the last
// probe is ProbeInterval old, and resumes the mode when the key works.
func (g *Guard) probe(ctx context.Context, mode refonte.Mode, p store.KeyPause) {
	g.probeMu.Lock()
	defer g.probeMu.Unlock()
	st := g.modes[mode]
	now := g.cfg.Now()
	if !st.probed.IsZero() && now.Sub(st.probed) < g.cfg.ProbeInterval {
		return
	}
	st.probed = now
	g.reloadKey(mode, st)
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	_, err := st.client.ListTasks(pctx, refonte.ListTasksOptions{Limit: 1})
	cancel()
	if err != nil {
		g.log.Debug("the key probe failed; the mode stays paused", zap.Stringer("mode", mode), zap.Error(err))
		return
	}
	resumed, err := g.cfg.Store.ResumeMode(ctx, mode, p)
	if err != nil {
		g.log.Warn("the key works again but the pause could not be lifted; retried at the next probe", zap.Stringer("mode", mode), zap.Error(err))
		st.probed = time.Time{}
		return
	}
	g.setLocal(mode, nil)
	if resumed {
		if g.cfg.Queues != nil {
			for _, q := range jobs.Queues(mode) {
				if err := g.cfg.Queues.UnpauseQueue(q); err != nil {
					g.log.Debug("unpausing the queue", zap.String("queue", q), zap.Error(err))
				}
			}
		}
		g.log.Info("API key works again: the mode is resumed on every worker", zap.Stringer("mode", mode),
			zap.Duration("paused_for", now.Sub(p.Since).Round(time.Second)))
	}
}

// reloadKey re-reads mode's key file and gives the client a changed key.
func (g *Guard) reloadKey(mode refonte.Mode, st *modeState) {
	if st.file == "" {
		return
	}
	b, err := os.ReadFile(st.file)
	if err != nil {
		g.log.Warn("re-reading the key file failed; probing with the key in use", zap.Stringer("mode", mode), zap.Error(err))
		return
	}
	key := refonte.Secret(strings.TrimSpace(string(b)))
	if key == "" || key == *st.key.Load() {
		return
	}
	if err := st.client.SetAPIKey(key.Reveal()); err != nil {
		g.log.Warn("the key file holds an unusable key; probing with the key in use", zap.Stringer("mode", mode), zap.Error(err))
		return
	}
	st.key.Store(&key)
	g.log.Info("the key file changed: the new key is in use", zap.Stringer("mode", mode),
		zap.String("key_fingerprint", ratelimit.KeyFingerprint(key.Reveal())))
}

// pauseQueue pauses mode's asynq queues, every priority's (already
// paused is fine).
func (g *Guard) pauseQueue(mode refonte.Mode) {
	if g.cfg.Queues == nil {
		return
	}
	for _, q := range jobs.Queues(mode) {
		if err := g.cfg.Queues.PauseQueue(q); err != nil {
			g.log.Debug("pausing the queue", zap.String("queue", q), zap.Error(err))
		}
	}
}

func (g *Guard) setLocal(mode refonte.Mode, p *store.KeyPause) {
	st := g.modes[mode]
	if st == nil {
		return
	}
	st.pause.Store(p)
	if g.gauge != nil {
		v := 0.0
		if p != nil {
			v = 1
		}
		g.gauge.WithLabelValues(string(mode)).Set(v)
	}
}
