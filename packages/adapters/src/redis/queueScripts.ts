/**
 * The Redis queue's Lua scripts (see `Queue.ts` for the layout they keep), the order of the fields they return a job
 * in, and the decoding of those replies into `Job`s.
 *
 * Every script: KEYS[1] is one of the prefix's keys (so a cluster routes the script to the prefix's slot),
 * ARGV[1] the prefix, ARGV[2] the caller's time. A script's Redis time grows with its commands and with what its
 * body allocates on each run, so the scripts read a job once (`read`, with its sequence number), write it once
 * (`UPDATE` also patches the fields read, which then are the reply), keep counters and waits per queue only
 * (`stats` adds them up), and build keys inline (`luaMacros.ts`) rather than through closures and tables.
 *
 * @since 0.1.0
 */
import { type AgentId, type Job, type JobId, JobState, Task } from "@mandate/core"
import { Result, type Schema } from "effect"
import { Redis } from "effect/persistence"
import { queueKeyFamilies, queueSingleKeys } from "./Keys.ts"
import { expandMacros } from "./luaMacros.ts"

// The order of the fields every script returns a job in (HMGET), and `toJob` reads
export const FIELDS = [
  "id",
  "queue",
  "payload",
  "priority",
  "state",
  "runAt",
  "attempts",
  "maxAttempts",
  "idempotencyKey",
  "pool",
  "leaseWorker",
  "leaseExpires",
  "lastError",
  "result",
  "createdAt",
  "updatedAt",
  "claimedAt",
  "finishedAt",
  "failures"
] as const

export type Fields = ReadonlyArray<string | null>

// Replies come from this layer's own scripts over fields they wrote: a hand-written check of each field (a string,
// a number, a known state or priority) replaces a Schema decode of the whole job, which cost more client CPU per
// claimed job than the rest of the claim. Anything unexpected is still refused (a store error), never passed on.
const JOB_STATES: ReadonlySet<string> = new Set(JobState.literals)
const PRIORITIES: ReadonlySet<string> = new Set(Task.Priority.literals)
const bad = (field: string, value: unknown): never => {
  throw new Error(`Unexpected value in job field ${field}: ${value === null ? "nil" : JSON.stringify(value)}`)
}
const text = (value: unknown, field: string): string => (typeof value === "string" ? value : bad(field, value))
const oneOf = (value: unknown, field: string, allowed: ReadonlySet<string>): string =>
  typeof value === "string" && allowed.has(value) ? value : bad(field, value)
// Redis answers a Lua number as an integer, a stored field as text
const num = (value: unknown, field: string): number => {
  const n = typeof value === "number" ? value : typeof value === "string" && value !== "" ? Number(value) : Number.NaN
  return Number.isFinite(n) ? n : bad(field, value)
}
const int = (value: unknown, field: string): number => {
  const n = num(value, field)
  return Number.isSafeInteger(n) ? n : bad(field, value)
}
const json = (value: unknown, field: string): Schema.Json => JSON.parse(text(value, field)) as Schema.Json

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

// A job from its fields as a script returned them (`FIELDS` order); a hash that does not read is a store error
export const toJob = (f: Fields): Result.Result<Job, unknown> => {
  try {
    const job: Mutable<Job> = {
      id: text(f[0], "id") as JobId,
      queue: text(f[1], "queue"),
      payload: json(f[2], "payload"),
      priority: oneOf(f[3], "priority", PRIORITIES) as Job["priority"],
      state: oneOf(f[4], "state", JOB_STATES) as Job["state"],
      runAt: num(f[5], "runAt"),
      attempts: int(f[6], "attempts"),
      maxAttempts: int(f[7], "maxAttempts"),
      createdAt: num(f[14], "createdAt"),
      updatedAt: num(f[15], "updatedAt"),
      // absent in jobs written before the field existed
      failures: f[18] === null ? 0 : int(f[18], "failures")
    }
    if (f[8] !== null) job.idempotencyKey = text(f[8], "idempotencyKey")
    if (f[9] !== null && f[9] !== "") job.pool = text(f[9], "pool")
    if (f[10] !== null && f[10] !== "") {
      job.lease = { workerId: text(f[10], "leaseWorker") as AgentId, expiresAt: num(f[11], "leaseExpires") }
    }
    if (f[12] !== null) job.lastError = text(f[12], "lastError")
    if (f[13] !== null) job.result = json(f[13], "result")
    if (f[16] !== null) job.claimedAt = num(f[16], "claimedAt")
    if (f[17] !== null && f[17] !== "") job.finishedAt = num(f[17], "finishedAt")
    return Result.succeed(job)
  } catch (cause) {
    return Result.fail(cause)
  }
}

// A claimed job from a claim's reply (see `claimJobs`: its values from `at` on) and what the claim set: the lease
// and the claim time
export const claimedJob = (
  reply: ReadonlyArray<string | number | null>,
  at: number,
  workerId: AgentId,
  expiresAt: number,
  now: number
): Result.Result<Job, unknown> => {
  try {
    const job: Mutable<Job> = {
      id: text(reply[at + 3], "id") as JobId,
      queue: text(reply[at], "queue"),
      payload: json(reply[at + 1], "payload"),
      priority: oneOf(reply[at + 2], "priority", PRIORITIES) as Job["priority"],
      state: "claimed",
      runAt: num(reply[at + 4], "runAt"),
      attempts: int(reply[at + 5], "attempts"),
      maxAttempts: int(reply[at + 6], "maxAttempts"),
      lease: { workerId, expiresAt },
      createdAt: num(reply[at + 10], "createdAt"),
      updatedAt: now,
      claimedAt: now,
      failures: reply[at + 11] === null ? 0 : int(reply[at + 11], "failures")
    }
    if (reply[at + 7] !== null) job.idempotencyKey = text(reply[at + 7], "idempotencyKey")
    if (reply[at + 8] !== null && reply[at + 8] !== "") job.pool = text(reply[at + 8], "pool")
    if (reply[at + 9] !== null) job.lastError = text(reply[at + 9], "lastError")
    return Result.succeed(job)
  } catch (cause) {
    return Result.fail(cause)
  }
}

