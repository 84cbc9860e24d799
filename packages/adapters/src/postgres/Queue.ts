/**
 * `Queue` on Postgres: jobs in `jobs` (migration 0003; 0008 and 0009 drop its listing indexes: `list` pages by the
 * primary key, job ids being made in creation order; 0012 its finished-time index; 0013 makes its text keys
 * compare bytewise), claimed with `FOR UPDATE SKIP LOCKED`, idle workers woken by `LISTEN`/`NOTIFY`. Since 0014
 * finished jobs leave it: a completion or cancel deletes the row from `jobs` and inserts it into `jobs_done` in one
 * statement (`moveFinished`); idempotency keys live in `job_keys`, one unique index for a key's whole life (written
 * by the enqueue taking it, deleted by the prune deleting its job), so a key stays taken while its job moves. No
 * index of `jobs` reads a column a claim, start, heartbeat or release writes (`jobs_ready` is partial on
 * `finished_at IS NULL`, `jobs_leases` is gone) and `jobs` keeps half of each page free: those writes are HOT
 * (no index entry). `get`, `list` and `stats` read both tables.
 *
 * Time is the database's: every statement reads `statement_timestamp()` (as epoch ms) for the times it writes and
 * the leases it checks, so workers on hosts with skewed clocks still agree on who holds a job. The rules are
 * core's: requests are checked by `validateEnqueue`/`validateEnqueueBatch`, retry delays come from
 * `Backoff.decide` (this layer draws the random number, computes the delay in core and stores it), priorities are
 * ranked by `Task.priorityRank`. This module only stores and locks.
 *
 * - `enqueue`/`enqueueBatch`: one `INSERT` for the whole batch, reading the payloads as one JSON array and each
 *   other column that varies as a Postgres array (`ROWS FROM (json_array_elements(…), unnest(…), …)`); keys are
 *   taken in `job_keys` by the same statement, and a second read returns the jobs already holding one. Neither
 *   opens a transaction, so inside `UnitOfWork.run` they join the unit's; workers are told once it commits, never
 *   if it rolls back.
 * - Single enqueues, completions, failures and heartbeats made outside a unit of work at the same moment are
 *   merged into one statement each (Effect's request batching): many workers finishing together cost one round
 *   trip and one commit. No timer delays a write to gather more: a flush is what one scheduler turn produced.
 * - `completeMany` (what `Worker.run` records its completions with): up to 500 completions per merged statement,
 *   the same statement concurrent `complete` calls share, without a request per job.
 * - `claim`: one statement, a CTE picking up to `max` ready jobs in claim order (`jobs_ready`) `FOR UPDATE SKIP
 *   LOCKED`, then the `UPDATE` leasing them: concurrent claimers never wait for, nor get, each other's jobs.
 *   The `UPDATE` reaches the picked rows by `ctid` (a TID scan; a locked row's `ctid` cannot change under the
 *   statement): joined by id, the planner hashed the whole table for each claim, a cost growing with the finished
 *   jobs kept. `Worker.run` claims for its free slots and its local queue (`prefetch`) in one such statement.
 *   It returns the claimed rows in claim order and only the columns the claim did not set (those it set are the
 *   same for every row), read straight into the jobs: the driver's row objects and the checks were a large part
 *   of the drain's allocation.
 * - The lease holder's operations are one `UPDATE` each, conditioned on holding a live lease; only when it
 *   changes nothing does a second read say why (`JobNotFound`, `LeaseLost` with its reason). A merged write
 *   checks those conditions per job inside its one statement, so each job is written or refused on its own (a
 *   lost lease refuses that job only), and the statement's commit makes all the written ones durable at once.
 *   Merged fails lock their jobs in id order first, as `requeueExpired` does; a heartbeat round first locks the
 *   jobs no one else holds (`SKIP LOCKED`, the others tried alone); merged completions lock each row as their
 *   `UPDATE` writes it, with no lock pass of its own (a lock record and a second join per job fewer: the
 *   completion write is the drain's critical path). Why this does not deadlock is at `mergedUpdate`.
 *   Merged completes and fails return only the columns they wrote (a completion: id, attempt, claim and
 *   update times), and build the job from the job its claim returned (`leasedRows`), so nothing is read back. `fail` decides the retry from the claimed row's attempt
 *   count and writes only if the job is still at that attempt; without a claimed row (another instance claimed
 *   it, or inside a unit) it reads the attempt count first.
 * - Crashes: merging adds no window in which a job can run twice. A handler's outcome is sent as soon as the
 *   handler returns, in the next merged statement (no batch delay); until that statement commits the job is
 *   leased exactly as it would be while a single `UPDATE` is in flight. A process that dies before the commit
 *   loses the whole statement (one transaction), so each of its jobs is run again once its lease expires, as
 *   after a crash without merging; one that dies after it loses nothing. Jobs held in a worker's local queue and
 *   never started are run once their lease expires, never twice.
 * - `requeueExpired`: one statement, a sequential scan of `jobs` (live jobs and dead letters only; no lease index,
 *   so that claims stay HOT); the layer also runs it every `requeueIntervalMs` (longer after a long sweep: at most
 *   ~2 % of a connection's time, see `QueueRules.sweepPauseMs`), and deletes completed and
 *   cancelled jobs `retainFinishedMs` after they finished (dead letters stay), in the layer's scope. No index holds
 *   finished times (migration 0012 dropped `jobs_finished`, an insertion on every completion): the prune walks
 *   `jobs_done_pkey` up to the id prefix of its cutoff, ids starting with the millisecond the job was made.
 * - Wake-ups: a write that makes jobs claimable announces their queues after its commit: this process's
 *   subscribers are woken at once, and one fiber sends `NOTIFY` (channel `mandate_jobs_<schema>`, payload
 *   `<layer instance> <queue>`; a bare queue name works too) for every queue announced since its last round, so under load many commits share one notification.
 *   `wakeups` holds one `LISTEN` connection per layer, opened on the first subscription; a notification opens the
 *   latches of that queue's subscribers. After a lost connection the layer listens again and wakes every
 *   subscriber (it may have missed notifications). Delayed jobs and retries coming due send nothing: workers find
 *   them by polling, the fallback the contract allows.
 *
 * @since 0.1.0
 */
import { PgClient } from "@effect/sql-pg"
import {
  AgentId,
  Backoff,
  type ClaimRequest,
  type Completion,
  decodeClaimRequest,
  decodeExtendMs,
  decodeJobQuery,
  decodeStatsQueue,
  defaultLeaseMs,
  defaultListLimit,
  defaultMaxAttempts,
  type EnqueueRequest,
  type FailOptions,
  IllegalTransition,
  InvalidInput,
  type Job,
  JobId,
  JobNotFound,
  type JobQuery,
  JobState,
  LeaseLost,
  prepareResult,
  Queue,
  QueueName,
  QueueRules,
  type QueueStats,
  QueueStoreError,
  Task,
  validateEnqueue,
  validateEnqueueBatch,
  type WakeupRequest
} from "@mandate/core"
import {
  Clock,
  Duration,
  Effect,
  Queue as EffectQueue,
  Exit,
  Latch,
  Layer,
  Option,
  Random,
  Request,
  RequestResolver,
  Result,
  Schedule,
  Schema,
  Scope,
  Semaphore
} from "effect"
import { type SqlClient, type SqlError, SqlSchema, type Statement } from "effect/sql"
import { type PostgresOptions, resolveSchema } from "./Options.ts"

/**
 * Options of the Postgres queue.
 *
 * @category models
 * @since 0.1.0
 */
export interface QueueOptions extends PostgresOptions {
  /** Retry delays (see core's `Backoff`). */
  readonly backoff?: Backoff.Options | undefined
  /** How often the layer requeues jobs whose lease expired (ms, default 1,000). */
  readonly requeueIntervalMs?: number | undefined
  /**
   * How long (ms) completed and cancelled jobs are kept after they finished, with their idempotency keys
   * (default 7 days; `Infinity` keeps them). Dead-lettered jobs are always kept.
   */
  readonly retainFinishedMs?: number | undefined
  /** How often the layer deletes finished jobs past their retention (ms, default 60,000). */
  readonly pruneIntervalMs?: number | undefined
}

/**
 * Completed and cancelled jobs are kept this long by default (7 days).
 *
 * @category constants
 * @since 0.1.0
 */
export const defaultRetainFinishedMs = 7 * 86_400_000

/**
 * The `LISTEN`/`NOTIFY` channel of a schema's queue: `mandate_jobs_<schema>`, cut to Postgres' 63-byte limit (two
 * schemas whose names share their first 50 characters share a channel: their workers wake each other for nothing,
 * and miss nothing).
 *
 * @category constructors
 * @since 0.1.0
 */
export const channelOf = (schema: string): string => `mandate_jobs_${schema}`.slice(0, 63)

// Job ids: UUIDv7 whose order is the order this process created them in, even within one millisecond (a 12-bit
// counter in `rand_a`, started at random each millisecond; the millisecond is carried forward when the counter runs
// out or the clock stands still or steps back), so `list` pages in creation order by the primary key
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"))
const randomBytes = new Uint8Array(4_096)
let randomAt = randomBytes.length
const random = (): number => {
  if (randomAt === randomBytes.length) {
    crypto.getRandomValues(randomBytes)
    randomAt = 0
  }
  return randomBytes[randomAt++]!
}
let lastMs = -1
let counter = 0
const nextJobId = (clockMs: number): string => {
  const ms = Math.max(0, Math.floor(clockMs))
  if (ms > lastMs) {
    lastMs = ms
    counter = ((random() << 8) | random()) & 0x7ff
  } else if (++counter > 0xfff) {
    lastMs++
    counter = 0
  }
  let t = lastMs
  let time = ""
  for (let i = 0; i < 6; i++) {
    time = HEX[t % 256]! + time
    t = Math.floor(t / 256)
  }
  let tail = HEX[0x80 | (random() & 0x3f)]! + HEX[random()]!
  let node = ""
  for (let i = 0; i < 6; i++) node += HEX[random()]!
  tail = `${tail}-${node}`
  return `job_${time.slice(0, 8)}-${time.slice(8)}-${HEX[0x70 | (counter >> 8)]}${HEX[counter & 0xff]}-${tail}`
}
// The last millisecond a UUIDv7 holds (48 bits)
const MAX_ID_MS = 2 ** 48 - 1
const JOB_CURSOR = /^job_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

// The database's clock in epoch ms; stable within a statement, so every use in one statement agrees. A scalar
// subquery, so that each use is an init plan computed once per statement: as a bare expression it was computed
// again for every row a statement scanned or wrote (numeric arithmetic and a text round trip to float8 each time,
// 2-3 % of the Postgres CPU of a drain)
const NOW = "(SELECT floor(extract(epoch FROM statement_timestamp()) * 1000)::float8)"

