package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/refonte-ai/refonte-batch/refonte"
)

const (
	testKey = DefaultTestKey
	liveKey = DefaultLiveKey
)

func TestAuth(t *testing.T) {
	_, base := start(t, Config{})
	tests := []struct {
		name string
		key  string
		want int
	}{
		{"no auth", "", http.StatusUnauthorized},
		{"unknown key", "test_other", http.StatusUnauthorized},
		{"live key as test key", "test_" + liveKey, http.StatusUnauthorized},
		{"test key", testKey, http.StatusOK},
		{"live key", liveKey, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, http.MethodGet, base+"/projects", tt.key, nil)
			if tt.want != http.StatusOK {
				wantError(t, r, tt.want)
				return
			}
			if r.status != tt.want {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
		})
	}
	// Password must be empty? The reference uses an empty one; any password
	// is ignored like Basic auth APIs do, but the key must match.
	req, _ := http.NewRequest(http.MethodGet, base+"/projects", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bearer auth: status %d, want 401", resp.StatusCode)
	}
}

func TestCreateTaskShape(t *testing.T) {
	_, base := start(t, Config{NoAutoComplete: true})
	r := call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{
		"instruction": "box the cats", "metadata": map[string]any{"source_row": 17},
		"unique_id": "row-17", "callback_url": "https://example.com/cb", "priority": 3,
	}))
	if r.status != http.StatusOK {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	obj := r.object(t)
	for _, key := range []string{"task_id", "type", "status", "created_at", "updated_at", "completed_at",
		"project", "callback_url", "callback_succeeded", "instruction", "params", "metadata", "unique_id",
		"tags", "is_test", "response"} {
		if _, ok := obj[key]; !ok {
			t.Errorf("task object lacks %q: %s", key, r.body)
		}
	}
	task := r.task(t)
	if !regexp.MustCompile(`^[0-9a-f]{24}$`).MatchString(task.ID) {
		t.Errorf("task_id %q is not 24 hex digits", task.ID)
	}
	if task.Status != refonte.StatusPending || !task.IsTest || task.Type != refonte.TypeImageAnnotation {
		t.Errorf("task = %+v", task)
	}
	if obj["tags"] == nil || obj["response"] != nil || obj["completed_at"] != nil || obj["callback_succeeded"] != nil {
		t.Errorf("want tags [], response/completed_at/callback_succeeded null: %s", r.body)
	}
	var params map[string]any
	if err := json.Unmarshal(task.Params, &params); err != nil {
		t.Fatal(err)
	}
	if _, ok := params["attachment"]; !ok {
		t.Errorf("params lack attachment: %s", task.Params)
	}
	for _, common := range []string{"project", "metadata", "unique_id", "instruction", "callback_url", "priority"} {
		if _, ok := params[common]; ok {
			t.Errorf("params hold common field %q: %s", common, task.Params)
		}
	}
	if string(task.Metadata) != `{"source_row":17}` {
		t.Errorf("metadata %s", task.Metadata)
	}
	got := call(t, http.MethodGet, base+"/task/"+task.ID, testKey, nil)
	if got.status != http.StatusOK || got.task(t).ID != task.ID {
		t.Fatalf("get: %d %s", got.status, got.body)
	}
	wantError(t, call(t, http.MethodGet, base+"/task/nope", testKey, nil), http.StatusNotFound)
	wantError(t, call(t, http.MethodPost, base+"/task/notatype", testKey, imageTask(nil)), http.StatusBadRequest)
	wantError(t, call(t, http.MethodPut, base+"/task/"+task.ID, testKey, nil), http.StatusMethodNotAllowed)
	wantError(t, call(t, http.MethodGet, base+"/nothing", testKey, nil), http.StatusNotFound)
}

func TestValidation(t *testing.T) {
	_, base := start(t, Config{NoAutoComplete: true})
	img := "https://example.com/a.jpg"
	tests := []struct {
		typ   string
		body  map[string]any
		field string // "" = valid
	}{
		{"imageannotation", map[string]any{"attachment": img}, "geometries"},
		{"imageannotation", map[string]any{"geometries": map[string]any{"box": map[string]any{"objects_to_annotate": []string{"x"}}}}, "attachment"},
		{"imageannotation", map[string]any{"attachment": img, "geometries": map[string]any{"box": map[string]any{"objects_to_annotate": []string{}}}}, "geometries.box.objects_to_annotate"},
		{"imageannotation", map[string]any{"attachment": "not a url", "geometries": map[string]any{"box": map[string]any{"objects_to_annotate": []string{"x"}}}}, "attachment"},
		{"categorization", map[string]any{"attachment": img}, "categories"},
		{"categorization", map[string]any{"attachment": img, "categories": []string{"a"}}, ""},
		{"textcollection", map[string]any{"fields": []string{"f"}}, "attachments"},
		{"textcollection", map[string]any{"attachments": []string{img}}, "fields"},
		{"documenttranscription", map[string]any{}, "attachment"},
		{"segmentannotation", map[string]any{"attachment": img}, "labels"},
		{"namedentityrecognition", map[string]any{"labels": []string{"PER"}}, "text"},
		{"namedentityrecognition", map[string]any{"text": "Ann", "labels": []string{"PER"}}, ""},
		{"videoannotation", map[string]any{}, "attachment"},
		{"comparison", map[string]any{"attachments": []string{img, img}}, ""},
		{"imageannotation", map[string]any{"attachment": img, "geometries": map[string]any{"box": map[string]any{"objects_to_annotate": []string{"x"}}}, "metadata": "str"}, "metadata"},
		{"imageannotation", map[string]any{"attachment": img, "geometries": map[string]any{"box": map[string]any{"objects_to_annotate": []string{"x"}}}, "project": "ghost"}, "project"},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%d_%s_%s", i, tt.typ, tt.field), func(t *testing.T) {
			r := call(t, http.MethodPost, base+"/task/"+tt.typ, testKey, tt.body)
			if tt.field == "" {
				if r.status != http.StatusOK {
					t.Fatalf("want 200, got %d %s", r.status, r.body)
				}
				return
			}
			msg := wantError(t, r, http.StatusBadRequest)
			if !strings.HasPrefix(msg, tt.field) {
				t.Fatalf("error %q does not name field %q", msg, tt.field)
			}
		})
	}
}

