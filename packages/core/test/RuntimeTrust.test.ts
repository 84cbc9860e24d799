/**
 * The runtime's trust rules that need no HTTP: deadline jobs act only on a stored deadline that has passed (with
 * the runtime named as the actor), and the runtime's queues must be in the reserved namespace.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  handler,
  Ledger,
  Mandate,
  type PolicySet,
  Principal,
  Queue,
  Runtime,
  type RuntimeOptions,
  Seed,
  type TaskView,
  taskTemplate
} from "@mandate/core"
import { Effect, Layer, Schema } from "effect"
import { TestClock } from "effect/testing"
import { alice, bob } from "./utils/fixtures.ts"

const fastRuntime: RuntimeOptions = { pollIntervalMs: 10, leaseMs: 1_000, heartbeatIntervalMs: 50, concurrency: 4 }
const fastQueue = { backoff: { baseMs: 5, capMs: 20 }, requeueIntervalMs: 20 }

const Note = Schema.Struct({ text: Schema.String })
const note = handler({ type: "note", params: Note, result: Note, run: (p) => Effect.succeed(p) })
const gatedNote = { ...note, type: "gated_note" }
const gatedTask = taskTemplate({
  kind: "gated_task",
  params: Schema.Struct({}),
  steps: () => [
    { id: "prepare", type: "note", params: { text: "prepare" } },
    { id: "release", type: "gated_note", params: { text: "release" }, dependsOn: ["prepare"] }
  ]
})
const gated = (approvals: { required: number; timeoutSeconds?: number }): PolicySet.PolicySet => ({
  ...Seed.defaultPolicySet,
  rules: [
    ...Seed.defaultPolicySet.rules,
    { id: "notes", effect: "allow", match: { action: "note" } },
    { id: "gate", effect: "require_approval", match: { action: "gated_note" }, approvals }
  ]
})

const memory = (timeoutSeconds?: number) =>
  Mandate.layerMemory({
    handlers: [note, gatedNote],
    templates: [gatedTask],
    policy: gated({ required: 1, ...(timeoutSeconds === undefined ? {} : { timeoutSeconds }) }),
    queue: fastQueue,
    runtime: fastRuntime
  })

/** Lets the runtime's worker run under the test clock until `until` holds (or the budget is spent). */
const advanceUntil = (taskId: string, until: (view: TaskView) => boolean, steps = 200) =>
  Effect.gen(function* () {
    const runtime = yield* Runtime
    let view = yield* runtime.get(taskId)
    for (let i = 0; i < steps && !until(view); i++) {
      yield* TestClock.adjust("20 millis")
      view = yield* runtime.get(taskId)
    }
    return view
  })

/** A deadline job as anyone with access to the queue could write it (the attack of issue 12, finding 1). */
const forgeDeadline = (taskId: string) =>
  Queue.use((q) =>
    q.enqueue({ queue: "mandate.deadlines", payload: { taskId, stepId: "release", round: 0 }, maxAttempts: 3 })
  )

const waiting = (view: TaskView) => view.task.state === "waiting_approval"

