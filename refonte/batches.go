package refonte

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	json "github.com/goccy/go-json"
)

// BatchState is the state of a batch.
type BatchState string

// Batch states: tasks are added while staging; finalize starts the work.
const (
	BatchStaging    BatchState = "staging"
	BatchInProgress BatchState = "in_progress"
	BatchCompleted  BatchState = "completed"
)

// Batch is a batch object of the API.
type Batch struct {
	Name      string          `json:"name"`
	Project   string          `json:"project"`
	Status    BatchState      `json:"status"`
	Callback  string          `json:"callback,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
}

// CreateBatchRequest is the body of POST /batches.
type CreateBatchRequest struct {
	Project  string         `json:"project"`
	Name     string         `json:"name"`
	Callback string         `json:"callback,omitempty"`
	Metadata map[string]any `json:"metadata,omitempty"`
}

// BatchStatus is the answer of GET /batches/{name}/status; counts the API
// omits are zero.
type BatchStatus struct {
	Status    BatchState `json:"status"`
	Pending   int        `json:"pending"`
	Completed int        `json:"completed"`
	Error     int        `json:"error"`
	Canceled  int        `json:"canceled"`
}

// ListBatchesOptions are the filters and offset pagination of ListBatches.
// Zero fields are not sent.
type ListBatchesOptions struct {
	Project string
	Status  BatchState
	Limit   int
	Offset  int
}

// BatchPage is one page of GET /batches.
type BatchPage struct {
	Docs    []*Batch `json:"docs"`
	Total   int      `json:"total"`
	Limit   int      `json:"limit"`
	Offset  int      `json:"offset"`
	HasMore bool     `json:"has_more"`
}

// UnmarshalJSON reads the total from "total" or, as some SDKs expect,
// "totalDocs".
func (p *BatchPage) UnmarshalJSON(b []byte) error {
	type plain BatchPage
	var w struct {
		plain
		Total     *int `json:"total"`
		TotalDocs *int `json:"totalDocs"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*p = BatchPage(w.plain)
	switch {
	case w.Total != nil:
		p.Total = *w.Total
	case w.TotalDocs != nil:
		p.Total = *w.TotalDocs
	}
	return nil
}

// CreateBatch creates a batch in the staging state (POST /batches); an
// existing name is an error matching ErrConflict. It is not retried.
func (c *Client) CreateBatch(ctx context.Context, req CreateBatchRequest) (*Batch, error) {
	var b Batch
	if _, err := c.do(ctx, request{method: http.MethodPost, path: "/batches", body: req}, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// FinalizeBatch starts the work on a staging batch (POST
// /batches/{name}/finalize).
func (c *Client) FinalizeBatch(ctx context.Context, name string) (*Batch, error) {
	var b Batch
	if _, err := c.do(ctx, request{method: http.MethodPost, path: escapePath("batches", name, "finalize"), retry: true}, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// GetBatchStatus returns a batch's state and task counts (GET
// /batches/{name}/status).
func (c *Client) GetBatchStatus(ctx context.Context, name string) (*BatchStatus, error) {
	var s BatchStatus
	if _, err := c.do(ctx, request{method: http.MethodGet, path: escapePath("batches", name, "status"), retry: true}, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// GetBatch returns a batch (GET /batches/{name}).
func (c *Client) GetBatch(ctx context.Context, name string) (*Batch, error) {
	var b Batch
	if _, err := c.do(ctx, request{method: http.MethodGet, path: escapePath("batches", name), retry: true}, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// ListBatches returns one page of batches (GET /batches).
func (c *Client) ListBatches(ctx context.Context, opts ListBatchesOptions) (*BatchPage, error) {
	q := url.Values{}
	if opts.Project != "" {
		q.Set("project", opts.Project)
	}
	if opts.Status != "" {
		q.Set("status", string(opts.Status))
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.Offset > 0 {
		q.Set("offset", strconv.Itoa(opts.Offset))
	}
	var p BatchPage
	if _, err := c.do(ctx, request{method: http.MethodGet, path: "/batches", query: q, retry: true}, &p); err != nil {
		return nil, err
	}
	return &p, nil
}
