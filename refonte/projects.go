package refonte

import (
	"context"
	"net/http"
	"time"
)

// Project is a project object of the API. Its params are the defaults of
// its tasks; ParamHistory holds every version, the last being current.
type Project struct {
	Name         string           `json:"name"`
	Type         TaskType         `json:"type"`
	Params       map[string]any   `json:"params"`
	ParamHistory []map[string]any `json:"param_history"`
	CreatedAt    time.Time        `json:"created_at"`
}

// CreateProjectRequest is the body of POST /projects.
type CreateProjectRequest struct {
	Type   TaskType       `json:"type"`
	Name   string         `json:"name"`
	Params map[string]any `json:"params,omitempty"`
}

// CreateProject creates a project (POST /projects); an existing name is an
// error matching ErrConflict. It is not retried.
func (c *Client) CreateProject(ctx context.Context, req CreateProjectRequest) (*Project, error) {
	var p Project
	if _, err := c.do(ctx, request{method: http.MethodPost, path: "/projects", body: req}, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// GetProject returns a project (GET /projects/{name}).
func (c *Client) GetProject(ctx context.Context, name string) (*Project, error) {
	var p Project
	if _, err := c.do(ctx, request{method: http.MethodGet, path: escapePath("projects", name), retry: true}, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// ListProjects returns every project of the key's mode (GET /projects).
func (c *Client) ListProjects(ctx context.Context) ([]*Project, error) {
	var ps []*Project
	if _, err := c.do(ctx, request{method: http.MethodGet, path: "/projects", retry: true}, &ps); err != nil {
		return nil, err
	}
	return ps, nil
}

// SetProjectParams sets a project's default params, appending a version to
// its param_history (POST /projects/{name}/setParams).
func (c *Client) SetProjectParams(ctx context.Context, name string, params map[string]any) (*Project, error) {
	if params == nil {
		params = map[string]any{}
	}
	var p Project
	if _, err := c.do(ctx, request{method: http.MethodPost, path: escapePath("projects", name, "setParams"), body: params, retry: true}, &p); err != nil {
		return nil, err
	}
	return &p, nil
}
