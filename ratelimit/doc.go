// Package ratelimit spaces calls to a rate-limited API so that every process
// sharing one API key, together, stays at the configured rate and uses all
// of it.
//
// The algorithm is GCRA (the generic cell rate algorithm): the limit keeps a
// single "theoretical arrival time" (TAT); each grant books the next slot and
// moves the TAT one emission interval (1/Rate) forward, and a burst tolerance
// of (Burst-1) intervals lets up to Burst grants through at once after an
// idle period. Booking a slot never polls: a caller learns its slot in one
// step and sleeps until it.
//
// [RedisLimiter] keeps the state in one Redis key per limit (cluster-safe)
// and runs the algorithm in one Lua script on the Redis server's clock, so
// pods' clock skew does not matter and each grant costs one round trip.
//
// A 429 answer should be reported with [Limiter.Cooldown] and its Retry-After:
// every limiter sharing the limit then grants nothing until the cooldown
// ends, and resumes at the steady rate (the burst refills from that moment).
// With Config.Adaptive, each new cooldown also lowers the shared rate
// (×0.8, down to 10%), which then recovers by 1% of the rate per second.
//
// Long waits: a worker that should not hold a goroutine for a long wait gives
// Wait a context with a deadline; when the next slot would come after it,
// Wait books nothing and returns a [*DelayError] saying when to come back.
// [Limiter.Reserve] is the non-blocking form.
package ratelimit