func TestModeSeparation(t *testing.T) {
	_, base := start(t, Config{NoAutoComplete: true})
	if r := call(t, http.MethodPost, base+"/projects", liveKey, map[string]any{"type": "imageannotation", "name": "live-only"}); r.status != http.StatusOK {
		t.Fatalf("create project: %d %s", r.status, r.body)
	}
	wantError(t, call(t, http.MethodGet, base+"/projects/live-only", testKey, nil), http.StatusNotFound)
	msg := wantError(t, call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"project": "live-only"})), http.StatusBadRequest)
	if !strings.HasPrefix(msg, "project") {
		t.Errorf("message %q", msg)
	}
	// The same unique_id is free in each mode.
	a := call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"unique_id": "u1"}))
	b := call(t, http.MethodPost, base+"/task/imageannotation", liveKey, imageTask(map[string]any{"unique_id": "u1"}))
	if a.status != 200 || b.status != 200 {
		t.Fatalf("creates: %d %s / %d %s", a.status, a.body, b.status, b.body)
	}
	if b.task(t).IsTest {
		t.Error("live task has is_test true")
	}
	wantError(t, call(t, http.MethodGet, base+"/task/"+a.task(t).ID, liveKey, nil), http.StatusNotFound)
	var list listResponse
	call(t, http.MethodGet, base+"/tasks", liveKey, nil).decode(t, &list)
	if list.Total != 1 || list.Docs[0].ID != b.task(t).ID {
		t.Fatalf("live list = %+v", list)
	}
}

func TestUniqueIDConflict(t *testing.T) {
	s, base := start(t, Config{NoAutoComplete: true})
	first := call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"unique_id": "dup"}))
	if first.status != 200 {
		t.Fatal(first.status)
	}
	// A unique_id is unique across types and projects of one mode.
	second := call(t, http.MethodPost, base+"/task/documenttranscription", testKey,
		map[string]any{"attachment": "https://example.com/a.pdf", "unique_id": "dup"})
	if msg := wantError(t, second, http.StatusConflict); !strings.Contains(msg, "duplicate unique_id") {
		t.Errorf("message %q", msg)
	}
	// Canceling with clear_unique_id releases it.
	wantError(t, call(t, http.MethodPost, base+"/task/nope/cancel", testKey, nil), http.StatusNotFound)
	c := call(t, http.MethodPost, base+"/task/"+first.task(t).ID+"/cancel?clear_unique_id=true", testKey, nil)
	if c.status != 200 || c.task(t).Status != refonte.StatusCanceled || c.task(t).UniqueID != "" {
		t.Fatalf("cancel: %d %s", c.status, c.body)
	}
	wantError(t, call(t, http.MethodPost, base+"/task/"+first.task(t).ID+"/cancel", testKey, nil), http.StatusBadRequest)
	third := call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"unique_id": "dup"}))
	if third.status != 200 {
		t.Fatalf("reuse after release: %d %s", third.status, third.body)
	}
	st := s.Stats()
	if st.DuplicateUniqueID != 1 || st.UniqueIDsCreatedTwice != 0 || st.UniqueIDsReused != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestConcurrentCreatesOfOneUniqueID(t *testing.T) {
	s, base := start(t, Config{NoAutoComplete: true})
	const n = 40
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	for range n {
		wg.Go(func() {
			statuses <- call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"unique_id": "race"})).status
		})
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for st := range statuses {
		count[st]++
	}
	if count[200] != 1 || count[409] != n-1 {
		t.Fatalf("statuses %v, want one 200 and %d 409", count, n-1)
	}
	st := s.Stats()
	if st.TasksCreated != 1 || st.DuplicateUniqueID != n-1 || st.UniqueIDsCreatedTwice != 0 || st.CreateCalls != n {
		t.Fatalf("stats %+v", st)
	}
}

func TestTaskMutations(t *testing.T) {
	_, base := start(t, Config{NoAutoComplete: true})
	a := call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"unique_id": "a"})).task(t)
	b := call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"unique_id": "b"})).task(t)

	r := call(t, http.MethodPost, base+"/task/"+a.ID+"/setMetadata", testKey, map[string]any{"k": "v"})
	if r.status != 200 || string(r.task(t).Metadata) != `{"k":"v"}` {
		t.Fatalf("setMetadata: %d %s", r.status, r.body)
	}
	wantError(t, call(t, http.MethodPost, base+"/task/"+a.ID+"/setMetadata", testKey, []int{1}), http.StatusBadRequest)

	wantError(t, call(t, http.MethodPost, base+"/task/"+a.ID+"/unique_id", testKey, map[string]any{"unique_id": "b"}), http.StatusConflict)
	r = call(t, http.MethodPost, base+"/task/"+a.ID+"/unique_id", testKey, map[string]any{"unique_id": "a2"})
	if r.status != 200 || r.task(t).UniqueID != "a2" {
		t.Fatalf("set unique_id: %d %s", r.status, r.body)
	}
	// "a" is free again, "a2" is taken.
	if r := call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"unique_id": "a"})); r.status != 200 {
		t.Fatalf("reuse a: %d", r.status)
	}
	r = call(t, http.MethodDelete, base+"/task/"+b.ID+"/unique_id", testKey, nil)
	if r.status != 200 || r.task(t).UniqueID != "" {
		t.Fatalf("delete unique_id: %d %s", r.status, r.body)
	}
	if r := call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"unique_id": "b"})); r.status != 200 {
		t.Fatalf("reuse b: %d", r.status)
	}
}

