package callback_test

import (
	"log"
	"net/http"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/refonte-ai/refonte-batch/jobs/callback"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
)

// ExampleNewHandler mounts the callback receiver on a mux, as the worker
// does on its -listen address.
func ExampleNewHandler() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	h, err := callback.NewHandler(callback.Config{
		Store:   store.New(rdb, store.Options{}),
		AuthKey: refonte.Secret("the key from REFONTE_CALLBACK_AUTH_KEY"),
		Logger:  zap.NewNop(),
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /callback", h)
	_ = mux // http.ListenAndServe(":8080", mux)
}
