/**
 * The step runner: how a step job becomes an attempt and its outcome a transition. `runStep` records the attempt
 * as started, decodes the step's params and runs its handler (StepHandlers.ts); `settleStep` is the one path by
 * which any attempt's outcome — in-process, remote or found by reconcile — is recorded.
 *
 * @since 0.1.0
 */
import { Duration, Effect, Option, Schema } from "effect"
import { type StepId, TaskId } from "../Ids.ts"
import { decode, type InvalidInput } from "../InvalidInput.ts"
import type { Job } from "../Job.ts"
import type { Ledger } from "../Ledger.ts"
import type { Plan } from "../Plan.ts"
import type { Principal } from "../Principal.ts"
import type { StepErrorInfo } from "../Step.ts"
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
export const decodeStepJob = (payload: unknown): Effect.Effect<StepJobRef, InvalidInput> => {
  // The runtime wrote these payloads itself: the common case is checked by hand, the schema only explains a bad one
  const p = payload as { readonly taskId?: unknown; readonly stepId?: unknown; readonly round?: unknown } | null
  return typeof p === "object" &&
    p !== null &&
    typeof p.stepId === "string" &&
    Number.isSafeInteger(p.round) &&
    isTaskId(p.taskId)
    ? Effect.succeed(p as StepJobRef)
    : decodeSlow(payload)
}
const decodeSlow = decode(StepJob, "$.payload")
const isTaskId = Schema.is(TaskId)

type StepJobRef = typeof StepJob.Type

