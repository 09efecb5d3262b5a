package refonte_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/refonte-ai/refonte-batch/refonte"
)

// fakeAPI stands in for the Refonte.AI API (or refonte/sandbox) so that
// the examples run offline.
func fakeAPI() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if user, _, ok := r.BasicAuth(); !ok || !strings.HasPrefix(user, "test_") {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"status_code":401,"error":"no valid API key"}`)
			return
		}
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/task/imageannotation":
			_, _ = io.WriteString(w, `{"task_id":"5f1a9c2e7b","type":"imageannotation","status":"pending",
				"unique_id":"images.csv:17","metadata":{"source_row":17},"is_test":true,"response":null}`)
		case r.Method == http.MethodGet && r.URL.Path == "/v1/task/missing":
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"status_code":404,"error":"task not found"}`)
		default:
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"status_code":400,"error":"unexpected request"}`)
		}
	}))
}

func ExampleNewClient() {
	api := fakeAPI() // in production: leave WithBaseURL out
	defer api.Close()

	client, err := refonte.NewClient("test_0123456789abcdef",
		refonte.WithBaseURL(api.URL+"/v1"),
		refonte.WithRetry(refonte.RetryPolicy{MaxAttempts: 3}),
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("mode:", client.Mode())
	// The key is never printed, logged or put in an error.
	fmt.Println(strings.Contains(fmt.Sprintf("%+v", client), "0123456789abcdef"))

	_, err = client.GetTask(context.Background(), "missing")
	fmt.Println(errors.Is(err, refonte.ErrNotFound), refonte.Retryable(err))

	_, err = refonte.NewClient("0123456789abcdef")
	fmt.Println(errors.Is(err, refonte.ErrInvalidKey))
	// Output:
	// mode: test
	// false
	// true false
	// true
}

func ExampleClient_CreateTask() {
	api := fakeAPI()
	defer api.Close()
	client, err := refonte.NewClient("test_0123456789abcdef", refonte.WithBaseURL(api.URL+"/v1"))
	if err != nil {
		log.Fatal(err)
	}

	// A unique_id makes the create idempotent: the client retries transient
	// errors, and resolves the platform's "500 then 409" to the task that
	// was created.
	task, err := client.CreateTask(context.Background(), refonte.TypeImageAnnotation, refonte.TaskParams{
		refonte.ParamProject:    "street-scenes",
		refonte.ParamAttachment: "https://cdn.example.com/img/17.jpg",
		"geometries":            map[string]any{"box": map[string]any{"objects_to_annotate": []string{"car"}}},
		refonte.ParamMetadata:   map[string]any{"source_row": 17},
		refonte.ParamUniqueID:   "images.csv:17",
	})
	switch {
	case errors.Is(err, refonte.ErrConflict):
		fmt.Println("another task already holds this unique_id")
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Println(task.ID, task.Status, task.UniqueID, string(task.Metadata))
	}
	// Output:
	// 5f1a9c2e7b pending images.csv:17 {"source_row":17}
}

func ExampleParseCallback() {
	callbackKey := refonte.Secret("cb-secret") // from REFONTE_CALLBACK_AUTH_KEY
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !refonte.VerifyCallbackAuth(r.Header, callbackKey) {
			http.Error(w, "forbidden", http.StatusUnauthorized)
			return
		}
		cb, err := refonte.ParseCallback(r.Body, 0)
		if err != nil {
			http.Error(w, "bad callback", http.StatusBadRequest)
			return
		}
		fmt.Println(cb.TaskID, cb.Status, cb.UniqueID, string(cb.Metadata), string(cb.Response))
		w.WriteHeader(http.StatusOK) // answer fast: deliveries repeat until a 2xx
	})

	body := `{"task":{"task_id":"5f1a9c2e7b","status":"completed","unique_id":"images.csv:17",
		"metadata":{"source_row":17}},"response":{"annotations":[]},"task_id":"5f1a9c2e7b","status":"completed"}`
	for _, key := range []string{"cb-secret", "wrong"} {
		req := httptest.NewRequest(http.MethodPost, "/callback", strings.NewReader(body))
		req.Header.Set(refonte.CallbackAuthHeader, key)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		fmt.Println(rec.Code)
	}
	// Output:
	// 5f1a9c2e7b completed images.csv:17 {"source_row":17} {"annotations":[]}
	// 200
	// 401
}
