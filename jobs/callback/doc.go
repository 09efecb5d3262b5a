// Package callback receives the Refonte API's completion callbacks
// (POST /callback on the worker's -listen address) and applies them to the
// job records of package jobs/store.
//
// A callback is authenticated first (constant-time comparison of the
// refonte.ai-callback-auth header), before any of its body is read: a
// request without the right key gets 401, its connection is closed and
// nothing of it is recorded. At most Config.MaxConcurrent authenticated
// callbacks are handled at once (503 beyond), and each body must arrive
// within Config.BodyTimeout (408). The body is limited to
// refonte.MaxCallbackBytes (413 beyond) and must be a callback object (400
// otherwise). A good callback is matched to its job by the unique_id of the
// task it carries, in the task's mode, else by the task ID index, and
// applied with one atomic store transition: duplicates, late and
// out-of-order deliveries are idempotent (the run counters stay exact), and
// a callback that arrives before the submission was recorded completes the
// job all the same. A delivery that the replay rule of store.Complete
// refuses (another task than the row's, or not strictly newer than the
// row's terminal outcome by the task's own timestamp) changes nothing: it
// is answered 200, counted (outcome conflict, and in the run's
// conflicting_deliveries) and kept for inspection. A callback that matches
// no job is answered 200, counted and kept too (store.KeepCallback keeps a
// head of each within a byte budget). When Redis cannot be reached the
// answer is 503 so that the platform delivers the callback again later.
package callback
