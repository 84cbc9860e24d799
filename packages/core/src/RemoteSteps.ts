/**
 * Remote steps as principals outside the runtime see them: the rules by which agents in other people's
 * infrastructure run a task's steps (the reference server's `/pools/*` and `/steps/*` routes call this).
 *
 * - **Only the pool's agents.** A step type declared remote (`remoteStep`, `asRemoteStep`) is routed to a pool;
 *   its jobs wait in the runtime's reserved queue of that pool, which `PublicQueue` closes to everyone. An agent
 *   reaches them only here: with the `agent` role, acting as one of its own worker ids (`PublicQueue.requireWorker`),
 *   registered in `/agents` in that very pool (an unregistered worker id is `AgentNotFound`), and one of the
 *   principals the pool's step types name to serve it (`principals`, `Mandate`'s `poolPrincipals`): a pool that
 *   names none is served by admins' agents only (secure by default; `PublicQueue` refuses the others' registration
 *   in it too). A claim
 *   for another pool is `Forbidden`; a lease of another pool's step does not exist for it (`JobNotFound`), and one
 *   it does not hold is `LeaseLost`.
 * - **The step, nothing more.** A claim hands over the step's decoded params, its task and step ids, the attempt,
 *   the idempotency key and the lease: never the task, its other steps or the ledger (agents read no tasks,
 *   `Access`). A step that needs approval is enqueued, so offered, only once approved.
 * - **One settle path.** `complete` and `fail` go through the runtime's settle path, exactly as an in-process
 *   handler's outcome: lease holder only, the result decoded by the step type's schema (a refused one is a failed
 *   attempt carrying the decode error), retries with backoff, dead-letter, reconcile; `step.started`,
 *   `step.succeeded` and `step.failed` name the agent's worker id and principal.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option, Schema } from "effect"
import { type AgentNotFound, Agents, type AgentsStoreError } from "./Agents.ts"
import type { AgentId, JobId, StepId } from "./Ids.ts"
import type { InvalidInput } from "./InvalidInput.ts"
import { poolQueue } from "./Job.ts"
import { hasRole, type Principal } from "./Principal.ts"
import { requireWorker } from "./PublicQueue.ts"
import { type JobNotFound, type LeaseLost, Queue, type QueueStoreError } from "./Queue.ts"
import {
  type ClaimedStep,
  Forbidden,
  type RemoteSettlement,
  Runtime,
  type StoreError,
  type TaskView
} from "./Runtime.ts"
import { notServing, poolServers, StepHandlers } from "./StepHandlers.ts"

/**
 * A pool as operators see it: the remote step types it serves, its agents by status, and its steps waiting to be
 * claimed (`waiting`) or held under a lease (`leased`).
 *
 * @category models
 * @since 0.1.0
 */
export interface PoolView {
  readonly pool: string
  readonly stepTypes: ReadonlyArray<string>
  readonly agents: number
  readonly online: number
  readonly degraded: number
  readonly offline: number
  readonly waiting: number
  readonly leased: number
}

/**
 * A remote step type as its pool's agents need it: the JSON Schemas (draft 2020-12) its params are decoded by, and
 * its result must decode by.
 *
 * @category models
 * @since 0.1.0
 */
export interface RemoteStepType {
  readonly type: string
  readonly description?: string | undefined
  readonly paramsSchema: Schema.Json
  readonly resultSchema: Schema.Json
}

/**
 * No pool of this name: it serves no remote step type and has no agent.
 *
 * @category errors
 * @since 0.1.0
 */
export class PoolNotFound extends Schema.TaggedError<PoolNotFound>()("PoolNotFound", { pool: Schema.String }) {
  override get message(): string {
    return `No pool ${this.pool}`
  }
}

/**
 * A standalone JSON Schema (draft 2020-12) of a schema's encoded (wire) form, with its definitions inline.
 *
 * @category computations
 * @since 0.1.0
 */
export const jsonSchemaOf = (schema: Schema.Top): Schema.Json => {
  const document = Schema.toJsonSchemaDocument(schema)
  const definitions = Object.keys(document.definitions).length === 0 ? {} : { $defs: document.definitions }
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    ...(document.schema as object),
    ...definitions
  } as Schema.Json
}