describe("Runtime: deadline jobs", () => {
  it.effect("a deadline job for a step without a deadline does nothing", () =>
    Effect.gen(function* () {
      const runtime = yield* Runtime
      const task = yield* runtime.start({ kind: "gated_task", params: {} }, alice)
      const view = yield* advanceUntil(task.id, waiting)
      assert.strictEqual(view.task.state, "waiting_approval")
      assert.isUndefined(view.steps[1]!.deadlineAt)
      const job = yield* forgeDeadline(task.id)
      const after = yield* advanceUntil(task.id, (v) => v.task.state !== "waiting_approval", 50)
      assert.strictEqual(after.task.state, "waiting_approval")
      assert.strictEqual((yield* Queue.use((q) => q.get(job.id))).state, "completed")
      yield* runtime.approve(task.id, bob)
      const done = yield* advanceUntil(task.id, (v) => v.task.state === "completed")
      assert.strictEqual(done.task.state, "completed")
    }).pipe(Effect.provide(memory()))
  )

  it.effect("a deadline job that runs before the stored deadline does not reject; the deadline still holds", () =>
    Effect.gen(function* () {
      const runtime = yield* Runtime
      const task = yield* runtime.start({ kind: "gated_task", params: {} }, alice)
      const view = yield* advanceUntil(task.id, waiting)
      const deadlineAt = view.steps[1]!.deadlineAt!
      assert.isDefined(deadlineAt)
      yield* forgeDeadline(task.id)
      const early = yield* advanceUntil(task.id, (v) => v.task.state !== "waiting_approval", 50)
      assert.strictEqual(early.task.state, "waiting_approval")

      // Past the stored deadline the runtime's own deadline job rejects the task, in the runtime's name
      yield* TestClock.adjust("61 seconds")
      const rejected = yield* advanceUntil(task.id, (v) => v.task.state === "rejected", 50)
      assert.strictEqual(rejected.task.state, "rejected")
      const entries = yield* Ledger.use((l) => l.byTask(task.id))
      const rejection = entries.filter((e) => e.kind === "approval.rejected")
      assert.strictEqual(rejection.length, 1)
      assert.deepStrictEqual(rejection[0]!.principal, Principal.system)
      assert.strictEqual((rejection[0]!.payload as { deadlineAt: number }).deadlineAt, deadlineAt)
      const ended = entries.find((e) => e.kind === "task.rejected")
      assert.strictEqual(ended?.principal?.id, "mandate.runtime")
    }).pipe(Effect.provide(memory(60)))
  )
})

describe("Runtime: step outcomes", () => {
  const liar = handler({
    type: "liar",
    params: Note,
    result: Note,
    run: () => Effect.succeed({ text: 42 } as unknown as { text: string })
  })
  const lying = taskTemplate({
    kind: "lying_task",
    params: Schema.Struct({}),
    steps: () => [{ id: "only", type: "liar", params: { text: "x" } }]
  })

  it.effect("a result the handler's schema refuses is a failed attempt with the error, never a success", () =>
    Effect.gen(function* () {
      const runtime = yield* Runtime
      const task = yield* runtime.start({ kind: "lying_task", params: {} }, alice)
      const view = yield* advanceUntil(task.id, (v) => v.task.state !== "running")
      assert.strictEqual(view.task.state, "failed")
      assert.strictEqual(view.steps[0]!.state, "failed")
      assert.isUndefined(view.steps[0]!.result)
      assert.match(view.steps[0]!.error!.message, /result does not match the liar handler/)
      const entries = yield* Ledger.use((l) => l.byTask(task.id))
      assert.isFalse(entries.some((e) => e.kind === "step.succeeded"))
      const started = entries.find((e) => e.kind === "step.started")!
      const failed = entries.find((e) => e.kind === "step.failed")!
      // The worker that ran the attempt is named in its outcome, as in its start
      assert.strictEqual((failed.payload as { worker: string }).worker, (started.payload as { worker: string }).worker)
      assert.strictEqual((failed.payload as { worker: string }).worker, "trust-test.worker")
    }).pipe(
      Effect.provide(
        Mandate.layerMemory({
          handlers: [liar],
          templates: [lying],
          policy: {
            ...Seed.defaultPolicySet,
            rules: [...Seed.defaultPolicySet.rules, { id: "liar", effect: "allow", match: { action: "liar" } }]
          },
          queue: fastQueue,
          runtime: { ...fastRuntime, workerId: "trust-test.worker" }
        })
      )
    )
  )
})

describe("Runtime: its queues", () => {
  it.effect("must be in the reserved mandate. namespace", () =>
    Effect.gen(function* () {
      for (const [options, path] of [
        [{ stepsQueue: "steps" }, "$.stepsQueue"],
        [{ deadlinesQueue: "deadlines" }, "$.deadlinesQueue"]
      ] as const) {
        const built = (yield* Effect.flip(
          Layer.build(
            Mandate.layerMemory({ handlers: [note], runtime: { ...fastRuntime, ...options, workers: false } })
          )
        )) as { readonly _tag: string; readonly path?: string }
        assert.strictEqual(built._tag, "InvalidInput")
        assert.strictEqual(built.path, path)
      }
    }).pipe(Effect.scoped)
  )
})
