// Package console is the runs console the worker serves on its admin
// listener (-admin-listen): every run's progress, failures and results in
// a browser. Pages are rendered on the server with html/template and work
// without JavaScript; a small embedded script (no build step, no CDN)
// updates them live: the run page from server-sent events
// (GET /runs/{run_id}/events), the runs list by fetching itself again.
//
// Routes:
//
//	GET /                              redirect to /runs
//	GET /runs                          runs list (?state= &mode= &project=)
//	GET /runs/{run_id}                 run page
//	GET /runs/{run_id}/events          live updates of the run page (SSE)
//	GET /runs/{run_id}/results.jsonl   the results, streamed (?state=failed&group=… for one failure group)
//	GET /runs/{run_id}/results.csv     the rows joined to their results (enqueue results -join -format csv),
//	                                   when the worker can read the run's dataset; else 404
//	GET /static/…                      the embedded CSS and script
//	POST /runs/{run_id}/pause|resume|cancel  the run's actions (see actions.go)
//
// With a token (REFONTE_ADMIN_TOKEN), every route needs it, as
// "Authorization: Bearer TOKEN" or as the password of Basic auth (any user
// name), so a browser can prompt for it; missing or wrong: 401.
//
// Cost: a page reads run records, their timelines and failure groups
// (small bounded keys), the asynq queue summaries and the 429 counters;
// it never reads a job key. Only the results download walks a run's rows.
package console

import (
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/internal/defaults"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// Defaults of Options.
const (
	// DefaultMaxRuns is how many runs, newest first, the runs list reads.
	DefaultMaxRuns = 1000
	// DefaultUpdateInterval is how often live updates are sent.
	DefaultUpdateInterval = 2 * time.Second
	// DefaultStreamFor bounds one events stream (the browser reconnects).
	DefaultStreamFor = 30 * time.Minute
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configures the console. Store is required.
type Options struct {
	// Store is where runs are read.
	Store *store.Store
	// Inspector reads the asynq queues and the live workers (nil: the
	// fleet strip shows no queue depth and no worker count).
	Inspector *asynq.Inspector
	// Client queues the API cancels of a cancel with tasks. With Client and
	// Inspector set, the run page has actions (pause, resume, cancel);
	// without them the console is read-only.
	Client *asynq.Client
	// RateLimit is the create calls per second per mode shared by the
	// workers (0: no limit).
	RateLimit float64
	// LiveDailyLimit returns the live daily cap (0: none); nil means none.
	LiveDailyLimit func() int64
	// Token, when set, is required on every request (Bearer or Basic password).
	Token refonte.Secret
	// Logger gets the errors of page renders. Default: none.
	Logger *zap.Logger
	// MaxRuns is how many runs the runs list reads. Default DefaultMaxRuns.
	MaxRuns int
	// UpdateInterval is the period of live updates. Default DefaultUpdateInterval.
	UpdateInterval time.Duration
	// StreamFor bounds one events stream. Default DefaultStreamFor.
	StreamFor time.Duration
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// Server is the console's HTTP handler.
type Server struct {
	opts  Options
	pages map[string]*template.Template
	mux   *http.ServeMux
	token [sha256.Size]byte
	// csrf refuses cross-origin POSTs (see actions.go).
	csrf *http.CrossOriginProtection
}

// New returns the console handler.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("console: Options.Store is required")
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	opts.MaxRuns = defaults.Positive(opts.MaxRuns, DefaultMaxRuns)
	opts.UpdateInterval = defaults.Positive(opts.UpdateInterval, DefaultUpdateInterval)
	opts.StreamFor = defaults.Positive(opts.StreamFor, DefaultStreamFor)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LiveDailyLimit == nil {
		opts.LiveDailyLimit = func() int64 { return 0 }
	}
	s := &Server{opts: opts, pages: map[string]*template.Template{}, mux: http.NewServeMux(),
		csrf: http.NewCrossOriginProtection()}
	if opts.Token != "" {
		s.token = sha256.Sum256([]byte(opts.Token.Reveal()))
	}
	for _, page := range []string{"runs", "run", "notfound"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/parts.html", "templates/"+page+".html")
		if err != nil {
			return nil, err
		}
		s.pages[page] = t
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/runs", http.StatusFound)
	})
	s.mux.HandleFunc("GET /runs", s.runsPage)
	s.mux.HandleFunc("GET /runs/{run_id}", s.runPage)
	s.mux.HandleFunc("GET /runs/{run_id}/events", s.events)
	s.mux.HandleFunc("GET /runs/{run_id}/results.jsonl", s.resultsJSONL)
	s.mux.HandleFunc("GET /runs/{run_id}/results.csv", s.resultsCSV)
	for _, a := range []string{"pause", "resume", "cancel"} {
		s.mux.Handle("POST /runs/{run_id}/"+a, s.csrf.Handler(s.act(a)))
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.notFound(w, r, "No such page.")
	})
	return s, nil
}

// ServeHTTP checks the token, sets the security headers and routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	if !s.authorized(r) {
		h.Set("WWW-Authenticate", `Basic realm="refonte console", charset="UTF-8"`)
		http.Error(w, "401 unauthorized: give the console token (REFONTE_ADMIN_TOKEN) as a Bearer token or as the Basic auth password", http.StatusUnauthorized)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// authorized reports whether r carries the token (always true without
// one). Both sides are hashed first so the comparison takes the same time
// whatever the length of the guess.
func (s *Server) authorized(r *http.Request) bool {
	if s.opts.Token == "" {
		return true
	}
	var given string
	if _, pass, ok := r.BasicAuth(); ok {
		given = pass
	} else if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		given = strings.TrimSpace(a[7:])
	} else {
		return false
	}
	sum := sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(sum[:], s.token[:]) == 1
}
