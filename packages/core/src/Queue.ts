/**
 * The durable job queue: enqueue work, claim it under a lease, heartbeat, complete or fail it (with retries
 * and backoff, then a dead letter), cancel it, and watch the queue's depth.
 *
 * **Contract** (every layer; the conformance suite `@mandate/core/conformance/queue` checks it):
 * - A claim takes up to `max` ready jobs of the given queues, highest priority first, then oldest `runAt`,
 *   and gives each a lease; two claims never get the same job. A job with a target `pool` is claimable only by
 *   a claim for that pool; a job without one by any claim.
 * - Only the lease holder may `start`, `heartbeat`, `complete`, `fail` or `release` a job, and only while the
 *   lease has not expired (an expired lease is lost even before `requeueExpired` has run): anyone else gets
 *   `LeaseLost`. `complete`/`fail` accept a `claimed` or a `running` job (`start` is optional).
 * - A failure with attempts left and `retryable` (the default) waits for `Backoff.decide`'s retry time in state
 *   `failed`; otherwise the job is `dead_lettered`. An expired lease counts as a failed attempt; the job goes
 *   back to `queued` at once (or is dead-lettered without attempts left). Layers run `requeueExpired`
 *   periodically by themselves.
 * - An enqueue with an idempotency key already used in the same queue returns the stored job.
 * - Bad input (names, delays, attempts, non-JSON payloads and results) fails with `InvalidInput` naming the
 *   field by JSON path (`$.payload.amount`, `$[3].queue` in a batch); a batch is all or nothing.
 * - `enqueue`/`enqueueBatch` neither fork nor open a transaction of their own, so a caller can run them inside
 *   `UnitOfWork.run` together with other writes (one transaction on Postgres).
 * - `wakeups` lets an idle worker sleep until work may be claimable (memory: a latch; Postgres: LISTEN/NOTIFY;
 *   Redis: a blocking pop), with polling as the fallback.
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, type Exit, Latch, Layer, Random, Result, Schema, type Scope } from "effect"
import * as Backoff from "./Backoff.ts"
import type { AgentId, JobId } from "./Ids.ts"
import { InvalidInput } from "./InvalidInput.ts"
import { type AdminResult, type Entry, type LeaseResult, MemoryQueueStore } from "./internal/MemoryQueue.ts"
import { Job, JobState } from "./Job.ts"
import {
  type ClaimRequest,
  clampInterval,
  computeQueueStats,
  decodeClaimRequest,
  decodeExtendMs,
  decodeHandOff,
  decodeJobQuery,
  decodeStatsQueue,
  defaultLeaseMs,
  defaultListLimit,
  type EnqueueRequest,
  type FailOptions,
  type JobQuery,
  prepareJob,
  prepareJobs,
  prepareResult
} from "./QueueRules.ts"
import { IllegalTransition } from "./Task.ts"
import { UnitOfWork } from "./UnitOfWork.ts"

// The request models and the rules shared by layers live in `QueueRules`; re-exported here, where they always were
export {
  ClaimRequest,
  computeQueueStats,
  decodeClaimRequest,
  decodeExtendMs,
  decodeHandOff,
  decodeJobQuery,
  decodeStatsQueue,
  defaultLeaseMs,
  defaultListLimit,
  defaultMaxAttempts,
  EnqueueRequest,
  type FailOptions,
  JobQuery,
  percentileDisc,
  prepareJob,
  prepareJobs,
  prepareResult,
  validateEnqueue,
  validateEnqueueBatch
} from "./QueueRules.ts"

/**
 * One page of `list`. `nextCursor` is absent on the last page.
 *
 * @category models
 * @since 0.1.0
 */
export const JobPage = Schema.Struct({
  jobs: Schema.Array(Job),
  nextCursor: Schema.optionalKey(Schema.String)
})
export type JobPage = typeof JobPage.Type

/**
 * One completion of `completeMany`: what `complete` takes.
 *
 * @category models
 * @since 0.1.0
 */
