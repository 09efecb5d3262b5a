package devstack_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/refonte-ai/refonte-batch/cmd/internal/devstack"
)

// Example starts the whole system in process and shows what a separate
// enqueue process would need to submit to it.
func Example() {
	s, err := devstack.Start(context.Background(), devstack.Options{CompleteAfter: 50 * time.Millisecond})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	for _, kv := range s.EnqueueEnv() {
		name, _, _ := strings.Cut(kv, "=")
		fmt.Println(name)
	}
	fmt.Println(strings.HasPrefix(s.SandboxURL(), "http://127.0.0.1:"), strings.HasSuffix(s.CallbackURL(), "/callback"))
	// Output:
	// REDIS_URL
	// REFONTE_CALLBACK_URL
	// true true
}
