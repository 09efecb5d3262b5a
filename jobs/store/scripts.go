package store

// Every Lua script of the store, in one place. Each script runs atomically in
// Redis: no other command interleaves with it, so a transition and the
// counters of every run it touches change together or not at all.
//
// Redis Cluster: the transition scripts derive run keys from the job's
// `runs` field (undeclared keys) and AddJobs writes asynq's keys (hash tag
// {<queue>}) beside ours, so these scripts need a single-shard Redis
// (standalone, Sentinel, or a Cluster with every key in one slot, which
// asynq's own key names do not allow). All scripts are effect-replicated
// (Redis 7 default), so the AOF replays their writes, not the scripts.
//
// Times are unix milliseconds; TTLs are milliseconds (PEXPIRE).
//
// Job hash fields: line type state task_id status attempts error response
// created submitted delivered updated generation runs retrying (the first run is the
// one that created the job; `updated` is absent until the first change, to
// keep a queued row's record small).
// Run hash fields: dataset type project batch mode callback_url state
// paused_reason abort_reason created_at enqueued_at finished_at finalized
// allsub last_error last_error_at and the counters rows valid invalid
// enqueued duplicate submitted completed failed canceled notask (terminal
// rows without a task at the API) retrying (queued rows whose last attempt
// failed) conflicts (deliveries the replay rule refused, see luaReplayRule).

import (
	"github.com/redis/go-redis/v9"

	"github.com/refonte-ai/refonte-batch/jobs/store/asynqwire"
)

// luaFailGroups defines fail_groups, which keeps each run's failures
// grouped by error (hash <run key>:fails, see Store.FailureGroups): for
// every run key of rkeys (a run listed n times counts n times, as its
// counters do) a job leaving state failed with error out_err (nil: it was
// not failed) is taken out of its group and a job entering failed with
// error in_err (nil: it does not fail) is put into its group, with its line
// kept as one of at most 3 examples. A group is the error's first
// FailureGroupBytes bytes; past MaxFailureGroups groups in a run, new
// messages count under "other". It is only called when a job enters or
// leaves state failed, never on the path of a successful row.
//
// Fields: n:<group> count, x:<group> example lines (space-separated);
// other and xother for the overflow.
const luaFailGroups = `
local function fail_group_of(fk, msg, adding)
  local g = string.sub(msg or '', 1, ` + failureGroupBytesLua + `)
  if redis.call('HEXISTS', fk, 'n:' .. g) == 1 then return 'n:' .. g, 'x:' .. g end
  if adding and redis.call('HLEN', fk) < 2 * ` + maxFailureGroupsLua + ` then return 'n:' .. g, 'x:' .. g end
  return 'other', 'xother'
end

local function fail_groups(rkeys, jk, out_err, in_err, ttl)
  local line = redis.call('HGET', jk, 'line') or '0'
  for _, rk in ipairs(rkeys) do
    local fk = rk .. ':fails'
    if out_err then
      local nf, xf = fail_group_of(fk, out_err, false)
      local n = redis.call('HINCRBY', fk, nf, -1)
      if n <= 0 then
        redis.call('HDEL', fk, nf, xf)
      else
        local keep = {}
        for l in string.gmatch(redis.call('HGET', fk, xf) or '', '%S+') do
          if l ~= line then keep[#keep + 1] = l end
        end
        redis.call('HSET', fk, xf, table.concat(keep, ' '))
      end
    end
    if in_err then
      local nf, xf = fail_group_of(fk, in_err, true)
      redis.call('HINCRBY', fk, nf, 1)
      local ex = redis.call('HGET', fk, xf) or ''
      local k = 0
      local has = false
      for l in string.gmatch(ex, '%S+') do
        k = k + 1
        if l == line then has = true end
      end
      if k < 3 and not has then
        if ex == '' then ex = line else ex = ex .. ' ' .. line end
        redis.call('HSET', fk, xf, ex)
      end
    end
    redis.call('PEXPIRE', fk, ttl)
  end
end

-- fail_groups_of_runs calls fail_groups for the runs of a job's runs field.
local function fail_groups_of_runs(prefix, runs, jk, out_err, in_err, ttl)
  local rkeys = {}
  for rid in string.gmatch(runs or '', '%S+') do rkeys[#rkeys + 1] = prefix .. 'run:' .. rid end
  fail_groups(rkeys, jk, out_err, in_err, ttl)
end
`

