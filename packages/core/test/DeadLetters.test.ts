import { assert, describe, it } from "@effect/vitest"
import { AgentId, Principal, Queue, redrive } from "@mandate/core"
import { Effect } from "effect"

const admin = Principal.make("root", ["admin"])
const auditor = Principal.make("carol", ["auditor", "approver", "submitter", "agent"])
const worker = AgentId.make("w1")

/** A job of `queue` that failed for good. */
const deadLetter = (queue: string) =>
  Effect.gen(function* () {
    const q = yield* Queue
    const job = yield* q.enqueue({ queue, payload: { n: 1 }, maxAttempts: 1 })
    yield* q.claim({ workerId: worker, queues: [queue] })
    const failed = yield* q.fail(job.id, worker, "boom", { retryable: false })
    assert.strictEqual(failed.state, "dead_lettered")
    return job.id
  })

describe("DeadLetters.redrive", () => {
  it.effect("sends a dead letter back to its queue with a fresh budget, for admins only", () =>
    Effect.gen(function* () {
      const jobId = yield* deadLetter("emails")
      const refused = yield* Effect.flip(redrive(jobId, auditor))
      assert.strictEqual(refused._tag, "Forbidden")
      assert.match(refused.message, /carol may not redrive job .*: the admin role is required/)
      const job = yield* redrive(jobId, admin)
      assert.strictEqual(job.state, "queued")
      assert.strictEqual(job.attempts, 0)
      // Only a dead letter can be redriven
      const again = yield* Effect.flip(redrive(jobId, admin))
      assert.strictEqual(again._tag, "IllegalTransition")
    }).pipe(Effect.provide(Queue.layerMemory()))
  )

  it.effect("never redrives a job of the runtime's queues: their tasks are retried instead", () =>
    Effect.gen(function* () {
      const jobId = yield* deadLetter("mandate.steps")
      const refused = yield* Effect.flip(redrive(jobId, admin))
      assert.strictEqual(refused._tag, "Forbidden")
      assert.match(refused.message, /mandate\.steps is the runtime's queue: retry the job's task instead/)
      assert.strictEqual((yield* (yield* Queue).get(jobId)).state, "dead_lettered")
    }).pipe(Effect.provide(Queue.layerMemory()))
  )
})
