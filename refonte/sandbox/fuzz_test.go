package sandbox

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzAPI sends arbitrary paths, queries and bodies to the API: the
// sandbox must never panic, and every answer must be JSON, an error in the
// reference's shape when it is not a 200.
func FuzzAPI(f *testing.F) {
	f.Add("POST", "/v1/task/imageannotation", "", `{"project":"demo","attachment":"https://e.com/a","geometries":{"box":{"objects_to_annotate":["x"]}},"tags":["a"],"metadata":{"n":1e400}}`)
	f.Add("POST", "/v1/task/categorization", "", `{"attachment":"https://e.com/a","taxonomies":{"x":1},"unique_id":"u","batch":"b"}`)
	f.Add("GET", "/v1/tasks", "limit=5&tags=a,b&start_time=2026-01-01T00:00:00Z&next_token=eyJiIjozLCJvIjoyfQ", "")
	f.Add("POST", "/v1/batches", "", `{"project":"demo","name":"a/b","metadata":[1]}`)
	f.Add("POST", "/v1/projects/demo/setParams", "", `{"params":null}`)
	f.Add("POST", "/v1/task/x%2F/unique_id", "", `{"unique_id":7}`)
	f.Add("GET", "/v1/batches", "offset=99999999999999999999", "")
	s := New(Config{CompleteAfter: CompleteImmediately})
	f.Cleanup(s.Close)
	f.Fuzz(func(t *testing.T, method, path, query, body string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t?#") || strings.ContainsAny(query, " \r\n\t#") {
			return
		}
		switch method {
		case http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodPut:
		default:
			return
		}
		target := path
		if query != "" {
			target += "?" + query
		}
		var req *http.Request
		func() {
			defer func() {
				if recover() != nil {
					req = nil // httptest.NewRequest panics on targets net/http would reject
				}
			}()
			req = httptest.NewRequest(method, target, strings.NewReader(body))
		}()
		if req == nil {
			return
		}
		req.SetBasicAuth(DefaultTestKey, "")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %s: answer %d is not JSON: %q", method, target, rec.Code, rec.Body.String())
		}
		if rec.Code != http.StatusOK {
			var e apiError
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.StatusCode != rec.Code || e.Error == "" {
				t.Fatalf("%s %s: error answer %d %q", method, target, rec.Code, rec.Body.String())
			}
		}
	})
}