const prelude = `
local P = ARGV[1]
local now = tonumber(ARGV[2])
local SCALE = 4398046511104
local RANKS = {critical = 0, high = 1, normal = 2, low = 3}
-- the rank as a member's digit: a number concatenated to a string is formatted ('%.14g') each time
local DIGITS = {critical = '0', high = '1', normal = '2', low = '3'}
-- a computed score as text for redis.call, which formats a Lua number with '%.17g' (a float formatting, several times
-- the cost of the command's own work on it): an integer by '%d', which gives the same text; anything else as is
local floor = math.floor
local function int_text(x)
  if x == floor(x) and x > -1e15 and x < 1e15 then return string.format('%d', x) end
  return x
end
local function read(id) return redis.call('HMGET', k_job(id), ${[...FIELDS, "seq"].map((f) => `'${f}'`).join(", ")}) end
local function bucket(q, pool) return q .. '/' .. pool end
local function member(seq, priority, id) return string.format('%016d', tonumber(seq)) .. DIGITS[priority] .. id end
local function count(q, field, by)
  if by ~= 0 then redis.call('HINCRBY', k_counts(q), field, by) end
end
local function pending(state) return state == 'queued' or state == 'failed' end
local function move(q, priority, from, to)
  if from then count(q, from, -1) end
  count(q, to, 1)
  local was = from and pending(from)
  local is = pending(to)
  if was and not is then count(q, 'pending:' .. priority, -1) end
  if is and not was then count(q, 'pending:' .. priority, 1) end
end
-- the wait of the job's latest claim counts while the job was not rescheduled since (claimedAt >= runAt)
local function sync_wait(q, id, claimedAt, runAt)
  if claimedAt and claimedAt ~= '' and tonumber(claimedAt) >= tonumber(runAt) then
    redis.call('ZADD', k_waits(q), tonumber(claimedAt) - tonumber(runAt), id)
  elseif claimedAt and claimedAt ~= '' then
    redis.call('ZREM', k_waits(q), id)
  end
end
-- a signal's 'w' names the layer that wrote it when that layer wakes its own workers itself ('1': nobody), so its
-- wake-up reader can skip it (see Wakeups.ts)
local function signal(q, origin) redis.call('XADD', k_signal(q), 'MAXLEN', '~', '100', '*', 'w', origin or '1') end
-- a pending job into its bucket: ready when due, delayed otherwise
local function schedule(q, pool, seq, priority, id, runAt)
  local m = member(seq, priority, id)
  local b = bucket(q, pool)
  if tonumber(runAt) <= now then
    redis.call('ZADD', k_ready(b), int_text(RANKS[priority] * SCALE + tonumber(runAt)), m)
  else
    redis.call('ZADD', k_delayed(b), runAt, m)
  end
end
local function unschedule(q, pool, seq, priority, id)
  local m = member(seq, priority, id)
  local b = bucket(q, pool)
  redis.call('ZREM', k_ready(b), m)
  redis.call('ZREM', k_delayed(b), m)
end
`

// The field positions in a read (Lua is 1-based); `seq` follows FIELDS
const F = Object.fromEntries([...FIELDS, "seq"].map((name, i) => [name, i + 1])) as Record<
  (typeof FIELDS)[number] | "seq",
  number
>

// What a claim answers per job: the fields it does not set itself, with the job's id in place of the state (it is
// `claimed` now) and the attempts counted
const CLAIM_READ = [
  "queue",
  "payload",
  "priority",
  "state",
  "runAt",
  "attempts",
  "maxAttempts",
  "idempotencyKey",
  "pool",
  "lastError",
  "createdAt",
  "failures"
] as const
// What a claim reads of each job: the rest of `CLAIM_READ` it knows from the bucket (queue, pool) and the member
// (priority), and the state it replaces by the id
const CLAIM_HMGET = [
  "payload",
  "state",
  "runAt",
  "attempts",
  "maxAttempts",
  "idempotencyKey",
  "lastError",
  "createdAt",
  "failures"
] as const
const H = Object.fromEntries(CLAIM_HMGET.map((name, i) => [name, i + 1])) as Record<
  (typeof CLAIM_HMGET)[number],
  number
>
// The Lua expressions of a claimed job's reply, in `CLAIM_READ` order
const claimReplyValues = CLAIM_READ.map((field) => {
  switch (field) {
    case "queue":
      return "q"
    case "priority":
      return "priority"
    case "pool":
      return "owner[2]"
    case "state":
      return "id"
    case "attempts":
      return "attempts"
    default:
      return `r[${H[field]}]`
  }
})
// How many values a claim answers per job
export const CLAIM_WIDTH = CLAIM_READ.length

// The scripts' macros (`k_name(…)`, `UPDATE(…)`) against the queue's key layout and the fields of a read
const expand = (source: string): string =>
  expandMacros(source, { families: queueKeyFamilies, singles: queueSingleKeys, fields: F })

// Expired leases back to their bucket, or dead-lettered without attempts left; returns the jobs it changed
const requeueFunction = `
local function requeue_expired(limit)
  local out = {}
  local ids = redis.call('ZRANGEBYSCORE', k_leases(), '-inf', ARGV[2], 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    redis.call('ZREM', k_leases(), id)
    local j = read(id)
    local state = j[${F.state}]
    if j[${F.id}] and (state == 'claimed' or state == 'running') then
      local q, pool, priority = j[${F.queue}], j[${F.pool}] or '', j[${F.priority}]
      local failures = tonumber(j[${F.failures}]) + 1
      local lastError = 'lease expired (held by ' .. j[${F.leaseWorker}] .. ')'
      count(q, 'failures', 1)
      if tonumber(j[${F.attempts}]) >= tonumber(j[${F.maxAttempts}]) then
        UPDATE(id, j, 'state', 'dead_lettered', 'finishedAt', ARGV[2], 'leaseWorker', '', 'leaseExpires', '',
          'lastError', lastError, 'failures', failures, 'updatedAt', ARGV[2])
        move(q, priority, state, 'dead_lettered')
      else
        UPDATE(id, j, 'state', 'queued', 'runAt', ARGV[2], 'leaseWorker', '', 'leaseExpires', '',
          'lastError', lastError, 'failures', failures, 'updatedAt', ARGV[2])
        move(q, priority, state, 'queued')
        sync_wait(q, id, j[${F.claimedAt}], now)
        schedule(q, pool, j[${F.seq}], priority, id, now)
        signal(q)
      end
      out[#out + 1] = j
    end
  end
  return out
end
`

