/**
 * The live feed of task events a principal may see: every task's events (`Runtime.events()`), kept to the tasks
 * the principal could also read one by one. It is what an operator's screen follows (the console's task list), so
 * that a list of tasks updates as they change without a stream per task.
 *
 * @since 0.1.0
 */
import { Effect, type Scope, Stream } from "effect"
import { hasRole, type Principal } from "./Principal.ts"
import { Runtime, type TaskEvent, type TaskView } from "./Runtime.ts"

/**
 * Whether a principal may see a task: auditors and admins every task; submitters and approvers the tasks they
 * requested; approvers also someone else's task with a step that needs approval (one they may decide on).
 *
 * @category predicates
 * @since 0.1.0
 */
export const canFollow = (principal: Principal, view: Pick<TaskView, "task" | "plan">): boolean => {
  if (hasRole(principal, "auditor")) return true
  const mine = view.task.requestedBy.id === principal.id
  if (mine) return principal.roles.includes("submitter") || principal.roles.includes("approver")
  return principal.roles.includes("approver") && view.plan.steps.some((s) => s.decision.effect === "require_approval")
}

/**
 * The events of every task `principal` may see, live from the moment the effect runs, for the life of the scope.
 * Whether a task is visible is decided once per task (its requester and plan never change) and remembered.
 *
 * @category constructors
 * @since 0.1.0
 */
export const taskFeed = (principal: Principal): Effect.Effect<Stream.Stream<TaskEvent>, never, Runtime | Scope.Scope> =>
  Effect.gen(function* () {
    const runtime = yield* Runtime
    const events = yield* runtime.events()
    if (hasRole(principal, "auditor")) return events
    const visible = new Map<string, boolean>()
    return Stream.filterEffect(events, (event) => {
      const known = visible.get(event.taskId)
      if (known !== undefined) return Effect.succeed(known)
      return runtime.get(event.taskId).pipe(
        Effect.map((view) => canFollow(principal, view)),
        // A task that cannot be read now is not shown; the next event asks again
        Effect.tap((seen) =>
          Effect.sync(() => {
            if (visible.size >= 10_000) visible.clear()
            visible.set(event.taskId, seen)
          })
        ),
        Effect.orElseSucceed(() => false)
      )
    })
  })
