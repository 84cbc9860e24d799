/**
 * Handlers of the `queue` and `agents` groups: each one call into `Queue` or `Agents`, mapped to the wire. The
 * routes map one to one onto the services, so a remote agent sees exactly the contract an in-process worker has.
 *
 * @since 0.1.0
 */
import { AgentId, Agents, defaultLeaseMs, Principal, Queue, QueueAdmin } from "@mandate/core"
import { Effect, Layer } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../api/Api.ts"
import { CurrentPrincipal } from "../api/Auth.ts"
import { Forbidden } from "../api/Errors.ts"
import { mapErrors } from "./Errors.ts"
import * as Wire from "./Wire.ts"

/**
 * Worker ids belong to principals: an agent acts only as `<principal>` or `<principal>.<anything>` (admins as
 * anyone). A job's lease names its worker, and worker ids are visible in listings, so without this any agent
 * token could complete or fail another agent's jobs.
 *
 * @category authorization
 * @since 0.1.0
 */
export const ownsWorker = (principal: Principal.Principal, workerId: string): boolean =>
  Principal.hasRole(principal, "admin") || workerId === principal.id || workerId.startsWith(`${principal.id}.`)

const asWorker = (workerId: string) =>
  Effect.flatMap(CurrentPrincipal, (principal) =>
    ownsWorker(principal, workerId)
      ? Effect.void
      : Effect.fail(
          new Forbidden({
            message: `${principal.id} may act only as worker ${principal.id} or ${principal.id}.*, not ${workerId}`,
            principal: principal.id
          })
        )
  )

const enqueueNames = {
  "$.runAt": "$.run_at",
  "$.delayMs": "$.delay_ms",
  "$.maxAttempts": "$.max_attempts",
  "$.idempotencyKey": "$.idempotency_key"
}

/**
 * @category handlers
 * @since 0.1.0
 */
