/**
 * The runtime: governed, durable task execution.
 *
 * `start` plans a task, records the plan and every policy decision in the ledger, refuses denied plans, and
 * enqueues the steps whose dependencies are done. Workers (a `Worker` pool over the `Queue`) run steps through
 * their `StepHandlers`; every start, success and failure is a ledger entry. Steps that need approval wait in
 * the task store — no worker or fiber is held — until enough distinct approvers (never the requester) grant
 * them, or a rejection or the approval deadline (a delayed job, so it survives restarts) ends the task.
 *
 * Every transition reads the task record, decides with the pure task flow (internal/taskFlow.ts) and writes the
 * record (compare-and-set on its version), the jobs and the ledger entries in one `UnitOfWork`. A runtime built
 * over stores holding unfinished tasks resumes them: queued work is still in the queue, expired leases come
 * back, and `reconcile` re-schedules anything a crash between stores left behind (job idempotency keys make
 * that safe).
 *
 * @since 0.1.0
 */
import { Cause, Clock, Context, Duration, Effect, Layer, Option, PubSub, Schema, type Scope, Stream } from "effect"
import * as Access from "./Access.ts"
import * as Canonical from "./Canonical.ts"
import { type AgentId, type JobId, makeTaskId, type StepId, TaskId } from "./Ids.ts"
import { decode, decodeResult, InvalidInput } from "./InvalidInput.ts"
import * as Deadlines from "./internal/deadlines.ts"
import * as Reconcile from "./internal/reconcile.ts"
import * as Remote from "./internal/remoteExecution.ts"
import * as StepRunner from "./internal/stepRunner.ts"
import * as Flow from "./internal/taskFlow.ts"
import * as Transitions from "./internal/transitions.ts"
import { isReservedPool, isReservedQueue, type Job, poolQueue, QueueName, reservedQueuePrefix } from "./Job.ts"
import { Ledger } from "./Ledger.ts"
import type { LedgerStoreError } from "./LedgerStore.ts"
import type { Plan } from "./Plan.ts"
import { type PlanError, Planner, UnknownStepType } from "./Planner.ts"
import { hasRole, Principal } from "./Principal.ts"
import { type JobNotFound, type LeaseLost, Queue, type QueueStoreError } from "./Queue.ts"
import type { Step } from "./Step.ts"
import { StepHandlers } from "./StepHandlers.ts"
import type { IllegalTransition } from "./Task.ts"
import { type Task, TaskRequest, type TaskState } from "./Task.ts"
import { readRecord } from "./TaskAccess.ts"
import {
  PlanNotFound,
  type TaskFilter,
  TaskNotFound,
  type TaskPage,
  type TaskRecord,
  TaskStore,
  TaskStoreError,
  type VersionConflict
} from "./TaskStore.ts"
import * as TaskTrace from "./TaskTrace.ts"
import { UnitOfWork, type UnitOfWorkError } from "./UnitOfWork.ts"
import * as Worker from "./Worker.ts"

export { ApprovalForbidden, StepNotFound } from "./internal/taskFlow.ts"

// ---------------------------------------------------------------------------------------------------------
// Models and errors
// ---------------------------------------------------------------------------------------------------------

/**
 * A task with everything about it: plan, steps with states, attempts and results, approvals.
 *
 * @category models
 * @since 0.1.0
 */
export interface TaskView {
  readonly task: Task
  readonly plan: Plan
  readonly steps: ReadonlyArray<Step>
  readonly approvals: TaskRecord["approvals"]
}

/**
 * A live event about a task: each ledger entry the runtime writes, plus scheduling news (`step.queued`,
 * `step.waiting_approval`, `task.running`, `task.waiting_approval`). Events are published once the transition
 * that caused them has committed, so whatever an event tells of can be read. A task's stream (`events(taskId)`)
 * opens with a `task.snapshot` event (seq 0): the task as it was when the stream opened.
 *
 * @category models
 * @since 0.1.0
 */
export const TaskEvent = Schema.Struct({
  /** Increases by one per event in this process (0 for a snapshot). */
  seq: Schema.Int,
  taskId: TaskId,
  kind: Schema.String,
  stepId: Schema.optionalKey(Schema.String),
  /** The task's state after the transition. */
  state: Schema.String,
  /** The task record's version after the transition (events of one transition share it). */
  version: Schema.Int,
  at: Schema.Number,
  data: Schema.optionalKey(Schema.Json)
})
export type TaskEvent = typeof TaskEvent.Type

/**
 * What an outbox (`Runtime.outbox`) is given: a transition's events (without `seq`, given at publication), inside
 * its unit of work.
 *
 * @category models
 * @since 0.1.0
 */
export type OutboxStage = (events: ReadonlyArray<Omit<TaskEvent, "seq">>) => Effect.Effect<void, StoreError>

