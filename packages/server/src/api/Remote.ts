/**
 * Remote steps over HTTP: the agents of a pool claim the steps routed to it, keep their leases with heartbeats and
 * settle them (`/pools/{pool}/claim`, `/steps/{lease_id}/heartbeat|complete|fail`); and `POST /execute` runs one
 * step type as a one-step governed task. A step's params and result are checked against its declared schemas
 * (`GET /pools/{pool}` publishes their JSON Schemas), never trusted as sent.
 *
 * @since 0.1.0
 */
import { AgentId, JobId, PoolName, Task } from "@mandate/core"
import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { Auth, RequiredRoles } from "./Auth.ts"
import { BadRequest, Conflict, Forbidden, NotFound, PolicyDenied, Unavailable, Unprocessable } from "./Errors.ts"
import { TaskStatusWire } from "./Models.ts"

const LeaseMillis = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 86_400_000 }))

/**
 * `POST /pools/{pool}/claim`: up to `max` steps (default 1), each leased to `worker_id` (a registered agent of the
 * pool, one of the caller's worker ids) for `lease_ms` (default 30 s); with `wait_ms`, an idle pool answers when a
 * step comes (or the wait ends), so agents need not poll.
 *
 * @category models
 * @since 0.1.0
 */
export const ClaimSteps = Schema.Struct({
  worker_id: AgentId,
  max: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 100 }))),
  lease_ms: Schema.optionalKey(LeaseMillis),
  /** With no step ready, wait up to this long for one (long poll, at most 20 s; default 0: answer at once). */
  wait_ms: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 20_000 })))
})

/**
 * A claimed step: what the agent needs to run it, and nothing else.
 *
 * @category models
 * @since 0.1.0
 */
export const ClaimedStepWire = Schema.Struct({
  /** Names the lease in `/steps/{lease_id}/…`. */
  lease_id: Schema.String,
  worker_id: Schema.String,
  lease_expires_at: Schema.Number,
  task_id: Schema.String,
  step_id: Schema.String,
  type: Schema.String,
  /** 1 for the first attempt. */
  attempt: Schema.Int,
  /** The same for every attempt and retry of the step: pass it on to deduplicate effects. */
  idempotency_key: Schema.String,
  /** The step's params, as its declared schema decoded them. */
  params: Schema.Json
})

/**
 * @category models
 * @since 0.1.0
 */
export const StepHeartbeat = Schema.Struct({ worker_id: AgentId, extend_ms: Schema.optionalKey(LeaseMillis) })

/**
 * @category models
 * @since 0.1.0
 */
export const CompleteStep = Schema.Struct({ worker_id: AgentId, result: Schema.Json })

/**
 * @category models
 * @since 0.1.0
 */
export const FailStep = Schema.Struct({
  worker_id: AgentId,
  error: Schema.String.check(Schema.isBetweenLength(1, 10_000)),
  /** False when retrying cannot help (default true). */
  retryable: Schema.optionalKey(Schema.Boolean)
})

/**
 * How the attempt was settled: `succeeded`, `retrying` (the step will be offered again after a backoff) or
 * `failed` (with `error`: no attempt left, not retryable, or a result the step type's schema refused).
 *
 * @category models
 * @since 0.1.0
 */
export const SettlementWire = Schema.Struct({
  lease_id: Schema.String,
  task_id: Schema.String,
  step_id: Schema.String,
  outcome: Schema.Literals(["succeeded", "retrying", "failed"]),
  error: Schema.optionalKey(Schema.String)
})

/**
 * `POST /execute`: runs `step_type` with `parameters` as a one-step task (kind `step.<step_type>`), planned and
 * checked against policy like any task; with `wait_ms` (at most 30 s) the answer waits that long for it to end.
 *
 * @category models
 * @since 0.1.0
 */