export interface Completion {
  readonly jobId: JobId
  readonly workerId: AgentId
  /** JSON; default null. */
  readonly result?: Schema.Json | undefined
}

/**
 * Who a job enqueued with `enqueueClaimed` is claimed for: the worker that will run it next, and its lease.
 *
 * @category models
 * @since 0.1.0
 */
export interface HandOff {
  readonly workerId: AgentId
  readonly leaseMs: number
}

/**
 * Which queues a worker watches for work, and its pool.
 *
 * @category models
 * @since 0.1.0
 */
export interface WakeupRequest {
  readonly queues: ReadonlyArray<string>
  readonly pool?: string | undefined
}

const Count = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/**
 * Jobs per state.
 *
 * @category models
 * @since 0.1.0
 */
export const JobStateCounts = Schema.Struct({
  queued: Count,
  claimed: Count,
  running: Count,
  completed: Count,
  failed: Count,
  dead_lettered: Count,
  cancelled: Count
})
export type JobStateCounts = typeof JobStateCounts.Type

/**
 * Jobs per priority.
 *
 * @category models
 * @since 0.1.0
 */
export const PriorityCounts = Schema.Struct({ critical: Count, high: Count, normal: Count, low: Count })
export type PriorityCounts = typeof PriorityCounts.Type

/**
 * A queue's health, computed over the jobs the layer holds (all queues when no queue is given).
 *
 * - `pendingByPriority`: jobs waiting to be claimed (`queued`, and `failed` ones waiting for their retry).
 * - `ready`: pending jobs claimable now (runAt ≤ now); `oldestReadyAgeMs`: now − the oldest such runAt.
 * - `waitP50Ms`/`waitP95Ms`: enqueue-to-claim wait (claimedAt − runAt) of each job's latest claim, for jobs
 *   not rescheduled since (claimedAt ≥ runAt); nearest-rank percentiles, as Postgres' `percentile_disc`.
 * - `failureRate`: failed attempts / (failed attempts + completed jobs), from `Job.failures`.
 * - `null` where there is nothing to measure.
 *
 * @category models
 * @since 0.1.0
 */
export const QueueStats = Schema.Struct({
  byState: JobStateCounts,
  pendingByPriority: PriorityCounts,
  ready: Count,
  oldestReadyAgeMs: Schema.NullOr(Schema.Number),
  waitP50Ms: Schema.NullOr(Schema.Number),
  waitP95Ms: Schema.NullOr(Schema.Number),
  failureRate: Schema.NullOr(Schema.Number),
  deadLettered: Count
})
export type QueueStats = typeof QueueStats.Type

// ---- errors -----------------------------------------------------------------------------------------------

/**
 * No job with this id.
 *
 * @category errors
 * @since 0.1.0
 */
export class JobNotFound extends Schema.TaggedError<JobNotFound>()("JobNotFound", { jobId: Schema.String }) {
  override get message(): string {
    return `No job ${this.jobId}`
  }
}

/**
 * Why a lease operation was refused: the job holds no lease (it was completed, failed, cancelled, requeued…),
 * another worker holds it, or the caller's lease expired.
 *
 * @category models
 * @since 0.1.0
 */
export const LeaseLossReason = Schema.Literals(["not_leased", "held_by_other", "expired"])
export type LeaseLossReason = typeof LeaseLossReason.Type

/**
 * The worker does not hold the job's lease (any more). The job's current state tells why, e.g. `cancelled`.
 *
 * @category errors
 * @since 0.1.0
 */
export class LeaseLost extends Schema.TaggedError<LeaseLost>()("LeaseLost", {
  jobId: Schema.String,
  workerId: Schema.String,
  reason: LeaseLossReason,
  state: JobState,
  holder: Schema.optionalKey(Schema.String)
}) {
  override get message(): string {
    const why =
      this.reason === "expired"
        ? "its lease expired"
        : this.reason === "held_by_other"
          ? `it is leased to ${this.holder}`
          : `it is ${this.state}`
    return `Worker ${this.workerId} does not hold job ${this.jobId}: ${why}`
  }
}

