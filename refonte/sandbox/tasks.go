package sandbox

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/refonte-ai/refonte-batch/refonte"
)

// topLevel are the common params that become fields of the task object;
// everything else in a create body ends up in the task's params.
var topLevel = []string{
	refonte.ParamProject, refonte.ParamBatch, refonte.ParamCallbackURL, refonte.ParamInstruction,
	refonte.ParamMetadata, refonte.ParamUniqueID, refonte.ParamClearUniqueIDOnError,
	refonte.ParamPriority, refonte.ParamTags,
}

func (s *Server) createTask(w http.ResponseWriter, r *http.Request, wld *world, args []string, f Faults) {
	s.stats.createCalls.Add(1)
	if ok, wait := wld.allow(time.Now()); !ok {
		s.stats.rateLimited.Add(1)
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		writeError(w, http.StatusTooManyRequests, "too many requests: the rate limit of this API key is exceeded")
		return
	}
	if s.roll(f.ErrorRate) {
		s.stats.errorsInjected.Add(1)
		if s.intn(2) == 0 {
			writeError(w, http.StatusInternalServerError, "internal server error")
		} else {
			writeError(w, http.StatusServiceUnavailable, "queueing timeout")
		}
		return
	}
	typ, err := refonte.ParseTaskType(args[0])
	if err != nil || string(typ) != args[0] {
		writeError(w, http.StatusBadRequest, "unknown task type %q", args[0])
		return
	}
	if slices.Contains(s.cfg.DisabledTypes, typ) {
		writeError(w, http.StatusPaymentRequired, "task type %s is not enabled for this account", typ)
		return
	}
	body, ok := decodeParams(w, r)
	if !ok {
		return
	}
	if body == nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: want an object")
		return
	}

	// The project's current params are defaults under the task's own.
	merged := body
	// The body's strings share its buffer (see parseObject): those the task
	// keeps are cloned.
	projectName, _ := body[refonte.ParamProject].(string)
	batchName, _ := body[refonte.ParamBatch].(string)
	projectName, batchName = strings.Clone(projectName), strings.Clone(batchName)
	var b *batch
	if batchName != "" {
		var ok bool
		if b, ok = wld.batch(batchName); !ok {
			writeError(w, http.StatusBadRequest, "batch: no batch named %q in %s mode", batchName, wld.mode)
			return
		}
		if projectName == "" {
			projectName = b.project
		} else if projectName != b.project {
			writeError(w, http.StatusBadRequest, "batch: batch %q belongs to project %q, not %q", batchName, b.project, projectName)
			return
		}
	}
	if projectName != "" {
		p, ok := wld.project(projectName)
		if !ok {
			writeError(w, http.StatusBadRequest, "project: no project named %q in %s mode", projectName, wld.mode)
			return
		}
		if !isEmptyObject(p.Params) {
			var defaults refonte.TaskParams
			if err := json.Unmarshal(p.Params, &defaults); err == nil && defaults != nil {
				for k, v := range body {
					defaults[k] = v
				}
				merged = defaults
			}
		}
	}
	if err := refonte.ValidateTaskParams(typ, merged); err != nil {
		writeError(w, http.StatusBadRequest, "%s", strings.TrimPrefix(err.Error(), "refonte: "))
		return
	}

	now := s.now()
	t := &task{batch: b}
	t.t = refonte.Task{
		ID: s.newTaskID(), Type: typ, Status: refonte.StatusPending, CreatedAt: now, UpdatedAt: now,
		Project: projectName, Batch: batchName, CallbackURL: strings.Clone(merged.String(refonte.ParamCallbackURL)),
		Instruction: strings.Clone(merged.String(refonte.ParamInstruction)),
		UniqueID:    strings.Clone(merged.String(refonte.ParamUniqueID)),
		Tags:        []string{}, IsTest: wld.mode == refonte.ModeTest, Response: json.RawMessage("null"),
	}
	t.clearOnError, _ = merged[refonte.ParamClearUniqueIDOnError].(bool)
	if tags, ok := merged[refonte.ParamTags].([]any); ok {
		for _, tag := range tags {
			t.t.Tags = append(t.t.Tags, strings.Clone(tag.(string)))
		}
	}
	md := json.RawMessage("{}")
	if v, ok := merged[refonte.ParamMetadata]; ok {
		md, _ = json.Marshal(v)
	}
	t.t.Metadata = md
	t.t.Params = marshalParams(merged)
	t.fail = failRequested(merged)

	uid := t.t.UniqueID
	if uid != "" && !wld.reserveUID(uid, t) {
		s.stats.duplicateUID.Add(1)
		writeError(w, http.StatusConflict, "duplicate unique_id: %q is already used by another task", uid)
		return
	}
	held := false
	if b != nil {
		b.mu.Lock()
		staging := b.status == batchStaging
		if staging {
			b.counts[refonte.StatusPending]++
			if s.cfg.HoldUntilFinalize && !s.cfg.NoAutoComplete {
				b.held = append(b.held, t)
				held = true
			}
		}
		b.mu.Unlock()
		if !staging {
			if uid != "" {
				wld.releaseUIDOnly(uid, t)
			}
			writeError(w, http.StatusBadRequest, "batch: batch %q is not staging (tasks can only be added before it is finalized)", batchName)
			return
		}
	}
	wld.insert(t)
	if uid != "" {
		twice, reused := wld.ledgerAdd(uid)
		if twice {
			s.stats.createdTwice.Add(1)
		}
		if reused {
			s.stats.uidReused.Add(1)
		}
	}
	s.stats.tasksCreated.Add(1)
	wld.window.add()

	switch {
	case s.cfg.NoAutoComplete, held:
	case s.roll(f.CallbackEarlyRate):
		s.stats.callbacksEarly.Add(1)
		s.finish(wld, t, true)
	case s.cfg.CompleteAfter <= 0:
		s.finish(wld, t, false)
	default:
		s.scheduleCompletion(wld, t)
	}

	if s.roll(f.LostResponseRate) {
		s.stats.lostResponses.Add(1)
		writeError(w, http.StatusInternalServerError, "internal server error")
		return
	}
	answerTask(w, t.snapshot())
}