// Idempotency keys as stored: the body of their JSON literal (text cannot hold NUL or a lone surrogate), and back
const textKey = (value: string): string => JSON.stringify(value).slice(1, -1)
const fromTextKey = (stored: string): string => JSON.parse(`"${stored}"`) as string

const COLUMNS = [
  "id",
  "seq",
  "queue",
  "pool",
  "priority",
  "state",
  "payload",
  "run_at",
  "attempts",
  "max_attempts",
  "failures",
  "idempotency_key",
  "lease_worker",
  "lease_expires_at",
  "last_error",
  "result",
  "created_at",
  "updated_at",
  "claimed_at",
  "finished_at"
] as const

// The column list of a job row, optionally qualified by a table alias
const columnList = (alias?: string): string => {
  const prefix = alias === undefined ? "" : `${alias}.`
  return `${COLUMNS.map((c) => prefix + c).join(", ")}, (${prefix}result IS NULL) AS no_result`
}

const Millis = Schema.Number
const JobRow = Schema.Struct({
  id: JobId,
  seq: Schema.BigInt,
  queue: QueueName,
  pool: Schema.NullOr(Schema.String),
  priority: Task.Priority,
  state: JobState,
  payload: Schema.Json,
  run_at: Millis,
  attempts: Schema.Int,
  max_attempts: Schema.Int,
  failures: Schema.Int,
  idempotency_key: Schema.NullOr(Schema.String),
  lease_worker: Schema.NullOr(AgentId),
  lease_expires_at: Schema.NullOr(Millis),
  last_error: Schema.NullOr(Schema.String),
  result: Schema.NullOr(Schema.Json),
  no_result: Schema.Boolean,
  created_at: Millis,
  updated_at: Millis,
  claimed_at: Schema.NullOr(Millis),
  finished_at: Schema.NullOr(Millis)
})
type JobRow = typeof JobRow.Type

// Job rows come from this layer's own statements over columns it wrote: a hand-written check of each column's
// type (a string, a number, a known state) replaces a Schema decode, which cost more CPU per claimed job than the
// claim itself. Anything unexpected is still refused (a `QueueStoreError`), never passed on unchecked.
const JOB_STATES: ReadonlySet<string> = new Set(JobState.literals)
const PRIORITIES: ReadonlySet<string> = new Set(Task.Priority.literals)
class RowError extends Error {}
const rowFail = (column: string, value: unknown): never => {
  throw new RowError(`Unexpected value in column ${column}: ${typeof value}`)
}
const str = (row: Record<string, unknown>, column: string): string => {
  const value = row[column]
  return typeof value === "string" ? value : rowFail(column, value)
}
const strOrNull = (row: Record<string, unknown>, column: string): string | null => {
  const value = row[column]
  return value === null || typeof value === "string" ? value : rowFail(column, value)
}
const num = (row: Record<string, unknown>, column: string): number => {
  const value = row[column]
  return typeof value === "number" && !Number.isNaN(value) ? value : rowFail(column, value)
}
const numOrNull = (row: Record<string, unknown>, column: string): number | null => {
  const value = row[column]
  return value === null || (typeof value === "number" && !Number.isNaN(value)) ? value : rowFail(column, value)
}
const int = (row: Record<string, unknown>, column: string): number => {
  const value = row[column]
  return Number.isSafeInteger(value) ? (value as number) : rowFail(column, value)
}
const oneOf = (row: Record<string, unknown>, column: string, allowed: ReadonlySet<string>): string => {
  const value = row[column]
  return typeof value === "string" && allowed.has(value) ? value : rowFail(column, value)
}
const record = (value: unknown): Record<string, unknown> =>
  typeof value === "object" && value !== null ? (value as Record<string, unknown>) : rowFail("(row)", value)

/**
 * Reads one job row as returned by this layer's statements (`columnList`), checking every column's type.
 * Throws on a value of the wrong type (see `readRows`).
 *
 * @internal
 */
export const readJobRow = (value: unknown): JobRow => {
  const row = record(value)
  const seq = row.seq
  const noResult = row.no_result
  if (typeof seq !== "bigint") rowFail("seq", seq)
  if (typeof noResult !== "boolean") rowFail("no_result", noResult)
  // json columns arrive parsed by the driver: any JSON value; `last_error` is always a JSON string when set
  const payload = row.payload
  if (payload === undefined) rowFail("payload", payload)
  const result = row.result
  if (result === undefined) rowFail("result", result)
  return {
    id: str(row, "id") as JobId,
    seq: seq as bigint,
    queue: str(row, "queue") as typeof QueueName.Type,
    pool: strOrNull(row, "pool"),
    priority: oneOf(row, "priority", PRIORITIES) as Task.Priority,
    state: oneOf(row, "state", JOB_STATES) as JobState,
    payload: payload as Schema.Json,
    run_at: num(row, "run_at"),
    attempts: int(row, "attempts"),
    max_attempts: int(row, "max_attempts"),
    failures: int(row, "failures"),
    idempotency_key: strOrNull(row, "idempotency_key"),
    lease_worker: strOrNull(row, "lease_worker") as AgentId | null,
    lease_expires_at: numOrNull(row, "lease_expires_at"),
    last_error: strOrNull(row, "last_error"),
    result: result as Schema.Json | null,
    no_result: noResult as boolean,
    created_at: num(row, "created_at"),
    updated_at: num(row, "updated_at"),
    claimed_at: numOrNull(row, "claimed_at"),
    finished_at: numOrNull(row, "finished_at")
  }
}

// Reads rows with `read`, failing (not throwing) on the first value of the wrong type
const readRows =
  <A>(read: (value: unknown) => A) =>
  (values: ReadonlyArray<unknown>): Effect.Effect<ReadonlyArray<A>, RowError> => {
    try {
      const out: Array<A> = new Array(values.length)
      for (let i = 0; i < values.length; i++) out[i] = read(values[i])
      return Effect.succeed(out)
    } catch (error) {
      if (error instanceof RowError) return Effect.fail(error)
      throw error
    }
  }
const decodeJobRows = readRows(readJobRow)

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

// Built field by field: conditional spreads allocated an object per optional field, per job
const toJob = (row: JobRow): Job => {
  const job: Mutable<Job> = {
    id: row.id,
    queue: row.queue,
    payload: row.payload,
    priority: row.priority,
    state: row.state,
    runAt: row.run_at,
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    failures: row.failures
  }
  if (row.idempotency_key !== null) job.idempotencyKey = fromTextKey(row.idempotency_key)
  if (row.pool !== null) job.pool = row.pool
  if (row.lease_worker !== null && row.lease_expires_at !== null) {
    job.lease = { workerId: row.lease_worker, expiresAt: row.lease_expires_at }
  }
  if (row.last_error !== null) job.lastError = row.last_error
  if (!row.no_result) job.result = row.result
  if (row.claimed_at !== null) job.claimedAt = row.claimed_at
  if (row.finished_at !== null) job.finishedAt = row.finished_at
  return job
}

// What a claim returns per job: the columns a claim does not set. The state, lease, claimed and updated times it
// sets are the same for every row (`claimed_at` carries the time); `seq` and `priority_rank` only order the rows,
// which the statement does
const CLAIMED_COLUMNS =
  "id, queue, pool, priority, payload, run_at, attempts, max_attempts, failures, idempotency_key, last_error, " +
  "result, (result IS NULL) AS no_result, created_at, claimed_at, finished_at"

/**
 * Reads one row a claim returned (`CLAIMED_COLUMNS`) straight into the claimed job, checking every column's type
 * as `readJobRow` does. Throws on a value of the wrong type (see `readRows`).
 *
 * @internal
 */
export const readClaimedJob = (value: unknown, workerId: AgentId, leaseMs: number): Job => {
  const row = record(value)
  const payload = row.payload
  if (payload === undefined) rowFail("payload", payload)
  const result = row.result
  const noResult = row.no_result
  if (result === undefined) rowFail("result", result)
  if (typeof noResult !== "boolean") rowFail("no_result", noResult)
  const claimedAt = num(row, "claimed_at")
  // Same field order as `toJob`: one object shape for every job
  const job: Mutable<Job> = {
    id: str(row, "id") as JobId,
    queue: str(row, "queue") as typeof QueueName.Type,
    payload: payload as Schema.Json,
    priority: oneOf(row, "priority", PRIORITIES) as Task.Priority,
    state: "claimed",
    runAt: num(row, "run_at"),
    attempts: int(row, "attempts"),
    maxAttempts: int(row, "max_attempts"),
    createdAt: num(row, "created_at"),
    updatedAt: claimedAt,
    failures: int(row, "failures")
  }
  const key = strOrNull(row, "idempotency_key")
  if (key !== null) job.idempotencyKey = fromTextKey(key)
  const pool = strOrNull(row, "pool")
  if (pool !== null) job.pool = pool
  job.lease = { workerId, expiresAt: claimedAt + leaseMs }
  const lastError = strOrNull(row, "last_error")
  if (lastError !== null) job.lastError = lastError
  if (!noResult) job.result = result as Schema.Json
  job.claimedAt = claimedAt
  const finishedAt = numOrNull(row, "finished_at")
  if (finishedAt !== null) job.finishedAt = finishedAt
  return job
}

// Only jobs claimable now are announced: a delayed job or a retry is found by polling when it comes due
const claimableNow = (state: JobState, runAt: number, updatedAt: number): boolean =>
  (state === "queued" || state === "failed") && runAt <= updatedAt

const InsertedRow = Schema.Struct({ id: Schema.String, run_at: Millis, created_at: Millis })
// What an INSERT returns per job, checked column by column as `readJobRow` does (a Schema decode per job cost a
// batch more than building its jobs)
type InsertedTimes = typeof InsertedRow.Type
const readInsertedRow = (value: unknown): InsertedTimes => {
  const row = record(value)
  return { id: str(row, "id"), run_at: num(row, "run_at"), created_at: num(row, "created_at") }
}
const decodeInsertedRows = readRows(readInsertedRow)
const HandedRow = Schema.Struct({ ...InsertedRow.fields, state: Schema.Literals(["queued", "claimed"]) })
const decodeHandedRows = Schema.decodeUnknownEffect(Schema.Array(HandedRow))

