/**
 * Durable task state: each task as one record (the task, its steps' run-time state and its approvals), plans,
 * and the indexes the runtime and the server query.
 *
 * Writes are compare-and-set on the task's `version`: `save(record, expectedVersion)` fails with
 * `VersionConflict` if another writer advanced the task first, so two runtimes can never both advance the same
 * task. The runtime re-reads and re-decides on conflict. Plans are immutable and stored once.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option, Schema } from "effect"
import { inScope, type ReadScope } from "./Access.ts"
import { Approval } from "./Approval.ts"
import type { PlanId, TaskId } from "./Ids.ts"
import type { Plan } from "./Plan.ts"
import { Step } from "./Step.ts"
import { Task, type TaskState } from "./Task.ts"
import { UnitOfWork } from "./UnitOfWork.ts"

/**
 * A task with its steps and approvals: the unit the store reads and writes.
 *
 * @category models
 * @since 0.1.0
 */
export const TaskRecord = Schema.Struct({
  task: Task,
  steps: Schema.Array(Step),
  approvals: Schema.Array(Approval)
})
export type TaskRecord = typeof TaskRecord.Type

/**
 * Which tasks to list. States and kind filter; `requestedBy` is a principal id; `scope` keeps the tasks a principal
 * may read (`Access.scopeOf`; absent: every task); `cursor` continues a listing.
 *
 * @category models
 * @since 0.1.0
 */
export interface TaskFilter {
  readonly states?: ReadonlyArray<TaskState> | undefined
  readonly kind?: string | undefined
  readonly requestedBy?: string | undefined
  readonly scope?: ReadScope | undefined
  readonly limit?: number | undefined
  readonly cursor?: string | undefined
}

/**
 * A page of tasks, newest first; `nextCursor` is absent on the last page.
 *
 * @category models
 * @since 0.1.0
 */
export interface TaskPage {
  readonly tasks: ReadonlyArray<Task>
  readonly nextCursor?: string | undefined
}

/**
 * @category errors
 * @since 0.1.0
 */
export class TaskNotFound extends Schema.TaggedError<TaskNotFound>()("TaskNotFound", { taskId: Schema.String }) {
  override get message(): string {
    return `No task ${this.taskId}`
  }
}

/**
 * @category errors
 * @since 0.1.0
 */
export class PlanNotFound extends Schema.TaggedError<PlanNotFound>()("PlanNotFound", { planId: Schema.String }) {
  override get message(): string {
    return `No plan ${this.planId}`
  }
}

/**
 * A task with this id, or this principal's idempotency key, exists already.
 *
 * @category errors
 * @since 0.1.0
 */
export class TaskExists extends Schema.TaggedError<TaskExists>()("TaskExists", {
  taskId: Schema.String,
  /** The task that holds the id or the idempotency key. */
  existing: Schema.String
}) {
  override get message(): string {
    return `Task ${this.taskId} conflicts with existing task ${this.existing}`
  }
}

/**
 * Another writer advanced the task since it was read.
 *
 * @category errors
 * @since 0.1.0
 */
export class VersionConflict extends Schema.TaggedError<VersionConflict>()("VersionConflict", {
  taskId: Schema.String,
  expected: Schema.Int,
  found: Schema.Int
}) {
  override get message(): string {
    return `Task ${this.taskId} is at version ${this.found}, not ${this.expected}`
  }
}

/**
 * The backing store failed; wraps the driver error.
 *
 * @category errors
 * @since 0.1.0
 */
