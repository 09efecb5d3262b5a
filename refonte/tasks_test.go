package refonte

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const taskJSON = `{"task_id":"t-1","type":"imageannotation","status":"pending","created_at":"2026-11-26T20:08:31.573Z",
"updated_at":"2026-11-26T20:08:31.573Z","completed_at":null,"project":"demo","batch":"b1","callback_url":"https://cb.example/x",
"callback_succeeded":null,"params":{"attachment":"https://e/1.jpg"},"metadata":{"source_row":17},"unique_id":"u-1",
"tags":["a"],"is_test":true,"response":null}`

func TestTasksWire(t *testing.T) {
	var cases []wireCase
	for _, typ := range TaskTypes() {
		cases = append(cases, wireCase{
			name: "create " + string(typ), method: "POST", path: "/v1/task/" + string(typ), reply: taskJSON,
			body: `{"project":"demo","attachment":"https://e/1.jpg","unique_id":"u-1","metadata":{"source_row":17},"tags":["a","b"]}`,
			call: func(t *testing.T, c *Client) {
				task, err := c.CreateTask(t.Context(), typ, TaskParams{"project": "demo", "attachment": "https://e/1.jpg",
					"unique_id": "u-1", "metadata": map[string]any{"source_row": 17}, "tags": []string{"a", "b"}})
				must(t, err)
				if task.ID != "t-1" || task.Status != StatusPending || task.UniqueID != "u-1" || string(task.Metadata) != `{"source_row":17}` {
					t.Errorf("decoded task %+v", task)
				}
			},
		})
	}
	cases = append(cases,
		wireCase{name: "get escaped", method: "GET", path: "/v1/task/a%20b%2Fc", reply: taskJSON,
			call: func(t *testing.T, c *Client) {
				task, err := c.GetTask(t.Context(), "a b/c")
				must(t, err)
				if task.ID != "t-1" || task.CompletedAt != nil || task.CallbackSucceeded != nil || !task.IsTest {
					t.Errorf("decoded %+v", task)
				}
			}},
		wireCase{name: "list all filters", method: "GET", path: "/v1/tasks",
			query: url.Values{"project": {"p 1"}, "batch": {"b&1"}, "status": {"completed"}, "type": {"categorization"},
				"unique_id": {"u=1"}, "tags": {"x,y"}, "start_time": {"2026-11-01T00:00:00Z"}, "end_time": {"2026-11-02T00:00:00Z"},
				"completed_after": {"2026-11-03T00:00:00Z"}, "completed_before": {"2026-11-04T00:00:00Z"},
				"updated_after": {"2026-11-05T00:00:00Z"}, "updated_before": {"2026-11-06T00:00:00.5Z"},
				"limit": {"50"}, "next_token": {"tok/+="}}.Encode(),
			reply: `{"docs":[` + taskJSON + `],"total":1,"limit":50,"offset":0,"has_more":false,"next_token":null}`,
			call: func(t *testing.T, c *Client) {
				day := func(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }
				p, err := c.ListTasks(t.Context(), ListTasksOptions{Project: "p 1", Batch: "b&1", Status: StatusCompleted,
					Type: TypeCategorization, UniqueID: "u=1", Tags: []string{"x", "y"}, StartTime: day(1), EndTime: day(2),
					CompletedAfter: day(3), CompletedBefore: day(4), UpdatedAfter: day(5),
					UpdatedBefore: day(6).Add(500 * time.Millisecond).In(time.FixedZone("X", 3600)), Limit: 50, NextToken: "tok/+="})
				must(t, err)
				if len(p.Docs) != 1 || p.Total != 1 || p.Limit != 50 || p.HasMore || p.NextToken != "" {
					t.Errorf("decoded page %+v", p)
				}
			}},
		wireCase{name: "list no filters", method: "GET", path: "/v1/tasks",
			reply: `{"docs":[],"total":0,"limit":100,"offset":0,"has_more":false,"next_token":null}`,
			call: func(t *testing.T, c *Client) {
				_, err := c.ListTasks(t.Context(), ListTasksOptions{})
				must(t, err)
			}},
		wireCase{name: "find by unique_id", method: "GET", path: "/v1/tasks", query: "unique_id=u-1",
			reply: `{"docs":[` + taskJSON + `],"total":1,"limit":100,"offset":0,"has_more":false,"next_token":null}`,
			call: func(t *testing.T, c *Client) {
				task, err := c.FindTaskByUniqueID(t.Context(), "u-1")
				must(t, err)
				if task.ID != "t-1" {
					t.Errorf("found %+v", task)
				}
			}},
		wireCase{name: "cancel", method: "POST", path: "/v1/task/t%2F1/cancel", reply: taskJSON,
			call: func(t *testing.T, c *Client) { _, err := c.CancelTask(t.Context(), "t/1", false); must(t, err) }},
		wireCase{name: "cancel clear unique_id", method: "POST", path: "/v1/task/t1/cancel", query: "clear_unique_id=true", reply: taskJSON,
			call: func(t *testing.T, c *Client) { _, err := c.CancelTask(t.Context(), "t1", true); must(t, err) }},
		wireCase{name: "set metadata", method: "POST", path: "/v1/task/t1/setMetadata", reply: taskJSON,
			body: `{"k":"v","n":2}`,
			call: func(t *testing.T, c *Client) {
				_, err := c.SetTaskMetadata(t.Context(), "t1", map[string]any{"k": "v", "n": 2})
				must(t, err)
			}},
		wireCase{name: "set unique_id", method: "POST", path: "/v1/task/t1/unique_id", reply: taskJSON,
			body: `{"unique_id":"new id"}`,
			call: func(t *testing.T, c *Client) { _, err := c.SetTaskUniqueID(t.Context(), "t1", "new id"); must(t, err) }},
		wireCase{name: "clear unique_id", method: "DELETE", path: "/v1/task/t1/unique_id", reply: taskJSON,
			call: func(t *testing.T, c *Client) { _, err := c.ClearTaskUniqueID(t.Context(), "t1"); must(t, err) }},
	)
	runWireCases(t, cases)
}