// The job an INSERT stored, from what it was sent and the times it returned (what `toJob` would read back, in
// its field order)
const insertedJob = (row: InsertRow, times: InsertedTimes): Job => {
  const job: Mutable<Job> = {
    id: row.id as JobId,
    queue: row.queue,
    payload: row.payload,
    priority: row.priority as Task.Priority,
    state: "queued",
    runAt: times.run_at,
    attempts: 0,
    maxAttempts: row.max_attempts,
    createdAt: times.created_at,
    updatedAt: times.created_at,
    failures: 0
  }
  if (row.idempotency_key !== null) job.idempotencyKey = fromTextKey(row.idempotency_key)
  if (row.pool !== null) job.pool = row.pool
  return job
}

// Why a lease operation found nothing to change
const RefusalRow = Schema.Struct({
  state: JobState,
  lease_worker: Schema.NullOr(AgentId),
  expired: Schema.NullOr(Schema.Boolean)
})

const AttemptRow = Schema.Struct({ attempts: Schema.Int, max_attempts: Schema.Int, now: Millis })

const StatsRow = Schema.Struct({
  queued: Schema.Int,
  claimed: Schema.Int,
  running: Schema.Int,
  completed: Schema.Int,
  failed: Schema.Int,
  dead_lettered: Schema.Int,
  cancelled: Schema.Int,
  p_critical: Schema.Int,
  p_high: Schema.Int,
  p_normal: Schema.Int,
  p_low: Schema.Int,
  ready: Schema.Int,
  oldest_ready_at: Schema.NullOr(Millis),
  wait_p50: Schema.NullOr(Millis),
  wait_p95: Schema.NullOr(Millis),
  failures: Schema.Number,
  now: Millis
})

// Most calls merged into one statement
const MAX_BATCH = 500

interface EnqueueCall extends Request.Request<Job, QueueStoreError> {
  readonly _tag: "EnqueueCall"
  readonly request: EnqueueRequest
}
const EnqueueCall = Request.tagged<EnqueueCall>("EnqueueCall")

interface CompleteInput {
  readonly jobId: JobId
  readonly workerId: AgentId
  /** The result as JSON text. */
  readonly result: string
}
interface CompleteCall extends Request.Request<Job, JobNotFound | LeaseLost | QueueStoreError>, CompleteInput {
  readonly _tag: "CompleteCall"
}
const CompleteCall = Request.tagged<CompleteCall>("CompleteCall")

interface FailCall extends Request.Request<Job, JobNotFound | LeaseLost | QueueStoreError> {
  readonly _tag: "FailCall"
  readonly jobId: JobId
  readonly workerId: AgentId
  /** The error as JSON text. */
  readonly error: string
  /** The attempt the decision was made for: the write happens only if the job is still at it. */
  readonly attempts: number
  /** Retry after this delay (ms), or `null`: dead-letter. */
  readonly delayMs: number | null
  /** What the call was given, to run it alone when it cannot be merged. */
  readonly retryable: boolean
  readonly draw: number
}
const FailCall = Request.tagged<FailCall>("FailCall")

// What a merged complete or fail returns per job: the columns it wrote, and the two that say which claim it was. A
// completion changes neither `run_at` nor `failures`, and its `finished_at` is its `updated_at`: it returns less.
const COMPLETED_COLUMNS = "j.id, j.attempts, j.claimed_at, j.updated_at"
const FAILED_COLUMNS = "j.id, j.attempts, j.claimed_at, j.run_at, j.failures, j.updated_at, j.finished_at"
// Checks the types of a row a merged complete (`completed`) or fail returned; `settledJob` then reads it unchecked
const checkSettledRow = (value: unknown, completed: boolean): Record<string, unknown> => {
  const row = record(value)
  str(row, "id")
  int(row, "attempts")
  numOrNull(row, "claimed_at")
  num(row, "updated_at")
  if (!completed) {
    num(row, "run_at")
    int(row, "failures")
    numOrNull(row, "finished_at")
  }
  return row
}
const checkCompletedRows = readRows((value) => checkSettledRow(value, true))
const checkFailedRows = readRows((value) => checkSettledRow(value, false))

// What a merged write changed over the claimed job: its new state, and the error or result it wrote (`result`
// undefined: unchanged)
interface Patch {
  readonly state: JobState
  readonly lastError?: string | undefined
  readonly result?: Schema.Json | undefined
}
const COMPLETED_NULL: Patch = { state: "completed", result: null }

// The job as a merged write left it (`row`, checked by `checkSettledRow`), built from its claimed job; undefined
// when the row is not that claim's (another layer instance claimed the job since)
const settledJob = (claimed: Job, row: Record<string, unknown>, patch: Patch): Job | undefined => {
  if (row.attempts !== claimed.attempts || row.claimed_at !== (claimed.claimedAt ?? null)) return undefined
  const completed = patch.state === "completed"
  const updatedAt = row.updated_at as number
  // Same field order as `toJob`: one object shape for every job
  const job: Mutable<Job> = {
    id: claimed.id,
    queue: claimed.queue,
    payload: claimed.payload,
    priority: claimed.priority,
    state: patch.state,
    runAt: completed ? claimed.runAt : (row.run_at as number),
    attempts: claimed.attempts,
    maxAttempts: claimed.maxAttempts,
    createdAt: claimed.createdAt,
    updatedAt,
    failures: completed ? (claimed.failures ?? 0) : (row.failures as number)
  }
  if (claimed.idempotencyKey !== undefined) job.idempotencyKey = claimed.idempotencyKey
  if (claimed.pool !== undefined) job.pool = claimed.pool
  const lastError = patch.lastError ?? claimed.lastError
  if (lastError !== undefined) job.lastError = lastError
  if (patch.result !== undefined) job.result = patch.result
  else if (claimed.result !== undefined) job.result = claimed.result
  if (claimed.claimedAt !== undefined) job.claimedAt = claimed.claimedAt
  const finishedAt = completed ? updatedAt : (row.finished_at as number | null)
  if (finishedAt !== null) job.finishedAt = finishedAt
  return job
}

interface HeartbeatCall extends Request.Request<Job, JobNotFound | LeaseLost | QueueStoreError> {
  readonly _tag: "HeartbeatCall"
  readonly jobId: JobId
  readonly workerId: AgentId
  readonly extendMs: number
}
const HeartbeatCall = Request.tagged<HeartbeatCall>("HeartbeatCall")

// A merged lease-holder call as its resolver sees it
type LeaseError = JobNotFound | LeaseLost | QueueStoreError
interface LeaseEntry<A> {
  readonly request: A
  readonly completeUnsafe: (exit: Exit.Exit<Job, LeaseError>) => void
}

// One completion of a `completeMany` as a merged write sees it: its own request, its exit written in place (one
// object per job, rather than an entry, a request and a closure)
class CompletionEntry implements LeaseEntry<CompleteInput>, CompleteInput {
  readonly jobId: JobId
  readonly workerId: AgentId
  readonly result: string
  readonly #exits: Array<Exit.Exit<Job, LeaseError | InvalidInput>>
  readonly #index: number
  constructor(
    jobId: JobId,
    workerId: AgentId,
    result: string,
    exits: Array<Exit.Exit<Job, LeaseError | InvalidInput>>,
    index: number
  ) {
    this.jobId = jobId
    this.workerId = workerId
    this.result = result
    this.#exits = exits
    this.#index = index
  }
  get request(): CompleteInput {
    return this
  }
  completeUnsafe(exit: Exit.Exit<Job, LeaseError>): void {
    this.#exits[this.#index] = exit
  }
}

// Most claimed rows a layer remembers (see `leasedRows`)
const MAX_LEASED_ROWS = 100_000

// One job of an insert, as sent
interface InsertRow {
  readonly id: string
  readonly queue: string
  readonly pool: string | null
  readonly priority: string
  readonly priority_rank: number
  /** The validated request's payload (a private frozen copy): what the inserted job carries, sent as JSON text */
  readonly payload: Schema.Json
  readonly run_at: number | null
  readonly delay_ms: number | null
  readonly max_attempts: number
  readonly idempotency_key: string | null
}