// luaRunHelpers is prepended to every transition script. apply_runs adds
// the counter deltas to every run that follows the job (a run listed n times
// because n of its rows share the job gets n times the deltas), then checks
// each run for completion (terminal == valid → done, or canceled for a run
// being canceled) and for "every valid row submitted or terminal without a
// task" (reported once per run, flag allsub). It returns the two lists of
// run IDs, and whether every run of the job is canceled with -tasks (see
// luaRunControl).
//
// It is on every row's hot path, so it reads each run once (HMGET) and
// writes it once (HSET of the new counter values, computed here: the same
// as HINCRBY inside an atomic script), and it refreshes the TTL of the
// run's hash and rows only when the last refresh (field ttl_at) is older
// than 1 % of the TTL: a run still expires no sooner than 99 % of the
// retention after its last change.
//
// count_cancel counts one row moved to canceled, system-wide, in the hash
// prefix .. 'stats:canceled' (field MODE:STAGE, STAGE before_submit or
// after_submit; see Store.CancelCounts), in the same script as the
// transition: whoever cancels (a worker, enqueue cancel's sweep) is
// counted once, exactly.
const luaRunHelpers = luaFailGroups + `
local function is_terminal(st)
  return st == 'completed' or st == 'failed' or st == 'canceled'
end

local function count_cancel(prefix, jk, stage, ttl)
  -- jk is prefix .. 'job:' .. mode .. ':' .. unique_id
  local mode = string.match(string.sub(jk, string.len(prefix) + 5), '^([^:]+):')
  local sk = prefix .. 'stats:canceled'
  redis.call('HINCRBY', sk, (mode or '?') .. ':' .. stage, 1)
  redis.call('PEXPIRE', sk, ttl)
end

local function num(v)
  if v then return tonumber(v) or 0 end
  return 0
end

-- leave_retry: a job that had a failed attempt while queued (field
-- retrying, see recordAttemptScript) and now changes state no longer counts
-- in its runs' retrying counter.
local function leave_retry(jk, deltas)
  if redis.call('HDEL', jk, 'retrying') == 1 then
    deltas.retrying = (deltas.retrying or 0) - 1
  end
end

local run_counters = {valid = 1, submitted = 2, completed = 3, failed = 4, canceled = 5, notask = 6}

local function apply_runs(prefix, runs, deltas, now, ttl)
  local mult, order = {}, {}
  for rid in string.gmatch(runs or '', '%S+') do
    if not mult[rid] then
      mult[rid] = 0
      order[#order + 1] = rid
    end
    mult[rid] = mult[rid] + 1
  end
  local done, allsub = {}, {}
  -- cancel_api: every run of the job that still exists is canceled and
  -- one of them asked for its tasks to be canceled at the API (-tasks).
  local cancel_api, asked_api, seen = true, false, false
  local nnow, nttl = tonumber(now), tonumber(ttl)
  for _, rid in ipairs(order) do
    local rk = prefix .. 'run:' .. rid
    local v = redis.call('HMGET', rk, 'valid', 'submitted', 'completed', 'failed',
      'canceled', 'notask', 'state', 'allsub', 'finalized', 'ttl_at', 'cancel', 'cancel_tasks')
    local st = v[7]
    if st then
      if not v[11] then cancel_api = false end
      if v[12] == '1' then asked_api = true end
      local c = {}
      for i = 1, 6 do c[i] = num(v[i]) end
      local set = {}
      for f, d in pairs(deltas) do
        local i = run_counters[f]
        if d ~= 0 then
          if i then
            c[i] = c[i] + d * mult[rid]
            set[#set + 1] = f
            set[#set + 1] = c[i]
          else
            redis.call('HINCRBY', rk, f, d * mult[rid])
          end
        end
      end
      local valid = c[1]
      local term = c[3] + c[4] + c[5]
      if term >= valid and (st == 'running' or st == 'paused' or st == 'canceling') then
        local to = 'done'
        if st == 'canceling' then to = 'canceled' end
        set[#set + 1] = 'state'
        set[#set + 1] = to
        set[#set + 1] = 'finished_at'
        set[#set + 1] = now
        redis.call('HDEL', rk, 'paused_reason', 'op_paused')
        redis.call('SREM', prefix .. 'runs:paused', rid)
        done[#done + 1] = rid
        st = to
      elseif term < valid and (st == 'done' or st == 'canceled') then
        local to = 'running'
        if st == 'canceled' then to = 'canceling' end
        set[#set + 1] = 'state'
        set[#set + 1] = to
        redis.call('HDEL', rk, 'finished_at')
        st = to
      end
      local settled = c[2] + c[6] >= valid
      if settled and st ~= 'enqueuing' and st ~= 'aborted' and v[8] ~= '1' then
        set[#set + 1] = 'allsub'
        set[#set + 1] = '1'
        allsub[#allsub + 1] = rid
      elseif (not settled) and v[8] == '1' and v[9] ~= '1' then
        redis.call('HDEL', rk, 'allsub')
      end
      local refreshed = tonumber(v[10])
      if not refreshed or nnow - refreshed >= nttl / 100 or nnow < refreshed then
        set[#set + 1] = 'ttl_at'
        set[#set + 1] = now
        redis.call('PEXPIRE', rk, ttl)
        redis.call('PEXPIRE', rk .. ':rows', ttl)
      end
      if #set > 0 then redis.call('HSET', rk, unpack(set)) end
      seen = true
    end
  end
  return done, allsub, seen and cancel_api and asked_api
end
`

// createRunScript writes a new run record and indexes it.
//
// KEYS[1] run hash, KEYS[2] runs zset.
// ARGV[1] run ID, ARGV[2] created ms, ARGV[3] TTL ms, ARGV[4] zset cutoff
// ms (older entries are dropped), ARGV[5..] field/value pairs.
// Returns 1, or -2 if the run exists (nothing written).
var createRunScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return -2 end
local fv = {}
for i = 5, #ARGV do fv[#fv + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fv))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
`)

// addInvalidScript counts invalid rows. KEYS[1] run; ARGV[1] n, ARGV[2] TTL ms.
// Returns 1, or -1 if the run does not exist.
var addInvalidScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HINCRBY', KEYS[1], 'rows', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'invalid', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// finishEnqueueScript: enqueuing → done (canceled if a cancel was
// recorded while enqueuing) if every valid row is already terminal (valid
// == 0 included), else canceling if a cancel was recorded, else paused if
// a pause was recorded while enqueuing, else running. A no-op in any other state.
// KEYS[1] run; ARGV[1] now ms, ARGV[2] TTL ms. Returns 1 changed, 0 no-op,
// -1 no run.
var finishEnqueueScript = redis.NewScript(luaRunHelpers + `
local v = redis.call('HMGET', KEYS[1], 'state', 'valid', 'completed', 'failed', 'canceled', 'paused_reason', 'cancel')
if not v[1] then return -1 end
if v[1] ~= 'enqueuing' then return 0 end
redis.call('HSET', KEYS[1], 'enqueued_at', ARGV[1])
if num(v[3]) + num(v[4]) + num(v[5]) >= num(v[2]) then
  local to = 'done'
  if v[7] then to = 'canceled' end
  redis.call('HSET', KEYS[1], 'state', to, 'finished_at', ARGV[1])
  redis.call('HDEL', KEYS[1], 'paused_reason')
elseif v[7] then
  redis.call('HSET', KEYS[1], 'state', 'canceling')
elseif v[6] and v[6] ~= '' then
  redis.call('HSET', KEYS[1], 'state', 'paused')
else
  redis.call('HSET', KEYS[1], 'state', 'running')
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// abortRunScript: any state but done → aborted with the reason.
// KEYS[1] run; ARGV[1] reason, ARGV[2] now ms, ARGV[3] TTL ms.
// Returns 1 changed, 0 no-op (done), -1 no run.
var abortRunScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return -1 end
if st == 'done' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'aborted', 'abort_reason', ARGV[1], 'finished_at', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

