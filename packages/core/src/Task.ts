/**
 * Tasks: what was asked, by whom, and where it stands. The task state machine lives here, once; every
 * store and the runtime call `transition` rather than writing states directly.
 *
 * ```
 * pending → planning → running ⇄ waiting_approval → completed | failed | rejected | cancelled
 * failed → running   (retry from the failed step)
 * ```
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import { PlanId, PolicyVersion, TaskId } from "./Ids.ts"
import { Principal } from "./Principal.ts"
import { TaskTrace } from "./TaskTrace.ts"

/**
 * @category models
 * @since 0.1.0
 */
export const TaskState = Schema.Literals([
  "pending",
  "planning",
  "running",
  "waiting_approval",
  "completed",
  "failed",
  "rejected",
  "cancelled"
])
export type TaskState = typeof TaskState.Type

/**
 * Job and task priority, highest first.
 *
 * @category models
 * @since 0.1.0
 */
export const Priority = Schema.Literals(["critical", "high", "normal", "low"])
export type Priority = typeof Priority.Type

/**
 * Numeric rank of a priority: 0 is the most urgent. Stores order claims by it.
 *
 * @category ordering
 * @since 0.1.0
 */
export const priorityRank = (priority: Priority): number =>
  priority === "critical" ? 0 : priority === "high" ? 1 : priority === "normal" ? 2 : 3

/**
 * A task kind (the planner's template name), e.g. `transfer_funds`.
 *
 * @category models
 * @since 0.1.0
 */
export const TaskKind = Schema.String.check(
  Schema.isPattern(/^[a-z][a-z0-9_.-]{0,63}$/, {
    message: "Expected a task kind: lowercase letters, digits and _ . -, starting with a letter, at most 64"
  })
)

/**
 * What a principal asks for.
 *
 * @category models
 * @since 0.1.0
 */
export const TaskRequest = Schema.Struct({
  kind: TaskKind,
  params: Schema.Json,
  priority: Schema.optionalKey(Priority),
  idempotencyKey: Schema.optionalKey(Schema.String.check(Schema.isBetweenLength(1, 256)))
})
export type TaskRequest = typeof TaskRequest.Type

/**
 * @category models
 * @since 0.1.0
 */
export const Task = Schema.Struct({
  id: TaskId,
  kind: TaskKind,
  params: Schema.Json,
  priority: Priority,
  idempotencyKey: Schema.optionalKey(Schema.String),
  requestedBy: Principal,
  state: TaskState,
  planId: Schema.optionalKey(PlanId),
  /** The policy version the task was planned under; it stays pinned to it. */
  policyVersion: Schema.optionalKey(PolicyVersion),
  /** Why the task was rejected, failed or cancelled. */
  reasons: Schema.Array(Schema.String),
  /**
   * Whether its plan has a step that needs approval, set when the task is created (plans never change). Approvers
   * may read gated tasks (see `Access`); stores filter listings on it.
   */
  gated: Schema.optionalKey(Schema.Boolean),
  /** The span the task was started in, when a tracer was exporting: its steps' spans join that trace. */
  trace: Schema.optionalKey(TaskTrace),
  createdAt: Schema.Number,
  updatedAt: Schema.Number,
  /** Incremented on every write: stores use it for optimistic concurrency. */
  version: Schema.Int
})
export type Task = typeof Task.Type

/**
 * A state change that the state machine does not allow.
 *
 * @category errors
 * @since 0.1.0
 */
export class IllegalTransition extends Schema.TaggedError<IllegalTransition>()("IllegalTransition", {
  entity: Schema.Literals(["task", "step", "job"]),
  id: Schema.String,
  from: Schema.String,
  to: Schema.String
}) {
  override get message(): string {
    return `${this.entity} ${this.id} cannot go from ${this.from} to ${this.to}`
  }
}

const transitions: Record<TaskState, ReadonlyArray<TaskState>> = {
  pending: ["planning", "rejected", "failed", "cancelled"],
  planning: ["running", "waiting_approval", "rejected", "failed", "cancelled"],
  running: ["waiting_approval", "completed", "failed", "rejected", "cancelled"],
  waiting_approval: ["running", "completed", "failed", "rejected", "cancelled"],
  failed: ["running", "cancelled"],
  completed: [],
  rejected: [],
  cancelled: []
}

/**
 * States a task can move to from `from`.
 *
 * @category transitions
 * @since 0.1.0
 */
export const nextStates = (from: TaskState): ReadonlyArray<TaskState> => transitions[from]

/**
 * @category predicates
 * @since 0.1.0
 */
export const canTransition = (from: TaskState, to: TaskState): boolean => transitions[from].includes(to)

/**
 * A task that will not change again (`failed` is not terminal: it can be retried).
 *
 * @category predicates
 * @since 0.1.0
 */
export const isTerminal = (state: TaskState): boolean =>
  state === "completed" || state === "rejected" || state === "cancelled"

/**
 * Moves a task to `to` at time `now`, or fails with `IllegalTransition`.
 *
 * @category transitions
 * @since 0.1.0
 */
export const transition = (
  task: Task,
  to: TaskState,
  now: number,
  reasons?: ReadonlyArray<string>
): Effect.Effect<Task, IllegalTransition> =>
  canTransition(task.state, to)
    ? Effect.succeed({
        ...task,
        state: to,
        reasons: reasons ?? task.reasons,
        updatedAt: now,
        version: task.version + 1
      })
    : Effect.fail(new IllegalTransition({ entity: "task", id: task.id, from: task.state, to }))
