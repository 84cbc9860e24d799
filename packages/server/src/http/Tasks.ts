/**
 * Handlers of the `tasks` group (`api/Tasks.ts`): each one call into `Runtime`, mapped to the wire.
 *
 * @since 0.1.0
 */
import { RemoteSteps, Runtime, Task, taskFeed } from "@mandate/core"
import { Clock, Context, Duration, Effect, Layer, Stream } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../api/Api.ts"
import { CurrentPrincipal } from "../api/Auth.ts"
import { TaskDetailWire, TaskStatusWire } from "../api/Models.ts"
import { TaskStarted } from "../api/Tasks.ts"
import { mapErrors } from "./Errors.ts"
import * as Models from "./Models.ts"

/**
 * Core reports request fields by their core names; the wire names them differently.
 *
 * @category models
 * @since 0.1.0
 */
export const requestNames = {
  "$.kind": "$.task_type",
  "$.params": "$.parameters",
  "$.idempotencyKey": "$.idempotency_key"
}

/**
 * How often a task event stream sends a `keepalive` event (the task's latest status), so that proxies and load
 * balancers do not close a quiet stream as idle (zero: never).
 *
 * @category references
 * @since 0.1.0
 */
export const SseKeepAlive = Context.Reference<Duration.Duration>("@mandate/server/SseKeepAlive", {
  defaultValue: () => Duration.seconds(15)
})

/**
 * Completes when the server begins to shut down: open event streams end then (cleanly, as if the task had ended),
 * instead of holding the shutdown's drain until its grace period runs out.
 *
 * @category references
 * @since 0.1.0
 */
export const ShuttingDown = Context.Reference<Effect.Effect<void>>("@mandate/server/ShuttingDown", {
  defaultValue: () => Effect.never
})

/**
 * A started (or executed) task on the wire.
 *
 * @category mapping
 * @since 0.1.0
 */
export const started = (task: Task.Task): Models.Wire<typeof TaskStarted> => ({
  task_id: task.id,
  status: task.state,
  plan_id: task.planId ?? ""
})

// The routes polled most answer what the server built, as it is (`Models.respond`)
const respondStarted = Models.respond(TaskStarted)
const respondDetail = Models.respond(TaskDetailWire)
const respondStatus = Models.respond(TaskStatusWire)

/**
 * @category handlers
 * @since 0.1.0
 */
