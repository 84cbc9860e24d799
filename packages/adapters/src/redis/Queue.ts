/**
 * `Queue` on Redis: every state change that must be atomic is one Lua script, loaded once and run by SHA.
 *
 * Layout (see `Keys.queueKeyFamilies`): each job is a hash of its fields. A (queue, pool) bucket has a ready
 * sorted set scored by priority rank · 2^42 + runAt, so its lowest rank is the most urgent, oldest job (members
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
 * jobs, a worker renewing its leases) share one script call: completions and heartbeats through Effect's request
 * batching, single enqueues through a pipeline of their own (two merged calls in flight, see `flushEnqueues`), and
 * `completeMany` (what `Worker.run` records completions with) writes a whole flush in one call. Per job, a script
 * reads only the fields it needs and writes the job once; sorted sets and counters are updated once per call. A
 * layer remembers the jobs it claimed until they complete, so completing or extending one answers from that copy
 * (the script confirms the job's attempts and claim time are still those of the claim) instead of reading the whole
 * job back.
 *
 * `enqueueClaimed` (a worker's next step handed to it as it settles the previous one) is one script that stores
 * the job claimed by that worker, or ready when a job of a higher priority waits where it would be claimed from.
 *
 * Idle workers do not poll: every script that makes work claimable appends to the queue's signal stream, and
 * one fiber per layer blocks on those streams (`Wakeups.ts`); an enqueue made by this layer also wakes this
 * process's idle workers at once, without waiting for its signal's trip through Redis (a single enqueue as soon as
 * its script is written: their claim follows it on the same connection).
 *
 * The Lua scripts, and the decoding of the jobs they return, are in `queueScripts.ts`.
 *
 * @since 0.1.0
 */
import {
  type AgentId,
  Backoff,
  type ClaimRequest,
  type Completion,
  decodeClaimRequest,
  decodeExtendMs,
  decodeHandOff,
  decodeJobQuery,
  decodeStatsQueue,
  defaultLeaseMs,
  defaultListLimit,
  type EnqueueRequest,
  type FailOptions,
  type HandOff,
  IllegalTransition,
  InvalidInput,
  type Job,
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
  Layer,
  Random,
  Request,
  RequestResolver,
  Result,
  type Schema
} from "effect"
import { Redis } from "effect/persistence"
import { type Keys, makeKeys, type RedisOptions, resolvePrefix } from "./Keys.ts"
import {
  adminOperation,
  CLAIM_WIDTH,
  claimedJob,
  claimJobs,
  completeJobs,
  enqueueClaimedJob,
  enqueueJobs,
  FIELDS,
  type Fields,
  heartbeatJobs,
  type LeaseReply,
  type LostReply,
  leaseOperation,
  listJobs,
  nextDue,
  pruneFinished,
  queueStats,
  requeueExpiredJobs,
  toJob
} from "./queueScripts.ts"
import { guard, operation, type UnitState, unitOf } from "./Unit.ts"
import { makeSignalReader } from "./Wakeups.ts"

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

