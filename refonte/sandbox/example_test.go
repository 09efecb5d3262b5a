package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"

	"github.com/refonte-ai/refonte-batch/refonte"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

// ExampleNew embeds the sandbox in a test and talks to it with the client.
func ExampleNew() {
	srv := sandbox.New(sandbox.Config{NoAutoComplete: true})
	defer srv.Close()
	ts := httptest.NewServer(srv)
	defer ts.Close()

	client, err := refonte.NewClient(sandbox.DefaultTestKey, refonte.WithBaseURL(ts.URL+"/v1"))
	if err != nil {
		fmt.Println(err)
		return
	}
	task, err := client.CreateTask(context.Background(), refonte.TypeImageAnnotation, refonte.TaskParams{
		"project":    sandbox.DefaultProject,
		"attachment": "https://example.com/street.jpg",
		"geometries": map[string]any{"box": map[string]any{"objects_to_annotate": []string{"car"}}},
		"unique_id":  "street-1",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(task.Status, task.IsTest, task.UniqueID)

	_, err = client.CreateTask(context.Background(), refonte.TypeImageAnnotation, refonte.TaskParams{
		"project": sandbox.DefaultProject, "attachment": "https://example.com/street.jpg", "unique_id": "street-2",
	})
	fmt.Println(errors.Is(err, refonte.ErrInvalid)) // no geometries: 400

	st := srv.Stats()
	fmt.Println(st.CreateCalls, st.TasksCreated)
	// Output:
	// pending true street-1
	// true
	// 2 1
}
