/**
 * The rules every `Queue` layer shares, kept once so that layers agree: the request models and their limits,
 * enqueue validation (each bad field by JSON path) and the queued job it builds, the decoders of claims, queries,
 * heartbeats and stats, stored results, queue statistics, and the bounds of the layers' background intervals.
 * Layers store and lock; what a request means is decided here.
 *
 * @since 0.1.0
 */
import { Effect, Result, Schema } from "effect"
import * as Canonical from "./Canonical.ts"
import { AgentId, type JobId, uuidv7 } from "./Ids.ts"
import { decode, fromSchemaError, type InputIssue, InvalidInput } from "./InvalidInput.ts"
import { isPendingJobState, type Job, JobState, PoolName, QueueName } from "./Job.ts"
import type { QueueStats } from "./Queue.ts"
import { Priority } from "./Task.ts"

// ---- models -----------------------------------------------------------------------------------------------

/**
 * Attempts a job gets unless its request says otherwise.
 *
 * @category constants
 * @since 0.1.0
 */
export const defaultMaxAttempts = 5

/**
 * Lease length (ms) of a claim that does not give one.
 *
 * @category constants
 * @since 0.1.0
 */
export const defaultLeaseMs = 30_000

/**
 * Page size of `list` when the query does not give one.
 *
 * @category constants
 * @since 0.1.0
 */
export const defaultListLimit = 100

/**
 * One day in ms: the longest lease, heartbeat extension and background interval a layer accepts.
 *
 * @category constants
 * @since 0.1.0
 */
export const DAY_MS = 86_400_000
const MINUTE_MS = 60_000

const Millis = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))
const LeaseMillis = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: DAY_MS }))

const enqueueFields = {
  queue: QueueName,
  /** Default `normal`. */
  priority: Schema.optionalKey(Priority),
  runAt: Schema.optionalKey(Millis),
  delayMs: Schema.optionalKey(Millis),
  /** Default 5. */
  maxAttempts: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1_000 }))),
  /** A second enqueue with the same key in the same queue returns the first job. */
  idempotencyKey: Schema.optionalKey(Schema.String.check(Schema.isBetweenLength(1, 256))),
  /** Only claims for this pool may take the job. */
  pool: Schema.optionalKey(PoolName)
}

/**
 * What to enqueue. `runAt` (epoch ms) or `delayMs` delays the job; without either it is ready at once.
 *
 * @category models
 * @since 0.1.0
 */
export const EnqueueRequest = Schema.Struct({ ...enqueueFields, payload: Schema.Json })
export type EnqueueRequest = typeof EnqueueRequest.Type

/**
 * A claim: up to `max` jobs (default 1) from `queues`, each leased to `workerId` for `leaseMs` (default 30 s).
 *
 * @category models
 * @since 0.1.0
 */
export const ClaimRequest = Schema.Struct({
  workerId: AgentId,
  queues: Schema.NonEmptyArray(QueueName).check(Schema.isMaxLength(64)),
  /** The claimer's pool: it may take that pool's jobs as well as pool-less ones. */
  pool: Schema.optionalKey(PoolName),
  max: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1_000 }))),
  leaseMs: Schema.optionalKey(LeaseMillis)
})
export type ClaimRequest = typeof ClaimRequest.Type

/**
 * Options of `fail`.
 *
 * @category models
 * @since 0.1.0
 */
export interface FailOptions {
  /** False when retrying cannot help: the job is dead-lettered at once. Default true. */
  readonly retryable?: boolean | undefined
}

/**
 * A `list` query. Jobs come oldest first (by creation); pass a page's `nextCursor` to get the next page.
 *
 * @category models
 * @since 0.1.0
 */
export const JobQuery = Schema.Struct({
  queue: Schema.optionalKey(QueueName),
  state: Schema.optionalKey(JobState),
  pool: Schema.optionalKey(PoolName),
  limit: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1_000 }))),
  /** Opaque: only a `nextCursor` from the same layer. */
  cursor: Schema.optionalKey(Schema.String.check(Schema.isBetweenLength(1, 512)))
})
export type JobQuery = typeof JobQuery.Type

// ---- pure helpers shared by layers ------------------------------------------------------------------------

/**
 * The nearest-rank percentile (`p` in (0, 1]) of ascending values, as SQL's `percentile_disc`.
 *
 * @category computations
 * @since 0.1.0
 */
