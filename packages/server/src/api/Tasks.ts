/**
 * Tasks: start one, read it, approve or reject its gated step, cancel or retry it, list tasks, and follow its
 * events live (Server-Sent Events).
 *
 * @since 0.1.0
 */
import { PlanId, Task, TaskId } from "@mandate/core"
import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import { Auth, RequiredRoles } from "./Auth.ts"
import { BadRequest, Conflict, Forbidden, NotFound, PolicyDenied, Unavailable, Unprocessable } from "./Errors.ts"
import { FeedEventWire, TaskDetailWire, TaskEventWire, TaskStatusWire, TaskWire } from "./Models.ts"

/**
 * `POST /task/start`.
 *
 * @category models
 * @since 0.1.0
 */
export const StartTask = Schema.Union([
  Schema.Struct({
    task_type: Task.TaskKind,
    parameters: Schema.Json,
    priority: Schema.optionalKey(Task.Priority),
    idempotency_key: Schema.optionalKey(Schema.String.check(Schema.isBetweenLength(1, 256)))
  }),
  // A goal in natural language, planned by the LLM planner (MANDATE_PLANNER=llm) as a `goal` task
  Schema.Struct({
    goal: Schema.String.check(Schema.isBetweenLength(1, 4000)),
    priority: Schema.optionalKey(Task.Priority),
    idempotency_key: Schema.optionalKey(Schema.String.check(Schema.isBetweenLength(1, 256)))
  })
])

/**
 * What `POST /task/start` and `POST /plan/execute` answer.
 *
 * @category models
 * @since 0.1.0
 */
export const TaskStarted = Schema.Struct({
  task_id: Schema.String,
  status: Task.TaskState,
  plan_id: Schema.String
})

/**
 * `POST /task/{id}/approve`: `approved: false` rejects the step (and ends the task).
 *
 * @category models
 * @since 0.1.0
 */
export const ApproveTask = Schema.Struct({
  approved: Schema.Boolean,
  step_id: Schema.optionalKey(Schema.String.check(Schema.isBetweenLength(1, 128))),
  comment: Schema.optionalKey(Schema.String.check(Schema.isMaxLength(2000)))
})

/**
 * `POST /task/{id}/cancel`.
 *
 * @category models
 * @since 0.1.0
 */
export const CancelTask = Schema.Struct({
  reason: Schema.optionalKey(Schema.String.check(Schema.isMaxLength(2000)))
})

/**
 * `GET /tasks` filters; `status` may repeat.
 *
 * @category models
 * @since 0.1.0
 */
export const TaskQuery = {
  status: Schema.optional(Schema.Array(Task.TaskState)),
  task_type: Schema.optional(Schema.String),
  requested_by: Schema.optional(Schema.String),
  limit: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1000 }))),
  cursor: Schema.optional(Schema.String.check(Schema.isBetweenLength(1, 64)))
}

/**
 * @category models
 * @since 0.1.0
 */
export const TaskPageWire = Schema.Struct({
  tasks: Schema.Array(TaskWire),
  next_cursor: Schema.optionalKey(Schema.String)
})

const readers = ["submitter", "approver", "auditor"] as const
const id = { id: TaskId }
const store = [NotFound, BadRequest, Conflict, Unavailable]

/**
 * @category groups
 * @since 0.1.0
 */
export class TasksApi extends HttpApiGroup.make("tasks")
  .add(
    HttpApiEndpoint.post("start", "/task/start", {
      payload: StartTask,
      success: TaskStarted,
      error: [BadRequest, Forbidden, NotFound, PolicyDenied, Unprocessable, Conflict, Unavailable]
    })
      .annotate(RequiredRoles, ["submitter"])
      .annotate(OpenApi.Description, "Plans the task, checks every step against policy and starts it"),
    HttpApiEndpoint.get("get", "/task/:id", { params: id, success: TaskDetailWire, error: store }).annotate(
      RequiredRoles,
      readers
    ),
    HttpApiEndpoint.get("status", "/task/:id/status", { params: id, success: TaskStatusWire, error: store }).annotate(
      RequiredRoles,
      readers
    ),
    HttpApiEndpoint.post("approve", "/task/:id/approve", {
      params: id,
      payload: ApproveTask,
      success: TaskStatusWire,
      error: [...store, Forbidden]
    })
      .annotate(RequiredRoles, ["approver"])
      .annotate(OpenApi.Description, "Approves (or, with approved: false, rejects) the step waiting for approval"),
    HttpApiEndpoint.post("cancel", "/task/:id/cancel", {
      params: id,
      payload: CancelTask,
      success: TaskStatusWire,
      error: [...store, Forbidden]
    }).annotate(RequiredRoles, ["submitter"]),
    HttpApiEndpoint.post("retry", "/task/:id/retry", {
      params: id,
      success: TaskStatusWire,
      error: [...store, Forbidden]
    }).annotate(RequiredRoles, ["submitter"]),
    HttpApiEndpoint.get("list", "/tasks", { query: TaskQuery, success: TaskPageWire, error: [Conflict, Unavailable] })
      .annotate(RequiredRoles, readers)
      .annotate(OpenApi.Description, "Tasks newest first; pass next_cursor as cursor for the next page"),
    HttpApiEndpoint.get("feed", "/tasks/events", {
      success: HttpApiSchema.StreamSse({ data: FeedEventWire }),
      error: Unavailable
    })
      .annotate(RequiredRoles, readers)
      .annotate(
        OpenApi.Description,
        "Server-Sent Events: every event of every task the caller may see, live; a keepalive event (seq 0, no task) first and every MANDATE_SSE_KEEPALIVE"
      ),
    HttpApiEndpoint.get("events", "/task/:id/events", {
      params: id,
      success: HttpApiSchema.StreamSse({ data: TaskEventWire }),
      error: store
    })
      .annotate(RequiredRoles, readers)
      .annotate(
        OpenApi.Description,
        "Server-Sent Events: a task.snapshot, then each event live, until the task ends; a keepalive event (seq 0, the task's latest status) every MANDATE_SSE_KEEPALIVE"
      )
  )
  .middleware(Auth)
  .annotate(OpenApi.Description, "Tasks") {}

/**
 * `POST /plan/create`: a dry run that plans and decides policy without executing.
 *
 * @category models
 * @since 0.1.0
 */
export const CreatePlan = Schema.Struct({ task_type: Task.TaskKind, parameters: Schema.Json })

/**
 * `POST /plan/execute`.
 *
 * @category models
 * @since 0.1.0
 */
export const ExecutePlan = Schema.Struct({ plan_id: PlanId })
