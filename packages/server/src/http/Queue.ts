/**
 * Handlers of the `queue` and `agents` groups: each one call into `PublicQueue` (the core's rules for principals
 * outside the runtime: reserved `mandate.` queues, worker ids owned exactly, roles) or a read of `Agents`, mapped
 * to the wire.
 *
 * @since 0.1.0
 */
import {
  AgentId,
  Agents,
  defaultLeaseMs,
  type PoolView,
  PublicQueue,
  QueueAdmin,
  type QueueStats,
  RemoteSteps
} from "@mandate/core"
import { Effect, Layer } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../api/Api.ts"
import { CurrentPrincipal } from "../api/Auth.ts"
import type { PoolSummaryWire, QueueStatsWire } from "../api/Queue.ts"
import { mapErrors } from "./Errors.ts"
import * as Models from "./Models.ts"

const enqueueNames = {
  "$.runAt": "$.run_at",
  "$.delayMs": "$.delay_ms",
  "$.maxAttempts": "$.max_attempts",
  "$.idempotencyKey": "$.idempotency_key"
}

/**
 * @category mapping
 * @since 0.1.0
 */
export const queueStats = (s: QueueStats): Models.Wire<typeof QueueStatsWire> => ({
  by_state: s.byState,
  pending_by_priority: s.pendingByPriority,
  ready: s.ready,
  oldest_ready_age_ms: s.oldestReadyAgeMs,
  wait_p50_ms: s.waitP50Ms,
  wait_p95_ms: s.waitP95Ms,
  failure_rate: s.failureRate,
  dead_lettered: s.deadLettered
})

/**
 * @category mapping
 * @since 0.1.0
 */
export const pool = (p: PoolView): Models.Wire<typeof PoolSummaryWire> => ({
  pool: p.pool,
  step_types: p.stepTypes,
  agents: p.agents,
  online: p.online,
  degraded: p.degraded,
  offline: p.offline,
  waiting: p.waiting,
  leased: p.leased
})
/**
 * @category handlers
 * @since 0.1.0
 */
export const QueueHandlers = HttpApiBuilder.group(Api, "queue", (handlers) =>
  Effect.gen(function* () {
    const queue = yield* PublicQueue
    const admin = yield* QueueAdmin
    return handlers
      .handle("enqueue", ({ payload }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          queue.enqueue(
            {
              queue: payload.queue,
              payload: payload.payload,
              ...(payload.priority === undefined ? {} : { priority: payload.priority }),
              ...(payload.run_at === undefined ? {} : { runAt: payload.run_at }),
              ...(payload.delay_ms === undefined ? {} : { delayMs: payload.delay_ms }),
              ...(payload.max_attempts === undefined ? {} : { maxAttempts: payload.max_attempts }),
              ...(payload.idempotency_key === undefined ? {} : { idempotencyKey: payload.idempotency_key }),
              ...(payload.pool === undefined ? {} : { pool: payload.pool })
            },
            principal
          )
        ).pipe(Effect.map(Models.job), mapErrors(enqueueNames))
      )
      .handle("list", ({ query }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          queue.list(
            {
              ...(query.queue === undefined ? {} : { queue: query.queue }),
              ...(query.status === undefined ? {} : { state: query.status }),
              ...(query.pool === undefined ? {} : { pool: query.pool }),
              ...(query.limit === undefined ? {} : { limit: query.limit }),
              ...(query.cursor === undefined ? {} : { cursor: query.cursor })
            },
            principal
          )
        ).pipe(
          Effect.map((page) => ({
            jobs: page.jobs.map(Models.job),
            ...(page.nextCursor === undefined ? {} : { next_cursor: page.nextCursor })
          })),
          mapErrors({ "$.cursor": "$query.cursor", "$.state": "$query.status" })
        )
      )
      .handle("get", ({ params }) =>
        Effect.flatMap(CurrentPrincipal, (principal) => queue.get(params.id, principal)).pipe(
          Effect.map(Models.job),
          mapErrors()
        )
      )
      .handle("claim", ({ payload }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          queue.claim(
            {
              workerId: payload.worker_id,
              queues: payload.queues,
              ...(payload.pool === undefined ? {} : { pool: payload.pool }),
              ...(payload.max === undefined ? {} : { max: payload.max }),
              ...(payload.lease_ms === undefined ? {} : { leaseMs: payload.lease_ms })
            },
            principal
          )
        ).pipe(
          Effect.map((jobs) => ({ jobs: jobs.map(Models.job) })),
          mapErrors({ "$.workerId": "$.worker_id", "$.leaseMs": "$.lease_ms" })
        )
      )
      .handle("start", ({ params, payload }) =>
        Effect.flatMap(CurrentPrincipal, (principal) => queue.start(params.id, payload.worker_id, principal)).pipe(
          Effect.map(Models.job),
          mapErrors()
        )
      )
      .handle("heartbeat", ({ params, payload }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          queue.heartbeat(params.id, payload.worker_id, payload.extend_ms ?? defaultLeaseMs, principal)
        ).pipe(Effect.map(Models.job), mapErrors({ "$.extendMs": "$.extend_ms" }))
      )
      .handle("complete", ({ params, payload }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          queue.complete(params.id, payload.worker_id, payload.result, principal)
        ).pipe(Effect.map(Models.job), mapErrors())
      )
      .handle("fail", ({ params, payload }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          queue.fail(params.id, payload.worker_id, payload.error, { retryable: payload.retryable }, principal)
        ).pipe(Effect.map(Models.job), mapErrors())
      )
      .handle("stats", ({ query }) =>
        Effect.flatMap(CurrentPrincipal, (principal) => queue.stats(query.queue, principal)).pipe(
          Effect.map(queueStats),
          mapErrors({ "$.queue": "$query.queue" })
        )
      )
      .handle("redrive", ({ params }) =>
        Effect.flatMap(CurrentPrincipal, (principal) => admin.redrive(params.id, principal)).pipe(
          Effect.map(Models.job),
          mapErrors({ "$.jobId": "$path.id" })
        )
      )
      .handle("requeueExpired", () =>
        Effect.flatMap(CurrentPrincipal, (principal) => queue.requeueExpired(principal)).pipe(
          Effect.map((jobs) => ({ requeued: jobs.length, jobs: jobs.map(Models.job) })),
          mapErrors()
        )
      )
  })
)