// answerTask answers 200 with snap.
func answerTask(w http.ResponseWriter, snap refonte.Task) {
	writeJSON(w, http.StatusOK, snap)
}

// isEmptyObject reports whether raw is the JSON object {} (as stored).
func isEmptyObject(raw json.RawMessage) bool { return string(raw) == "{}" }

// marshalParams encodes the params of a task: merged without the
// topLevel names, as json.Marshal of that map would.
func marshalParams(merged refonte.TaskParams) json.RawMessage {
	params := refonte.TaskParams{}
	for k, v := range merged {
		if !slices.Contains(topLevel, k) {
			params[k] = v
		}
	}
	b, _ := json.Marshal(params)
	return b
}

func (s *Server) scheduleCompletion(wld *world, t *task) {
	if s.cfg.CompleteAfter <= 0 {
		s.finish(wld, t, false)
		return
	}
	s.sched.add(event{at: time.Now().Add(s.cfg.CompleteAfter), w: wld, t: t})
}

// failRequested reports whether the create asks the sandbox to end the task
// in error (an attachment containing "sandbox-error").
func failRequested(p refonte.TaskParams) bool {
	if strings.Contains(p.String(refonte.ParamAttachment), "sandbox-error") {
		return true
	}
	if arr, ok := p[refonte.ParamAttachments].([]any); ok {
		for _, a := range arr {
			if s, ok := a.(string); ok && strings.Contains(s, "sandbox-error") {
				return true
			}
		}
	}
	return false
}

// releaseUIDOnly unbinds a reservation that never became a task.
func (w *world) releaseUIDOnly(uid string, t *task) {
	sh := &w.uids[shardOf(uid)]
	sh.mu.Lock()
	if sh.m[uid] == t {
		delete(sh.m, uid)
	}
	sh.mu.Unlock()
}

