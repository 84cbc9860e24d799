/**
 * Dead letters: jobs that used up their attempts (or failed permanently), and who may send them back to the queue.
 * Redriving is an administrator's decision. The runtime's own queues (`mandate.*`) are not redriven job by job:
 * a dead-lettered step has failed its task, and the task is retried as a whole (`Runtime.retry`), so that the
 * task's record, its jobs and its ledger stay one story.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { JobId } from "./Ids.ts"
import type { Job } from "./Job.ts"
import { hasRole, type Principal } from "./Principal.ts"
import { type JobNotFound, Queue, type QueueStoreError } from "./Queue.ts"
import { Forbidden } from "./Runtime.ts"
import type { IllegalTransition } from "./Task.ts"

/**
 * Whether a queue belongs to the runtime (its steps, its approval deadlines).
 *
 * @category predicates
 * @since 0.1.0
 */
export const isRuntimeQueue = (queue: string): boolean => queue.startsWith("mandate.")

/**
 * Sends a dead-lettered job back to its queue with a fresh attempt budget: admins only, and never a job of the
 * runtime's queues (retry its task instead).
 *
 * @category operations
 * @since 0.1.0
 */
export const redrive = Effect.fn("DeadLetters.redrive")(function* (
  jobId: JobId,
  principal: Principal
): Effect.fn.Return<Job, Forbidden | JobNotFound | IllegalTransition | QueueStoreError, Queue> {
  const action = `redrive job ${jobId}`
  if (!hasRole(principal, "admin")) {
    return yield* new Forbidden({ principal: principal.id, action, reason: "the admin role is required" })
  }
  const queue = yield* Queue
  const job = yield* queue.get(jobId)
  if (isRuntimeQueue(job.queue)) {
    return yield* new Forbidden({
      principal: principal.id,
      action,
      reason: `${job.queue} is the runtime's queue: retry the job's task instead (POST /task/{id}/retry)`
    })
  }
  return yield* queue.retryDeadLettered(jobId)
})
