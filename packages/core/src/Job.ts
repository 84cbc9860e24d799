/**
 * Jobs: units of work in the queue, with their lease and retry bookkeeping, and the job state machine
 * (once, here; every `Queue` layer follows `canTransitionJob`).
 *
 * ```
 * queued → claimed → running → completed              (`start` is optional: claimed → completed is allowed)
 *          claimed | running → failed                  (attempts left: waits for its retry time) → claimed …
 *          claimed | running → dead_lettered           (no attempts left, or not retryable) → queued (retryDeadLettered)
 *          claimed | running → queued                  (lease expired with attempts left, or released)
 * queued | claimed | running | failed → cancelled
 * ```
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { AgentId, JobId } from "./Ids.ts"
import { Priority } from "./Task.ts"

/**
 * @category models
 * @since 0.1.0
 */
export const JobState = Schema.Literals([
  "queued",
  "claimed",
  "running",
  "completed",
  "failed",
  "dead_lettered",
  "cancelled"
])
export type JobState = typeof JobState.Type

/**
 * A queue name: letters, digits and `_ . : -`, at most 64 characters.
 *
 * @category models
 * @since 0.1.0
 */
export const QueueName = Schema.String.check(
  Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/, {
    message: "Expected a queue name: 1-64 letters, digits and _ . : -, starting with a letter or digit"
  })
)

/**
 * The namespace of the runtime's own queues (`mandate.steps`, `mandate.deadlines`): reserved, closed to principals
 * outside the runtime (see `PublicQueue`).
 *
 * @category constants
 * @since 0.1.0
 */
export const reservedQueuePrefix = "mandate."

/**
 * Whether a queue belongs to the runtime (its name is in the `mandate.` namespace).
 *
 * @category predicates
 * @since 0.1.0
 */
export const isReservedQueue = (queue: string): boolean => queue.startsWith(reservedQueuePrefix)

/**
 * A worker pool name (same alphabet as queue names).
 *
 * @category models
 * @since 0.1.0
 */
export const PoolName = QueueName

/**
 * Whether a pool name belongs to the runtime: `default`, where its in-process workers register, and every name in
 * the `mandate.` namespace. No remote step type may be routed to such a pool.
 *
 * @category predicates
 * @since 0.1.0
 */
export const isReservedPool = (pool: string): boolean => pool === "default" || pool.startsWith(reservedQueuePrefix)

/**
 * The runtime's queue of a remote pool's step jobs (`mandate.pool.<pool>`): reserved like every `mandate.` queue,
 * so only the runtime (and, through `RemoteSteps`, the agents of that pool) reach its jobs.
 *
 * @category constructors
 * @since 0.1.0
 */
export const poolQueue = (pool: string): string => `${reservedQueuePrefix}pool.${pool}`

/**
 * The pool whose step queue this is, if it is one (`poolQueue`'s inverse).
 *
 * @category computations
 * @since 0.1.0
 */
export const poolOfQueue = (queue: string): string | undefined => {
  const prefix = `${reservedQueuePrefix}pool.`
  return queue.startsWith(prefix) ? queue.slice(prefix.length) : undefined
}

/**
 * Who holds a job and until when (epoch ms).
 *
 * @category models
 * @since 0.1.0
 */
export const Lease = Schema.Struct({ workerId: AgentId, expiresAt: Schema.Number })
export type Lease = typeof Lease.Type

/**
 * @category models
 * @since 0.1.0
 */
export const Job = Schema.Struct({
  id: JobId,
  queue: QueueName,
  payload: Schema.Json,
  priority: Priority,
  state: JobState,
  /** When the job becomes (or became) claimable: enqueue time, a delay, or a retry time. */
  runAt: Schema.Number,
  /** Attempts started so far (a claim starts one). */
  attempts: Schema.Int,
  maxAttempts: Schema.Int,
  idempotencyKey: Schema.optionalKey(Schema.String),
  pool: Schema.optionalKey(PoolName),
  lease: Schema.optionalKey(Lease),
  lastError: Schema.optionalKey(Schema.String),
  result: Schema.optionalKey(Schema.Json),
  createdAt: Schema.Number,
  updatedAt: Schema.Number,
  /** When the current or last attempt was claimed. */
  claimedAt: Schema.optionalKey(Schema.Number),
  /** When the job reached completed, dead_lettered or cancelled. */
  finishedAt: Schema.optionalKey(Schema.Number),
  /**
   * Failed attempts so far (failures reported by workers and expired leases); absent means 0 (optional so
   * that jobs written before the field existed still decode). Queue stats derive the failure rate from it.
   */
  failures: Schema.optionalKey(Schema.Int)
})
export type Job = typeof Job.Type

const jobTransitions: Record<JobState, ReadonlyArray<JobState>> = {
  queued: ["claimed", "cancelled"],
  claimed: ["running", "completed", "failed", "dead_lettered", "queued", "cancelled"],
  running: ["completed", "failed", "dead_lettered", "queued", "cancelled"],
  failed: ["claimed", "cancelled"],
  dead_lettered: ["queued"],
  completed: [],
  cancelled: []
}

/**
 * Whether the job state machine allows `from → to`.
 *
 * @category predicates
 * @since 0.1.0
 */
export const canTransitionJob = (from: JobState, to: JobState): boolean => jobTransitions[from].includes(to)

/**
 * A job that holds a lease: `claimed` or `running`.
 *
 * @category predicates
 * @since 0.1.0
 */
export const isLeasedJobState = (state: JobState): boolean => state === "claimed" || state === "running"

/**
 * A job waiting to be claimed: `queued`, or `failed` with its retry time pending.
 *
 * @category predicates
 * @since 0.1.0
 */
export const isPendingJobState = (state: JobState): boolean => state === "queued" || state === "failed"

/**
 * A job that will not run again by itself: `completed`, `dead_lettered` (until `retryDeadLettered`) or
 * `cancelled`.
 *
 * @category predicates
 * @since 0.1.0
 */
export const isFinishedJobState = (state: JobState): boolean =>
  state === "completed" || state === "dead_lettered" || state === "cancelled"