func TestFindTaskByUniqueIDNotFound(t *testing.T) {
	_, c := newRecorder(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		writeJSON(w, 200, `{"docs":[],"total":0,"limit":100,"offset":0,"has_more":false,"next_token":null}`)
	})
	_, err := c.FindTaskByUniqueID(t.Context(), "u-9")
	var ae *Error
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &ae) || ae.StatusCode != 404 {
		t.Fatalf("error %v, want a 404 *Error", err)
	}
	if Retryable(err) {
		t.Error("a missing task is not retryable")
	}
}

// TestAllTasksPagination follows next_token across three pages.
func TestAllTasksPagination(t *testing.T) {
	pages := map[string]string{
		"":   `{"docs":[{"task_id":"1"},{"task_id":"2"}],"total":5,"limit":2,"offset":0,"has_more":true,"next_token":"p2"}`,
		"p2": `{"docs":[{"task_id":"3"},{"task_id":"4"}],"total":5,"limit":2,"offset":2,"has_more":true,"next_token":"p3"}`,
		"p3": `{"docs":[{"task_id":"5"}],"total":5,"limit":2,"offset":4,"has_more":false,"next_token":null}`,
	}
	rec, c := newRecorder(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		body, ok := pages[r.URL.Query().Get("next_token")]
		if !ok || r.URL.Query().Get("project") != "demo" || r.URL.Query().Get("limit") != "2" {
			apiError(w, 400, "bad query "+r.URL.RawQuery)
			return
		}
		writeJSON(w, 200, body)
	})
	var ids []string
	for task, err := range c.AllTasks(t.Context(), ListTasksOptions{Project: "demo", Limit: 2}) {
		must(t, err)
		ids = append(ids, task.ID)
	}
	if got := strings.Join(ids, ","); got != "1,2,3,4,5" {
		t.Errorf("iterated %s, want 1,2,3,4,5", got)
	}
	if n := len(rec.requests()); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}

	// Breaking out stops fetching.
	before := len(rec.requests())
	for task, err := range c.AllTasks(t.Context(), ListTasksOptions{Project: "demo", Limit: 2}) {
		must(t, err)
		if task.ID == "2" {
			break
		}
	}
	if n := len(rec.requests()) - before; n != 1 {
		t.Errorf("breaking on the first page made %d requests, want 1", n)
	}
}

func TestAllTasksError(t *testing.T) {
	_, c := newRecorder(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		if r.URL.Query().Get("next_token") == "" {
			writeJSON(w, 200, `{"docs":[{"task_id":"1"}],"total":2,"limit":1,"offset":0,"has_more":true,"next_token":"p2"}`)
			return
		}
		apiError(w, 401, "bad key")
	})
	var ids []string
	var errs []error
	for task, err := range c.AllTasks(t.Context(), ListTasksOptions{}) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ids = append(ids, task.ID)
	}
	if len(ids) != 1 || len(errs) != 1 || !errors.Is(errs[0], ErrUnauthorized) {
		t.Errorf("ids %v errors %v, want [1] and one ErrUnauthorized", ids, errs)
	}
}

// TestAllTasksRepeatedToken stops on a next_token already followed.
func TestAllTasksRepeatedToken(t *testing.T) {
	rec, c := newRecorder(t, func(w http.ResponseWriter, _ *http.Request, n int) {
		writeJSON(w, 200, fmt.Sprintf(`{"docs":[{"task_id":"%d"}],"total":9,"limit":1,"offset":0,"has_more":true,"next_token":"same"}`, n))
	})
	count := 0
	for _, err := range c.AllTasks(t.Context(), ListTasksOptions{}) {
		must(t, err)
		count++
	}
	if count != 2 || len(rec.requests()) != 2 {
		t.Errorf("%d tasks in %d requests, want 2 and 2", count, len(rec.requests()))
	}
}

// BenchmarkCreateTask measures the client's own cost of a task create
// (encoding, HTTP/1.1 keep-alive round trip to a loopback httptest server,
// decoding) with parallel callers. The server answers a canned task.
//
//	go test -run XXX -bench CreateTask -benchmem ./refonte/
func BenchmarkCreateTask(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(taskJSON))
	}))
	b.Cleanup(srv.Close)
	c, err := NewClient(testKey, WithBaseURL(srv.URL+"/v1"))
	if err != nil {
		b.Fatal(err)
	}
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			_, err := c.CreateTask(b.Context(), TypeImageAnnotation, TaskParams{
				"project":    "demo",
				"attachment": fmt.Sprintf("https://cdn.example.com/img/%d.jpg", n),
				"geometries": map[string]any{"box": map[string]any{"objects_to_annotate": []string{"car"}}},
				"metadata":   map[string]any{"source_row": n},
				"unique_id":  fmt.Sprintf("bench:%d", n),
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}
