/**
 * Redrive of dead-lettered jobs over HTTP: admins only, never the runtime's own queues.
 */
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { call, memoryServices, layer as serverLayer, tokens, waitForStatus, walletA } from "./utils/TestServer.ts"

layer(serverLayer(memoryServices()), { excludeTestServices: true, timeout: "60 seconds" })("queue redrive", (it) => {
  it.effect("a dead-lettered job goes back to its queue with a fresh budget, by an admin only", () =>
    Effect.gen(function* () {
      const queue = `emails-${crypto.randomUUID().slice(0, 8)}`
      const enqueued = yield* call("POST", "/queue/jobs", {
        token: tokens.alice,
        body: { queue, payload: { to: "x@example.com" }, max_attempts: 1 }
      })
      assert.strictEqual(enqueued.status, 200, enqueued.text)
      const id: string = enqueued.body.job_id
      const claimed = yield* call("POST", "/queue/claim", {
        token: tokens.robot,
        body: { worker_id: "robot", queues: [queue] }
      })
      assert.strictEqual(claimed.body.jobs[0]?.job_id, id, claimed.text)
      const failed = yield* call("PATCH", `/queue/jobs/${id}/fail`, {
        token: tokens.robot,
        body: { worker_id: "robot", error: "smtp down" }
      })
      assert.strictEqual(failed.body.status, "dead_lettered", failed.text)

      for (const token of [tokens.alice, tokens.robot, tokens.carol]) {
        const refused = yield* call("POST", `/queue/jobs/${id}/redrive`, { token })
        assert.strictEqual(refused.status, 403, refused.text)
      }
      const redriven = yield* call("POST", `/queue/jobs/${id}/redrive`, { token: tokens.root })
      assert.strictEqual(redriven.status, 200, redriven.text)
      assert.strictEqual(redriven.body.status, "queued")
      assert.strictEqual(redriven.body.attempts, 0)
      // Only dead letters are redriven
      const again = yield* call("POST", `/queue/jobs/${id}/redrive`, { token: tokens.root })
      assert.strictEqual(again.status, 409, again.text)
      const missing = yield* call("POST", "/queue/jobs/job_nope/redrive", { token: tokens.root })
      assert.strictEqual(missing.status, 404, missing.text)
    })
  )

  it.effect("the runtime's own queues are refused: their jobs are retried through the task", () =>
    Effect.gen(function* () {
      const started = yield* call("POST", "/task/start", {
        token: tokens.alice,
        body: { task_type: "monitoring", parameters: { wallet: walletA } }
      })
      assert.strictEqual(started.status, 200, started.text)
      yield* waitForStatus(started.body.task_id, (s) => s === "completed")
      const jobs = yield* call("GET", "/queue/jobs?queue=mandate.steps&limit=1", { token: tokens.root })
      const job = jobs.body.jobs[0]
      assert.isDefined(job, jobs.text)
      const refused = yield* call("POST", `/queue/jobs/${job.job_id}/redrive`, { token: tokens.root })
      assert.strictEqual(refused.status, 403, refused.text)
      assert.include(refused.body.message, "runtime's own queue")
    })
  )
})
