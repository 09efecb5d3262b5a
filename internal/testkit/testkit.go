// Package testkit sets up what the tests of several packages share, as
// river's rivertest does for its users: a Store on a real redis-server, the
// Refonte API sandbox behind an httptest server, and an API client on it.
// Everything it starts is stopped in t.Cleanup. It is imported by tests
// only (package refonte's tests do not use it: refonte imports nothing from
// internal/).
package testkit

import (
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/internal/testredis"
	"github.com/refonte-ai/refonte-batch/jobs/store"
	"github.com/refonte-ai/refonte-batch/refonte"
	"github.com/refonte-ai/refonte-batch/refonte/sandbox"
)

// Store returns a Store with opts on a private redis-server
// (testredis.Fresh), with the client it runs on for what a test reads or
// writes beside it.
func Store(tb testing.TB, opts store.Options) (*store.Store, *redis.Client) {
	tb.Helper()
	return StoreOn(tb, testredis.Fresh(tb), opts)
}

// StoreOn returns a Store with opts on the Redis at redisURL, with its
// client.
func StoreOn(tb testing.TB, redisURL string, opts store.Options) (*store.Store, *redis.Client) {
	tb.Helper()
	rdb := testredis.ClientOn(tb, redisURL)
	return store.New(rdb, opts), rdb
}

// SharedStore returns a Store under a key prefix of its own on the shared
// test Redis (testredis.URL: REDIS_URL, or a server started for the test),
// with its client and the prefix, for tests that need no private server.
func SharedStore(tb testing.TB) (*store.Store, *redis.Client, string) {
	tb.Helper()
	prefix := fmt.Sprintf("test-%x:", rand.Uint64())
	st, rdb := StoreOn(tb, testredis.URL(tb), store.Options{Prefix: prefix})
	return st, rdb, prefix
}

// Sandbox starts the API sandbox for cfg behind an httptest server and
// returns it with the API base URL (the server's URL + "/v1").
func Sandbox(tb testing.TB, cfg sandbox.Config) (*sandbox.Server, string) {
	tb.Helper()
	sb := sandbox.New(cfg)
	ts := httptest.NewServer(sb)
	tb.Cleanup(func() { ts.Close(); sb.Close() })
	return sb, ts.URL + "/v1"
}

// Client returns an API client of key's mode on baseURL (as Sandbox
// returns it) with the retry policy p.
func Client(tb testing.TB, key, baseURL string, p refonte.RetryPolicy) *refonte.Client {
	tb.Helper()
	c, err := refonte.NewClient(key, refonte.WithBaseURL(baseURL), refonte.WithRetry(p))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}
