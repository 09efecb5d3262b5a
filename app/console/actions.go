package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/jobs/control"
	"github.com/refonte-ai/refonte-batch/jobs/store"
)

// The run page's actions: the same cancel, pause and resume as the enqueue
// CLI (jobs/control), as POSTs. Cross-site requests are refused by
// net/http's CrossOriginProtection (the browser's Sec-Fetch-Site, or
// Origin against Host): a page elsewhere cannot make an operator's browser,
// which may hold the console's Basic credentials, steer a run. Tools
// without those headers (curl with the token) are same-origin by
// definition and allowed.
//
//	POST /runs/{run_id}/pause
//	POST /runs/{run_id}/resume
//	POST /runs/{run_id}/cancel     confirm=yes required; tasks=yes also cancels created tasks at the API
//
// A browser gets a 303 back to the run page, which says what was done
// (?did=); a client asking for application/json gets the result as JSON.

// actionResult is an action's JSON answer.
type actionResult struct {
	RunID  string                `json:"run_id"`
	Action string                `json:"action"`
	State  store.RunState        `json:"state"`
	Cancel *control.CancelReport `json:"cancel,omitempty"`
	Woken  *int64                `json:"woken,omitempty"`
	Error  string                `json:"error,omitempty"`
}

// actions reports whether the console can steer runs (the worker gave it
// the asynq client and inspector that cancel and resume need).
func (s *Server) actions() bool { return s.opts.Client != nil && s.opts.Inspector != nil }

// act runs one action on the run named by the path.
func (s *Server) act(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("run_id")
		if !s.actions() {
			http.Error(w, "405 the console is read-only here", http.StatusMethodNotAllowed)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, "400 unreadable form", http.StatusBadRequest)
			return
		}
		ctx := r.Context()
		res := actionResult{RunID: id, Action: action}
		var err error
		switch action {
		case "cancel":
			if r.PostForm.Get("confirm") != "yes" {
				s.answer(w, r, http.StatusBadRequest, res, "tick the confirmation box to cancel the run")
				return
			}
			var rep control.CancelReport
			rep, err = control.Cancel(ctx, s.opts.Store, s.opts.Client, id, r.PostForm.Get("tasks") == "yes")
			res.Cancel, res.State = &rep, rep.State
		case "pause", "resume":
			var pr store.PauseResult
			var woken int64
			pr, woken, err = control.Pause(ctx, s.opts.Store, s.opts.Inspector, id, action == "pause", s.opts.Logger)
			res.State = pr.State
			if action == "resume" {
				res.Woken = &woken
			}
		}
		switch {
		case errors.Is(err, store.ErrRunNotFound):
			s.answer(w, r, http.StatusNotFound, res, "no such run")
		case errors.Is(err, store.ErrRunDone):
			s.answer(w, r, http.StatusConflict, res, "the run is finished: nothing to "+action)
		case err != nil:
			if ctx.Err() == nil {
				s.opts.Logger.Warn("console action failed", zap.String("action", action), zap.String("run_id", id), zap.Error(err))
			}
			s.answer(w, r, http.StatusInternalServerError, res, "the "+action+" failed; see the worker's log, or run enqueue "+action+" "+id)
		default:
			s.opts.Logger.Info("run steered from the console", zap.String("action", action), zap.String("run_id", id),
				zap.String("state", string(res.State)))
			s.answer(w, r, http.StatusOK, res, "")
		}
	}
}

// answer replies to an action: JSON for a client that asks for it, else a
// 303 to the run page naming what was done (or a plain error page).
func (s *Server) answer(w http.ResponseWriter, r *http.Request, status int, res actionResult, msg string) {
	res.Error = msg
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(res)
		return
	}
	if status != http.StatusOK {
		http.Error(w, http.StatusText(status)+": "+msg, status)
		return
	}
	http.Redirect(w, r, "/runs/"+url.PathEscape(res.RunID)+"?did="+res.Action, http.StatusSeeOther)
}

// wantsJSON reports whether r's Accept header prefers JSON.
func wantsJSON(r *http.Request) bool {
	for _, a := range r.Header.Values("Accept") {
		if len(a) >= 16 && a[:16] == "application/json" {
			return true
		}
	}
	return false
}