// ARGV: prefix, now, n, then per job: whether to register its bucket ("1"/"0"), id, queue, pool, priority, runAt,
// maxAttempts, idempotency key and its field in the idempotency hash ("" for none), payload; then the origin of
// the signals: the token of a layer that wakes its own idle workers itself, or "" (see Wakeups.ts)
// Returns per job 1 when stored, or the fields of the existing job its idempotency key returned (a flat reply: no
// table per job to build and encode)
export const enqueueJobs = Redis.script(
  (keySequence: string, prefix: string, now: number, n: number, jobs: ReadonlyArray<string>, origin = "") => [
    keySequence,
    prefix,
    now,
    n,
    ...jobs,
    origin
  ],
  {
    numberOfKeys: 1,
    lua: expand(`${prelude}
local n = tonumber(ARGV[3])
local origin = ARGV[4 + n * 10]
if origin == '' then origin = nil end
local out = {}
-- every queue that got a job is signalled, delayed ones included: a waiting worker then learns when it is due
local touched = {}
local added = {}
-- the sequence is read once and written back once; the sorted sets get one ZADD per key, not per job
local seq = tonumber(redis.call('GET', k_sequence()) or '0')
local first = seq
local lists, ready, delayed = {}, {}, {}
local function push(t, key, score, m)
  local l = t[key]
  if not l then
    l = {}
    t[key] = l
  end
  l[#l + 1] = score
  l[#l + 1] = m
end
-- what the previous job's queue, pool and priority gave (a merged call's jobs mostly share them): no string is
-- built per job for its bucket and counter keys
local lastQ, lastPool, lastPriority, key, countKey, list, rank, digit
for i = 0, n - 1 do
  local a = 4 + i * 10
  local register, id, q, pool, priority, runAt, maxAttempts, idemKey, idem, payload = ARGV[a], ARGV[a + 1],
    ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8], ARGV[a + 9]
  local existing = false
  if idem ~= '' then existing = redis.call('HGET', k_idempotency(), idem) end
  if existing then
    out[i + 1] = read(existing)
  else
    seq = seq + 1
    -- the sequence as text once: a Lua number given to redis.call is formatted ('%.17g') at every use
    local s = string.format('%d', seq)
    -- no lease yet and the pool-less bucket: 'leaseWorker' and 'pool' are absent, which every reader takes as ''
    -- (jobs written before kept both as ''); numbers that do not vary are written as text. State and attempts come
    -- first: a hash this small is one list, which every field lookup scans from its head
    if idem ~= '' then
      if pool ~= '' then
        redis.call('HSET', k_job(id), 'state', 'queued', 'attempts', '0', 'id', id, 'queue', q, 'payload', payload,
          'priority', priority, 'runAt', runAt, 'maxAttempts', maxAttempts, 'createdAt', ARGV[2], 'updatedAt',
          ARGV[2], 'failures', '0', 'seq', s, 'pool', pool, 'idempotencyKey', idemKey, 'idempotencyField', idem)
      else
        redis.call('HSET', k_job(id), 'state', 'queued', 'attempts', '0', 'id', id, 'queue', q, 'payload', payload,
          'priority', priority, 'runAt', runAt, 'maxAttempts', maxAttempts, 'createdAt', ARGV[2], 'updatedAt',
          ARGV[2], 'failures', '0', 'seq', s, 'idempotencyKey', idemKey, 'idempotencyField', idem)
      end
      redis.call('HSET', k_idempotency(), idem, id)
    elseif pool ~= '' then
      redis.call('HSET', k_job(id), 'state', 'queued', 'attempts', '0', 'id', id, 'queue', q, 'payload', payload,
        'priority', priority, 'runAt', runAt, 'maxAttempts', maxAttempts, 'createdAt', ARGV[2], 'updatedAt', ARGV[2],
        'failures', '0', 'seq', s, 'pool', pool)
    else
      redis.call('HSET', k_job(id), 'state', 'queued', 'attempts', '0', 'id', id, 'queue', q, 'payload', payload,
        'priority', priority, 'runAt', runAt, 'maxAttempts', maxAttempts, 'createdAt', ARGV[2], 'updatedAt', ARGV[2],
        'failures', '0', 'seq', s)
    end
    if q ~= lastQ or pool ~= lastPool or priority ~= lastPriority then
      if q ~= lastQ then
        list = lists[q]
        if not list then
          list = {}
          lists[q] = list
        end
      end
      lastQ, lastPool, lastPriority = q, pool, priority
      key = q .. '/' .. pool
      countKey = q .. ' ' .. priority
      rank = RANKS[priority]
      digit = DIGITS[priority]
      if register == '1' and not added[key] then
        added[key] = true
        redis.call('SADD', k_queues(), q)
        redis.call('SADD', k_pools(q), pool)
      end
    elseif register == '1' and not added[key] then
      added[key] = true
      redis.call('SADD', k_queues(), q)
      redis.call('SADD', k_pools(q), pool)
    end
    list[#list + 1] = s
    list[#list + 1] = id
    added[countKey] = (added[countKey] or 0) + 1
    local m = string.format('%016d', seq) .. digit .. id
    local at = tonumber(runAt)
    if at <= now then
      push(ready, key, int_text(rank * SCALE + at), m)
    else
      push(delayed, key, runAt, m)
    end
    touched[q] = (touched[q] or 0) + 1
    out[i + 1] = 1
  end
end
local function zadd(key, l)
  for i = 1, #l, 2000 do redis.call('ZADD', key, unpack(l, i, math.min(#l, i + 1999))) end
end
if seq > first then redis.call('SET', k_sequence(), seq) end
for q, l in pairs(lists) do zadd(k_list(q), l) end
for b, l in pairs(ready) do zadd(k_ready(b), l) end
for b, l in pairs(delayed) do zadd(k_delayed(b), l) end
-- counters once per queue and priority, not per job
for q, n in pairs(touched) do
  count(q, 'queued', n)
  signal(q, origin)
end
for priority in pairs(RANKS) do
  for q in pairs(touched) do count(q, 'pending:' .. priority, added[q .. ' ' .. priority] or 0) end
end
return out
`)
  }
).withReturnType<ReadonlyArray<1 | Fields>>()