func TestListTasks(t *testing.T) {
	_, base := start(t, Config{NoAutoComplete: true})
	call(t, http.MethodPost, base+"/projects", testKey, map[string]any{"type": "categorization", "name": "other"})
	var ids []string
	for i := range 25 {
		body := imageTask(map[string]any{"unique_id": fmt.Sprintf("u%02d", i)})
		if i%5 == 0 {
			body["tags"] = []string{"five", "x"}
		}
		if i%2 == 0 {
			body = map[string]any{"project": "other", "attachment": "https://e.com/a", "categories": []string{"a"}, "unique_id": fmt.Sprintf("u%02d", i)}
		}
		typ := "imageannotation"
		if i%2 == 0 {
			typ = "categorization"
		}
		r := call(t, http.MethodPost, base+"/task/"+typ, testKey, body)
		if r.status != 200 {
			t.Fatalf("create %d: %d %s", i, r.status, r.body)
		}
		ids = append(ids, r.task(t).ID)
	}
	call(t, http.MethodPost, base+"/task/"+ids[3]+"/cancel", testKey, nil)

	// Page through everything, newest first, with next_token.
	var seen []string
	token := ""
	for page := 0; ; page++ {
		u := base + "/tasks?limit=10"
		if token != "" {
			u += "&next_token=" + url.QueryEscape(token)
		}
		r := call(t, http.MethodGet, u, testKey, nil)
		obj := r.object(t)
		for _, k := range []string{"docs", "total", "limit", "offset", "has_more", "next_token"} {
			if _, ok := obj[k]; !ok {
				t.Fatalf("list lacks %q: %s", k, r.body)
			}
		}
		var l listResponse
		r.decode(t, &l)
		if l.Total != 25 || l.Limit != 10 || l.Offset != page*10 {
			t.Fatalf("page %d: total %d limit %d offset %d", page, l.Total, l.Limit, l.Offset)
		}
		for _, d := range l.Docs {
			seen = append(seen, d.ID)
		}
		if !l.HasMore {
			if l.NextToken != nil {
				t.Fatal("next_token set on the last page")
			}
			break
		}
		token = *l.NextToken
	}
	if len(seen) != 25 {
		t.Fatalf("saw %d tasks", len(seen))
	}
	for i, id := range seen {
		if id != ids[24-i] {
			t.Fatalf("position %d: %s, want %s (newest first)", i, id, ids[24-i])
		}
	}

	tests := []struct {
		query string
		want  int
	}{
		{"project=other", 13},
		{"project=demo", 12},
		{"type=categorization", 13},
		{"status=canceled", 1},
		{"status=pending", 24},
		{"unique_id=u07", 1},
		{"unique_id=nope", 0},
		{"tags=five", 2}, // 5 and 15 are image tasks with tags; 0, 10, 20 are categorization without
		{"tags=five,x", 2},
		{"start_time=2000-01-01T00:00:00Z", 25},
		{"end_time=2000-01-01T00:00:00Z", 0},
		{"completed_after=2000-01-01T00:00:00Z", 0},
		{"updated_before=2999-01-01T00:00:00Z", 25},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			var l listResponse
			r := call(t, http.MethodGet, base+"/tasks?"+tt.query, testKey, nil)
			r.decode(t, &l)
			if r.status != 200 || l.Total != tt.want || len(l.Docs) != tt.want {
				t.Fatalf("%s: status %d total %d docs %d, want %d", tt.query, r.status, l.Total, len(l.Docs), tt.want)
			}
		})
	}
	for _, bad := range []string{"limit=0", "limit=101", "limit=x", "start_time=yesterday", "next_token=@@", "status=weird"} {
		wantError(t, call(t, http.MethodGet, base+"/tasks?"+bad, testKey, nil), http.StatusBadRequest)
	}
}

