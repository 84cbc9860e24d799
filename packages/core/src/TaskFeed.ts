/**
 * The live feed of task events a principal may see: every task's events (`Runtime.events()`), kept to the tasks
 * the principal could also read one by one (`Access`). It is what an operator's screen follows (the console's task
 * list), so that a list of tasks updates as they change without a stream per task.
 *
 * @since 0.1.0
 */
import { Effect, type Scope, Stream } from "effect"
import * as Access from "./Access.ts"
import type { Principal } from "./Principal.ts"
import { Runtime, type TaskEvent } from "./Runtime.ts"

/**
 * The events of every task `principal` may see (`Access.canRead`), live from the moment the effect runs, for the
 * life of the scope. Whether a task is visible is decided once per task (its requester and plan never change) and
 * remembered.
 *
 * @category constructors
 * @since 0.1.0
 */
export const taskFeed = (principal: Principal): Effect.Effect<Stream.Stream<TaskEvent>, never, Runtime | Scope.Scope> =>
  Effect.gen(function* () {
    const runtime = yield* Runtime
    const events = yield* runtime.events()
    if (Access.scopeOf(principal)._tag === "All") return events
    const visible = new Map<string, boolean>()
    return Stream.filterEffect(events, (event) => {
      const known = visible.get(event.taskId)
      if (known !== undefined) return Effect.succeed(known)
      // Read as the principal: a task it may not see fails like a missing one
      return runtime.get(event.taskId, principal).pipe(
        Effect.as(true),
        Effect.catchTag("TaskNotFound", () => Effect.succeed(false)),
        Effect.tap((seen) =>
          Effect.sync(() => {
            if (visible.size >= 10_000) visible.clear()
            visible.set(event.taskId, seen)
          })
        ),
        // A task that cannot be read now (a store failure) is not shown; the next event asks again
        Effect.orElseSucceed(() => false)
      )
    })
  })
