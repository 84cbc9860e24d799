/**
 * The queue as principals outside the runtime see it: the rules of the public queue API (the reference server's
 * `/queue/*` and `/agents/*` routes call this, never `Queue` directly).
 *
 * - **The runtime's queues are its own.** Every queue in the `mandate.` namespace (the runtime's
 *   `mandate.steps` and `mandate.deadlines`, and any later one) is reserved: no principal — admins included —
 *   enqueues to, claims from, starts, heartbeats, completes or fails its jobs here. Only admins may read its
 *   jobs (`get`, `list`); to anyone else they do not exist (`JobNotFound`, and listings leave them out). Queue
 *   statistics are aggregates (counts, wait percentiles; no ids or payloads) and stay readable by every reader,
 *   as in `/metrics`. Since no one else can write to the runtime's queues, no one can take over one of its
 *   idempotency keys (keys are scoped per queue in every layer) nor settle a step outside the runtime.
 * - **Worker ids are owned exactly.** A worker id belongs to the principal named before its first `.`:
 *   principal `robot` acts as `robot` and `robot.<anything>`. A principal whose own id contains a `.` owns no
 *   worker id at all, so `robot.eu` can never hold a lease that `robot` could also act as. Admins act as any
 *   worker (on host queues only). The runtime's own workers register with its queues as capabilities: their
 *   registrations cannot be heartbeated, replaced or deregistered here, and no registration may name a reserved
 *   queue as a capability. A remote pool (one a remote step type is routed to) admits the registration of the
 *   agents of the principals it names only (`RemoteSteps`).
 * - **Roles** (checked here as well as on the routes): enqueue needs `submitter`; lease operations and agent
 *   registration need `agent`; reads need `agent` or `auditor`; maintenance needs `admin` (admins have every
 *   role).
 *
 * A host app embedding the core runs its own queues with `Queue` (any name outside `mandate.`) and its own
 * workers (`Worker.run`); it exposes them to outside principals through `PublicQueue`, whose rules hold for them.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option } from "effect"
import { type Agent, type AgentNotFound, type AgentRegistration, Agents, type AgentsStoreError } from "./Agents.ts"
import type { AgentId, JobId } from "./Ids.ts"
import type { InvalidInput } from "./InvalidInput.ts"
import { isReservedQueue, type Job, reservedQueuePrefix } from "./Job.ts"
import { hasRole, type Principal, type Role } from "./Principal.ts"
import {
  type ClaimRequest,
  defaultListLimit,
  type EnqueueRequest,
  type FailOptions,
  JobNotFound,
  type JobPage,
  type JobQuery,
  type LeaseLost,
  Queue,
  type QueueStats,
  type QueueStoreError
} from "./Queue.ts"
import { Forbidden } from "./Runtime.ts"
import { notServing, poolServers, StepHandlers } from "./StepHandlers.ts"

/**
 * The principal id a worker id belongs to: the part before the first `.` (or the whole id).
 *
 * @category authorization
 * @since 0.1.0
 */
export const workerOwner = (workerId: string): string => {
  const dot = workerId.indexOf(".")
  return dot < 0 ? workerId : workerId.slice(0, dot)
}

/**
 * Whether `principal` may act as `workerId`: it is the worker id's owner (`workerOwner`), or an admin. One owner
 * per worker id: `robot` owns `robot.eu`, and principal `robot.eu` owns nothing.
 *
 * @category authorization
 * @since 0.1.0
 */
export const ownsWorker = (principal: Principal, workerId: string): boolean =>
  hasRole(principal, "admin") || workerOwner(workerId) === principal.id

/**
 * Fails with `Forbidden` unless `principal` may act as `workerId` (see `ownsWorker`).
 *
 * @category authorization
 * @since 0.1.0
 */
export const requireWorker = (principal: Principal, workerId: string): Effect.Effect<void, Forbidden> =>
  ownsWorker(principal, workerId)
    ? Effect.void
    : Effect.fail(
        new Forbidden({
          principal: principal.id,
          action: `act as worker ${workerId}`,
          reason: principal.id.includes(".")
            ? "a worker id belongs to the principal named before its first '.', and this principal's id contains one"
            : `${principal.id} may act only as worker ${principal.id} or ${principal.id}.*`
        })
      )

/**
 * The queue and agent registry as seen through the public API, each operation on behalf of a principal.
 *
 * @category services
 * @since 0.1.0
 */
