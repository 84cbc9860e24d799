import { assert, describe, it } from "@effect/vitest"
import { AgentId, Queue, UnitOfWork } from "@mandate/core"
import { suite } from "@mandate/core/conformance/queue"
import { Effect, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"

suite("Queue.layerMemory (conformance)", Queue.layerMemory())

// The same contract in real time, as layers whose clock is a database's run it: proves that mode of the suite
suite(
  "Queue.layerMemory (conformance, real time)",
  Queue.layerMemory({ backoff: { baseMs: 200 }, requeueIntervalMs: 200 }),
  { testClock: false, backoff: { baseMs: 200 }, requeueIntervalMs: 200 }
)

const w = AgentId.make("w1")

describe("Queue.layerMemory", () => {
  it.effect("computes retry times with its backoff options", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const job = yield* queue.enqueue({ queue: "q", payload: {} })
      const delays: Array<number> = []
      for (let i = 0; i < 3; i++) {
        yield* queue.claim({ workerId: w, queues: ["q"] })
        const failed = yield* queue.fail(job.id, w, "boom")
        delays.push(failed.runAt - failed.updatedAt)
        yield* TestClock.adjust(failed.runAt - failed.updatedAt)
      }
      assert.deepStrictEqual(delays, [500, 1_500, 4_500])
    }).pipe(Effect.provide(Queue.layerMemory({ backoff: { baseMs: 500, factor: 3, jitter: 0 } })))
  )

  it.effect("requeueExpired returns the jobs it requeued; a claim takes expired jobs back at once", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const a = yield* queue.enqueue({ queue: "q", payload: "a" })
      const b = yield* queue.enqueue({ queue: "q", payload: "b" })
      yield* queue.claim({ workerId: w, queues: ["q"], max: 2, leaseMs: 1_000 })
      yield* queue.heartbeat(b.id, w, 5_000)
      yield* TestClock.adjust(1_000)
      const requeued = yield* queue.requeueExpired
      assert.deepStrictEqual(
        requeued.map((j) => [j.id, j.state]),
        [[a.id, "queued"]]
      )
      assert.deepStrictEqual(yield* queue.requeueExpired, [])
      // b's lease expires too; the sweep is an hour away, the next claim does not wait for it
      yield* TestClock.adjust(4_000)
      assert.strictEqual((yield* queue.get(b.id)).state, "claimed")
      const claimed = yield* queue.claim({ workerId: AgentId.make("w2"), queues: ["q"], max: 5 })
      assert.deepStrictEqual(claimed.map((j) => j.id).sort(), [a.id, b.id].sort())
    }).pipe(Effect.provide(Queue.layerMemory({ requeueIntervalMs: 3_600_000 })))
  )

  it.effect("wakes a subscriber when a delayed job comes due", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const next = yield* queue.wakeups({ queues: ["q"] })
      yield* queue.enqueue({ queue: "q", payload: {}, delayMs: 5_000 })
      yield* next // the enqueue itself signals
      const fiber = yield* Effect.forkChild(next)
      yield* TestClock.adjust(4_999)
      assert.isUndefined(fiber.pollUnsafe(), "not before the job is due")
      yield* TestClock.adjust(1)
      yield* Fiber.join(fiber)
    }).pipe(Effect.scoped, Effect.provide(Queue.layerMemory()))
  )

  it.effect("only wakes subscribers of the queue that got work", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const next = yield* queue.wakeups({ queues: ["a"] })
      const fiber = yield* Effect.forkChild(next)
      yield* queue.enqueue({ queue: "b", payload: {} })
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow
      assert.isUndefined(fiber.pollUnsafe())
      yield* queue.enqueue({ queue: "a", payload: {} })
      yield* Fiber.join(fiber)
    }).pipe(Effect.scoped, Effect.provide(Queue.layerMemory()))
  )

  it.effect("enqueues inside a unit of work, nested or not", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const uow = yield* UnitOfWork
      const jobs = yield* uow.run(
        Effect.gen(function* () {
          const a = yield* queue.enqueue({ queue: "q", payload: 1 })
          const [b] = yield* uow.run(queue.enqueueBatch([{ queue: "q", payload: 2 }]))
          return [a, b!]
        })
      )
      assert.deepStrictEqual(
        (yield* queue.list({ queue: "q" })).jobs.map((j) => j.id),
        jobs.map((j) => j.id)
      )
    }).pipe(Effect.provide(Layer.mergeAll(Queue.layerMemory(), UnitOfWork.layerMemory)))
  )

  it.effect("hands out frozen jobs, so callers cannot change what is stored", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const job = yield* queue.enqueue({ queue: "q", payload: { list: [1] } })
      assert.throws(() => {
        ;(job as { state: string }).state = "completed"
      })
      assert.throws(() => {
        ;(job.payload as { list: Array<number> }).list.push(2)
      })
      assert.deepStrictEqual((yield* queue.get(job.id)).payload, { list: [1] })
    }).pipe(Effect.provide(Queue.layerMemory()))
  )

  it.effect("forgets completed and cancelled jobs after retainFinishedMs, keeping dead letters and live jobs", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const [done, cancelled, dead, waiting] = yield* queue.enqueueBatch(
        ["done", "cancelled", "dead", "waiting"].map((payload) => ({
          queue: "q",
          payload,
          idempotencyKey: payload,
          priority: payload === "waiting" ? ("low" as const) : ("normal" as const)
        }))
      )
      yield* queue.claim({ workerId: w, queues: ["q"], max: 3 })
      yield* queue.complete(done!.id, w, null)
      yield* queue.cancel(cancelled!.id)
      yield* queue.fail(dead!.id, w, "no", { retryable: false })
      yield* TestClock.adjust(59_000)
      assert.strictEqual((yield* queue.list({ queue: "q" })).jobs.length, 4)
      yield* TestClock.adjust(2_000)
      assert.strictEqual((yield* Effect.flip(queue.get(done!.id)))._tag, "JobNotFound")
      assert.strictEqual((yield* Effect.flip(queue.get(cancelled!.id)))._tag, "JobNotFound")
      assert.deepStrictEqual(
        (yield* queue.list({ queue: "q" })).jobs.map((j) => j.id),
        [dead!.id, waiting!.id]
      )
      const stats = yield* queue.stats("q")
      assert.strictEqual(stats.byState.completed + stats.byState.cancelled, 0)
      assert.strictEqual(stats.deadLettered, 1)
      // the key of a forgotten job is free again; a live job's key still holds
      assert.notStrictEqual((yield* queue.enqueue({ queue: "q", payload: 1, idempotencyKey: "done" })).id, done!.id)
      assert.strictEqual((yield* queue.enqueue({ queue: "q", payload: 2, idempotencyKey: "waiting" })).id, waiting!.id)
    }).pipe(Effect.provide(Queue.layerMemory({ retainFinishedMs: 60_000 })))
  )

  it.effect("keeps list pages consistent when pruning compacts its indexes", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const old = yield* queue.enqueueBatch(Array.from({ length: 3_000 }, (_, i) => ({ queue: "q", payload: i })))
      const keep = yield* queue.enqueueBatch(Array.from({ length: 30 }, (_, i) => ({ queue: "q", payload: -i })))
      for (const job of old) {
        yield* queue.claim({ workerId: w, queues: ["q"] })
        yield* queue.complete(job.id, w, null)
      }
      const first = yield* queue.list({ queue: "q", limit: 10 })
      yield* TestClock.adjust(2_000) // prunes 3,000 jobs and compacts
      const seen = [...first.jobs]
      let cursor = first.nextCursor
      while (cursor !== undefined) {
        const page = yield* queue.list({ queue: "q", limit: 10, cursor })
        seen.push(...page.jobs)
        cursor = page.nextCursor
      }
      assert.deepStrictEqual(
        seen.slice(10).map((j) => j.id),
        keep.map((j) => j.id)
      )
      assert.strictEqual((yield* queue.list({ limit: 1_000 })).jobs.length, 30)
    }).pipe(Effect.provide(Queue.layerMemory({ retainFinishedMs: 1_000 })))
  )
})