// Due delayed jobs (and retries) of the script's \`buckets\` join their bucket's ready set, as a claim sees them
const promoteDue = `-- due delayed jobs (and retries) join their bucket's ready set first
for _, b in ipairs(buckets) do
  local due = redis.call('ZRANGEBYSCORE', k_delayed(b), '-inf', ARGV[2], 'WITHSCORES', 'LIMIT', 0, 1000)
  for i = 1, #due, 2 do
    redis.call('ZREM', k_delayed(b), due[i])
    redis.call('ZADD', k_ready(b), int_text(tonumber(string.sub(due[i], 17, 17)) * SCALE + tonumber(due[i + 1])), due[i])
  end
end`

// ARGV: prefix, now, whether to check ("1": the idempotency key and the waiting jobs are checked here; "0": a unit
// checked them and guards what it read), whether to register the job's bucket ("1"/"0"), id, queue, pool,
// priority, runAt (not after now), maxAttempts, idempotency key and its field ("" for none), payload, worker,
// lease expiry, origin of the signal (see `enqueueJobs`). A hand-off (`Queue.enqueueClaimed`): the job is stored
// claimed by the worker (attempt 1, leased), unless a job of a higher priority waits ready where the worker would
// claim it from (due delayed jobs count: they are promoted first, as a claim would): then it is enqueued ready, as
// `enqueueJobs` would. Returns {1} when handed, {2} when enqueued ready, {0, fields} when the idempotency key
// returned an existing job
export const enqueueClaimedJob = Redis.script(
  (
    keySequence: string,
    prefix: string,
    now: number,
    check: boolean,
    register: boolean,
    job: ReadonlyArray<string>,
    workerId: string,
    expiresAt: number,
    origin = ""
  ) => [keySequence, prefix, now, check ? "1" : "0", register ? "1" : "0", ...job, workerId, expiresAt, origin],
  {
    numberOfKeys: 1,
    lua: expand(`${prelude}
local check, register = ARGV[3] == '1', ARGV[4] == '1'
local id, q, pool, priority, runAt, maxAttempts, idemKey, idem, payload = ARGV[5], ARGV[6], ARGV[7], ARGV[8],
  ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13]
local worker, expires, origin = ARGV[14], ARGV[15], ARGV[16]
if origin == '' then origin = nil end
local rank = RANKS[priority]
local passes = false
if check then
  if idem ~= '' then
    local existing = redis.call('HGET', k_idempotency(), idem)
    if existing then return {0, read(existing)} end
  end
  local buckets = {bucket(q, '')}
  if pool ~= '' then buckets[2] = bucket(q, pool) end
  ${promoteDue}
  for _, b in ipairs(buckets) do
    local top = redis.call('ZRANGE', k_ready(b), 0, 0)[1]
    if top and tonumber(string.sub(top, 17, 17)) < rank then passes = true end
  end
end
-- numbers as text (see enqueueJobs); 'pool' absent for the pool-less bucket, 'leaseWorker' until leased
local seq = string.format('%d', tonumber(redis.call('GET', k_sequence()) or '0') + 1)
redis.call('SET', k_sequence(), seq)
local fields = {'id', id, 'queue', q, 'payload', payload, 'priority', priority, 'runAt', runAt, 'maxAttempts',
  maxAttempts, 'createdAt', ARGV[2], 'updatedAt', ARGV[2], 'failures', '0', 'seq', seq}
local function set(field, value)
  fields[#fields + 1] = field
  fields[#fields + 1] = value
end
if pool ~= '' then set('pool', pool) end
if idem ~= '' then
  set('idempotencyKey', idemKey)
  set('idempotencyField', idem)
  redis.call('HSET', k_idempotency(), idem, id)
end
if passes then
  set('state', 'queued')
  set('attempts', '0')
  redis.call('HSET', k_job(id), unpack(fields))
  redis.call('ZADD', k_ready(bucket(q, pool)), int_text(rank * SCALE + tonumber(runAt)), member(seq, priority, id))
  count(q, 'queued', 1)
  count(q, 'pending:' .. priority, 1)
  signal(q, origin)
else
  set('state', 'claimed')
  set('attempts', '1')
  set('leaseWorker', worker)
  set('leaseExpires', expires)
  set('claimedAt', ARGV[2])
  redis.call('HSET', k_job(id), unpack(fields))
  redis.call('ZADD', k_leases(), expires, id)
  redis.call('ZADD', k_waits(q), int_text(now - tonumber(runAt)), id)
  count(q, 'claimed', 1)
end
redis.call('ZADD', k_list(q), seq, id)
if register then
  redis.call('SADD', k_queues(), q)
  redis.call('SADD', k_pools(q), pool)
end
if passes then return {2} end
return {1}
`)
  }
).withReturnType<readonly [1] | readonly [2] | readonly [0, Fields]>()