export const percentileDisc = (sorted: ReadonlyArray<number>, p: number): number | null =>
  sorted.length === 0 ? null : sorted[Math.min(sorted.length, Math.max(1, Math.ceil(p * sorted.length))) - 1]!

/**
 * Queue statistics over a set of jobs at time `now` (see `QueueStats`). Layers that hold jobs in memory, or
 * can stream them, use it as is; SQL layers compute the same figures in a query.
 *
 * @category computations
 * @since 0.1.0
 */
export const computeQueueStats = (jobs: Iterable<Job>, now: number): QueueStats => {
  const byState = { queued: 0, claimed: 0, running: 0, completed: 0, failed: 0, dead_lettered: 0, cancelled: 0 }
  const pendingByPriority = { critical: 0, high: 0, normal: 0, low: 0 }
  const waits: Array<number> = []
  let ready = 0
  let oldestReadyAt = Number.POSITIVE_INFINITY
  let failures = 0
  for (const job of jobs) {
    byState[job.state]++
    failures += job.failures ?? 0
    if (isPendingJobState(job.state)) {
      pendingByPriority[job.priority]++
      if (job.runAt <= now) {
        ready++
        if (job.runAt < oldestReadyAt) oldestReadyAt = job.runAt
      }
    }
    if (job.claimedAt !== undefined && job.claimedAt >= job.runAt) waits.push(job.claimedAt - job.runAt)
  }
  waits.sort((a, b) => a - b)
  const finished = failures + byState.completed
  return {
    byState,
    pendingByPriority,
    ready,
    oldestReadyAgeMs: ready === 0 ? null : now - oldestReadyAt,
    waitP50Ms: percentileDisc(waits, 0.5),
    waitP95Ms: percentileDisc(waits, 0.95),
    failureRate: finished === 0 ? null : failures / finished,
    deadLettered: byState.dead_lettered
  }
}

/**
 * A layer's background interval option (requeue, prune): whole ms between 1 and a day, `fallback` when absent or
 * not finite.
 *
 * @category computations
 * @since 0.1.0
 */
export const clampInterval = (ms: number | undefined, fallback: number): number =>
  ms !== undefined && Number.isFinite(ms) ? Math.min(DAY_MS, Math.max(1, Math.floor(ms))) : fallback

/**
 * The pause before a layer's next background sweep of expired leases: its interval, or 50 times the last sweep's
 * duration when that is longer (at most a minute), so that a sweep that scans a large backlog takes at most about
 * 2 % of one connection's time. An expired lease then waits at most that pause, beyond its expiry, to be taken back.
 *
 * @category computations
 * @since 0.1.0
 */
export const sweepPauseMs = (intervalMs: number, lastSweepMs: number): number =>
  Number.isFinite(lastSweepMs)
    ? Math.max(intervalMs, Math.min(MINUTE_MS, Math.ceil(50 * Math.max(0, lastSweepMs))))
    : intervalMs

// The payload is checked by Canonical rather than Schema.Json: it names the offending value's own path
// ($.payload.amount, not just $.payload) and also refuses class instances, so what is stored hashes and
// serialises the same everywhere. Parsing the canonical text back yields the store's private copy.
const EnqueueInput = Schema.Struct({ ...enqueueFields, payload: Schema.Unknown })

const decodeEnqueueInput = Schema.decodeUnknownResult(EnqueueInput)

interface Valid {
  readonly request: EnqueueRequest
  readonly payload: Schema.Json
}