export const ExecuteStep = Schema.Struct({
  step_type: Schema.String.check(Schema.isPattern(/^[a-z][a-z0-9_.-]{0,58}$/)),
  parameters: Schema.Json,
  priority: Schema.optionalKey(Task.Priority),
  idempotency_key: Schema.optionalKey(Schema.String.check(Schema.isBetweenLength(1, 256))),
  wait_ms: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 30_000 })))
})

/**
 * The task `POST /execute` started: its status when the answer was sent, and the step's result if it succeeded
 * by then.
 *
 * @category models
 * @since 0.1.0
 */
export const ExecutedWire = Schema.Struct({
  ...TaskStatusWire.fields,
  result: Schema.optionalKey(Schema.Json),
  error: Schema.optionalKey(Schema.String)
})

/**
 * `GET /pools/{pool}`: the pool, and each remote step type it serves with the JSON Schemas (draft 2020-12) of its
 * params (what a claim hands over) and of its result (what `complete` must send).
 *
 * @category models
 * @since 0.1.0
 */
export const PoolWire = Schema.Struct({
  pool: Schema.String,
  step_types: Schema.Array(
    Schema.Struct({
      type: Schema.String,
      description: Schema.optionalKey(Schema.String),
      params_schema: Schema.Json,
      result_schema: Schema.Json
    })
  ),
  agents: Schema.Int,
  online: Schema.Int,
  degraded: Schema.Int,
  offline: Schema.Int,
  waiting: Schema.Int,
  leased: Schema.Int
})

const lease = { lease_id: JobId }
const leaseErrors = [NotFound, Conflict, BadRequest, Forbidden, Unavailable]

/**
 * @category groups
 * @since 0.1.0
 */
export class RemoteApi extends HttpApiGroup.make("remote")
  .add(
    HttpApiEndpoint.post("claim", "/pools/:pool/claim", {
      params: { pool: PoolName },
      payload: ClaimSteps,
      success: Schema.Struct({ steps: Schema.Array(ClaimedStepWire) }),
      error: [BadRequest, Forbidden, NotFound, Conflict, Unavailable]
    })
      .annotate(RequiredRoles, ["agent"])
      .annotate(
        OpenApi.Description,
        "Claims up to max steps routed to the pool, each under a lease, for a registered agent of that pool"
      ),
    HttpApiEndpoint.get("pool", "/pools/:pool", {
      params: { pool: PoolName },
      success: PoolWire,
      error: [NotFound, BadRequest, Unavailable]
    })
      .annotate(RequiredRoles, ["agent", "auditor"])
      .annotate(
        OpenApi.Description,
        "A pool, with the JSON Schemas of the params and result of each step type it serves"
      ),
    HttpApiEndpoint.post("heartbeat", "/steps/:lease_id/heartbeat", {
      params: lease,
      payload: StepHeartbeat,
      success: Schema.Struct({ lease_id: Schema.String, lease_expires_at: Schema.Number }),
      error: leaseErrors
    }).annotate(RequiredRoles, ["agent"]),
    HttpApiEndpoint.post("complete", "/steps/:lease_id/complete", {
      params: lease,
      payload: CompleteStep,
      success: SettlementWire,
      error: leaseErrors
    })
      .annotate(RequiredRoles, ["agent"])
      .annotate(
        OpenApi.Description,
        "Settles the step with its result; a result its step type's schema refuses is a failed attempt"
      ),
    HttpApiEndpoint.post("fail", "/steps/:lease_id/fail", {
      params: lease,
      payload: FailStep,
      success: SettlementWire,
      error: leaseErrors
    }).annotate(RequiredRoles, ["agent"]),
    HttpApiEndpoint.post("execute", "/execute", {
      payload: ExecuteStep,
      success: ExecutedWire,
      error: [BadRequest, Forbidden, PolicyDenied, Unprocessable, NotFound, Conflict, Unavailable]
    })
      .annotate(RequiredRoles, ["submitter"])
      .annotate(
        OpenApi.Description,
        "Runs one step type as a one-step governed task (planned, policy-checked, approved if policy says so, recorded)"
      )
  )
  .middleware(Auth) {}