// ARGV: prefix, now, max, worker, lease expiry, pool ("" for none), requeue limit, queues…
// Returns how many jobs it claimed, then each job's `CLAIM_READ` fields (flat, most urgent first) with the id in
// place of the state and the attempts counted (see `claimedJob`); when none was ready, {next due} instead: when the first delayed job
// of these buckets comes due ('%.17g'), or '' when none waits (what `nextDue` would answer right after)
export const claimJobs = Redis.script(
  (
    keySequence: string,
    prefix: string,
    now: number,
    max: number,
    workerId: string,
    expiresAt: number,
    pool: string,
    requeueLimit: number,
    queues: ReadonlyArray<string>
  ) => [keySequence, prefix, now, max, workerId, expiresAt, pool, requeueLimit, ...queues],
  {
    numberOfKeys: 1,
    lua: expand(`${prelude}${requeueFunction}
local max, worker, expires, pool = tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
local PRIORITIES = {['0'] = 'critical', ['1'] = 'high', ['2'] = 'normal', ['3'] = 'low'}
-- a crashed worker's jobs are claimable without waiting for the sweep
if redis.call('ZRANGEBYSCORE', k_leases(), '-inf', ARGV[2], 'LIMIT', 0, 1)[1] then requeue_expired(tonumber(ARGV[7])) end
-- each bucket's queue and pool: a job's are those of the bucket it is in, so a claim does not read them
local buckets, owners = {}, {}
for i = 8, #ARGV do
  local b = bucket(ARGV[i], '')
  buckets[#buckets + 1] = b
  owners[b] = {ARGV[i], ''}
  if pool ~= '' then
    b = bucket(ARGV[i], pool)
    buckets[#buckets + 1] = b
    owners[b] = {ARGV[i], pool}
  end
end
${promoteDue}
local chosen, from = {}, {}
local function nothing_ready()
  local next = nil
  for _, b in ipairs(buckets) do
    local top = redis.call('ZRANGE', k_delayed(b), 0, 0, 'WITHSCORES')
    if top[2] and (not next or tonumber(top[2]) < next) then next = tonumber(top[2]) end
  end
  if next then return {string.format('%.17g', next)} end
  return {''}
end
if #buckets == 1 then
  -- ZPOPMIN's order, without its scores (Redis formats each as a float, per job)
  local popped = max > 0 and redis.call('ZRANGE', k_ready(buckets[1]), 0, max - 1) or {}
  if popped[1] then redis.call('ZREMRANGEBYRANK', k_ready(buckets[1]), 0, #popped - 1) end
  for i = 1, #popped do
    chosen[i] = popped[i]
    from[i] = buckets[1]
  end
else
  local candidates = {}
  for _, b in ipairs(buckets) do
    local top = redis.call('ZRANGE', k_ready(b), 0, max - 1, 'WITHSCORES')
    for i = 1, #top, 2 do candidates[#candidates + 1] = {top[i], tonumber(top[i + 1]), b} end
  end
  table.sort(candidates, function(x, y)
    if x[2] ~= y[2] then return x[2] < y[2] end
    return x[1] < y[1]
  end)
  for i = 1, math.min(max, #candidates) do
    redis.call('ZREM', k_ready(candidates[i][3]), candidates[i][1])
    chosen[#chosen + 1] = candidates[i][1]
    from[#from + 1] = candidates[i][3]
  end
end
if #chosen == 0 then return nothing_ready() end
local out = {0}
local o = 1
local moved = {}
-- the leases and (per queue) the waits are added once per claim
local leases, waits = {}, {}
for n, m in ipairs(chosen) do
  local id = string.sub(m, 18)
  local owner = owners[from[n]]
  -- queue and pool from the bucket, priority from the member (its rank digit)
  local q, priority = owner[1], PRIORITIES[string.sub(m, 17, 17)]
  -- the other fields a claim does not set (a claimable job has no result, lease or finish time)
  local key = k_job(id)
  local r = redis.call('HMGET', key, ${CLAIM_HMGET.map((f) => `'${f}'`).join(", ")})
  local state, runAt = r[${H.state}], tonumber(r[${H.runAt}])
  -- a first attempt as text: a Lua number given to redis.call is formatted ('%.17g')
  local attempts = r[${H.attempts}] == '0' and '1' or tonumber(r[${H.attempts}]) + 1
  redis.call('HSET', key, 'state', 'claimed', 'attempts', attempts, 'leaseWorker', worker, 'leaseExpires', expires,
    'claimedAt', ARGV[2], 'updatedAt', ARGV[2])
  -- the reply, in CLAIM_READ order: the id in place of the state (it is claimed now), the attempts counted; one
  -- flat list for every job (a table per job cost its conversion to a reply, per job)
  ${CLAIM_READ.map((_, i) => `out[o + ${i + 1}] = ${claimReplyValues[i]}`).join("\n  ")}
  o = o + ${CLAIM_READ.length}
  leases[#leases + 1] = expires
  leases[#leases + 1] = id
  if now >= runAt then
    local w = waits[q]
    if not w then
      w = {}
      waits[q] = w
    end
    w[#w + 1] = int_text(now - runAt)
    w[#w + 1] = id
  else
    -- a runAt ahead of this clock (another host's): no wait to count (see sync_wait)
    redis.call('ZREM', k_waits(q), id)
  end
  -- counted per (queue, state, priority) in nested tables: no key string built per job
  local byQ = moved[q]
  if not byQ then
    byQ = {}
    moved[q] = byQ
  end
  local byState = byQ[state]
  if not byState then
    byState = {}
    byQ[state] = byState
  end
  byState[priority] = (byState[priority] or 0) + 1
end
out[1] = #chosen
if #leases > 0 then redis.call('ZADD', k_leases(), unpack(leases)) end
for q, w in pairs(waits) do redis.call('ZADD', k_waits(q), unpack(w)) end
-- counters once per (queue, state, priority) claimed from
for q, byQ in pairs(moved) do
  for state, byState in pairs(byQ) do
    for priority, n in pairs(byState) do
      count(q, state, -n)
      count(q, 'claimed', n)
      count(q, 'pending:' .. priority, -n)
    end
  end
end
return out
`)
  }
).withReturnType<readonly [number, ...ReadonlyArray<string | number | null>] | readonly [string]>()

export type LostReply = readonly ["lost", string, string, string | null]

export type LeaseReply =
  | readonly ["ok", Fields]
  | readonly ["missing"]
  | readonly ["lost", string, string, string | null]
  | readonly ["stale"]

