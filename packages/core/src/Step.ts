/**
 * Steps at run time: their states and the step state machine (once, here).
 *
 * ```
 * pending → queued → running → succeeded | failed | skipped
 * pending → waiting_approval → queued          (approval granted)
 * running → queued                              (retry after a failed attempt)
 * failed → queued                               (task retried from its failed step)
 * any unfinished state → skipped                (task rejected or cancelled)
 * ```
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import { JobId, StepId, TaskId } from "./Ids.ts"
import { IllegalTransition } from "./Task.ts"

/**
 * @category models
 * @since 0.1.0
 */
export const StepState = Schema.Literals([
  "pending",
  "waiting_approval",
  "queued",
  "running",
  "succeeded",
  "failed",
  "skipped"
])
export type StepState = typeof StepState.Type

/**
 * A step's error as recorded: what failed, and whether retrying could help.
 *
 * @category models
 * @since 0.1.0
 */
export const StepErrorInfo = Schema.Struct({
  message: Schema.String,
  retryable: Schema.Boolean,
  details: Schema.optionalKey(Schema.Json)
})
export type StepErrorInfo = typeof StepErrorInfo.Type

/**
 * A plan step's run-time record.
 *
 * @category models
 * @since 0.1.0
 */
export const Step = Schema.Struct({
  taskId: TaskId,
  id: StepId,
  type: Schema.String,
  state: StepState,
  /** Attempts started, over every round. */
  attempts: Schema.Int,
  /** How many times the step was (re)scheduled: a task retry starts a new round, which needs new approvals. */
  round: Schema.Int,
  jobId: Schema.optionalKey(JobId),
  /** The worker that started the latest attempt (the lease holder named in its `step.started` entry). */
  worker: Schema.optionalKey(Schema.String),
  /** For a step waiting for approval: when the approval window closes (epoch ms). */
  deadlineAt: Schema.optionalKey(Schema.Number),
  result: Schema.optionalKey(Schema.Json),
  error: Schema.optionalKey(StepErrorInfo),
  updatedAt: Schema.Number
})
export type Step = typeof Step.Type

const transitions: Record<StepState, ReadonlyArray<StepState>> = {
  pending: ["queued", "waiting_approval", "skipped"],
  waiting_approval: ["queued", "skipped"],
  queued: ["running", "failed", "skipped"],
  running: ["succeeded", "failed", "queued", "skipped"],
  failed: ["queued", "skipped"],
  succeeded: [],
  skipped: []
}

/**
 * @category predicates
 * @since 0.1.0
 */
export const canTransition = (from: StepState, to: StepState): boolean => transitions[from].includes(to)

/**
 * @category predicates
 * @since 0.1.0
 */
export const isFinished = (state: StepState): boolean => state === "succeeded" || state === "skipped"

/**
 * Moves a step to `to`, or fails with `IllegalTransition`.
 *
 * @category transitions
 * @since 0.1.0
 */
export const transition = (
  step: Step,
  to: StepState,
  now: number,
  patch?: Partial<Pick<Step, "attempts" | "round" | "jobId" | "result" | "error" | "deadlineAt">>
): Effect.Effect<Step, IllegalTransition> =>
  canTransition(step.state, to)
    ? Effect.succeed({ ...step, ...patch, state: to, updatedAt: now })
    : Effect.fail(new IllegalTransition({ entity: "step", id: `${step.taskId}/${step.id}`, from: step.state, to }))
