// Package worker is the worker process of refonte-batch: it serves the
// queue of each mode it holds an API key for (test, live) with the submit
// handler of package jobs/submit under the shared rate limit of package
// ratelimit, receives the API's completion callbacks on POST /callback
// (package jobs/callback), polls tasks whose callback is late (package
// jobs/reconcile), and serves /healthz, /readyz and /metrics.
//
// Configuration comes from flags and the environment (LoadConfig: secrets
// only from the environment or NAME_FILE); New builds a Worker from a
// Config and Run runs it until its context is canceled, then shuts down
// gracefully: in-flight jobs get Config.ShutdownTimeout, then whatever
// still runs is handed back to the queue.
//
// Command cmd/worker wires this package into a process; its -dev quick
// start (an in-process Redis and API sandbox around a Worker) is assembled
// by cmd/internal/devstack, above this package.
package worker