// finish moves a pending task to completed (or error) and queues its
// callback; sync delivers the callback's first attempt before returning.
// It does nothing if the task is no longer pending.
func (s *Server) finish(wld *world, t *task, sync bool) {
	now := s.now()
	t.mu.Lock()
	if t.t.Status != refonte.StatusPending {
		t.mu.Unlock()
		return
	}
	status := refonte.StatusCompleted
	var resp json.RawMessage
	if t.fail {
		status = refonte.StatusError
		resp = json.RawMessage(errorResponse)
	} else {
		resp = completedResponse(t.t.Metadata)
	}
	t.t.Status = status
	t.t.Response = resp
	t.t.UpdatedAt = now
	t.t.CompletedAt = &now
	releaseUID := ""
	if status == refonte.StatusError && t.clearOnError && t.t.UniqueID != "" {
		releaseUID = t.t.UniqueID
		t.t.UniqueID = ""
	}
	snap := t.t
	t.mu.Unlock()

	if releaseUID != "" {
		wld.releaseUID(releaseUID, t)
	}
	wld.status[0].Add(-1)
	wld.status[statusIndex(status)].Add(1)
	if t.batch != nil {
		t.batch.settle(status)
	}
	if snap.CallbackURL != "" {
		s.queueCallbacks(wld, t, snap, sync)
	}
}

// errorResponse is the response of a task that ends in error.
const errorResponse = `{"error":"attachment could not be downloaded (sandbox-error)"}`

// completedResponse is the response of a completed task echoing md.
func completedResponse(md json.RawMessage) json.RawMessage {
	raw, _ := json.Marshal(map[string]any{"annotations": []any{}, "echo_metadata": md, "synthetic": true})
	return raw
}

func (s *Server) lookup(w http.ResponseWriter, wld *world, id string) (*task, bool) {
	t, ok := wld.getTask(id)
	if !ok {
		writeError(w, http.StatusNotFound, "no task with id %q in %s mode", id, wld.mode)
	}
	return t, ok
}

func (s *Server) getTask(w http.ResponseWriter, _ *http.Request, wld *world, args []string, _ Faults) {
	if t, ok := s.lookup(w, wld, args[0]); ok {
		answerTask(w, t.snapshot())
	}
}

func (s *Server) cancelTask(w http.ResponseWriter, r *http.Request, wld *world, args []string, _ Faults) {
	t, ok := s.lookup(w, wld, args[0])
	if !ok {
		return
	}
	clear := r.URL.Query().Get("clear_unique_id") == "true"
	now := s.now()
	t.mu.Lock()
	if st := t.t.Status; st != refonte.StatusPending {
		t.mu.Unlock()
		writeError(w, http.StatusBadRequest, "task %s cannot be canceled: it is already %s", args[0], st)
		return
	}
	t.t.Status = refonte.StatusCanceled
	t.t.UpdatedAt = now
	uid := ""
	if clear && t.t.UniqueID != "" {
		uid = t.t.UniqueID
		t.t.UniqueID = ""
	}
	snap := t.t
	t.mu.Unlock()
	if uid != "" {
		wld.releaseUID(uid, t)
	}
	wld.status[0].Add(-1)
	wld.status[statusIndex(refonte.StatusCanceled)].Add(1)
	if t.batch != nil {
		t.batch.settle(refonte.StatusCanceled)
	}
	writeJSON(w, http.StatusOK, snap)
}

func (s *Server) setMetadata(w http.ResponseWriter, r *http.Request, wld *world, args []string, _ Faults) {
	t, ok := s.lookup(w, wld, args[0])
	if !ok {
		return
	}
	var md map[string]any
	if !decodeBody(w, r, &md) {
		return
	}
	if md == nil {
		writeError(w, http.StatusBadRequest, "metadata: must be a JSON object")
		return
	}
	raw, _ := json.Marshal(md)
	t.mu.Lock()
	t.t.Metadata = raw
	t.t.UpdatedAt = s.now()
	snap := t.t
	t.mu.Unlock()
	writeJSON(w, http.StatusOK, snap)
}