type Checked =
  | { readonly _tag: "Succeeded"; readonly result: Schema.Json }
  | { readonly _tag: "Failed"; readonly error: StepErrorInfo }
  | { readonly _tag: "Refused"; readonly error: StepErrorInfo }

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

  // Results this process's handlers produced and `runStep` already checked against their schema: settling one
  // here need not decode it again (the outcome object is the one the worker got from `runStep`)
  const checkedResults = new WeakSet<object>()

  /** Records the attempt as started now, in a unit of its own (the record afterwards). */
  const startNow = (ref: StepJobRef, job: Job, worker: string, takeover: boolean) => {
    let current = true
    return Effect.map(
      transact(ref.taskId, (r, _plan, now) => {
        current = isCurrent(r, ref)
        if (!current) return Effect.succeed(undefined)
        return takeover
          ? Flow.stepStarted(r, ref.stepId as StepId, job.attempts, now, worker)
          : Effect.succeed(
              Flow.attemptSettled(r, ref.stepId as StepId, job, now, worker, (started) => ({
                record: started,
                commands: []
              }))
            )
      }),
      (record) => (current ? record : undefined)
    )
  }

  /**
   * Runs a step job's attempt. Its start is recorded with its outcome, in the settle unit (`Flow.attemptSettled`),
   * so a step is one unit of work, not two; it is recorded at once, in a unit of its own, only when the step shows
   * another attempt running (a takeover), when the queue counted attempts the task never heard of (lost ones), or
   * when the handler records entries of its own (they follow the start).
   */
  const runStep = (job: Job, worker: string) =>
    decodeStepJob(job.payload).pipe(
      Effect.mapError((e) => Worker.JobFailure.permanent(e.message)),
      Effect.flatMap((ref) => Effect.flatMap(currentRecord(ref), (record) => startIfDue(ref, job, worker, record))),
      Effect.flatMap((found) => (found.stale ? Effect.succeed(staleResult) : attempt(found, job, worker))),
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

  const staleResult = { stale: true } as const

  // The record as this process last wrote it spares a read; a job found stale is only trusted on a fresh read
  const currentRecord = (ref: StepJobRef) => {
    const known = transitions.recent(ref.taskId)
    if (known !== undefined && isCurrent(known, ref)) return Effect.succeed(known)
    return Effect.flatMap(transitions.mustGet(ref.taskId), (record) =>
      isCurrent(record, ref)
        ? Effect.succeed(record)
        : // The memory queue shows a job as soon as it is enqueued, before the unit enqueuing it has committed: a
          // read in a unit of its own waits for that one (on a database it is a fresh read). Stale only then
          transact(ref.taskId, () => Effect.succeed(undefined))
    )
  }

  type Found =
    | { readonly stale: true }
    | { readonly stale: false; readonly ref: StepJobRef; readonly record: TaskRecord; readonly started: boolean }

  // Shown running (a takeover), or with attempts the queue counted that the task never heard of (workers that
  // died or lost their lease): recorded now, while the job's lastError still names the last lost lease's
  // holder. Left to the settle unit, a second expiry in between would overwrite whose the first one was.
  const startIfDue = (ref: StepJobRef, job: Job, worker: string, record: TaskRecord) => {
    if (!isCurrent(record, ref)) return Effect.succeed<Found>(staleResult)
    const step = record.steps.find((s) => s.id === ref.stepId)!
    const lost = job.attempts > step.attempts + 1
    if (step.state !== "running" && !lost) return Effect.succeed<Found>({ stale: false, ref, record, started: false })
    return Effect.map(
      startNow(ref, job, worker, !lost),
      (after): Found => (after === undefined ? staleResult : { stale: false, ref, record: after, started: true })
    )
  }

  const attempt = (found: Extract<Found, { stale: false }>, job: Job, worker: string) => {
    const { ref, record } = found
    let started = found.started
    const ensureStarted = Effect.suspend(() =>
      started
        ? Effect.void
        : Effect.map(startNow(ref, job, worker, false), () => {
            started = true
          })
    )
    return Effect.flatMap(planOf(record), (plan) => {
      const planned = plan.steps.find((s) => s.id === ref.stepId)!
      const handler = handlers.get(planned.type)
      if (Option.isNone(handler)) return Effect.fail(StepError.permanent(`no handler for step type ${planned.type}`))
      const h = handler.value
      const params = Schema.decodeUnknownEffect(h.params)(planned.params).pipe(
        Effect.mapError((e) => StepError.permanent(`params do not match the ${planned.type} handler: ${e.message}`))
      )
      const ctx = {
        task: record.task,
        step: planned,
        attempt: job.attempts,
        idempotencyKey: `${record.task.id}/${planned.id}`,
        record: (kind: string, payload: Schema.Json) =>
          ensureStarted.pipe(
            Effect.andThen(
              ledger.record([{ kind, taskId: record.task.id, stepId: planned.id, payload, storePayload: true }])
            ),
            Effect.asVoid,
            Effect.mapError((e) =>
              e._tag === "InvalidInput" ? StepError.permanent(e.message) : StepError.transient(e.message)
            )
          )
      }
      const timed = <A, E, R>(run: Effect.Effect<A, E, R>): Effect.Effect<A, E | StepError, R> =>
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
      const result = Effect.flatMap(params, (decoded) =>
        timed(h.run(decoded, ctx)).pipe(
          Effect.annotateLogs({ taskId: record.task.id, stepId: planned.id, attempt: job.attempts }),
          Effect.withLogSpan(`step.${planned.type}`),
          // Stopped mid-run (a shutdown, a lost lease): the attempt ran, so its start is recorded before the job goes
          Effect.onInterrupt(() => Effect.ignore(ensureStarted))
        )
      )
      return result.pipe(
        Effect.flatMap((value) =>
          Schema.encodeEffect(h.result)(value).pipe(
            Effect.mapError((e) =>
              StepError.permanent(`result does not match the ${planned.type} handler: ${e.message}`)
            )
          )
        ),
        // The same check `settle` makes: a result it would refuse fails the attempt here, before the job completes
        Effect.flatMap((encoded) =>
          checkResult(h, planned.type, encoded as Schema.Json).pipe(Effect.mapError(StepError.permanent))
        ),
        Effect.map((checked) => {
          if (typeof checked === "object" && checked !== null) checkedResults.add(checked)
          return checked
        })
      )
    })
  }

  /** A result decoded against the handler's result schema: the JSON to record, or why it is refused. */
  const checkOutcome = (plan: Plan, stepId: StepId, outcome: Worker.Outcome): Effect.Effect<Checked> => {
    if (outcome._tag === "Failed") {
      return Effect.succeed({ _tag: "Failed", error: { message: outcome.error, retryable: outcome.retryable } })
    }
    const result = outcome.result
    if (typeof result === "object" && result !== null && checkedResults.has(result)) {
      return Effect.succeed({ _tag: "Succeeded", result })
    }
    const planned = plan.steps.find((s) => s.id === stepId)!
    const handler = handlers.get(planned.type)
    const checked = Option.isNone(handler)
      ? Effect.fail(`no handler for step type ${planned.type}`)
      : checkResult(handler.value, planned.type, result)
    return checked.pipe(
      Effect.match({
        onSuccess: (json): Checked => ({ _tag: "Succeeded", result: json }),
        // The job is finished either way: a refused result cannot be retried within it, so the attempt is final
        onFailure: (message): Checked => ({ _tag: "Refused", error: { message, retryable: false } })
      })
    )
  }

  const settleChecked = (
    r: TaskRecord,
    plan: Plan,
    stepId: StepId,
    checked: Checked,
    final: boolean,
    worker: string | undefined,
    now: number
  ): Flow.Transition =>
    checked._tag === "Succeeded"
      ? Flow.stepSucceeded(r, plan, stepId, checked.result, now, worker)
      : Flow.stepFailed(r, stepId, checked.error, checked._tag === "Refused" || final, now, worker)

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
    Effect.map(checkOutcome(plan, stepId, outcome), (checked) =>
      settleChecked(r, plan, stepId, checked, final, worker, now)
    )

  const settleStep = (job: Job, outcome: Worker.Outcome, worker: string, principal?: Principal) =>
    Effect.flatMap(decodeStepJob(job.payload), (ref) =>
      transact(ref.taskId, (r, plan, now) => {
        if (!isCurrent(r, ref)) return Effect.succeed(undefined)
        const stepId = ref.stepId as StepId
        if (outcome._tag === "Completed" && (outcome.result as { stale?: boolean } | null)?.stale === true) {
          return Effect.succeed(undefined)
        }
        const step = r.steps.find((s) => s.id === stepId)!
        const final = job.state === "dead_lettered"
        if (step.state === "running") {
          // Started in a unit of its own (a remote offer, a takeover, a handler's own entries). Another worker
          // started the step since (this one's lease expired and was taken over): not ours to settle. (Steps
          // started before workers were recorded name none.)
          if (step.worker !== undefined && step.worker !== worker) return Effect.succeed(undefined)
          return Effect.map(checkOutcome(plan, stepId, outcome), (checked) =>
            byPrincipal(principal)(settleChecked(r, plan, stepId, checked, final, worker, now))
          )
        }
        // The attempt's start is recorded here, with its outcome, in this one unit
        return Effect.map(checkOutcome(plan, stepId, outcome), (checked) =>
          byPrincipal(principal)(
            Flow.attemptSettled(r, stepId, job, now, worker, (started) =>
              settleChecked(started, plan, stepId, checked, final, worker, now)
            )
          )
        )
      })
    )

  return { runStep, settleOutcome, settleStep }
}

/**
 * The step runner (what `make` builds).
 *
 * @category models
 * @since 0.1.0
 */
export type StepRunner = ReturnType<typeof make>
