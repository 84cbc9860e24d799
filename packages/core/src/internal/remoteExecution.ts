/**
 * Remote steps, the runtime's side: a pool's agents claim step jobs (each offered with its params and recorded
 * as started, as the in-process worker would), heartbeat their leases, and complete or fail them — settled
 * through the step runner's one settle path, in the same unit of work as the queue's update.
 *
 * @since 0.1.0
 */
import { Cause, Clock, Effect, Option, Result, Schema } from "effect"
import type { AgentId, JobId, StepId } from "../Ids.ts"
import { InvalidInput } from "../InvalidInput.ts"
import { type Job, poolQueue } from "../Job.ts"
import type { Principal } from "../Principal.ts"
import { JobNotFound, prepareResult, type Queue } from "../Queue.ts"
import type { ClaimedStep, RemoteExecution, RemoteSettlement, StoreError } from "../Runtime.ts"
import type { StepHandlers } from "../StepHandlers.ts"
import { type TaskStore, TaskStoreError } from "../TaskStore.ts"
import type { UnitOfWork } from "../UnitOfWork.ts"
import type * as Worker from "../Worker.ts"
import { byPrincipal, checkResult, decodeStepJob, isCurrent, type StepRunner } from "./stepRunner.ts"
import * as Flow from "./taskFlow.ts"
import type { Transitions } from "./transitions.ts"

