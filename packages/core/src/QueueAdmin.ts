/**
 * Queue administration: redrive a dead-lettered job (back to `queued` with a fresh attempt budget). Admins only,
 * and never a job of the runtime's own queues (`mandate.*`): a dead step job is retried through its task
 * (`Runtime.retry`), which keeps the task's state and ledger in step with the job.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer } from "effect"
import { JobId } from "./Ids.ts"
import { decode, type InvalidInput } from "./InvalidInput.ts"
import { isReservedQueue, type Job } from "./Job.ts"
import { hasRole, type Principal } from "./Principal.ts"
import { type JobNotFound, Queue, type QueueStoreError } from "./Queue.ts"
import { Forbidden } from "./Runtime.ts"
import type { IllegalTransition } from "./Task.ts"

const decodeJobId = decode(JobId, "$.jobId")

/**
 * @category services
 * @since 0.1.0
 */
export class QueueAdmin extends Context.Service<
  QueueAdmin,
  {
    /** dead_lettered → queued with a fresh attempt budget (admins; not the runtime's queues). */
    readonly redrive: (
      jobId: string,
      principal: Principal
    ) => Effect.Effect<Job, Forbidden | InvalidInput | JobNotFound | IllegalTransition | QueueStoreError>
  }
>()("@mandate/core/QueueAdmin") {
  /**
   * Administration over the `Queue`.
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layer: Layer.Layer<QueueAdmin, never, Queue> = Layer.effect(
    QueueAdmin,
    Effect.gen(function* () {
      const queue = yield* Queue
      return QueueAdmin.of({
        redrive: Effect.fn("QueueAdmin.redrive")(function* (input: string, principal: Principal) {
          if (!hasRole(principal, "admin")) {
            return yield* new Forbidden({
              principal: principal.id,
              action: "redrive jobs",
              reason: "the admin role is required"
            })
          }
          const jobId = yield* decodeJobId(input)
          const job = yield* queue.get(jobId)
          if (isReservedQueue(job.queue)) {
            return yield* new Forbidden({
              principal: principal.id,
              action: `redrive job ${jobId}`,
              reason: `${job.queue} is the runtime's own queue; retry the job's task instead`
            })
          }
          return yield* queue.retryDeadLettered(jobId)
        })
      })
    })
  )
}
