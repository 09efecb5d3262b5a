package ratelimit

import "github.com/redis/go-redis/v9"

// The Redis state of one limit is a single hash (one key, so the scripts are
// cluster-safe), on the Redis server's clock in microseconds since the Unix
// epoch:
//
//	tat  the theoretical arrival time: the next slot is tat - tau
//	cd   the end of the cooldown (absent or past: none)
//	f    adaptive mode: the rate factor set at time ft (absent: full rate);
//	     the factor at time now is min(1, f + recovery*(now-ft)/1e6)
//	ft   adaptive mode: when f was set
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
// exceeds ARGV[3], "reserve" books only a slot that is free now; ARGV[5]
// adaptive recovery per second (0: adaptive mode off, f is ignored): the
// booked slot moves the TAT by T divided by the current rate factor;
// ARGV[6] "1" drops the burst credit first (RedisLimiter.DropBurst): the
// TAT is raised to now + tau, as at the end of a cooldown (written only
// if a slot is booked: a call that books nothing had no credit to drop).
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
local rec = tonumber(ARGV[5])
local st = redis.call('HMGET', KEYS[1], 'tat', 'cd', 'f', 'ft')
local tat = tonumber(st[1]) or now
local cd = tonumber(st[2]) or 0
local fhorizon = 0
if rec > 0 and st[3] then
  local f0, ft = tonumber(st[3]), tonumber(st[4])
  local f = f0 + rec * (now - ft) / 1000000
  if f < 1 then interval = interval / f end
  fhorizon = ft + (1 - f0) / rec * 1000000
end
if tat < now then tat = now end
if cd + tau > tat then tat = cd + tau end
if ARGV[6] == '1' and now + tau > tat then tat = now + tau end
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
if fhorizon > horizon then horizon = fhorizon end
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil((horizon - now) / 1000) + 1000))
return {1, delay, slot}
`)

// cooldownScript extends the limit's cooldown.
//
// KEYS[1] the limit's hash. ARGV[1] the cooldown length d in µs (> 0);
// ARGV[2] burst tolerance tau in µs (only to size the key's expiry); ARGV[3]
// adaptive decrease (0: adaptive mode off), ARGV[4] adaptive floor, ARGV[5]
// adaptive recovery per second.
//
// Sets cd to max(cd, now+d) on the server clock, so a cooldown is never
// shortened, and returns the resulting cd in µs. In adaptive mode, a call
// that starts a new cooldown (none running) also sets f to max(floor,
// current factor × decrease) and ft to now: one decrease per 429 episode,
// however many pods report it.
//
// Atomicity: one unit on the server; every acquireScript call that runs
// after it grants nothing before cd, whichever client or pod makes it.
var cooldownScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tau = tonumber(ARGV[2])
local dec, floor, rec = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local st = redis.call('HMGET', KEYS[1], 'tat', 'cd', 'f', 'ft')
local tat = tonumber(st[1]) or now
local cd = tonumber(st[2]) or 0
local fhorizon = 0
if rec > 0 and st[3] then
  fhorizon = tonumber(st[4]) + (1 - tonumber(st[3])) / rec * 1000000
end
if dec > 0 and cd <= now then
  local f = 1
  if st[3] then
    f = tonumber(st[3]) + rec * (now - tonumber(st[4])) / 1000000
    if f > 1 then f = 1 end
  end
  f = f * dec
  if f < floor then f = floor end
  redis.call('HSET', KEYS[1], 'f', string.format('%.9f', f), 'ft', string.format('%.0f', now))
  fhorizon = now + (1 - f) / rec * 1000000
end
local want = now + tonumber(ARGV[1])
if want > cd then
  cd = want
  redis.call('HSET', KEYS[1], 'cd', string.format('%.0f', cd))
end
local horizon = tat
if cd + tau > horizon then horizon = cd + tau end
if fhorizon > horizon then horizon = fhorizon end
if horizon > now then
  redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil((horizon - now) / 1000) + 1000))
end
return cd
`)