func TestBatchLifecycle(t *testing.T) {
	s, base := start(t, Config{NoAutoComplete: true})
	name := "night a/b"
	esc := url.PathEscape(name)
	if esc != "night%20a%2Fb" {
		t.Fatalf("escape %q", esc)
	}
	r := call(t, http.MethodPost, base+"/batches", testKey, map[string]any{"project": "demo", "name": name, "callback": "https://e.com/b", "metadata": map[string]any{"k": 1}})
	if r.status != 200 {
		t.Fatalf("create batch: %d %s", r.status, r.body)
	}
	obj := r.object(t)
	for _, k := range []string{"name", "project", "status", "callback", "created_at", "metadata"} {
		if _, ok := obj[k]; !ok {
			t.Errorf("batch lacks %q: %s", k, r.body)
		}
	}
	if obj["status"] != "staging" || obj["name"] != name {
		t.Fatalf("batch %s", r.body)
	}
	wantError(t, call(t, http.MethodPost, base+"/batches", testKey, map[string]any{"project": "demo", "name": name}), http.StatusConflict)
	wantError(t, call(t, http.MethodPost, base+"/batches", testKey, map[string]any{"project": "ghost", "name": "x"}), http.StatusBadRequest)
	wantError(t, call(t, http.MethodPost, base+"/batches", liveKey, map[string]any{"project": "demo"}), http.StatusBadRequest)

	var ids []string
	for i := range 3 {
		r := call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"batch": name, "unique_id": fmt.Sprint(i)}))
		if r.status != 200 || r.task(t).Batch != name {
			t.Fatalf("create in batch: %d %s", r.status, r.body)
		}
		ids = append(ids, r.task(t).ID)
	}
	wantError(t, call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"batch": "ghost"})), http.StatusBadRequest)
	wantError(t, call(t, http.MethodPost, base+"/task/imageannotation", liveKey, imageTask(map[string]any{"batch": name})), http.StatusBadRequest)

	got := call(t, http.MethodGet, base+"/batches/"+esc, testKey, nil)
	if got.status != 200 || got.object(t)["name"] != name {
		t.Fatalf("get batch by escaped name: %d %s", got.status, got.body)
	}
	wantError(t, call(t, http.MethodGet, base+"/batches/"+esc, liveKey, nil), http.StatusNotFound)

	status := func() batchStatus {
		var st batchStatus
		call(t, http.MethodGet, base+"/batches/"+esc+"/status", testKey, nil).decode(t, &st)
		return st
	}
	if st := status(); st != (batchStatus{"staging", 3, 0, 0, 0}) {
		t.Fatalf("status %+v", st)
	}
	if r := call(t, http.MethodPost, base+"/batches/"+esc+"/finalize", testKey, nil); r.status != 200 || r.object(t)["status"] != "in_progress" {
		t.Fatalf("finalize: %d %s", r.status, r.body)
	}
	if r := call(t, http.MethodPost, base+"/batches/"+esc+"/finalize", testKey, nil); r.status != 200 || r.object(t)["status"] != "in_progress" {
		t.Fatalf("second finalize (idempotent): %d %s", r.status, r.body)
	}
	wantError(t, call(t, http.MethodPost, base+"/batches/ghost/finalize", testKey, nil), http.StatusNotFound)
	msg := wantError(t, call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"batch": name, "unique_id": "late"})), http.StatusBadRequest)
	if !strings.Contains(msg, "staging") {
		t.Errorf("message %q", msg)
	}
	// The rejected create did not keep its unique_id.
	if r := call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"unique_id": "late"})); r.status != 200 {
		t.Fatalf("unique_id of a rejected create stayed reserved: %d", r.status)
	}
	s.Complete(refonte.ModeTest, ids[0])
	call(t, http.MethodPost, base+"/task/"+ids[1]+"/cancel", testKey, nil)
	if st := status(); st != (batchStatus{"in_progress", 1, 1, 0, 1}) {
		t.Fatalf("status %+v", st)
	}
	s.Complete(refonte.ModeTest, ids[2])
	if st := status(); st != (batchStatus{"completed", 0, 2, 0, 1}) {
		t.Fatalf("status %+v", st)
	}

	// Listing with offset pagination and both total keys.
	for i := range 4 {
		call(t, http.MethodPost, base+"/batches", testKey, map[string]any{"project": "demo", "name": fmt.Sprintf("b%d", i)})
	}
	r = call(t, http.MethodGet, base+"/batches?project=demo&limit=2&offset=2", testKey, nil)
	obj = r.object(t)
	for _, k := range []string{"docs", "totalDocs", "total", "limit", "offset", "has_more"} {
		if _, ok := obj[k]; !ok {
			t.Fatalf("batch list lacks %q: %s", k, r.body)
		}
	}
	var bl batchList
	r.decode(t, &bl)
	if bl.Total != 5 || bl.TotalDocs != 5 || len(bl.Docs) != 2 || !bl.HasMore || bl.Docs[0].Name != "b1" {
		t.Fatalf("batch list %+v", bl)
	}
	call(t, http.MethodGet, base+"/batches?status=completed", testKey, nil).decode(t, &bl)
	if bl.Total != 1 || bl.Docs[0].Name != name {
		t.Fatalf("completed batches %+v", bl)
	}
	wantError(t, call(t, http.MethodGet, base+"/batches?offset=-1", testKey, nil), http.StatusBadRequest)
}

