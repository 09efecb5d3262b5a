// Package enqueue is the producer and operator command line of
// refonte-batch: it streams a CSV or JSONL dataset into asynq submit jobs
// with a run record and one job record per row (Submit), and reports on runs
// (Status, Results, Runs) and re-queues their failed rows (Retry).
//
// Main runs the whole command line (the binary cmd/enqueue only wires the
// process to it):
//
//	enqueue [flags] DATASET        submit a dataset (.csv, .jsonl, .gz, or - for stdin)
//	enqueue status [-json] RUN_ID  a run's counts and state
//	enqueue results RUN_ID         one JSON line per row: line, unique_id, state, task_id, response, error
//	enqueue retry RUN_ID           re-queue the run's failed rows
//	enqueue runs                   recent runs, newest first
//
// Exit codes: ExitOK (0) every row valid and enqueued (with -wait: every row
// completed); ExitError (1) an error stopped the run, the message says how
// far it got; ExitUsage (2) a usage or configuration error, nothing was
// written; ExitIncomplete (3) the run finished but some rows were invalid or
// failed.
//
// Submit streams: memory stays flat whatever the dataset size. One goroutine
// reads and validates rows (package dataset) and hands batches of rows to a
// small pool of writers, each calling store.AddJobs, which writes the job
// records and the asynq tasks atomically in pipelined batches.
//
// Live mode is opt-in: see CheckLive for the rule.
//
// With -dev, Main first starts the whole system in this process through
// Env.StartDev (cmd/enqueue passes package cmd/internal/devstack's: an
// in-process Redis, the API sandbox in test mode and a worker), submits to
// it, waits for every row, writes the results to the output folder
// (NAME.results.jsonl, see Config.OutDir) and prints a summary table.
package enqueue
