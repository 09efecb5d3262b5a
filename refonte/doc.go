// Package refonte is a client for the Refonte.AI data-labeling API v1.
//
// A Client is created from an API key with NewClient. The key's prefix
// ("test_" or "live_") gives its Mode; the key itself is never printed, logged
// or included in an error. Every call takes a context first.
//
// The package also holds the wire types shared with the sandbox
// (refonte/sandbox) and with refonte-batch's enqueue and worker: task types,
// task statuses, the Task object, and the per-type parameter rules
// (ValidateTaskParams), so that the producer rejects exactly what the API
// would reject.
package refonte