func TestProjects(t *testing.T) {
	_, base := start(t, Config{NoAutoComplete: true, Projects: []string{"demo", "pre made"}})
	var list []map[string]any
	call(t, http.MethodGet, base+"/projects", liveKey, nil).decode(t, &list)
	if len(list) != 2 || list[1]["name"] != "pre made" || list[0]["type"] != "imageannotation" {
		t.Fatalf("pre-created projects %v", list)
	}
	r := call(t, http.MethodPost, base+"/projects", testKey, map[string]any{"type": "imageannotation", "name": "p/1",
		"params": map[string]any{"instruction": "default", "geometries": map[string]any{"box": map[string]any{"objects_to_annotate": []string{"car"}}}}})
	if r.status != 200 {
		t.Fatalf("create project: %d %s", r.status, r.body)
	}
	wantError(t, call(t, http.MethodPost, base+"/projects", testKey, map[string]any{"type": "imageannotation", "name": "p/1"}), http.StatusConflict)
	wantError(t, call(t, http.MethodPost, base+"/projects", testKey, map[string]any{"type": "bogus", "name": "q"}), http.StatusBadRequest)

	// The project's params are defaults: geometries come from it.
	r = call(t, http.MethodPost, base+"/task/imageannotation", testKey, map[string]any{"project": "p/1", "attachment": "https://e.com/a.jpg"})
	if r.status != 200 || r.task(t).Instruction != "default" || !strings.Contains(string(r.task(t).Params), "car") {
		t.Fatalf("create with defaults: %d %s", r.status, r.body)
	}
	// The task's own params override them.
	r = call(t, http.MethodPost, base+"/task/imageannotation", testKey, map[string]any{"project": "p/1", "attachment": "https://e.com/a.jpg", "instruction": "mine"})
	if r.task(t).Instruction != "mine" {
		t.Fatalf("override: %s", r.body)
	}
	esc := url.PathEscape("p/1")
	r = call(t, http.MethodPost, base+"/projects/"+esc+"/setParams", testKey, map[string]any{"instruction": "v2"})
	if r.status != 200 {
		t.Fatalf("setParams: %d %s", r.status, r.body)
	}
	var p project
	call(t, http.MethodGet, base+"/projects/"+esc, testKey, nil).decode(t, &p)
	if len(p.ParamHistory) != 2 || p.ParamHistory[1].Version != 1 || string(p.Params) != `{"instruction":"v2"}` {
		t.Fatalf("project after setParams %+v", p)
	}
	// Geometries are no longer a default.
	wantError(t, call(t, http.MethodPost, base+"/task/imageannotation", testKey, map[string]any{"project": "p/1", "attachment": "https://e.com/a.jpg"}), http.StatusBadRequest)
	wantError(t, call(t, http.MethodGet, base+"/projects/ghost", testKey, nil), http.StatusNotFound)
	wantError(t, call(t, http.MethodPost, base+"/projects/ghost/setParams", testKey, map[string]any{}), http.StatusNotFound)
}

func TestCompletionAndCallback(t *testing.T) {
	rc := newReceiver(t, 0)
	s, base := start(t, Config{CompleteAfter: 20 * time.Millisecond, CallbackAuthKey: "cb-secret"})
	r := call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{
		"callback_url": rc.srv.URL + "/cb", "metadata": map[string]any{"row": 7}, "unique_id": "c1"}))
	task := r.task(t)
	if task.Status != refonte.StatusPending {
		t.Fatalf("status %s right after create", task.Status)
	}
	waitFor(t, 5*time.Second, "callback", func() bool { return len(rc.received()) == 1 })
	cb := rc.received()[0]
	if cb.auth != "cb-secret" {
		t.Errorf("callback auth header %q", cb.auth)
	}
	if cb.body.TaskID != task.ID || cb.body.Status != refonte.StatusCompleted || cb.body.Task.Status != refonte.StatusCompleted {
		t.Errorf("callback body %+v", cb.body)
	}
	var resp struct {
		EchoMetadata map[string]any `json:"echo_metadata"`
		Synthetic    bool           `json:"synthetic"`
	}
	if err := json.Unmarshal(cb.body.Response, &resp); err != nil || resp.EchoMetadata["row"] != float64(7) || !resp.Synthetic {
		t.Errorf("response %s does not echo metadata", cb.body.Response)
	}
	waitFor(t, 5*time.Second, "callback_succeeded", func() bool {
		got, _ := s.Task(refonte.ModeTest, task.ID)
		return got.CallbackSucceeded != nil && *got.CallbackSucceeded
	})
	got, _ := s.Task(refonte.ModeTest, task.ID)
	if got.CompletedAt == nil || got.UpdatedAt.Before(got.CreatedAt) || string(got.Response) == "null" {
		t.Errorf("completed task %+v", got)
	}
	if st := s.Stats(); st.CallbacksOK != 1 || st.CallbacksFailed != 0 {
		t.Errorf("stats %+v", st)
	}
	// Completed tasks cannot be canceled.
	wantError(t, call(t, http.MethodPost, base+"/task/"+task.ID+"/cancel", testKey, nil), http.StatusBadRequest)
}

func TestCallbackRetry(t *testing.T) {
	rc := newReceiver(t, 2)
	s, base := start(t, Config{CompleteAfter: CompleteImmediately, CallbackBackoff: 5 * time.Millisecond})
	call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"callback_url": rc.srv.URL}))
	waitFor(t, 5*time.Second, "callback after retries", func() bool { return len(rc.received()) == 1 })
	if rc.attempts() != 3 {
		t.Fatalf("attempts %d, want 3", rc.attempts())
	}
	waitFor(t, time.Second, "stats", func() bool { return s.Stats().CallbacksOK == 1 })
	if st := s.Stats(); st.CallbackAttemptsFailed != 2 || st.CallbacksSent != 3 {
		t.Fatalf("stats %+v", st)
	}

	// A receiver that never answers 2xx: given up after CallbackRetries.
	never := newReceiver(t, 1<<30)
	s2, base2 := start(t, Config{CompleteAfter: CompleteImmediately, CallbackBackoff: time.Millisecond, CallbackRetries: 4})
	task := call(t, http.MethodPost, base2+"/task/imageannotation", testKey, imageTask(map[string]any{"callback_url": never.srv.URL})).task(t)
	waitFor(t, 5*time.Second, "callback abandoned", func() bool { return s2.Stats().CallbacksFailed == 1 })
	if never.attempts() != 4 {
		t.Fatalf("attempts %d, want 4", never.attempts())
	}
	got, _ := s2.Task(refonte.ModeTest, task.ID)
	if got.CallbackSucceeded == nil || *got.CallbackSucceeded {
		t.Fatalf("callback_succeeded %v, want false", got.CallbackSucceeded)
	}
}