// The usual request checked by hand: a plain object whose every field passes is one the Schema decode accepts, and
// this builds the same request (the decode cost ~6 µs per enqueue, more than the rest of a Redis enqueue's client
// side). Anything else, or anything in doubt, is left to the decode (undefined), which also names every issue
const isQueueName = Schema.is(QueueName)
// Names seen valid (names repeat: a queue's name is checked by the Schema once), bounded
const validNames = new Set<string>()
const validName = (name: unknown): boolean => {
  if (typeof name !== "string") return false
  if (validNames.has(name)) return true
  if (!isQueueName(name)) return false
  if (validNames.size < 1_024) validNames.add(name)
  return true
}
const isMillis = (value: unknown) => typeof value === "number" && Number.isFinite(value) && value >= 0
const quickFields = (input: unknown): typeof EnqueueInput.Type | undefined => {
  if (typeof input !== "object" || input === null) return undefined
  const proto = Object.getPrototypeOf(input)
  if (proto !== Object.prototype && proto !== null) return undefined
  const r = input as Record<string, unknown>
  // each field read once: a getter cannot hand the check one value and the request another
  const { queue, priority, runAt, delayMs, maxAttempts, idempotencyKey, pool } = r
  if (!validName(queue) || !("payload" in r)) return undefined
  // built in the Schema's field order, with only the fields given, as the decode builds it
  const out: Record<string, unknown> = { queue }
  if (priority !== undefined) {
    if (!Priority.literals.includes(priority as Priority)) return undefined
    out.priority = priority
  } else if ("priority" in r) return undefined
  if (runAt !== undefined) {
    if (!isMillis(runAt)) return undefined
    out.runAt = runAt
  } else if ("runAt" in r) return undefined
  if (delayMs !== undefined) {
    if (!isMillis(delayMs)) return undefined
    out.delayMs = delayMs
  } else if ("delayMs" in r) return undefined
  if (maxAttempts !== undefined) {
    if (!Number.isInteger(maxAttempts) || (maxAttempts as number) < 1 || (maxAttempts as number) > 1_000)
      return undefined
    out.maxAttempts = maxAttempts
  } else if ("maxAttempts" in r) return undefined
  if (idempotencyKey !== undefined) {
    if (typeof idempotencyKey !== "string" || idempotencyKey.length < 1 || idempotencyKey.length > 256) return undefined
    out.idempotencyKey = idempotencyKey
  } else if ("idempotencyKey" in r) return undefined
  if (pool !== undefined) {
    if (!validName(pool)) return undefined
    out.pool = pool
  } else if ("pool" in r) return undefined
  out.payload = r.payload
  return out as typeof EnqueueInput.Type
}

// Synchronous on purpose: it runs once per enqueued job, and Effect generators per field cost more than the checks
const validateRequest = (input: unknown, root: string): Result.Result<Valid, InvalidInput> => {
  const quick = quickFields(input)
  const fields =
    quick !== undefined
      ? Result.succeed(quick)
      : decodeEnqueueInput(input, { errors: "all", onExcessProperty: "ignore" })
  const payloadInput =
    typeof input === "object" && input !== null ? (input as { readonly payload?: unknown }).payload : undefined
  let text: string | undefined
  let payloadError: InvalidInput | undefined
  try {
    text = Canonical.encode(payloadInput, Canonical.maxDepth)
  } catch (error) {
    payloadError =
      error instanceof Canonical.NotCanonicalJson
        ? InvalidInput.at(`${root}.payload${error.path.slice(1)}`, error.reason)
        : InvalidInput.at(`${root}.payload`, String(error))
  }
  if (Result.isFailure(fields)) {
    const fieldError = fromSchemaError(fields.failure, root)
    return Result.fail(
      payloadError && !hasPath(fieldError, `${root}.payload`) ? combine([fieldError, payloadError]) : fieldError
    )
  }
  if (payloadError || text === undefined)
    return Result.fail(payloadError ?? InvalidInput.at(`${root}.payload`, "Expected JSON"))
  const request = fields.success
  if (request.runAt !== undefined && request.delayMs !== undefined) {
    return Result.fail(InvalidInput.at(`${root}.delayMs`, "Give runAt or delayMs, not both"))
  }
  const payload = deepFreeze(JSON.parse(text)) as Schema.Json
  return Result.succeed({ request: { ...request, payload }, payload })
}

const hasPath = (error: InvalidInput, path: string): boolean => error.issues.some((issue) => issue.path === path)

// A stored copy of a JSON value: primitives as they are, anything else checked by Canonical and re-parsed
const privateJson = (value: unknown, path: string): Effect.Effect<Schema.Json, InvalidInput> =>
  value === null ||
  typeof value === "string" ||
  typeof value === "boolean" ||
  (typeof value === "number" && Number.isFinite(value))
    ? Effect.succeed(value as Schema.Json)
    : Effect.map(Canonical.encodeEffect(value, path), (text) => deepFreeze(JSON.parse(text)) as Schema.Json)

const deepFreeze = (value: unknown): unknown => {
  if (typeof value === "object" && value !== null) {
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key])
    Object.freeze(value)
  }
  return value
}