func (s *Server) setUniqueID(w http.ResponseWriter, r *http.Request, wld *world, args []string, _ Faults) {
	t, ok := s.lookup(w, wld, args[0])
	if !ok {
		return
	}
	var body struct {
		UniqueID *string `json:"unique_id"`
	}
	if !decodeBody(w, r, &body) {
		return
	}
	if body.UniqueID == nil || *body.UniqueID == "" {
		writeError(w, http.StatusBadRequest, "unique_id: is required")
		return
	}
	uid := *body.UniqueID
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.t.UniqueID
	if old == uid {
		writeJSON(w, http.StatusOK, t.t)
		return
	}
	if !wld.reserveUID(uid, t) {
		s.stats.duplicateUID.Add(1)
		writeError(w, http.StatusConflict, "duplicate unique_id: %q is already used by another task", uid)
		return
	}
	if twice, reused := wld.ledgerAdd(uid); twice {
		s.stats.createdTwice.Add(1)
	} else if reused {
		s.stats.uidReused.Add(1)
	}
	if old != "" {
		wld.releaseUID(old, t)
	}
	t.t.UniqueID = uid
	t.t.UpdatedAt = s.now()
	writeJSON(w, http.StatusOK, t.t)
}

func (s *Server) clearUniqueID(w http.ResponseWriter, _ *http.Request, wld *world, args []string, _ Faults) {
	t, ok := s.lookup(w, wld, args[0])
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if old := t.t.UniqueID; old != "" {
		wld.releaseUID(old, t)
		t.t.UniqueID = ""
		t.t.UpdatedAt = s.now()
	}
	writeJSON(w, http.StatusOK, t.t)
}

// listResponse is GET /tasks' body; the official SDK needs all keys.
type listResponse struct {
	Docs      []refonte.Task `json:"docs"`
	Total     int            `json:"total"`
	Limit     int            `json:"limit"`
	Offset    int            `json:"offset"`
	HasMore   bool           `json:"has_more"`
	NextToken *string        `json:"next_token"`
}

type taskFilter struct {
	project, batch, typ, uid string
	status                   refonte.TaskStatus
	tags                     []string
	times                    [6]*time.Time // start, end, completed after/before, updated after/before
}

var timeParams = [6]string{"start_time", "end_time", "completed_after", "completed_before", "updated_after", "updated_before"}

func (f *taskFilter) match(t *refonte.Task) bool {
	if (f.project != "" && t.Project != f.project) || (f.batch != "" && t.Batch != f.batch) ||
		(f.typ != "" && string(t.Type) != f.typ) || (f.status != "" && t.Status != f.status) ||
		(f.uid != "" && t.UniqueID != f.uid) {
		return false
	}
	for _, tag := range f.tags {
		if !slices.Contains(t.Tags, tag) {
			return false
		}
	}
	check := func(v *time.Time, after, before *time.Time) bool {
		if after == nil && before == nil {
			return true
		}
		if v == nil {
			return false
		}
		return (after == nil || !v.Before(*after)) && (before == nil || v.Before(*before))
	}
	c, u := t.CreatedAt, t.UpdatedAt
	return check(&c, f.times[0], f.times[1]) && check(t.CompletedAt, f.times[2], f.times[3]) &&
		check(&u, f.times[4], f.times[5])
}

// pageToken is the opaque next_token: the sequence number to resume below
// and the number of matches already returned.
type pageToken struct {
	Below  int `json:"b"`
	Offset int `json:"o"`
}

func (p pageToken) encode() string {
	b, _ := json.Marshal(p)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeToken(s string) (pageToken, error) {
	var p pageToken
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &p)
	}
	if err != nil || p.Below < 0 || p.Offset < 0 {
		return p, errors.New("invalid next_token")
	}
	return p, nil
}

func parseLimit(v string) (int, error) {
	if v == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 100 {
		return 0, fmt.Errorf("limit: must be an integer between 1 and 100, got %q", v)
	}
	return n, nil
}

