/**
 * `Queue` on Redis: every state change that must be atomic is one Lua script, loaded once and run by SHA.
 *
 * Layout (see `Keys.queueKeyFamilies`): each job is a hash of its fields. A (queue, pool) bucket has a ready
 * sorted set scored by priority rank · 2^42 + runAt, so `ZPOPMIN` takes the most urgent, oldest job (members
 * start with the zero-padded creation sequence, so equal scores keep enqueue order), and a delayed sorted set
 * scored by runAt, whose due members a claim promotes first. Leases are members of one sorted set scored by their
 * expiry: a claim, the periodic sweep and `requeueExpired` take the expired ones back. Counters per queue and sorted
 * sets of enqueue-to-claim waits are kept by the same scripts, so `stats` reads a few keys instead of every job.
 *
 * What is computed stays in core: requests are validated and jobs built by `Queue.prepareJob(s)`, retry times by
 * `Backoff.decide` (a failure reads the job, decides, then stores the decision under a guard on its attempts),
 * results checked by `Queue.prepareResult`. Time is the caller's `Clock`, passed to every script, so `TestClock`
 * drives leases and delays as it does for the memory layer; hosts sharing a Redis must keep their clocks in
 * sync (NTP), as leases of tens of seconds tolerate.
 *
 * Single enqueues, completions and heartbeats made at the same moment (a producer's calls, a worker pool's finished
 * jobs, a worker renewing its leases) share one script call, through Effect's request batching. Per job, a script
 * reads only the fields it needs and writes the job once; sorted sets and counters are updated once per call. A
 * layer remembers the jobs it claimed until they complete, so completing or extending one answers from that copy
 * (the script confirms the job's attempts and claim time are still those of the claim) instead of reading the whole
 * job back.
 *
 * Idle workers do not poll: every script that makes work claimable appends to the queue's signal stream, and
 * one fiber per layer blocks on those streams (`XREAD BLOCK`) on a reserved connection of its own, opening the
 * latches of the subscribers whose queues moved. Subscribers remember the last entry seen, so no signal between
 * two waits is lost, and after a lost connection the fiber reconnects and reads what it missed.
 *
 * @since 0.1.0
 */
import {
  type AgentId,
  Backoff,
  type ClaimRequest,
  decodeClaimRequest,
  decodeExtendMs,
  decodeJobQuery,
  decodeStatsQueue,
  defaultLeaseMs,
  defaultListLimit,
  type EnqueueRequest,
  type FailOptions,
  IllegalTransition,
  InvalidInput,
  Job,
  type JobId,
  JobNotFound,
  type JobPage,
  type JobQuery,
  LeaseLost,
  prepareJob,
  prepareJobs,
  prepareResult,
  Queue,
  QueueRules,
  type QueueStats,
  QueueStoreError,
  type WakeupRequest
} from "@mandate/core"
import {
  Cause,
  Clock,
  Duration,
  Effect,
  Exit,
  Latch,
  Layer,
  Random,
  Request,
  RequestResolver,
  Result,
  Schema
} from "effect"
import { Redis } from "effect/persistence"
import { type Keys, makeKeys, queueKeyFamilies, queueSingleKeys, type RedisOptions, resolvePrefix } from "./Keys.ts"
import { guard, operation, type UnitState, unitOf } from "./Unit.ts"

/**
 * Options of the Redis queue.
 *
 * @category models
 * @since 0.1.0
 */
export interface QueueOptions extends RedisOptions {
  /** Retry delays (see `Backoff`); every process sharing the queue should use the same. */
  readonly backoff?: Backoff.Options | undefined
  /** How often the layer requeues jobs whose lease expired (ms, default 1,000). */
  readonly requeueIntervalMs?: number | undefined
  /**
   * Delete completed and cancelled jobs this long (ms) after they finished, with their idempotency keys, so the
   * Redis does not grow without bound. Default: keep every job. Dead letters are always kept.
   */
  readonly retainFinishedMs?: number | undefined
}