func TestCallbackFaults(t *testing.T) {
	t.Run("drop", func(t *testing.T) {
		rc := newReceiver(t, 0)
		s, base := start(t, Config{CompleteAfter: CompleteImmediately, CallbackDropRate: 1})
		for range 5 {
			call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"callback_url": rc.srv.URL}))
		}
		waitFor(t, 5*time.Second, "completions", func() bool { return s.CountByStatus(refonte.ModeTest)[refonte.StatusCompleted] == 5 })
		if st := s.Stats(); st.CallbacksDropped != 5 || st.CallbacksSent != 0 || rc.attempts() != 0 {
			t.Fatalf("stats %+v, receiver %d", st, rc.attempts())
		}
	})
	t.Run("dup", func(t *testing.T) {
		rc := newReceiver(t, 0)
		s, base := start(t, Config{CompleteAfter: CompleteImmediately, CallbackDupRate: 1})
		task := call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"callback_url": rc.srv.URL})).task(t)
		waitFor(t, 5*time.Second, "duplicates", func() bool {
			st := s.Stats()
			return st.CallbacksDuplicated > 0 && st.CallbacksOK == st.CallbacksDuplicated+1
		})
		got := rc.received()
		if len(got) < 2 || len(got) > 3 {
			t.Fatalf("%d deliveries, want 2 or 3", len(got))
		}
		for _, cb := range got {
			if cb.body.TaskID != task.ID {
				t.Fatalf("delivery for %s", cb.body.TaskID)
			}
		}
	})
	t.Run("early", func(t *testing.T) {
		rc := newReceiver(t, 0)
		s, base := start(t, Config{CallbackEarlyRate: 1, CompleteAfter: time.Hour})
		r := call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"callback_url": rc.srv.URL}))
		answered := time.Now()
		if r.task(t).Status != refonte.StatusCompleted {
			t.Fatalf("early task status %s", r.task(t).Status)
		}
		got := rc.received() // no wait: it must already be there
		if len(got) != 1 || got[0].at.After(answered) || got[0].body.TaskID != r.task(t).ID {
			t.Fatalf("callback not delivered before the create answered: %+v", got)
		}
		if s.Stats().CallbacksEarly != 1 {
			t.Fatalf("stats %+v", s.Stats())
		}
	})
}

func TestErrorTaskClearsUniqueID(t *testing.T) {
	rc := newReceiver(t, 0)
	s, base := start(t, Config{CompleteAfter: CompleteImmediately})
	bad := "https://example.com/sandbox-error.jpg"
	a := call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"attachment": bad, "unique_id": "keep", "callback_url": rc.srv.URL})).task(t)
	call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"attachment": bad, "unique_id": "clear", "clear_unique_id_on_error": true}))
	waitFor(t, 5*time.Second, "error callback", func() bool { return len(rc.received()) == 1 })
	if cb := rc.received()[0]; cb.body.Status != refonte.StatusError || !strings.Contains(string(cb.body.Response), "error") {
		t.Fatalf("error callback %+v", cb.body)
	}
	got, _ := s.Task(refonte.ModeTest, a.ID)
	if got.Status != refonte.StatusError || got.UniqueID != "keep" {
		t.Fatalf("task %+v", got)
	}
	wantError(t, call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"unique_id": "keep"})), http.StatusConflict)
	if r := call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"unique_id": "clear"})); r.status != 200 {
		t.Fatalf("clear_unique_id_on_error did not release: %d %s", r.status, r.body)
	}
}