// Postgres array literals: each element quoted, `"` and `\` escaped, SQL NULL bare. Array input costs Postgres a
// small fraction of what `json_to_recordset` did (a hash table built per JSON object: ~5 µs of the ~15 µs a job
// cost the insert). Job ids need no quotes (`job_` and hex)
const ARRAY_ESCAPE = /["\\]/g
const textArray = (values: ReadonlyArray<string | null>): string => {
  let out = "{"
  for (let i = 0; i < values.length; i++) {
    const value = values[i]!
    if (i > 0) out += ","
    out += value === null ? "NULL" : `"${value.replace(ARRAY_ESCAPE, "\\$&")}"`
  }
  return `${out}}`
}
const numberArray = (values: ReadonlyArray<number | null>): string => {
  let out = "{"
  for (let i = 0; i < values.length; i++) {
    const value = values[i]!
    if (i > 0) out += ","
    out += value === null ? "NULL" : String(value)
  }
  return `${out}}`
}

/**
 * Builds the Postgres queue over the `PgClient` in context, with its requeue and prune fibers in the scope.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeQueue = Effect.fnUntraced(function* (options?: QueueOptions) {
  const pg = yield* PgClient.PgClient
  const sql: SqlClient.SqlClient = pg
  const schema = yield* resolveSchema(options)
  const layerScope = yield* Effect.scope
  const jobs = sql(`${schema}.jobs`)
  // Completed and cancelled jobs (migration 0014): same columns, never updated; and the idempotency keys of all
  const done = sql(`${schema}.jobs_done`)
  const keys = sql(`${schema}.job_keys`)
  // Every job, live or finished: what reads by id, `list` and `stats` see. A job is in exactly one of the two in
  // any snapshot (it moves in one statement), and the planner reads each table by its own index
  const allJobs = sql`(SELECT * FROM ${jobs} UNION ALL SELECT * FROM ${done})`
  // Finishes the jobs `deleted` (a `DELETE FROM jobs … RETURNING` of every column, and `new_result` for a
  // completion) in one statement: inserted into `jobs_done` as `state`, lease cleared, updated and finished now.
  // The delete writes no row version nor index entry in `jobs`; the insertion's key lands at the right end of
  // `jobs_done_pkey`
  const moveFinished = (deleted: Statement.Fragment, state: "completed" | "cancelled", returning: Statement.Fragment) =>
    sql`WITH d AS (${deleted})
        INSERT INTO ${done} AS j (id, seq, queue, pool, priority, priority_rank, state, payload, run_at, attempts,
                                  max_attempts, failures, idempotency_key, lease_worker, lease_expires_at,
                                  last_error, result, created_at, updated_at, claimed_at, finished_at)
        SELECT id, seq, queue, pool, priority, priority_rank, ${state}, payload, run_at, attempts, max_attempts,
               failures, idempotency_key, NULL, NULL, last_error,
               ${state === "completed" ? sql.literal("new_result::json") : sql.literal("result")}, created_at,
               ${now}, claimed_at, ${now}
        FROM d
        RETURNING ${returning}`
  const channel = channelOf(schema)
  const now = sql.literal(NOW)
  const backoff = Backoff.settings(options?.backoff)
  const requeueIntervalMs = QueueRules.clampInterval(options?.requeueIntervalMs, 1_000)
  const pruneIntervalMs = QueueRules.clampInterval(options?.pruneIntervalMs, 60_000)
  const retainFinishedMs =
    options?.retainFinishedMs === undefined || Number.isNaN(options.retainFinishedMs)
      ? defaultRetainFinishedMs
      : Math.max(0, options.retainFinishedMs)
  const cols = sql.literal(columnList())
  const jCols = sql.literal(columnList("j"))
  const claimedCols = sql.literal(CLAIMED_COLUMNS)

  const storeError = (operation: string) => (cause: unknown) => new QueueStoreError({ operation, cause })
  const rows = (operation: string, statement: Effect.Effect<ReadonlyArray<unknown>, SqlError.SqlError>) =>
    statement.pipe(Effect.flatMap(decodeJobRows), Effect.mapError(storeError(operation)))

  // The rows this layer's claims returned, until their holder records an outcome: a merged complete or fail
  // returns only the columns it wrote and builds the stored job from the claimed row, instead of reading every
  // column back. Sound because while a lease is held only its holder's operations change the row, and those
  // change only lease and state columns; the statement returns `attempts` and `claimed_at`, and a row that does
  // not match its claim (another layer instance claimed it) is read again. Bounded: the oldest are forgotten.
  const leasedRows = new Map<string, Job>()
  const remember = (job: Job) => {
    leasedRows.delete(job.id)
    leasedRows.set(job.id, job)
    if (leasedRows.size > MAX_LEASED_ROWS) leasedRows.delete(leasedRows.keys().next().value!)
  }
  const heldRow = (jobId: string, workerId: string): Job | undefined => {
    const job = leasedRows.get(jobId)
    return job !== undefined && job.lease?.workerId === workerId ? job : undefined
  }
  // Calls made outside a unit of work in the same scheduler turn (many workers' completions, a producer's
  // enqueues) are merged into one statement by Effect's request batching: one round trip and one commit for the
  // lot instead of one each. Inside a unit a call runs alone on the unit's connection, part of its transaction.
  const inUnit = Effect.map(Effect.serviceOption(sql.transactionService), Option.isSome)

  // ---- announcing work ------------------------------------------------------------------------------------
  //
  // A write that makes jobs claimable announces their queues once it has committed (`afterCommit`: at once
  // outside a transaction, after the outermost COMMIT inside one, never after a rollback). Subscribers in this
  // process are woken directly; the others by a NOTIFY that one fiber sends for every queue announced since its
  // last round. The NOTIFY is its own tiny statement rather than part of the write: Postgres serialises the commits
  // of transactions that NOTIFY, which would cost every enqueue its group commit; and under load many commits share
  // one notification. A process that dies between a commit and its NOTIFY leaves the other workers to find the
  // jobs by polling.
  const watchers = new Map<string, Set<Latch.Latch>>()
  const signal = (queue: string) => {
    const set = watchers.get(queue)
    if (set) for (const latch of set) latch.openUnsafe()
  }
  const signalAll = () => {
    for (const set of watchers.values()) for (const latch of set) latch.openUnsafe()
  }
  // Notifications carry "<instance> <queue>": a layer skips its own, whose subscribers it woke already
  const instance = crypto.randomUUID()
  const announced = new Set<string>()
  const notifyWanted = Latch.makeUnsafe(false)
  const announce = (jobs: ReadonlyArray<Pick<JobRow, "queue" | "state" | "run_at" | "updated_at">>) => {
    const queues = new Set<string>()
    for (const job of jobs) if (claimableNow(job.state, job.run_at, job.updated_at)) queues.add(job.queue)
    return announceQueues(queues)
  }
  const announceQueues = (queues: ReadonlySet<string>) => {
    if (queues.size === 0) return Effect.void
    return sql.afterCommit(
      Effect.sync(() => {
        for (const queue of queues) {
          signal(queue)
          announced.add(queue)
        }
        notifyWanted.openUnsafe()
      })
    )
  }
  const notifyRound = Effect.gen(function* () {
    yield* notifyWanted.await
    notifyWanted.closeUnsafe()
    const queues = [...announced]
    announced.clear()
    yield* sql`SELECT pg_notify(${channel}, ${`${instance} `} || q)
               FROM json_array_elements_text(${JSON.stringify(queues)}::json) AS q`
  })

  // ---- enqueue --------------------------------------------------------------------------------------------

  // A job holding an idempotency key is inserted only if its key row was (`job_keys`, the one unique index a
  // key lives in until its job is pruned), in the same statement; jobs without a key skip that table. The rows
  // come as columns read side by side in order: the payloads as one JSON array, each other column as a Postgres
  // array, or as one parameter when it holds one value for the whole batch (the common batch: one queue and
  // priority, no delay, no key). No `ON CONFLICT` on
  // `jobs`: ids are fresh, and keys conflict in `job_keys` only (a speculative insertion cost each row an arbiter
  // probe of `jobs_pkey` and a WAL record more)
  const insertBatch = (input: ReadonlyArray<InsertRow>) => {
    // Payloads as one JSON array (one `JSON.stringify`, nothing to escape), each element read back as `json`
    // text: `json_array_elements` keeps an element's escapes as they are (a lone surrogate, a NUL), as `json` does
    const payloads = JSON.stringify(input.map((row) => row.payload))
    const sources: Array<Statement.Fragment> = [
      sql`json_array_elements(${payloads}::json)`,
      sql`unnest(${`{${input.map((row) => row.id).join(",")}}`}::text[])`
    ]
    const names = ["payload", "id"]
    // A column's one value as a parameter, or its values as one more array to unnest
    const column = <A extends string | number | null>(
      name: string,
      type: string,
      get: (row: InsertRow) => A,
      array: (values: ReadonlyArray<A>) => string
    ): Statement.Fragment => {
      const first = get(input[0]!)
      for (const row of input) {
        if (get(row) !== first) {
          sources.push(sql`unnest(${array(input.map(get))}::${sql.literal(type)}[])`)
          names.push(name)
          return sql.literal(`u.${name}`)
        }
      }
      return sql`${first}::${sql.literal(type)} AS ${sql.literal(name)}`
    }
    const fields = [
      column("queue", "text", (row) => row.queue, textArray),
      column("pool", "text", (row) => row.pool, textArray),
      column("priority", "text", (row) => row.priority, textArray),
      column("priority_rank", "smallint", (row) => row.priority_rank, numberArray),
      column("run_at", "float8", (row) => row.run_at, numberArray),
      column("delay_ms", "float8", (row) => row.delay_ms, numberArray),
      column("max_attempts", "int", (row) => row.max_attempts, numberArray),
      column("idempotency_key", "text", (row) => row.idempotency_key, textArray)
    ]
    const rows = sql`SELECT u.ord, u.id, u.payload, ${sql.csv(fields)}
                     FROM ROWS FROM (${sql.csv(sources)}) WITH ORDINALITY AS u(${sql.literal(names.join(", "))}, ord)`
    const keyed = input.some((row) => row.idempotency_key !== null)
    const insert = (from: Statement.Fragment) =>
      sql`INSERT INTO ${jobs} (id, queue, pool, priority, priority_rank, state, payload, run_at, attempts,
                                 max_attempts, failures, idempotency_key, created_at, updated_at)
            SELECT r.id, r.queue, r.pool, r.priority, r.priority_rank, 'queued', r.payload,
                   coalesce(r.run_at, ${now} + coalesce(r.delay_ms, 0)), 0, r.max_attempts, 0, r.idempotency_key,
                   ${now}, ${now}
            FROM ${from}
            ORDER BY r.ord
            RETURNING id, run_at, created_at`
    const statement = keyed
      ? sql`WITH r AS (${rows}),
                 k AS (INSERT INTO ${keys} (queue, idempotency_key, id)
                       SELECT queue, idempotency_key, id FROM r WHERE idempotency_key IS NOT NULL ORDER BY ord
                       ON CONFLICT DO NOTHING
                       RETURNING id)
            ${insert(sql`r WHERE r.idempotency_key IS NULL OR r.id IN (SELECT id FROM k)`)}`
      : insert(sql`(${rows}) r`)
    return statement.pipe(Effect.flatMap(decodeInsertedRows), Effect.mapError(storeError("enqueue")))
  }

  const findByKeys = (wanted: ReadonlyArray<{ readonly queue: string; readonly key: string }>) =>
    rows(
      "enqueue",
      sql`SELECT ${jCols} FROM json_to_recordset(${JSON.stringify(wanted)}::json) AS x(queue text, key text)
          JOIN ${keys} k ON k.queue = x.queue AND k.idempotency_key = x.key
          JOIN ${allJobs} j ON j.id = k.id`
    )

  const store = Effect.fnUntraced(function* (requests: ReadonlyArray<EnqueueRequest>) {
    if (requests.length === 0) return []
    const clock = yield* Clock.currentTimeMillis
    const input: Array<InsertRow> = requests.map((r) => ({
      id: nextJobId(clock),
      queue: r.queue,
      pool: r.pool ?? null,
      priority: r.priority ?? "normal",
      priority_rank: Task.priorityRank(r.priority ?? "normal"),
      payload: r.payload,
      run_at: r.runAt ?? null,
      delay_ms: r.delayMs ?? null,
      max_attempts: r.maxAttempts ?? defaultMaxAttempts,
      idempotency_key: r.idempotencyKey === undefined ? null : textKey(r.idempotencyKey)
    }))
    // A job holding a key can be pruned between the insert and the read: then insert again
    for (let attempt = 0; attempt < 3; attempt++) {
      const returned = yield* insertBatch(input)
      // Every job inserted, returned in the order sent (the common batch): no lookups
      if (returned.length === input.length && returned.every((row, i) => row.id === input[i]!.id)) {
        const out: Array<Job> = new Array(input.length)
        const queues = new Set<string>()
        for (let i = 0; i < input.length; i++) {
          const job = insertedJob(input[i]!, returned[i]!)
          if (claimableNow("queued", job.runAt, job.createdAt)) queues.add(job.queue)
          out[i] = job
        }
        yield* announceQueues(queues)
        return out
      }
      const inserted = new Map<string, Job>()
      const stored = new Map(returned.map((row) => [row.id, row]))
      const fresh: Array<Pick<JobRow, "queue" | "state" | "run_at" | "updated_at">> = []
      // An inserted job is what was sent plus the times the database chose: built here, not read back
      for (const row of input) {
        const times = stored.get(row.id)
        if (times === undefined) continue
        fresh.push({ queue: row.queue, state: "queued", run_at: times.run_at, updated_at: times.created_at })
        inserted.set(row.id, insertedJob(row, times))
      }
      yield* announce(fresh)
      const missing = input.filter((row) => !inserted.has(row.id))
      const keyOf = (queue: string, key: string) => `${queue}\u0000${key}`
      const existing = new Map<string, Job>()
      if (missing.length > 0) {
        const keys = missing.flatMap((row) =>
          row.idempotency_key === null ? [] : [{ queue: row.queue, key: row.idempotency_key }]
        )
        for (const row of yield* findByKeys(keys)) existing.set(keyOf(row.queue, row.idempotency_key!), toJob(row))
      }
      const out: Array<Job> = []
      for (const row of input) {
        const job =
          inserted.get(row.id) ??
          (row.idempotency_key === null ? undefined : existing.get(keyOf(row.queue, row.idempotency_key)))
        if (job === undefined) break
        out.push(job)
      }
      if (out.length === input.length) return out
    }
    return yield* storeError("enqueue")(new Error("Jobs neither inserted nor found by their idempotency keys"))
  })

  // Concurrent single enqueues outside a unit share one INSERT (see `inUnit`)
  const enqueueResolver = RequestResolver.make<EnqueueCall>((entries) =>
    Effect.map(Effect.exit(store(entries.map((entry) => entry.request.request))), (stored) => {
      for (let i = 0; i < entries.length; i++) {
        entries[i]!.completeUnsafe(
          Exit.isSuccess(stored) ? Exit.succeed(stored.value[i]!) : Exit.failCause(stored.cause)
        )
      }
    }).pipe(Effect.withSpan("Queue.enqueue", { attributes: { jobs: entries.length } }))
  ).pipe(RequestResolver.batchN(MAX_BATCH))

  // The lease holder's per-job calls (and single enqueues) are untraced, as in the memory and Redis queues: a span
  // per call cost more CPU than the merged write itself. Each merged statement has its span, with its size

  const enqueue = Effect.fnUntraced(function* (request: EnqueueRequest) {
    const valid = validateEnqueue(request)
    if (Result.isFailure(valid)) return yield* valid.failure
    if (yield* inUnit) return (yield* store([valid.success]))[0]!
    return yield* Effect.request(EnqueueCall({ request: valid.success }), enqueueResolver)
  })

  const enqueueBatch = Effect.fn("Queue.enqueueBatch")(function* (requests: ReadonlyArray<EnqueueRequest>) {
    const valid = validateEnqueueBatch(requests)
    if (Result.isFailure(valid)) return yield* valid.failure
    return yield* store(valid.success)
  })

  // ---- hand-off: enqueued claimed -------------------------------------------------------------------------

  // One INSERT: the job goes in claimed by the worker (attempt counted, leased) unless a job of a higher
  // priority waits ready where that worker claims from, in which case it goes in queued as `enqueue` would put it
  const insertClaimed = (row: InsertRow, handOff: { readonly workerId: string; readonly leaseMs: number }) => {
    const pool = row.pool === null ? sql`pool IS NULL` : sql`(pool IS NULL OR pool = ${row.pool})`
    // With a key, the job goes in only if its key row did (see `insertBatch`)
    const key =
      row.idempotency_key === null
        ? sql.literal("")
        : sql`, k AS (INSERT INTO ${keys} (queue, idempotency_key, id)
                      VALUES (${row.queue}, ${row.idempotency_key}, ${row.id})
                      ON CONFLICT DO NOTHING RETURNING id)`
    const keyTaken = row.idempotency_key === null ? sql.literal("") : sql`WHERE EXISTS (SELECT 1 FROM k)`
    return sql`WITH waiting AS (
            SELECT EXISTS (
              SELECT 1 FROM ${jobs}
              WHERE queue = ${row.queue} AND finished_at IS NULL AND state IN ('queued', 'failed')
                AND run_at <= ${now} AND ${pool}
                AND priority_rank < ${row.priority_rank}
            ) AS higher
          )${key}
          INSERT INTO ${jobs} (id, queue, pool, priority, priority_rank, state, payload, run_at, attempts,
                               max_attempts, failures, idempotency_key, created_at, updated_at, lease_worker,
                               lease_expires_at, claimed_at)
          SELECT ${row.id}, ${row.queue}, ${row.pool}, ${row.priority}, ${row.priority_rank},
                 CASE WHEN w.higher THEN 'queued' ELSE 'claimed' END, ${JSON.stringify(row.payload)}::json, ${now},
                 CASE WHEN w.higher THEN 0 ELSE 1 END, ${row.max_attempts}, 0, ${row.idempotency_key}, ${now},
                 ${now}, CASE WHEN w.higher THEN NULL ELSE ${handOff.workerId} END,
                 CASE WHEN w.higher THEN NULL ELSE ${now} + ${handOff.leaseMs} END,
                 CASE WHEN w.higher THEN NULL ELSE ${now} END
          FROM waiting w ${keyTaken}
          ON CONFLICT DO NOTHING
          RETURNING id, state, run_at, created_at`.pipe(
      Effect.flatMap(decodeHandedRows),
      Effect.mapError(storeError("enqueue"))
    )
  }

  const enqueueClaimed = Effect.fnUntraced(function* (
    request: EnqueueRequest,
    handOff: { readonly workerId: AgentId; readonly leaseMs: number }
  ) {
    const lease = yield* QueueRules.decodeHandOff(handOff)
    const valid = validateEnqueue(request)
    if (Result.isFailure(valid)) return yield* valid.failure
    const r = valid.success
    // A delayed job is not claimable now: enqueued as usual
    if (r.runAt !== undefined || r.delayMs !== undefined) return (yield* store([r]))[0]!
    const row: InsertRow = {
      id: nextJobId(yield* Clock.currentTimeMillis),
      queue: r.queue,
      pool: r.pool ?? null,
      priority: r.priority ?? "normal",
      priority_rank: Task.priorityRank(r.priority ?? "normal"),
      payload: r.payload,
      run_at: null,
      delay_ms: null,
      max_attempts: r.maxAttempts ?? defaultMaxAttempts,
      idempotency_key: r.idempotencyKey === undefined ? null : textKey(r.idempotencyKey)
    }
    const [inserted] = yield* insertClaimed(row, lease)
    // The idempotency key was taken: the stored job, as `enqueue` returns it
    if (inserted === undefined) return (yield* store([r]))[0]!
    const job = insertedJob(row, inserted)
    if (inserted.state !== "claimed") {
      yield* announce([{ queue: row.queue, state: "queued", run_at: inserted.run_at, updated_at: inserted.created_at }])
      return job
    }
    const claimed: Job = {
      ...job,
      state: "claimed",
      attempts: 1,
      lease: { workerId: lease.workerId, expiresAt: inserted.created_at + lease.leaseMs },
      claimedAt: inserted.created_at
    }
    remember(claimed)
    return claimed
  })

  // ---- claim ----------------------------------------------------------------------------------------------

  const claim = Effect.fn("Queue.claim")(function* (request: ClaimRequest) {
    const c = yield* decodeClaimRequest(request)
    const pool = c.pool === undefined ? sql`pool IS NULL` : sql`(pool IS NULL OR pool = ${c.pool})`
    const leaseMs = c.leaseMs ?? defaultLeaseMs
    const claimed = yield* sql`WITH picked AS (
            SELECT ctid FROM ${jobs}
            WHERE queue IN ${sql.in(c.queues)} AND finished_at IS NULL AND state IN ('queued', 'failed')
              AND run_at <= ${now} AND ${pool}
            ORDER BY priority_rank, run_at, seq
            LIMIT ${c.max ?? 1}
            FOR UPDATE SKIP LOCKED
          ), claimed AS (
            UPDATE ${jobs} j
            SET state = 'claimed', attempts = j.attempts + 1, lease_worker = ${c.workerId},
                lease_expires_at = ${now} + ${leaseMs}, claimed_at = ${now}, updated_at = ${now}
            WHERE j.ctid = ANY(ARRAY(SELECT ctid FROM picked)) AND j.state IN ('queued', 'failed')
            RETURNING j.*
          )
          SELECT ${claimedCols} FROM claimed ORDER BY priority_rank, run_at, seq`.pipe(
      Effect.flatMap(readRows((value) => readClaimedJob(value, c.workerId, leaseMs))),
      Effect.mapError(storeError("claim"))
    )
    for (let i = 0; i < claimed.length; i++) remember(claimed[i]!)
    return claimed
  })

  // ---- the lease holder's operations ----------------------------------------------------------------------

  const findRefusal = SqlSchema.findOneOption({
    Request: JobId,
    Result: RefusalRow,
    execute: (id) =>
      sql`SELECT state, lease_worker, lease_expires_at <= ${now} AS expired FROM ${allJobs} j WHERE id = ${id}`
  })

  // Why `workerId` could not act on the job, read after the conditional UPDATE changed nothing
  const refusal = (operation: string, jobId: JobId, workerId: AgentId) =>
    Effect.gen(function* () {
      leasedRows.delete(jobId)
      const found = yield* findRefusal(jobId).pipe(Effect.mapError(storeError(operation)))
      if (Option.isNone(found)) return yield* new JobNotFound({ jobId })
      const { state, lease_worker, expired } = found.value
      const leased = (state === "claimed" || state === "running") && lease_worker !== null
      return yield* new LeaseLost({
        jobId,
        workerId,
        reason: !leased
          ? "not_leased"
          : lease_worker !== workerId
            ? "held_by_other"
            : expired
              ? "expired"
              : "not_leased",
        state,
        ...(lease_worker === null ? {} : { holder: lease_worker })
      })
    })

  const holding = (jobId: string, workerId: string) =>
    sql`id = ${jobId} AND state IN ('claimed', 'running') AND lease_worker = ${workerId}
        AND lease_expires_at > ${now}`

  // Runs a conditional single-row statement; refuses with the reason when it changed nothing
  const leaseOperation = (
    operation: string,
    jobId: JobId,
    workerId: AgentId,
    statement: Effect.Effect<ReadonlyArray<unknown>, SqlError.SqlError>
  ) =>
    Effect.gen(function* () {
      const [row] = yield* rows(operation, statement)
      if (row === undefined) return yield* refusal(operation, jobId, workerId)
      if (row.state !== "claimed" && row.state !== "running") leasedRows.delete(jobId)
      // a released job, or a failed one retried at once, is claimable again
      yield* announce([row])
      return toJob(row)
    })

  const start = Effect.fnUntraced(function* (jobId: JobId, workerId: AgentId) {
    return yield* leaseOperation(
      "start",
      jobId,
      workerId,
      sql`UPDATE ${jobs}
          SET state = 'running', updated_at = CASE WHEN state = 'running' THEN updated_at ELSE ${now} END
          WHERE ${holding(jobId, workerId)}
          RETURNING ${cols}`
    )
  })

  // Whether `j` is held by the caller of input row `r` with a live lease. `lease_worker` is set exactly while a
  // job is claimed or running (every write leaving those states clears it), so the state is not tested (when a
  // lease index existed, that test matched its predicate and the planner joined the input to the whole index
  // instead of looking the jobs up by id)
  const holds = (r: string) => sql`j.lease_worker = ${sql.literal(r)}.worker AND j.lease_expires_at > ${now}`

  // A merged lease-holder UPDATE over the JSON rows `input` (each with `id` and `worker`): changes each job still
  // held by its caller with a live lease (and `extra`). How it takes the rows' locks (`lock`):
  // - "wait": first locks them in id order, as `requeueExpired` does, waiting for other writers (fails);
  // - "skip": first locks the ones no one else holds, in one pass that never waits (heartbeats; a job skipped is
  //   tried alone, a single-row statement that waits and says why);
  // Completions (`moveFinished`) lock each row as their DELETE reaches it (no lock record nor second join per job).
  // Deadlock-free: a statement that waits while holding locks either locks in id order or, for completions, holds
  // only jobs its caller leases, which no heartbeat round, fail or claim of another caller waits for (heartbeats
  // skip, claims skip, a job has one outcome); only a requeue racing a lease that expires mid-statement could wait
  // on one of them, and Postgres breaks such a cycle by failing one statement (the jobs then go back after their
  // leases, as after a crash)
  const mergedUpdate = (
    input: ReadonlyArray<unknown>,
    record: string,
    set: Statement.Fragment,
    extra: (alias: string) => Statement.Fragment,
    returning: Statement.Fragment,
    lock: "wait" | "skip"
  ) => {
    const holdsOf = (r: string) => sql`${holds(r)} ${extra(r)}`
    const rows = sql`SELECT * FROM json_to_recordset(${JSON.stringify(input)}::json) AS x(${sql.literal(record)})`
    const locking =
      lock === "wait" ? sql.literal("ORDER BY j.id FOR UPDATE OF j") : sql.literal("FOR UPDATE OF j SKIP LOCKED")
    return sql`WITH x AS (${rows}),
                    r AS (SELECT j.ctid AS tid, x.* FROM ${jobs} j JOIN x ON j.id = x.id
                          WHERE ${holdsOf("x")} ${locking})
               UPDATE ${jobs} j SET ${set}
               FROM r
               WHERE j.ctid = r.tid AND ${holdsOf("r")}
               RETURNING ${returning}`
  }

  const heartbeatOne = (jobId: JobId, workerId: AgentId, extend: number) =>
    leaseOperation(
      "heartbeat",
      jobId,
      workerId,
      sql`UPDATE ${jobs} SET lease_expires_at = ${now} + ${extend}, updated_at = ${now}
          WHERE ${holding(jobId, workerId)}
          RETURNING ${cols}`
    )

  // Concurrent heartbeats outside a transaction (a worker renewing all its leases at once) share one UPDATE; a
  // lease the UPDATE did not extend is tried alone, which says why
  const heartbeatResolver = RequestResolver.make<HeartbeatCall>((entries) =>
    Effect.gen(function* () {
      const { batch, alone } = firstPerJob(entries)
      const input = batch.map(({ request }) => ({
        id: request.jobId,
        worker: request.workerId,
        extend: request.extendMs
      }))
      const extended = yield* Effect.exit(
        rows(
          "heartbeat",
          mergedUpdate(
            input,
            "id text, worker text, extend float8",
            sql`lease_expires_at = ${now} + r.extend, updated_at = ${now}`,
            () => sql.literal(""),
            jCols,
            "skip"
          )
        )
      )
      if (Exit.isFailure(extended)) {
        const failed = Exit.failCause(extended.cause)
        for (const entry of batch) entry.completeUnsafe(failed)
      } else {
        const byId = new Map(extended.value.map((row) => [row.id, row]))
        for (const entry of batch) {
          const row = byId.get(entry.request.jobId)
          if (row === undefined) alone.push(entry)
          else entry.completeUnsafe(Exit.succeed(toJob(row)))
        }
      }
      yield* Effect.forEach(
        alone,
        (entry) =>
          Effect.map(
            Effect.exit(heartbeatOne(entry.request.jobId, entry.request.workerId, entry.request.extendMs)),
            (exit) => entry.completeUnsafe(exit)
          ),
        { concurrency: "unbounded", discard: true }
      )
    }).pipe(Effect.withSpan("Queue.heartbeat", { attributes: { jobs: entries.length } }))
  ).pipe(RequestResolver.batchN(MAX_BATCH))

  const heartbeat = Effect.fnUntraced(function* (jobId: JobId, workerId: AgentId, extendMs: number) {
    const extend = yield* decodeExtendMs(extendMs)
    if (yield* inUnit) return yield* heartbeatOne(jobId, workerId, extend)
    return yield* Effect.request(HeartbeatCall({ jobId, workerId, extendMs: extend }), heartbeatResolver)
  })

  const completeOne = (jobId: JobId, workerId: AgentId, result: string) =>
    leaseOperation(
      "complete",
      jobId,
      workerId,
      moveFinished(
        sql`DELETE FROM ${jobs} WHERE ${holding(jobId, workerId)} RETURNING *, ${result}::text AS new_result`,
        "completed",
        jCols
      )
    )

  // Splits merged calls: the first call per job goes into the statement, a repeat is run alone (it says why)
  const firstPerJob = <A extends { readonly jobId: JobId }>(entries: ReadonlyArray<LeaseEntry<A>>) => {
    const seen = new Set<string>()
    const batch: Array<LeaseEntry<A>> = []
    const alone: Array<LeaseEntry<A>> = []
    for (const entry of entries) {
      if (seen.has(entry.request.jobId)) alone.push(entry)
      else {
        seen.add(entry.request.jobId)
        batch.push(entry)
      }
    }
    return { batch, alone }
  }

  // Runs a merged lease-holder write. Each job is written under its own conditions (holder, live lease), all in
  // one statement, so one commit covers the lot: a job the statement did not change (lease lost) is run alone,
  // which says why. When every job's claimed row is known, the statement returns only what it wrote (`settled`);
  // otherwise every column (`full`)
  const mergedWrite = <A extends { readonly jobId: JobId; readonly workerId: AgentId }>(
    operation: string,
    entries: ReadonlyArray<LeaseEntry<A>>,
    statement: (
      requests: ReadonlyArray<A>,
      returning: ReturnType<typeof sql.literal>
    ) => Effect.Effect<ReadonlyArray<unknown>, SqlError.SqlError>,
    completed: boolean,
    patch: (request: A) => Patch,
    alone: (request: A) => Effect.Effect<Job, LeaseError>
  ) =>
    Effect.gen(function* () {
      const { batch, alone: repeats } = firstPerJob(entries)
      const later = [...repeats]
      const claimed = batch.map((entry) => heldRow(entry.request.jobId, entry.request.workerId))
      const settledOnly = claimed.every((row) => row !== undefined)
      const requests = batch.map((entry) => entry.request)
      const written = yield* Effect.exit(
        settledOnly
          ? statement(requests, sql.literal(completed ? COMPLETED_COLUMNS : FAILED_COLUMNS)).pipe(
              Effect.flatMap(completed ? checkCompletedRows : checkFailedRows),
              Effect.mapError(storeError(operation))
            )
          : rows(operation, statement(requests, jCols))
      )
      if (Exit.isFailure(written)) {
        const failed = Exit.failCause(written.cause)
        for (const entry of batch) entry.completeUnsafe(failed)
      } else {
        const byId = new Map<string, Record<string, unknown> | JobRow>()
        for (const row of written.value) byId.set(row.id as string, row)
        const reread: Array<LeaseEntry<A>> = []
        const queues = new Set<string>()
        for (let i = 0; i < batch.length; i++) {
          const entry = batch[i]!
          const row = byId.get(entry.request.jobId)
          if (row === undefined) {
            later.push(entry)
            continue
          }
          leasedRows.delete(entry.request.jobId)
          const job = settledOnly
            ? settledJob(claimed[i]!, row as Record<string, unknown>, patch(entry.request))
            : toJob(row as JobRow)
          if (job === undefined) {
            reread.push(entry)
            continue
          }
          if (claimableNow(job.state, job.runAt, job.updatedAt)) queues.add(job.queue)
          entry.completeUnsafe(Exit.succeed(job))
        }
        yield* announceQueues(queues)
        // Written, but not the claim this layer remembered: read what was stored
        yield* Effect.forEach(
          reread,
          (entry) =>
            Effect.map(Effect.exit(findJob(operation, entry.request.jobId)), (found) =>
              entry.completeUnsafe(
                Exit.isFailure(found)
                  ? Exit.failCause(found.cause)
                  : Option.isNone(found.value)
                    ? Exit.fail(new JobNotFound({ jobId: entry.request.jobId }))
                    : Exit.succeed(toJob(found.value.value))
              )
            ),
          { concurrency: "unbounded", discard: true }
        )
      }
      yield* Effect.forEach(
        later,
        (entry) => Effect.map(Effect.exit(alone(entry.request)), (exit) => entry.completeUnsafe(exit)),
        { concurrency: "unbounded", discard: true }
      )
    }).pipe(Effect.withSpan(`Queue.${operation}`, { attributes: { jobs: entries.length } }))

  // Completions outside a transaction in one UPDATE: concurrent `complete` calls, or a `completeMany`
  const completeMerged = (entries: ReadonlyArray<LeaseEntry<CompleteInput>>) =>
    mergedWrite(
      "complete",
      entries,
      (requests, returning) => {
        // Each row locked as the DELETE reaches it, found by id; why this cannot deadlock is at `mergedUpdate`.
        // The common batch (one worker's jobs, no results: what `Worker.run` records for handlers returning
        // nothing) sends the ids as one array, not a JSON object per job: parsing the JSON was most of what
        // Postgres spent on a completion besides the writes
        const worker = requests[0]!.workerId
        let plain = true
        for (const r of requests) {
          if (r.workerId !== worker || r.result !== "null" || !JOB_CURSOR.test(r.jobId)) {
            plain = false
            break
          }
        }
        if (plain) {
          return moveFinished(
            sql`DELETE FROM ${jobs} j
                WHERE j.id = ANY(${`{${requests.map((r) => r.jobId).join(",")}}`}::text[])
                  AND j.lease_worker = ${worker} AND j.lease_expires_at > ${now}
                RETURNING j.*, 'null' AS new_result`,
            "completed",
            returning
          )
        }
        const input = requests.map((request) => ({
          id: request.jobId,
          worker: request.workerId,
          result: request.result
        }))
        return moveFinished(
          sql`DELETE FROM ${jobs} j
              USING json_to_recordset(${JSON.stringify(input)}::json) AS r(id text, worker text, result text)
              WHERE j.id = r.id AND ${holds("r")}
              RETURNING j.*, r.result AS new_result`,
          "completed",
          returning
        )
      },
      true,
      // "null", the common result, without a parse nor an object per job
      (request) =>
        request.result === "null"
          ? COMPLETED_NULL
          : { state: "completed", result: JSON.parse(request.result) as Schema.Json },
      (request) => completeOne(request.jobId, request.workerId, request.result)
    )
  const completeResolver = RequestResolver.make<CompleteCall>(completeMerged).pipe(RequestResolver.batchN(MAX_BATCH))

  const completeWith = (jobId: JobId, workerId: AgentId, value: string) =>
    Effect.flatMap(inUnit, (unit) =>
      unit
        ? completeOne(jobId, workerId, value)
        : Effect.request(CompleteCall({ jobId, workerId, result: value }), completeResolver)
    )
  // Combinators rather than a generator: this runs once per job
  const complete = (jobId: JobId, workerId: AgentId, result?: Schema.Json) =>
    result === undefined || result === null
      ? completeWith(jobId, workerId, "null")
      : Effect.flatMap(prepareResult(result), (prepared) => completeWith(jobId, workerId, JSON.stringify(prepared)))

  // Many completions in one statement per `MAX_BATCH` (the worker's batched recording); inside a unit, one by one
  const completeMany = (completions: ReadonlyArray<Completion>) =>
    Effect.gen(function* () {
      const exits: Array<Exit.Exit<Job, LeaseError | InvalidInput>> = new Array(completions.length)
      if (yield* inUnit) {
        for (let i = 0; i < completions.length; i++) {
          const c = completions[i]!
          exits[i] = yield* Effect.exit(complete(c.jobId, c.workerId, c.result))
        }
        return exits
      }
      const entries: Array<LeaseEntry<CompleteInput>> = []
      for (let i = 0; i < completions.length; i++) {
        const c = completions[i]!
        let result = "null"
        if (c.result !== undefined && c.result !== null) {
          const prepared = yield* Effect.exit(prepareResult(c.result))
          if (Exit.isFailure(prepared)) {
            exits[i] = Exit.failCause(prepared.cause)
            continue
          }
          result = JSON.stringify(prepared.value)
        }
        entries.push(new CompletionEntry(c.jobId, c.workerId, result, exits, i))
      }
      if (entries.length <= MAX_BATCH) yield* completeMerged(entries)
      else {
        for (let from = 0; from < entries.length; from += MAX_BATCH) {
          yield* completeMerged(entries.slice(from, from + MAX_BATCH))
        }
      }
      return exits
    })

  const findAttempts = SqlSchema.findOneOption({
    Request: Schema.Struct({ id: JobId, workerId: AgentId }),
    Result: AttemptRow,
    execute: ({ id, workerId }) =>
      sql`SELECT attempts, max_attempts, ${now} AS now FROM ${jobs} WHERE ${holding(id, workerId)}`
  })

  // Reads the attempt count (the backoff decision needs it), then writes the decision under the same conditions
  const failOne = (jobId: JobId, workerId: AgentId, message: string, retryable: boolean, draw: number) =>
    Effect.gen(function* () {
      const found = yield* findAttempts({ id: jobId, workerId }).pipe(Effect.mapError(storeError("fail")))
      if (Option.isNone(found)) return yield* refusal("fail", jobId, workerId)
      const { attempts, max_attempts, now: at } = found.value
      const decision = Backoff.decide({ attempts, maxAttempts: max_attempts, retryable, now: at, draw }, backoff)
      // The delay is core's; it starts from the database's clock when the write happens
      const outcome =
        decision._tag === "Retry"
          ? sql`state = 'failed', run_at = ${now} + ${decision.delayMs}`
          : sql`state = 'dead_lettered', finished_at = ${now}`
      return yield* leaseOperation(
        "fail",
        jobId,
        workerId,
        sql`UPDATE ${jobs}
            SET ${outcome}, lease_worker = NULL, lease_expires_at = NULL, last_error = ${message}::json,
                failures = failures + 1, updated_at = ${now}
            WHERE ${holding(jobId, workerId)} AND attempts = ${attempts}
            RETURNING ${cols}`
      )
    })

  // Concurrent failures outside a transaction share one UPDATE, each decided from its claimed row and written
  // only if the job is still at that attempt
  const failResolver = RequestResolver.make<FailCall>((entries) =>
    mergedWrite(
      "fail",
      entries,
      (requests, returning) => {
        const input = requests.map((request) => ({
          id: request.jobId,
          worker: request.workerId,
          error: request.error,
          attempts: request.attempts,
          delay_ms: request.delayMs
        }))
        return mergedUpdate(
          input,
          "id text, worker text, error text, attempts int, delay_ms float8",
          sql`state = CASE WHEN r.delay_ms IS NULL THEN 'dead_lettered' ELSE 'failed' END,
              run_at = CASE WHEN r.delay_ms IS NULL THEN j.run_at ELSE ${now} + r.delay_ms END,
              finished_at = CASE WHEN r.delay_ms IS NULL THEN ${now} ELSE j.finished_at END,
              lease_worker = NULL, lease_expires_at = NULL, last_error = r.error::json,
              failures = j.failures + 1, updated_at = ${now}`,
          (alias) => sql`AND j.attempts = ${sql.literal(alias)}.attempts`,
          returning,
          "wait"
        )
      },
      false,
      (request) => ({
        state: request.delayMs === null ? "dead_lettered" : "failed",
        lastError: JSON.parse(request.error) as string
      }),
      (request) => failOne(request.jobId, request.workerId, request.error, request.retryable, request.draw)
    )
  ).pipe(RequestResolver.batchN(MAX_BATCH))

  const fail = Effect.fnUntraced(function* (jobId: JobId, workerId: AgentId, error: string, options?: FailOptions) {
    const message = JSON.stringify(typeof error === "string" ? error : String(error))
    const retryable = options?.retryable !== false
    const draw = yield* Random.next
    const held = heldRow(jobId, workerId)
    if (held === undefined || (yield* inUnit)) return yield* failOne(jobId, workerId, message, retryable, draw)
    // The claimed row's attempt count is the stored one while the lease is held (the write checks it)
    const decision = Backoff.decide(
      { attempts: held.attempts, maxAttempts: held.maxAttempts, retryable, now: 0, draw },
      backoff
    )
    return yield* Effect.request(
      FailCall({
        jobId,
        workerId,
        error: message,
        attempts: held.attempts,
        delayMs: decision._tag === "Retry" ? decision.delayMs : null,
        retryable,
        draw
      }),
      failResolver
    )
  })

  const release = Effect.fnUntraced(function* (jobId: JobId, workerId: AgentId) {
    return yield* leaseOperation(
      "release",
      jobId,
      workerId,
      sql`UPDATE ${jobs}
          SET state = 'queued', lease_worker = NULL, lease_expires_at = NULL,
              attempts = greatest(0, attempts - 1), updated_at = ${now}
          WHERE ${holding(jobId, workerId)}
          RETURNING ${cols}`
    )
  })

  // ---- administration -------------------------------------------------------------------------------------

  const findJob = (operation: string, jobId: JobId) =>
    Effect.map(rows(operation, sql`SELECT ${cols} FROM ${allJobs} j WHERE id = ${jobId}`), (found) =>
      found[0] === undefined ? Option.none<JobRow>() : Option.some(found[0])
    )

  const cancel = Effect.fn("Queue.cancel")(function* (jobId: JobId) {
    const [row] = yield* rows(
      "cancel",
      moveFinished(
        sql`DELETE FROM ${jobs} WHERE id = ${jobId} AND state IN ('queued', 'claimed', 'running', 'failed')
            RETURNING *`,
        "cancelled",
        jCols
      )
    )
    if (row !== undefined) return toJob(row)
    const current = yield* findJob("cancel", jobId)
    if (Option.isNone(current)) return yield* new JobNotFound({ jobId })
    // Cancelling again is a no-op
    if (current.value.state === "cancelled") return toJob(current.value)
    return yield* new IllegalTransition({ entity: "job", id: jobId, from: current.value.state, to: "cancelled" })
  })

  const retryDeadLettered = Effect.fn("Queue.retryDeadLettered")(function* (jobId: JobId) {
    const [row] = yield* rows(
      "retryDeadLettered",
      sql`UPDATE ${jobs}
          SET state = 'queued', finished_at = NULL, attempts = 0, run_at = ${now}, updated_at = ${now}
          WHERE id = ${jobId} AND state = 'dead_lettered'
          RETURNING ${cols}`
    )
    if (row !== undefined) {
      yield* announce([row])
      return toJob(row)
    }
    const current = yield* findJob("retryDeadLettered", jobId)
    if (Option.isNone(current)) return yield* new JobNotFound({ jobId })
    return yield* new IllegalTransition({ entity: "job", id: jobId, from: current.value.state, to: "queued" })
  })

  // One statement: every expired lease back to queued, or dead-lettered when no attempt is left; an expired lease
  // counts as a failed attempt. It waits for rows another sweep (or a lease holder) has locked instead of skipping
  // them, so that when it returns every lease that had expired is settled; locking in id order keeps concurrent
  // sweeps from deadlocking
  const requeueExpired = rows(
    "requeueExpired",
    sql`WITH expired AS (
          SELECT id FROM ${jobs}
          WHERE state IN ('claimed', 'running') AND lease_expires_at <= ${now}
          ORDER BY id
          FOR UPDATE
        ), changed AS (
          UPDATE ${jobs} j
          SET state = CASE WHEN j.attempts >= j.max_attempts THEN 'dead_lettered' ELSE 'queued' END,
              run_at = CASE WHEN j.attempts >= j.max_attempts THEN j.run_at ELSE ${now} END,
              finished_at = CASE WHEN j.attempts >= j.max_attempts THEN ${now} ELSE j.finished_at END,
              last_error = to_json('lease expired (held by ' || coalesce(j.lease_worker, 'unknown') || ')'),
              failures = j.failures + 1, lease_worker = NULL, lease_expires_at = NULL, updated_at = ${now}
          FROM expired WHERE j.id = expired.id
          RETURNING ${jCols}
        )
        SELECT * FROM changed`
  ).pipe(
    Effect.tap(announce),
    Effect.map((changed) => changed.map(toJob)),
    Effect.withSpan("Queue.requeueExpired")
  )

  // Completed and cancelled jobs past their retention, a thousand rows per statement. No index holds finished
  // times (migration 0012): a job finished before the cutoff was made before it, and ids begin with the
  // millisecond they were made (UUIDv7), so the walk stays in `jobs_pkey` below the cutoff's id prefix. The
  // DELETE reaches the locked rows by `ctid` (joined by id, the planner scanned the whole table)
  const pruneBatch = sql<{ readonly id: string }>`WITH cutoff AS (
      SELECT ${now} - ${retainFinishedMs} AS at,
             lpad(to_hex(greatest(0, least(${now} - ${retainFinishedMs}, ${MAX_ID_MS}))::bigint), 12, '0') AS hex
    ), pruned AS (
      DELETE FROM ${done} WHERE ctid = ANY(ARRAY(
        SELECT j.ctid FROM ${done} j, cutoff
        WHERE j.id < 'job_' || left(cutoff.hex, 8) || '-' || right(cutoff.hex, 4) AND j.finished_at <= cutoff.at
        ORDER BY j.id
        LIMIT 1000 FOR UPDATE OF j SKIP LOCKED
      )) RETURNING id, queue, idempotency_key
    ), freed AS (
      DELETE FROM ${keys} k USING pruned p
      WHERE k.queue = p.queue AND k.idempotency_key = p.idempotency_key AND k.id = p.id
    )
    SELECT id FROM pruned`
  const prune: Effect.Effect<number, QueueStoreError> = Effect.gen(function* () {
    let total = 0
    while (true) {
      const deleted = (yield* pruneBatch.pipe(Effect.mapError(storeError("prune")))).length
      total += deleted
      if (deleted < 1000) return total
    }
  })

  // ---- reads ----------------------------------------------------------------------------------------------

  const get = Effect.fn("Queue.get")(function* (jobId: JobId) {
    const found = yield* findJob("get", jobId)
    if (Option.isNone(found)) return yield* new JobNotFound({ jobId })
    return toJob(found.value)
  })

  const list = Effect.fn("Queue.list")(function* (query?: JobQuery) {
    const q = yield* decodeJobQuery(query ?? {})
    // The cursor is the last job's id: ids are in creation order (see `nextJobId`)
    if (q.cursor !== undefined && !JOB_CURSOR.test(q.cursor)) {
      return yield* InvalidInput.at("$.cursor", "Expected a cursor returned by this queue's list")
    }
    const limit = q.limit ?? defaultListLimit
    const where = sql.and([
      ...(q.queue === undefined ? [] : [sql`queue = ${q.queue}`]),
      ...(q.state === undefined ? [] : [sql`state = ${q.state}`]),
      ...(q.pool === undefined ? [] : [sql`pool = ${q.pool}`]),
      ...(q.cursor === undefined ? [] : [sql`id > ${q.cursor}`])
    ])
    const found = yield* rows(
      "list",
      sql`SELECT ${cols} FROM ${allJobs} j WHERE ${where} ORDER BY id LIMIT ${limit + 1}`
    )
    const page = found.slice(0, limit)
    const out = page.map(toJob)
    return found.length > limit ? { jobs: out, nextCursor: page[page.length - 1]!.id } : { jobs: out }
  })

  const stats = Effect.fn("Queue.stats")(function* (queue?: string) {
    const name = queue === undefined ? undefined : yield* decodeStatsQueue(queue)
    const pending = sql.literal("state IN ('queued', 'failed')")
    const [row] = yield* SqlSchema.findAll({
      Request: Schema.Void,
      Result: StatsRow,
      execute: () =>
        sql`SELECT
              count(*) FILTER (WHERE state = 'queued')::int AS queued,
              count(*) FILTER (WHERE state = 'claimed')::int AS claimed,
              count(*) FILTER (WHERE state = 'running')::int AS running,
              count(*) FILTER (WHERE state = 'completed')::int AS completed,
              count(*) FILTER (WHERE state = 'failed')::int AS failed,
              count(*) FILTER (WHERE state = 'dead_lettered')::int AS dead_lettered,
              count(*) FILTER (WHERE state = 'cancelled')::int AS cancelled,
              count(*) FILTER (WHERE ${pending} AND priority = 'critical')::int AS p_critical,
              count(*) FILTER (WHERE ${pending} AND priority = 'high')::int AS p_high,
              count(*) FILTER (WHERE ${pending} AND priority = 'normal')::int AS p_normal,
              count(*) FILTER (WHERE ${pending} AND priority = 'low')::int AS p_low,
              count(*) FILTER (WHERE ${pending} AND run_at <= ${now})::int AS ready,
              min(run_at) FILTER (WHERE ${pending} AND run_at <= ${now}) AS oldest_ready_at,
              percentile_disc(0.5) WITHIN GROUP (ORDER BY claimed_at - run_at)
                FILTER (WHERE claimed_at >= run_at) AS wait_p50,
              percentile_disc(0.95) WITHIN GROUP (ORDER BY claimed_at - run_at)
                FILTER (WHERE claimed_at >= run_at) AS wait_p95,
              coalesce(sum(failures), 0)::float8 AS failures,
              ${now} AS now
            FROM ${allJobs} j
            WHERE ${name === undefined ? sql.literal("true") : sql`queue = ${name}`}`
    })(undefined).pipe(Effect.mapError(storeError("stats")))
    const r = row!
    const finished = r.failures + r.completed
    return {
      byState: {
        queued: r.queued,
        claimed: r.claimed,
        running: r.running,
        completed: r.completed,
        failed: r.failed,
        dead_lettered: r.dead_lettered,
        cancelled: r.cancelled
      },
      pendingByPriority: { critical: r.p_critical, high: r.p_high, normal: r.p_normal, low: r.p_low },
      ready: r.ready,
      oldestReadyAgeMs: r.ready === 0 || r.oldest_ready_at === null ? null : r.now - r.oldest_ready_at,
      waitP50Ms: r.wait_p50,
      waitP95Ms: r.wait_p95,
      failureRate: finished === 0 ? null : r.failures / finished,
      deadLettered: r.dead_lettered
    } satisfies QueueStats
  })

  // ---- wake-ups -------------------------------------------------------------------------------------------

  // A LISTEN in its own scope under the layer's, so a lost connection can be replaced
  const subscribe = Effect.gen(function* () {
    const scope = yield* Scope.fork(layerScope)
    const notifications = yield* pg.listen(channel).pipe(
      Scope.provide(scope),
      Effect.tapError(() => Scope.close(scope, Exit.void))
    )
    return { scope, notifications }
  })
  type Subscription = Effect.Success<typeof subscribe>

  // Retries forever: the error type is only what the type system cannot rule out
  const consume = (subscription: Subscription): Effect.Effect<never, SqlError.SqlError> =>
    Effect.forever(
      Effect.map(EffectQueue.take(subscription.notifications), ({ payload }) => {
        const space = payload.indexOf(" ")
        if (space < 0) signal(payload)
        else if (payload.slice(0, space) !== instance) signal(payload.slice(space + 1))
      })
    ).pipe(
      Effect.catch((error) =>
        Effect.gen(function* () {
          yield* Scope.close(subscription.scope, Exit.void)
          yield* Effect.logWarning(`Queue wake-ups lost their connection, listening again: ${error.message}`)
          const next = yield* subscribe.pipe(Effect.retry(Schedule.spaced("1 second")))
          // Notifications sent while nobody listened are gone: let every subscriber look for work
          signalAll()
          return yield* consume(next)
        })
      )
    )

  // The first subscriber opens the LISTEN (and fails if it cannot; the next one tries again); later ones share it
  const startLock = yield* Semaphore.make(1)
  let started = false
  const listening = startLock
    .withPermits(1)(
      Effect.suspend(() =>
        started
          ? Effect.void
          : Effect.gen(function* () {
              const subscription = yield* subscribe
              yield* Effect.forkIn(consume(subscription), layerScope)
              started = true
            })
      )
    )
    .pipe(Effect.mapError(storeError("wakeups")))

  const wakeups = (request: WakeupRequest) =>
    Effect.gen(function* () {
      yield* listening
      const latch = Latch.makeUnsafe(false)
      for (const queue of request.queues) {
        let set = watchers.get(queue)
        if (!set) {
          set = new Set()
          watchers.set(queue, set)
        }
        set.add(latch)
      }
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          for (const queue of request.queues) {
            const set = watchers.get(queue)
            if (!set) continue
            set.delete(latch)
            if (set.size === 0) watchers.delete(queue)
          }
        })
      )
      return Effect.andThen(
        latch.await,
        Effect.sync(() => latch.closeUnsafe())
      )
    })

  // ---- background -----------------------------------------------------------------------------------------

  const logged =
    (what: string) =>
    <A, E>(effect: Effect.Effect<A, E>) =>
      effect.pipe(
        Effect.asVoid,
        Effect.catch((error) => Effect.logWarning(`Queue ${what} failed: ${String(error)}`)),
        Effect.catchDefect((defect) => Effect.logError(`Queue ${what} died: ${String(defect)}`))
      )
  yield* Effect.forkScoped(Effect.forever(logged("notify")(notifyRound)))
  // The sweep scans `jobs` (no lease index, so that claims stay HOT): its pause grows with its duration, so that a
  // large backlog does not turn it into a standing load (`QueueRules.sweepPauseMs`)
  const sweepAfter = (pauseMs: number): Effect.Effect<never> =>
    Effect.sleep(pauseMs).pipe(
      Effect.andThen(Effect.timed(logged("requeue")(requeueExpired))),
      Effect.flatMap(([took]) => sweepAfter(QueueRules.sweepPauseMs(requeueIntervalMs, Duration.toMillis(took))))
    )
  yield* Effect.forkScoped(sweepAfter(requeueIntervalMs))
  if (Number.isFinite(retainFinishedMs)) {
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(pruneIntervalMs), logged("prune")(prune))))
  }

  return Queue.of({
    enqueue,
    enqueueBatch,
    enqueueClaimed,
    claim,
    start,
    heartbeat,
    complete,
    completeMany,
    fail,
    release,
    cancel,
    retryDeadLettered,
    requeueExpired,
    get,
    list,
    stats,
    wakeups
  })
})

/**
 * The Postgres queue as a layer over the shared `PgClient` (see `makeQueue`).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerQueue = (options?: QueueOptions): Layer.Layer<Queue, InvalidInput, PgClient.PgClient> =>
  Layer.effect(Queue, makeQueue(options))