// The order of the fields every script returns a job in (HMGET), and `toJob` reads
const FIELDS = [
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

type Fields = ReadonlyArray<string | null>

const decodeJob = Schema.decodeUnknownResult(Job)

// A job from its fields as a script returned them; a hash that does not decode is a store error, not a defect
const toJob = (fields: Fields): Result.Result<Job, unknown> => {
  try {
    const f = fields
    const job: Record<string, unknown> = {
      id: f[0],
      queue: f[1],
      payload: JSON.parse(f[2]!),
      priority: f[3],
      state: f[4],
      runAt: Number(f[5]),
      attempts: Number(f[6]),
      maxAttempts: Number(f[7])
    }
    if (f[8] !== null) job.idempotencyKey = f[8]
    if (f[9] !== null && f[9] !== "") job.pool = f[9]
    if (f[10] !== null && f[10] !== "") job.lease = { workerId: f[10], expiresAt: Number(f[11]) }
    if (f[12] !== null) job.lastError = f[12]
    if (f[13] !== null) job.result = JSON.parse(f[13]!)
    job.createdAt = Number(f[14])
    job.updatedAt = Number(f[15])
    if (f[16] !== null) job.claimedAt = Number(f[16])
    if (f[17] !== null && f[17] !== "") job.finishedAt = Number(f[17])
    job.failures = Number(f[18])
    return decodeJob(job)
  } catch (cause) {
    return Result.fail(cause)
  }
}

// A claimed job from a claim's reply (see `claimJobs`) and what the claim set: the lease and the claim time
const claimedJob = (
  f: ReadonlyArray<string | number | null>,
  workerId: string,
  expiresAt: number,
  now: number
): Result.Result<Job, unknown> => {
  try {
    const job: Record<string, unknown> = {
      id: f[3],
      queue: f[0],
      payload: JSON.parse(f[1] as string),
      priority: f[2],
      state: "claimed",
      runAt: Number(f[4]),
      attempts: Number(f[5]),
      maxAttempts: Number(f[6])
    }
    if (f[7] !== null) job.idempotencyKey = f[7]
    if (f[8] !== null && f[8] !== "") job.pool = f[8]
    job.lease = { workerId, expiresAt }
    if (f[9] !== null) job.lastError = f[9]
    job.createdAt = Number(f[10])
    job.updatedAt = now
    job.claimedAt = now
    job.failures = Number(f[11])
    return decodeJob(job)
  } catch (cause) {
    return Result.fail(cause)
  }
}

// Entries a list script examines per call before handing back to the client
const listBudget = 2_000
// Expired leases a claim takes back before claiming (the sweep takes the rest)
const claimRequeueLimit = 100
// Jobs the sweep requeues or prunes per script call
const sweepBatch = 500
// Most jobs one enqueue script stores
const storeChunk = 2_000
// Claimed jobs a layer remembers until they complete (see `claimed` in `makeQueue`)
const claimCacheSize = 10_000

/**
 * Builds the Redis queue over the `Redis` service in context, and starts its sweep (expired leases, and old
 * finished jobs with `retainFinishedMs`) in the current scope.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeQueue = Effect.fnUntraced(function* (options?: QueueOptions) {
  const redis = yield* Redis.Redis
  const keys: Keys = makeKeys(yield* resolvePrefix(options))
  const prefix = keys.prefix
  const k = keys.queue
  const backoff = Backoff.settings(options?.backoff)
  const requeueIntervalMs = QueueRules.clampInterval(options?.requeueIntervalMs, 1_000)
  const retainFinishedMs =
    options?.retainFinishedMs !== undefined && Number.isFinite(options.retainFinishedMs)
      ? Math.max(0, options.retainFinishedMs)
      : undefined

  const enqueueScript = redis.eval(enqueueJobs)
  const claimScript = redis.eval(claimJobs)
  const leaseScript = redis.eval(leaseOperation)
  const completeScript = redis.eval(completeJobs)
  const heartbeatScript = redis.eval(heartbeatJobs)
  const adminScript = redis.eval(adminOperation)
  const requeueScript = redis.eval(requeueExpiredJobs)
  const listScript = redis.eval(listJobs)
  const statsScript = redis.eval(queueStats)
  const dueScript = redis.eval(nextDue)
  const pruneScript = redis.eval(pruneFinished)

  const storeError = (operation: string) => (cause: unknown) => new QueueStoreError({ operation, cause })
  const jobOf = (fields: Fields, operation: string): Effect.Effect<Job, QueueStoreError> => {
    const result = toJob(fields)
    return Result.isSuccess(result)
      ? Effect.succeed(result.success)
      : Effect.fail(storeError(operation)(result.failure))
  }
  const jobsOf = (list: ReadonlyArray<Fields>, operation: string): Effect.Effect<Array<Job>, QueueStoreError> => {
    const jobs: Array<Job> = []
    for (const fields of list) {
      const result = toJob(fields)
      if (Result.isFailure(result)) return Effect.fail(storeError(operation)(result.failure))
      jobs.push(result.success)
    }
    return Effect.succeed(jobs)
  }

  const read = (jobId: JobId, operation: string) =>
    redis.send<Fields>("HMGET", k.job(jobId), ...FIELDS).pipe(Effect.mapError(storeError(operation)))

  // The jobs this process claimed, as the claim returned them, until their outcome is recorded: completing one
  // then needs no read back (see `completeResolver`). Bounded: a job claimed and never completed here (abandoned,
  // or its lease lost) is forgotten once `claimCacheSize` newer claims came, and then read back if completed
  const claimed = new Map<JobId, Job>()
  const rememberClaim = (job: Job) => {
    claimed.delete(job.id)
    claimed.set(job.id, job)
    if (claimed.size > claimCacheSize) claimed.delete(claimed.keys().next().value!)
  }
  const forgetClaim = (jobId: JobId) => {
    claimed.delete(jobId)
  }
  // What identifies a claim of a job: its attempts and claim time as stored ("attempts:claimedAt"); a script
  // answers from the claimed copy only while the job still shows these (a release gives an attempt back, and a
  // re-claim then shows the same attempts again, but not the same claim time)
  const claimMark = (copy: Job) => `${copy.attempts}:${copy.claimedAt}`
  const claimedCopy = (jobId: JobId, workerId: AgentId): Job | undefined => {
    const copy = claimed.get(jobId)
    return copy !== undefined && copy.lease?.workerId === workerId ? copy : undefined
  }

  // ---- enqueue ---------------------------------------------------------------------------------------------

  // The (queue, pool) buckets this process has registered in the queue and pool sets: later enqueues skip the
  // two SADDs (the sets only grow, so a registration never goes stale while the keys exist)
  const registered = new Set<string>()

  // A batch is stored by scripts of at most `storeChunk` jobs, so that none holds Redis for long (input was
  // validated as a whole before: a bad request still stores nothing)
  const store = (jobs: ReadonlyArray<Job>, now: number): Effect.Effect<Array<Job>, QueueStoreError> =>
    jobs.length <= storeChunk
      ? storeChunkOf(jobs, now)
      : Effect.map(
          Effect.forEach(
            Array.from({ length: Math.ceil(jobs.length / storeChunk) }, (_, i) =>
              jobs.slice(i * storeChunk, (i + 1) * storeChunk)
            ),
            (chunk) => storeChunkOf(chunk, now)
          ),
          (chunks) => chunks.flat()
        )

  const storeChunkOf = (jobs: ReadonlyArray<Job>, now: number): Effect.Effect<Array<Job>, QueueStoreError> => {
    if (jobs.length === 0) return Effect.succeed([])
    const args: Array<string> = []
    const buckets: Array<string> = []
    for (const job of jobs) {
      const bucket = k.bucket(job.queue, job.pool)
      const known = registered.has(bucket)
      if (!known) buckets.push(bucket)
      args.push(
        known ? "0" : "1",
        job.id,
        job.queue,
        job.pool ?? "",
        job.priority,
        String(job.runAt),
        String(job.maxAttempts),
        job.idempotencyKey ?? "",
        job.idempotencyKey === undefined ? "" : JSON.stringify([job.queue, job.idempotencyKey]),
        JSON.stringify(job.payload)
      )
    }
    return enqueueScript(k.sequence, prefix, now, jobs.length, args).pipe(
      Effect.mapError(storeError("enqueue")),
      Effect.flatMap((replies) => {
        for (const bucket of buckets) registered.add(bucket)
        const out: Array<Job> = []
        for (let i = 0; i < jobs.length; i++) {
          const reply = replies[i]!
          if (reply[0] === 1) {
            out.push(jobs[i]!)
            continue
          }
          const existing = toJob(reply[1] as Fields)
          if (Result.isFailure(existing)) return Effect.fail(storeError("enqueue")(existing.failure))
          out.push(existing.success)
        }
        return Effect.succeed(out)
      })
    )
  }

  // Concurrent single enqueues share one script call: Effect's request batching collects the calls made in the
  // same scheduler turn (Redis has no transaction for them to belong to)
  const enqueueResolver = RequestResolver.make<EnqueueCall>((entries) => {
    const now = Math.max(...entries.map((entry) => entry.request.now))
    return Effect.map(
      Effect.exit(
        store(
          entries.map((entry) => entry.request.job),
          now
        )
      ),
      (stored) => {
        for (let i = 0; i < entries.length; i++) {
          entries[i]!.completeUnsafe(
            Exit.isSuccess(stored) ? Exit.succeed(stored.value[i]!) : Exit.failCause(stored.cause)
          )
        }
      }
    )
  }).pipe(RequestResolver.batchN(storeChunk))

  const enqueue = Effect.fnUntraced(function* (request: EnqueueRequest) {
    const now = yield* Clock.currentTimeMillis
    const prepared = prepareJob(request, now)
    if (Result.isFailure(prepared)) return yield* prepared.failure
    const unit = yield* unitOf(redis)
    if (unit !== undefined) return (yield* enqueueInUnit(unit, [prepared.success], now))[0]!
    return yield* Effect.request(EnqueueCall({ job: prepared.success, now }), enqueueResolver)
  })

  const enqueueBatch = Effect.fnUntraced(function* (requests: ReadonlyArray<EnqueueRequest>) {
    const now = yield* Clock.currentTimeMillis
    const prepared = prepareJobs(requests, now)
    if (Result.isFailure(prepared)) return yield* prepared.failure
    const unit = yield* unitOf(redis)
    if (unit !== undefined) return yield* enqueueInUnit(unit, prepared.success, now)
    return yield* store(prepared.success, now)
  })

  // ---- claim -----------------------------------------------------------------------------------------------

  const claim = Effect.fnUntraced(function* (request: ClaimRequest) {
    const valid = yield* decodeClaimRequest(request)
    const now = yield* Clock.currentTimeMillis
    const leaseMs = valid.leaseMs ?? defaultLeaseMs
    const replies = yield* claimScript(
      k.sequence,
      prefix,
      now,
      valid.max ?? 1,
      valid.workerId,
      now + leaseMs,
      valid.pool ?? "",
      claimRequeueLimit,
      valid.queues
    ).pipe(Effect.mapError(storeError("claim")))
    const jobs: Array<Job> = []
    for (const fields of replies) {
      const job = claimedJob(fields, valid.workerId, now + leaseMs, now)
      if (Result.isFailure(job)) return yield* storeError("claim")(job.failure)
      rememberClaim(job.success)
      jobs.push(job.success)
    }
    return jobs
  })

  // ---- the lease holder's operations -----------------------------------------------------------------------

  const leased = (
    jobId: JobId,
    workerId: AgentId,
    reply: Exclude<LeaseReply, readonly ["stale"]>,
    operation: string
  ): Effect.Effect<Job, JobNotFound | LeaseLost | QueueStoreError> => {
    if (reply[0] === "ok") return jobOf(reply[1], operation)
    if (reply[0] === "missing") return Effect.fail(new JobNotFound({ jobId }))
    return Effect.fail(lost(jobId, workerId, reply))
  }

  const leaseOp = (operation: string, jobId: JobId, workerId: AgentId, now: number, extra: ReadonlyArray<string>) =>
    leaseScript(k.job(jobId), prefix, now, operation, jobId, workerId, extra).pipe(
      Effect.mapError(storeError(operation)),
      Effect.flatMap((reply) => leased(jobId, workerId, reply as Exclude<LeaseReply, readonly ["stale"]>, operation))
    )

  const start = Effect.fnUntraced(function* (jobId: JobId, workerId: AgentId) {
    const now = yield* Clock.currentTimeMillis
    return yield* leaseOp("start", jobId, workerId, now, [])
  })

  // Concurrent heartbeats (a worker extending all its leases at once) share one script call, as completions do;
  // a job claimed here is answered from its claimed copy with the new lease (see `completeResolver`)
  const heartbeatResolver = RequestResolver.make<HeartbeatCall>((entries) => {
    const now = Math.max(...entries.map((entry) => entry.request.now))
    const quads: Array<string> = []
    const copies: Array<Job | undefined> = []
    for (const { request } of entries) {
      const copy = claimedCopy(request.jobId, request.workerId)
      copies.push(copy)
      quads.push(request.jobId, request.workerId, String(request.expiresAt), copy === undefined ? "" : claimMark(copy))
    }
    return Effect.map(Effect.exit(heartbeatScript(k.leases, prefix, now, quads)), (replies) => {
      if (Exit.isFailure(replies)) {
        const failed = Exit.fail(storeError("heartbeat")(Cause.squash(replies.cause)))
        for (const entry of entries) entry.completeUnsafe(failed)
        return
      }
      entries.forEach((entry, i) => {
        const { jobId, workerId, expiresAt } = entry.request
        const reply = replies.value[i]!
        const copy = copies[i]
        if (reply[0] === "copy" && copy !== undefined) {
          entry.completeUnsafe(
            Exit.succeed({
              ...copy,
              state: reply[1] as Job["state"],
              lease: { workerId, expiresAt },
              updatedAt: now
            })
          )
        } else if (reply[0] === "ok") {
          const job = toJob(reply[1])
          entry.completeUnsafe(
            Result.isSuccess(job) ? Exit.succeed(job.success) : Exit.fail(storeError("heartbeat")(job.failure))
          )
        } else if (reply[0] === "missing") entry.completeUnsafe(Exit.fail(new JobNotFound({ jobId })))
        else if (reply[0] === "lost") entry.completeUnsafe(Exit.fail(lost(jobId, workerId, reply)))
        else entry.completeUnsafe(Exit.fail(storeError("heartbeat")("no claimed copy for the job")))
      })
    })
  }).pipe(RequestResolver.batchN(storeChunk))

  const heartbeat = Effect.fnUntraced(function* (jobId: JobId, workerId: AgentId, extendMs: number) {
    const extend = yield* decodeExtendMs(extendMs)
    const now = yield* Clock.currentTimeMillis
    return yield* Effect.request(HeartbeatCall({ jobId, workerId, expiresAt: now + extend, now }), heartbeatResolver)
  })

  // Concurrent completions (a worker pool's finished jobs) share one script call: one round trip for many jobs.
  // Leases are checked against the latest caller's clock, a few milliseconds at most past the others'. A job this
  // process claimed is not read back: the script confirms its attempts and claim time are still those of the claim
  // (only a new claim changes them; what else may change meanwhile, the lease and the state, completing
  // overwrites), and the completed job is the claimed copy with the fields the script wrote
  const completeResolver = RequestResolver.make<CompleteCall>((entries) => {
    const now = Math.max(...entries.map((entry) => entry.request.now))
    const quads: Array<string> = []
    const copies: Array<Job | undefined> = []
    for (const { request } of entries) {
      const copy = claimedCopy(request.jobId, request.workerId)
      copies.push(copy)
      quads.push(request.jobId, request.workerId, request.result, copy === undefined ? "" : claimMark(copy))
    }
    return Effect.map(Effect.exit(completeScript(k.leases, prefix, now, quads)), (replies) => {
      for (const { request } of entries) forgetClaim(request.jobId)
      if (Exit.isFailure(replies)) {
        const failed = Exit.fail(storeError("complete")(Cause.squash(replies.cause)))
        for (const entry of entries) entry.completeUnsafe(failed)
        return
      }
      entries.forEach((entry, i) => {
        const { jobId, workerId } = entry.request
        const reply = replies.value[i]!
        if (reply[0] === "ok") {
          const copy = copies[i]
          if (reply.length === 1 && copy !== undefined) {
            const { lease: _, ...rest } = copy
            entry.completeUnsafe(
              Exit.succeed({
                ...rest,
                state: "completed",
                result: entry.request.value,
                updatedAt: now,
                finishedAt: now
              })
            )
            return
          }
          const job = reply.length === 1 ? Result.fail("no fields") : toJob(reply[1])
          entry.completeUnsafe(
            Result.isSuccess(job) ? Exit.succeed(job.success) : Exit.fail(storeError("complete")(job.failure))
          )
        } else if (reply[0] === "missing") entry.completeUnsafe(Exit.fail(new JobNotFound({ jobId })))
        else entry.completeUnsafe(Exit.fail(lost(jobId, workerId, reply as LostReply)))
      })
    })
  }).pipe(RequestResolver.batchN(storeChunk))

  const complete = Effect.fnUntraced(function* (jobId: JobId, workerId: AgentId, result?: Schema.Json) {
    const value = yield* prepareResult(result)
    const now = yield* Clock.currentTimeMillis
    const unit = yield* unitOf(redis)
    if (unit !== undefined) {
      forgetClaim(jobId)
      return yield* completeInUnit(unit, jobId, workerId, value, now)
    }
    return yield* Effect.request(
      CompleteCall({ jobId, workerId, value, result: JSON.stringify(value), now }),
      completeResolver
    )
  })

  const release = Effect.fnUntraced(function* (jobId: JobId, workerId: AgentId) {
    const now = yield* Clock.currentTimeMillis
    forgetClaim(jobId)
    return yield* leaseOp("release", jobId, workerId, now, [])
  })

  const fail = Effect.fnUntraced(function* (jobId: JobId, workerId: AgentId, error: string, options?: FailOptions) {
    const message = typeof error === "string" ? error : String(error)
    const retryable = options?.retryable !== false
    forgetClaim(jobId)
    const unit = yield* unitOf(redis)
    if (unit !== undefined) return yield* failInUnit(unit, jobId, workerId, message, retryable)
    // The retry time is Backoff's, from the attempts stored: read, decide, then store under a guard on the
    // attempts (only a new claim changes them, and then this worker's lease is gone anyway)
    for (let round = 0; ; round++) {
      const [stored, attemptsText, maxAttemptsText] = yield* redis
        .send<ReadonlyArray<string | null>>("HMGET", k.job(jobId), "id", "attempts", "maxAttempts")
        .pipe(Effect.mapError(storeError("fail")))
      if (stored === null) return yield* new JobNotFound({ jobId })
      const attempts = Number(attemptsText)
      const maxAttempts = Number(maxAttemptsText)
      const draw = yield* Random.next
      const now = yield* Clock.currentTimeMillis
      const decision = Backoff.decide({ attempts, maxAttempts, retryable, now, draw }, backoff)
      const reply = yield* leaseScript(k.job(jobId), prefix, now, "fail", jobId, workerId, [
        String(attempts),
        decision._tag === "Retry" ? String(decision.retryAt) : "",
        message
      ]).pipe(Effect.mapError(storeError("fail")))
      if (reply[0] === "stale" && round < 3) continue
      if (reply[0] === "stale") return yield* storeError("fail")("the job kept changing while failing it")
      return yield* leased(jobId, workerId, reply as Exclude<LeaseReply, readonly ["stale"]>, "fail")
    }
  })

  // ---- administration --------------------------------------------------------------------------------------

  const administered = (
    jobId: JobId,
    operation: string
  ): Effect.Effect<Job, JobNotFound | IllegalTransition | QueueStoreError> =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      adminScript(k.job(jobId), prefix, now, operation, jobId).pipe(
        Effect.mapError(storeError(operation)),
        Effect.flatMap((reply): Effect.Effect<Job, JobNotFound | IllegalTransition | QueueStoreError> => {
          if (reply[0] === "ok") return jobOf(reply[1] as Fields, operation)
          if (reply[0] === "missing") return Effect.fail(new JobNotFound({ jobId }))
          return Effect.fail(
            new IllegalTransition({ entity: "job", id: jobId, from: String(reply[1]), to: String(reply[2]) })
          )
        })
      )
    )

  const cancel = Effect.fn("Queue.cancel")(function* (jobId: JobId) {
    const unit = yield* unitOf(redis)
    if (unit !== undefined) return yield* cancelInUnit(unit, jobId)
    return yield* administered(jobId, "cancel")
  })

  const retryDeadLettered = Effect.fn("Queue.retryDeadLettered")(function* (jobId: JobId) {
    return yield* administered(jobId, "retryDeadLettered")
  })

  const requeueExpired = Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    const out: Array<Job> = []
    while (true) {
      const replies = yield* requeueScript(k.leases, prefix, now, sweepBatch).pipe(
        Effect.mapError(storeError("requeueExpired"))
      )
      out.push(...(yield* jobsOf(replies, "requeueExpired")))
      if (replies.length < sweepBatch) return out
    }
  })

  // ---- reads -----------------------------------------------------------------------------------------------

  const get = Effect.fnUntraced(function* (jobId: JobId) {
    const fields = yield* read(jobId, "get")
    if (fields[0] === null) return yield* new JobNotFound({ jobId })
    return yield* jobOf(fields, "get")
  })

  const list = Effect.fn("Queue.list")(function* (query?: JobQuery) {
    const q = yield* decodeJobQuery(query ?? {})
    if (q.cursor !== undefined && !/^\d{1,15}$/.test(q.cursor)) {
      return yield* InvalidInput.at("$.cursor", "Expected a cursor returned by this queue's list")
    }
    const limit = q.limit ?? defaultListLimit
    const index = q.queue === undefined ? k.all : k.list(q.queue)
    let bound = q.cursor === undefined ? "-inf" : `(${q.cursor}`
    // limit + 1 matches: the extra one only says whether another page exists
    const found: Array<{ readonly seq: string; readonly fields: Fields }> = []
    while (true) {
      const [exhausted, resume, entries] = yield* listScript(
        index,
        prefix,
        bound,
        limit + 1 - found.length,
        q.state ?? "",
        q.pool ?? "",
        listBudget
      ).pipe(Effect.mapError(storeError("list")))
      for (const [seq, fields] of entries) found.push({ seq, fields })
      if (exhausted === 1 || found.length > limit) break
      bound = `(${resume}`
    }
    const page = found.slice(0, limit)
    const jobs = yield* jobsOf(
      page.map((entry) => entry.fields),
      "list"
    )
    return (found.length > limit ? { jobs, nextCursor: page[page.length - 1]!.seq } : { jobs }) satisfies JobPage
  })

  const stats = Effect.fn("Queue.stats")(function* (queue?: string) {
    const name = queue === undefined ? undefined : yield* decodeStatsQueue(queue)
    const now = yield* Clock.currentTimeMillis
    const [counts, ready, oldestRunAt, waitCount, waitP50, waitP95] = yield* statsScript(
      k.sequence,
      prefix,
      now,
      name ?? ""
    ).pipe(Effect.mapError(storeError("stats")))
    const count = (field: string): number => {
      const i = counts.indexOf(field)
      return i >= 0 && i % 2 === 0 ? Math.max(0, Number(counts[i + 1])) : 0
    }
    const byState = {
      queued: count("queued"),
      claimed: count("claimed"),
      running: count("running"),
      completed: count("completed"),
      failed: count("failed"),
      dead_lettered: count("dead_lettered"),
      cancelled: count("cancelled")
    }
    const failures = count("failures")
    const finished = failures + byState.completed
    // The waits are kept sorted; the script read the percentiles at the ranks `percentileDisc` picks
    const n = Number(waitCount)
    return {
      byState,
      pendingByPriority: {
        critical: count("pending:critical"),
        high: count("pending:high"),
        normal: count("pending:normal"),
        low: count("pending:low")
      },
      ready: Number(ready),
      oldestReadyAgeMs: oldestRunAt === null ? null : now - Number(oldestRunAt),
      waitP50Ms: n === 0 ? null : Number(waitP50),
      waitP95Ms: n === 0 ? null : Number(waitP95),
      failureRate: finished === 0 ? null : failures / finished,
      deadLettered: byState.dead_lettered
    } satisfies QueueStats
  })

  // ---- wake-ups --------------------------------------------------------------------------------------------

  // One blocking reader per layer: the streams it watches, the last entry seen in each, and whose latches to open
  interface Watched {
    lastId: string
    readonly latches: Set<Latch.Latch>
  }
  const watched = new Map<string, Watched>()
  const watchersChanged = Latch.makeUnsafe(false)
  const realClock = Clock.Clock.defaultValue()
  const layerScope = yield* Effect.scope
  let reader: Effect.Effect<void> | undefined

  const entriesOf = (reply: unknown): Array<readonly [string, string]> => {
    // RESP3 answers XREAD with a map of stream → entries, RESP2 with [[stream, entries], …]
    const pairs: Array<readonly [unknown, unknown]> =
      reply === null || reply === undefined
        ? []
        : Array.isArray(reply)
          ? reply.map((pair) => [pair[0], pair[1]] as const)
          : reply instanceof Map
            ? [...reply.entries()]
            : Object.entries(reply as Record<string, unknown>)
    const out: Array<readonly [string, string]> = []
    for (const [stream, entries] of pairs) {
      if (!Array.isArray(entries) || entries.length === 0) continue
      const last = entries[entries.length - 1]
      if (Array.isArray(last)) out.push([String(stream), String(last[0])])
    }
    return out
  }

  const readLoop = Effect.gen(function* () {
    let failures = 0
    while (true) {
      if (watched.size === 0) {
        yield* watchersChanged.await
        watchersChanged.closeUnsafe()
        continue
      }
      const exit = yield* Effect.exit(
        Effect.scoped(
          Effect.gen(function* () {
            const connection = yield* redis.reserve
            failures = 0
            while (true) {
              watchersChanged.closeUnsafe()
              const streams = [...watched.keys()]
              if (streams.length === 0) return
              const ids = streams.map((stream) => watched.get(stream)!.lastId)
              // BLOCK 1 s: a stream a new subscriber added is watched from the next call on (its last id was
              // taken when it subscribed, so nothing it should see is lost meanwhile)
              const reply = yield* connection.send(
                "XREAD",
                "COUNT",
                "100",
                "BLOCK",
                "1000",
                "STREAMS",
                ...streams,
                ...ids
              )
              for (const [stream, lastId] of entriesOf(reply)) {
                const entry = watched.get(stream)
                if (entry === undefined) continue
                entry.lastId = lastId
                for (const latch of entry.latches) latch.openUnsafe()
              }
            }
          })
        )
      )
      if (Exit.isFailure(exit)) {
        if (Cause.hasInterruptsOnly(exit.cause)) return
        // The connection was lost or refused: wait (growing) and reserve a new one; subscribers poll meanwhile
        failures++
        yield* Effect.logDebug(`queue wake-up reader: ${Cause.pretty(exit.cause)}`)
        yield* Effect.sleep(Math.min(1_000, 25 * 2 ** Math.min(failures, 6)))
      }
    }
  }).pipe(Effect.provideService(Clock.Clock, realClock))

  const lastIdOf = (stream: string) =>
    redis
      .send<ReadonlyArray<ReadonlyArray<unknown>>>("XREVRANGE", stream, "+", "-", "COUNT", "1")
      .pipe(Effect.map((entries) => (entries.length > 0 ? String(entries[0]![0]) : "0-0")))

  const wakeups = (request: WakeupRequest) =>
    Effect.gen(function* () {
      const queues = [...new Set(request.queues)]
      const pool = request.pool ?? ""
      const latch = Latch.makeUnsafe(false)
      const streams = queues.map(k.signal)
      for (const stream of streams) {
        let entry = watched.get(stream)
        if (entry === undefined) {
          const lastId = yield* lastIdOf(stream).pipe(Effect.mapError(storeError("wakeups")))
          entry = watched.get(stream) ?? { lastId, latches: new Set() }
          watched.set(stream, entry)
          watchersChanged.openUnsafe()
        }
        entry.latches.add(latch)
      }
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          for (const stream of streams) {
            const entry = watched.get(stream)
            if (entry === undefined) continue
            entry.latches.delete(latch)
            if (entry.latches.size === 0) watched.delete(stream)
          }
        })
      )
      if (reader === undefined) {
        reader = readLoop
        yield* Effect.forkIn(readLoop, layerScope)
      }
      const signalled = Effect.andThen(
        latch.await,
        Effect.sync(() => latch.closeUnsafe())
      )
      return Effect.gen(function* () {
        if (latch.isOpen()) {
          latch.closeUnsafe()
          return
        }
        // Delayed jobs come due without a signal: sleep until the first of them at most
        const now = yield* Clock.currentTimeMillis
        const due = yield* dueScript(k.sequence, prefix, now, pool, queues).pipe(
          Effect.catch(() => Effect.succeed(null))
        )
        if (due !== null && Number(due) <= now) return
        if (due === null) return yield* signalled
        return yield* Effect.raceFirst(signalled, Effect.sleep(Duration.millis(Number(due) - now)))
      })
    })

  // ---- the sweep -------------------------------------------------------------------------------------------

  const prune =
    retainFinishedMs === undefined
      ? Effect.void
      : Effect.gen(function* () {
          const now = yield* Clock.currentTimeMillis
          while (true) {
            const removed = yield* pruneScript(k.finished, prefix, now - retainFinishedMs, sweepBatch).pipe(
              Effect.mapError(storeError("prune"))
            )
            if (removed < sweepBatch) return
          }
        })
  const sweepOnce = Effect.andThen(requeueExpired, prune).pipe(
    Effect.catch((error) => Effect.logWarning("queue sweep failed", error))
  )
  // The timer never waits for Redis: each tick starts a sweep, or asks the running one to go again when done. So
  // a sweep that is still waiting for Redis when the clock jumps ahead (a TestClock moved by a whole lease) still
  // runs once more at the new time, and slow sweeps never pile up.
  let sweeping = false
  let again = false
  const sweepLoop: Effect.Effect<void> = Effect.suspend(() => {
    again = false
    return Effect.andThen(
      sweepOnce,
      Effect.suspend(() => {
        if (again) return sweepLoop
        sweeping = false
        return Effect.void
      })
    )
  })
  const tick = Effect.suspend(() => {
    if (sweeping) {
      again = true
      return Effect.void
    }
    sweeping = true
    return Effect.asVoid(Effect.forkIn(sweepLoop, layerScope))
  })
  yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(requeueIntervalMs), tick)))

  // ---- inside a unit of work (see Unit.ts) -------------------------------------------------------------------
  // A write is checked now, against Redis and what the unit wrote before, its result worked out here, and its
  // script gathered for the unit's commit, guarded on what the check read. Idempotency keys the unit took count as
  // taken.

  const enqueueInUnit = (unit: UnitState, jobs: ReadonlyArray<Job>, now: number) =>
    Effect.gen(function* () {
      const fields = jobs.map((job) =>
        job.idempotencyKey === undefined ? "" : JSON.stringify([job.queue, job.idempotencyKey])
      )
      const keyed = fields.filter((f) => f !== "" && !unit.claimed.has(`${k.idempotency}\u0000${f}`))
      const existingIds =
        keyed.length === 0
          ? []
          : yield* redis
              .send<ReadonlyArray<string | null>>("HMGET", k.idempotency, ...keyed)
              .pipe(Effect.mapError(storeError("enqueue")))
      const stored = new Map<string, string>()
      keyed.forEach((f, i) => {
        const id = existingIds[i]
        if (id !== null && id !== undefined) stored.set(f, id)
      })
      const out: Array<Job> = []
      const args: Array<string> = []
      let added = 0
      for (let i = 0; i < jobs.length; i++) {
        const job = jobs[i]!
        const field = fields[i]!
        if (field !== "") {
          const own = unit.claimed.get(`${k.idempotency}\u0000${field}`)
          if (own !== undefined && typeof own !== "string") {
            out.push(own)
            continue
          }
          const existing = stored.get(field)
          if (existing !== undefined) {
            guard(unit, k.idempotency, field, existing)
            const found = yield* read(existing as JobId, "enqueue")
            const job = yield* jobOf(found, "enqueue")
            unit.claimed.set(`${k.idempotency}\u0000${field}`, job)
            out.push(job)
            continue
          }
          guard(unit, k.idempotency, field, null)
          unit.claimed.set(`${k.idempotency}\u0000${field}`, job)
        }
        added++
        args.push(
          "1",
          job.id,
          job.queue,
          job.pool ?? "",
          job.priority,
          String(job.runAt),
          String(job.maxAttempts),
          job.idempotencyKey ?? "",
          field,
          JSON.stringify(job.payload)
        )
        out.push(job)
      }
      if (added > 0) unit.operations.push(operation("enqueue", enqueueJobs, k.sequence, prefix, now, added, args))
      return out
    })

  // The job as stored, and the guards a lease holder's write relies on (its lease, its attempts)
  const leasedInUnit = (unit: UnitState, jobId: JobId, workerId: AgentId, now: number, operation: string) =>
    Effect.gen(function* () {
      const fields = yield* read(jobId, operation)
      if (fields[0] === null) return yield* new JobNotFound({ jobId })
      const state = fields[4]!
      const holder = fields[10] ?? ""
      const reason =
        (state !== "claimed" && state !== "running") || holder === ""
          ? "not_leased"
          : holder !== workerId
            ? "held_by_other"
            : Number(fields[11]) <= now
              ? "expired"
              : undefined
      if (reason !== undefined) return yield* lost(jobId, workerId, ["lost", reason, state, holder])
      const job = yield* jobOf(fields, operation)
      guard(unit, k.job(jobId), "state", state)
      guard(unit, k.job(jobId), "leaseWorker", holder)
      guard(unit, k.job(jobId), "leaseExpires", fields[11] ?? null)
      guard(unit, k.job(jobId), "attempts", fields[6] ?? null)
      return job
    })

  const settled = (job: Job, patch: Partial<Job>): Job => {
    const { lease: _, ...rest } = job
    return { ...rest, ...patch } as Job
  }

  const completeInUnit = (unit: UnitState, jobId: JobId, workerId: AgentId, value: Schema.Json, now: number) =>
    Effect.gen(function* () {
      const job = yield* leasedInUnit(unit, jobId, workerId, now, "complete")
      unit.operations.push(
        operation("complete", completeJobs, k.leases, prefix, now, [jobId, workerId, JSON.stringify(value), ""])
      )
      return settled(job, { state: "completed", result: value, updatedAt: now, finishedAt: now })
    })

  const failInUnit = (unit: UnitState, jobId: JobId, workerId: AgentId, message: string, retryable: boolean) =>
    Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const job = yield* leasedInUnit(unit, jobId, workerId, now, "fail")
      const draw = yield* Random.next
      const decision = Backoff.decide(
        { attempts: job.attempts, maxAttempts: job.maxAttempts, retryable, now, draw },
        backoff
      )
      unit.operations.push(
        operation("lease", leaseOperation, k.job(jobId), prefix, now, "fail", jobId, workerId, [
          String(job.attempts),
          decision._tag === "Retry" ? String(decision.retryAt) : "",
          message
        ])
      )
      const failed = { lastError: message, failures: (job.failures ?? 0) + 1, updatedAt: now }
      return decision._tag === "DeadLetter"
        ? settled(job, { ...failed, state: "dead_lettered", finishedAt: now })
        : settled(job, { ...failed, state: "failed", runAt: decision.retryAt })
    })

  const cancelInUnit = (unit: UnitState, jobId: JobId) =>
    Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const fields = yield* read(jobId, "cancel")
      if (fields[0] === null) return yield* new JobNotFound({ jobId })
      const job = yield* jobOf(fields, "cancel")
      if (job.state === "cancelled") return job
      if (job.state === "completed" || job.state === "dead_lettered") {
        return yield* new IllegalTransition({ entity: "job", id: jobId, from: job.state, to: "cancelled" })
      }
      guard(unit, k.job(jobId), "state", fields[4]!)
      guard(unit, k.job(jobId), "attempts", fields[6] ?? null)
      unit.operations.push(operation("admin", adminOperation, k.job(jobId), prefix, now, "cancel", jobId))
      return settled(job, { state: "cancelled", updatedAt: now, finishedAt: now })
    })

  return Queue.of({
    enqueue,
    enqueueBatch,
    claim,
    start,
    heartbeat,
    complete,
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
 * The Redis queue as a layer over the `Redis` service.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerQueue = (options?: QueueOptions): Layer.Layer<Queue, InvalidInput, Redis.Redis> =>
  Layer.effect(Queue, makeQueue(options))

/**
 * The queue's unit operations, by name (for committers of units that enqueue, settle or cancel jobs).
 *
 * @category constants
 * @since 0.1.0
 */
export const queueOperations = (): Readonly<Record<string, string>> => ({
  enqueue: enqueueJobs.lua,
  complete: completeJobs.lua,
  lease: leaseOperation.lua,
  admin: adminOperation.lua
})

// ---- Lua -----------------------------------------------------------------------------------------------------

// Every script: KEYS[1] is one of the prefix's keys (so a cluster routes the script to the prefix's slot),
// ARGV[1] the prefix, ARGV[2] the caller's time. A script's Redis time grows with its commands and with what its
// body allocates on each run, so the scripts read a job once (`read`, with its sequence number), write it once
// (`UPDATE` also patches the fields read, which then are the reply), keep counters and waits per queue only
// (`stats` adds them up), and build keys inline (`expand` below) rather than through closures and tables.
const prelude = `
local P = ARGV[1]
local now = tonumber(ARGV[2])
local SCALE = 4398046511104
local RANKS = {critical = 0, high = 1, normal = 2, low = 3}
local function read(id) return redis.call('HMGET', k_job(id), ${[...FIELDS, "seq"].map((f) => `'${f}'`).join(", ")}) end
local function bucket(q, pool) return q .. '/' .. pool end
local function member(seq, priority, id) return string.format('%016d', tonumber(seq)) .. RANKS[priority] .. id end
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
local function signal(q) redis.call('XADD', k_signal(q), 'MAXLEN', '~', '100', '*', 'w', '1') end
-- a pending job into its bucket: ready when due, delayed otherwise
local function schedule(q, pool, seq, priority, id, runAt)
  local m = member(seq, priority, id)
  local b = bucket(q, pool)
  if tonumber(runAt) <= now then
    redis.call('ZADD', k_ready(b), RANKS[priority] * SCALE + tonumber(runAt), m)
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

// What a claim reads of each job: the fields it does not set itself. It answers them with the job's id in place of
// the state (it is `claimed` now) and the attempts counted
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
const C = Object.fromEntries(CLAIM_READ.map((name, i) => [name, i + 1])) as Record<(typeof CLAIM_READ)[number], number>

/**
 * Expands the scripts' two macros, so that a run allocates no closures or tables for them:
 * - `k_name(expr)` / `k_name()`: the key family or single key `name` of `Keys` (one layout: `queueKeyFamilies`);
 * - `UPDATE(id, j, 'field', value, …)`: `HSET`s the pairs on job `id` and patches the read `j` at each field's
 *   position (values are evaluated twice, so they must be plain expressions).
 */
const expand = (source: string): string => {
  const families: Record<string, string> = { ...queueKeyFamilies }
  const singles: Record<string, string> = { ...queueSingleKeys }
  // The arguments of the call whose "(" is at `open`, split at top-level commas; and where the call ends
  const argsAt = (text: string, open: number): { readonly args: Array<string>; readonly end: number } => {
    const args: Array<string> = []
    let depth = 0
    let quote: string | undefined
    let current = ""
    for (let i = open + 1; i < text.length; i++) {
      const c = text[i]!
      if (quote !== undefined) {
        if (c === quote) quote = undefined
        current += c
      } else if (c === "'" || c === '"') {
        quote = c
        current += c
      } else if (c === "(" || c === "{" || c === "[") {
        depth++
        current += c
      } else if ((c === ")" || c === "}" || c === "]") && depth > 0) {
        depth--
        current += c
      } else if (c === ")") {
        if (current.trim() !== "") args.push(current.trim())
        return { args, end: i + 1 }
      } else if (c === "," && depth === 0) {
        args.push(current.trim())
        current = ""
      } else current += c
    }
    throw new Error(`unbalanced call in a queue script at ${open}`)
  }
  let out = ""
  let i = 0
  const pattern = /\b(k_([A-Za-z]+)|UPDATE)\(/g
  for (let m = pattern.exec(source); m !== null; m = pattern.exec(source)) {
    if (m.index < i) continue
    const open = m.index + m[0].length - 1
    const { args, end } = argsAt(source, open)
    const inner = args.map(expand)
    let replacement: string
    if (m[1] === "UPDATE") {
      const [id, j, ...pairs] = inner
      const sets: Array<string> = []
      for (let p = 0; p < pairs.length; p += 2) {
        const field = pairs[p]!.slice(1, -1) as keyof typeof F
        if (F[field] === undefined) throw new Error(`UPDATE of an unknown field ${field}`)
        sets.push(`${j}[${F[field]}] = ${pairs[p + 1]}`)
      }
      replacement = `redis.call('HSET', ${expand(`k_job(${id})`)}, ${pairs.join(", ")}); ${sets.join("; ")}`
    } else {
      const name = m[2]!
      if (families[name] !== undefined) replacement = `(P .. '${families[name]}' .. ${inner[0]})`
      else if (singles[name] !== undefined) replacement = `(P .. '${singles[name]}')`
      else throw new Error(`unknown key ${name} in a queue script`)
    }
    out += source.slice(i, m.index) + replacement
    i = end
    pattern.lastIndex = end
  }
  return out + source.slice(i)
}

// Expired leases back to their bucket, or dead-lettered without attempts left; returns the jobs it changed
const requeueFunction = `
local function requeue_expired(limit)
  local out = {}
  local ids = redis.call('ZRANGEBYSCORE', k_leases(), '-inf', now, 'LIMIT', 0, limit)
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
// maxAttempts, idempotency key and its field in the idempotency hash ("" for none), payload
// Returns per job {1} when stored, {0, fields} when its idempotency key returned an existing job
const enqueueJobs = Redis.script(
  (keySequence: string, prefix: string, now: number, n: number, jobs: ReadonlyArray<string>) => [
    keySequence,
    prefix,
    now,
    n,
    ...jobs
  ],
  {
    numberOfKeys: 1,
    lua: expand(`${prelude}
local n = tonumber(ARGV[3])
local out = {}
-- every queue that got a job is signalled, delayed ones included: a waiting worker then learns when it is due
local touched = {}
local added = {}
-- the sequence is read once and written back once; the sorted sets get one ZADD per key, not per job
local seq = tonumber(redis.call('GET', k_sequence()) or '0')
local first = seq
local all, lists, ready, delayed = {}, {}, {}, {}
local function push(t, key, score, m)
  local l = t[key]
  if not l then
    l = {}
    t[key] = l
  end
  l[#l + 1] = score
  l[#l + 1] = m
end
for i = 0, n - 1 do
  local a = 4 + i * 10
  local register, id, q, pool, priority, runAt, maxAttempts, idemKey, idem, payload = ARGV[a], ARGV[a + 1],
    ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8], ARGV[a + 9]
  local existing = false
  if idem ~= '' then existing = redis.call('HGET', k_idempotency(), idem) end
  if existing then
    out[#out + 1] = {0, read(existing)}
  else
    seq = seq + 1
    if idem ~= '' then
      redis.call('HSET', k_job(id), 'id', id, 'queue', q, 'payload', payload, 'priority', priority, 'state', 'queued',
        'runAt', runAt, 'attempts', 0, 'maxAttempts', maxAttempts, 'createdAt', ARGV[2], 'updatedAt', ARGV[2],
        'failures', 0, 'seq', seq, 'pool', pool, 'leaseWorker', '', 'idempotencyKey', idemKey, 'idempotencyField', idem)
      redis.call('HSET', k_idempotency(), idem, id)
    else
      redis.call('HSET', k_job(id), 'id', id, 'queue', q, 'payload', payload, 'priority', priority, 'state', 'queued',
        'runAt', runAt, 'attempts', 0, 'maxAttempts', maxAttempts, 'createdAt', ARGV[2], 'updatedAt', ARGV[2],
        'failures', 0, 'seq', seq, 'pool', pool, 'leaseWorker', '')
    end
    all[#all + 1] = seq
    all[#all + 1] = id
    push(lists, q, seq, id)
    local key = q .. '/' .. pool
    if register == '1' and not added[key] then
      added[key] = true
      redis.call('SADD', k_queues(), q)
      redis.call('SADD', k_pools(q), pool)
    end
    added[q .. ' ' .. priority] = (added[q .. ' ' .. priority] or 0) + 1
    local m = member(seq, priority, id)
    if tonumber(runAt) <= now then
      push(ready, key, RANKS[priority] * SCALE + tonumber(runAt), m)
    else
      push(delayed, key, runAt, m)
    end
    touched[q] = (touched[q] or 0) + 1
    out[#out + 1] = {1}
  end
end
local function zadd(key, l)
  for i = 1, #l, 2000 do redis.call('ZADD', key, unpack(l, i, math.min(#l, i + 1999))) end
end
if seq > first then
  redis.call('SET', k_sequence(), seq)
  zadd(k_all(), all)
end
for q, l in pairs(lists) do zadd(k_list(q), l) end
for b, l in pairs(ready) do zadd(k_ready(b), l) end
for b, l in pairs(delayed) do zadd(k_delayed(b), l) end
-- counters once per queue and priority, not per job
for q, n in pairs(touched) do
  count(q, 'queued', n)
  signal(q)
end
for priority in pairs(RANKS) do
  for q in pairs(touched) do count(q, 'pending:' .. priority, added[q .. ' ' .. priority] or 0) end
end
return out
`)
  }
).withReturnType<ReadonlyArray<readonly [1] | readonly [0, Fields]>>()

// ARGV: prefix, now, max, worker, lease expiry, pool ("" for none), requeue limit, queues…
// Returns the claimed jobs, most urgent first, each as its `CLAIM_READ` fields with the id in place of the state
// and the attempts counted (see `claimedJob`)
const claimJobs = Redis.script(
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
-- a crashed worker's jobs are claimable without waiting for the sweep
if redis.call('ZRANGEBYSCORE', k_leases(), '-inf', now, 'LIMIT', 0, 1)[1] then requeue_expired(tonumber(ARGV[7])) end
local buckets = {}
for i = 8, #ARGV do
  buckets[#buckets + 1] = bucket(ARGV[i], '')
  if pool ~= '' then buckets[#buckets + 1] = bucket(ARGV[i], pool) end
end
-- due delayed jobs (and retries) join their bucket's ready set first
for _, b in ipairs(buckets) do
  local due = redis.call('ZRANGEBYSCORE', k_delayed(b), '-inf', now, 'WITHSCORES', 'LIMIT', 0, 1000)
  for i = 1, #due, 2 do
    redis.call('ZREM', k_delayed(b), due[i])
    redis.call('ZADD', k_ready(b), tonumber(string.sub(due[i], 17, 17)) * SCALE + tonumber(due[i + 1]), due[i])
  end
end
local chosen = {}
if #buckets == 1 then
  local popped = redis.call('ZPOPMIN', k_ready(buckets[1]), max)
  for i = 1, #popped, 2 do chosen[#chosen + 1] = popped[i] end
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
  end
end
local out = {}
local moved = {}
-- the leases and (per queue) the waits are added once per claim
local leases, waits = {}, {}
for _, m in ipairs(chosen) do
  local id = string.sub(m, 18)
  -- the fields a claim does not set (a claimable job has no result, lease or finish time)
  local j = redis.call('HMGET', k_job(id), ${CLAIM_READ.map((f) => `'${f}'`).join(", ")})
  local q, priority, state, runAt = j[${C.queue}], j[${C.priority}], j[${C.state}], tonumber(j[${C.runAt}])
  local attempts = tonumber(j[${C.attempts}]) + 1
  redis.call('HSET', k_job(id), 'state', 'claimed', 'attempts', attempts, 'leaseWorker', worker, 'leaseExpires', expires,
    'claimedAt', ARGV[2], 'updatedAt', ARGV[2])
  j[${C.state}] = id
  j[${C.attempts}] = attempts
  leases[#leases + 1] = expires
  leases[#leases + 1] = id
  if now >= runAt then
    local w = waits[q]
    if not w then
      w = {}
      waits[q] = w
    end
    w[#w + 1] = now - runAt
    w[#w + 1] = id
  else
    -- a runAt ahead of this clock (another host's): no wait to count (see sync_wait)
    redis.call('ZREM', k_waits(q), id)
  end
  local key = q .. ' ' .. state .. ' ' .. priority
  moved[key] = moved[key] or {q, state, priority, 0}
  moved[key][4] = moved[key][4] + 1
  out[#out + 1] = j
end
if #leases > 0 then redis.call('ZADD', k_leases(), unpack(leases)) end
for q, w in pairs(waits) do redis.call('ZADD', k_waits(q), unpack(w)) end
-- counters once per (queue, state, priority) claimed from
for _, m in pairs(moved) do
  count(m[1], m[2], -m[4])
  count(m[1], 'claimed', m[4])
  count(m[1], 'pending:' .. m[3], -m[4])
end
return out
`)
  }
).withReturnType<ReadonlyArray<ReadonlyArray<string | number | null>>>()

const lost = (jobId: JobId, workerId: AgentId, reply: readonly ["lost", string, string, string | null]) => {
  const [, reason, state, holder] = reply
  return new LeaseLost({
    jobId,
    workerId,
    reason: reason as LeaseLost["reason"],
    state: state as LeaseLost["state"],
    ...(holder !== null && holder !== "" ? { holder } : {})
  })
}

interface EnqueueCall extends Request.Request<Job, QueueStoreError> {
  readonly _tag: "EnqueueCall"
  readonly job: Job
  readonly now: number
}
const EnqueueCall = Request.tagged<EnqueueCall>("EnqueueCall")

interface CompleteCall extends Request.Request<Job, JobNotFound | LeaseLost | QueueStoreError> {
  readonly _tag: "CompleteCall"
  readonly jobId: JobId
  readonly workerId: AgentId
  /** The result, and as JSON text. */
  readonly value: Schema.Json
  readonly result: string
  readonly now: number
}
const CompleteCall = Request.tagged<CompleteCall>("CompleteCall")

interface HeartbeatCall extends Request.Request<Job, JobNotFound | LeaseLost | QueueStoreError> {
  readonly _tag: "HeartbeatCall"
  readonly jobId: JobId
  readonly workerId: AgentId
  readonly expiresAt: number
  readonly now: number
}
const HeartbeatCall = Request.tagged<HeartbeatCall>("HeartbeatCall")

type LostReply = readonly ["lost", string, string, string | null]

type LeaseReply =
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
const leaseOperation = Redis.script(
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
// and returns one reply per job: a lease reply, except {'ok'} without fields when the job still shows the caller's
// attempts and claim time (its copy from the claim is then the job, with what completing changed). A job costs one short read and one write; the
// leases, the finished index and the counters are updated once per call
const completeJobs = Redis.script(
  (keyLeases: string, prefix: string, now: number, quads: ReadonlyArray<string>) => [keyLeases, prefix, now, ...quads],
  {
    numberOfKeys: 1,
    lua: expand(`${prelude}
local out = {}
local done, finished = {}, {}
local moved = {}
for i = 3, #ARGV, 4 do
  local id, worker, seen = ARGV[i], ARGV[i + 1], ARGV[i + 3]
  local s = redis.call('HMGET', k_job(id), 'state', 'leaseWorker', 'leaseExpires', 'queue', 'attempts', 'claimedAt')
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
    redis.call('HSET', k_job(id), 'state', 'completed', 'result', ARGV[i + 2], 'leaseWorker', '', 'leaseExpires', '',
      'updatedAt', ARGV[2], 'finishedAt', ARGV[2])
    done[#done + 1] = id
    finished[#finished + 1] = now
    finished[#finished + 1] = id
    local key = s[4] .. ' ' .. state
    moved[key] = moved[key] or {s[4], state, 0}
    moved[key][3] = moved[key][3] + 1
    if seen ~= '' and s[5] .. ':' .. s[6] == seen then out[#out + 1] = {'ok'} else out[#out + 1] = {'ok', read(id)} end
  end
end
for i = 1, #done, 1000 do redis.call('ZREM', k_leases(), unpack(done, i, math.min(#done, i + 999))) end
for i = 1, #finished, 2000 do redis.call('ZADD', k_finished(), unpack(finished, i, math.min(#finished, i + 1999))) end
for _, m in pairs(moved) do
  count(m[1], m[2], -m[3])
  count(m[1], 'completed', m[3])
end
return out
`)
  }
).withReturnType<ReadonlyArray<LeaseReply | readonly ["ok"]>>()

// KEYS[1]: the leases. ARGV: prefix, now, then (id, worker, new lease expiry, "attempts:claimedAt" of the caller's
// claimed copy or "") per job. Extends each lease still held; returns per job a lease reply, or {'copy', state} when
// the job still shows the caller's attempts and claim time (its claimed copy, with the new lease and this state, is
// then the job)
const heartbeatJobs = Redis.script(
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
const adminOperation = Redis.script(
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
const requeueExpiredJobs = Redis.script(
  (keyLeases: string, prefix: string, now: number, limit: number) => [keyLeases, prefix, now, limit],
  {
    numberOfKeys: 1,
    lua: expand(`${prelude}${requeueFunction}
return requeue_expired(tonumber(ARGV[3]))
`)
  }
).withReturnType<ReadonlyArray<Fields>>()

// KEYS[1]: the index (all jobs, or one queue's). ARGV: prefix, lower bound ("-inf" or "(seq"), wanted, state, pool,
// budget. Returns {exhausted (0|1), resume seq, {{seq, fields}, …}}, oldest first
const listJobs = Redis.script(
  (keyIndex: string, prefix: string, bound: string, wanted: number, state: string, pool: string, budget: number) => [
    keyIndex,
    prefix,
    0,
    bound,
    wanted,
    state,
    pool,
    budget
  ],
  {
    numberOfKeys: 1,
    lua: expand(`${prelude}
local bound, wanted, state, pool, budget = ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6], tonumber(ARGV[7])
local found, scanned, last = {}, 0, ''
local batch = math.min(budget, math.max(wanted, 50))
while scanned < budget do
  local range = redis.call('ZRANGE', KEYS[1], bound, '+inf', 'BYSCORE', 'LIMIT', 0, batch, 'WITHSCORES')
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
const queueStats = Redis.script(
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
const nextDue = Redis.script(
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
const pruneFinished = Redis.script(
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