/**
 * The backing store failed (connection, query); wraps the driver's error.
 *
 * @category errors
 * @since 0.1.0
 */
export class QueueStoreError extends Schema.TaggedError<QueueStoreError>()("QueueStoreError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

// ---- the service ------------------------------------------------------------------------------------------

/**
 * Options of `Queue.layerMemory`.
 *
 * @category models
 * @since 0.1.0
 */
export interface QueueMemoryOptions {
  /** Retry delays (see `Backoff`). */
  readonly backoff?: Backoff.Options | undefined
  /** How often the layer requeues jobs whose lease expired (ms, default 1,000). */
  readonly requeueIntervalMs?: number | undefined
  /**
   * Forget completed and cancelled jobs this long (ms) after they finished, with their idempotency keys, so a
   * long-running process does not grow without bound. Default: keep every job. Dead letters are always kept.
   */
  readonly retainFinishedMs?: number | undefined
}

/**
 * The durable job queue. Claims are leases; only the lease holder may complete or fail a job.
 *
 * @category services
 * @since 0.1.0
 */
export class Queue extends Context.Service<
  Queue,
  {
    readonly enqueue: (request: EnqueueRequest) => Effect.Effect<Job, InvalidInput | QueueStoreError>
    /** All or nothing: one bad request (reported as `$[i]...`) enqueues none. */
    readonly enqueueBatch: (
      requests: ReadonlyArray<EnqueueRequest>
    ) => Effect.Effect<ReadonlyArray<Job>, InvalidInput | QueueStoreError>
    readonly claim: (request: ClaimRequest) => Effect.Effect<ReadonlyArray<Job>, InvalidInput | QueueStoreError>
    /** claimed → running (a running job stays running). Optional: complete/fail accept claimed jobs. */
    readonly start: (jobId: JobId, workerId: AgentId) => Effect.Effect<Job, JobNotFound | LeaseLost | QueueStoreError>
    /** Extends the lease to now + `extendMs`. */
    readonly heartbeat: (
      jobId: JobId,
      workerId: AgentId,
      extendMs: number
    ) => Effect.Effect<Job, JobNotFound | LeaseLost | InvalidInput | QueueStoreError>
    /** Records the result (JSON; default null). */
    readonly complete: (
      jobId: JobId,
      workerId: AgentId,
      result?: Schema.Json
    ) => Effect.Effect<Job, JobNotFound | LeaseLost | InvalidInput | QueueStoreError>
    /**
     * Optional: `complete` for many jobs at once, for a layer that writes them together (Postgres: one
     * statement; Redis: one script). Each completion is checked and recorded or refused on its own, exactly as
     * `complete` would; the exits come in the order of `completions`. `Worker.run` uses it, when the layer has it, for the completions it records
     * without a `settle`. A wrapper that overrides `complete` must override or drop this too.
     */
    readonly completeMany?:
      | ((
          completions: ReadonlyArray<Completion>
        ) => Effect.Effect<ReadonlyArray<Exit.Exit<Job, JobNotFound | LeaseLost | InvalidInput | QueueStoreError>>>)
      | undefined
    /**
     * Optional: `enqueue`, with the job claimed at once by `handOff.workerId` (state `claimed`, its attempt counted,
     * leased for `handOff.leaseMs`), so a worker that enqueues its own next job runs it without a claim. It is
     * then a claimed job like any other: its lease must be kept alive, and once the lease expires the job is taken
     * over. Enqueued as `enqueue` would (`queued`, the caller checks the state and lease holder) when a job of a
     * higher priority waits ready in its queue (a hand-off never passes it), when it is delayed, or when its
     * idempotency key returns a stored job. Like `enqueue`, it runs inside the caller's unit of work.
     */
    readonly enqueueClaimed?:
      | ((request: EnqueueRequest, handOff: HandOff) => Effect.Effect<Job, InvalidInput | QueueStoreError>)
      | undefined
    /** Returns the job as rescheduled (`failed`, with its retry `runAt`) or `dead_lettered`. */
    readonly fail: (
      jobId: JobId,
      workerId: AgentId,
      error: string,
      options?: FailOptions
    ) => Effect.Effect<Job, JobNotFound | LeaseLost | QueueStoreError>
    /** Gives the job back without failing it (the attempt is not counted): back to `queued`, same runAt. */
    readonly release: (jobId: JobId, workerId: AgentId) => Effect.Effect<Job, JobNotFound | LeaseLost | QueueStoreError>
    /** Cancels a pending or leased job (its holder's next heartbeat is refused). Cancelling again is a no-op. */
    readonly cancel: (jobId: JobId) => Effect.Effect<Job, JobNotFound | IllegalTransition | QueueStoreError>
    /** dead_lettered → queued, with a fresh attempt budget. */
    readonly retryDeadLettered: (jobId: JobId) => Effect.Effect<Job, JobNotFound | IllegalTransition | QueueStoreError>
    /** Returns jobs with expired leases to the ready set (or dead-letters them); the jobs it changed. */
    readonly requeueExpired: Effect.Effect<ReadonlyArray<Job>, QueueStoreError>
    readonly get: (jobId: JobId) => Effect.Effect<Job, JobNotFound | QueueStoreError>
    readonly list: (query?: JobQuery) => Effect.Effect<JobPage, InvalidInput | QueueStoreError>
    readonly stats: (queue?: string) => Effect.Effect<QueueStats, InvalidInput | QueueStoreError>
    /**
     * Subscribes to work on `queues` for the scope. The returned effect resumes when work may have become
     * claimable (an enqueue, a retry or requeue, a delayed job coming due) since the previous resume or the
     * subscription: no signal between two waits is lost. It may resume spuriously; callers claim, then wait
     * again, with a poll interval as the fallback (a layer without notifications may never resume).
     */
    readonly wakeups: (request: WakeupRequest) => Effect.Effect<Effect.Effect<void>, QueueStoreError, Scope.Scope>
  }
>()("@mandate/core/Queue") {
  /**
   * In-process queue, the embedded default: indexed heaps, no scan per claim; its time is the `Clock`'s, so
   * `TestClock` drives leases, delays and retries. Runs `requeueExpired` every `requeueIntervalMs` in the
   * layer's scope.
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layerMemory = (options?: QueueMemoryOptions): Layer.Layer<Queue> =>
    Layer.effect(Queue, makeMemory(options))
}

const makeMemory = (options?: QueueMemoryOptions): Effect.Effect<Queue["Service"], never, Scope.Scope> =>
  Effect.gen(function* () {
    const store = new MemoryQueueStore(Backoff.settings(options?.backoff))
    const requeueIntervalMs = clampInterval(options?.requeueIntervalMs, 1_000)
    const retainFinishedMs =
      options?.retainFinishedMs !== undefined && Number.isFinite(options.retainFinishedMs)
        ? Math.max(0, options.retainFinishedMs)
        : undefined

    const leased = (
      jobId: JobId,
      workerId: AgentId,
      result: LeaseResult
    ): Effect.Effect<Job, JobNotFound | LeaseLost> => {
      if (result.ok) return Effect.succeed(result.job)
      const refusal = result.refusal
      return refusal._tag === "NotFound"
        ? Effect.fail(new JobNotFound({ jobId }))
        : Effect.fail(
            new LeaseLost({
              jobId,
              workerId,
              reason: refusal.reason,
              state: refusal.state,
              ...(refusal.holder !== undefined ? { holder: refusal.holder } : {})
            })
          )
    }
    const administered = (jobId: JobId, result: AdminResult): Effect.Effect<Job, JobNotFound | IllegalTransition> => {
      if (result.ok) return Effect.succeed(result.job)
      const refusal = result.refusal
      return refusal._tag === "NotFound"
        ? Effect.fail(new JobNotFound({ jobId }))
        : Effect.fail(new IllegalTransition({ entity: "job", id: jobId, from: refusal.from, to: refusal.to }))
    }

    const requeueExpired = Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.sync((): ReadonlyArray<Job> => store.requeueExpired(now))
    )

    const sweep = Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.sync(() => {
        store.requeueExpired(now)
        if (retainFinishedMs !== undefined) store.prune(now, retainFinishedMs)
      })
    )
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(requeueIntervalMs), sweep)))

    // Inside a unit of work, a unit that fails takes back the jobs it created (not those an idempotency key found),
    // and workers are woken once it has committed: a worker woken earlier would claim a job whose unit is still
    // writing what the job reads
    const wakeAfterCommit = (touched: ReadonlySet<string>) =>
      touched.size === 0 ? Effect.void : UnitOfWork.afterCommitUnsafe(Effect.sync(() => store.signalAll(touched)))
    const enqueueUndoable = (jobs: ReadonlyArray<Job>, now: number) =>
      Effect.suspend(() => {
        const touched = new Set<string>()
        const out = store.enqueue(jobs, now, touched)
        const created = out.flatMap((job, i) => (job === jobs[i] ? [job.id] : []))
        return Effect.as(
          Effect.andThen(
            created.length === 0 ? Effect.void : UnitOfWork.onRollback(() => store.unenqueue(created)),
            wakeAfterCommit(touched)
          ),
          out as ReadonlyArray<Job>
        )
      })

    return Queue.of({
      enqueue: Effect.fnUntraced(function* (request: EnqueueRequest) {
        const now = yield* Clock.currentTimeMillis
        const job = prepareJob(request, now)
        if (Result.isFailure(job)) return yield* job.failure
        return (yield* enqueueUndoable([job.success], now))[0]!
      }),

      enqueueClaimed: Effect.fnUntraced(function* (request: EnqueueRequest, handOff: HandOff) {
        const lease = yield* decodeHandOff(handOff)
        const now = yield* Clock.currentTimeMillis
        const job = prepareJob(request, now)
        if (Result.isFailure(job)) return yield* job.failure
        const touched = new Set<string>()
        const { job: out, created } = store.enqueueClaimed(job.success, lease.workerId, lease.leaseMs, now, touched)
        if (created) yield* UnitOfWork.onRollback(() => store.unenqueue([out.id]))
        yield* wakeAfterCommit(touched)
        return out
      }),

      enqueueBatch: Effect.fnUntraced(function* (requests: ReadonlyArray<EnqueueRequest>) {
        const now = yield* Clock.currentTimeMillis
        const jobs = prepareJobs(requests, now)
        if (Result.isFailure(jobs)) return yield* jobs.failure
        return yield* enqueueUndoable(jobs.success, now)
      }),

      claim: Effect.fnUntraced(function* (request: ClaimRequest) {
        const claim = yield* decodeClaimRequest(request)
        const now = yield* Clock.currentTimeMillis
        return store.claim(
          claim.queues,
          claim.pool,
          claim.max ?? 1,
          claim.workerId,
          claim.leaseMs ?? defaultLeaseMs,
          now
        ) as ReadonlyArray<Job>
      }),

      start: Effect.fnUntraced(function* (jobId: JobId, workerId: AgentId) {
        const now = yield* Clock.currentTimeMillis
        return yield* leased(jobId, workerId, store.start(jobId, workerId, now))
      }),

      heartbeat: Effect.fnUntraced(function* (jobId: JobId, workerId: AgentId, extendMs: number) {
        const extend = yield* decodeExtendMs(extendMs)
        const now = yield* Clock.currentTimeMillis
        return yield* leased(jobId, workerId, store.heartbeat(jobId, workerId, extend, now))
      }),

      complete: Effect.fnUntraced(function* (jobId: JobId, workerId: AgentId, result?: Schema.Json) {
        const value = yield* prepareResult(result)
        const now = yield* Clock.currentTimeMillis
        return yield* leased(jobId, workerId, store.complete(jobId, workerId, value, now))
      }),

      fail: Effect.fnUntraced(function* (jobId: JobId, workerId: AgentId, error: string, options?: FailOptions) {
        const draw = yield* Random.next
        const now = yield* Clock.currentTimeMillis
        const message = typeof error === "string" ? error : String(error)
        return yield* leased(
          jobId,
          workerId,
          store.fail(jobId, workerId, message, options?.retryable !== false, draw, now)
        )
      }),

      release: Effect.fnUntraced(function* (jobId: JobId, workerId: AgentId) {
        const now = yield* Clock.currentTimeMillis
        return yield* leased(jobId, workerId, store.release(jobId, workerId, now))
      }),

      cancel: Effect.fn("Queue.cancel")(function* (jobId: JobId) {
        const now = yield* Clock.currentTimeMillis
        return yield* administered(jobId, store.cancel(jobId, now))
      }),

      retryDeadLettered: Effect.fn("Queue.retryDeadLettered")(function* (jobId: JobId) {
        const now = yield* Clock.currentTimeMillis
        return yield* administered(jobId, store.retryDeadLettered(jobId, now))
      }),

      requeueExpired,

      get: (jobId) => {
        const job = store.get(jobId)
        return job ? Effect.succeed(job) : Effect.fail(new JobNotFound({ jobId }))
      },

      list: Effect.fn("Queue.list")(function* (query?: JobQuery) {
        const q = yield* decodeJobQuery(query ?? {})
        if (q.cursor !== undefined && !/^\d{1,15}$/.test(q.cursor)) {
          return yield* InvalidInput.at("$.cursor", "Expected a cursor returned by this queue's list")
        }
        const limit = q.limit ?? defaultListLimit
        const entries = store.entries(q.queue)
        let i = MemoryQueueStore.indexAfter(entries, q.cursor === undefined ? 0 : Number(q.cursor))
        const jobs: Array<Job> = []
        let last: Entry | undefined
        for (; i < entries.length && jobs.length < limit; i++) {
          const entry = entries[i]!
          if (entry.removed) continue
          if (q.state !== undefined && entry.job.state !== q.state) continue
          if (q.pool !== undefined && entry.job.pool !== q.pool) continue
          jobs.push(entry.job)
          last = entry
        }
        const more = jobs.length === limit && i < entries.length && last !== undefined
        return more ? { jobs, nextCursor: String(last!.seq) } : { jobs }
      }),

      stats: Effect.fn("Queue.stats")(function* (queue?: string) {
        const name = queue === undefined ? undefined : yield* decodeStatsQueue(queue)
        const now = yield* Clock.currentTimeMillis
        const jobs: Array<Job> = []
        for (const entry of store.entries(name)) if (!entry.removed) jobs.push(entry.job)
        return computeQueueStats(jobs, now)
      }),

      wakeups: (request) =>
        Effect.gen(function* () {
          const latch = Latch.makeUnsafe(false)
          const unwatch = store.watch(request.queues, latch)
          yield* Effect.addFinalizer(() => Effect.sync(unwatch))
          const pool = request.pool
          return Effect.flatMap(Clock.currentTimeMillis, (now): Effect.Effect<void> => {
            if (latch.isOpen()) {
              latch.closeUnsafe()
              return Effect.void
            }
            const due = store.nextDueAt(request.queues, pool, now)
            if (due !== undefined && due <= now) return Effect.void
            const signalled = Effect.andThen(
              latch.await,
              Effect.sync(() => latch.closeUnsafe())
            )
            return due === undefined ? signalled : Effect.raceFirst(signalled, Effect.sleep(due - now))
          })
        })
    })
  })
