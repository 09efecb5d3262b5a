package sandbox

import (
	"net/http"
	"strconv"
	"strings"

	json "github.com/goccy/go-json"

	"github.com/refonte-ai/refonte-batch/refonte"
)

func (s *Server) createBatch(w http.ResponseWriter, r *http.Request, wld *world, _ []string, _ Faults) {
	var body struct {
		Project  string          `json:"project"`
		Name     string          `json:"name"`
		Callback string          `json:"callback"`
		Metadata json.RawMessage `json:"metadata"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if strings.TrimSpace(body.Name) == "" {
		writeError(w, http.StatusBadRequest, "name: is required")
		return
	}
	if body.Project == "" {
		writeError(w, http.StatusBadRequest, "project: is required")
		return
	}
	if _, ok := wld.project(body.Project); !ok {
		writeError(w, http.StatusBadRequest, "project: no project named %q in %s mode", body.Project, wld.mode)
		return
	}
	md := json.RawMessage("{}")
	if len(body.Metadata) > 0 && string(body.Metadata) != "null" {
		var obj map[string]any
		if err := json.Unmarshal(body.Metadata, &obj); err != nil {
			writeError(w, http.StatusBadRequest, "metadata: must be a JSON object")
			return
		}
		md = body.Metadata
	}
	b := &batch{name: body.Name, project: body.Project, status: batchStaging, callback: body.Callback,
		createdAt: s.now(), metadata: md, counts: map[refonte.TaskStatus]int{}}
	wld.metaMu.Lock()
	if _, ok := wld.batches[body.Name]; ok {
		wld.metaMu.Unlock()
		writeError(w, http.StatusConflict, "a batch named %q already exists", body.Name)
		return
	}
	wld.batches[body.Name] = b
	wld.batchOrder = append(wld.batchOrder, b)
	wld.metaMu.Unlock()
	writeJSON(w, http.StatusOK, b.snapshot())
}

func (s *Server) lookupBatch(w http.ResponseWriter, wld *world, name string) (*batch, bool) {
	b, ok := wld.batch(name)
	if !ok {
		writeError(w, http.StatusNotFound, "no batch named %q in %s mode", name, wld.mode)
	}
	return b, ok
}

func (s *Server) finalizeBatch(w http.ResponseWriter, _ *http.Request, wld *world, args []string, _ Faults) {
	b, ok := s.lookupBatch(w, wld, args[0])
	if !ok {
		return
	}
	b.mu.Lock()
	if b.status != batchStaging {
		// Finalizing again is a no-op, so a retried finalize succeeds.
		b.mu.Unlock()
		writeJSON(w, http.StatusOK, b.snapshot())
		return
	}
	b.status = batchInProgress
	if b.counts[refonte.StatusPending] == 0 {
		b.status = batchCompleted
	}
	held := b.held
	b.held = nil
	b.mu.Unlock()
	for _, t := range held {
		s.scheduleCompletion(wld, t)
	}
	writeJSON(w, http.StatusOK, b.snapshot())
}

type batchStatus struct {
	Status    string `json:"status"`
	Pending   int    `json:"pending"`
	Completed int    `json:"completed"`
	Error     int    `json:"error"`
	Canceled  int    `json:"canceled"`
}

func (s *Server) batchStatus(w http.ResponseWriter, _ *http.Request, wld *world, args []string, _ Faults) {
	b, ok := s.lookupBatch(w, wld, args[0])
	if !ok {
		return
	}
	b.mu.Lock()
	st := batchStatus{b.status, b.counts[refonte.StatusPending], b.counts[refonte.StatusCompleted],
		b.counts[refonte.StatusError], b.counts[refonte.StatusCanceled]}
	b.mu.Unlock()
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) getBatch(w http.ResponseWriter, _ *http.Request, wld *world, args []string, _ Faults) {
	if b, ok := s.lookupBatch(w, wld, args[0]); ok {
		writeJSON(w, http.StatusOK, b.snapshot())
	}
}

type batchList struct {
	Docs      []batchJSON `json:"docs"`
	TotalDocs int         `json:"totalDocs"`
	Total     int         `json:"total"`
	Limit     int         `json:"limit"`
	Offset    int         `json:"offset"`
	HasMore   bool        `json:"has_more"`
}

func (s *Server) listBatches(w http.ResponseWriter, r *http.Request, wld *world, _ []string, _ Faults) {
	q := r.URL.Query()
	limit, err := parseLimit(q.Get("limit"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	offset := 0
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
			writeError(w, http.StatusBadRequest, "offset: must be a non-negative integer, got %q", v)
			return
		}
	}
	project, status := q.Get("project"), q.Get("status")
	switch status {
	case "", batchStaging, batchInProgress, batchCompleted:
	default:
		writeError(w, http.StatusBadRequest, "status: unknown batch status %q", status)
		return
	}
	wld.metaMu.RLock()
	all := wld.batchOrder
	wld.metaMu.RUnlock()
	var matched []batchJSON
	for i := len(all) - 1; i >= 0; i-- { // newest first
		snap := all[i].snapshot()
		if (project == "" || snap.Project == project) && (status == "" || snap.Status == status) {
			matched = append(matched, snap)
		}
	}
	resp := batchList{Docs: []batchJSON{}, TotalDocs: len(matched), Total: len(matched), Limit: limit, Offset: offset}
	if offset < len(matched) {
		end := min(offset+limit, len(matched))
		resp.Docs = matched[offset:end]
		resp.HasMore = end < len(matched)
	}
	writeJSON(w, http.StatusOK, resp)
}
