// Package sandbox is an in-memory fake of the Refonte.AI API v1, faithful to
// the wire contract in the project's API reference: the same paths, status
// codes and JSON shapes, HTTP Basic auth with separate test and live worlds,
// per-type param validation, unique_id conflicts, list filters and
// pagination, batches and projects. Tasks complete on their own after
// Config.CompleteAfter with a synthetic response that echoes their metadata,
// and the sandbox POSTs the completion callback with the
// refonte.ai-callback-auth header, retrying non-2xx answers with backoff.
//
// Faults can be injected at start (Config) or at runtime (Server.SetFaults,
// or POST /_sandbox/faults from another process): a per-key rate limit on
// task creation (429 with Retry-After), 500/503 errors, "lost responses"
// (the task is created but the create answers 500, the platform's known
// behaviour), added latency, dropped, duplicated and early callbacks, and a
// full outage (every API call answers 503).
//
// A Server is an http.Handler. It serves the API under /v1 and also accepts
// being mounted with the /v1 prefix already stripped:
//
//	srv := sandbox.New(sandbox.Config{})
//	defer srv.Close()
//	ts := httptest.NewServer(srv)
//	client, _ := refonte.NewClient(sandbox.DefaultTestKey, refonte.WithBaseURL(ts.URL+"/v1"))
//
// GET /_sandbox/stats (no auth) answers the Stats counters as JSON, which
// tests and benchmarks use to prove properties of a run (no unique_id ever
// created twice, the rate limit was respected, every callback delivered).
//
// Sandbox-specific behaviour that the reference leaves open:
//   - A create naming a project or batch that does not exist in the key's
//     mode answers 400 (the request is invalid), with a message naming the
//     field; unknown task ids answer 404.
//   - A task whose attachment contains "sandbox-error" ends in status error
//     instead of completed, with response {"error": …}; its unique_id is
//     released when it was created with clear_unique_id_on_error.
//   - Config.ErrorRate applies to task creation only.
//   - Tasks in a batch complete on their own timer, even before the batch is
//     finalized, unless Config.HoldUntilFinalize is set.
//   - Finalizing a batch that is no longer staging answers 200 with the
//     batch unchanged, so a retried finalize succeeds.
//   - Task types listed in Config.DisabledTypes answer 402.
package sandbox