const leaseFunction = `
-- One lease holder's operation on one job (ARGV[2] is now): start, release, or fail with a1..a3 the expected
-- attempts, the retry time ("" = dead letter) and the error (completions and heartbeats have scripts of their own).
-- Returns {'ok', fields}, {'missing'}, {'lost', reason, state, holder} or {'stale'} (fail: attempts changed)
local function lease_op(op, id, worker, a1, a2, a3)
  local j = read(id)
  if not j[${F.id}] then return {'missing'} end
  local state, holder = j[${F.state}], j[${F.leaseWorker}]
  if (state ~= 'claimed' and state ~= 'running') or not holder or holder == '' then
    return {'lost', 'not_leased', state, holder or ''}
  end
  if holder ~= worker then return {'lost', 'held_by_other', state, holder} end
  if tonumber(j[${F.leaseExpires}]) <= now then return {'lost', 'expired', state, holder} end
  local q, pool, priority = j[${F.queue}], j[${F.pool}] or '', j[${F.priority}]
  if op == 'start' then
    if state ~= 'running' then
      UPDATE(id, j, 'state', 'running', 'updatedAt', ARGV[2])
      move(q, priority, state, 'running')
    end
  elseif op == 'release' then
    -- the attempt is given back, and the job its old place in line (same runAt)
    UPDATE(id, j, 'state', 'queued', 'attempts', math.max(0, tonumber(j[${F.attempts}]) - 1), 'leaseWorker', '',
      'leaseExpires', '', 'updatedAt', ARGV[2])
    redis.call('ZREM', k_leases(), id)
    move(q, priority, state, 'queued')
    schedule(q, pool, j[${F.seq}], priority, id, j[${F.runAt}])
    signal(q)
  elseif op == 'fail' then
    if j[${F.attempts}] ~= a1 then return {'stale'} end
    redis.call('ZREM', k_leases(), id)
    count(q, 'failures', 1)
    local failures = tonumber(j[${F.failures}]) + 1
    if a2 == '' then
      UPDATE(id, j, 'state', 'dead_lettered', 'lastError', a3, 'failures', failures, 'leaseWorker', '',
        'leaseExpires', '', 'updatedAt', ARGV[2], 'finishedAt', ARGV[2])
      move(q, priority, state, 'dead_lettered')
    else
      UPDATE(id, j, 'state', 'failed', 'runAt', a2, 'lastError', a3, 'failures', failures, 'leaseWorker', '',
        'leaseExpires', '', 'updatedAt', ARGV[2])
      move(q, priority, state, 'failed')
      sync_wait(q, id, j[${F.claimedAt}], a2)
      schedule(q, pool, j[${F.seq}], priority, id, a2)
      signal(q)
    end
  end
  return {'ok', j}
end
`

// KEYS[1]: the job. ARGV: prefix, now, operation, id, worker, then the operation's a1..a3 (see leaseFunction)
export const leaseOperation = Redis.script(
  (
    keyJob: string,
    prefix: string,
    now: number,
    operation: string,
    jobId: string,
    workerId: string,
    extra: ReadonlyArray<string>
  ) => [keyJob, prefix, now, operation, jobId, workerId, ...extra],
  {
    numberOfKeys: 1,
    lua: expand(`${prelude}${leaseFunction}
return lease_op(ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8])
`)
  }
).withReturnType<LeaseReply>()

// KEYS[1]: the leases. ARGV: prefix, now, then (id, worker, result JSON, "attempts:claimedAt" of the caller's claimed
// copy or "") per job. Completes each in order (a job given twice is completed once; the second gets its refusal)
// and returns one reply per job: a lease reply, except 1 when the job still shows the caller's
// attempts and claim time (its copy from the claim is then the job, with what completing changed). A job costs one short read and one write; the
// leases, the finished index and the counters are updated once per call
export const completeJobs = Redis.script(
  (keyLeases: string, prefix: string, now: number, quads: ReadonlyArray<string>) => [keyLeases, prefix, now, ...quads],
  {
    numberOfKeys: 1,
    lua: expand(`${prelude}
local out = {}
local done, finished = {}, {}
local moved = {}
for i = 3, #ARGV, 4 do
  local id, worker, seen = ARGV[i], ARGV[i + 1], ARGV[i + 3]
  local key = k_job(id)
  local s = redis.call('HMGET', key, 'state', 'leaseWorker', 'leaseExpires', 'queue', 'attempts', 'claimedAt')
  local state, holder = s[1], s[2]
  if not state then
    out[#out + 1] = {'missing'}
  elseif (state ~= 'claimed' and state ~= 'running') or not holder or holder == '' then
    out[#out + 1] = {'lost', 'not_leased', state, holder or ''}
  elseif holder ~= worker then
    out[#out + 1] = {'lost', 'held_by_other', state, holder}
  elseif tonumber(s[3]) <= now then
    out[#out + 1] = {'lost', 'expired', state, holder}
  else
    redis.call('HSET', key, 'state', 'completed', 'result', ARGV[i + 2], 'leaseWorker', '', 'leaseExpires', '',
      'updatedAt', ARGV[2], 'finishedAt', ARGV[2])
    done[#done + 1] = id
    -- the time as the caller's text: a Lua number given to redis.call is formatted ('%.17g')
    finished[#finished + 1] = ARGV[2]
    finished[#finished + 1] = id
    -- counted per (queue, state) in nested tables: no key string built per job
    local byQ = moved[s[4]]
    if not byQ then
      byQ = {}
      moved[s[4]] = byQ
    end
    byQ[state] = (byQ[state] or 0) + 1
    -- 1, not a table: a table per job cost its conversion to a reply, per job
    if seen ~= '' and s[5] .. ':' .. s[6] == seen then out[#out + 1] = 1 else out[#out + 1] = {'ok', read(id)} end
  end
end
for i = 1, #done, 1000 do redis.call('ZREM', k_leases(), unpack(done, i, math.min(#done, i + 999))) end
for i = 1, #finished, 2000 do redis.call('ZADD', k_finished(), unpack(finished, i, math.min(#finished, i + 1999))) end
for q, byQ in pairs(moved) do
  for state, n in pairs(byQ) do
    count(q, state, -n)
    count(q, 'completed', n)
  end
end
return out
`)
  }
).withReturnType<ReadonlyArray<LeaseReply | 1>>()