/**
 * A queued remote step whose pool has no online agent: it waits until one comes.
 *
 * @category models
 * @since 0.1.0
 */
export interface StalledStep {
  readonly stepId: StepId
  readonly pool: string
}

/**
 * What a lease operation needs: the worker holding the lease, acting for the principal.
 *
 * @category models
 * @since 0.1.0
 */
export interface LeaseRef {
  readonly leaseId: JobId
  readonly workerId: AgentId
}

type LeaseError = Forbidden | AgentNotFound | JobNotFound | LeaseLost | InvalidInput | AgentsStoreError | StoreError

/**
 * @category services
 * @since 0.1.0
 */
export class RemoteSteps extends Context.Service<
  RemoteSteps,
  {
    /** Claims up to `max` steps of `pool` for `workerId`, an agent of that pool. */
    readonly claim: (
      pool: string,
      request: {
        readonly workerId: AgentId
        readonly max?: number | undefined
        readonly leaseMs?: number | undefined
        /** With none ready, wait up to this long (ms) for one. */
        readonly waitMs?: number | undefined
        /** Ends the wait early (answering what is claimed, maybe nothing): e.g. the server's shutdown. */
        readonly until?: Effect.Effect<void> | undefined
      },
      principal: Principal
    ) => Effect.Effect<
      ReadonlyArray<ClaimedStep>,
      Forbidden | AgentNotFound | InvalidInput | AgentsStoreError | StoreError
    >
    /** Extends the lease to now + `extendMs`; answers when it now expires. */
    readonly heartbeat: (lease: LeaseRef, extendMs: number, principal: Principal) => Effect.Effect<number, LeaseError>
    readonly complete: (
      lease: LeaseRef,
      result: unknown,
      principal: Principal
    ) => Effect.Effect<RemoteSettlement, LeaseError>
    readonly fail: (
      lease: LeaseRef,
      failure: { readonly message: string; readonly retryable?: boolean | undefined },
      principal: Principal
    ) => Effect.Effect<RemoteSettlement, LeaseError>
    /** A pool with the JSON Schemas of the step types it serves. */
    readonly pool: (
      pool: string
    ) => Effect.Effect<
      PoolView & { readonly types: ReadonlyArray<RemoteStepType> },
      PoolNotFound | AgentsStoreError | InvalidInput | QueueStoreError
    >
    /** Every pool that has agents or serves remote step types, by name. */
    readonly pools: Effect.Effect<ReadonlyArray<PoolView>, AgentsStoreError | InvalidInput | QueueStoreError>
    /** The task's queued remote steps whose pool has no online agent. */
    readonly stalled: (view: TaskView) => Effect.Effect<ReadonlyArray<StalledStep>, AgentsStoreError | InvalidInput>
  }
