/**
 * The task flow: pure decisions of the runtime. Given a task record and its plan, each function returns the
 * next record and the commands that must take effect with it (jobs to enqueue or cancel, ledger entries,
 * events). The runtime applies a transition in one unit of work; backends never re-implement any of this.
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import type { Approval } from "../Approval.ts"
import type { JobId, StepId } from "../Ids.ts"
import { denials, type Plan, type PlannedStep } from "../Plan.ts"
import { hasRole, type Principal, system } from "../Principal.ts"
import type { Step, StepErrorInfo } from "../Step.ts"
import { IllegalTransition, type Task, type TaskState } from "../Task.ts"
import type { TaskRecord } from "../TaskStore.ts"

/**
 * The principal may not approve or reject: wrong role, the requester (four eyes) or a repeat approver.
 *
 * @category errors
 * @since 0.1.0
 */
export class ApprovalForbidden extends Schema.TaggedError<ApprovalForbidden>()("ApprovalForbidden", {
  taskId: Schema.String,
  principal: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.principal} may not decide on task ${this.taskId}: ${this.reason}`
  }
}

/**
 * The step named does not exist, or no single step waits for approval. `problem` says which: `missing` (no such
 * step), `not_waiting` (the step is in another state), `none_waiting` or `ambiguous` (no step named, and not
 * exactly one waits), so callers can tell an unknown step from a state conflict without reading `reason`.
 *
 * @category errors
 * @since 0.1.0
 */
export class StepNotFound extends Schema.TaggedError<StepNotFound>()("StepNotFound", {
  taskId: Schema.String,
  stepId: Schema.String,
  problem: Schema.Literals(["missing", "not_waiting", "none_waiting", "ambiguous"]),
  reason: Schema.String
}) {
  override get message(): string {
    return `Task ${this.taskId}: ${this.reason}`
  }
}

/**
 * What must happen together with a new record.
 *
 * @category models
 * @since 0.1.0
 */
export type Command =
  | { readonly _tag: "Enqueue"; readonly step: Step; readonly planned: PlannedStep }
  | { readonly _tag: "ScheduleDeadline"; readonly stepId: StepId; readonly round: number; readonly at: number }
  | { readonly _tag: "CancelJob"; readonly jobId: JobId }
  | {
      readonly _tag: "Record"
      readonly kind: string
      readonly stepId?: StepId | undefined
      readonly principal?: Principal | undefined
      readonly payload: Schema.Json
    }
  | {
      readonly _tag: "Notify"
      readonly kind: string
      readonly stepId?: StepId | undefined
      readonly data?: Schema.Json
    }

/**
 * A new record and its commands.
 *
 * @category models
 * @since 0.1.0
 */
export interface Transition {
  readonly record: TaskRecord
  readonly commands: ReadonlyArray<Command>
}

const illegal = (record: TaskRecord, to: string) =>
  new IllegalTransition({ entity: "task", id: record.task.id, from: record.task.state, to })

const setStep = (record: TaskRecord, step: Step): TaskRecord => ({
  ...record,
  steps: record.steps.map((s) => (s.id === step.id ? step : s))
})

const withTask = (record: TaskRecord, state: TaskState, now: number, reasons?: ReadonlyArray<string>): TaskRecord => ({
  ...record,
  task: { ...record.task, state, reasons: reasons ?? record.task.reasons, updatedAt: now }
})

const withoutError = ({ error: _, ...rest }: Step): Step => rest

const stepOf = (record: TaskRecord, id: string): Step | undefined => record.steps.find((s) => s.id === id)
const plannedOf = (plan: Plan, id: string): PlannedStep => plan.steps.find((s) => s.id === id)!

/**
 * Approvals that count for a step now: granted, for its current round, bound to the current plan, params and
 * policy version.
 *
 * @category approvals
 * @since 0.1.0
 */
export const validApprovals = (record: TaskRecord, plan: Plan, step: Step): ReadonlyArray<Approval> => {
  const planned = plannedOf(plan, step.id)
  return record.approvals.filter(
    (a) =>
      a.stepId === step.id &&
      a.decision === "granted" &&
      a.round === step.round &&
      a.planHash === plan.hash &&
      a.paramsHash === planned.paramsHash &&
      a.policyVersion === plan.policyVersion &&
      record.task.planId === plan.id
  )
}

/**
 * How many distinct approvers a gated step needs.
 *
 * @category approvals
 * @since 0.1.0
 */
export const requiredApprovals = (planned: PlannedStep): number => planned.decision.approvals?.required ?? 1

const settledState = (record: TaskRecord): TaskState => {
  let done = true
  let waiting = false
  for (const { state } of record.steps) {
    if (state === "queued" || state === "running") return "running"
    if (state !== "succeeded" && state !== "skipped") done = false
    if (state === "waiting_approval") waiting = true
  }
  return done ? "completed" : waiting ? "waiting_approval" : "running"
}

/**
 * Schedules every pending step whose dependencies succeeded (queued, or waiting for approval) and settles the
 * task's state. Does nothing to a task that is not running or waiting for approval.
 *
 * @category flow
 * @since 0.1.0
 */
export const advance = (input: Transition, plan: Plan, now: number): Transition =>
  advanceOwned(input.record, [...input.commands], plan, now)

// `advance` onto a command list of the caller's own, appended to in place (no copy)
const advanceOwned = (input: TaskRecord, commands: Array<Command>, plan: Plan, now: number): Transition => {
  let record = input
  if (record.task.state !== "running" && record.task.state !== "waiting_approval") return { record, commands }
  const done = new Set<string>()
  for (const s of record.steps) if (s.state === "succeeded") done.add(s.id)
  for (const planned of plan.steps) {
    const step = stepOf(record, planned.id)!
    if (step.state !== "pending" || !planned.dependsOn.every((d) => done.has(d))) continue
    if (
      planned.decision.effect === "allow" ||
      validApprovals(record, plan, step).length >= requiredApprovals(planned)
    ) {
      const queued: Step = { ...step, state: "queued", updatedAt: now }
      record = setStep(record, queued)
      commands.push(
        { _tag: "Enqueue", step: queued, planned },
        { _tag: "Notify", kind: "step.queued", stepId: step.id }
      )
    } else {
      const timeout = planned.decision.approvals?.timeoutSeconds
      const deadlineAt = timeout === undefined ? undefined : now + timeout * 1000
      const waiting: Step = {
        ...step,
        state: "waiting_approval",
        updatedAt: now,
        ...(deadlineAt === undefined ? {} : { deadlineAt })
      }
      record = setStep(record, waiting)
      commands.push({
        _tag: "Notify",
        kind: "step.waiting_approval",
        stepId: step.id,
        data: { required: requiredApprovals(planned), ...(deadlineAt === undefined ? {} : { deadlineAt }) }
      })
      if (deadlineAt !== undefined) {
        commands.push({ _tag: "ScheduleDeadline", stepId: step.id, round: step.round, at: deadlineAt })
      }
    }
  }
  const next = settledState(record)
  if (next !== record.task.state) {
    record = withTask(record, next, now)
    if (next === "completed") {
      commands.push({
        _tag: "Record",
        kind: "task.completed",
        payload: { results: Object.fromEntries(record.steps.map((s) => [s.id, s.result ?? null])) }
      })
    } else {
      commands.push({ _tag: "Notify", kind: `task.${next}` })
    }
  }
  return { record, commands }
}

/**
 * A worker started an attempt of a step. `worker` (the lease holder's id) goes into the `step.started` entry.
 *
 * @category flow
 * @since 0.1.0
 */
export const stepStarted = (
  record: TaskRecord,
  stepId: StepId,
  attempt: number,
  now: number,
  worker?: string
): Effect.Effect<Transition, IllegalTransition> => {
  const step = stepOf(record, stepId)!
  if (step.state !== "queued" && step.state !== "running") {
    return Effect.fail(
      new IllegalTransition({ entity: "step", id: `${record.task.id}/${stepId}`, from: step.state, to: "running" })
    )
  }
  const next = setStep(record, {
    ...step,
    state: "running",
    attempts: step.attempts + 1,
    updatedAt: now,
    ...(worker === undefined ? {} : { worker })
  })
  return Effect.succeed({
    record: next,
    commands: [
      {
        _tag: "Record",
        kind: "step.started",
        stepId,
        // Which worker ran the attempt: after a lease expired, the audit trail shows who took the step over
        payload: { attempt, round: step.round, ...(worker === undefined ? {} : { worker }) }
      }
    ]
  })
}

// The queue's lease-expiry error names the holder (the same text on every backend)
const expiredHolder = (lastError: string | undefined): string | undefined =>
  lastError === undefined ? undefined : /^lease expired \(held by (.+)\)$/.exec(lastError)?.[1]

/**
 * A worker's attempt of a queued step, recorded when it settles (in the same unit as its outcome) rather than in
 * a unit of its own when it starts: `step.started` (with `claimedAt`, when the queue gave the attempt its lease)
 * then whatever `settle` adds. Attempts the job counts but the task never heard of (a worker that died or lost
 * its lease before settling) are recorded first, each as `step.started` and `step.failed` with `lost: true`,
 * naming the worker whose lease expired when the queue says so — every attempt and its worker stay in the ledger.
 *
 * @category flow
 * @since 0.1.0
 */
export const attemptSettled = (
  record: TaskRecord,
  stepId: StepId,
  job: { readonly attempts: number; readonly lastError?: string | undefined; readonly claimedAt?: number | undefined },
  now: number,
  worker: string,
  settle: (started: TaskRecord) => Transition
): Transition => {
  const step = stepOf(record, stepId)!
  const commands: Array<Command> = []
  for (let attempt = step.attempts + 1; attempt < job.attempts; attempt++) {
    const holder = attempt === job.attempts - 1 ? expiredHolder(job.lastError) : undefined
    const by = holder === undefined ? {} : { worker: holder }
    const error: StepErrorInfo = {
      message:
        attempt === job.attempts - 1 && job.lastError !== undefined ? job.lastError : "attempt lost before it settled",
      retryable: true
    }
    commands.push(
      { _tag: "Record", kind: "step.started", stepId, payload: { attempt, round: step.round, lost: true, ...by } },
      {
        _tag: "Record",
        kind: "step.failed",
        stepId,
        payload: { error, final: false, attempts: attempt, lost: true, ...by }
      }
    )
  }
  // Built field by field (a literal with a conditional spread is ~10× slower in V8), in the order it has always had
  const payload: { attempt: number; round: number; worker: string; claimedAt?: number } = {
    attempt: job.attempts,
    round: step.round,
    worker
  }
  if (job.claimedAt !== undefined) payload.claimedAt = job.claimedAt
  commands.push({ _tag: "Record", kind: "step.started", stepId, payload })
  const started = setStep(record, {
    ...step,
    state: "running",
    attempts: Math.max(step.attempts + 1, job.attempts),
    updatedAt: now,
    worker
  })
  const settled = settle(started)
  for (const c of settled.commands) commands.push(c)
  return { record: settled.record, commands }
}

/**
 * A step's attempt succeeded (its result already checked against the handler's result schema). Schedules what
 * became ready; completes the task when every step is done. `worker`, the lease holder that ran the attempt, goes
 * into the `step.succeeded` entry.
 *
 * @category flow
 * @since 0.1.0
 */
export const stepSucceeded = (
  record: TaskRecord,
  plan: Plan,
  stepId: StepId,
  result: Schema.Json,
  now: number,
  worker?: string
): Transition => {
  const step = stepOf(record, stepId)!
  // Object rest is slow in V8: taken only when there is an earlier attempt's error to drop
  const succeeded = (s: Step): Step => ({ ...s, state: "succeeded", result, updatedAt: now })
  const next = setStep(record, step.error === undefined ? succeeded(step) : succeeded(withoutError(step)))
  const payload: { result: Schema.Json; worker?: string } = { result }
  if (worker !== undefined) payload.worker = worker
  return advanceOwned(next, [{ _tag: "Record", kind: "step.succeeded", stepId, payload }], plan, now)
}

/**
 * A step's attempt failed (`worker`, the lease holder, goes into the entry). With retries left the step waits in the queue again; otherwise it fails and so does
 * the task, whose queued work is withdrawn (pending steps stay pending, ready for a retry of the task).
 *
 * @category flow
 * @since 0.1.0
 */
export const stepFailed = (
  record: TaskRecord,
  stepId: StepId,
  error: StepErrorInfo,
  final: boolean,
  now: number,
  worker?: string
): Transition => {
  const step = stepOf(record, stepId)!
  const entry: Command = {
    _tag: "Record",
    kind: "step.failed",
    stepId,
    payload: { error, final, attempts: step.attempts, ...(worker === undefined ? {} : { worker }) }
  }
  if (!final) return { record: setStep(record, { ...step, state: "queued", error, updatedAt: now }), commands: [entry] }
  let next = setStep(record, { ...step, state: "failed", error, updatedAt: now })
  const commands: Array<Command> = [entry]
  for (const other of next.steps) {
    if (other.state === "queued" && other.id !== stepId) {
      // A withdrawn step runs again in a new round (a new job), so its cancelled job is not reused
      next = setStep(next, { ...other, state: "pending", round: other.round + 1, updatedAt: now })
      if (other.jobId !== undefined) commands.push({ _tag: "CancelJob", jobId: other.jobId })
    }
  }
  if (next.task.state === "running" || next.task.state === "waiting_approval") {
    const reason = `step ${stepId} failed: ${error.message}`
    next = withTask(next, "failed", now, [reason])
    commands.push({ _tag: "Record", kind: "task.failed", stepId, payload: { reason, error } })
  }
  return { record: next, commands }
}

const findWaiting = (record: TaskRecord, stepId: StepId | undefined): Effect.Effect<Step, StepNotFound> => {
  if (stepId !== undefined) {
    const step = stepOf(record, stepId)
    if (step === undefined) {
      return Effect.fail(
        new StepNotFound({ taskId: record.task.id, stepId, problem: "missing", reason: `no step ${stepId}` })
      )
    }
    if (step.state !== "waiting_approval") {
      return Effect.fail(
        new StepNotFound({
          taskId: record.task.id,
          stepId,
          problem: "not_waiting",
          reason: `step ${stepId} is ${step.state}, not waiting for approval`
        })
      )
    }
    return Effect.succeed(step)
  }
  const waiting = record.steps.filter((s) => s.state === "waiting_approval")
  if (waiting.length === 1) return Effect.succeed(waiting[0]!)
  return Effect.fail(
    new StepNotFound({
      taskId: record.task.id,
      stepId: "",
      problem: waiting.length === 0 ? "none_waiting" : "ambiguous",
      reason:
        waiting.length === 0
          ? "no step is waiting for approval"
          : `several steps wait for approval (${waiting.map((s) => s.id).join(", ")}): name one`
    })
  )
}

const mayDecide = (record: TaskRecord, principal: Principal): ApprovalForbidden | undefined => {
  if (!hasRole(principal, "approver")) {
    return new ApprovalForbidden({
      taskId: record.task.id,
      principal: principal.id,
      reason: "the approver role is required"
    })
  }
  if (principal.id === record.task.requestedBy.id) {
    return new ApprovalForbidden({
      taskId: record.task.id,
      principal: principal.id,
      reason: "the requester of a task cannot approve or reject it (four eyes)"
    })
  }
  return undefined
}

const decision = (
  record: TaskRecord,
  plan: Plan,
  step: Step,
  principal: Principal,
  verdict: Approval["decision"],
  comment: string | undefined,
  now: number
): Approval => {
  const planned = plannedOf(plan, step.id)
  return {
    taskId: record.task.id,
    stepId: step.id,
    round: step.round,
    principal,
    decision: verdict,
    ...(comment === undefined ? {} : { comment }),
    at: now,
    paramsHash: planned.paramsHash,
    planHash: plan.hash,
    policyVersion: plan.policyVersion
  }
}

/**
 * An approver grants a waiting step. The approval binds to the plan, the step's params and the policy version;
 * once enough distinct approvers granted it, the step is queued.
 *
 * @category flow
 * @since 0.1.0
 */
export const approve = (
  record: TaskRecord,
  plan: Plan,
  stepId: StepId | undefined,
  principal: Principal,
  comment: string | undefined,
  now: number
): Effect.Effect<Transition, ApprovalForbidden | StepNotFound | IllegalTransition> =>
  Effect.gen(function* () {
    if (record.task.state !== "running" && record.task.state !== "waiting_approval") {
      return yield* illegal(record, "running")
    }
    const forbidden = mayDecide(record, principal)
    if (forbidden) return yield* forbidden
    const step = yield* findWaiting(record, stepId)
    const planned = plannedOf(plan, step.id)
    if (validApprovals(record, plan, step).some((a) => a.principal.id === principal.id)) {
      return yield* new ApprovalForbidden({
        taskId: record.task.id,
        principal: principal.id,
        reason: `already approved step ${step.id}: approvals must come from distinct approvers`
      })
    }
    const approval = decision(record, plan, step, principal, "granted", comment, now)
    const withApproval: TaskRecord = { ...record, approvals: [...record.approvals, approval] }
    const count = validApprovals(withApproval, plan, step).length
    const entry: Command = {
      _tag: "Record",
      kind: "approval.granted",
      stepId: step.id,
      principal,
      payload: {
        ...(comment === undefined ? {} : { comment }),
        approvals: count,
        required: requiredApprovals(planned),
        round: step.round,
        paramsHash: approval.paramsHash,
        planHash: approval.planHash,
        policyVersion: approval.policyVersion
      }
    }
    if (count < requiredApprovals(planned)) return { record: withApproval, commands: [entry] }
    // Enough approvals: back to pending, and `advance` queues it (it finds the approvals valid)
    const { deadlineAt: _, ...rest } = step
    const ready = setStep(withApproval, { ...rest, state: "pending", updatedAt: now })
    return advance({ record: ready, commands: [entry] }, plan, now)
  })

const endTask = (
  record: TaskRecord,
  state: "rejected" | "cancelled",
  reasons: ReadonlyArray<string>,
  now: number
): { readonly record: TaskRecord; readonly commands: Array<Command> } => {
  const commands: Array<Command> = []
  let next = record
  for (const step of record.steps) {
    if (step.state === "succeeded" || step.state === "skipped" || step.state === "failed") continue
    if ((step.state === "queued" || step.state === "running") && step.jobId !== undefined) {
      commands.push({ _tag: "CancelJob", jobId: step.jobId })
    }
    next = setStep(next, { ...step, state: "skipped", updatedAt: now })
  }
  return { record: withTask(next, state, now, reasons), commands }
}

/**
 * An approver rejects a waiting step: the task ends `rejected` and its unfinished steps are skipped.
 *
 * @category flow
 * @since 0.1.0
 */
export const reject = (
  record: TaskRecord,
  plan: Plan,
  stepId: StepId | undefined,
  principal: Principal,
  comment: string | undefined,
  now: number
): Effect.Effect<Transition, ApprovalForbidden | StepNotFound | IllegalTransition> =>
  Effect.gen(function* () {
    if (record.task.state !== "running" && record.task.state !== "waiting_approval") {
      return yield* illegal(record, "rejected")
    }
    const forbidden = mayDecide(record, principal)
    if (forbidden) return yield* forbidden
    const step = yield* findWaiting(record, stepId)
    const approval = decision(record, plan, step, principal, "rejected", comment, now)
    const reason = `step ${step.id} rejected by ${principal.id}${comment === undefined ? "" : `: ${comment}`}`
    const ended = endTask({ ...record, approvals: [...record.approvals, approval] }, "rejected", [reason], now)
    return {
      record: ended.record,
      commands: [
        {
          _tag: "Record",
          kind: "approval.rejected",
          stepId: step.id,
          principal,
          payload: { ...(comment === undefined ? {} : { comment }), reason, round: step.round }
        },
        ...ended.commands,
        { _tag: "Record", kind: "task.rejected", payload: { reasons: [reason] } }
      ]
    }
  })

/**
 * Whether a step waits for approval in `round` under a deadline that has not passed yet at `now` (a deadline job
 * that runs early, e.g. on a worker whose clock is behind, must come back later rather than do nothing).
 *
 * @category approvals
 * @since 0.1.0
 */
export const deadlinePending = (record: TaskRecord, stepId: StepId, round: number, now: number): boolean => {
  const step = stepOf(record, stepId)
  return (
    step !== undefined &&
    step.state === "waiting_approval" &&
    step.round === round &&
    step.deadlineAt !== undefined &&
    now < step.deadlineAt
  )
}

/**
 * An approval window closed. Acts only when the step still waits for approval in that round, under a deadline
 * the runtime stored for it (`deadlineAt`, set from the policy's approval timeout), and that deadline has passed:
 * then the task is rejected (default deny), the runtime itself (`Principal.system`) named as the actor. Returns
 * `undefined` when there is nothing to do (no deadline, not passed yet, approved in time, the task moved on).
 *
 * @category flow
 * @since 0.1.0
 */
export const deadlinePassed = (
  record: TaskRecord,
  stepId: StepId,
  round: number,
  now: number
): Transition | undefined => {
  const step = stepOf(record, stepId)
  if (step === undefined || step.state !== "waiting_approval" || step.round !== round) return undefined
  if (step.deadlineAt === undefined || now < step.deadlineAt) return undefined
  if (record.task.state !== "running" && record.task.state !== "waiting_approval") return undefined
  const reason = `approval of step ${stepId} was not given before its deadline`
  const ended = endTask(record, "rejected", [reason], now)
  return {
    record: ended.record,
    commands: [
      {
        _tag: "Record",
        kind: "approval.rejected",
        stepId,
        principal: system,
        payload: { reason, deadlineAt: step.deadlineAt, round }
      },
      ...ended.commands,
      { _tag: "Record", kind: "task.rejected", principal: system, payload: { reasons: [reason] } }
    ]
  }
}

/**
 * Cancels a task: queued jobs are withdrawn, running handlers interrupted (through their jobs), unfinished steps
 * skipped.
 *
 * @category flow
 * @since 0.1.0
 */
export const cancel = (
  record: TaskRecord,
  principal: Principal,
  reason: string | undefined,
  now: number
): Effect.Effect<Transition, IllegalTransition> => {
  const state = record.task.state
  if (state === "completed" || state === "rejected" || state === "cancelled") {
    return Effect.fail(illegal(record, "cancelled"))
  }
  const why = `cancelled by ${principal.id}${reason === undefined ? "" : `: ${reason}`}`
  const ended = endTask(record, "cancelled", [why], now)
  return Effect.succeed({
    record: ended.record,
    commands: [...ended.commands, { _tag: "Record", kind: "task.cancelled", principal, payload: { reason: why } }]
  })
}

/**
 * Retries a failed task from its failed steps: they start a new round (gated ones need new approvals); steps
 * that succeeded are not run again.
 *
 * @category flow
 * @since 0.1.0
 */
export const retry = (
  record: TaskRecord,
  plan: Plan,
  principal: Principal,
  now: number
): Effect.Effect<Transition, IllegalTransition> => {
  if (record.task.state !== "failed") return Effect.fail(illegal(record, "running"))
  let next = withTask(record, "running", now, [])
  const retried: Array<string> = []
  for (const step of record.steps) {
    if (step.state === "failed") {
      const { error: _, deadlineAt: __, ...rest } = step
      next = setStep(next, { ...rest, state: "pending", round: step.round + 1, updatedAt: now })
      retried.push(step.id)
    }
  }
  return Effect.succeed(
    advance(
      { record: next, commands: [{ _tag: "Record", kind: "task.retried", principal, payload: { steps: retried } }] },
      plan,
      now
    )
  )
}

/**
 * Opens a task on its plan: the entries every task starts with (`task.created`, `plan.proposed` for a model's
 * plan, `plan.created`, one `policy.decided` per step), then either `task.rejected` (some step denied: every step
 * skipped, the reasons on the task) or the first steps scheduled. `denied` lists the denials (empty: running).
 *
 * @category flow
 * @since 0.1.0
 */
export const open = (
  task: Task,
  plan: Plan,
  principal: Principal
): { readonly transition: Transition; readonly denied: ReadonlyArray<string> } => {
  const now = task.createdAt
  const opening: Array<Command> = [
    {
      _tag: "Record",
      kind: "task.created",
      principal,
      payload: {
        kind: task.kind,
        params: task.params,
        priority: task.priority,
        ...(task.idempotencyKey === undefined ? {} : { idempotencyKey: task.idempotencyKey })
      }
    },
    // Where a model-proposed plan came from, for an auditor (Planner.layerLlm)
    ...(plan.proposedBy === undefined
      ? []
      : [{ _tag: "Record", kind: "plan.proposed", payload: { ...plan.proposedBy } } satisfies Command]),
    {
      _tag: "Record",
      kind: "plan.created",
      payload: {
        planId: plan.id,
        hash: plan.hash,
        policyVersion: plan.policyVersion,
        steps: plan.steps.map((s) => ({ id: s.id, type: s.type, dependsOn: s.dependsOn, paramsHash: s.paramsHash }))
      }
    },
    ...plan.steps.map(
      (s): Command => ({
        _tag: "Record",
        kind: "policy.decided",
        stepId: s.id,
        payload: {
          effect: s.decision.effect,
          matchedRules: s.decision.matchedRules,
          reasons: s.decision.reasons,
          policyVersion: s.decision.policyVersion,
          paramsHash: s.paramsHash,
          ...(s.decision.approvals === undefined ? {} : { approvals: s.decision.approvals })
        }
      })
    )
  ]
  const steps: Array<Step> = plan.steps.map((s) => ({
    taskId: task.id,
    id: s.id,
    type: s.type,
    state: "pending",
    attempts: 0,
    round: 0,
    updatedAt: now
  }))
  const denied = denials(plan)
  const initial: TaskRecord = {
    task: { ...task, state: denied.length > 0 ? "rejected" : "running", reasons: denied },
    steps: denied.length > 0 ? steps.map((s) => ({ ...s, state: "skipped" as const })) : steps,
    approvals: []
  }
  const transition: Transition =
    denied.length > 0
      ? {
          record: initial,
          commands: [...opening, { _tag: "Record", kind: "task.rejected", payload: { reasons: denied } }]
        }
      : advance({ record: initial, commands: opening }, plan, now)
  return { transition, denied }
}
