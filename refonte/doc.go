// Package refonte is a client for the Refonte.AI data-labeling API v1.
//
// A Client is created from an API key with NewClient. The key's prefix
// ("test_" or "live_") gives its Mode; the key itself is never printed, logged
// or included in an error. Every call takes a context first.
//
// Errors answered by the API are *Error values carrying the status code,
// the API's message, the method and path and any Retry-After; they match
// sentinels such as ErrNotFound, ErrConflict (ErrDuplicate) and
// ErrRateLimited with errors.Is. Retryable classifies an error as
// transient (network failures, timeouts, 408, 429, 5xx).
//
// The client retries transient errors itself with exponential backoff and
// jitter (github.com/cenkalti/backoff/v4), honouring Retry-After, within
// the RetryPolicy's MaxElapsed and the context: GETs, DELETEs and
// idempotent POSTs always; a task create only when its params carry a
// unique_id. When a retried create gets 409 (the platform answered 500
// although it created the task), the client fetches the task holding the
// unique_id and returns it as the result. Each retry is logged at debug
// level on the logger given with WithLogger.
//
// VerifyCallbackAuth and ParseCallback serve a callback endpoint.
//
// The package also holds the wire types shared with the sandbox
// (refonte/sandbox) and with refonte-batch's enqueue and worker: task types,
// task statuses, the Task object, and the per-type parameter rules
// (ValidateTaskParams), so that the producer rejects exactly what the API
// would reject.
//
// JSON goes through github.com/goccy/go-json, a maintained drop-in
// replacement for encoding/json (same API; json.RawMessage is
// encoding/json's, so the exported types are plain encoding/json types):
// it parses a callback in 2.4 µs against encoding/json's 8.3 µs
// (go test -run '^$' -bench ParseCallback ./refonte), and together with the
// sandbox and the worker's payload decoding it took the shipped programs
// from 2,796 to 3,057 rows/s end to end (bench/ab.sh bd6fe4a e4fda26 real 4,
// 2026-12-04: worker CPU 263 → 226 µs a row, sandbox 158 → 139 µs).
package refonte