// KEYS[1]: the leases. ARGV: prefix, now, then (id, worker, new lease expiry, "attempts:claimedAt" of the caller's
// claimed copy or "") per job. Extends each lease still held; returns per job a lease reply, or {'copy', state} when
// the job still shows the caller's attempts and claim time (its claimed copy, with the new lease and this state, is
// then the job)
export const heartbeatJobs = Redis.script(
  (keyLeases: string, prefix: string, now: number, quads: ReadonlyArray<string>) => [keyLeases, prefix, now, ...quads],
  {
    numberOfKeys: 1,
    lua: expand(`${prelude}
local out = {}
local leases = {}
for i = 3, #ARGV, 4 do
  local id, worker, expires, seen = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local s = redis.call('HMGET', k_job(id), 'state', 'leaseWorker', 'leaseExpires', 'attempts', 'claimedAt')
  local state, holder = s[1], s[2]
  if not state then
    out[#out + 1] = {'missing'}
  elseif (state ~= 'claimed' and state ~= 'running') or not holder or holder == '' then
    out[#out + 1] = {'lost', 'not_leased', state, holder or ''}
  elseif holder ~= worker then
    out[#out + 1] = {'lost', 'held_by_other', state, holder}
  elseif tonumber(s[3]) <= now then
    out[#out + 1] = {'lost', 'expired', state, holder}
  else
    redis.call('HSET', k_job(id), 'leaseExpires', expires, 'updatedAt', ARGV[2])
    leases[#leases + 1] = expires
    leases[#leases + 1] = id
    if seen ~= '' and s[4] .. ':' .. s[5] == seen then out[#out + 1] = {'copy', state} else out[#out + 1] = {'ok', read(id)} end
  end
end
for i = 1, #leases, 2000 do redis.call('ZADD', k_leases(), unpack(leases, i, math.min(#leases, i + 1999))) end
return out
`)
  }
).withReturnType<ReadonlyArray<LeaseReply | readonly ["copy", string]>>()

// KEYS[1]: the job. ARGV: prefix, now, operation (cancel | retryDeadLettered), id
// Returns {'ok', fields}, {'missing'} or {'illegal', from, to}
export const adminOperation = Redis.script(
  (keyJob: string, prefix: string, now: number, operation: string, jobId: string) => [
    keyJob,
    prefix,
    now,
    operation,
    jobId
  ],
  {
    numberOfKeys: 1,
    lua: expand(`${prelude}
local op, id = ARGV[3], ARGV[4]
local j = read(id)
if not j[${F.id}] then return {'missing'} end
local state, q, pool, priority, seq = j[${F.state}], j[${F.queue}], j[${F.pool}] or '', j[${F.priority}], j[${F.seq}]
if op == 'cancel' then
  if state == 'cancelled' then return {'ok', j} end
  if state == 'completed' or state == 'dead_lettered' then return {'illegal', state, 'cancelled'} end
  unschedule(q, pool, seq, priority, id)
  redis.call('ZREM', k_leases(), id)
  UPDATE(id, j, 'state', 'cancelled', 'leaseWorker', '', 'leaseExpires', '', 'updatedAt', ARGV[2],
    'finishedAt', ARGV[2])
  redis.call('ZADD', k_finished(), now, id)
  move(q, priority, state, 'cancelled')
else
  if state ~= 'dead_lettered' then return {'illegal', state, 'queued'} end
  UPDATE(id, j, 'state', 'queued', 'attempts', 0, 'runAt', ARGV[2], 'updatedAt', ARGV[2], 'finishedAt', '')
  move(q, priority, state, 'queued')
  sync_wait(q, id, j[${F.claimedAt}], now)
  schedule(q, pool, seq, priority, id, now)
  signal(q)
end
return {'ok', j}
`)
  }
).withReturnType<readonly ["ok", Fields] | readonly ["missing"] | readonly ["illegal", string, string]>()

// ARGV: prefix, now, limit. Returns the jobs changed
export const requeueExpiredJobs = Redis.script(
  (keyLeases: string, prefix: string, now: number, limit: number) => [keyLeases, prefix, now, limit],
  {
    numberOfKeys: 1,
    lua: expand(`${prelude}${requeueFunction}
return requeue_expired(tonumber(ARGV[3]))
`)
  }
).withReturnType<ReadonlyArray<Fields>>()

// KEYS[1]: one queue's index, or (across queues) the set of queue names: every queue's index is then read and
// merged by sequence (no index of every job is kept: it cost each enqueue a sorted-set insert; an index of every
// job left by an earlier layout, `jobs:all`, is not read). ARGV: prefix, lower bound ("-inf" or "(seq"), wanted,
// state, pool, budget, "1" across queues. Returns {exhausted (0|1), resume seq, {{seq, fields}, …}}, oldest first
export const listJobs = Redis.script(
  (
    keyIndex: string,
    prefix: string,
    bound: string,
    wanted: number,
    state: string,
    pool: string,
    budget: number,
    across: boolean
  ) => [keyIndex, prefix, 0, bound, wanted, state, pool, budget, across ? "1" : "0"],
  {
    numberOfKeys: 1,
    lua: expand(`${prelude}
local bound, wanted, state, pool, budget = ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6], tonumber(ARGV[7])
local sources = {KEYS[1]}
if ARGV[8] == '1' then
  sources = {}
  for _, q in ipairs(redis.call('SMEMBERS', KEYS[1])) do sources[#sources + 1] = k_list(q) end
end
-- the first n entries above the bound, {id, seq, …}: of the one index, or the first n of every index merged (the
-- n smallest overall are among them)
local function page(from, n)
  if #sources == 1 then return redis.call('ZRANGE', sources[1], from, '+inf', 'BYSCORE', 'LIMIT', 0, n, 'WITHSCORES') end
  local merged = {}
  for _, key in ipairs(sources) do
    local r = redis.call('ZRANGE', key, from, '+inf', 'BYSCORE', 'LIMIT', 0, n, 'WITHSCORES')
    for i = 1, #r, 2 do merged[#merged + 1] = {r[i], r[i + 1], tonumber(r[i + 1])} end
  end
  table.sort(merged, function(x, y) return x[3] < y[3] end)
  local out = {}
  for i = 1, math.min(n, #merged) do
    out[#out + 1] = merged[i][1]
    out[#out + 1] = merged[i][2]
  end
  return out
end
local found, scanned, last = {}, 0, ''
local batch = math.min(budget, math.max(wanted, 50))
while scanned < budget do
  local range = page(bound, batch)
  for i = 1, #range, 2 do
    local id, seq = range[i], range[i + 1]
    scanned = scanned + 1
    last = seq
    local j = read(id)
    if j[${F.id}] and (state == '' or j[${F.state}] == state) and (pool == '' or j[${F.pool}] == pool) then
      found[#found + 1] = {seq, j}
      if #found >= wanted then return {0, last, found} end
    end
  end
  if #range < batch * 2 then return {1, last, found} end
  bound = '(' .. last
end
return {0, last, found}
`)
  }
).withReturnType<readonly [0 | 1, string, ReadonlyArray<readonly [string, Fields]>]>()