func TestRateLimit(t *testing.T) {
	s, base := start(t, Config{NoAutoComplete: true, RateLimit: 2})
	var limited reply
	ok := 0
	for range 6 {
		r := call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(nil))
		if r.status == 200 {
			ok++
		} else {
			limited = r
		}
	}
	if ok < 2 || ok > 3 {
		t.Fatalf("%d creates accepted at 2/s with burst 2", ok)
	}
	wantError(t, limited, http.StatusTooManyRequests)
	if secs, err := strconv.Atoi(limited.header.Get("Retry-After")); err != nil || secs < 1 {
		t.Fatalf("Retry-After %q", limited.header.Get("Retry-After"))
	}
	// Reads are not limited; the other key has its own bucket.
	if r := call(t, http.MethodGet, base+"/tasks", testKey, nil); r.status != 200 {
		t.Fatalf("list: %d", r.status)
	}
	if r := call(t, http.MethodPost, base+"/task/imageannotation", liveKey, imageTask(nil)); r.status != 200 {
		t.Fatalf("live key limited by the test key's bucket: %d", r.status)
	}
	st := s.Stats()
	if st.RateLimited != int64(6-ok) || st.MaxCreatesIn1s != int64(ok) || st.MaxCreatesIn1sByMode["live"] != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestLostResponseAndErrors(t *testing.T) {
	s, base := start(t, Config{NoAutoComplete: true, LostResponseRate: 1})
	wantError(t, call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"unique_id": "lost"})), http.StatusInternalServerError)
	var l listResponse
	call(t, http.MethodGet, base+"/tasks?unique_id=lost", testKey, nil).decode(t, &l)
	if l.Total != 1 || l.Docs[0].UniqueID != "lost" {
		t.Fatalf("lost task not created: %+v", l)
	}
	wantError(t, call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"unique_id": "lost"})), http.StatusConflict)

	s.SetFaults(Faults{ErrorRate: 1})
	for range 4 {
		r := call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"unique_id": "never"}))
		if r.status != 500 && r.status != 503 {
			t.Fatalf("error rate 1: status %d", r.status)
		}
	}
	if _, ok := s.TaskByUniqueID(refonte.ModeTest, "never"); ok {
		t.Fatal("error-rate create created a task")
	}
	st := s.Stats()
	if st.LostResponses != 1 || st.ErrorsInjected != 4 || st.TasksCreated != 1 || st.DuplicateUniqueID != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDownAndFaultsEndpoint(t *testing.T) {
	s, base := start(t, Config{NoAutoComplete: true})
	root := strings.TrimSuffix(base, "/v1")
	s.SetDown(true)
	wantError(t, call(t, http.MethodGet, base+"/projects", testKey, nil), http.StatusServiceUnavailable)
	wantError(t, call(t, http.MethodGet, base+"/projects", "", nil), http.StatusServiceUnavailable)
	s.SetDown(false)
	if r := call(t, http.MethodGet, base+"/projects", testKey, nil); r.status != 200 {
		t.Fatalf("up again: %d", r.status)
	}

	r := call(t, http.MethodPost, root+"/_sandbox/faults", "", map[string]any{"error_rate": 0.5, "latency": "1ms"})
	if r.status != 200 {
		t.Fatalf("faults: %d %s", r.status, r.body)
	}
	if f := s.Faults(); f.ErrorRate != 0.5 || f.Latency != time.Millisecond {
		t.Fatalf("faults %+v", f)
	}
	// A partial update keeps the other fields.
	call(t, http.MethodPost, root+"/_sandbox/faults", "", map[string]any{"rate_limit": 100})
	if f := s.Faults(); f.ErrorRate != 0.5 || f.RateLimit != 100 {
		t.Fatalf("faults %+v", f)
	}
	wantError(t, call(t, http.MethodPost, root+"/_sandbox/faults", "", map[string]any{"error_rate": 2}), http.StatusBadRequest)
	var f Faults
	call(t, http.MethodGet, root+"/_sandbox/faults", "", nil).decode(t, &f)
	if f.RateLimit != 100 || f.Latency != time.Millisecond {
		t.Fatalf("GET faults %+v", f)
	}

	call(t, http.MethodPost, root+"/_sandbox/faults", "", map[string]any{"error_rate": 0, "latency": 0, "down_for": "700ms"})
	wantError(t, call(t, http.MethodGet, base+"/projects", testKey, nil), http.StatusServiceUnavailable)
	waitFor(t, 5*time.Second, "API back up", func() bool {
		return call(t, http.MethodGet, base+"/projects", testKey, nil).status == 200
	})
	if s.Stats().DownRejected < 3 {
		t.Fatalf("stats %+v", s.Stats())
	}
}

func TestStatsEndpoint(t *testing.T) {
	_, base := start(t, Config{NoAutoComplete: true})
	call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(nil))
	for _, u := range []string{strings.TrimSuffix(base, "/v1") + "/_sandbox/stats", base + "/_sandbox/stats"} {
		r := call(t, http.MethodGet, u, "", nil)
		if r.status != 200 {
			t.Fatalf("%s: %d", u, r.status)
		}
		obj := r.object(t)
		for _, k := range []string{"create_calls", "tasks_created", "duplicate_unique_id", "unique_ids_created_twice",
			"rate_limited", "max_creates_in_1s", "callbacks_ok", "callbacks_failed", "callbacks_dropped",
			"callbacks_sent", "errors_injected", "lost_responses", "tasks_by_mode"} {
			if _, ok := obj[k]; !ok {
				t.Errorf("stats lack %q: %s", k, r.body)
			}
		}
		if obj["create_calls"] != float64(1) || obj["tasks_created"] != float64(1) || obj["max_creates_in_1s"] != float64(1) {
			t.Errorf("stats %s", r.body)
		}
	}
}

func TestMountedWithoutPrefix(t *testing.T) {
	s := New(Config{NoAutoComplete: true})
	mux := http.NewServeMux()
	mux.Handle("/v1/", http.StripPrefix("/v1", s))
	ts := httptest.NewServer(mux)
	t.Cleanup(func() { ts.Close(); s.Close() })
	call(t, http.MethodPost, ts.URL+"/v1/batches", testKey, map[string]any{"project": "demo", "name": "a%2Fb c"})
	r := call(t, http.MethodGet, ts.URL+"/v1/batches/"+url.PathEscape("a%2Fb c"), testKey, nil)
	if r.status != 200 || r.object(t)["name"] != "a%2Fb c" {
		t.Fatalf("mounted get: %d %s", r.status, r.body)
	}
}

func TestConfigRedactsKeys(t *testing.T) {
	cfg := Config{TestKey: "test_supersecret", LiveKey: "live_supersecret", CallbackAuthKey: "cbsupersecret"}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(format, cfg); strings.Contains(out, "supersecret") {
			t.Errorf("%s prints a key: %s", format, out)
		}
	}
}

func TestManyPendingTasksComplete(t *testing.T) {
	n := 5000
	if testing.Short() {
		n = 1000
	}
	if v, err := strconv.Atoi(os.Getenv("SANDBOX_PENDING_TASKS")); err == nil && v > 0 {
		n = v // e.g. 200000 to check the scheduler at scale
	}
	s := New(Config{CompleteAfter: 50 * time.Millisecond})
	t.Cleanup(s.Close)
	w := s.worlds[refonte.ModeTest]
	h := http.HandlerFunc(s.ServeHTTP)
	body, _ := json.Marshal(imageTask(nil))
	for range n {
		req := httptest.NewRequest(http.MethodPost, "/v1/task/imageannotation", strings.NewReader(string(body)))
		req.SetBasicAuth(testKey, "")
		rec := httptest.NewRecorder()
		h(rec, req)
		if rec.Code != 200 {
			t.Fatalf("create: %d %s", rec.Code, rec.Body)
		}
	}
	waitFor(t, 30*time.Second, "all tasks completed", func() bool {
		return w.status[statusIndex(refonte.StatusCompleted)].Load() == int64(n)
	})
}

