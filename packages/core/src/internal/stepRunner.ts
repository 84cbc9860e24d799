/**
 * The step runner: how a step job becomes an attempt and its outcome a transition. `runStep` records the attempt
 * as started, decodes the step's params and runs its handler (StepHandlers.ts); `settleStep` is the one path by
 * which any attempt's outcome — in-process, remote or found by reconcile — is recorded.
 *
 * @since 0.1.0
 */
import { Duration, Effect, Option, Schema } from "effect"
import { type StepId, TaskId } from "../Ids.ts"
import { decode } from "../InvalidInput.ts"
import type { Job } from "../Job.ts"
import type { Ledger } from "../Ledger.ts"
import type { Plan } from "../Plan.ts"
import type { Principal } from "../Principal.ts"
import { StepError, type StepHandler, type StepHandlers } from "../StepHandlers.ts"
import type { TaskRecord } from "../TaskStore.ts"
import * as Worker from "../Worker.ts"
import * as Flow from "./taskFlow.ts"
import type { Transitions } from "./transitions.ts"

/**
 * A step job's payload: which step of which task, in which round.
 *
 * @category models
 * @since 0.1.0
 */
export const StepJob = Schema.Struct({ taskId: TaskId, stepId: Schema.String, round: Schema.Int })

/**
 * Decodes a step job's payload (`$.payload` in errors).
 *
 * @category decoding
 * @since 0.1.0
 */
export const decodeStepJob = decode(StepJob, "$.payload")

/**
 * A step job whose step has moved on (cancelled, re-planned, an older round) is stale: it does nothing.
 *
 * @category predicates
 * @since 0.1.0
 */
export const isCurrent = (record: TaskRecord, job: { readonly stepId: string; readonly round: number }): boolean => {
  const step = record.steps.find((s) => s.id === job.stepId)
  const active = record.task.state === "running" || record.task.state === "waiting_approval"
  return (
    step !== undefined && step.round === job.round && (step.state === "queued" || step.state === "running") && active
  )
}

/**
 * A step result as the handler's result schema decodes it: the JSON to record, or why it is refused.
 *
 * @category decoding
 * @since 0.1.0
 */
export const checkResult = (
  handler: StepHandler<any, any, never>,
  type: string,
  result: Schema.Json
): Effect.Effect<Schema.Json, string> =>
  Schema.decodeUnknownEffect(handler.result)(result).pipe(
    Effect.as(result),
    Effect.mapError((e) => `result does not match the ${type} handler: ${e.message}`)
  )

/**
 * Names `principal` (a remote agent's) on the transition's `step.*` entries.
 *
 * @category flow
 * @since 0.1.0
 */
export const byPrincipal =
  (principal: Principal | undefined) =>
  (transition: Flow.Transition): Flow.Transition =>
    principal === undefined
      ? transition
      : {
          ...transition,
          commands: transition.commands.map((c) =>
            c._tag === "Record" && c.kind.startsWith("step.") && c.principal === undefined ? { ...c, principal } : c
          )
        }