// ARGV: prefix, now, queue ("" for every queue)
// Returns {counters (flat field/value list), ready, oldest ready runAt or nil, waits, wait p50, wait p95}
export const queueStats = Redis.script(
  (keySequence: string, prefix: string, now: number, queue: string) => [keySequence, prefix, now, queue],
  {
    numberOfKeys: 1,
    lua: expand(`${prelude}
local queue = ARGV[3]
local queues = {queue}
local waits = k_waits(queue)
if queue == '' then
  -- every queue's waits, merged for the percentiles (an occasional, linear read: stats over all queues)
  queues = redis.call('SMEMBERS', k_queues())
  waits = k_statsScratch()
  local sources = {}
  for _, q in ipairs(queues) do sources[#sources + 1] = k_waits(q) end
  redis.call('DEL', waits)
  if #sources > 0 then redis.call('ZUNIONSTORE', waits, #sources, unpack(sources)) end
end
local totals, fields = {}, {}
local ready, oldest = 0, nil
for _, q in ipairs(queues) do
  local counts = redis.call('HGETALL', k_counts(q))
  for i = 1, #counts, 2 do
    if not totals[counts[i]] then fields[#fields + 1] = counts[i] end
    totals[counts[i]] = (totals[counts[i]] or 0) + tonumber(counts[i + 1])
  end
  for _, pool in ipairs(redis.call('SMEMBERS', k_pools(q))) do
    local b = bucket(q, pool)
    ready = ready + redis.call('ZCARD', k_ready(b)) + redis.call('ZCOUNT', k_delayed(b), '-inf', now)
    for rank = 0, 3 do
      local top = redis.call('ZRANGEBYSCORE', k_ready(b), rank * SCALE, '(' .. ((rank + 1) * SCALE), 'WITHSCORES',
        'LIMIT', 0, 1)
      if top[2] then
        local runAt = tonumber(top[2]) - rank * SCALE
        if not oldest or runAt < oldest then oldest = runAt end
      end
    end
    local due = redis.call('ZRANGEBYSCORE', k_delayed(b), '-inf', now, 'WITHSCORES', 'LIMIT', 0, 1)
    if due[2] and (not oldest or tonumber(due[2]) < oldest) then oldest = tonumber(due[2]) end
  end
end
local flat = {}
for _, f in ipairs(fields) do
  flat[#flat + 1] = f
  flat[#flat + 1] = tostring(totals[f])
end
local n = redis.call('ZCARD', waits)
local p50, p95 = false, false
if n > 0 then
  local r50 = math.max(1, math.ceil(0.5 * n)) - 1
  local r95 = math.max(1, math.ceil(0.95 * n)) - 1
  p50 = redis.call('ZRANGE', waits, r50, r50, 'WITHSCORES')[2]
  p95 = redis.call('ZRANGE', waits, r95, r95, 'WITHSCORES')[2]
end
if queue == '' then redis.call('DEL', waits) end
local oldestText = false
if oldest then oldestText = string.format('%.17g', oldest) end
return {flat, ready, oldestText, n, p50, p95}
`)
  }
).withReturnType<readonly [ReadonlyArray<string>, number, string | null, number, string | null, string | null]>()

// ARGV: prefix, now, pool, queues…. Returns when the first job of these buckets is (or was) due: now when one is
// ready, nil when none is pending
export const nextDue = Redis.script(
  (keySequence: string, prefix: string, now: number, pool: string, queues: ReadonlyArray<string>) => [
    keySequence,
    prefix,
    now,
    pool,
    ...queues
  ],
  {
    numberOfKeys: 1,
    lua: expand(`${prelude}
local pool = ARGV[3]
local next = nil
for i = 4, #ARGV do
  local buckets = {bucket(ARGV[i], '')}
  if pool ~= '' then buckets[2] = bucket(ARGV[i], pool) end
  for _, b in ipairs(buckets) do
    if redis.call('ZCARD', k_ready(b)) > 0 then return ARGV[2] end
    local top = redis.call('ZRANGE', k_delayed(b), 0, 0, 'WITHSCORES')
    if top[2] and (not next or tonumber(top[2]) < next) then next = tonumber(top[2]) end
  end
end
if not next then return false end
return string.format('%.17g', math.max(now, next))
`)
  }
).withReturnType<string | null>()

// ARGV: prefix, finished-before time, limit. Deletes completed and cancelled jobs finished before it, with their
// idempotency keys and their share of the counters. Returns how many it deleted
export const pruneFinished = Redis.script(
  (keyFinished: string, prefix: string, before: number, limit: number) => [keyFinished, prefix, before, limit],
  {
    numberOfKeys: 1,
    lua: expand(`${prelude}
local ids = redis.call('ZRANGEBYSCORE', k_finished(), '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  local j = read(id)
  if j[${F.id}] then
    local q, state = j[${F.queue}], j[${F.state}]
    count(q, state, -1)
    count(q, 'failures', -tonumber(j[${F.failures}] or 0))
    redis.call('ZREM', k_waits(q), id)
    -- the index of every job kept by earlier layouts
    redis.call('ZREM', k_all(), id)
    redis.call('ZREM', k_list(q), id)
    local field = redis.call('HGET', k_job(id), 'idempotencyField')
    if field and redis.call('HGET', k_idempotency(), field) == id then redis.call('HDEL', k_idempotency(), field) end
    redis.call('DEL', k_job(id))
  end
  redis.call('ZREM', k_finished(), id)
end
return #ids
`)
  }
).withReturnType<number>()
