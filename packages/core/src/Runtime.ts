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
import {
  Cause,
  Clock,
  Context,
  Duration,
  Effect,
  Layer,
  Option,
  PubSub,
  Result,
  Schema,
  type Scope,
  Stream
} from "effect"
import * as Access from "./Access.ts"
import * as Canonical from "./Canonical.ts"
import { type AgentId, type JobId, makeTaskId, type StepId, TaskId } from "./Ids.ts"
import { decode, InvalidInput } from "./InvalidInput.ts"
import * as Flow from "./internal/taskFlow.ts"
import { isReservedPool, isReservedQueue, type Job, poolQueue, QueueName, reservedQueuePrefix } from "./Job.ts"
import { type EntryInput, Ledger } from "./Ledger.ts"
import type { LedgerStoreError } from "./LedgerStore.ts"
import type { Plan } from "./Plan.ts"
import { type PlanError, Planner, PlanRejected, UnknownStepType } from "./Planner.ts"
import { hasRole, Principal } from "./Principal.ts"
import { JobNotFound, type LeaseLost, prepareResult, Queue, type QueueStoreError } from "./Queue.ts"
import type { Step } from "./Step.ts"
import { StepError, type StepHandler, StepHandlers } from "./StepHandlers.ts"
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
  VersionConflict
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