/**
 * The step runner over the runtime's transitions and handlers.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (options: {
  readonly transitions: Transitions
  readonly handlers: StepHandlers["Service"]
  readonly ledger: Ledger["Service"]
}) => {
  const { transitions, handlers, ledger } = options
  const { transact, planOf } = transitions

  const runStep = (job: Job, worker: string) =>
    Effect.gen(function* () {
      const ref = yield* decodeStepJob(job.payload).pipe(Effect.mapError((e) => Worker.JobFailure.permanent(e.message)))
      let current = true
      const record = yield* transact(ref.taskId, (r, _plan, now) => {
        current = isCurrent(r, ref)
        return current
          ? Flow.stepStarted(r, ref.stepId as StepId, job.attempts, now, worker)
          : Effect.succeed(undefined)
      })
      if (!current) return { stale: true }
      const plan = yield* planOf(record)
      const planned = plan.steps.find((s) => s.id === ref.stepId)!
      const handler = handlers.get(planned.type)
      if (Option.isNone(handler)) return yield* StepError.permanent(`no handler for step type ${planned.type}`)
      const h = handler.value
      const params = yield* Schema.decodeUnknownEffect(h.params)(planned.params).pipe(
        Effect.mapError((e) => StepError.permanent(`params do not match the ${planned.type} handler: ${e.message}`))
      )
      const ctx = {
        task: record.task,
        step: planned,
        attempt: job.attempts,
        idempotencyKey: `${record.task.id}/${planned.id}`,
        record: (kind: string, payload: Schema.Json) =>
          ledger.append({ kind, taskId: record.task.id, stepId: planned.id, payload, storePayload: true }).pipe(
            Effect.asVoid,
            Effect.mapError((e) =>
              e._tag === "InvalidInput" ? StepError.permanent(e.message) : StepError.transient(e.message)
            )
          )
      }
      const run = h.run(params, ctx)
      const timed =
        h.timeout === undefined
          ? run
          : run.pipe(
              Effect.timeoutOrElse({
                duration: h.timeout,
                orElse: () =>
                  Effect.fail(
                    StepError.transient(
                      `attempt timed out after ${Duration.format(Duration.fromInputUnsafe(h.timeout!))}`
                    )
                  )
              })
            )
      const result = yield* timed.pipe(
        Effect.annotateLogs({ taskId: record.task.id, stepId: planned.id, attempt: job.attempts }),
        Effect.withLogSpan(`step.${planned.type}`)
      )
      const encoded = (yield* Schema.encodeEffect(h.result)(result).pipe(
        Effect.mapError((e) => StepError.permanent(`result does not match the ${planned.type} handler: ${e.message}`))
      )) as Schema.Json
      // The same check `settle` makes: a result it would refuse fails the attempt here, before the job completes
      return yield* checkResult(h, planned.type, encoded).pipe(Effect.mapError(StepError.permanent))
    }).pipe(
      Effect.mapError((e) =>
        e instanceof StepError
          ? new Worker.JobFailure({
              message: e.message,
              retryable: e.retryable,
              ...(e.details === undefined ? {} : { details: e.details })
            })
          : e
      )
    )

  /**
   * The one path by which a step's outcome is recorded, whoever ran it. It takes effect only for the step's
   * current attempt as started by `worker` (the lease holder named in `step.started`); a result is decoded against
   * the handler's result schema, and one that does not decode is a failed attempt carrying the decode error,
   * never a success. The worker is named in the `step.succeeded` / `step.failed` entry.
   */
  const settleOutcome = (
    r: TaskRecord,
    plan: Plan,
    stepId: StepId,
    outcome: Worker.Outcome,
    final: boolean,
    worker: string | undefined,
    now: number
  ): Effect.Effect<Flow.Transition> =>
    Effect.gen(function* () {
      if (outcome._tag === "Failed") {
        return Flow.stepFailed(r, stepId, { message: outcome.error, retryable: outcome.retryable }, final, now, worker)
      }
      const planned = plan.steps.find((s) => s.id === stepId)!
      const handler = handlers.get(planned.type)
      const checked = Option.isNone(handler)
        ? Effect.fail(`no handler for step type ${planned.type}`)
        : checkResult(handler.value, planned.type, outcome.result)
      return yield* checked.pipe(
        Effect.match({
          onSuccess: (result) => Flow.stepSucceeded(r, plan, stepId, result, now, worker),
          // The job is finished either way: a refused result cannot be retried within it, so the attempt is final
          onFailure: (message) => Flow.stepFailed(r, stepId, { message, retryable: false }, true, now, worker)
        })
      )
    })

  const settleStep = (job: Job, outcome: Worker.Outcome, worker: string, principal?: Principal) =>
    Effect.gen(function* () {
      const ref = yield* decodeStepJob(job.payload)
      yield* transact(ref.taskId, (r, plan, now) => {
        if (!isCurrent(r, ref)) return Effect.succeed(undefined)
        const stepId = ref.stepId as StepId
        // Another worker started the step since (this one's lease expired and was taken over): not ours to settle.
        // (Steps started before workers were recorded name none.)
        const startedBy = r.steps.find((s) => s.id === stepId)?.worker
        if (startedBy !== undefined && startedBy !== worker) return Effect.succeed(undefined)
        if (outcome._tag === "Completed" && (outcome.result as { stale?: boolean } | null)?.stale === true) {
          return Effect.succeed(undefined)
        }
        return Effect.map(
          settleOutcome(r, plan, stepId, outcome, job.state === "dead_lettered", worker, now),
          byPrincipal(principal)
        )
      })
    })

  return { runStep, settleOutcome, settleStep }
}

/**
 * The step runner (what `make` builds).
 *
 * @category models
 * @since 0.1.0
 */
export type StepRunner = ReturnType<typeof make>