func TestDisabledType(t *testing.T) {
	_, base := start(t, Config{NoAutoComplete: true, DisabledTypes: []refonte.TaskType{refonte.TypeLidarAnnotation}})
	wantError(t, call(t, http.MethodPost, base+"/task/lidarannotation", testKey, map[string]any{"attachment": "https://e.com/a"}), http.StatusPaymentRequired)
}

// TestConcurrentMutations races creates, completions, cancels, unique_id
// changes and lists; run with -race.
func TestConcurrentMutations(t *testing.T) {
	rc := newReceiver(t, 0)
	s, base := start(t, Config{CompleteAfter: 5 * time.Millisecond, CallbackDupRate: 0.3, CallbackBackoff: time.Millisecond})
	call(t, http.MethodPost, base+"/batches", testKey, map[string]any{"project": "demo", "name": "b"})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 15 {
				uid := fmt.Sprintf("g%d-%d", g, i)
				r := call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"unique_id": uid, "batch": "b", "callback_url": rc.srv.URL}))
				if r.status != 200 {
					t.Errorf("create: %d %s", r.status, r.body)
					return
				}
				id := r.task(t).ID
				switch i % 3 {
				case 0:
					call(t, http.MethodPost, base+"/task/"+id+"/cancel?clear_unique_id=true", testKey, nil)
				case 1:
					call(t, http.MethodPost, base+"/task/"+id+"/unique_id", testKey, map[string]any{"unique_id": uid + "-new"})
				}
				call(t, http.MethodGet, base+"/tasks?batch=b&limit=5", testKey, nil)
				call(t, http.MethodGet, base+"/tasks?unique_id="+uid, testKey, nil)
			}
		})
	}
	wg.Wait()
	call(t, http.MethodPost, base+"/batches/b/finalize", testKey, nil)
	waitFor(t, 10*time.Second, "batch completed", func() bool {
		var st batchStatus
		call(t, http.MethodGet, base+"/batches/b/status", testKey, nil).decode(t, &st)
		return st.Status == "completed" && st.Completed+st.Canceled == 120
	})
	counts := s.CountByStatus(refonte.ModeTest)
	if counts[refonte.StatusCompleted]+counts[refonte.StatusCanceled] != 120 || s.Stats().UniqueIDsCreatedTwice != 0 {
		t.Fatalf("counts %v stats %+v", counts, s.Stats())
	}
}

func TestHoldUntilFinalize(t *testing.T) {
	s, base := start(t, Config{CompleteAfter: CompleteImmediately, HoldUntilFinalize: true})
	call(t, http.MethodPost, base+"/batches", testKey, map[string]any{"project": "demo", "name": "held"})
	a := call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(map[string]any{"batch": "held"})).task(t)
	free := call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(nil)).task(t)
	if free.Status != refonte.StatusCompleted || a.Status != refonte.StatusPending {
		t.Fatalf("statuses: unbatched %s, held %s", free.Status, a.Status)
	}
	call(t, http.MethodPost, base+"/batches/held/finalize", testKey, nil)
	got, _ := s.Task(refonte.ModeTest, a.ID)
	if got.Status != refonte.StatusCompleted {
		t.Fatalf("held task after finalize: %s", got.Status)
	}
	var st batchStatus
	call(t, http.MethodGet, base+"/batches/held/status", testKey, nil).decode(t, &st)
	if st != (batchStatus{"completed", 0, 1, 0, 0}) {
		t.Fatalf("batch status %+v", st)
	}
}

// TestSetKey: a rotated key revokes the old one (401) and serves the same
// tasks; POST /_sandbox/keys does it over HTTP and refuses a key of the
// wrong mode.
func TestSetKey(t *testing.T) {
	s, base := start(t, Config{NoAutoComplete: true})
	if r := call(t, http.MethodPost, base+"/task/imageannotation", testKey, imageTask(nil)); r.status != 200 {
		t.Fatalf("create: %d", r.status)
	}
	if err := s.SetKey(refonte.ModeTest, "test_rotated"); err != nil {
		t.Fatal(err)
	}
	wantError(t, call(t, http.MethodGet, base+"/tasks", testKey, nil), http.StatusUnauthorized)
	var l listResponse
	call(t, http.MethodGet, base+"/tasks", "test_rotated", nil).decode(t, &l)
	if l.Total != 1 {
		t.Fatalf("the rotated key sees %d tasks, want 1", l.Total)
	}
	if r := call(t, http.MethodGet, base+"/tasks", liveKey, nil); r.status != 200 {
		t.Fatalf("the live key after a test rotation: %d", r.status)
	}
	root := strings.TrimSuffix(base, "/v1")
	for _, tc := range []struct {
		body string
		want int
	}{
		{`{"test_key":"` + testKey + `"}`, http.StatusNoContent},
		{`{"test_key":"live_wrong_mode"}`, http.StatusBadRequest},
		{`{"live_key":`, http.StatusBadRequest},
	} {
		resp, err := http.Post(root+"/_sandbox/keys", "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("POST /_sandbox/keys %s: %d, want %d", tc.body, resp.StatusCode, tc.want)
		}
	}
	if r := call(t, http.MethodGet, base+"/tasks", testKey, nil); r.status != 200 {
		t.Fatalf("the restored key: %d", r.status)
	}
	wantError(t, call(t, http.MethodGet, base+"/tasks", "test_rotated", nil), http.StatusUnauthorized)
}
