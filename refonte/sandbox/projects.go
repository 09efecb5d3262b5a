package sandbox

import (
	"errors"
	"net/http"
	"strings"

	json "github.com/goccy/go-json"

	"github.com/refonte-ai/refonte-batch/refonte"
)

func (s *Server) createProject(w http.ResponseWriter, r *http.Request, wld *world, _ []string, _ Faults) {
	var body struct {
		Type   string          `json:"type"`
		Name   string          `json:"name"`
		Params json.RawMessage `json:"params"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if strings.TrimSpace(body.Name) == "" {
		writeError(w, http.StatusBadRequest, "name: is required")
		return
	}
	typ, err := refonte.ParseTaskType(body.Type)
	if err != nil || string(typ) != body.Type {
		writeError(w, http.StatusBadRequest, "type: unknown task type %q", body.Type)
		return
	}
	params, ok := objectOrNull(body.Params)
	if !ok {
		writeError(w, http.StatusBadRequest, "params: must be a JSON object")
		return
	}
	p, err := wld.createProject(body.Name, typ, params, s.now())
	if errors.Is(err, errExists) {
		writeError(w, http.StatusConflict, "a project named %q already exists", body.Name)
		return
	}
	proj, _ := wld.project(p.Name)
	writeJSON(w, http.StatusOK, proj)
}

// objectOrNull returns raw if it is a JSON object, "{}" if it is absent or
// null, and false otherwise.
func objectOrNull(raw json.RawMessage) (json.RawMessage, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage("{}"), true
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, false
	}
	return raw, true
}

func (s *Server) getProject(w http.ResponseWriter, _ *http.Request, wld *world, args []string, _ Faults) {
	p, ok := wld.project(args[0])
	if !ok {
		writeError(w, http.StatusNotFound, "no project named %q in %s mode", args[0], wld.mode)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) listProjects(w http.ResponseWriter, _ *http.Request, wld *world, _ []string, _ Faults) {
	wld.metaMu.RLock()
	out := make([]project, 0, len(wld.projectOrder))
	for _, name := range wld.projectOrder {
		out = append(out, *wld.projects[name])
	}
	wld.metaMu.RUnlock()
	writeJSON(w, http.StatusOK, out)
}

// setProjectParams appends a version to the project's param_history. The
// body is the new params object, either bare or as {"params": {…}}.
func (s *Server) setProjectParams(w http.ResponseWriter, r *http.Request, wld *world, args []string, _ Faults) {
	var body map[string]json.RawMessage
	if !decodeBody(w, r, &body) {
		return
	}
	if body == nil {
		writeError(w, http.StatusBadRequest, "params: must be a JSON object")
		return
	}
	var raw json.RawMessage
	if inner, ok := body["params"]; ok && len(body) == 1 {
		var ok2 bool
		if raw, ok2 = objectOrNull(inner); !ok2 {
			writeError(w, http.StatusBadRequest, "params: must be a JSON object")
			return
		}
	} else {
		raw, _ = json.Marshal(body)
	}
	now := s.now()
	wld.metaMu.Lock()
	p, ok := wld.projects[args[0]]
	if !ok {
		wld.metaMu.Unlock()
		writeError(w, http.StatusNotFound, "no project named %q in %s mode", args[0], wld.mode)
		return
	}
	// Replace, never mutate, so copies handed out stay valid.
	history := append(append([]paramVersion(nil), p.ParamHistory...),
		paramVersion{Version: len(p.ParamHistory), CreatedAt: now, Params: raw})
	np := *p
	np.ParamHistory = history
	np.Params = raw
	wld.projects[args[0]] = &np
	wld.metaMu.Unlock()
	writeJSON(w, http.StatusOK, np)
}
