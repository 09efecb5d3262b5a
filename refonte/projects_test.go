package refonte

import "testing"

const projectJSON = `{"name":"street scenes","type":"imageannotation","params":{"instruction":"v2"},
"param_history":[{"instruction":"v1"},{"instruction":"v2"}],"created_at":"2026-11-26T20:08:31Z"}`

func TestProjectsWire(t *testing.T) {
	runWireCases(t, []wireCase{
		{name: "create", method: "POST", path: "/v1/projects", reply: projectJSON,
			body: `{"type":"imageannotation","name":"street scenes","params":{"instruction":"v1"}}`,
			call: func(t *testing.T, c *Client) {
				p, err := c.CreateProject(t.Context(), CreateProjectRequest{Type: TypeImageAnnotation, Name: "street scenes",
					Params: map[string]any{"instruction": "v1"}})
				must(t, err)
				if p.Name != "street scenes" || p.Type != TypeImageAnnotation || len(p.ParamHistory) != 2 || p.Params["instruction"] != "v2" {
					t.Errorf("decoded %+v", p)
				}
			}},
		{name: "get", method: "GET", path: "/v1/projects/street%20scenes", reply: projectJSON,
			call: func(t *testing.T, c *Client) { _, err := c.GetProject(t.Context(), "street scenes"); must(t, err) }},
		{name: "list bare array", method: "GET", path: "/v1/projects", reply: `[` + projectJSON + `,{"name":"demo"}]`,
			call: func(t *testing.T, c *Client) {
				ps, err := c.ListProjects(t.Context())
				must(t, err)
				if len(ps) != 2 || ps[1].Name != "demo" {
					t.Errorf("decoded %v", ps)
				}
			}},
		{name: "set params", method: "POST", path: "/v1/projects/a%2Fb/setParams", reply: projectJSON,
			body: `{"instruction":"v3"}`,
			call: func(t *testing.T, c *Client) {
				_, err := c.SetProjectParams(t.Context(), "a/b", map[string]any{"instruction": "v3"})
				must(t, err)
			}},
	})
}