>()("@mandate/core/RemoteSteps") {
  /**
   * The rules over the runtime, the agent registry, the queue (for pool statistics) and the step declarations.
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layer: Layer.Layer<RemoteSteps, never, Runtime | Agents | Queue | StepHandlers> = Layer.effect(
    RemoteSteps,
    Effect.gen(function* () {
      const runtime = yield* Runtime
      const agents = yield* Agents
      const queue = yield* Queue
      const handlers = yield* StepHandlers

      const servedBy = new Map<string, Array<string>>()
      const poolOfType = new Map<string, string>()
      // A remote pool is served by the agents of the principals its step types name only (none named: admins')
      const principalsOf = poolServers(handlers.all)
      for (const h of handlers.all) {
        if (h.pool === undefined) continue
        poolOfType.set(h.type, h.pool)
        servedBy.set(h.pool, [...(servedBy.get(h.pool) ?? []), h.type])
      }

      /** The registered agent the principal acts as: an agent of its own, with the `agent` role. */
      const agentOf = (workerId: AgentId, principal: Principal, action: string) =>
        Effect.gen(function* () {
          if (!hasRole(principal, "agent")) {
            return yield* new Forbidden({ principal: principal.id, action, reason: "the agent role is required" })
          }
          yield* requireWorker(principal, workerId)
          // An agent unknown to the registry has no pool, so no steps: it registers in its pool first
          const agent = yield* agents.get(workerId)
          const allowed = principalsOf.get(agent.pool)
          if (allowed !== undefined && !allowed.has(principal.id) && !hasRole(principal, "admin")) {
            return yield* new Forbidden({ principal: principal.id, action, reason: notServing(agent.pool, allowed) })
          }
          return agent
        })

      const typesOf = new Map<string, ReadonlyArray<RemoteStepType>>()
      for (const h of handlers.all) {
        if (h.pool === undefined) continue
        typesOf.set(h.pool, [
          ...(typesOf.get(h.pool) ?? []),
          {
            type: h.type,
            ...(h.description === undefined ? {} : { description: h.description }),
            paramsSchema: jsonSchemaOf(h.params),
            resultSchema: jsonSchemaOf(h.result)
          }
        ])
      }

      const pools = Effect.gen(function* () {
        const registered = yield* agents.pools
        const names = [...new Set([...registered.map((p) => p.pool), ...servedBy.keys()])].sort()
        return yield* Effect.forEach(names, (pool) =>
          Effect.gen(function* () {
            const summary = registered.find((p) => p.pool === pool)
            const served = servedBy.get(pool) ?? []
            const stats = served.length === 0 ? undefined : yield* queue.stats(poolQueue(pool))
            const pending = stats?.pendingByPriority
            return {
              pool,
              stepTypes: [...served].sort(),
              agents: summary?.agents ?? 0,
              online: summary?.online ?? 0,
              degraded: summary?.degraded ?? 0,
              offline: summary?.offline ?? 0,
              waiting: pending === undefined ? 0 : pending.critical + pending.high + pending.normal + pending.low,
              leased: stats === undefined ? 0 : stats.byState.claimed + stats.byState.running
            }
          })
        )
      })

      return RemoteSteps.of({
        claim: (pool, request, principal) =>
          Effect.gen(function* () {
            const agent = yield* agentOf(request.workerId, principal, `claim steps of pool ${pool}`)
            if (agent.pool !== pool) {
              return yield* new Forbidden({
                principal: principal.id,
                action: `claim steps of pool ${pool}`,
                reason: `${agent.id} is an agent of pool ${agent.pool}`
              })
            }
            // A claiming agent is alive: its claims count as heartbeats
            yield* agents.heartbeat(agent.id).pipe(Effect.ignore)
            return yield* runtime.remote.claim(pool, agent.id, {
              max: request.max,
              leaseMs: request.leaseMs,
              waitMs: request.waitMs,
              until: request.until,
              principal
            })
          }),
        heartbeat: (lease, extendMs, principal) =>
          Effect.flatMap(agentOf(lease.workerId, principal, "heartbeat steps"), (agent) =>
            runtime.remote.heartbeat(agent.pool, lease.leaseId, agent.id, extendMs)
          ),
        complete: (lease, result, principal) =>
          Effect.flatMap(agentOf(lease.workerId, principal, "complete steps"), (agent) =>
            runtime.remote.complete(agent.pool, lease.leaseId, agent.id, result, principal)
          ),
        fail: (lease, failure, principal) =>
          Effect.flatMap(agentOf(lease.workerId, principal, "fail steps"), (agent) =>
            runtime.remote.fail(agent.pool, lease.leaseId, agent.id, failure, principal)
          ),
        pools,
        pool: (name) =>
          Effect.flatMap(pools, (all) => {
            const found = all.find((p) => p.pool === name)
            return found === undefined
              ? Effect.fail(new PoolNotFound({ pool: name }))
              : Effect.succeed({ ...found, types: typesOf.get(name) ?? [] })
          }),
        stalled: (view) =>
          Effect.gen(function* () {
            const out: Array<StalledStep> = []
            const online = new Map<string, boolean>()
            for (const step of view.steps) {
              const pool = poolOfType.get(step.type)
              if (pool === undefined || step.state !== "queued") continue
              let live = online.get(pool)
              if (live === undefined) {
                live = Option.isSome(Option.fromNullishOr((yield* agents.list({ pool, status: "online" }))[0]))
                online.set(pool, live)
              }
              if (!live) out.push({ stepId: step.id, pool })
            }
            return out
          })
      })
    })
  )
}