// Entries a list script examines per call before handing back to the client
const listBudget = 2_000
// Expired leases a claim takes back before claiming (the sweep takes the rest)
const claimRequeueLimit = 100
// Jobs the sweep requeues or prunes per script call
const sweepBatch = 500
// Most jobs one enqueue script stores
const storeChunk = 2_000
// The priorities, most urgent first
const PRIORITIES = ["critical", "high", "normal", "low"] as const
// Merged single-enqueue script calls in flight at once, and the smallest slice of an answered call's callers
// resumed in one event-loop turn (see `flushEnqueues`)
const maxEnqueuesInFlight = 2
const minSliceEnqueues = 8
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
  const enqueueClaimedScript = redis.eval(enqueueClaimedJob)
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

  const layerScope = yield* Effect.scope
  const signals = makeSignalReader(redis, layerScope)

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

  // When the latest claim of these queues and pool (in reply order) found nothing ready, when their first delayed
  // job comes due (null: none). A worker's `wakeups` wait follows its empty claim and needs exactly that: taken
  // from here, it costs no `nextDue` round trip. Valid until a signal, which opens the waiter's latch first; used
  // once, and replaced or dropped by every claim of the same key
  const lastEmptyClaim = new Map<string, number | null>()
  // Empty claims answered so far (see `flushEnqueues`)
  let emptyClaims = 0

  // ---- enqueue ---------------------------------------------------------------------------------------------
  // A job's fields as the enqueue and hand-off scripts take them (`field`: its idempotency field)
  const jobArgs = (job: Job, field: string): Array<string> => [
    job.id,
    job.queue,
    job.pool ?? "",
    job.priority,
    String(job.runAt),
    String(job.maxAttempts),
    job.idempotencyKey ?? "",
    field,
    JSON.stringify(job.payload)
  ]
  const idempotencyFieldOf = (job: Job) =>
    job.idempotencyKey === undefined ? "" : JSON.stringify([job.queue, job.idempotencyKey])

  // Opens this process's idle workers' latches on the queues of `jobs`
  const notifyQueues = (jobs: ReadonlyArray<Job>) => {
    let woken: string | undefined
    for (const job of jobs) {
      if (job.queue === woken) continue
      woken = job.queue
      signals.notify(k.signal(job.queue))
    }
  }

  // The (queue, pool) buckets this process has registered in the queue and pool sets: later enqueues skip the
  // two SADDs (the sets only grow, so a registration never goes stale while the keys exist)
  const registered = new Set<string>()

  // A batch is stored by scripts of at most `storeChunk` jobs, so that none holds Redis for long (input was
  // validated as a whole before: a bad request still stores nothing). `wake`: this process's idle workers on the
  // queues are woken when the reply comes (the caller may wake them sooner, see `flushEnqueues`)
  const store = (jobs: ReadonlyArray<Job>, now: number, wake = true): Effect.Effect<Array<Job>, QueueStoreError> =>
    jobs.length <= storeChunk
      ? storeChunkOf(jobs, now, wake)
      : Effect.map(
          Effect.forEach(
            Array.from({ length: Math.ceil(jobs.length / storeChunk) }, (_, i) =>
              jobs.slice(i * storeChunk, (i + 1) * storeChunk)
            ),
            (chunk) => storeChunkOf(chunk, now, wake)
          ),
          (chunks) => chunks.flat()
        )

  const storeChunkOf = (
    jobs: ReadonlyArray<Job>,
    now: number,
    wake: boolean
  ): Effect.Effect<Array<Job>, QueueStoreError> => {
    if (jobs.length === 0) return Effect.succeed([])
    const args: Array<string> = []
    const buckets: Array<string> = []
    for (const job of jobs) {
      const bucket = k.bucket(job.queue, job.pool)
      const known = registered.has(bucket)
      if (!known) buckets.push(bucket)
      args.push(known ? "0" : "1", ...jobArgs(job, idempotencyFieldOf(job)))
    }
    // Its signals carry this layer's origin: every path here wakes this process's idle workers itself (when the
    // script is written or answered), so the wake-up reader skips them. Should the call fail after Redis ran it,
    // they are woken here too: the job may be stored
    return enqueueScript(k.sequence, prefix, now, jobs.length, args, signals.origin).pipe(
      Effect.tapError(() => Effect.sync(() => notifyQueues(jobs))),
      Effect.mapError(storeError("enqueue")),
      Effect.flatMap((replies) => {
        for (const bucket of buckets) registered.add(bucket)
        const out: Array<Job> = []
        let woken: string | undefined
        for (let i = 0; i < jobs.length; i++) {
          const reply = replies[i]!
          if (reply === 1) {
            const job = jobs[i]!
            // this process's idle workers on the queue are woken now, without the signal's trip through Redis
            if (wake && job.queue !== woken) {
              woken = job.queue
              signals.notify(k.signal(job.queue))
            }
            out.push(job)
            continue
          }
          const existing = toJob(reply)
          if (Result.isFailure(existing)) return Effect.fail(storeError("enqueue")(existing.failure))
          out.push(existing.success)
        }
        return Effect.succeed(out)
      })
    )
  }

  // Concurrent single enqueues share one script call, and at most two such calls are in flight: the calls made
  // while both are out wait, and go together in the next one as soon as either answers. With one call in flight
  // Node and Redis take turns (Node idle while Redis runs the script, and the other way round); with two, Node
  // answers one call's callers and prepares their next jobs while Redis runs the other call.
  //
  // That overlap needs the two calls written to Redis apart, and answered apart. node-redis writes whatever was
  // sent during an event-loop turn at the end of it (a `setImmediate`), and Redis answers together what it read
  // together; so once two calls are answered in one read, their callers, resumed together, would send their next
  // jobs in one write, and the two calls would stay in step for good (measured: every cycle one write of both
  // calls, then one read of both answers, and Node and Redis never working at once). So an answered call's
  // callers are resumed a slice per event-loop turn, each slice at most half of the jobs this layer has out
  // (in flight, answered, waiting), the next slice only once the write of the first slice's call is scheduled:
  // that call is written while the next slice's callers run, and Redis runs it meanwhile. A flush runs once the
  // current pass is done (a microtask: every caller resumed in that pass is in it), or at once for a lone call
  // made while nothing is out (see `enqueueMerged`).
  //
  // This process's idle workers on those queues are woken as soon as the script is written, not when it is
  // answered: their claims go down the same connection behind it, and Redis runs commands of one connection in
  // order, so a claim sees the jobs (one round trip from enqueue to claimed job, not two). Were the script not run
  // first (reloaded after a NOSCRIPT), the claim finds nothing and the signal stream wakes them as for any
  // other process's enqueue
  const waiting: Array<WaitingEnqueue> = []
  let enqueuesInFlight = 0
  // jobs of the calls in flight, and of the answered calls whose callers are not all resumed yet
  let jobsInFlight = 0
  let answeredJobs = 0
  const answered: Array<AnsweredEnqueues> = []
  let flushArmed = false
  let resumeArmed = false
  const runInLayer = Effect.runForkWith(yield* Effect.context<never>())
  // A lone call sent at once (see `enqueueMerged`) is written at the end of its turn: calls made in that turn wait
  // for its answer, as Nagle's algorithm holds small segments until the outstanding one is acknowledged. Flushed
  // as a second call, they would join its write, or, flushed after it, the next write with the answered caller's
  // next call. A call made in a later turn is flushed as before, and takes them along
  let loneOut = false
  let loneTurn = false
  let sendingLone = false
  const loneTurnOver = () => {
    loneTurn = false
  }
  const armFlush = () => {
    if (flushArmed) return
    flushArmed = true
    queueMicrotask(flushEnqueues)
  }
  const sendLone = () => {
    sendingLone = true
    flushEnqueues()
    sendingLone = false
    loneTurn = true
    // after node-redis' write of the call, which it scheduled as the call was sent
    setImmediate(loneTurnOver)
  }
  const flushEnqueues = () => {
    flushArmed = false
    if (waiting.length === 0 || enqueuesInFlight >= maxEnqueuesInFlight || (loneOut && loneTurn)) return
    const lone = sendingLone
    loneOut = lone
    const batch = waiting.splice(0, waiting.length)
    enqueuesInFlight++
    jobsInFlight += batch.length
    let now = 0
    const jobs: Array<Job> = new Array(batch.length)
    for (let i = 0; i < batch.length; i++) {
      const entry = batch[i]!
      jobs[i] = entry.job
      if (entry.now > now) now = entry.now
    }
    const large = jobs.length > storeChunk
    const emptyBefore = emptyClaims
    runInLayer(
      Effect.onExit(store(jobs, now, large), (stored) =>
        Effect.sync(() => {
          enqueuesInFlight--
          jobsInFlight -= batch.length
          if (lone) loneOut = false
          // A claim answered empty while this script was out was run before it: normally sent before it, but
          // after a NOSCRIPT reload the script runs after the claims that followed it. Those workers are woken
          // again (the reader skips this layer's own signals)
          if (!large && emptyClaims !== emptyBefore) notifyQueues(jobs)
          answered.push({ batch, stored, from: 0 })
          answeredJobs += batch.length
          if (!resumeArmed) resumeEnqueues()
          if (waiting.length > 0) armFlush()
        })
      )
    )
    // the fiber ran until the script was written (or the first of a large batch's, whose reply wakes them)
    if (!large) notifyQueues(jobs)
  }
  // Resumes the next slice of answered callers, and arms the one after for the next turn: a microtask queued now
  // runs after the flush those callers armed, so its `setImmediate` comes after node-redis' write of their call
  const resumeEnqueues = () => {
    resumeArmed = false
    const next = answered[0]
    if (next === undefined) return
    const slice = Math.max(minSliceEnqueues, Math.ceil((jobsInFlight + answeredJobs + waiting.length) / 2))
    const from = next.from
    const to = Math.min(next.batch.length, from + slice)
    if (to === next.batch.length) answered.shift()
    else next.from = to
    answeredJobs -= to - from
    const stored = next.stored
    for (let i = from; i < to; i++) {
      next.batch[i]!.resume(Exit.isSuccess(stored) ? Exit.succeed(stored.value[i]!) : Exit.failCause(stored.cause))
    }
    resumeArmed = true
    queueMicrotask(armResume)
  }
  const armResume = () => {
    setImmediate(resumeEnqueues)
  }
  const enqueueMerged = (job: Job, now: number) =>
    Effect.callback<Job, QueueStoreError>((resume) => {
      waiting.push({ job, now, resume })
      // A lone call, with nothing out (no call in flight, no answered callers left to resume), is sent at once,
      // as TCP_NODELAY sends a lone segment: a caller at light load waits for no other turn. Calls made while
      // others are out still merge, a pass at a time
      if (waiting.length === 1 && enqueuesInFlight === 0 && answered.length === 0 && !flushArmed) sendLone()
      else armFlush()
    })

  const enqueue = Effect.fnUntraced(function* (request: EnqueueRequest) {
    const now = yield* Clock.currentTimeMillis
    const prepared = prepareJob(request, now)
    if (Result.isFailure(prepared)) return yield* prepared.failure
    const unit = yield* unitOf(redis)
    if (unit !== undefined) return (yield* enqueueInUnit(unit, [prepared.success], now))[0]!
    return yield* enqueueMerged(prepared.success, now)
  })

  const enqueueBatch = Effect.fnUntraced(function* (requests: ReadonlyArray<EnqueueRequest>) {
    const now = yield* Clock.currentTimeMillis
    const prepared = prepareJobs(requests, now)
    if (Result.isFailure(prepared)) return yield* prepared.failure
    const unit = yield* unitOf(redis)
    if (unit !== undefined) return yield* enqueueInUnit(unit, prepared.success, now)
    return yield* store(prepared.success, now)
  })

  // ---- hand-off (enqueueClaimed) ---------------------------------------------------------------------------

  // A job handed to `workerId` as the hand-off script stored it: claimed, its first attempt, leased
  const handedJob = (job: Job, workerId: AgentId, leaseMs: number, now: number): Job => ({
    ...job,
    state: "claimed",
    attempts: 1,
    lease: { workerId, expiresAt: now + leaseMs },
    claimedAt: now,
    updatedAt: now
  })

  // One script: the job stored claimed by the worker, or ready when a job of a higher priority waits where the
  // worker claims from, or the stored job of its idempotency key (see `enqueueClaimedJob`)
  const enqueueClaimed = Effect.fnUntraced(function* (request: EnqueueRequest, handOff: HandOff) {
    const lease = yield* decodeHandOff(handOff)
    const now = yield* Clock.currentTimeMillis
    const prepared = prepareJob(request, now)
    if (Result.isFailure(prepared)) return yield* prepared.failure
    const job = prepared.success
    const unit = yield* unitOf(redis)
    // A delayed job is not claimable now: enqueued as usual
    if (job.runAt > now) return (yield* unit !== undefined ? enqueueInUnit(unit, [job], now) : store([job], now))[0]!
    if (unit !== undefined) return yield* handOffInUnit(unit, job, lease, now)
    const bucket = k.bucket(job.queue, job.pool)
    const reply = yield* enqueueClaimedScript(
      k.sequence,
      prefix,
      now,
      true,
      !registered.has(bucket),
      jobArgs(job, idempotencyFieldOf(job)),
      lease.workerId,
      now + lease.leaseMs,
      signals.origin
    ).pipe(Effect.mapError(storeError("enqueue")))
    registered.add(bucket)
    if (reply[0] === 0) return yield* jobOf(reply[1], "enqueue")
    if (reply[0] === 2) {
      // enqueued ready: this process's idle workers are woken here (its signal carries this layer's origin)
      signals.notify(k.signal(job.queue))
      return job
    }
    const handed = handedJob(job, lease.workerId, lease.leaseMs, now)
    rememberClaim(handed)
    return handed
  })

  // In a unit the checks are reads now, and guards at commit: the idempotency key still free, and the queue's
  // pending counters of the higher priorities unchanged. Those count every pending job of the queue (delayed ones
  // and other pools' too), so the hand-off is made only when none is pending at all, and otherwise the job is
  // enqueued as usual: never passing a waiting job of a higher priority, sometimes not handing one it could have
  const handOffInUnit = (
    unit: UnitState,
    job: Job,
    lease: { readonly workerId: AgentId; readonly leaseMs: number },
    now: number
  ) =>
    Effect.gen(function* () {
      const field = idempotencyFieldOf(job)
      const higher = PRIORITIES.slice(0, PRIORITIES.indexOf(job.priority)).map((p) => `pending:${p}`)
      const [taken, pending] = yield* Effect.all(
        [
          field === "" || unit.claimed.has(`${k.idempotency}\u0000${field}`)
            ? Effect.succeed(field === "" ? null : "unit")
            : redis.send<string | null>("HGET", k.idempotency, field),
          higher.length === 0
            ? Effect.succeed([] as ReadonlyArray<string | null>)
            : redis.send<ReadonlyArray<string | null>>("HMGET", k.counts(job.queue), ...higher)
        ],
        { concurrency: "unbounded" }
      ).pipe(Effect.mapError(storeError("enqueue")))
      // a taken key, or a job of a higher priority pending: as `enqueue` in the unit does
      if (taken !== null || pending.some((n) => n !== null && Number(n) > 0)) {
        return (yield* enqueueInUnit(unit, [job], now))[0]!
      }
      if (field !== "") guard(unit, k.idempotency, field, null)
      for (let i = 0; i < higher.length; i++) guard(unit, k.counts(job.queue), higher[i]!, pending[i] ?? null)
      const handed = handedJob(job, lease.workerId, lease.leaseMs, now)
      if (field !== "") unit.claimed.set(`${k.idempotency}\u0000${field}`, handed)
      unit.operations.push(
        operation(
          "enqueueClaimed",
          enqueueClaimedJob,
          k.sequence,
          prefix,
          now,
          false,
          true,
          jobArgs(job, field),
          lease.workerId,
          now + lease.leaseMs,
          ""
        )
      )
      rememberClaim(handed)
      return handed
    })

  // ---- claim -----------------------------------------------------------------------------------------------

  const dueKey = (queues: ReadonlyArray<string>, pool: string) => `${pool}\u0000${[...new Set(queues)].join("\u0000")}`

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
    const waitKey = dueKey(valid.queues, valid.pool ?? "")
    if (typeof replies[0] === "string") {
      // nothing was ready: what the next `wakeups` wait would have read (see `lastEmptyClaim`)
      lastEmptyClaim.set(waitKey, replies[0] === "" ? null : Number(replies[0]))
      emptyClaims++
      return []
    }
    lastEmptyClaim.delete(waitKey)
    const jobs: Array<Job> = []
    // how many, then each job's values (see `claimJobs`)
    const count = Number(replies[0])
    if (!Number.isSafeInteger(count) || replies.length !== 1 + count * CLAIM_WIDTH) {
      return yield* storeError("claim")(`Unexpected claim reply of ${replies.length} values for ${replies[0]} jobs`)
    }
    for (let i = 0; i < count; i++) {
      const job = claimedJob(replies, 1 + i * CLAIM_WIDTH, valid.workerId, now + leaseMs, now)
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
  // The entries of one completion script (concurrent `complete` calls, or a `completeMany`)
  const completeMerged = (entries: ReadonlyArray<CompleteEntry>) => {
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
        // 1: completed, and the job is the caller's copy (see `completeJobs`)
        if (reply === 1) {
          const copy = copies[i]
          entry.completeUnsafe(
            copy !== undefined
              ? Exit.succeed(completedCopy(copy, entry.request.value, now))
              : Exit.fail(storeError("complete")("a completion answered from a copy it was not given"))
          )
        } else if (reply[0] === "ok") {
          const job = toJob(reply[1])
          entry.completeUnsafe(
            Result.isSuccess(job) ? Exit.succeed(job.success) : Exit.fail(storeError("complete")(job.failure))
          )
        } else if (reply[0] === "missing") entry.completeUnsafe(Exit.fail(new JobNotFound({ jobId })))
        else entry.completeUnsafe(Exit.fail(lost(jobId, workerId, reply as LostReply)))
      })
    })
  }
  const completeResolver = RequestResolver.make<CompleteCall>(completeMerged).pipe(RequestResolver.batchN(storeChunk))

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

  // Many completions in one script per `storeChunk` (the worker's batched recording, with no request per job);
  // inside a unit, one by one
  const completeMany = (completions: ReadonlyArray<Completion>) =>
    Effect.gen(function* () {
      const exits: Array<Exit.Exit<Job, JobNotFound | LeaseLost | InvalidInput | QueueStoreError>> = new Array(
        completions.length
      )
      if ((yield* unitOf(redis)) !== undefined) {
        for (let i = 0; i < completions.length; i++) {
          const c = completions[i]!
          exits[i] = yield* Effect.exit(complete(c.jobId, c.workerId, c.result))
        }
        return exits
      }
      const now = yield* Clock.currentTimeMillis
      const entries: Array<CompleteEntry> = []
      for (let i = 0; i < completions.length; i++) {
        const c = completions[i]!
        let value: Schema.Json = null
        if (c.result !== undefined && c.result !== null) {
          const prepared = yield* Effect.exit(prepareResult(c.result))
          if (Exit.isFailure(prepared)) {
            exits[i] = Exit.failCause(prepared.cause)
            continue
          }
          value = prepared.value
        }
        entries.push({
          request: { jobId: c.jobId, workerId: c.workerId, value, result: JSON.stringify(value), now },
          completeUnsafe: (exit) => {
            exits[i] = exit
          }
        })
      }
      for (let from = 0; from < entries.length; from += storeChunk) {
        yield* completeMerged(entries.slice(from, from + storeChunk))
      }
      return exits
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
    // across queues: every queue's index, merged (see `listJobs`)
    const index = q.queue === undefined ? k.queues : k.list(q.queue)
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
        listBudget,
        q.queue === undefined
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

  // ---- wake-ups (see Wakeups.ts) -----------------------------------------------------------------------------

  const wakeups = (request: WakeupRequest) =>
    Effect.gen(function* () {
      const queues = [...new Set(request.queues)]
      const pool = request.pool ?? ""
      const waitKey = dueKey(queues, pool)
      const latch = yield* signals.watch(queues.map(k.signal)).pipe(Effect.mapError(storeError("wakeups")))
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
        const known = lastEmptyClaim.get(waitKey)
        let due: string | number | null
        if (known !== undefined) {
          lastEmptyClaim.delete(waitKey)
          due = known
        } else {
          due = yield* dueScript(k.sequence, prefix, now, pool, queues).pipe(Effect.catch(() => Effect.succeed(null)))
        }
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
        args.push("1", ...jobArgs(job, field))
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
    enqueueClaimed,
    enqueueBatch,
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
  enqueueClaimed: enqueueClaimedJob.lua,
  complete: completeJobs.lua,
  lease: leaseOperation.lua,
  admin: adminOperation.lua
})

// A claimed copy (see `claimedJob`) as completing it left it, built field by field: an object rest and spread per
// job cost more than the rest of answering it
const completedCopy = (copy: Job, result: Schema.Json, now: number): Job => {
  const job: { -readonly [K in keyof Job]: Job[K] } = {
    id: copy.id,
    queue: copy.queue,
    payload: copy.payload,
    priority: copy.priority,
    state: "completed",
    runAt: copy.runAt,
    attempts: copy.attempts,
    maxAttempts: copy.maxAttempts,
    createdAt: copy.createdAt,
    updatedAt: now,
    result,
    finishedAt: now
  }
  if (copy.failures !== undefined) job.failures = copy.failures
  if (copy.claimedAt !== undefined) job.claimedAt = copy.claimedAt
  if (copy.idempotencyKey !== undefined) job.idempotencyKey = copy.idempotencyKey
  if (copy.pool !== undefined) job.pool = copy.pool
  if (copy.lastError !== undefined) job.lastError = copy.lastError
  return job
}

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

// A single enqueue waiting for the next merged script call
interface WaitingEnqueue {
  readonly job: Job
  readonly now: number
  readonly resume: (exit: Exit.Exit<Job, QueueStoreError>) => void
}

// A merged call answered, its callers resumed from `from` on
interface AnsweredEnqueues {
  readonly batch: ReadonlyArray<WaitingEnqueue>
  readonly stored: Exit.Exit<Array<Job>, QueueStoreError>
  from: number
}

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

// What `completeMerged` takes: a `complete` request, or one completion of a `completeMany`
interface CompleteEntry {
  readonly request: Pick<CompleteCall, "jobId" | "workerId" | "value" | "result" | "now">
  readonly completeUnsafe: (exit: Exit.Exit<Job, JobNotFound | LeaseLost | QueueStoreError>) => void
}

interface HeartbeatCall extends Request.Request<Job, JobNotFound | LeaseLost | QueueStoreError> {
  readonly _tag: "HeartbeatCall"
  readonly jobId: JobId
  readonly workerId: AgentId
  readonly expiresAt: number
  readonly now: number
}
const HeartbeatCall = Request.tagged<HeartbeatCall>("HeartbeatCall")