const combine = (errors: ReadonlyArray<InvalidInput>): InvalidInput => {
  const issues: Array<InputIssue> = errors.flatMap((e) => e.issues)
  const first = errors[0]!
  return new InvalidInput({ message: first.message, path: first.path, issues })
}

/**
 * Checks one enqueue request exactly as `Queue.layerMemory` does, for other layers to share: every bad field by
 * its JSON path under `root` (`$.queue`, `$.payload.amount`; the payload checked as canonical JSON), and
 * `runAt` with `delayMs` refused. Returns the request with a private, frozen copy of its payload.
 *
 * @category validation
 * @since 0.1.0
 */
export const validateEnqueue = (input: unknown, root = "$"): Result.Result<EnqueueRequest, InvalidInput> =>
  Result.map(validateRequest(input, root), (valid) => valid.request)

/**
 * Checks a batch of enqueue requests as `Queue.layerMemory` does: all or nothing, each bad request's issues
 * under `$[i]`.
 *
 * @category validation
 * @since 0.1.0
 */
export const validateEnqueueBatch = (inputs: unknown): Result.Result<ReadonlyArray<EnqueueRequest>, InvalidInput> =>
  validateAll(inputs, (valid) => valid.request)

// Every request checked (each problem under `$[i]`), all or nothing
const validateAll = <A>(
  inputs: unknown,
  build: (valid: { readonly request: EnqueueRequest; readonly payload: Schema.Json }) => A
): Result.Result<ReadonlyArray<A>, InvalidInput> => {
  if (!Array.isArray(inputs)) return Result.fail(InvalidInput.at("$", "Expected an array of enqueue requests"))
  const errors: Array<InvalidInput> = []
  const built: Array<A> = []
  for (let i = 0; i < inputs.length; i++) {
    const result = validateRequest(inputs[i], `$[${i}]`)
    if (Result.isSuccess(result)) built.push(build(result.success))
    else errors.push(result.failure)
  }
  return errors.length > 0 ? Result.fail(combine(errors)) : Result.succeed(built)
}

const newJob = (
  { request, payload }: { readonly request: EnqueueRequest; readonly payload: Schema.Json },
  now: number
): Job => {
  const runAt = request.runAt ?? (request.delayMs !== undefined ? now + request.delayMs : now)
  // Built field by field (a literal with a conditional spread in the middle is ~10× slower in V8), in the
  // field order a job has always had
  const job: { -readonly [K in keyof Job]?: Job[K] } = {
    // valid by construction ("job_" and a UUID): JobId.make would run the id pattern through the Schema per job
    id: `job_${uuidv7(now)}` as JobId,
    queue: request.queue,
    payload,
    priority: request.priority ?? "normal",
    state: "queued",
    runAt,
    attempts: 0,
    maxAttempts: request.maxAttempts ?? defaultMaxAttempts
  }
  if (request.idempotencyKey !== undefined) job.idempotencyKey = request.idempotencyKey
  if (request.pool !== undefined) job.pool = request.pool
  job.failures = 0
  job.createdAt = now
  job.updatedAt = now
  return job as Job
}

const ExtendMs = decode(LeaseMillis, "$.extendMs")
const StatsQueue = decode(QueueName, "$.queue")
const ListQueryDecode = decode(JobQuery)
const ClaimDecode = decode(ClaimRequest)
const HandOffDecode = decode(Schema.Struct({ workerId: AgentId, leaseMs: LeaseMillis }))

// ---- validation shared by layers ------------------------------------------------------------------------

/**
 * Validates one enqueue request and builds the queued job it describes at `now` (id, defaults, `runAt` from
 * `runAt`/`delayMs`): what every layer stores, so layers agree on ids, defaults and paths (`$.payload.amount`).
 *
 * @category constructors
 * @since 0.1.0
 */
export const prepareJob = (request: unknown, now: number): Result.Result<Job, InvalidInput> =>
  Result.map(validateRequest(request, "$"), (valid) => newJob(valid, now))

/**
 * `prepareJob` for a batch: every request checked (each problem at `$[i]...`), all jobs or none.
 *
 * @category constructors
 * @since 0.1.0
 */
export const prepareJobs = (
  requests: ReadonlyArray<unknown>,
  now: number
): Result.Result<ReadonlyArray<Job>, InvalidInput> => validateAll(requests, (valid) => newJob(valid, now))

/**
 * Decodes a claim request (`InvalidInput` at `$.queues[0]`, `$.max`, …).
 *
 * @category decoding
 * @since 0.1.0
 */