const StepJob = Schema.Struct({ taskId: TaskId, stepId: Schema.String, round: Schema.Int })
const decodeStepJob = decode(StepJob, "$.payload")
const decodeTaskId = decode(TaskId, "$.taskId")
const decodePrincipal = decode(Principal, "$.principal")
const decodeRequest = decode(TaskRequest)

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
  const hub = yield* PubSub.sliding<TaskEvent>(16_384)
  let eventSeq = 0
  // Registered outboxes (`outbox`), each in a box of its own so the same function may be registered twice
  const outboxes = new Set<{ readonly stage: OutboxStage }>()

  // Plans never change: cache them by id.
  const plans = new Map<string, Plan>()
  const planOf = (record: TaskRecord) =>
    Effect.suspend(() => {
      const id = record.task.planId!
      const cached = plans.get(id)
      if (cached) return Effect.succeed(cached)
      return store.getPlan(id).pipe(
        Effect.tap((plan) =>
          Effect.sync(() => {
            if (plans.size > 50_000) plans.clear()
            plans.set(id, plan)
          })
        ),
        // A task whose plan is missing means the store lost data: a store failure, not a caller's error
        Effect.catchTag("PlanNotFound", (cause) => Effect.fail(new TaskStoreError({ operation: "getPlan", cause })))
      )
    })

  /** Reads a record that must exist (it was just written). */
  const mustGet = (taskId: TaskId) =>
    store
      .get(taskId)
      .pipe(Effect.catchTag("TaskNotFound", (cause) => Effect.fail(new TaskStoreError({ operation: "get", cause }))))

  // ---- applying a transition ------------------------------------------------------------------------------

  /** Writes a transition: jobs first (their ids go into the record), then the record (CAS), ledger, cancels. */
  const apply = (before: TaskRecord, transition: Flow.Transition, now: number, created = false) =>
    Effect.gen(function* () {
      let record = transition.record
      const enqueues = transition.commands.flatMap((c) => (c._tag === "Enqueue" ? [c] : []))
      if (enqueues.length > 0) {
        const jobs = yield* queue.enqueueBatch(
          enqueues.map((c) => ({
            queue: queueOfType.get(c.planned.type) ?? stepsQueue,
            payload: {
              taskId: record.task.id,
              stepId: c.step.id,
              round: c.step.round,
              ...(record.task.trace === undefined ? {} : { trace: record.task.trace })
            },
            priority: record.task.priority,
            maxAttempts,
            idempotencyKey: `${record.task.id}/${c.step.id}/${c.step.round}`,
            ...(options?.pool === undefined || queueOfType.has(c.planned.type) ? {} : { pool: options.pool })
          }))
        )
        const jobIds = new Map(enqueues.map((c, i) => [c.step.id as string, jobs[i]!.id]))
        record = {
          ...record,
          steps: record.steps.map((s) => (jobIds.has(s.id) ? { ...s, jobId: jobIds.get(s.id)! } : s))
        }
      }
      const deadlines = transition.commands.flatMap((c) => (c._tag === "ScheduleDeadline" ? [c] : []))
      if (deadlines.length > 0) {
        yield* queue.enqueueBatch(
          deadlines.map((c) => ({
            queue: deadlinesQueue,
            payload: {
              taskId: record.task.id,
              stepId: c.stepId,
              round: c.round,
              ...(record.task.trace === undefined ? {} : { trace: record.task.trace })
            },
            priority: "high" as const,
            runAt: c.at,
            maxAttempts: 20,
            idempotencyKey: `${record.task.id}/${c.stepId}/${c.round}/deadline`
          }))
        )
      }
      // A created record was stored as version 0 before its jobs existed; this write adds their ids
      const expected = created ? 0 : before.task.version
      record = { ...record, task: { ...record.task, version: expected + 1 } }
      yield* store.save(record, expected)
      const entries: Array<EntryInput> = transition.commands.flatMap((c) =>
        c._tag === "Record"
          ? [
              {
                kind: c.kind,
                taskId: record.task.id,
                ...(c.stepId === undefined ? {} : { stepId: c.stepId }),
                ...(c.principal === undefined ? {} : { principal: c.principal }),
                payload: c.payload,
                storePayload: true
              }
            ]
          : []
      )
      if (entries.length > 0) {
        yield* ledger
          .appendBatch(entries)
          .pipe(TaskTrace.span("Ledger.append", { attributes: { "mandate.ledger.entries": entries.length } }))
      }
      for (const c of transition.commands) {
        if (c._tag === "CancelJob") {
          // A job that already finished or vanished needs no cancelling
          yield* queue.cancel(c.jobId).pipe(Effect.catchTag(["JobNotFound", "IllegalTransition"], () => Effect.void))
        }
      }
      const events: Array<Omit<TaskEvent, "seq">> = transition.commands.flatMap((c) =>
        c._tag === "Record" || c._tag === "Notify"
          ? [
              {
                taskId: record.task.id,
                kind: c.kind,
                ...(c.stepId === undefined ? {} : { stepId: c.stepId }),
                state: record.task.state,
                version: record.task.version,
                at: now,
                ...(c._tag === "Record" ? { data: c.payload } : c.data === undefined ? {} : { data: c.data })
              }
            ]
          : []
      )
      if (events.length > 0) for (const outbox of outboxes) yield* outbox.stage(events)
      return { record, events }
    }).pipe(
      transition.record.task.state === "completed" && before.task.state !== "completed"
        ? TaskTrace.span("Runtime.complete", { attributes: { "mandate.task.id": transition.record.task.id } })
        : (self) => self
    )

  const publish = (events: ReadonlyArray<Omit<TaskEvent, "seq">>) =>
    events.length === 0
      ? Effect.void
      : PubSub.publishAll(
          hub,
          events.map((e) => ({ ...e, seq: ++eventSeq }))
        )

  // The records this runtime last committed, by task: a transition decided on one skips reading (and decoding)
  // the record it wrote itself. Sound because every write is checked against the version it was decided on (a
  // task another writer moved since fails with VersionConflict, drops the entry and is retried on a fresh read),
  // and a decision to do nothing is only trusted on a fresh read.
  const committed = new Map<TaskId, TaskRecord>()
  const remember = (record: TaskRecord) =>
    Effect.sync(() => {
      const known = committed.get(record.task.id)
      if (known !== undefined && known.task.version >= record.task.version) return
      committed.delete(record.task.id)
      if (committed.size >= 10_000) committed.delete(committed.keys().next().value!)
      committed.set(record.task.id, record)
    })
  const forget = (taskId: TaskId) => Effect.sync(() => void committed.delete(taskId))

  /**
   * Reads a task, decides with `decide`, and applies the result in one unit of work. Retried when another
   * writer advanced the task in between.
   */
  const transact = <E, R>(
    taskId: TaskId,
    decide: (record: TaskRecord, plan: Plan, now: number) => Effect.Effect<Flow.Transition | undefined, E, R>
  ) =>
    uow
      .run(
        Effect.gen(function* () {
          const known = committed.get(taskId)
          let record = known ?? (yield* store.get(taskId))
          const plan = yield* planOf(record)
          const now = yield* Clock.currentTimeMillis
          let transition = yield* decide(record, plan, now)
          if (transition === undefined && known !== undefined) {
            record = yield* store.get(taskId)
            transition = yield* decide(record, plan, now)
          }
          if (transition === undefined) return { record, events: [] as ReadonlyArray<Omit<TaskEvent, "seq">> }
          const applied = yield* apply(record, transition, now)
          // Published once the outermost unit has committed (the worker's settle runs inside its own unit), so a
          // subscriber can read everything an event tells of; a unit that fails publishes nothing
          yield* uow.afterCommit(Effect.andThen(remember(applied.record), publish(applied.events)))
          return applied
        })
      )
      .pipe(
        Effect.tapError(() => forget(taskId)),
        Effect.retry({ while: (e) => e instanceof VersionConflict, times: 25 }),
        Effect.map(({ record }) => record)
      )

  const view = (record: TaskRecord) =>
    Effect.map(
      planOf(record),
      (plan): TaskView => ({
        task: record.task,
        plan,
        steps: record.steps,
        approvals: record.approvals
      })
    )

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
      const now = task.createdAt
      const opening: Array<Flow.Command> = [
        {
          _tag: "Record",
          kind: "task.created",
          principal,
          payload: {
            kind: task.kind,
            params: task.params,
            priority: task.priority,
            ...(task.idempotencyKey === undefined ? {} : { idempotencyKey: task.idempotencyKey })
          }
        },
        // Where a model-proposed plan came from, for an auditor (Planner.layerLlm)
        ...(plan.proposedBy === undefined
          ? []
          : [{ _tag: "Record", kind: "plan.proposed", payload: { ...plan.proposedBy } } satisfies Flow.Command]),
        {
          _tag: "Record",
          kind: "plan.created",
          payload: {
            planId: plan.id,
            hash: plan.hash,
            policyVersion: plan.policyVersion,
            steps: plan.steps.map((s) => ({ id: s.id, type: s.type, dependsOn: s.dependsOn, paramsHash: s.paramsHash }))
          }
        },
        ...plan.steps.map(
          (s): Flow.Command => ({
            _tag: "Record",
            kind: "policy.decided",
            stepId: s.id,
            payload: {
              effect: s.decision.effect,
              matchedRules: s.decision.matchedRules,
              reasons: s.decision.reasons,
              policyVersion: s.decision.policyVersion,
              paramsHash: s.paramsHash,
              ...(s.decision.approvals === undefined ? {} : { approvals: s.decision.approvals })
            }
          })
        )
      ]
      const steps: Array<Step> = plan.steps.map((s) => ({
        taskId: task.id,
        id: s.id,
        type: s.type,
        state: "pending",
        attempts: 0,
        round: 0,
        updatedAt: now
      }))
      const denied = plan.steps.flatMap((s) =>
        s.decision.effect === "deny" ? s.decision.reasons.map((r) => `step ${s.id} (${s.type}): ${r}`) : []
      )
      const initial: TaskRecord = {
        task: { ...task, state: denied.length > 0 ? "rejected" : "running", reasons: denied },
        steps: denied.length > 0 ? steps.map((s) => ({ ...s, state: "skipped" as const })) : steps,
        approvals: []
      }
      const transition: Flow.Transition =
        denied.length > 0
          ? {
              record: initial,
              commands: [...opening, { _tag: "Record", kind: "task.rejected", payload: { reasons: denied } }]
            }
          : Flow.advance({ record: initial, commands: opening }, plan, now)
      const created = yield* uow.run(
        Effect.gen(function* () {
          // Create first: a lost idempotency race fails here, before any job or entry is written
          yield* store.create(transition.record, plan)
          const applied = yield* apply(transition.record, transition, now, true)
          yield* uow.afterCommit(Effect.andThen(remember(applied.record), publish(applied.events)))
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
      const plan = yield* planned(id).pipe(
        TaskTrace.span("Planner.plan", { attributes: { "mandate.task.kind": request.kind } }),
        Effect.map((p): Plan | PlanRejected => p),
        Effect.catchIf(
          (e): e is PlanRejected => e instanceof PlanRejected,
          (rejected) => Effect.succeed(rejected)
        )
      )
      const accepted = plan instanceof PlanRejected ? plan.plan : plan
      yield* checkHandlers(accepted)
      const now = yield* Clock.currentTimeMillis
      const trace = yield* TaskTrace.capture
      const task: Task = {
        id,
        kind: request.kind,
        params: accepted.params,
        priority: request.priority ?? "normal",
        ...(request.idempotencyKey === undefined ? {} : { idempotencyKey: request.idempotencyKey }),
        requestedBy: principal,
        state: "planning",
        planId: accepted.id,
        policyVersion: accepted.policyVersion,
        reasons: [],
        gated: Access.isGated(accepted),
        ...(trace === undefined ? {} : { trace }),
        createdAt: now,
        updatedAt: now,
        version: 0
      }
      return yield* launch(task, accepted, principal)
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
    const plan = yield* planner
      .plan({ kind: request.kind, params: request.params, principal })
      .pipe(Effect.catchTag("PlanRejected", (rejected) => Effect.succeed(rejected.plan)))
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
      planner.plan({ kind: stored.kind, params: stored.params, principal, taskId }).pipe(
        Effect.tap(same),
        Effect.tapError((e) => (e._tag === "PlanRejected" ? same(e.plan) : Effect.void)),
        Effect.map(withOrigin),
        Effect.mapError((e) =>
          e._tag === "PlanRejected" ? new PlanRejected({ reasons: e.reasons, plan: withOrigin(e.plan) }) : e
        )
      )
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

  // ---- the worker -----------------------------------------------------------------------------------------

  /** A step job whose step has moved on (cancelled, re-planned, an older round) is stale: it does nothing. */
  const isCurrent = (record: TaskRecord, job: { readonly stepId: string; readonly round: number }) => {
    const step = record.steps.find((s) => s.id === job.stepId)
    const active = record.task.state === "running" || record.task.state === "waiting_approval"
    return (
      step !== undefined && step.round === job.round && (step.state === "queued" || step.state === "running") && active
    )
  }

  const runStep = (job: Job, worker: string) =>
    Effect.gen(function* () {
      const ref = yield* decodeStepJob(job.payload).pipe(Effect.mapError((e) => Worker.JobFailure.permanent(e.message)))
      let current = true
      const record = yield* transact(ref.taskId, (r, _plan, now) => {
        current = isCurrent(r, ref)
        return current
          ? Flow.stepStarted(r, ref.stepId as StepId, job.attempts, now, worker)
          : Effect.succeed(undefined)
      })
      if (!current) return { stale: true }
      const plan = yield* planOf(record)
      const planned = plan.steps.find((s) => s.id === ref.stepId)!
      const handler = handlers.get(planned.type)
      if (Option.isNone(handler)) return yield* StepError.permanent(`no handler for step type ${planned.type}`)
      const h = handler.value
      const params = yield* Schema.decodeUnknownEffect(h.params)(planned.params).pipe(
        Effect.mapError((e) => StepError.permanent(`params do not match the ${planned.type} handler: ${e.message}`))
      )
      const ctx = {
        task: record.task,
        step: planned,
        attempt: job.attempts,
        idempotencyKey: `${record.task.id}/${planned.id}`,
        record: (kind: string, payload: Schema.Json) =>
          ledger.append({ kind, taskId: record.task.id, stepId: planned.id, payload, storePayload: true }).pipe(
            Effect.asVoid,
            Effect.mapError((e) =>
              e._tag === "InvalidInput" ? StepError.permanent(e.message) : StepError.transient(e.message)
            )
          )
      }
      const run = h.run(params, ctx)
      const timed =
        h.timeout === undefined
          ? run
          : run.pipe(
              Effect.timeoutOrElse({
                duration: h.timeout,
                orElse: () =>
                  Effect.fail(
                    StepError.transient(
                      `attempt timed out after ${Duration.format(Duration.fromInputUnsafe(h.timeout!))}`
                    )
                  )
              })
            )
      const result = yield* timed.pipe(
        Effect.annotateLogs({ taskId: record.task.id, stepId: planned.id, attempt: job.attempts }),
        Effect.withLogSpan(`step.${planned.type}`)
      )
      const encoded = (yield* Schema.encodeEffect(h.result)(result).pipe(
        Effect.mapError((e) => StepError.permanent(`result does not match the ${planned.type} handler: ${e.message}`))
      )) as Schema.Json
      // The same check `settle` makes: a result it would refuse fails the attempt here, before the job completes
      return yield* checkResult(h, planned.type, encoded).pipe(Effect.mapError(StepError.permanent))
    }).pipe(
      Effect.mapError((e) =>
        e instanceof StepError
          ? new Worker.JobFailure({
              message: e.message,
              retryable: e.retryable,
              ...(e.details === undefined ? {} : { details: e.details })
            })
          : e
      )
    )

  /**
   * The one path by which a step's outcome is recorded, whoever ran it. It takes effect only for the step's
   * current attempt as started by `worker` (the lease holder named in `step.started`); a result is decoded against
   * the handler's result schema, and one that does not decode is a failed attempt carrying the decode error,
   * never a success. The worker is named in the `step.succeeded` / `step.failed` entry.
   */
  const settleOutcome = (
    r: TaskRecord,
    plan: Plan,
    stepId: StepId,
    outcome: Worker.Outcome,
    final: boolean,
    worker: string | undefined,
    now: number
  ): Effect.Effect<Flow.Transition> =>
    Effect.gen(function* () {
      if (outcome._tag === "Failed") {
        return Flow.stepFailed(r, stepId, { message: outcome.error, retryable: outcome.retryable }, final, now, worker)
      }
      const planned = plan.steps.find((s) => s.id === stepId)!
      const handler = handlers.get(planned.type)
      const checked = Option.isNone(handler)
        ? Effect.fail(`no handler for step type ${planned.type}`)
        : checkResult(handler.value, planned.type, outcome.result)
      return yield* checked.pipe(
        Effect.match({
          onSuccess: (result) => Flow.stepSucceeded(r, plan, stepId, result, now, worker),
          // The job is finished either way: a refused result cannot be retried within it, so the attempt is final
          onFailure: (message) => Flow.stepFailed(r, stepId, { message, retryable: false }, true, now, worker)
        })
      )
    })

  const settleStep = (job: Job, outcome: Worker.Outcome, worker: string, principal?: Principal) =>
    Effect.gen(function* () {
      const ref = yield* decodeStepJob(job.payload)
      yield* transact(ref.taskId, (r, plan, now) => {
        if (!isCurrent(r, ref)) return Effect.succeed(undefined)
        const stepId = ref.stepId as StepId
        // Another worker started the step since (this one's lease expired and was taken over): not ours to settle.
        // (Steps started before workers were recorded name none.)
        const startedBy = r.steps.find((s) => s.id === stepId)?.worker
        if (startedBy !== undefined && startedBy !== worker) return Effect.succeed(undefined)
        if (outcome._tag === "Completed" && (outcome.result as { stale?: boolean } | null)?.stale === true) {
          return Effect.succeed(undefined)
        }
        return Effect.map(
          settleOutcome(r, plan, stepId, outcome, job.state === "dead_lettered", worker, now),
          byPrincipal(principal)
        )
      })
    })

  /** Names `principal` (a remote agent's) on the transition's `step.*` entries. */
  const byPrincipal =
    (principal: Principal | undefined) =>
    (transition: Flow.Transition): Flow.Transition =>
      principal === undefined
        ? transition
        : {
            ...transition,
            commands: transition.commands.map((c) =>
              c._tag === "Record" && c.kind.startsWith("step.") && c.principal === undefined ? { ...c, principal } : c
            )
          }

  // ---- remote steps ---------------------------------------------------------------------------------------

  /** A remote step job of `pool` (a job of any other queue does not exist for this pool's agents). */
  const poolJob = (pool: string, leaseId: JobId) =>
    Effect.flatMap(queue.get(leaseId), (job) =>
      job.queue === poolQueue(pool) ? Effect.succeed(job) : Effect.fail(new JobNotFound({ jobId: leaseId }))
    )

  /**
   * Offers a claimed job to its agent: records the attempt as started by `worker` (as the in-process worker does),
   * and decodes the step's params with the declaration's schema. A stale job (its step moved on) is completed as
   * such and not offered; params that do not decode fail the step through the settle path.
   */
  const offer = (job: Job, worker: AgentId, principal: Principal | undefined) =>
    Effect.gen(function* () {
      const ref = yield* decodeStepJob(job.payload)
      let current = true
      const record = yield* transact(ref.taskId, (r, _plan, now) => {
        current = isCurrent(r, ref)
        return current
          ? Effect.map(Flow.stepStarted(r, ref.stepId as StepId, job.attempts, now, worker), byPrincipal(principal))
          : Effect.succeed(undefined)
      })
      if (!current) {
        yield* queue.complete(job.id, worker, { stale: true })
        return Option.none<ClaimedStep>()
      }
      const plan = yield* planOf(record)
      const planned = plan.steps.find((s) => s.id === ref.stepId)!
      const declared = handlers.get(planned.type)
      const params = Option.isNone(declared)
        ? Result.fail(`no declaration for step type ${planned.type}`)
        : Result.mapError(
            Result.flatMap(Schema.decodeUnknownResult(declared.value.params)(planned.params), (decoded) =>
              Schema.encodeUnknownResult(declared.value.params)(decoded)
            ),
            (e) => `params do not match the ${planned.type} step type: ${e.message}`
          )
      if (Result.isFailure(params)) {
        yield* settleRemote(job.id, worker, { _tag: "Failed", error: params.failure, retryable: false }, principal)
        return Option.none<ClaimedStep>()
      }
      return Option.some<ClaimedStep>({
        leaseId: job.id,
        workerId: worker,
        leaseExpiresAt: job.lease?.expiresAt ?? 0,
        taskId: record.task.id,
        stepId: planned.id,
        type: planned.type,
        attempt: job.attempts,
        idempotencyKey: `${record.task.id}/${planned.id}`,
        params: params.success as Schema.Json
      })
    })

  /** Writes a remote attempt's outcome to the queue and settles the step, in one unit (as the worker's `finish`). */
  const settleRemote = (leaseId: JobId, worker: AgentId, outcome: Worker.Outcome, principal: Principal | undefined) =>
    uow
      .run(
        Effect.gen(function* () {
          const after =
            outcome._tag === "Completed"
              ? yield* queue.complete(leaseId, worker, outcome.result)
              : yield* queue.fail(leaseId, worker, outcome.error, { retryable: outcome.retryable })
          yield* settleStep(after, outcome, worker, principal)
          return after
        })
      )
      .pipe(Effect.catchTag("TaskNotFound", (cause) => Effect.fail(new TaskStoreError({ operation: "get", cause }))))

  const settlement = (job: Job, error?: string): Effect.Effect<RemoteSettlement, InvalidInput> =>
    Effect.map(decodeStepJob(job.payload), (ref) => ({
      leaseId: job.id,
      taskId: ref.taskId,
      stepId: ref.stepId as StepId,
      outcome: job.state === "completed" ? "succeeded" : job.state === "failed" ? "retrying" : "failed",
      ...(error === undefined ? (job.state === "completed" ? {} : { error: job.lastError }) : { error })
    }))

  /** One claim of the pool's queue, each job offered (or, stale or undecodable, settled and left out). */
  const claimOffered = (
    pool: string,
    workerId: AgentId,
    claimOptions: Parameters<RemoteExecution["claim"]>[2]
  ): Effect.Effect<ReadonlyArray<ClaimedStep>, InvalidInput | StoreError> =>
    Effect.gen(function* () {
      const jobs = yield* queue.claim({
        workerId,
        queues: [poolQueue(pool)],
        ...(claimOptions?.max === undefined ? {} : { max: claimOptions.max }),
        ...(claimOptions?.leaseMs === undefined ? {} : { leaseMs: claimOptions.leaseMs })
      })
      const offered = yield* Effect.forEach(jobs, (job) =>
        offer(job, workerId, claimOptions?.principal).pipe(
          // One job that cannot be offered now (a store hiccup) is not lost: its lease expires and it comes back
          Effect.catchCause((cause) =>
            Cause.hasInterruptsOnly(cause)
              ? Effect.interrupt
              : Effect.as(Effect.logWarning("offering a remote step failed", cause), Option.none<ClaimedStep>())
          )
        )
      )
      return offered.flatMap((o) => (Option.isSome(o) ? [o.value] : []))
    })

  const remote: RemoteExecution = {
    claim: (pool, workerId, claimOptions) =>
      Effect.gen(function* () {
        const waitMs = claimOptions?.waitMs ?? 0
        if (!Number.isInteger(waitMs) || waitMs < 0 || waitMs > 60_000) {
          return yield* InvalidInput.at("$.waitMs", "Expected an integer between 0 and 60000")
        }
        const claimOnce = claimOffered(pool, workerId, claimOptions)
        if (waitMs === 0) return yield* claimOnce
        // Subscribed before the first claim, so a step enqueued in between still wakes this claim
        const next = yield* queue
          .wakeups({ queues: [poolQueue(pool)] })
          .pipe(Effect.catch(() => Effect.succeed(Effect.never)))
        const deadline = (yield* Clock.currentTimeMillis) + waitMs
        const until = Effect.as(claimOptions?.until ?? Effect.never, true)
        let offered = yield* claimOnce
        while (offered.length === 0) {
          const left = deadline - (yield* Clock.currentTimeMillis)
          if (left <= 0) break
          // Delayed steps and retries coming due send no wake-up: look again at least every second
          const ended = yield* Effect.raceFirst(
            Effect.as(Effect.raceFirst(next, Effect.sleep(Math.min(left, 1_000))), false),
            until
          )
          if (ended) break
          offered = yield* claimOnce
        }
        return offered
      }).pipe(Effect.scoped),
    heartbeat: (pool, leaseId, workerId, extendMs) =>
      poolJob(pool, leaseId).pipe(
        Effect.andThen(queue.heartbeat(leaseId, workerId, extendMs)),
        Effect.map((job) => job.lease?.expiresAt ?? 0)
      ),
    complete: (pool, leaseId, workerId, result, principal) =>
      Effect.gen(function* () {
        const job = yield* poolJob(pool, leaseId)
        const ref = yield* decodeStepJob(job.payload)
        const record = yield* store
          .get(ref.taskId)
          .pipe(
            Effect.catchTag("TaskNotFound", (cause) => Effect.fail(new TaskStoreError({ operation: "get", cause })))
          )
        const plan = yield* planOf(record)
        const type = plan.steps.find((s) => s.id === ref.stepId)?.type ?? ""
        const declared = handlers.get(type)
        // The one check `settle` makes, made first: a refused result is a failed attempt carrying the decode error
        const checked = yield* Effect.result(
          Option.isNone(declared)
            ? Effect.fail(`no declaration for step type ${type}`)
            : Effect.flatMap(
                prepareResult(result).pipe(Effect.mapError((e) => `result is not JSON: ${e.message} at ${e.path}`)),
                (json) => checkResult(declared.value, type, json)
              )
        )
        if (Result.isFailure(checked)) {
          const after = yield* settleRemote(
            leaseId,
            workerId,
            { _tag: "Failed", error: checked.failure, retryable: false },
            principal
          )
          return yield* settlement(after, checked.failure)
        }
        const after = yield* settleRemote(leaseId, workerId, { _tag: "Completed", result: checked.success }, principal)
        return yield* settlement(after)
      }),
    fail: (pool, leaseId, workerId, failure, principal) =>
      Effect.gen(function* () {
        yield* poolJob(pool, leaseId)
        const after = yield* settleRemote(
          leaseId,
          workerId,
          { _tag: "Failed", error: failure.message, retryable: failure.retryable ?? true },
          principal
        )
        return yield* settlement(after)
      })
  }

  const runDeadline = (job: Job) =>
    Effect.gen(function* () {
      const ref = yield* decodeStepJob(job.payload).pipe(Effect.mapError((e) => Worker.JobFailure.permanent(e.message)))
      let early = false
      yield* transact(ref.taskId, (r, _plan, now) => {
        early = Flow.deadlinePending(r, ref.stepId as StepId, ref.round, now)
        return Effect.succeed(Flow.deadlinePassed(r, ref.stepId as StepId, ref.round, now))
      })
      // Due by this worker's clock but not by the stored deadline: try again later (the retry backs off)
      if (early) return yield* Worker.JobFailure.transient("the approval deadline has not passed yet")
      return null
    })

  // ---- reconcile ------------------------------------------------------------------------------------------

  /**
   * Settles what a task is owed from its jobs' state. A step whose job finished without the task hearing of it
   * (a crash or a lost reply between the queue and the task store) is settled from the job; a step whose job is
   * missing is enqueued again (idempotency keys return an existing job, never a second one). On `restart`, the
   * deadlines of waiting steps are re-issued as well.
   */
  const reconcileTask = (taskId: TaskId, restart: boolean) =>
    transact(taskId, (r, plan, now) =>
      Effect.gen(function* () {
        if (r.task.state !== "running" && r.task.state !== "waiting_approval") return undefined
        let transition: Flow.Transition = { record: r, commands: [] }
        const add = (next: Flow.Transition) => {
          transition = { record: next.record, commands: [...transition.commands, ...next.commands] }
        }
        for (const step of r.steps) {
          const planned = plan.steps.find((p) => p.id === step.id)!
          if (step.state === "waiting_approval" && restart && step.deadlineAt !== undefined) {
            add({
              record: transition.record,
              commands: [{ _tag: "ScheduleDeadline", stepId: step.id, round: step.round, at: step.deadlineAt }]
            })
          }
          if (step.state !== "queued" && step.state !== "running") continue
          const job = step.jobId === undefined ? Option.none() : yield* Effect.option(queue.get(step.jobId))
          if (Option.isNone(job)) {
            add({ record: transition.record, commands: [{ _tag: "Enqueue", step, planned }] })
          } else if (job.value.state === "completed" && step.state === "running") {
            // Completed by the worker that started the attempt, which stopped before settling it: the result
            // takes the one settle path (decoded against the handler's schema, the worker named)
            const outcome: Worker.Outcome = { _tag: "Completed", result: job.value.result ?? null }
            add(yield* settleOutcome(transition.record, plan, step.id, outcome, true, step.worker, now))
          } else if (job.value.state === "dead_lettered") {
            const message = job.value.lastError ?? "the step's job was dead-lettered"
            add(Flow.stepFailed(transition.record, step.id, { message, retryable: false }, true, now, step.worker))
          } else if (job.value.state === "cancelled" || job.value.state === "completed") {
            // Withdrawn while the task still wants it, or completed though no worker of the runtime started the
            // step (it did not run through the runtime, so its result is not recorded): run it again, in a new round
            const current = transition.record.steps.find((s) => s.id === step.id)!
            add({
              record: {
                ...transition.record,
                steps: transition.record.steps.map((s) =>
                  s.id === step.id ? { ...current, state: "pending", round: current.round + 1, updatedAt: now } : s
                )
              },
              commands: []
            })
          }
        }
        const next = Flow.advance(transition, plan, now)
        return next.commands.length === 0 && next.record === r ? undefined : next
      })
    )

  const reconcileWith = (restart: boolean) =>
    Effect.gen(function* () {
      const ids = yield* store.unfinished
      yield* Effect.forEach(
        ids,
        (id) => reconcileTask(id, restart).pipe(Effect.catchTag("TaskNotFound", () => Effect.void)),
        { concurrency: 8, discard: true }
      )
      return ids.length
    }).pipe(Effect.withSpan("Runtime.reconcile"))
  const reconcile = reconcileWith(true)

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

  // ---- watching a task ------------------------------------------------------------------------------------

  // Subscribes first, then reads: an event published in between is one the view already shows (its version is
  // not newer), so it is dropped; every later transition's events pass
  const watch = (taskIdInput: string, principal?: Principal) =>
    Effect.gen(function* () {
      const taskId = yield* decodeTaskId(taskIdInput)
      const reader = principal === undefined ? undefined : yield* decodePrincipal(principal)
      const subscription = yield* PubSub.subscribe(hub)
      const current = yield* Effect.flatMap(readAs(taskId, reader), view)
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
      settle: (job, outcome, { workerId }) =>
        job.queue === deadlinesQueue
          ? Effect.void
          : settleStep(job, outcome, workerId).pipe(
              inTaskTrace(job, "Runtime.settle"),
              Effect.catchCause((cause) =>
                Cause.hasInterruptsOnly(cause)
                  ? Effect.failCause(cause)
                  : Effect.logError("settling a step failed; its lease will expire and it will run again", cause)
              )
            )
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
        return yield* view(yield* readAs(taskId, reader))
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

/**
 * A step result as the handler's result schema decodes it: the JSON to record, or why it is refused.
 */
const checkResult = (
  handler: StepHandler<any, any, never>,
  type: string,
  result: Schema.Json
): Effect.Effect<Schema.Json, string> =>
  Schema.decodeUnknownEffect(handler.result)(result).pipe(
    Effect.as(result),
    Effect.mapError((e) => `result does not match the ${type} handler: ${e.message}`)
  )