/**
 * A remote step as offered to the agent that claimed it: the step's params (decoded by its declaration's schema,
 * then encoded as JSON), where it belongs, the attempt, the idempotency key (the same for every attempt and retry
 * of the step: pass it to whatever the step acts on) and the lease (`leaseId`, held by `workerId` until
 * `leaseExpiresAt`).
 *
 * @category models
 * @since 0.1.0
 */
export interface ClaimedStep {
  readonly leaseId: JobId
  readonly workerId: AgentId
  readonly leaseExpiresAt: number
  readonly taskId: TaskId
  readonly stepId: StepId
  readonly type: string
  readonly attempt: number
  readonly idempotencyKey: string
  readonly params: Schema.Json
}

/**
 * How a remote attempt was settled: `succeeded`, `retrying` (a failed attempt the queue retries with backoff) or
 * `failed` (no attempt left, not retryable, or a result the step type's schema refused: `error` says why).
 *
 * @category models
 * @since 0.1.0
 */
export interface RemoteSettlement {
  readonly leaseId: JobId
  readonly taskId: TaskId
  readonly stepId: StepId
  readonly outcome: "succeeded" | "retrying" | "failed"
  readonly error?: string | undefined
}

/**
 * The runtime's side of remote steps, for the host (no authorization here: `RemoteSteps` applies the rules for
 * principals). Each operation names the pool it acts for; a lease of another pool's step is `JobNotFound`.
 *
 * @category models
 * @since 0.1.0
 */
export interface RemoteExecution {
  /** Claims up to `max` (default 1) steps of the pool, each leased to `workerId` for `leaseMs`, recorded as started. */
  readonly claim: (
    pool: string,
    workerId: AgentId,
    options?: {
      readonly max?: number | undefined
      readonly leaseMs?: number | undefined
      /**
       * With none ready, wait up to this long (ms) for one (the queue's wake-ups, else a poll a second), so idle
       * agents need not poll. Default 0: answer at once.
       */
      readonly waitMs?: number | undefined
      /** Recorded on `step.started` as the entry's principal. */
      readonly principal?: Principal | undefined
      /** Ends the wait early (answering what is claimed, maybe nothing): e.g. the server's shutdown. */
      readonly until?: Effect.Effect<void> | undefined
    }
  ) => Effect.Effect<ReadonlyArray<ClaimedStep>, InvalidInput | StoreError>
  /** Extends the lease to now + `extendMs`; answers when it now expires. */
  readonly heartbeat: (
    pool: string,
    leaseId: JobId,
    workerId: AgentId,
    extendMs: number
  ) => Effect.Effect<number, JobNotFound | LeaseLost | InvalidInput | StoreError>
  /** Settles the attempt with the step's result (decoded by the declaration's result schema, else a failed attempt). */
  readonly complete: (
    pool: string,
    leaseId: JobId,
    workerId: AgentId,
    result: unknown,
    principal?: Principal
  ) => Effect.Effect<RemoteSettlement, JobNotFound | LeaseLost | InvalidInput | StoreError>
  /** Settles the attempt as failed: retried with backoff while attempts remain, unless `retryable` is false. */
  readonly fail: (
    pool: string,
    leaseId: JobId,
    workerId: AgentId,
    failure: { readonly message: string; readonly retryable?: boolean | undefined },
    principal?: Principal
  ) => Effect.Effect<RemoteSettlement, JobNotFound | LeaseLost | InvalidInput | StoreError>
}

/**
 * The plan was denied by policy. The task exists, in state `rejected`, with the plan and decisions recorded.
 *
 * @category errors
 * @since 0.1.0
 */
export class TaskRejected extends Schema.TaggedError<TaskRejected>()("TaskRejected", {
  taskId: Schema.String,
  planId: Schema.String,
  reasons: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `Task ${this.taskId} rejected by policy: ${this.reasons.join("; ")}`
  }
}

/**
 * `execute` refused a stored plan: planned again now it would not be the same plan, so running it would be a
 * silent re-plan. `reason` says what changed since the dry run: the active policy version (`policy_changed`), the
 * steps the templates produce (`plan_changed`), or a step's decision (`decisions_changed`, e.g. another principal
 * or a time window). Plan again and review.
 *
 * @category errors
 * @since 0.1.0
 */
export class PlanStale extends Schema.TaggedError<PlanStale>()("PlanStale", {
  planId: Schema.String,
  reason: Schema.Literals(["policy_changed", "plan_changed", "decisions_changed"]),
  expected: Schema.String,
  found: Schema.String
}) {
  override get message(): string {
    const what =
      this.reason === "policy_changed"
        ? `the active policy changed (planned under ${this.expected.slice(0, 12)}…, now ${this.found.slice(0, 12)}…)`
        : this.reason === "plan_changed"
          ? `the templates now plan it differently (hash ${this.expected.slice(0, 12)}…, now ${this.found.slice(0, 12)}…)`
          : `a decision changed (${this.expected}, now ${this.found})`
    return `Plan ${this.planId} is stale: ${what}; plan again`
  }
}

