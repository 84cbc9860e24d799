import { assert, describe, it } from "@effect/vitest"
import { IllegalTransition, Plan, Step, StepId, Task, TaskId } from "@mandate/core"
import { Effect, Result } from "effect"
import { alice } from "./utils/fixtures.ts"

describe("Plan DAG rules", () => {
  const n = (id: string, ...dependsOn: Array<string>) => ({ id, dependsOn })

  it("orders steps topologically and finds ready steps", () => {
    const steps = [n("c", "a", "b"), n("a"), n("b", "a")]
    const order = Plan.topologicalOrder(steps)
    assert.isTrue(Result.isSuccess(order))
    if (Result.isSuccess(order))
      assert.deepStrictEqual(
        order.success.map((s) => s.id),
        ["a", "b", "c"]
      )
    const done = new Set(["a"])
    const ready = Plan.readySteps(
      steps,
      (id) => done.has(id),
      (id) => done.has(id)
    )
    assert.deepStrictEqual(
      ready.map((s) => s.id),
      ["b"]
    )
  })

  it("refuses duplicates, unknown dependencies, self loops and cycles", () => {
    const fail = (steps: ReadonlyArray<{ id: string; dependsOn: ReadonlyArray<string> }>) => {
      const r = Plan.topologicalOrder(steps)
      assert.isTrue(Result.isFailure(r))
      return Result.isFailure(r) ? r.failure.message : ""
    }
    assert.match(fail([n("a"), n("a")]), /Duplicate step id "a"/)
    assert.match(fail([n("a", "ghost")]), /unknown step "ghost"/)
    assert.match(fail([n("a", "a")]), /depends on itself/)
    assert.match(fail([n("a", "b"), n("b", "a")]), /cycle/)
  })
})

describe("State machines", () => {
  const task: Task.Task = {
    id: TaskId.make("t1"),
    kind: "transfer_funds",
    params: {},
    priority: "normal",
    requestedBy: alice,
    state: "pending",
    reasons: [],
    createdAt: 0,
    updatedAt: 0,
    version: 0
  }

  it.effect("tasks follow pending → planning → running ⇄ waiting_approval → terminal", () =>
    Effect.gen(function* () {
      const planning = yield* Task.transition(task, "planning", 1)
      const running = yield* Task.transition(planning, "running", 2)
      const waiting = yield* Task.transition(running, "waiting_approval", 3)
      const back = yield* Task.transition(waiting, "running", 4)
      const done = yield* Task.transition(back, "completed", 5)
      assert.strictEqual(done.version, 5)
      assert.strictEqual(done.updatedAt, 5)
      const error = yield* Effect.flip(Task.transition(done, "running", 6))
      assert.instanceOf(error, IllegalTransition)
      assert.strictEqual(error.message, "task t1 cannot go from completed to running")
      const failed = yield* Task.transition(back, "failed", 6, ["step x failed"])
      assert.deepStrictEqual(failed.reasons, ["step x failed"])
      assert.strictEqual((yield* Task.transition(failed, "running", 7)).state, "running") // retry
      assert.isTrue(Task.isTerminal("cancelled"))
      assert.isFalse(Task.isTerminal("failed"))
    })
  )

  it.effect("steps follow pending → queued → running → succeeded, with approval and retry paths", () =>
    Effect.gen(function* () {
      const step: Step.Step = {
        taskId: task.id,
        id: StepId.make("s"),
        type: "x",
        state: "pending",
        attempts: 0,
        round: 0,
        updatedAt: 0
      }
      const waiting = yield* Step.transition(step, "waiting_approval", 1)
      const queued = yield* Step.transition(waiting, "queued", 2)
      const running = yield* Step.transition(queued, "running", 3, { attempts: 1 })
      const retry = yield* Step.transition(running, "queued", 4)
      const done = yield* Step.transition(
        yield* Step.transition(retry, "running", 5, { attempts: 2 }),
        "succeeded",
        6,
        {
          result: { ok: true }
        }
      )
      assert.deepStrictEqual([done.state, done.attempts, done.result], ["succeeded", 2, { ok: true }])
      const error = yield* Effect.flip(Step.transition(done, "queued", 7))
      assert.strictEqual(error.message, "step t1/s cannot go from succeeded to queued")
      assert.isFalse(Step.canTransition("pending", "running"))
    })
  )
})