export class PublicQueue extends Context.Service<
  PublicQueue,
  {
    readonly enqueue: (
      request: EnqueueRequest,
      principal: Principal
    ) => Effect.Effect<Job, Forbidden | InvalidInput | QueueStoreError>
    readonly claim: (
      request: ClaimRequest,
      principal: Principal
    ) => Effect.Effect<ReadonlyArray<Job>, Forbidden | InvalidInput | QueueStoreError>
    readonly start: (
      jobId: JobId,
      workerId: AgentId,
      principal: Principal
    ) => Effect.Effect<Job, Forbidden | JobNotFound | LeaseLost | QueueStoreError>
    readonly heartbeat: (
      jobId: JobId,
      workerId: AgentId,
      extendMs: number,
      principal: Principal
    ) => Effect.Effect<Job, Forbidden | JobNotFound | LeaseLost | InvalidInput | QueueStoreError>
    readonly complete: (
      jobId: JobId,
      workerId: AgentId,
      result: unknown,
      principal: Principal
    ) => Effect.Effect<Job, Forbidden | JobNotFound | LeaseLost | InvalidInput | QueueStoreError>
    readonly fail: (
      jobId: JobId,
      workerId: AgentId,
      error: string,
      options: FailOptions | undefined,
      principal: Principal
    ) => Effect.Effect<Job, Forbidden | JobNotFound | LeaseLost | QueueStoreError>
    readonly get: (jobId: JobId, principal: Principal) => Effect.Effect<Job, Forbidden | JobNotFound | QueueStoreError>
    /** Without a queue, non-admins get the jobs of host queues only (pages may come back shorter than the limit). */
    readonly list: (
      query: JobQuery,
      principal: Principal
    ) => Effect.Effect<JobPage, Forbidden | InvalidInput | QueueStoreError>
    readonly stats: (
      queue: string | undefined,
      principal: Principal
    ) => Effect.Effect<QueueStats, Forbidden | InvalidInput | QueueStoreError>
    readonly requeueExpired: (principal: Principal) => Effect.Effect<ReadonlyArray<Job>, Forbidden | QueueStoreError>
    /** Registers an agent as one of the principal's worker ids. */
    readonly register: (
      registration: AgentRegistration & { readonly id: AgentId },
      principal: Principal
    ) => Effect.Effect<Agent, Forbidden | InvalidInput | AgentsStoreError>
    readonly agentHeartbeat: (
      agentId: AgentId,
      load: number | undefined,
      principal: Principal
    ) => Effect.Effect<Agent, Forbidden | AgentNotFound | InvalidInput | AgentsStoreError>
    readonly deregister: (
      agentId: AgentId,
      principal: Principal
    ) => Effect.Effect<void, Forbidden | AgentNotFound | AgentsStoreError>
  }