/**
 * The principal may not do this (missing role, not the requester).
 *
 * @category errors
 * @since 0.1.0
 */
export class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", {
  principal: Schema.String,
  action: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.principal} may not ${this.action}: ${this.reason}`
  }
}

/**
 * Failures of the stores under the runtime, and a write race lost too many times in a row (`VersionConflict`).
 *
 * @category errors
 * @since 0.1.0
 */
export type StoreError = TaskStoreError | QueueStoreError | LedgerStoreError | UnitOfWorkError | VersionConflict

/**
 * @category models
 * @since 0.1.0
 */
export interface RuntimeOptions {
  /**
   * Queue of step jobs (default `mandate.steps`). It must be in the reserved `mandate.` namespace, which
   * `PublicQueue` closes to everyone outside the runtime: no one else enqueues, claims or settles step jobs.
   */
  readonly stepsQueue?: string | undefined
  /** Queue of approval deadlines (default `mandate.deadlines`; in the `mandate.` namespace too). */
  readonly deadlinesQueue?: string | undefined
  /** Run workers in this process (default true). A process that only serves the API can set false. */
  readonly workers?: boolean | undefined
  /** Steps run at once by this process's worker (default 16). */
  readonly concurrency?: number | undefined
  /** Attempts per step before it fails (default 5). */
  readonly maxAttempts?: number | undefined
  /** Lease per step attempt in ms (default 30,000); heartbeats keep it while the handler runs. */
  readonly leaseMs?: number | undefined
  /** Heartbeat interval in ms (default a third of the lease). Cancellation reaches a running handler within it. */
  readonly heartbeatIntervalMs?: number | undefined
  /** Idle poll interval of the worker in ms (default 1,000; enqueues wake workers sooner). */
  readonly pollIntervalMs?: number | undefined
  /** How long a stopping runtime lets running steps finish before interrupting them and releasing their jobs. */
  readonly shutdownGraceMs?: number | undefined
  /**
   * This process's worker id, the lease holder named in the queue and in `step.started` entries (default: a
   * generated `worker_…` id). Give each process its own: two workers sharing an id would share leases.
   */
  readonly workerId?: string | undefined
  /** The worker's pool, when step jobs are routed to pools. */
  readonly pool?: string | undefined
  /** Resume unfinished tasks when the runtime starts (default true). */
  readonly reconcileOnStart?: boolean | undefined
  /**
   * How often (ms) unfinished tasks are checked against their jobs, settling any step whose job finished
   * unheard (default 60,000; 0 turns it off).
   */
  readonly reconcileIntervalMs?: number | undefined
}

/**
 * @category services
 * @since 0.1.0
 */
export class Runtime extends Context.Service<
  Runtime,
  {
    /** Plans and starts a task. A request with an idempotency key already used by this principal returns that task. */
    readonly start: (
      request: unknown,
      principal: Principal
    ) => Effect.Effect<Task, InvalidInput | Forbidden | TaskRejected | PlanError | StoreError>
    /** Plans without executing (a dry run with every policy decision); the plan is stored for `execute`. */
    readonly plan: (
      request: unknown,
      principal: Principal
    ) => Effect.Effect<Plan, InvalidInput | Forbidden | PlanError | StoreError>
    /**
     * Starts a task that runs exactly a stored plan: the task is planned again and must come out the same (policy
     * version, hash, every decision), else `PlanStale` and nothing starts.
     */
    readonly execute: (
      planId: string,
      principal: Principal
    ) => Effect.Effect<
      Task,
      InvalidInput | Forbidden | TaskRejected | PlanError | PlanNotFound | PlanStale | StoreError
    >
    /**
     * A stored plan. With a principal, only one it may read (`Access.canReadPlan`); any other is `PlanNotFound`.
     * Every read below likewise takes the principal it answers for: a task it may not read (`Access`) is
     * `TaskNotFound`, exactly like a missing one. Without a principal the read is the host's own, unrestricted.
     */
    readonly getPlan: (
      planId: string,
      principal?: Principal
    ) => Effect.Effect<Plan, PlanNotFound | InvalidInput | StoreError>
    readonly approve: (
      taskId: string,
      principal: Principal,
      options?: { readonly stepId?: string | undefined; readonly comment?: string | undefined }
    ) => Effect.Effect<TaskView, DecisionError>
    readonly reject: (
      taskId: string,
      principal: Principal,
      options?: { readonly stepId?: string | undefined; readonly comment?: string | undefined }
    ) => Effect.Effect<TaskView, DecisionError>
    /** Cancels a task: queued jobs are withdrawn, running handlers interrupted. Requester or admin. */
    readonly cancel: (
      taskId: string,
      principal: Principal,
      reason?: string
    ) => Effect.Effect<TaskView, TaskNotFound | Forbidden | IllegalTransition | InvalidInput | StoreError>
    /** Re-runs a failed task from its failed steps. Requester or admin. */
    readonly retry: (
      taskId: string,
      principal: Principal
    ) => Effect.Effect<TaskView, TaskNotFound | Forbidden | IllegalTransition | InvalidInput | StoreError>
    readonly get: (
      taskId: string,
      principal?: Principal
    ) => Effect.Effect<TaskView, TaskNotFound | InvalidInput | StoreError>
    /** Tasks newest first; with a principal, only those it may read (filtered by the store, so pages stay full). */
    readonly list: (filter?: TaskFilter, principal?: Principal) => Effect.Effect<TaskPage, StoreError>
    /**
     * Events of every task, live, for the life of the scope: what is published after the effect runs.
     */
    readonly events: {
      (): Effect.Effect<Stream.Stream<TaskEvent>, never, Scope.Scope>
      /**
       * Events of one task: a `task.snapshot` (the task now, with `data.steps`), then every later event. No
       * transition falls between the two, so a subscriber never misses what happened before it subscribed.
       */
      (
        taskId: string,
        principal?: Principal
      ): Effect.Effect<Stream.Stream<TaskEvent>, TaskNotFound | InvalidInput | StoreError, Scope.Scope>
    }
    /**
     * The task now and the events of every later transition (those the view does not show yet), for the life of
     * the scope.
     */
    readonly watch: (
      taskId: string,
      principal?: Principal
    ) => Effect.Effect<
      { readonly view: TaskView; readonly events: Stream.Stream<TaskEvent> },
      TaskNotFound | InvalidInput | StoreError,
      Scope.Scope
    >
    /**
     * Registers an outbox for the life of the scope: `stage` runs inside the unit of work of every transition
     * with the events the transition will publish once it commits, so what it writes through the unit's stores
     * (jobs on the queue) commits with the transition or not at all; its failure fails the transition.
     * `Webhooks` enqueues its deliveries so.
     */
    readonly outbox: (stage: OutboxStage) => Effect.Effect<void, never, Scope.Scope>
    /** Re-schedules what unfinished tasks are owed (run on start; safe to run again). */
    readonly reconcile: Effect.Effect<number, StoreError | InvalidInput>
    /** Remote steps: claimed and settled by the agents of their pool (through `RemoteSteps`), settled here. */
    readonly remote: RemoteExecution
  }
>()("@mandate/core/Runtime") {
  /**
   * The runtime over its stores. Requires `TaskStore`, `Queue`, `Ledger`, `Planner`, `StepHandlers` and
   * `UnitOfWork`; runs a worker in the layer's scope unless `workers: false`.
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layer = (
    options?: RuntimeOptions
  ): Layer.Layer<
    Runtime,
    InvalidInput | StoreError,
    TaskStore | Queue | Ledger | Planner | StepHandlers | UnitOfWork
  > => Layer.effect(Runtime, make(options))
}

/**
 * Everything approving or rejecting can fail with.
 *
 * @category errors
 * @since 0.1.0
 */
export type DecisionError =
  | TaskNotFound
  | Flow.ApprovalForbidden
  | Flow.StepNotFound
  | IllegalTransition
  | InvalidInput
  | StoreError

// ---------------------------------------------------------------------------------------------------------
// Implementation
// ---------------------------------------------------------------------------------------------------------

const decodeTaskId = decode(TaskId, "$.taskId")
// Without a fiber: every start decodes both (the same checks, issues and paths as `decode`)
const principalResult = decodeResult(Principal, "$.principal")
const requestResult = decodeResult(TaskRequest)
const decodePrincipal = (input: unknown): Effect.Effect<Principal, InvalidInput> =>
  Effect.fromResult(principalResult(input))
const decodeRequest = (input: unknown): Effect.Effect<TaskRequest, InvalidInput> =>
  Effect.fromResult(requestResult(input))

const make = Effect.fnUntraced(function* (options?: RuntimeOptions) {
  const store = yield* TaskStore
  const queue = yield* Queue
  const ledger = yield* Ledger
  const planner = yield* Planner
  const handlers = yield* StepHandlers
  const uow = yield* UnitOfWork
  const context = yield* Effect.context<TaskStore | Queue | Ledger | UnitOfWork>()

  const stepsQueue = options?.stepsQueue ?? "mandate.steps"
  const deadlinesQueue = options?.deadlinesQueue ?? "mandate.deadlines"
  for (const [path, name] of [
    ["$.stepsQueue", stepsQueue],
    ["$.deadlinesQueue", deadlinesQueue]
  ] as const) {
    if (!isReservedQueue(name)) {
      return yield* InvalidInput.at(path, `Expected a queue in the reserved ${reservedQueuePrefix} namespace`)
    }
  }
  // A remote step type's jobs go to its pool's reserved queue; the name must be a queue name
  const queueOfType = new Map<string, string>()
  for (const h of handlers.all) {
    if (h.pool === undefined) continue
    const name = poolQueue(h.pool)
    if (isReservedPool(h.pool)) {
      return yield* InvalidInput.at(
        `$.handlers[${JSON.stringify(h.type)}].pool`,
        `Expected a pool outside the runtime's (default, ${reservedQueuePrefix}*)`
      )
    }
    if (!Schema.is(QueueName)(name)) {
      return yield* InvalidInput.at(
        `$.handlers[${JSON.stringify(h.type)}].pool`,
        "Expected a pool name of at most 51 characters"
      )
    }
    queueOfType.set(h.type, name)
  }
  const maxAttempts = options?.maxAttempts ?? 5

  const transitions = yield* Transitions.make({
    store,
    queue,
    ledger,
    uow,
    stepsQueue,
    deadlinesQueue,
    queueOfType,
    maxAttempts,
    pool: options?.pool
  })
  const { hub, outboxes, mustGet, transact, view } = transitions
  const runner = StepRunner.make({ transitions, handlers, ledger })
  const { runStep, settleStep } = runner
  const remote = Remote.make({ store, queue, uow, handlers, transitions, runner })
  const runDeadline = Deadlines.make(transitions)
  const { reconcile, reconcileWith } = Reconcile.make({ store, queue, transitions, runner })

  // ---- starting tasks -------------------------------------------------------------------------------------

  const requireRole = (principal: Principal, role: "submitter", action: string) =>
    hasRole(principal, role)
      ? Effect.void
      : Effect.fail(new Forbidden({ principal: principal.id, action, reason: `the ${role} role is required` }))

  /** Every step type in a plan must have a handler, or the task could never finish. */
  const checkHandlers = (plan: Plan) => {
    const missing = plan.steps.find((s) => Option.isNone(handlers.get(s.type)))
    return missing === undefined
      ? Effect.void
      : Effect.fail(new UnknownStepType({ step: missing.id, type: missing.type }))
  }

  const launch = (
    task: Task,
    plan: Plan,
    principal: Principal
  ): Effect.Effect<Task, TaskRejected | StoreError | InvalidInput> =>
    Effect.gen(function* () {
      const { transition, denied } = Flow.open(task, plan, principal)
      const created = yield* uow.run(
        Effect.gen(function* () {
          // Create first: a lost idempotency race fails here, before any job or entry is written
          yield* store.create(transition.record, plan)
          const applied = yield* transitions.apply(transition.record, transition, task.createdAt, true)
          yield* uow.afterCommit(
            Effect.andThen(transitions.remember(applied.record), transitions.publish(applied.events))
          )
          return applied.record
        })
      )
      if (denied.length > 0) return yield* new TaskRejected({ taskId: task.id, planId: plan.id, reasons: denied })
      // The task as this call committed it, not read back
      return created.task
    }).pipe(
      Effect.catchTag("TaskExists", (e) =>
        // Lost a race on the same idempotency key: the other request's task is the answer
        Effect.map(mustGet(TaskId.make(e.existing)), (r) => r.task)
      ),
      Effect.catchTag("TaskNotFound", (cause) => Effect.fail(new TaskStoreError({ operation: "save", cause })))
    )

  const newTask = <E = never>(
    request: TaskRequest,
    principal: Principal,
    planned: (taskId: TaskId) => Effect.Effect<Plan, PlanError | StoreError | E, never>
  ) =>
    Effect.gen(function* () {
      if (request.idempotencyKey !== undefined) {
        const existing = yield* store.findByIdempotencyKey(principal.id, request.idempotencyKey)
        if (Option.isSome(existing)) return (yield* mustGet(existing.value)).task
      }
      const id = yield* makeTaskId
      // A plan with denied steps is planned like any other: the opening transition records it as rejected
      const accepted = yield* planned(id).pipe(
        TaskTrace.span("Planner.plan", { attributes: { "mandate.task.kind": request.kind } })
      )
      yield* checkHandlers(accepted)
      const now = yield* Clock.currentTimeMillis
      const trace = yield* TaskTrace.capture
      // Built field by field (a literal with a conditional spread in the middle is ~10× slower in V8), in the
      // field order a task has always had
      const task: { -readonly [K in keyof Task]?: Task[K] } = {
        id,
        kind: request.kind,
        params: accepted.params,
        priority: request.priority ?? "normal"
      }
      if (request.idempotencyKey !== undefined) task.idempotencyKey = request.idempotencyKey
      task.requestedBy = principal
      task.state = "planning"
      task.planId = accepted.id
      task.policyVersion = accepted.policyVersion
      task.reasons = []
      task.gated = Access.isGated(accepted)
      if (trace !== undefined) task.trace = trace
      task.createdAt = now
      task.updatedAt = now
      task.version = 0
      return yield* launch(task as Task, accepted, principal)
    })

  const start = Effect.fn("Runtime.start")(function* (input: unknown, principalInput: Principal) {
    const principal = yield* decodePrincipal(principalInput)
    yield* requireRole(principal, "submitter", "start tasks")
    const request = yield* decodeRequest(input)
    return yield* newTask(request, principal, (taskId) =>
      planner.plan({ kind: request.kind, params: request.params, principal, taskId })
    )
  })

  const dryRun = Effect.fn("Runtime.plan")(function* (input: unknown, principalInput: Principal) {
    const principal = yield* decodePrincipal(principalInput)
    yield* requireRole(principal, "submitter", "plan tasks")
    const request = yield* decodeRequest(input)
    const plan = yield* planner.plan({ kind: request.kind, params: request.params, principal })
    // The asker is recorded: a dry run's plan is readable by it (and auditors) only
    const owned: Plan = { ...plan, requestedBy: principal.id }
    yield* store.putPlan(owned)
    return owned
  })

  const execute = Effect.fn("Runtime.execute")(function* (planId: string, principalInput: Principal) {
    const principal = yield* decodePrincipal(principalInput)
    yield* requireRole(principal, "submitter", "start tasks")
    const stored = yield* readPlan(planId, principal)
    const request: TaskRequest = { kind: stored.kind, params: stored.params }
    // A model's proposal keeps its provenance (`plan.proposed`) when the re-plan is of the very same params
    const withOrigin = (plan: Plan): Plan =>
      stored.proposedBy !== undefined && Canonical.hash(plan.params) === Canonical.hash(stored.params)
        ? { ...plan, proposedBy: stored.proposedBy }
        : plan
    // Planned again for the task under the active policy, it must be the plan the caller reviewed: anything else
    // would run a plan nobody saw
    const same = (replanned: Plan) => {
      const stale = staleness(stored, replanned)
      return stale === undefined ? Effect.void : Effect.fail(new PlanStale({ planId: stored.id, ...stale }))
    }
    return yield* newTask(request, principal, (taskId) =>
      planner
        .plan({ kind: stored.kind, params: stored.params, principal, taskId })
        .pipe(Effect.tap(same), Effect.map(withOrigin))
    )
  })

  // ---- reading as a principal ------------------------------------------------------------------------------

  /** A plan `principal` may read (`Access.canReadPlan`), else `PlanNotFound` as for a missing one. */
  const readPlan = (planId: string, principal: Principal | undefined) =>
    Effect.gen(function* () {
      const plan = yield* store.getPlan(planId as Plan["id"])
      if (principal === undefined) return plan
      const task =
        plan.taskId === undefined
          ? undefined
          : yield* Effect.map(readRecordAs(plan.taskId, principal), (r) => r.task).pipe(
              Effect.catchTag("TaskNotFound", () => Effect.fail(new PlanNotFound({ planId })))
            )
      if (!Access.canReadPlan(principal, plan, task)) return yield* new PlanNotFound({ planId })
      return plan
    })

  const readRecordAs = (taskId: TaskId, principal: Principal) =>
    readRecord(taskId, principal).pipe(Effect.provideService(TaskStore, store))
  const readAs = (taskId: TaskId, principal: Principal | undefined) =>
    principal === undefined ? store.get(taskId) : readRecordAs(taskId, principal)

  /** Acting on a task starts with seeing it: a task `principal` may not read is `TaskNotFound`, as a missing one. */
  const mustSee = (record: TaskRecord, plan: Plan, principal: Principal) =>
    Access.canRead(principal, { ...record.task, gated: record.task.gated ?? Access.isGated(plan) })
      ? Effect.void
      : Effect.fail(new TaskNotFound({ taskId: record.task.id }))

  // ---- decisions ----------------------------------------------------------------------------------------------

  const decideOn =
    (verdict: "approve" | "reject") =>
    (
      taskIdInput: string,
      principalInput: Principal,
      decisionOptions?: { readonly stepId?: string | undefined; readonly comment?: string | undefined }
    ) =>
      Effect.gen(function* () {
        const taskId = yield* decodeTaskId(taskIdInput)
        const principal = yield* decodePrincipal(principalInput)
        const stepId = decisionOptions?.stepId as StepId | undefined
        const record = yield* transact(taskId, (r, plan, now) =>
          Effect.andThen(
            mustSee(r, plan, principal),
            (verdict === "approve" ? Flow.approve : Flow.reject)(
              r,
              plan,
              stepId,
              principal,
              decisionOptions?.comment,
              now
            )
          )
        )
        return yield* view(record)
      }).pipe(Effect.withSpan(`Runtime.${verdict}`))

  const ownerOrAdmin = (record: TaskRecord, principal: Principal, action: string) =>
    record.task.requestedBy.id === principal.id || hasRole(principal, "admin")
      ? Effect.void
      : Effect.fail(
          new Forbidden({ principal: principal.id, action, reason: "only the requester or an admin may do this" })
        )

  const cancel = Effect.fn("Runtime.cancel")(function* (
    taskIdInput: string,
    principalInput: Principal,
    reason?: string
  ) {
    const taskId = yield* decodeTaskId(taskIdInput)
    const principal = yield* decodePrincipal(principalInput)
    const record = yield* transact(taskId, (r, plan, now) =>
      mustSee(r, plan, principal).pipe(
        Effect.andThen(ownerOrAdmin(r, principal, "cancel this task")),
        Effect.andThen(Flow.cancel(r, principal, reason, now))
      )
    )
    return yield* view(record)
  })

  const retry = Effect.fn("Runtime.retry")(function* (taskIdInput: string, principalInput: Principal) {
    const taskId = yield* decodeTaskId(taskIdInput)
    const principal = yield* decodePrincipal(principalInput)
    const record = yield* transact(taskId, (r, plan, now) =>
      mustSee(r, plan, principal).pipe(
        Effect.andThen(ownerOrAdmin(r, principal, "retry this task")),
        Effect.andThen(Flow.retry(r, plan, principal, now))
      )
    )
    return yield* view(record)
  })

  // A step job's spans join its task's trace (the payload carries it), whichever process runs the job
  const inTaskTrace = (job: Job, name: string) => {
    const payload = job.payload as { readonly taskId?: unknown; readonly stepId?: unknown } | null
    return TaskTrace.span(name, {
      parent: TaskTrace.fromPayload(job.payload),
      kind: "consumer",
      attributes: {
        "mandate.task.id": payload?.taskId,
        "mandate.step.id": payload?.stepId,
        "mandate.job.id": job.id,
        "mandate.job.attempt": job.attempts
      }
    })
  }

  // ---- reading a task -------------------------------------------------------------------------------------

  // An in-process worker records a step's start with its outcome (one unit per step), so while a handler runs
  // the stored step still says `queued`. A read asks the queue: a queued step whose job is leased shows as
  // `running`, by the lease holder, with the attempt the claim started. Nothing is written.
  const live = (v: TaskView): Effect.Effect<TaskView, StoreError> => {
    const queued = v.steps.filter((s) => s.state === "queued" && s.jobId !== undefined)
    if (queued.length === 0) return Effect.succeed(v)
    return Effect.map(
      Effect.forEach(
        queued,
        (s) => Effect.catchTag(Effect.asSome(queue.get(s.jobId!)), "JobNotFound", () => Effect.succeedNone),
        { concurrency: "unbounded" }
      ),
      (jobs) => {
        const leased = new Map<string, Job>()
        jobs.forEach((job, i) => {
          if (Option.isSome(job) && (job.value.state === "claimed" || job.value.state === "running")) {
            leased.set(queued[i]!.id, job.value)
          }
        })
        if (leased.size === 0) return v
        return {
          ...v,
          steps: v.steps.map((s) => {
            const job = leased.get(s.id)
            return job === undefined
              ? s
              : {
                  ...s,
                  state: "running" as const,
                  attempts: Math.max(s.attempts, job.attempts),
                  ...(job.lease === undefined ? {} : { worker: job.lease.workerId })
                }
          })
        }
      }
    )
  }

  // ---- watching a task ------------------------------------------------------------------------------------

  // Subscribes first, then reads: an event published in between is one the view already shows (its version is
  // not newer), so it is dropped; every later transition's events pass
  const watch = (taskIdInput: string, principal?: Principal) =>
    Effect.gen(function* () {
      const taskId = yield* decodeTaskId(taskIdInput)
      const reader = principal === undefined ? undefined : yield* decodePrincipal(principal)
      const subscription = yield* PubSub.subscribe(hub)
      const current = yield* Effect.flatMap(Effect.flatMap(readAs(taskId, reader), view), live)
      const seen = current.task.version
      const events = Stream.fromSubscription(subscription).pipe(
        Stream.filter((e) => e.taskId === taskId && e.version > seen)
      )
      return { view: current, events }
    })

  if (options?.reconcileOnStart ?? true) yield* reconcile
  const reconcileEveryMs = options?.reconcileIntervalMs ?? 60_000
  if (reconcileEveryMs > 0) {
    yield* reconcileWith(false).pipe(
      Effect.catchCause((cause) => Effect.logWarning("reconciling unfinished tasks failed", cause)),
      Effect.delay(Duration.millis(reconcileEveryMs)),
      Effect.forever,
      Effect.forkScoped
    )
  }

  if (options?.workers ?? true) {
    yield* Worker.run({
      queues: [stepsQueue, deadlinesQueue],
      concurrency: options?.concurrency ?? 16,
      ...(options?.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
      ...(options?.heartbeatIntervalMs === undefined ? {} : { heartbeatIntervalMs: options.heartbeatIntervalMs }),
      ...(options?.pollIntervalMs === undefined ? {} : { pollIntervalMs: options.pollIntervalMs }),
      ...(options?.workerId === undefined ? {} : { workerId: options.workerId }),
      ...(options?.pool === undefined ? {} : { pool: options.pool }),
      ...(options?.shutdownGraceMs === undefined ? {} : { shutdownGraceMs: options.shutdownGraceMs }),
      handler: (job, { workerId }) =>
        job.queue === deadlinesQueue
          ? runDeadline(job).pipe(inTaskTrace(job, "Runtime.deadline"))
          : runStep(job, workerId).pipe(inTaskTrace(job, "Runtime.step")),
      settle: (job, outcome, { workerId, leaseMs, runNext }) => {
        if (job.queue === deadlinesQueue) return Effect.void
        // The next step of this task, if the settle enqueues one for this worker's queue, is claimed for this
        // worker in the same unit and run next by the same slot: no wake-up, no claim
        const handOff: Transitions.HandOffBox = {
          workerId,
          leaseMs,
          queue: stepsQueue,
          pool: options?.pool,
          job: undefined
        }
        return settleStep(job, outcome, workerId).pipe(
          Effect.provideService(Transitions.HandOff, handOff),
          inTaskTrace(job, "Runtime.settle"),
          Effect.andThen(Effect.suspend(() => (handOff.job === undefined ? Effect.void : runNext(handOff.job)))),
          Effect.catchCause((cause) =>
            Cause.hasInterruptsOnly(cause)
              ? Effect.failCause(cause)
              : Effect.logError("settling a step failed; its lease will expire and it will run again", cause)
          )
        )
      }
    }).pipe(Effect.provide(context))
  }

  return Runtime.of({
    start,
    plan: dryRun,
    execute,
    getPlan: (planId, principal) =>
      Effect.gen(function* () {
        const reader = principal === undefined ? undefined : yield* decodePrincipal(principal)
        return yield* readPlan(planId, reader)
      }),
    approve: decideOn("approve"),
    reject: decideOn("reject"),
    cancel,
    retry,
    get: (taskIdInput, principal) =>
      Effect.gen(function* () {
        const taskId = yield* decodeTaskId(taskIdInput)
        const reader = principal === undefined ? undefined : yield* decodePrincipal(principal)
        return yield* live(yield* view(yield* readAs(taskId, reader)))
      }),
    list: (filter, principal) =>
      store.list(principal === undefined ? filter : { ...filter, scope: Access.scopeOf(principal) }),
    events: ((taskId?: string, principal?: Principal) =>
      taskId === undefined
        ? Effect.map(PubSub.subscribe(hub), Stream.fromSubscription)
        : Effect.map(watch(taskId, principal), ({ view, events }) =>
            Stream.concat(Stream.make(snapshotEvent(view)), events)
          )) as Runtime["Service"]["events"],
    watch,
    outbox: (stage) =>
      Effect.asVoid(
        Effect.acquireRelease(
          Effect.sync(() => {
            const box = { stage }
            outboxes.add(box)
            return box
          }),
          (box) => Effect.sync(() => void outboxes.delete(box))
        )
      ),
    reconcile,
    remote
  })
})