func (s *Server) listTasks(w http.ResponseWriter, r *http.Request, wld *world, _ []string, _ Faults) {
	q := r.URL.Query()
	limit, err := parseLimit(q.Get("limit"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	f := taskFilter{project: q.Get("project"), batch: q.Get("batch"), typ: q.Get("type"),
		uid: q.Get("unique_id"), status: refonte.TaskStatus(q.Get("status"))}
	for _, v := range q["tags"] {
		for _, tag := range strings.Split(v, ",") {
			if tag = strings.TrimSpace(tag); tag != "" {
				f.tags = append(f.tags, tag)
			}
		}
	}
	for i, name := range timeParams {
		if v := q.Get(name); v != "" {
			tm, err := time.Parse(time.RFC3339, v)
			if err != nil {
				writeError(w, http.StatusBadRequest, "%s: must be an RFC 3339 time, got %q", name, v)
				return
			}
			f.times[i] = &tm
		}
	}
	switch f.status {
	case "", refonte.StatusPending, refonte.StatusCompleted, refonte.StatusCanceled, refonte.StatusError:
	default:
		writeError(w, http.StatusBadRequest, "status: unknown status %q", f.status)
		return
	}
	order := wld.snapshotOrder()
	tok := pageToken{Below: math.MaxInt}
	if v := q.Get("next_token"); v != "" {
		if tok, err = decodeToken(v); err != nil {
			writeError(w, http.StatusBadRequest, "next_token: %v", err)
			return
		}
	}
	var candidates []*task
	if f.uid != "" {
		// unique_id lookups (the "500 then 409" resolution) are O(1).
		// The holder may be reserved but not inserted yet: only a stored
		// task is listed (getTask's lock also publishes its seq).
		if t, ok := wld.uidHolder(f.uid); ok {
			if _, stored := wld.getTask(t.t.ID); stored {
				candidates = []*task{t}
			}
		}
	}
	resp := listResponse{Docs: []refonte.Task{}, Limit: limit, Offset: tok.Offset}
	matchedBefore := 0 // matches newer than the page (already returned)
	next := -1
	visit := func(t *task) {
		t.mu.Lock()
		if !f.match(&t.t) {
			t.mu.Unlock()
			return
		}
		resp.Total++
		switch {
		case t.seq >= tok.Below:
			matchedBefore++
		case len(resp.Docs) < limit:
			resp.Docs = append(resp.Docs, t.t)
			next = t.seq
		default:
			resp.HasMore = true
		}
		t.mu.Unlock()
	}
	switch {
	case f.uid != "":
		for _, t := range candidates {
			visit(t)
		}
	case f.batch != "":
		// A batch's own index, in seq order: no scan of the whole mode.
		if b, ok := wld.batch(f.batch); ok {
			b.mu.Lock()
			bt := b.tasks
			b.mu.Unlock()
			for i := len(bt) - 1; i >= 0; i-- {
				visit(bt[i])
			}
		}
	default:
		for i := len(order) - 1; i >= 0; i-- {
			visit(order[i])
		}
	}
	resp.Offset = matchedBefore
	if resp.HasMore {
		token := pageToken{Below: next, Offset: matchedBefore + len(resp.Docs)}.encode()
		resp.NextToken = &token
	}
	writeJSON(w, http.StatusOK, resp)
}

// Task returns a snapshot of the task id of mode.
func (s *Server) Task(mode refonte.Mode, id string) (*refonte.Task, bool) {
	w, ok := s.worlds[mode]
	if !ok {
		return nil, false
	}
	t, ok := w.getTask(id)
	if !ok {
		return nil, false
	}
	snap := t.snapshot()
	return &snap, true
}

// TaskByUniqueID returns a snapshot of the task of mode holding uid.
func (s *Server) TaskByUniqueID(mode refonte.Mode, uid string) (*refonte.Task, bool) {
	w, ok := s.worlds[mode]
	if !ok {
		return nil, false
	}
	t, ok := w.uidHolder(uid)
	if !ok {
		return nil, false
	}
	snap := t.snapshot()
	return &snap, true
}

// Complete completes the pending task id of mode now (as its timer would)
// and queues its callback. It is meant for tests using NoAutoComplete.
func (s *Server) Complete(mode refonte.Mode, id string) bool {
	w, ok := s.worlds[mode]
	if !ok {
		return false
	}
	t, ok := w.getTask(id)
	if !ok {
		return false
	}
	s.finish(w, t, false)
	return true
}
