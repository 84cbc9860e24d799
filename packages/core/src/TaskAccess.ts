/**
 * Reading a task as a principal: the stored record, through the `Access` rules. Every read of a task on someone's
 * behalf (the runtime's views, events and decisions, task evidence, host ledger records) starts here.
 *
 * @since 0.1.0
 */
import { Effect, Option } from "effect"
import { canRead, isGated, type Readable } from "./Access.ts"
import type { TaskId } from "./Ids.ts"
import type { Principal } from "./Principal.ts"
import { TaskNotFound, type TaskRecord, TaskStore, type TaskStoreError } from "./TaskStore.ts"

/**
 * The task's stored record if `principal` may read it; `TaskNotFound` if it may not, exactly as if it did not exist.
 * Tasks stored before they carried `gated` are judged by their plan.
 *
 * @category accessors
 * @since 0.1.0
 */
export const readRecord = (
  taskId: TaskId,
  principal: Principal
): Effect.Effect<TaskRecord, TaskNotFound | TaskStoreError, TaskStore> =>
  Effect.gen(function* () {
    const store = yield* TaskStore
    const record = yield* store.get(taskId)
    let task: Readable = record.task
    if (task.gated === undefined && record.task.planId !== undefined && !canRead(principal, task)) {
      const plan = yield* store.getPlan(record.task.planId).pipe(
        Effect.map(Option.some),
        Effect.catchTag("PlanNotFound", () => Effect.succeedNone)
      )
      if (Option.isSome(plan)) task = { ...task, gated: isGated(plan.value) }
    }
    if (!canRead(principal, task)) return yield* new TaskNotFound({ taskId })
    return record
  })
