// Package jobs holds refonte-batch's job types: the asynq task type name and
// versioned payload of a row submission, the queue of each API mode, and the
// constructor that turns a row into an *asynq.Task. The producer (enqueue)
// and the consumer (worker) share it, so the payload's shape lives in
// exactly one place.
package jobs