// claimFinalizeScript sets the finalized flag once.
// KEYS[1] run; ARGV[1] TTL ms. Returns 1 if this call set it, 0 if it was
// set, -1 no run.
var claimFinalizeScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local n = redis.call('HSETNX', KEYS[1], 'finalized', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return n
`)

// setPausedScript: running → paused (reason set), paused → paused (reason
// updated), paused → running (reason ""). While enqueuing, only the reason
// is kept (FinishEnqueue then pauses the run). Other states, and a run
// paused by its operator (op_paused, see opPauseScript), whose reason
// stays: no-op.
// KEYS[1] run; ARGV[1] reason, ARGV[2] TTL ms. Returns 1 changed, 0 no-op, -1 no run.
var setPausedScript = redis.NewScript(`
local st, op = unpack(redis.call('HMGET', KEYS[1], 'state', 'op_paused'))
if not st then return -1 end
if op == '1' then return 0 end
if st == 'enqueuing' then
  if ARGV[1] ~= '' then
    redis.call('HSET', KEYS[1], 'paused_reason', ARGV[1])
  else
    redis.call('HDEL', KEYS[1], 'paused_reason')
  end
elseif ARGV[1] ~= '' and (st == 'running' or st == 'paused') then
  redis.call('HSET', KEYS[1], 'state', 'paused', 'paused_reason', ARGV[1])
elseif ARGV[1] == '' and st == 'paused' then
  redis.call('HSET', KEYS[1], 'state', 'running')
  redis.call('HDEL', KEYS[1], 'paused_reason')
else
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// luaContentCheck defines content_differs(jk, fp): whether the existing
// job jk was recorded with a content fingerprint other than fp (a job or a
// row without one never differs: records written before fingerprints, or
// callers that skip the check); and drop_lines(packed, lines): the packed
// "line:unique_id" rows without those whose line is a key of lines.
const luaContentCheck = `
local function content_differs(jk, fp)
  if fp == '' then return false end
  local old = redis.call('HGET', jk, 'fp')
  return old and old ~= '' and old ~= fp
end
local function drop_lines(packed, lines)
  local kept = {}
  for it in string.gmatch(packed, '[^\n]+') do
    local line = string.match(it, '^(%d+):')
    if not lines[line] then kept[#kept + 1] = it end
  end
  return table.concat(kept, '\n')
end
`

// addJobsScript adds one batch of valid rows to a run; see Store.AddJobs.
// Per row, atomically with the whole batch: a new job record plus its
// pending asynq task (asynqwire.LuaEnqueue), or, for an existing
// job, the run joins its `runs` and counts its current state; an enqueued
// job whose task key is gone gets its task written again. The batch's rows
// ("line:unique_id" lines, sorted by line) become one member of the run's
// rows zset, scored by the batch's first line, so RunRows reads the rows in
// dataset order whatever the order concurrent writers' batches land in.
//
// KEYS[1] run hash, KEYS[2] run rows zset, KEYS[3] asynq:queues, then per
// row i (1-based) KEYS[3i+1] job hash, KEYS[3i+2] asynq task hash,
// KEYS[3i+3] asynq pending list.
// ARGV[1] run ID, ARGV[2] now ms, ARGV[3] now ns (asynq's pending_since),
// ARGV[4] TTL ms, ARGV[5] packed rows, ARGV[6] first line, then per row i
// at b = 6+6(i-1): ARGV[b+1] line, ARGV[b+2] task type, ARGV[b+3] asynq
// task ID, ARGV[b+4] queue, ARGV[b+5] encoded asynq TaskMessage, ARGV[b+6]
// content fingerprint (stored as `fp`; "" skips the check).
// A row whose job exists with another fingerprint is a conflict: nothing is
// written for it, it is counted rows+invalid, and its "line:unique_id" is
// left out of the rows zset member (see drop_lines).
// Returns one outcome per row (1 new, 2 duplicate, 3 repaired, 4
// conflict), or -1 if the run does not exist (nothing written).
var addJobsScript = redis.NewScript(luaFailGroups + luaContentCheck + asynqwire.LuaEnqueue + `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local rid, now, ns, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local n = (#KEYS - 3) / 3
local out, aq = {}, asynq_batch(KEYS[3])
local c = {enqueued = 0, duplicate = 0, submitted = 0, completed = 0, failed = 0, canceled = 0, notask = 0}
local conflicts, bad = {}, 0
for i = 1, n do
  local jk, tk, pk = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
  local b = 6 + 6 * (i - 1)
  local line, typ, tid, q, msg, fp = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4], ARGV[b + 5], ARGV[b + 6]
  if redis.call('EXISTS', jk) == 0 then
    redis.call('HSET', jk, 'line', line, 'type', typ, 'state', 'enqueued', 'created', now, 'runs', rid, 'fp', fp)
    redis.call('PEXPIRE', jk, ttl)
    asynq_put_task(aq, tk, pk, tid, q, msg, ns)
    c.enqueued = c.enqueued + 1
    out[i] = 1
  elseif content_differs(jk, fp) then
    conflicts[line] = true
    bad = bad + 1
    out[i] = 4
  else
    local j = redis.call('HMGET', jk, 'state', 'task_id', 'runs')
    local st, t = j[1], j[2] or ''
    local runs = j[3]
    if runs and runs ~= '' then runs = runs .. ' ' .. rid else runs = rid end
    redis.call('HSET', jk, 'runs', runs, 'updated', now)
    redis.call('PEXPIRE', jk, ttl)
    c.duplicate = c.duplicate + 1
    if t ~= '' then c.submitted = c.submitted + 1 end
    if st == 'completed' or st == 'failed' or st == 'canceled' then
      c[st] = c[st] + 1
      if t == '' then c.notask = c.notask + 1 end
    end
    if st == 'failed' then
      fail_groups({KEYS[1]}, jk, nil, redis.call('HGET', jk, 'error') or '', ttl)
    end
    out[i] = 2
    if st == 'enqueued' and asynq_put_task(aq, tk, pk, tid, q, msg, ns) then out[i] = 3 end
  end
end
asynq_push_pending(aq)
if bad > 0 then
  redis.call('HINCRBY', KEYS[1], 'rows', bad)
  redis.call('HINCRBY', KEYS[1], 'invalid', bad)
end
if n > bad then
  local seq = redis.call('HINCRBY', KEYS[1], 'chunks', 1)
  local packed = ARGV[5]
  if bad > 0 then packed = drop_lines(packed, conflicts) end
  redis.call('ZADD', KEYS[2], ARGV[6], seq .. '\n' .. packed)
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('HINCRBY', KEYS[1], 'rows', n - bad)
  redis.call('HINCRBY', KEYS[1], 'valid', n - bad)
  for f, d in pairs(c) do
    if d ~= 0 then redis.call('HINCRBY', KEYS[1], f, d) end
  end
end
redis.call('PEXPIRE', KEYS[1], ttl)
return out
`)

// Every transition script returns {changed, from, to, runsDone,
// runsAllSubmitted}, or {-1} if the job does not exist (nothing written);
// complete adds a sixth item, the reason of a conflicting delivery.

// luaMarkSubmitted defines mark_submitted (after luaRunHelpers):
// enqueued → submitted with the task ID (indexed, added to the in-flight
// set); a terminal job without a task ID gets the task ID (submitted
// counted, state kept). Otherwise a no-op. The run counter submitted grows
// only when the job had no task ID yet. With count true (the submit
// handler's successful create) it also counts one attempt and clears the
// last attempt's error (unless the job failed), whatever the transition
// does: one round trip per created task instead of two. A sixth reply
// item is 1 when every run of the job is canceled with -tasks (the task
// just recorded is to be canceled at the API).
//
// jk job hash, fk in-flight zset, ik task index key, prefix key prefix,
// tid task ID, now ms, ttl ms, uid unique_id.
const luaMarkSubmitted = `
local function mark_submitted(jk, fk, ik, prefix, tid, now, ttl, uid, count)
  local j = redis.call('HMGET', jk, 'state', 'task_id', 'runs', 'attempts', 'error')
  local st = j[1]
  if not st then return {-1} end
  local had = j[2] or ''
  local fv = {}
  if count then
    fv = {'attempts', num(j[4]) + 1, 'updated', now}
    if j[5] and st ~= 'failed' then redis.call('HDEL', jk, 'error') end
  end
  local deltas = {}
  local to = st
  if st == 'enqueued' then
    to = 'submitted'
    if had == '' then deltas.submitted = 1 end
    redis.call('HSET', jk, 'state', to, 'task_id', tid, 'submitted', now, 'updated', now, unpack(fv))
    redis.call('ZADD', fk, now, uid)
    redis.call('PEXPIRE', fk, ttl)
  elseif had == '' and is_terminal(st) then
    deltas.submitted = 1
    deltas.notask = -1
    redis.call('HSET', jk, 'task_id', tid, 'submitted', now, 'updated', now, unpack(fv))
  else
    if #fv > 0 then
      redis.call('HSET', jk, unpack(fv))
      redis.call('PEXPIRE', jk, ttl)
    end
    return {0, st, st, {}, {}}
  end
  redis.call('SET', ik, uid, 'PX', ttl)
  redis.call('PEXPIRE', jk, ttl)
  leave_retry(jk, deltas)
  local done, allsub, capi = apply_runs(prefix, j[3], deltas, now, ttl)
  local c = 0
  if capi then c = 1 end
  return {1, st, to, done, allsub, c}
end
`

// luaReplayRule defines replay_verdict (after luaRunHelpers): whether a
// terminal outcome may change a job, by the replay rule. A job that is
// submitted or terminal with a recorded task ID only takes outcomes of that
// task (else 'foreign_task'). A terminal job changes only for an outcome
// strictly newer, by the task's own timestamp (own), than its newest
// delivery (`delivered`; none for a job failed without a delivery); an
// outcome that is not newer but says what the job already holds (status
// and response) is a 'duplicate', any other one a conflict: 'no_timestamp'
// (the delivery carries no timestamp of the task) or 'not_newer'. It
// returns nil when the outcome applies.
//
// jk job hash, st its state, had its task ID, delivered its `delivered`
// (nil if none), rstatus its `status` (nil if none); tid, status, resp,
// nat (ms) and own (boolean) describe the outcome.
const luaReplayRule = `
local function replay_verdict(jk, st, had, delivered, rstatus, tid, status, resp, nat, own)
  if had ~= '' and tid ~= had and (st == 'submitted' or is_terminal(st)) then
    return 'foreign_task'
  end
  if not is_terminal(st) then return nil end
  local d = tonumber(delivered)
  if own and (not d or nat > d) then return nil end
  if rstatus == status and (redis.call('HGET', jk, 'response') or '') == resp then
    return 'duplicate'
  end
  if not own then return 'no_timestamp' end
  return 'not_newer'
end
`

// luaComplete defines complete (after luaRunHelpers and luaReplayRule): a
// terminal outcome from enqueued, submitted or a terminal state to the
// target state, when replay_verdict allows it. A duplicate is a no-op; a
// conflicting delivery changes nothing but the `conflicts` counter of the
// job's runs, and its reason is the reply's sixth item. A delivery older
// than the job's `delivered` (a job not terminal, only possible after a
// requeue) is a no-op as well. A task ID the job did not have yet is
// recorded, indexed and counted submitted.
//
// jk job hash, fk in-flight zset, ik task index key (of tid), prefix key
// prefix, to target state, status API status, resp response, err error,
// at delivery time ms, own "1" when at is the task's own timestamp (else
// the time of receipt), now ms, ttl ms, tid task ID ("" if unknown), uid
// unique_id.
const luaComplete = `
-- put_outcome adds an outcome's response and error to the job's field list
-- fv, and deletes the job's old response when the outcome has none, and
-- its old error when the outcome has none and clear_err.
local function put_outcome(jk, fv, resp, err, clear_err)
  if resp ~= '' then
    fv[#fv + 1] = 'response'
    fv[#fv + 1] = resp
  else
    redis.call('HDEL', jk, 'response')
  end
  if err ~= '' then
    fv[#fv + 1] = 'error'
    fv[#fv + 1] = err
  elseif clear_err then
    redis.call('HDEL', jk, 'error')
  end
end

local function complete(jk, fk, ik, prefix, to, status, resp, err, at, own, now, ttl, tid, uid)
  local j = redis.call('HMGET', jk, 'state', 'task_id', 'delivered', 'status', 'runs', 'error')
  local st = j[1]
  if not st then return {-1} end
  local had = j[2] or ''
  local nat = tonumber(at)
  local verdict = replay_verdict(jk, st, had, j[3], j[4], tid, status, resp, nat, own == '1')
  if verdict == 'duplicate' then
    return {0, st, st, {}, {}}
  elseif verdict then
    local done, allsub = apply_runs(prefix, j[5], {conflicts = 1}, now, ttl)
    return {0, st, st, done, allsub, verdict}
  end
  if j[3] then
    local d = tonumber(j[3])
    if nat < d or (nat == d and j[4] == status) then
      return {0, st, st, {}, {}}
    end
  end
  local deltas = {}
  if is_terminal(st) then deltas[st] = -1 end
  deltas[to] = (deltas[to] or 0) + 1
  local fv = {'state', to, 'status', status, 'delivered', at, 'updated', now}
  local newtid = had
  if had == '' and tid ~= '' then
    newtid = tid
    deltas.submitted = 1
    fv[#fv + 1] = 'task_id'
    fv[#fv + 1] = newtid
    fv[#fv + 1] = 'submitted'
    fv[#fv + 1] = now
    redis.call('SET', ik, uid, 'PX', ttl)
  elseif had ~= '' and had == tid then
    redis.call('PEXPIRE', ik, ttl)
  end
  local before = 0
  if is_terminal(st) and had == '' then before = 1 end
  local after = 0
  if newtid == '' then after = 1 end
  deltas.notask = after - before
  put_outcome(jk, fv, resp, err, to == 'completed' and j[6])
  if to == 'canceled' and st ~= 'canceled' and newtid ~= '' then
    count_cancel(prefix, jk, 'after_submit', ttl)
  end
  redis.call('HSET', jk, unpack(fv))
  redis.call('ZREM', fk, uid)
  redis.call('PEXPIRE', jk, ttl)
  if st == 'failed' or to == 'failed' then
    local out_err, in_err
    if st == 'failed' then out_err = j[6] or '' end
    if to == 'failed' then
      in_err = err
      if err == '' then in_err = j[6] or '' end
    end
    fail_groups_of_runs(prefix, j[5], jk, out_err, in_err, ttl)
  end
  leave_retry(jk, deltas)
  local done, allsub = apply_runs(prefix, j[5], deltas, now, ttl)
  return {1, st, to, done, allsub}
end
`

// markSubmittedScript runs mark_submitted.
//
// KEYS[1] job hash, KEYS[2] in-flight zset, KEYS[3] task index key.
// ARGV[1] prefix, ARGV[2] task ID, ARGV[3] now ms, ARGV[4] TTL ms, ARGV[5]
// unique_id, ARGV[6] "1" to count an attempt.
var markSubmittedScript = redis.NewScript(luaRunHelpers + luaMarkSubmitted + `
return mark_submitted(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6] == '1')
`)

// completeScript runs complete.
//
// KEYS[1] job hash, KEYS[2] in-flight zset, KEYS[3] task index key (of ARGV[9]).
// ARGV[1] prefix, ARGV[2] target state, ARGV[3] API status, ARGV[4]
// response, ARGV[5] error, ARGV[6] delivery time ms, ARGV[7] now ms,
// ARGV[8] TTL ms, ARGV[9] task ID ("" if unknown), ARGV[10] unique_id,
// ARGV[11] "1" when ARGV[6] is the task's own timestamp.
var completeScript = redis.NewScript(luaRunHelpers + luaReplayRule + luaComplete + `
return complete(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[11], ARGV[7], ARGV[8], ARGV[9], ARGV[10])
`)

// recordCreatedTerminalScript is a successful create whose answer already
// holds a terminal task: mark_submitted (counting the attempt), then
// complete with that outcome, atomically; the same as RecordCreated then
// Complete, in one round trip. It returns {changed, from, to, runsDone,
// runsAllSubmitted} of the two together (from before the first, to after
// the second; the runs of either), or {-1}.
//
// The common case, a queued job that never had a task nor a delivery, goes
// straight to the end state in half the Redis calls (it is on every row's
// path when the API finishes tasks at once, and Redis runs the scripts of
// all workers one at a time); TestRecordCreatedTerminal checks it leaves
// what the two steps leave.
//
// KEYS and ARGV[1..11] as completeScript's (ARGV[9] the created task's ID).
var recordCreatedTerminalScript = redis.NewScript(luaRunHelpers + luaMarkSubmitted + luaReplayRule + luaComplete + `
local j = redis.call('HMGET', KEYS[1], 'state', 'task_id', 'delivered', 'attempts', 'error', 'runs')
if not j[1] then return {-1} end
if j[1] == 'enqueued' and (j[2] or '') == '' and not j[3] then
  local to, now, ttl, tid = ARGV[2], ARGV[7], ARGV[8], ARGV[9]
  local fv = {'state', to, 'status', ARGV[3], 'delivered', ARGV[6], 'updated', now, 'task_id', tid,
    'submitted', now, 'attempts', num(j[4]) + 1}
  put_outcome(KEYS[1], fv, ARGV[4], ARGV[5], j[5])
  redis.call('HSET', KEYS[1], unpack(fv))
  -- Never submitted, so not in the in-flight set (KEYS[2]): nothing to add
  -- there and take out again.
  redis.call('SET', KEYS[3], ARGV[10], 'PX', ttl)
  redis.call('PEXPIRE', KEYS[1], ttl)
  if to == 'failed' then fail_groups_of_runs(ARGV[1], j[6], KEYS[1], nil, ARGV[5], ttl) end
  local deltas = {submitted = 1}
  deltas[to] = 1
  leave_retry(KEYS[1], deltas)
  local done, allsub = apply_runs(ARGV[1], j[6], deltas, now, ttl)
  return {1, 'enqueued', to, done, allsub}
end
local a = mark_submitted(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[9], ARGV[7], ARGV[8], ARGV[10], true)
if a[1] == -1 then return a end
local b = complete(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[11], ARGV[7], ARGV[8], ARGV[9], ARGV[10])
local changed = 0
if a[1] == 1 or b[1] == 1 then changed = 1 end
for _, x in ipairs(b[4]) do a[4][#a[4] + 1] = x end
for _, x in ipairs(b[5]) do a[5][#a[5] + 1] = x end
return {changed, a[2], b[3], a[4], a[5], b[6]}
`)

// failScript: enqueued|submitted → failed with the message (a permanent
// error before or without a task at the API). Otherwise a no-op.
//
// KEYS[1] job hash, KEYS[2] in-flight zset.
// ARGV[1] prefix, ARGV[2] message, ARGV[3] now ms, ARGV[4] TTL ms, ARGV[5] unique_id.
var failScript = redis.NewScript(luaRunHelpers + `
local j = redis.call('HMGET', KEYS[1], 'state', 'task_id', 'runs')
local st = j[1]
if not st then return {-1} end
if st ~= 'enqueued' and st ~= 'submitted' then
  return {0, st, st, {}, {}}
end
local deltas = {failed = 1}
if (j[2] or '') == '' then deltas.notask = 1 end
redis.call('HSET', KEYS[1], 'state', 'failed', 'error', ARGV[2], 'updated', ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
fail_groups_of_runs(ARGV[1], j[3], KEYS[1], nil, ARGV[2], ARGV[4])
leave_retry(KEYS[1], deltas)
local done, allsub = apply_runs(ARGV[1], j[3], deltas, ARGV[3], ARGV[4])
return {1, st, 'failed', done, allsub}
`)

// requeueScript: failed or canceled → enqueued, generation+1, error,
// status, delivery time and create reservation cleared; the runs' failed
// (canceled) counters drop by one (a done run goes back to running). The task ID is kept (submitted stays monotone).
// Clearing the delivery time lets the next outcome apply even if the API
// answers for the same task with the same time (a unique_id that maps to
// the task that already failed), so the job cannot stay submitted forever.
// Otherwise a no-op.
//
// KEYS[1] job hash. ARGV[1] prefix, ARGV[2] now ms, ARGV[3] TTL ms.
var requeueScript = redis.NewScript(luaRunHelpers + `
local j = redis.call('HMGET', KEYS[1], 'state', 'task_id', 'runs')
local st = j[1]
if not st then return {-1} end
if st ~= 'failed' and st ~= 'canceled' then
  return {0, st, st, {}, {}}
end
local deltas = {}
deltas[st] = -1
if (j[2] or '') == '' then
  deltas.notask = -1
  if st == 'canceled' then deltas.cancel_nosub = -1 end
end
if st == 'failed' then
  fail_groups_of_runs(ARGV[1], j[3], KEYS[1], redis.call('HGET', KEYS[1], 'error') or '', nil, ARGV[3])
end
redis.call('HSET', KEYS[1], 'state', 'enqueued', 'updated', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'generation', 1)
redis.call('HDEL', KEYS[1], 'error', 'status', 'delivered', 'reserved')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local done, allsub = apply_runs(ARGV[1], j[3], deltas, ARGV[2], ARGV[3])
return {1, st, 'enqueued', done, allsub}
`)

// recordAttemptScript counts one submission attempt and keeps its error
// (an empty error clears the previous one, unless the job failed). A failed
// attempt of a queued job also marks the job retrying (field retrying,
// counted once in each of its runs' retrying counter until the job changes
// state: leave_retry) and becomes its runs' last API error (fields
// last_error, last_error_at); a successful one ends the retrying.
// KEYS[1] job hash; ARGV[1] error, ARGV[2] now ms, ARGV[3] TTL ms,
// ARGV[4] prefix, ARGV[5] the error as kept on the run (bounded).
// Returns 1, or -1 if the job does not exist.
var recordAttemptScript = redis.NewScript(`
local j = redis.call('HMGET', KEYS[1], 'state', 'runs')
local st = j[1]
if not st then return -1 end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
local delta = 0
if ARGV[1] ~= '' then
  redis.call('HSET', KEYS[1], 'error', ARGV[1])
  if st == 'enqueued' and redis.call('HSETNX', KEYS[1], 'retrying', '1') == 1 then delta = 1 end
elseif st ~= 'failed' then
  redis.call('HDEL', KEYS[1], 'error')
  if redis.call('HDEL', KEYS[1], 'retrying') == 1 then delta = -1 end
end
redis.call('HSET', KEYS[1], 'updated', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if delta ~= 0 or ARGV[1] ~= '' then
  local seen = {}
  for rid in string.gmatch(j[2] or '', '%S+') do
    local rk = ARGV[4] .. 'run:' .. rid
    if redis.call('EXISTS', rk) == 1 then
      if delta ~= 0 then redis.call('HINCRBY', rk, 'retrying', delta) end
      if ARGV[1] ~= '' and not seen[rid] then
        redis.call('HSET', rk, 'last_error', ARGV[5], 'last_error_at', ARGV[2])
      end
    end
    seen[rid] = true
  end
end
return 1
`)

// reserveSpendScript reserves one unit under a cap, never overshooting.
// KEYS[1] day counter; ARGV[1] limit (<= 0: no cap), ARGV[2] TTL ms.
// Returns 1 reserved, 0 refused.
var reserveSpendScript = redis.NewScript(`
local limit = tonumber(ARGV[1])
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if limit > 0 and c >= limit then return 0 end
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// releaseSpendScript gives one reservation back, never below zero.
// KEYS[1] day counter. Returns the new count.
var releaseSpendScript = redis.NewScript(`
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if c <= 0 then return 0 end
return redis.call('DECR', KEYS[1])
`)

// timelinePointScript keeps one point per minute of a run's timeline (a
// zset scored by the sample time in ms; the member is "ms submitted
// completed failed canceled"): it replaces any point of the same minute,
// drops the oldest points past the cap and refreshes the TTL.
//
// KEYS[1] timeline zset. ARGV[1] sample ms, ARGV[2] start of its minute
// ms, ARGV[3] member, ARGV[4] max points, ARGV[5] TTL ms. Returns 1.
var timelinePointScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], ARGV[2], '(' .. (tonumber(ARGV[2]) + 60000))
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[4]) + 1))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
`)

// count429Script counts one 429 answer in the current minute's counter of
// a mode. KEYS[1] counter; ARGV[1] TTL ms. Returns the new count.
var count429Script = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return n
`)

// keepCallbackScript keeps one callback entry within a count and a byte
// budget: LPUSH, then RPOP the oldest entries (the new one too if it alone
// is over the budget) while the list is over either, keeping the list's
// size in bytes in a counter beside it; the dropped entries are counted.
// The list of whole bodies of earlier versions is unlinked.
//
// KEYS[1] list, KEYS[2] its bytes, KEYS[3] dropped counter, KEYS[4] the
// mode's unknown callback count, KEYS[5] the legacy list.
// ARGV[1] entry, ARGV[2] max entries, ARGV[3] max bytes, ARGV[4] TTL ms,
// ARGV[5] "1" to count an unknown callback. Returns the entries dropped.
var keepCallbackScript = redis.NewScript(`
redis.call('UNLINK', KEYS[5])
redis.call('LPUSH', KEYS[1], ARGV[1])
local bytes = redis.call('INCRBY', KEYS[2], string.len(ARGV[1]))
local n = redis.call('LLEN', KEYS[1])
local maxn, maxb = tonumber(ARGV[2]), tonumber(ARGV[3])
local dropped = 0
while n > 0 and (n > maxn or bytes > maxb) do
  local old = redis.call('RPOP', KEYS[1])
  bytes = redis.call('DECRBY', KEYS[2], string.len(old))
  n = n - 1
  dropped = dropped + 1
end
if n == 0 or bytes < 0 then redis.call('SET', KEYS[2], 0) end
if dropped > 0 then redis.call('INCRBY', KEYS[3], dropped) end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
if ARGV[5] == '1' then
  redis.call('INCR', KEYS[4])
  redis.call('PEXPIRE', KEYS[4], ARGV[4])
end
return dropped
`)

// Run control: cancel and operator pause (enqueue cancel, pause, resume).
//
// A run being canceled carries `cancel` (ms of the first request) and,
// with -tasks, `cancel_tasks`; a run paused by its operator carries
// `op_paused`. A job may get a task only while one of its runs still
// exists, is not canceled and is not paused by its operator: that check
// and the reservation of the create (job field `reserved`, ms) are one
// script, so a cancel or a pause either comes before the reservation (no
// task is created) or after it (the create is in flight, and counted so).

// luaRunControl defines, after luaRunHelpers:
//
// runs_verdict(prefix, runs): 'go' (some run is live and not paused, or
// no run exists any more), 'paused' (every live run is paused by its
// operator), 'canceled' (every existing run is canceled).
//
// cancel_unsubmitted(jk, prefix, runs, now, ttl): enqueued → canceled
// without a task (counted canceled, notask and cancel_nosub in every run);
// returns the runs done and all submitted.
const luaRunControl = `
local function runs_verdict(prefix, runs)
  local seen, any, live, active = {}, false, 0, false
  for rid in string.gmatch(runs or '', '%S+') do
    if not seen[rid] then
      seen[rid] = true
      local v = redis.call('HMGET', prefix .. 'run:' .. rid, 'state', 'cancel', 'op_paused')
      if v[1] then
        any = true
        if not v[2] then
          live = live + 1
          if v[3] ~= '1' then active = true end
        end
      end
    end
  end
  if any and live == 0 then return 'canceled' end
  if live > 0 and not active then return 'paused' end
  return 'go'
end

local function cancel_unsubmitted(jk, prefix, runs, now, ttl)
  redis.call('HSET', jk, 'state', 'canceled', 'error', 'canceled by the operator before submission', 'updated', now)
  redis.call('PEXPIRE', jk, ttl)
  local deltas = {canceled = 1, notask = 1, cancel_nosub = 1}
  count_cancel(prefix, jk, 'before_submit', ttl)
  leave_retry(jk, deltas)
  return apply_runs(prefix, runs, deltas, now, ttl)
end
`

// checkSubmitScript is the submit handler's check before (and, with
// reserve, just before) the create: see Store.CheckSubmit.
//
// KEYS[1] job hash. ARGV[1] prefix, ARGV[2] now ms, ARGV[3] TTL ms,
// ARGV[4] "1" to reserve the create, ARGV[5] "1" to cancel a job of
// canceled runs even if an earlier attempt reserved a create (the caller
// made sure no task holds its unique_id).
// Returns {-1} (no job), or {verdict, state, generation, runsDone,
// runsAllSubmitted} with verdict 0 not enqueued, 1 go (reserved with
// ARGV[4]), 2 paused by the operator, 3 canceled now, 4 canceled runs but
// an earlier attempt reserved a create (look the task up first).
var checkSubmitScript = redis.NewScript(luaRunHelpers + luaRunControl + `
local j = redis.call('HMGET', KEYS[1], 'state', 'runs', 'reserved', 'generation')
local st = j[1]
if not st then return {-1} end
local gen = j[4] or '0'
if st ~= 'enqueued' then return {0, st, gen, {}, {}} end
local verdict = runs_verdict(ARGV[1], j[2])
if verdict == 'canceled' then
  if j[3] and ARGV[5] ~= '1' then return {4, st, gen, {}, {}} end
  local done, allsub = cancel_unsubmitted(KEYS[1], ARGV[1], j[2], ARGV[2], ARGV[3])
  return {3, st, gen, done, allsub}
end
if verdict == 'paused' then return {2, st, gen, {}, {}} end
if ARGV[4] == '1' then redis.call('HSET', KEYS[1], 'reserved', ARGV[2]) end
return {1, st, gen, {}, {}}
`)

// requestCancelScript records a cancel request on a run: `cancel` (first
// request's time), `cancel_tasks` with -tasks (never unset), the operator
// pause lifted; state canceling, or canceled if every valid row is
// already terminal (a run still enqueuing keeps its state: FinishEnqueue
// moves it on). A done run is left alone.
//
// KEYS[1] run hash, KEYS[2] set of runs paused by their operator.
// ARGV[1] run ID, ARGV[2] now ms, ARGV[3] TTL ms, ARGV[4] "1" for -tasks.
// Returns 1 recorded (first or repeated), 0 the run is done, -1 no run.
var requestCancelScript = redis.NewScript(luaRunHelpers + `
local v = redis.call('HMGET', KEYS[1], 'state', 'valid', 'completed', 'failed', 'canceled', 'cancel')
local st = v[1]
if not st then return -1 end
if st == 'done' then return 0 end
if not v[6] then redis.call('HSET', KEYS[1], 'cancel', ARGV[2]) end
if ARGV[4] == '1' then redis.call('HSET', KEYS[1], 'cancel_tasks', '1') end
redis.call('HDEL', KEYS[1], 'op_paused', 'paused_reason')
redis.call('SREM', KEYS[2], ARGV[1])
if st ~= 'enqueuing' and st ~= 'canceled' then
  if num(v[3]) + num(v[4]) + num(v[5]) >= num(v[2]) then
    redis.call('HSET', KEYS[1], 'state', 'canceled', 'finished_at', ARGV[2])
  else
    redis.call('HSET', KEYS[1], 'state', 'canceling')
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

// cancelRowsScript cancels a page of a canceled run's rows: see
// Store.CancelRun. Per job: enqueued and not needed by a live run →
// canceled (unless a create is reserved: counted in flight); submitted and
// not needed by a live run → its unique_id is returned (for a cancel at
// the API); needed by a live run → counted shared.
//
// KEYS: the job hashes. ARGV[1] prefix, ARGV[2] now ms, ARGV[3] TTL ms.
// Returns {canceled, inflight, shared, {submitted unique_ids}, runsDone,
// runsAllSubmitted}.
var cancelRowsScript = redis.NewScript(luaRunHelpers + luaRunControl + `
local canceled, inflight, shared = 0, 0, 0
local subs, done, allsub = {}, {}, {}
local plen = string.len(ARGV[1]) + string.len('job:')
for i = 1, #KEYS do
  local j = redis.call('HMGET', KEYS[i], 'state', 'runs', 'reserved')
  local st = j[1]
  if st == 'enqueued' or st == 'submitted' then
    if runs_verdict(ARGV[1], j[2]) ~= 'canceled' then
      shared = shared + 1
    elseif st == 'submitted' then
      -- key: prefix .. 'job:' .. mode .. ':' .. uid
      local rest = string.sub(KEYS[i], plen + 1)
      local c = string.find(rest, ':', 1, true)
      subs[#subs + 1] = string.sub(rest, c + 1)
    elseif j[3] then
      inflight = inflight + 1
    else
      local d, a = cancel_unsubmitted(KEYS[i], ARGV[1], j[2], ARGV[2], ARGV[3])
      for _, x in ipairs(d) do done[#done + 1] = x end
      for _, x in ipairs(a) do allsub[#allsub + 1] = x end
      canceled = canceled + 1
    end
  end
end
return {canceled, inflight, shared, subs, done, allsub}
`)

// opPauseScript pauses (ARGV[3] "1") or resumes ("0") a run for its
// operator. Pause: a run enqueuing, running or paused by the daily cap
// gets op_paused and the reason (state paused, unless still enqueuing:
// FinishEnqueue pauses it) and joins the paused set. Resume: op_paused and
// the reason go; a paused run is running again (the daily cap pauses it
// again at the next job if it still applies).
//
// KEYS[1] run hash, KEYS[2] set of runs paused by their operator.
// ARGV[1] run ID, ARGV[2] reason, ARGV[3] "1" pause / "0" resume, ARGV[4] TTL ms.
// Returns {1, state} changed, {0, state} no-op (already so), {-2, state}
// not possible in this state, {-1} no run.
var opPauseScript = redis.NewScript(`
local st, op = unpack(redis.call('HMGET', KEYS[1], 'state', 'op_paused'))
if not st then return {-1} end
if ARGV[3] == '1' then
  if st ~= 'enqueuing' and st ~= 'running' and st ~= 'paused' then return {-2, st} end
  if op == '1' then return {0, st} end
  redis.call('HSET', KEYS[1], 'op_paused', '1', 'paused_reason', ARGV[2])
  if st ~= 'enqueuing' then
    redis.call('HSET', KEYS[1], 'state', 'paused')
    st = 'paused'
  end
  redis.call('SADD', KEYS[2], ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
else
  if op ~= '1' then return {0, st} end
  redis.call('HDEL', KEYS[1], 'op_paused', 'paused_reason')
  if st == 'paused' then
    redis.call('HSET', KEYS[1], 'state', 'running')
    st = 'running'
  end
  redis.call('SREM', KEYS[2], ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {1, st}
`)

// liftCancelScript takes a cancel back (enqueue retry of a canceled run):
// cancel and cancel_tasks go; a canceling or canceled run is running again
// (done if every valid row is terminal). KEYS[1] run hash; ARGV[1] TTL ms.
// Returns 1 lifted, 0 not canceled, -1 no run.
var liftCancelScript = redis.NewScript(luaRunHelpers + `
local v = redis.call('HMGET', KEYS[1], 'state', 'valid', 'completed', 'failed', 'canceled', 'cancel')
if not v[1] then return -1 end
if not v[6] then return 0 end
redis.call('HDEL', KEYS[1], 'cancel', 'cancel_tasks')
if v[1] == 'canceling' or v[1] == 'canceled' then
  if num(v[3]) + num(v[4]) + num(v[5]) >= num(v[2]) then
    redis.call('HSET', KEYS[1], 'state', 'done')
  else
    redis.call('HSET', KEYS[1], 'state', 'running')
    redis.call('HDEL', KEYS[1], 'finished_at')
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
`)

// cancelTargetScript reads what a cancel at the API needs: see
// Store.CancelTarget. KEYS[1] job hash; ARGV[1] prefix.
// Returns {state, task_id, verdict} or {-1} (no job).
var cancelTargetScript = redis.NewScript(luaRunHelpers + luaRunControl + `
local j = redis.call('HMGET', KEYS[1], 'state', 'task_id', 'runs')
if not j[1] then return {-1} end
return {j[1], j[2] or '', runs_verdict(ARGV[1], j[3])}
`)
