package ratelimit

import "github.com/redis/go-redis/v9"

// The Redis state of one limit is a single hash (one key, so the scripts are
// cluster-safe), on the Redis server's clock in microseconds since the Unix
// epoch:
//
//	tat  the theoretical arrival time: the next slot is tat - tau
//	cd   the end of the cooldown (absent or past: none)
//
// Both scripts read the clock with TIME; Redis >= 5 replicates the effects of
// a script, not the script, so a non-deterministic TIME before a write is
// allowed (checked against redis-server 7.0.15 by the package tests). Numbers
// are written with %.0f because Lua would print them with 14 significant
// digits, and microsecond timestamps have 16.

// acquireScript books (or only looks up) the next slot.
//
// KEYS[1] the limit's hash.
// ARGV[1] emission interval T in µs (1/rate); ARGV[2] burst tolerance tau in
// µs ((burst-1)*T); ARGV[3] the longest acceptable delay in µs, -1 for
// unbounded; ARGV[4] the mode: "wait" books the next slot unless its delay
// exceeds ARGV[3], "reserve" books only a slot that is free now.
//
// Returns {booked (1 or 0), delay until the slot in µs, the slot in µs on the
// server clock}. When nothing is booked the key is not written.
//
// Atomicity: the script runs as one unit on the server, so concurrent callers
// on any number of clients each get a distinct slot, and a cooldown set by
// cooldownScript is seen by every later call. A cooldown ending at cd is
// treated as "no burst credit at cd": after it, grants resume at the steady
// rate and the burst refills from then. The key expires one second after the
// state it holds stops mattering, so idle limits vanish.
var acquireScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local maxdelay = tonumber(ARGV[3])
local st = redis.call('HMGET', KEYS[1], 'tat', 'cd')
local tat = tonumber(st[1]) or now
local cd = tonumber(st[2]) or 0
if tat < now then tat = now end
if cd + tau > tat then tat = cd + tau end
local slot = tat - tau
if slot < now then slot = now end
local delay = slot - now
if (ARGV[4] == 'reserve' and delay > 0) or (maxdelay >= 0 and delay > maxdelay) then
  return {0, delay, slot}
end
local newtat = tat + interval
redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', newtat))
local horizon = newtat
if cd + tau > horizon then horizon = cd + tau end
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil((horizon - now) / 1000) + 1000))
return {1, delay, slot}
`)

// cooldownScript extends the limit's cooldown.
//
// KEYS[1] the limit's hash. ARGV[1] the cooldown length d in µs (> 0);
// ARGV[2] burst tolerance tau in µs (only to size the key's expiry).
//
// Sets cd to max(cd, now+d) on the server clock, so a cooldown is never
// shortened, and returns the resulting cd in µs.
//
// Atomicity: one unit on the server; every acquireScript call that runs
// after it grants nothing before cd, whichever client or pod makes it.
var cooldownScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tau = tonumber(ARGV[2])
local st = redis.call('HMGET', KEYS[1], 'tat', 'cd')
local tat = tonumber(st[1]) or now
local cd = tonumber(st[2]) or 0
local want = now + tonumber(ARGV[1])
if want > cd then
  cd = want
  redis.call('HSET', KEYS[1], 'cd', string.format('%.0f', cd))
end
local horizon = tat
if cd + tau > horizon then horizon = cd + tau end
if horizon > now then
  redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil((horizon - now) / 1000) + 1000))
end
return cd
`)
