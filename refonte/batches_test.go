package refonte

import (
	"testing"
	"time"
)

const batchJSON = `{"name":"a b/c","project":"demo","status":"staging","callback":"https://cb.example/b",
"created_at":"2026-11-26T20:08:31Z","metadata":{"k":1}}`

func TestBatchesWire(t *testing.T) {
	runWireCases(t, []wireCase{
		{name: "create", method: "POST", path: "/v1/batches", reply: batchJSON,
			body: `{"project":"demo","name":"a b/c","callback":"https://cb.example/b","metadata":{"k":1}}`,
			call: func(t *testing.T, c *Client) {
				b, err := c.CreateBatch(t.Context(), CreateBatchRequest{Project: "demo", Name: "a b/c",
					Callback: "https://cb.example/b", Metadata: map[string]any{"k": 1}})
				must(t, err)
				want := time.Date(2026, 11, 26, 20, 8, 31, 0, time.UTC)
				if b.Name != "a b/c" || b.Status != BatchStaging || !b.CreatedAt.Equal(want) || string(b.Metadata) != `{"k":1}` {
					t.Errorf("decoded %+v", b)
				}
			}},
		{name: "create minimal", method: "POST", path: "/v1/batches", reply: batchJSON,
			body: `{"project":"demo","name":"n"}`,
			call: func(t *testing.T, c *Client) {
				_, err := c.CreateBatch(t.Context(), CreateBatchRequest{Project: "demo", Name: "n"})
				must(t, err)
			}},
		{name: "finalize", method: "POST", path: "/v1/batches/a%20b%2Fc/finalize",
			reply: `{"name":"a b/c","project":"demo","status":"in_progress"}`,
			call: func(t *testing.T, c *Client) {
				b, err := c.FinalizeBatch(t.Context(), "a b/c")
				must(t, err)
				if b.Status != BatchInProgress {
					t.Errorf("status %q", b.Status)
				}
			}},
		{name: "status with omitted counts", method: "GET", path: "/v1/batches/a%20b%2Fc/status",
			reply: `{"status":"in_progress","pending":3,"completed":2}`,
			call: func(t *testing.T, c *Client) {
				s, err := c.GetBatchStatus(t.Context(), "a b/c")
				must(t, err)
				if *s != (BatchStatus{Status: BatchInProgress, Pending: 3, Completed: 2}) {
					t.Errorf("decoded %+v", s)
				}
			}},
		{name: "get", method: "GET", path: "/v1/batches/a%20b%2Fc", reply: batchJSON,
			call: func(t *testing.T, c *Client) {
				b, err := c.GetBatch(t.Context(), "a b/c")
				must(t, err)
				if b.Project != "demo" || b.Callback != "https://cb.example/b" {
					t.Errorf("decoded %+v", b)
				}
			}},
		{name: "list with totalDocs only", method: "GET", path: "/v1/batches",
			query: "limit=10&offset=20&project=my+proj&status=completed",
			reply: `{"docs":[` + batchJSON + `],"totalDocs":21,"limit":10,"offset":20,"has_more":false}`,
			call: func(t *testing.T, c *Client) {
				p, err := c.ListBatches(t.Context(), ListBatchesOptions{Project: "my proj", Status: BatchCompleted, Limit: 10, Offset: 20})
				must(t, err)
				if len(p.Docs) != 1 || p.Total != 21 || p.Limit != 10 || p.Offset != 20 || p.HasMore {
					t.Errorf("decoded %+v", p)
				}
			}},
		{name: "list with total", method: "GET", path: "/v1/batches",
			reply: `{"docs":[],"total":7,"totalDocs":7,"limit":100,"offset":0,"has_more":true}`,
			call: func(t *testing.T, c *Client) {
				p, err := c.ListBatches(t.Context(), ListBatchesOptions{})
				must(t, err)
				if p.Total != 7 || !p.HasMore {
					t.Errorf("decoded %+v", p)
				}
			}},
	})
}
