/**
 * The job queue and the agent registry over HTTP, for remote workers: register, heartbeat, claim jobs under a
 * lease, start, heartbeat and complete or fail them. A remote agent's secrets never leave it: it sends back
 * results only.
 *
 * @since 0.1.0
 */
import { AgentId, AgentLoad, AgentStatus, JobId, JobState, PoolName, QueueName, Task } from "@mandate/core"
import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { Auth, RequiredRoles } from "./Auth.ts"
import { BadRequest, Conflict, Forbidden, NotFound, Unavailable } from "./Errors.ts"
import { AgentWire, JobWire } from "./Models.ts"

const Millis = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))
const LeaseMillis = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 86_400_000 }))

/**
 * `POST /queue/jobs`.
 *
 * @category models
 * @since 0.1.0
 */
export const EnqueueJob = Schema.Struct({
  queue: QueueName,
  payload: Schema.Json,
  priority: Schema.optionalKey(Task.Priority),
  run_at: Schema.optionalKey(Millis),
  delay_ms: Schema.optionalKey(Millis),
  max_attempts: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1000 }))),
  idempotency_key: Schema.optionalKey(Schema.String.check(Schema.isBetweenLength(1, 256))),
  pool: Schema.optionalKey(PoolName)
})

/**
 * `POST /queue/claim`: up to `max` jobs of `queues`, leased to `worker_id` for `lease_ms`.
 *
 * @category models
 * @since 0.1.0
 */
export const ClaimJobs = Schema.Struct({
  worker_id: AgentId,
  queues: Schema.NonEmptyArray(QueueName).check(Schema.isMaxLength(64)),
  pool: Schema.optionalKey(PoolName),
  max: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1000 }))),
  lease_ms: Schema.optionalKey(LeaseMillis)
})

/**
 * The lease holder, on every lease operation.
 *
 * @category models
 * @since 0.1.0
 */
export const LeaseHolder = Schema.Struct({ worker_id: AgentId })

/**
 * `POST /queue/jobs/{id}/heartbeat`: extends the lease to now + `extend_ms` (default 30 s).
 *
 * @category models
 * @since 0.1.0
 */
export const HeartbeatJob = Schema.Struct({ worker_id: AgentId, extend_ms: Schema.optionalKey(LeaseMillis) })

/**
 * `PATCH /queue/jobs/{id}/complete`.
 *
 * @category models
 * @since 0.1.0
 */
export const CompleteJob = Schema.Struct({ worker_id: AgentId, result: Schema.optionalKey(Schema.Json) })

/**
 * `PATCH /queue/jobs/{id}/fail`: retried with backoff while attempts remain and `retryable` is not false.
 *
 * @category models
 * @since 0.1.0
 */
export const FailJob = Schema.Struct({
  worker_id: AgentId,
  error: Schema.String.check(Schema.isBetweenLength(1, 10_000)),
  retryable: Schema.optionalKey(Schema.Boolean)
})

/**
 * Queue health: depth by state and priority, readiness, wait percentiles, failure rate.
 *
 * @category models
 * @since 0.1.0
 */
export const QueueStatsWire = Schema.Struct({
  by_state: Schema.Record(JobState, Schema.Int),
  pending_by_priority: Schema.Record(Task.Priority, Schema.Int),
  ready: Schema.Int,
  oldest_ready_age_ms: Schema.NullOr(Schema.Finite),
  wait_p50_ms: Schema.NullOr(Schema.Finite),
  wait_p95_ms: Schema.NullOr(Schema.Finite),
  failure_rate: Schema.NullOr(Schema.Finite),
  dead_lettered: Schema.Int
})

/**
 * A pool: its remote step types, its agents by status, and its steps waiting and leased.
 *
 * @category models
 * @since 0.1.0
 */
export const PoolSummaryWire = Schema.Struct({
  pool: Schema.String,
  /** The remote step types routed to the pool. */
  step_types: Schema.Array(Schema.String),
  agents: Schema.Int,
  online: Schema.Int,
  degraded: Schema.Int,
  offline: Schema.Int,
  /** Its steps waiting to be claimed, and held under a lease. */
  waiting: Schema.Int,
  leased: Schema.Int
})

/**
 * `POST /agents`: without `agent_id`, one is generated.
 *
 * @category models
 * @since 0.1.0
 */
export const RegisterAgent = Schema.Struct({
  agent_id: Schema.optionalKey(AgentId),
  pool: PoolName,
  capabilities: Schema.optionalKey(Schema.Array(Schema.String)),
  labels: Schema.optionalKey(Schema.Record(Schema.String, Schema.String))
})

const jobId = { id: JobId }
const lease = [NotFound, Conflict, BadRequest, Unavailable]
const readers = ["agent", "auditor"] as const

/**
 * @category groups
 * @since 0.1.0
 */
