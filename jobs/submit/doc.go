// Package submit is the asynq handler of jobs.TypeSubmit: it turns one
// queued dataset row into exactly one Refonte task.
//
// For each delivery the Handler
//
//   - decodes the payload (a bad one is dropped with asynq.SkipRetry);
//   - picks the API client of the payload's mode, never the other mode's key;
//   - does nothing when the job record is already submitted or terminal (a
//     redelivery after a crash or a shutdown overlap);
//   - in live mode with a daily cap, reserves one task of the day's budget in
//     Redis before the create, and pauses the run (rescheduled, not failed)
//     when the budget is spent;
//   - with Options.MaxInFlight, takes one of the process's API slots, so at
//     most that many deliveries wait on the limiter or call the API at once;
//     the job-state read before and the recording after are outside the
//     slot, which passes to the next job as soon as the create is answered
//     (Drain gives back, unsent, the jobs still waiting for one);
//   - waits on the shared per-mode rate limiter for at most a short time and
//     reschedules the job (not a failure) when the slot is further away;
//   - creates the task with the row's unique_id, the run's callback_url and
//     metadata naming the run and line, and records the task ID atomically;
//   - resolves a 409 for its unique_id to the existing task, so a task is
//     never created twice;
//   - on 429 sets the shared cooldown and reschedules (not a failure); on a
//     permanent error (400, 401, 402, 404, mode mismatch) fails the job with
//     the API's message and asynq.SkipRetry; on a transient error returns it
//     so asynq retries with RetryDelay's short exponential delays.
//
// A rescheduled job returns a *RescheduleError; the asynq server must be
// configured with IsFailure and RetryDelay from this package so such errors
// do not use up the job's retries.
package submit