export const TasksHandlers = HttpApiBuilder.group(Api, "tasks", (handlers) =>
  Effect.gen(function* () {
    const runtime = yield* Runtime
    const remote = yield* RemoteSteps
    const keepAlive = yield* SseKeepAlive
    const shuttingDown = yield* ShuttingDown
    return handlers
      .handle("start", ({ payload }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          runtime.start(
            {
              ...("goal" in payload
                ? { kind: "goal", params: { goal: payload.goal } }
                : { kind: payload.task_type, params: payload.parameters }),
              ...(payload.priority === undefined ? {} : { priority: payload.priority }),
              ...(payload.idempotency_key === undefined ? {} : { idempotencyKey: payload.idempotency_key })
            },
            principal
          )
        ).pipe(
          Effect.map((task) => respondStarted(started(task))),
          mapErrors(requestNames)
        )
      )
      .handle("get", ({ params }) =>
        Effect.flatMap(CurrentPrincipal, (principal) => runtime.get(params.id, principal)).pipe(
          Effect.map((view) => respondDetail(Models.taskDetail(view))),
          mapErrors()
        )
      )
      .handle("status", ({ params }) =>
        Effect.flatMap(CurrentPrincipal, (principal) => runtime.get(params.id, principal)).pipe(
          // A queued remote step whose pool has no live agent says so
          Effect.flatMap((view) =>
            Effect.map(remote.stalled(view), (stalled) => respondStatus(Models.taskStatus(view, stalled)))
          ),
          mapErrors()
        )
      )
      .handle("approve", ({ params, payload }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          (payload.approved ? runtime.approve : runtime.reject)(params.id, principal, {
            stepId: payload.step_id,
            comment: payload.comment
          })
        ).pipe(Effect.map(Models.taskStatus), mapErrors({ "$.stepId": "$.step_id" }))
      )
      .handle("cancel", ({ params, payload }) =>
        Effect.flatMap(CurrentPrincipal, (principal) => runtime.cancel(params.id, principal, payload.reason)).pipe(
          Effect.map(Models.taskStatus),
          mapErrors()
        )
      )
      .handle("retry", ({ params }) =>
        Effect.flatMap(CurrentPrincipal, (principal) => runtime.retry(params.id, principal)).pipe(
          Effect.map(Models.taskStatus),
          mapErrors()
        )
      )
      .handle("list", ({ query }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          runtime.list(
            {
              states: query.status,
              kind: query.task_type,
              requestedBy: query.requested_by,
              limit: query.limit,
              cursor: query.cursor
            },
            principal
          )
        ).pipe(
          Effect.map((page) => ({
            tasks: page.tasks.map(Models.task),
            ...(page.nextCursor === undefined ? {} : { next_cursor: page.nextCursor })
          })),
          mapErrors()
        )
      )
      .handle("feed", () =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          // Subscribed when this runs: nothing published after the response starts is missed
          const live = yield* taskFeed(principal).pipe(Effect.provideService(Runtime, runtime))
          // The stream opens with a keepalive, so the response (and its headers) goes out at once
          const keepalive = Effect.map(Clock.currentTimeMillis, (at) => ({ seq: 0, kind: "keepalive", at }))
          const events = live.pipe(Stream.map(Models.taskEvent))
          const rest = Duration.isZero(keepAlive)
            ? events
            : Stream.merge(
                events,
                Stream.tick(keepAlive).pipe(
                  Stream.drop(1),
                  Stream.mapEffect(() => keepalive)
                )
              )
          return Stream.concat(Stream.fromEffect(keepalive), rest).pipe(Stream.interruptWhen(shuttingDown))
        })
      )
      .handle("events", ({ params }) =>
        Effect.gen(function* () {
          // The task now and every later event, nothing between the two; the subscription lives as long as
          // the request's scope, which the response stream holds open
          const { view, events: live } = yield* runtime.watch(params.id, yield* CurrentPrincipal)
          const snapshot = {
            seq: 0,
            task_id: view.task.id,
            kind: "task.snapshot",
            status: view.task.state,
            at: view.task.updatedAt,
            data: Models.taskStatus(view)
          }
          let status = view.task.state
          const events = live.pipe(
            Stream.map(Models.taskEvent),
            Stream.tap((e) =>
              Effect.sync(() => {
                status = e.status
              })
            ),
            // The task.* event of the final transition ends the stream (its step events carry the final
            // status too, and come first)
            Stream.takeUntil((e) => Task.isTerminal(e.status) && e.kind.startsWith("task."))
          )
          // Between events, a keepalive (the task's latest status, seq 0 like the snapshot) keeps the stream alive
          const keepAlives = Stream.tick(keepAlive).pipe(
            Stream.drop(1),
            Stream.mapEffect(() =>
              Effect.map(Clock.currentTimeMillis, (at) => ({
                seq: 0,
                task_id: view.task.id,
                kind: "keepalive",
                status,
                at
              }))
            )
          )
          const rest = Task.isTerminal(view.task.state)
            ? Stream.empty
            : Duration.isZero(keepAlive)
              ? events
              : Stream.merge(events, keepAlives, { haltStrategy: "left" })
          return Stream.concat(Stream.make(snapshot), rest).pipe(Stream.interruptWhen(shuttingDown))
        }).pipe(mapErrors())
      )
  })
)

/**
 * The group over the `Runtime` in context.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = TasksHandlers.pipe(Layer.provide(RemoteSteps.layer))
