package refonte

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// CreateTask creates a task of type typ with params as the JSON body
// (POST /task/{type}); the API answers 200 with the task.
//
// The create is retried on transient errors only when params carry a
// non-empty unique_id, which makes it idempotent. When a retried attempt
// gets 409 (the platform answered 500 although it created the task), the
// task holding the unique_id is fetched with GET /tasks?unique_id= and
// returned as a success. A 409 on the first attempt is returned as an
// error matching ErrConflict: the caller decides.
func (c *Client) CreateTask(ctx context.Context, typ TaskType, params TaskParams) (*Task, error) {
	if typ == "" {
		return nil, fmt.Errorf("refonte: create task: %w: empty task type", ErrInvalid)
	}
	if params == nil {
		params = TaskParams{}
	}
	uid := params.String(ParamUniqueID)
	var t Task
	attempts, err := c.do(ctx, request{method: http.MethodPost, path: escapePath("task", string(typ)),
		body: params, retry: uid != ""}, &t)
	if err != nil {
		if attempts >= 2 && uid != "" && errors.Is(err, ErrConflict) {
			existing, ferr := c.FindTaskByUniqueID(ctx, uid)
			if ferr != nil {
				return nil, fmt.Errorf("%w (resolving the 409 of a retried create: %w)", err, ferr)
			}
			return existing, nil
		}
		return nil, err
	}
	return &t, nil
}

// GetTask returns a task (GET /task/{id}); an absent task is an error
// matching ErrNotFound.
func (c *Client) GetTask(ctx context.Context, taskID string) (*Task, error) {
	var t Task
	if _, err := c.do(ctx, request{method: http.MethodGet, path: escapePath("task", taskID), retry: true}, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// ListTasksOptions are the filters and pagination of ListTasks. Zero
// fields are not sent.
type ListTasksOptions struct {
	Project, Batch string
	Status         TaskStatus
	Type           TaskType
	UniqueID       string
	// Tags keeps tasks having any of these tags.
	Tags []string
	// StartTime and EndTime bound the creation time.
	StartTime, EndTime              time.Time
	CompletedAfter, CompletedBefore time.Time
	UpdatedAfter, UpdatedBefore     time.Time
	// Limit is the page size, 1–100 (0: the API's default).
	Limit int
	// NextToken resumes after a previous page (TaskPage.NextToken).
	NextToken string
}

// query returns the URL query of the options.
func (o ListTasksOptions) query() url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("project", o.Project)
	set("batch", o.Batch)
	set("status", string(o.Status))
	set("type", string(o.Type))
	set("unique_id", o.UniqueID)
	if len(o.Tags) > 0 {
		q.Set("tags", strings.Join(o.Tags, ","))
	}
	for _, tp := range []struct {
		k string
		t time.Time
	}{{"start_time", o.StartTime}, {"end_time", o.EndTime},
		{"completed_after", o.CompletedAfter}, {"completed_before", o.CompletedBefore},
		{"updated_after", o.UpdatedAfter}, {"updated_before", o.UpdatedBefore}} {
		if !tp.t.IsZero() {
			q.Set(tp.k, tp.t.UTC().Format(time.RFC3339Nano))
		}
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	set("next_token", o.NextToken)
	return q
}

// TaskPage is one page of GET /tasks. NextToken is empty on the last page
// (the API sends null).
type TaskPage struct {
	Docs      []*Task `json:"docs"`
	Total     int     `json:"total"`
	Limit     int     `json:"limit"`
	Offset    int     `json:"offset"`
	HasMore   bool    `json:"has_more"`
	NextToken string  `json:"next_token"`
}

// ListTasks returns one page of tasks, newest first (GET /tasks).
func (c *Client) ListTasks(ctx context.Context, opts ListTasksOptions) (*TaskPage, error) {
	var p TaskPage
	if _, err := c.do(ctx, request{method: http.MethodGet, path: "/tasks", query: opts.query(), retry: true}, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// AllTasks iterates over every task matching opts, following next_token
// from page to page. An error is yielded once, with a nil task, and ends
// the iteration; breaking out of the loop stops fetching.
func (c *Client) AllTasks(ctx context.Context, opts ListTasksOptions) iter.Seq2[*Task, error] {
	return func(yield func(*Task, error) bool) {
		seen := map[string]bool{}
		for {
			page, err := c.ListTasks(ctx, opts)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, t := range page.Docs {
				if !yield(t, nil) {
					return
				}
			}
			next := page.NextToken
			if next == "" || seen[next] || len(page.Docs) == 0 {
				return
			}
			seen[next] = true
			opts.NextToken = next
		}
	}
}

// FindTaskByUniqueID returns the task holding uniqueID in this mode
// (GET /tasks?unique_id=). When none does, the error is an *Error with
// status 404 matching ErrNotFound.
func (c *Client) FindTaskByUniqueID(ctx context.Context, uniqueID string) (*Task, error) {
	if uniqueID == "" {
		return nil, fmt.Errorf("refonte: find task: %w: empty unique_id", ErrInvalid)
	}
	page, err := c.ListTasks(ctx, ListTasksOptions{UniqueID: uniqueID})
	if err != nil {
		return nil, err
	}
	for _, t := range page.Docs {
		if t != nil && t.UniqueID == uniqueID {
			return t, nil
		}
	}
	return nil, &Error{StatusCode: http.StatusNotFound, Method: http.MethodGet, Path: "/tasks",
		Message: fmt.Sprintf("no task holds unique_id %q", uniqueID)}
}

// CancelTask cancels a pending task (POST /task/{id}/cancel); with
// clearUniqueID the task's unique_id is released for reuse. Canceling a
// completed or canceled task is an error matching ErrInvalid.
func (c *Client) CancelTask(ctx context.Context, taskID string, clearUniqueID bool) (*Task, error) {
	var q url.Values
	if clearUniqueID {
		q = url.Values{"clear_unique_id": {"true"}}
	}
	return c.taskCall(ctx, http.MethodPost, escapePath("task", taskID, "cancel"), q, nil)
}

// SetTaskMetadata replaces a task's metadata (POST /task/{id}/setMetadata).
func (c *Client) SetTaskMetadata(ctx context.Context, taskID string, metadata map[string]any) (*Task, error) {
	if metadata == nil {
		metadata = map[string]any{}
	}
	return c.taskCall(ctx, http.MethodPost, escapePath("task", taskID, "setMetadata"), nil, metadata)
}

// SetTaskUniqueID changes a task's unique_id (POST /task/{id}/unique_id);
// a unique_id held by another task is an error matching ErrConflict.
func (c *Client) SetTaskUniqueID(ctx context.Context, taskID, uniqueID string) (*Task, error) {
	return c.taskCall(ctx, http.MethodPost, escapePath("task", taskID, "unique_id"), nil,
		map[string]string{"unique_id": uniqueID})
}

// ClearTaskUniqueID releases a task's unique_id (DELETE /task/{id}/unique_id).
func (c *Client) ClearTaskUniqueID(ctx context.Context, taskID string) (*Task, error) {
	return c.taskCall(ctx, http.MethodDelete, escapePath("task", taskID, "unique_id"), nil, nil)
}

// taskCall performs an idempotent call answering a task.
func (c *Client) taskCall(ctx context.Context, method, path string, q url.Values, body any) (*Task, error) {
	var t Task
	if _, err := c.do(ctx, request{method: method, path: path, query: q, body: body, retry: true}, &t); err != nil {
		return nil, err
	}
	return &t, nil
}