export const QueueHandlers = HttpApiBuilder.group(Api, "queue", (handlers) =>
  Effect.gen(function* () {
    const queue = yield* Queue
    const admin = yield* QueueAdmin
    return handlers
      .handle("enqueue", ({ payload }) =>
        queue
          .enqueue({
            queue: payload.queue,
            payload: payload.payload,
            ...(payload.priority === undefined ? {} : { priority: payload.priority }),
            ...(payload.run_at === undefined ? {} : { runAt: payload.run_at }),
            ...(payload.delay_ms === undefined ? {} : { delayMs: payload.delay_ms }),
            ...(payload.max_attempts === undefined ? {} : { maxAttempts: payload.max_attempts }),
            ...(payload.idempotency_key === undefined ? {} : { idempotencyKey: payload.idempotency_key }),
            ...(payload.pool === undefined ? {} : { pool: payload.pool })
          })
          .pipe(Effect.map(Wire.job), mapErrors(enqueueNames))
      )
      .handle("list", ({ query }) =>
        queue
          .list({
            ...(query.queue === undefined ? {} : { queue: query.queue }),
            ...(query.status === undefined ? {} : { state: query.status }),
            ...(query.pool === undefined ? {} : { pool: query.pool }),
            ...(query.limit === undefined ? {} : { limit: query.limit }),
            ...(query.cursor === undefined ? {} : { cursor: query.cursor })
          })
          .pipe(
            Effect.map((page) => ({
              jobs: page.jobs.map(Wire.job),
              ...(page.nextCursor === undefined ? {} : { next_cursor: page.nextCursor })
            })),
            mapErrors({ "$.cursor": "$query.cursor", "$.state": "$query.status" })
          )
      )
      .handle("get", ({ params }) => queue.get(params.id).pipe(Effect.map(Wire.job), mapErrors()))
      .handle("claim", ({ payload }) =>
        asWorker(payload.worker_id).pipe(
          Effect.andThen(
            queue
              .claim({
                workerId: payload.worker_id,
                queues: payload.queues,
                ...(payload.pool === undefined ? {} : { pool: payload.pool }),
                ...(payload.max === undefined ? {} : { max: payload.max }),
                ...(payload.lease_ms === undefined ? {} : { leaseMs: payload.lease_ms })
              })
              .pipe(
                Effect.map((jobs) => ({ jobs: jobs.map(Wire.job) })),
                mapErrors({ "$.workerId": "$.worker_id", "$.leaseMs": "$.lease_ms" })
              )
          )
        )
      )
      .handle("start", ({ params, payload }) =>
        asWorker(payload.worker_id).pipe(
          Effect.andThen(queue.start(params.id, payload.worker_id).pipe(Effect.map(Wire.job), mapErrors()))
        )
      )
      .handle("heartbeat", ({ params, payload }) =>
        asWorker(payload.worker_id).pipe(
          Effect.andThen(
            queue
              .heartbeat(params.id, payload.worker_id, payload.extend_ms ?? defaultLeaseMs)
              .pipe(Effect.map(Wire.job), mapErrors({ "$.extendMs": "$.extend_ms" }))
          )
        )
      )
      .handle("complete", ({ params, payload }) =>
        asWorker(payload.worker_id).pipe(
          Effect.andThen(
            queue.complete(params.id, payload.worker_id, payload.result).pipe(Effect.map(Wire.job), mapErrors())
          )
        )
      )
      .handle("fail", ({ params, payload }) =>
        asWorker(payload.worker_id).pipe(
          Effect.andThen(
            queue
              .fail(params.id, payload.worker_id, payload.error, { retryable: payload.retryable })
              .pipe(Effect.map(Wire.job), mapErrors())
          )
        )
      )
      .handle("stats", ({ query }) =>
        queue.stats(query.queue).pipe(Effect.map(Wire.queueStats), mapErrors({ "$.queue": "$query.queue" }))
      )
      .handle("redrive", ({ params }) =>
        Effect.flatMap(CurrentPrincipal, (principal) => admin.redrive(params.id, principal)).pipe(
          Effect.map(Wire.job),
          mapErrors({ "$.jobId": "$path.id" })
        )
      )
      .handle("requeueExpired", () =>
        queue.requeueExpired.pipe(
          Effect.map((jobs) => ({ requeued: jobs.length, jobs: jobs.map(Wire.job) })),
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
    return handlers
      .handle("register", ({ payload }) =>
        Effect.flatMap(CurrentPrincipal, (principal) => {
          // Without an id, the agent gets one of its principal's: `<principal>.<random>`
          const id = payload.agent_id ?? AgentId.make(`${principal.id}.${crypto.randomUUID().slice(0, 8)}`)
          return asWorker(id).pipe(
            Effect.andThen(
              agents
                .register({
                  id,
                  pool: payload.pool,
                  ...(payload.capabilities === undefined ? {} : { capabilities: payload.capabilities }),
                  ...(payload.labels === undefined ? {} : { labels: payload.labels })
                })
                .pipe(Effect.map(Wire.agent), mapErrors({ "$.id": "$.agent_id" }))
            )
          )
        })
      )
      .handle("list", ({ query }) =>
        agents
          .list({
            ...(query.pool === undefined ? {} : { pool: query.pool }),
            ...(query.status === undefined ? {} : { status: query.status })
          })
          .pipe(
            Effect.map((all) => ({ agents: all.map(Wire.agent) })),
            mapErrors({ "$.pool": "$query.pool", "$.status": "$query.status" })
          )
      )
      .handle("pools", () =>
        agents.pools.pipe(
          Effect.map((pools) => ({ pools })),
          mapErrors()
        )
      )
      .handle("get", ({ params }) => agents.get(params.id).pipe(Effect.map(Wire.agent), mapErrors()))
      .handle("heartbeat", ({ params, payload }) =>
        asWorker(params.id).pipe(
          Effect.andThen(agents.heartbeat(params.id, payload.load).pipe(Effect.map(Wire.agent), mapErrors()))
        )
      )
      .handle("deregister", ({ params }) =>
        asWorker(params.id).pipe(
          Effect.andThen(
            agents.deregister(params.id).pipe(Effect.as({ agent_id: params.id, deregistered: true }), mapErrors())
          )
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
export const layer = Layer.mergeAll(QueueHandlers, AgentsHandlers)