/**
 * @category handlers
 * @since 0.1.0
 */
export const AgentsHandlers = HttpApiBuilder.group(Api, "agents", (handlers) =>
  Effect.gen(function* () {
    const agents = yield* Agents
    const queue = yield* PublicQueue
    const remote = yield* RemoteSteps
    return handlers
      .handle("register", ({ payload }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          queue.register(
            {
              // Without an id, the agent gets one of its principal's: `<principal>.<random>`
              id: payload.agent_id ?? AgentId.make(`${principal.id}.${crypto.randomUUID().slice(0, 8)}`),
              pool: payload.pool,
              ...(payload.capabilities === undefined ? {} : { capabilities: payload.capabilities }),
              ...(payload.labels === undefined ? {} : { labels: payload.labels })
            },
            principal
          )
        ).pipe(Effect.map(Models.agent), mapErrors({ "$.id": "$.agent_id" }))
      )
      .handle("list", ({ query }) =>
        agents
          .list({
            ...(query.pool === undefined ? {} : { pool: query.pool }),
            ...(query.status === undefined ? {} : { status: query.status })
          })
          .pipe(
            Effect.map((all) => ({ agents: all.map(Models.agent) })),
            mapErrors({ "$.pool": "$query.pool", "$.status": "$query.status" })
          )
      )
      .handle("pools", () =>
        remote.pools.pipe(
          Effect.map((pools) => ({ pools: pools.map(pool) })),
          mapErrors()
        )
      )
      .handle("get", ({ params }) => agents.get(params.id).pipe(Effect.map(Models.agent), mapErrors()))
      .handle("heartbeat", ({ params, payload }) =>
        Effect.flatMap(CurrentPrincipal, (principal) => queue.agentHeartbeat(params.id, payload.load, principal)).pipe(
          Effect.map(Models.agent),
          mapErrors()
        )
      )
      .handle("deregister", ({ params }) =>
        Effect.flatMap(CurrentPrincipal, (principal) => queue.deregister(params.id, principal)).pipe(
          Effect.as({ agent_id: params.id, deregistered: true }),
          mapErrors()
        )
      )
  })
)

/**
 * Both groups.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = Layer.mergeAll(QueueHandlers, AgentsHandlers).pipe(
  Layer.provide([PublicQueue.layer, RemoteSteps.layer])
)