/**
 * The runtime's `RemoteExecution` over its stores, transitions and step runner.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (options: {
  readonly store: TaskStore["Service"]
  readonly queue: Queue["Service"]
  readonly uow: UnitOfWork["Service"]
  readonly handlers: StepHandlers["Service"]
  readonly transitions: Transitions
  readonly runner: StepRunner
}): RemoteExecution => {
  const { store, queue, uow, handlers, transitions, runner } = options
  const { transact, planOf } = transitions
  const { settleStep } = runner

  /** A remote step job of `pool` (a job of any other queue does not exist for this pool's agents). */
  const poolJob = (pool: string, leaseId: JobId) =>
    Effect.flatMap(queue.get(leaseId), (job) =>
      job.queue === poolQueue(pool) ? Effect.succeed(job) : Effect.fail(new JobNotFound({ jobId: leaseId }))
    )

  /**
   * Offers a claimed job to its agent: records the attempt as started by `worker` (as the in-process worker does),
   * and decodes the step's params with the declaration's schema. A stale job (its step moved on) is completed as
   * such and not offered; params that do not decode fail the step through the settle path.
   */
  const offer = (job: Job, worker: AgentId, principal: Principal | undefined) =>
    Effect.gen(function* () {
      const ref = yield* decodeStepJob(job.payload)
      let current = true
      const record = yield* transact(ref.taskId, (r, _plan, now) => {
        current = isCurrent(r, ref)
        return current
          ? Effect.map(Flow.stepStarted(r, ref.stepId as StepId, job.attempts, now, worker), byPrincipal(principal))
          : Effect.succeed(undefined)
      })
      if (!current) {
        yield* queue.complete(job.id, worker, { stale: true })
        return Option.none<ClaimedStep>()
      }
      const plan = yield* planOf(record)
      const planned = plan.steps.find((s) => s.id === ref.stepId)!
      const declared = handlers.get(planned.type)
      const params = Option.isNone(declared)
        ? Result.fail(`no declaration for step type ${planned.type}`)
        : Result.mapError(
            Result.flatMap(Schema.decodeUnknownResult(declared.value.params)(planned.params), (decoded) =>
              Schema.encodeUnknownResult(declared.value.params)(decoded)
            ),
            (e) => `params do not match the ${planned.type} step type: ${e.message}`
          )
      if (Result.isFailure(params)) {
        yield* settleRemote(job.id, worker, { _tag: "Failed", error: params.failure, retryable: false }, principal)
        return Option.none<ClaimedStep>()
      }
      return Option.some<ClaimedStep>({
        leaseId: job.id,
        workerId: worker,
        leaseExpiresAt: job.lease?.expiresAt ?? 0,
        taskId: record.task.id,
        stepId: planned.id,
        type: planned.type,
        attempt: job.attempts,
        idempotencyKey: `${record.task.id}/${planned.id}`,
        params: params.success as Schema.Json
      })
    })

  /** Writes a remote attempt's outcome to the queue and settles the step, in one unit (as the worker's `finish`). */
  const settleRemote = (leaseId: JobId, worker: AgentId, outcome: Worker.Outcome, principal: Principal | undefined) =>
    uow
      .run(
        Effect.gen(function* () {
          const after =
            outcome._tag === "Completed"
              ? yield* queue.complete(leaseId, worker, outcome.result)
              : yield* queue.fail(leaseId, worker, outcome.error, { retryable: outcome.retryable })
          yield* settleStep(after, outcome, worker, principal)
          return after
        })
      )
      .pipe(Effect.catchTag("TaskNotFound", (cause) => Effect.fail(new TaskStoreError({ operation: "get", cause }))))

  const settlement = (job: Job, error?: string): Effect.Effect<RemoteSettlement, InvalidInput> =>
    Effect.map(decodeStepJob(job.payload), (ref) => ({
      leaseId: job.id,
      taskId: ref.taskId,
      stepId: ref.stepId as StepId,
      outcome: job.state === "completed" ? "succeeded" : job.state === "failed" ? "retrying" : "failed",
      ...(error === undefined ? (job.state === "completed" ? {} : { error: job.lastError }) : { error })
    }))

  /** One claim of the pool's queue, each job offered (or, stale or undecodable, settled and left out). */
  const claimOffered = (
    pool: string,
    workerId: AgentId,
    claimOptions: Parameters<RemoteExecution["claim"]>[2]
  ): Effect.Effect<ReadonlyArray<ClaimedStep>, InvalidInput | StoreError> =>
    Effect.gen(function* () {
      const jobs = yield* queue.claim({
        workerId,
        queues: [poolQueue(pool)],
        ...(claimOptions?.max === undefined ? {} : { max: claimOptions.max }),
        ...(claimOptions?.leaseMs === undefined ? {} : { leaseMs: claimOptions.leaseMs })
      })
      const offered = yield* Effect.forEach(jobs, (job) =>
        offer(job, workerId, claimOptions?.principal).pipe(
          // One job that cannot be offered now (a store hiccup) is not lost: its lease expires and it comes back
          Effect.catchCause((cause) =>
            Cause.hasInterruptsOnly(cause)
              ? Effect.interrupt
              : Effect.as(Effect.logWarning("offering a remote step failed", cause), Option.none<ClaimedStep>())
          )
        )
      )
      return offered.flatMap((o) => (Option.isSome(o) ? [o.value] : []))
    })

  return {
    claim: (pool, workerId, claimOptions) =>
      Effect.gen(function* () {
        const waitMs = claimOptions?.waitMs ?? 0
        if (!Number.isInteger(waitMs) || waitMs < 0 || waitMs > 60_000) {
          return yield* InvalidInput.at("$.waitMs", "Expected an integer between 0 and 60000")
        }
        const claimOnce = claimOffered(pool, workerId, claimOptions)
        if (waitMs === 0) return yield* claimOnce
        // Subscribed before the first claim, so a step enqueued in between still wakes this claim
        const next = yield* queue
          .wakeups({ queues: [poolQueue(pool)] })
          .pipe(Effect.catch(() => Effect.succeed(Effect.never)))
        const deadline = (yield* Clock.currentTimeMillis) + waitMs
        const until = Effect.as(claimOptions?.until ?? Effect.never, true)
        let offered = yield* claimOnce
        while (offered.length === 0) {
          const left = deadline - (yield* Clock.currentTimeMillis)
          if (left <= 0) break
          // Delayed steps and retries coming due send no wake-up: look again at least every second
          const ended = yield* Effect.raceFirst(
            Effect.as(Effect.raceFirst(next, Effect.sleep(Math.min(left, 1_000))), false),
            until
          )
          if (ended) break
          offered = yield* claimOnce
        }
        return offered
      }).pipe(Effect.scoped),
    heartbeat: (pool, leaseId, workerId, extendMs) =>
      poolJob(pool, leaseId).pipe(
        Effect.andThen(queue.heartbeat(leaseId, workerId, extendMs)),
        Effect.map((job) => job.lease?.expiresAt ?? 0)
      ),
    complete: (pool, leaseId, workerId, result, principal) =>
      Effect.gen(function* () {
        const job = yield* poolJob(pool, leaseId)
        const ref = yield* decodeStepJob(job.payload)
        const record = yield* store
          .get(ref.taskId)
          .pipe(
            Effect.catchTag("TaskNotFound", (cause) => Effect.fail(new TaskStoreError({ operation: "get", cause })))
          )
        const plan = yield* planOf(record)
        const type = plan.steps.find((s) => s.id === ref.stepId)?.type ?? ""
        const declared = handlers.get(type)
        // The one check `settle` makes, made first: a refused result is a failed attempt carrying the decode error
        const checked = yield* Effect.result(
          Option.isNone(declared)
            ? Effect.fail(`no declaration for step type ${type}`)
            : Effect.flatMap(
                prepareResult(result).pipe(Effect.mapError((e) => `result is not JSON: ${e.message} at ${e.path}`)),
                (json) => checkResult(declared.value, type, json)
              )
        )
        if (Result.isFailure(checked)) {
          const after = yield* settleRemote(
            leaseId,
            workerId,
            { _tag: "Failed", error: checked.failure, retryable: false },
            principal
          )
          return yield* settlement(after, checked.failure)
        }
        const after = yield* settleRemote(leaseId, workerId, { _tag: "Completed", result: checked.success }, principal)
        return yield* settlement(after)
      }),
    fail: (pool, leaseId, workerId, failure, principal) =>
      Effect.gen(function* () {
        yield* poolJob(pool, leaseId)
        const after = yield* settleRemote(
          leaseId,
          workerId,
          { _tag: "Failed", error: failure.message, retryable: failure.retryable ?? true },
          principal
        )
        return yield* settlement(after)
      })
  }
}