export class TaskStoreError extends Schema.TaggedError<TaskStoreError>()("TaskStoreError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

/**
 * @category services
 * @since 0.1.0
 */
export class TaskStore extends Context.Service<
  TaskStore,
  {
    /** Stores a new task record (and its plan, if any). Fails if the id or (requester, idempotency key) is taken. */
    readonly create: (record: TaskRecord, plan?: Plan) => Effect.Effect<void, TaskExists | TaskStoreError>
    readonly get: (taskId: TaskId) => Effect.Effect<TaskRecord, TaskNotFound | TaskStoreError>
    /** Replaces a record if the stored task is still at `expectedVersion`. */
    readonly save: (
      record: TaskRecord,
      expectedVersion: number
    ) => Effect.Effect<void, TaskNotFound | VersionConflict | TaskStoreError>
    /** The task a principal created with an idempotency key. */
    readonly findByIdempotencyKey: (
      principalId: string,
      key: string
    ) => Effect.Effect<Option.Option<TaskId>, TaskStoreError>
    /** Stores a plan (idempotent by id: plans are immutable). */
    readonly putPlan: (plan: Plan) => Effect.Effect<void, TaskStoreError>
    readonly getPlan: (planId: PlanId) => Effect.Effect<Plan, PlanNotFound | TaskStoreError>
    /** Tasks newest first, filtered, paginated. */
    readonly list: (filter?: TaskFilter) => Effect.Effect<TaskPage, TaskStoreError>
    /** Ids of tasks not yet completed, rejected or cancelled (failed tasks included: they may be retried). */
    readonly unfinished: Effect.Effect<ReadonlyArray<TaskId>, TaskStoreError>
    /** Number of tasks in each state. */
    readonly countByState: Effect.Effect<Readonly<Record<TaskState, number>>, TaskStoreError>
  }
>()("@mandate/core/TaskStore") {
  /**
   * In-process store.
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layerMemory: Layer.Layer<TaskStore> = Layer.sync(TaskStore, () => makeMemory())
}

/**
 * An empty count per state.
 *
 * @category constructors
 * @since 0.1.0
 */
export const emptyCounts = (): Record<TaskState, number> => ({
  pending: 0,
  planning: 0,
  running: 0,
  waiting_approval: 0,
  completed: 0,
  failed: 0,
  rejected: 0,
  cancelled: 0
})

const maxLimit = 1000

/**
 * Clamps a requested page size to 1..1000 (default 50).
 *
 * @category constructors
 * @since 0.1.0
 */
export const pageSize = (limit: number | undefined): number => Math.min(maxLimit, Math.max(1, Math.floor(limit ?? 50)))

const isUnfinished = (state: TaskState) => state !== "completed" && state !== "rejected" && state !== "cancelled"

const makeMemory = (): TaskStore["Service"] => {
  // Records are kept in creation order; `seq` orders listings and makes cursors stable.
  const records = new Map<TaskId, { seq: number; record: TaskRecord }>()
  const order: Array<TaskId> = []
  const idempotency = new Map<string, TaskId>()
  const plans = new Map<PlanId, Plan>()
  const counts = emptyCounts()
  const idemKey = (principalId: string, key: string) => `${principalId}\u0000${key}`

  const matches = (task: Task, filter: TaskFilter | undefined) =>
    (filter?.states === undefined || filter.states.includes(task.state)) &&
    (filter?.kind === undefined || task.kind === filter.kind) &&
    (filter?.requestedBy === undefined || task.requestedBy.id === filter.requestedBy) &&
    (filter?.scope === undefined || inScope(filter.scope, task))

  return TaskStore.of({
    create: (record, plan) =>
      Effect.suspend(() => {
        const { task } = record
        const taken = records.has(task.id)
          ? task.id
          : task.idempotencyKey === undefined
            ? undefined
            : idempotency.get(idemKey(task.requestedBy.id, task.idempotencyKey))
        if (taken !== undefined) return Effect.fail(new TaskExists({ taskId: task.id, existing: taken }))
        records.set(task.id, { seq: order.length, record })
        order.push(task.id)
        if (task.idempotencyKey !== undefined)
          idempotency.set(idemKey(task.requestedBy.id, task.idempotencyKey), task.id)
        const newPlan = plan !== undefined && !plans.has(plan.id)
        if (newPlan) plans.set(plan.id, plan)
        counts[task.state]++
        return UnitOfWork.onRollback(() => {
          const current = records.get(task.id)
          if (current === undefined) return
          records.delete(task.id)
          const at = order.lastIndexOf(task.id)
          if (at >= 0) order.splice(at, 1)
          if (task.idempotencyKey !== undefined) idempotency.delete(idemKey(task.requestedBy.id, task.idempotencyKey))
          if (newPlan) plans.delete(plan.id)
          counts[current.record.task.state]--
        })
      }),
    get: (taskId) =>
      Effect.suspend(() => {
        const entry = records.get(taskId)
        return entry ? Effect.succeed(entry.record) : Effect.fail(new TaskNotFound({ taskId }))
      }),
    save: (record, expectedVersion) =>
      Effect.suspend((): Effect.Effect<void, TaskNotFound | VersionConflict> => {
        const entry = records.get(record.task.id)
        if (!entry) return Effect.fail(new TaskNotFound({ taskId: record.task.id }))
        const found = entry.record.task.version
        if (found !== expectedVersion) {
          return Effect.fail(new VersionConflict({ taskId: record.task.id, expected: expectedVersion, found }))
        }
        const previous = entry.record
        counts[previous.task.state]--
        counts[record.task.state]++
        entry.record = record
        return UnitOfWork.onRollback(() => {
          counts[entry.record.task.state]--
          counts[previous.task.state]++
          entry.record = previous
        })
      }),
    findByIdempotencyKey: (principalId, key) =>
      Effect.sync(() => Option.fromNullishOr(idempotency.get(idemKey(principalId, key)))),
    putPlan: (plan) =>
      Effect.sync(() => {
        if (!plans.has(plan.id)) plans.set(plan.id, plan)
      }),
    getPlan: (planId) =>
      Effect.suspend(() => {
        const plan = plans.get(planId)
        return plan ? Effect.succeed(plan) : Effect.fail(new PlanNotFound({ planId }))
      }),
    list: (filter) =>
      Effect.sync(() => {
        const limit = pageSize(filter?.limit)
        // The cursor is the creation sequence of the last task returned; pages walk towards older tasks.
        let position = order.length - 1
        if (filter?.cursor !== undefined) {
          const parsed = Number.parseInt(filter.cursor, 36)
          position = Number.isFinite(parsed) ? Math.min(parsed - 1, order.length - 1) : -1
        }
        const tasks: Array<Task> = []
        let last = -1
        for (; position >= 0 && tasks.length < limit; position--) {
          const task = records.get(order[position]!)!.record.task
          if (matches(task, filter)) {
            tasks.push(task)
            last = position
          }
        }
        let more = false
        for (let p = position; p >= 0; p--) {
          if (matches(records.get(order[p]!)!.record.task, filter)) {
            more = true
            break
          }
        }
        return more ? { tasks, nextCursor: last.toString(36) } : { tasks }
      }),
    unfinished: Effect.sync(() => order.filter((id) => isUnfinished(records.get(id)!.record.task.state))),
    countByState: Effect.sync(() => ({ ...counts }))
  })
}