export class QueueApi extends HttpApiGroup.make("queue")
  .add(
    HttpApiEndpoint.post("enqueue", "/queue/jobs", { payload: EnqueueJob, success: JobWire, error: lease })
      .annotate(RequiredRoles, ["submitter"])
      .annotate(OpenApi.Description, "Enqueues a job; an idempotency key already used in the queue returns that job"),
    HttpApiEndpoint.get("list", "/queue/jobs", {
      query: {
        queue: Schema.optional(QueueName),
        status: Schema.optional(JobState),
        pool: Schema.optional(PoolName),
        limit: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1000 }))),
        cursor: Schema.optional(Schema.String.check(Schema.isBetweenLength(1, 512)))
      },
      success: Schema.Struct({ jobs: Schema.Array(JobWire), next_cursor: Schema.optionalKey(Schema.String) }),
      error: [BadRequest, Unavailable]
    }).annotate(RequiredRoles, readers),
    HttpApiEndpoint.get("get", "/queue/jobs/:id", {
      params: jobId,
      success: JobWire,
      error: [NotFound, Unavailable]
    }).annotate(RequiredRoles, readers),
    HttpApiEndpoint.post("claim", "/queue/claim", {
      payload: ClaimJobs,
      success: Schema.Struct({ jobs: Schema.Array(JobWire) }),
      error: [BadRequest, Unavailable]
    })
      .annotate(RequiredRoles, ["agent"])
      .annotate(OpenApi.Description, "Claims up to max ready jobs, highest priority first, each under a lease"),
    HttpApiEndpoint.patch("start", "/queue/jobs/:id/start", {
      params: jobId,
      payload: LeaseHolder,
      success: JobWire,
      error: lease
    }).annotate(RequiredRoles, ["agent"]),
    HttpApiEndpoint.post("heartbeat", "/queue/jobs/:id/heartbeat", {
      params: jobId,
      payload: HeartbeatJob,
      success: JobWire,
      error: lease
    }).annotate(RequiredRoles, ["agent"]),
    HttpApiEndpoint.patch("complete", "/queue/jobs/:id/complete", {
      params: jobId,
      payload: CompleteJob,
      success: JobWire,
      error: lease
    }).annotate(RequiredRoles, ["agent"]),
    HttpApiEndpoint.patch("fail", "/queue/jobs/:id/fail", {
      params: jobId,
      payload: FailJob,
      success: JobWire,
      error: lease
    }).annotate(RequiredRoles, ["agent"]),
    HttpApiEndpoint.get("stats", "/queue/stats", {
      query: { queue: Schema.optional(QueueName) },
      success: QueueStatsWire,
      error: [BadRequest, Unavailable]
    }).annotate(RequiredRoles, readers),
    HttpApiEndpoint.post("redrive", "/queue/jobs/:id/redrive", {
      params: jobId,
      success: JobWire,
      error: [NotFound, Conflict, Forbidden, BadRequest, Unavailable]
    })
      .annotate(RequiredRoles, ["admin"])
      .annotate(
        OpenApi.Description,
        "Returns a dead-lettered job to its queue with a fresh attempt budget (admins; the runtime's own mandate.* " +
          "queues are retried through their task)"
      ),
    HttpApiEndpoint.post("requeueExpired", "/queue/maintenance/requeue-expired", {
      success: Schema.Struct({ requeued: Schema.Int, jobs: Schema.Array(JobWire) }),
      error: Unavailable
    })
      .annotate(RequiredRoles, ["admin"])
      .annotate(OpenApi.Description, "Returns jobs whose lease expired to the queue (the server also does this itself)")
  )
  .middleware(Auth) {}

/**
 * @category groups
 * @since 0.1.0
 */
export class AgentsApi extends HttpApiGroup.make("agents")
  .add(
    HttpApiEndpoint.post("register", "/agents", {
      payload: RegisterAgent,
      success: AgentWire,
      error: [BadRequest, Unavailable]
    }).annotate(RequiredRoles, ["agent"]),
    HttpApiEndpoint.get("list", "/agents", {
      query: { pool: Schema.optional(PoolName), status: Schema.optional(AgentStatus) },
      success: Schema.Struct({ agents: Schema.Array(AgentWire) }),
      error: [BadRequest, Unavailable]
    }).annotate(RequiredRoles, readers),
    HttpApiEndpoint.get("pools", "/agents/pools", {
      success: Schema.Struct({
        pools: Schema.Array(PoolSummaryWire)
      }),
      error: Unavailable
    }).annotate(RequiredRoles, readers),
    HttpApiEndpoint.get("get", "/agents/:id", {
      params: { id: AgentId },
      success: AgentWire,
      error: [NotFound, Unavailable]
    }).annotate(RequiredRoles, readers),
    HttpApiEndpoint.post("heartbeat", "/agents/:id/heartbeat", {
      params: { id: AgentId },
      payload: Schema.Struct({ load: Schema.optionalKey(AgentLoad) }),
      success: AgentWire,
      error: [NotFound, BadRequest, Unavailable]
    }).annotate(RequiredRoles, ["agent"]),
    HttpApiEndpoint.delete("deregister", "/agents/:id", {
      params: { id: AgentId },
      success: Schema.Struct({ agent_id: Schema.String, deregistered: Schema.Boolean }),
      error: [NotFound, Unavailable]
    }).annotate(RequiredRoles, ["agent"])
  )
  .middleware(Auth) {}