/**
 * The `task.snapshot` event that opens a task's event stream: the task as the view shows it.
 *
 * @category constructors
 * @since 0.1.0
 */
export const snapshotEvent = (view: TaskView): TaskEvent => ({
  seq: 0,
  taskId: view.task.id,
  kind: "task.snapshot",
  state: view.task.state,
  version: view.task.version,
  at: view.task.updatedAt,
  data: {
    steps: view.steps.map((s) => ({ id: s.id, type: s.type, state: s.state })),
    reasons: [...view.task.reasons]
  }
})

/**
 * The task states in which a task still changes without anyone acting.
 *
 * @category predicates
 * @since 0.1.0
 */
export const isActive = (state: TaskState): boolean => state === "running" || state === "waiting_approval"

/** What differs between a reviewed plan and the same request planned again, if anything. */
const staleness = (reviewed: Plan, replanned: Plan): Pick<PlanStale, "reason" | "expected" | "found"> | undefined => {
  if (reviewed.policyVersion !== replanned.policyVersion) {
    return { reason: "policy_changed", expected: reviewed.policyVersion, found: replanned.policyVersion }
  }
  if (reviewed.hash !== replanned.hash)
    return { reason: "plan_changed", expected: reviewed.hash, found: replanned.hash }
  const decisions = (plan: Plan) =>
    plan.steps.map(
      (s) => `${s.id}: ${s.decision.effect}${s.decision.approvals ? ` ${JSON.stringify(s.decision.approvals)}` : ""}`
    )
  const before = decisions(reviewed)
  const after = decisions(replanned)
  const i = before.findIndex((d, n) => d !== after[n])
  return i === -1 ? undefined : { reason: "decisions_changed", expected: before[i]!, found: after[i]! }
}