export const decodeClaimRequest = (request: unknown): Effect.Effect<ClaimRequest, InvalidInput> => {
  const quick = quickClaim(request)
  return quick !== undefined ? Effect.succeed(quick) : ClaimDecode(request)
}

// The usual claim (a worker's, every few jobs, and on the path from an enqueue to its job's start at light load)
// checked by hand as `quickFields` checks an enqueue: a plain object whose every field passes is one the Schema
// decode accepts, built as it builds it (its Effect pipeline cost more than the rest of a Redis claim's client
// side); anything else, or in doubt, goes to the decode, which names every issue
const isAgentId = Schema.is(AgentId)
// Worker ids seen valid (a worker claims under one id), bounded
const validAgents = new Set<string>()
const validAgent = (id: unknown): boolean => {
  if (typeof id !== "string") return false
  if (validAgents.has(id)) return true
  if (!isAgentId(id)) return false
  if (validAgents.size < 1_024) validAgents.add(id)
  return true
}
const quickClaim = (input: unknown): ClaimRequest | undefined => {
  if (typeof input !== "object" || input === null) return undefined
  const proto = Object.getPrototypeOf(input)
  if (proto !== Object.prototype && proto !== null) return undefined
  const r = input as Record<string, unknown>
  // each field, and each queue name, read once: a getter cannot hand the check one value and the claim another
  const { workerId, queues, pool, max, leaseMs } = r
  if (!validAgent(workerId) || !Array.isArray(queues)) return undefined
  const n = queues.length
  if (n === 0 || n > 64 || Object.getPrototypeOf(queues) !== Array.prototype) return undefined
  const names: Array<string> = new Array(n)
  for (let i = 0; i < n; i++) {
    const name = queues[i]
    if (!validName(name)) return undefined
    names[i] = name as string
  }
  const out: { -readonly [K in keyof ClaimRequest]?: ClaimRequest[K] } = {
    workerId: workerId as AgentId,
    queues: names as unknown as ClaimRequest["queues"]
  }
  if (pool !== undefined) {
    if (!validName(pool)) return undefined
    out.pool = pool as string
  } else if ("pool" in r) return undefined
  if (max !== undefined) {
    if (!Number.isSafeInteger(max) || (max as number) < 1 || (max as number) > 1_000) return undefined
    out.max = max as number
  } else if ("max" in r) return undefined
  if (leaseMs !== undefined) {
    if (!Number.isSafeInteger(leaseMs) || (leaseMs as number) < 1 || (leaseMs as number) > DAY_MS) return undefined
    out.leaseMs = leaseMs as number
  } else if ("leaseMs" in r) return undefined
  return out as ClaimRequest
}

/**
 * Decodes the worker and lease of `enqueueClaimed` (`InvalidInput` at `$.workerId`, `$.leaseMs`).
 *
 * @category decoding
 * @since 0.1.0
 */
export const decodeHandOff: (
  handOff: unknown
) => Effect.Effect<{ readonly workerId: AgentId; readonly leaseMs: number }, InvalidInput> = HandOffDecode

/**
 * Decodes a `list` query (`InvalidInput` at `$.limit`, `$.state`, …; the cursor's format is the layer's).
 *
 * @category decoding
 * @since 0.1.0
 */
export const decodeJobQuery: (query: unknown) => Effect.Effect<JobQuery, InvalidInput> = ListQueryDecode

/**
 * Decodes a heartbeat extension in ms (`InvalidInput` at `$.extendMs`).
 *
 * @category decoding
 * @since 0.1.0
 */
export const decodeExtendMs: (extendMs: unknown) => Effect.Effect<number, InvalidInput> = ExtendMs

/**
 * Decodes the queue name of `stats` (`InvalidInput` at `$.queue`).
 *
 * @category decoding
 * @since 0.1.0
 */
export const decodeStatsQueue: (queue: unknown) => Effect.Effect<string, InvalidInput> = StatsQueue

/**
 * A job result as stored: JSON checked by `Canonical` (`InvalidInput` at `$.result.x`), `undefined` as `null`.
 *
 * @category decoding
 * @since 0.1.0
 */
export const prepareResult = (result: unknown): Effect.Effect<Schema.Json, InvalidInput> =>
  privateJson(result === undefined ? null : result, "$.result")