>()("@mandate/core/PublicQueue") {
  /**
   * The public rules over the `Queue` and `Agents` in context.
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layer: Layer.Layer<PublicQueue, never, Queue | Agents> = Layer.effect(
    PublicQueue,
    Effect.gen(function* () {
      // With step handlers in context, their remote pools admit only the principals they name
      const handlers = yield* Effect.serviceOption(StepHandlers)
      return makePublicQueue(
        yield* Queue,
        yield* Agents,
        Option.isSome(handlers) ? poolServers(handlers.value.all) : undefined
      )
    })
  )
}

// Listing skips reserved jobs page by page; this bounds the pages read for one answer
const MAX_LIST_PAGES = 16

const requireRole = (
  principal: Principal,
  roles: ReadonlyArray<Role>,
  action: string
): Effect.Effect<void, Forbidden> =>
  roles.some((role) => hasRole(principal, role))
    ? Effect.void
    : Effect.fail(
        new Forbidden({ principal: principal.id, action, reason: `the ${roles.join(" or ")} role is required` })
      )

const reserved = (principal: Principal, action: string, queue: string) =>
  new Forbidden({
    principal: principal.id,
    action,
    reason: `queue ${queue} is reserved for the runtime (the ${reservedQueuePrefix} namespace)`
  })

/**
 * Builds the public rules over a queue and an agent registry.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makePublicQueue = (
  queue: Queue["Service"],
  agents: Agents["Service"],
  remotePools?: ReadonlyMap<string, ReadonlySet<string>> | undefined
): PublicQueue["Service"] => {
  const mayRead = (principal: Principal, job: Job) => !isReservedQueue(job.queue) || hasRole(principal, "admin")

  // The runtime's in-process workers register with its queues as capabilities: their registrations are its own
  const notTheRuntimes = (agentId: AgentId, principal: Principal, action: string) =>
    Effect.flatMap(agents.get(agentId), (agent) => {
      const queue = agent.capabilities.find(isReservedQueue)
      return queue === undefined
        ? Effect.void
        : Effect.fail(
            new Forbidden({
              principal: principal.id,
              action,
              reason: `${agentId} is a worker of the runtime (${queue})`
            })
          )
    })

  // A lease operation: the caller must be an agent acting as one of its worker ids, on a job of a host queue (a
  // reserved queue's job answers as if it did not exist)
  const leased = <A, E>(
    jobId: JobId,
    workerId: AgentId,
    principal: Principal,
    action: string,
    operation: Effect.Effect<A, E>
  ) =>
    Effect.gen(function* () {
      yield* requireRole(principal, ["agent"], action)
      yield* requireWorker(principal, workerId)
      const job = yield* queue.get(jobId)
      if (isReservedQueue(job.queue)) {
        return yield* hasRole(principal, "admin") ? reserved(principal, action, job.queue) : new JobNotFound({ jobId })
      }
      return yield* operation
    })

  return PublicQueue.of({
    enqueue: (request, principal) =>
      Effect.gen(function* () {
        yield* requireRole(principal, ["submitter"], "enqueue jobs")
        if (typeof request?.queue === "string" && isReservedQueue(request.queue)) {
          return yield* reserved(principal, "enqueue jobs", request.queue)
        }
        return yield* queue.enqueue(request)
      }),
    claim: (request, principal) =>
      Effect.gen(function* () {
        yield* requireRole(principal, ["agent"], "claim jobs")
        yield* requireWorker(principal, request.workerId)
        const closed = (request.queues ?? []).find((q) => typeof q === "string" && isReservedQueue(q))
        if (closed !== undefined) return yield* reserved(principal, "claim jobs", closed)
        return yield* queue.claim(request)
      }),
    start: (jobId, workerId, principal) =>
      leased(jobId, workerId, principal, "start jobs", queue.start(jobId, workerId)),
    heartbeat: (jobId, workerId, extendMs, principal) =>
      leased(jobId, workerId, principal, "heartbeat jobs", queue.heartbeat(jobId, workerId, extendMs)),
    complete: (jobId, workerId, result, principal) =>
      leased(jobId, workerId, principal, "complete jobs", queue.complete(jobId, workerId, result as never)),
    fail: (jobId, workerId, error, options, principal) =>
      leased(jobId, workerId, principal, "fail jobs", queue.fail(jobId, workerId, error, options)),
    get: (jobId, principal) =>
      Effect.gen(function* () {
        yield* requireRole(principal, ["agent", "auditor"], "read jobs")
        const job = yield* queue.get(jobId)
        if (!mayRead(principal, job)) return yield* new JobNotFound({ jobId })
        return job
      }),
    list: (query, principal) =>
      Effect.gen(function* () {
        yield* requireRole(principal, ["agent", "auditor"], "list jobs")
        if (hasRole(principal, "admin")) return yield* queue.list(query)
        if (typeof query?.queue === "string") {
          if (isReservedQueue(query.queue)) return yield* reserved(principal, "list jobs", query.queue)
          return yield* queue.list(query)
        }
        // All queues: leave the runtime's jobs out. Each page asks for what is still missing, so the last page's
        // cursor is exactly where this answer stops
        const limit = query?.limit ?? defaultListLimit
        const jobs: Array<Job> = []
        let cursor = query?.cursor
        for (let page = 0; page < MAX_LIST_PAGES; page++) {
          const next = yield* queue.list({
            ...query,
            limit: limit - jobs.length,
            ...(cursor === undefined ? {} : { cursor })
          })
          for (const job of next.jobs) if (!isReservedQueue(job.queue)) jobs.push(job)
          cursor = next.nextCursor
          if (cursor === undefined || jobs.length >= limit) break
        }
        return cursor === undefined ? { jobs } : { jobs, nextCursor: cursor }
      }),
    stats: (name, principal) =>
      Effect.andThen(requireRole(principal, ["agent", "auditor"], "read queue statistics"), queue.stats(name)),
    requeueExpired: (principal) =>
      Effect.andThen(requireRole(principal, ["admin"], "requeue expired jobs"), queue.requeueExpired),
    register: (registration, principal) =>
      Effect.gen(function* () {
        yield* requireRole(principal, ["agent"], "register agents")
        yield* requireWorker(principal, registration.id)
        const reservedCapability = (registration.capabilities ?? []).find(isReservedQueue)
        if (reservedCapability !== undefined) return yield* reserved(principal, "register agents", reservedCapability)
        // A remote pool's steps go to the agents of the principals it names only: others may not even register
        const allowed = typeof registration.pool === "string" ? remotePools?.get(registration.pool) : undefined
        if (allowed !== undefined && !allowed.has(principal.id) && !hasRole(principal, "admin")) {
          return yield* new Forbidden({
            principal: principal.id,
            action: "register agents",
            reason: notServing(registration.pool, allowed)
          })
        }
        yield* notTheRuntimes(registration.id, principal, "register agents").pipe(
          Effect.catchTag("AgentNotFound", () => Effect.void)
        )
        return yield* agents.register(registration)
      }),
    agentHeartbeat: (agentId, load, principal) =>
      Effect.gen(function* () {
        yield* requireRole(principal, ["agent"], "heartbeat agents")
        yield* requireWorker(principal, agentId)
        yield* notTheRuntimes(agentId, principal, "heartbeat agents")
        return yield* load === undefined ? agents.heartbeat(agentId) : agents.heartbeat(agentId, load)
      }),
    deregister: (agentId, principal) =>
      Effect.gen(function* () {
        yield* requireRole(principal, ["agent"], "deregister agents")
        yield* requireWorker(principal, agentId)
        yield* notTheRuntimes(agentId, principal, "deregister agents")
        return yield* agents.deregister(agentId)
      })
  })
}
