/**
 * Reconciling: settles what unfinished tasks are owed from their jobs' state, after a crash between stores or a
 * lost reply. Run when the runtime starts and every `reconcileIntervalMs`; safe to run again (job idempotency
 * keys return an existing job, never a second one).
 *
 * @since 0.1.0
 */
import { Effect, Option } from "effect"
import type { TaskId } from "../Ids.ts"
import type { Queue } from "../Queue.ts"
import type { TaskStore } from "../TaskStore.ts"
import type * as Worker from "../Worker.ts"
import type { StepRunner } from "./stepRunner.ts"
import * as Flow from "./taskFlow.ts"
import type { Transitions } from "./transitions.ts"

/**
 * The reconciler over the runtime's stores, transitions and step runner.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (options: {
  readonly store: TaskStore["Service"]
  readonly queue: Queue["Service"]
  readonly transitions: Transitions
  readonly runner: StepRunner
}) => {
  const { store, queue, transitions, runner } = options
  const { transact } = transitions
  const { settleOutcome } = runner

  /**
   * Settles what a task is owed from its jobs' state. A step whose job finished without the task hearing of it
   * (a crash or a lost reply between the queue and the task store) is settled from the job; a step whose job is
   * missing is enqueued again (idempotency keys return an existing job, never a second one). On `restart`, the
   * deadlines of waiting steps are re-issued as well.
   */
  const reconcileTask = (taskId: TaskId, restart: boolean) =>
    transact(taskId, (r, plan, now) =>
      Effect.gen(function* () {
        if (r.task.state !== "running" && r.task.state !== "waiting_approval") return undefined
        let transition: Flow.Transition = { record: r, commands: [] }
        const add = (next: Flow.Transition) => {
          transition = { record: next.record, commands: [...transition.commands, ...next.commands] }
        }
        for (const step of r.steps) {
          const planned = plan.steps.find((p) => p.id === step.id)!
          if (step.state === "waiting_approval" && restart && step.deadlineAt !== undefined) {
            add({
              record: transition.record,
              commands: [{ _tag: "ScheduleDeadline", stepId: step.id, round: step.round, at: step.deadlineAt }]
            })
          }
          if (step.state !== "queued" && step.state !== "running") continue
          const job = step.jobId === undefined ? Option.none() : yield* Effect.option(queue.get(step.jobId))
          if (Option.isNone(job)) {
            add({ record: transition.record, commands: [{ _tag: "Enqueue", step, planned }] })
          } else if (job.value.state === "completed" && step.state === "running") {
            // Completed by the worker that started the attempt, which stopped before settling it: the result
            // takes the one settle path (decoded against the handler's schema, the worker named)
            const outcome: Worker.Outcome = { _tag: "Completed", result: job.value.result ?? null }
            add(yield* settleOutcome(transition.record, plan, step.id, outcome, true, step.worker, now))
          } else if (job.value.state === "dead_lettered") {
            const message = job.value.lastError ?? "the step's job was dead-lettered"
            add(Flow.stepFailed(transition.record, step.id, { message, retryable: false }, true, now, step.worker))
          } else if (job.value.state === "cancelled" || job.value.state === "completed") {
            // Withdrawn while the task still wants it, or completed though no worker of the runtime started the
            // step (it did not run through the runtime, so its result is not recorded): run it again, in a new round
            const current = transition.record.steps.find((s) => s.id === step.id)!
            add({
              record: {
                ...transition.record,
                steps: transition.record.steps.map((s) =>
                  s.id === step.id ? { ...current, state: "pending", round: current.round + 1, updatedAt: now } : s
                )
              },
              commands: []
            })
          }
        }
        const next = Flow.advance(transition, plan, now)
        return next.commands.length === 0 && next.record === r ? undefined : next
      })
    )

  const reconcileWith = (restart: boolean) =>
    Effect.gen(function* () {
      const ids = yield* store.unfinished
      yield* Effect.forEach(
        ids,
        (id) => reconcileTask(id, restart).pipe(Effect.catchTag("TaskNotFound", () => Effect.void)),
        { concurrency: 8, discard: true }
      )
      return ids.length
    }).pipe(Effect.withSpan("Runtime.reconcile"))
  const reconcile = reconcileWith(true)
  return { reconcile, reconcileWith }
}
