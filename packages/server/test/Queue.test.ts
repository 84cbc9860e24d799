import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as TestServer from "./utils/TestServer.ts"

const { call, tokens } = TestServer

layer(TestServer.layer(TestServer.memoryServices()), { excludeTestServices: true })(
  "queue and agents over HTTP",
  (it) => {
    it.effect("an agent registers, claims under a lease, starts, heartbeats and completes a job", () =>
      Effect.gen(function* () {
        const queue = `q-${crypto.randomUUID().slice(0, 8)}`
        const agent = yield* call("POST", "/agents", {
          token: tokens.robot,
          body: { agent_id: `robot.${queue}`, pool: "eu", capabilities: ["sign"], labels: { region: "eu-west" } }
        })
        assert.strictEqual(agent.status, 200, agent.text)
        assert.strictEqual(agent.body.status, "online")
        const workerId: string = agent.body.agent_id

        const enqueued = yield* call("POST", "/queue/jobs", {
          token: tokens.alice,
          body: { queue, payload: { invoice: 7 }, priority: "high", idempotency_key: "inv-7", max_attempts: 2 }
        })
        assert.strictEqual(enqueued.status, 200, enqueued.text)
        assert.strictEqual(enqueued.body.status, "queued")
        const again = yield* call("POST", "/queue/jobs", {
          token: tokens.alice,
          body: { queue, payload: { invoice: 7 }, idempotency_key: "inv-7" }
        })
        assert.strictEqual(again.body.job_id, enqueued.body.job_id)

        const claimed = yield* call("POST", "/queue/claim", {
          token: tokens.robot,
          body: { worker_id: workerId, queues: [queue], max: 5, lease_ms: 10_000 }
        })
        assert.strictEqual(claimed.status, 200, claimed.text)
        assert.strictEqual(claimed.body.jobs.length, 1)
        const job = claimed.body.jobs[0]
        assert.strictEqual(job.lease.worker_id, workerId)
        const jobId: string = job.job_id

        // Only the lease holder may act on the job: another of robot's workers conflicts with the lease…
        const stolen = yield* call("PATCH", `/queue/jobs/${jobId}/complete`, {
          token: tokens.robot,
          body: { worker_id: "robot.other", result: {} }
        })
        assert.strictEqual(stolen.status, 409, stolen.text)
        assert.strictEqual(stolen.body.reason, "lease_held_by_other")
        // …and a worker id that is not robot's is refused before the queue sees it
        const impostor = yield* call("PATCH", `/queue/jobs/${jobId}/complete`, {
          token: tokens.robot,
          body: { worker_id: "someone-else", result: {} }
        })
        assert.strictEqual(impostor.status, 403)
        assert.match(impostor.body.message, /robot may act only as worker robot or robot\.\*/)
        const foreign = yield* call("POST", "/agents", {
          token: tokens.robot,
          body: { agent_id: "mallory.w1", pool: "eu" }
        })
        assert.strictEqual(foreign.status, 403)
        const named = yield* call("POST", "/agents", { token: tokens.robot, body: { pool: "eu" } })
        assert.match(named.body.agent_id, /^robot\.[0-9a-f]{8}$/)

        assert.strictEqual(
          (yield* call("PATCH", `/queue/jobs/${jobId}/start`, { token: tokens.robot, body: { worker_id: workerId } }))
            .body.status,
          "running"
        )
        const beat = yield* call("POST", `/queue/jobs/${jobId}/heartbeat`, {
          token: tokens.robot,
          body: { worker_id: workerId, extend_ms: 20_000 }
        })
        assert.isAbove(beat.body.lease.expires_at, job.lease.expires_at)
        const done = yield* call("PATCH", `/queue/jobs/${jobId}/complete`, {
          token: tokens.robot,
          body: { worker_id: workerId, result: { signature: "abc" } }
        })
        assert.strictEqual(done.body.status, "completed")
        assert.deepStrictEqual(done.body.result, { signature: "abc" })
        const read = yield* call("GET", `/queue/jobs/${jobId}`, { token: tokens.carol })
        assert.strictEqual(read.body.status, "completed")

        const heartbeat = yield* call("POST", `/agents/${workerId}/heartbeat`, {
          token: tokens.robot,
          body: { load: 0.5 }
        })
        assert.strictEqual(heartbeat.body.load, 0.5)
        const pools = yield* call("GET", "/agents/pools", { token: tokens.carol })
        assert.isTrue(pools.body.pools.some((p: { pool: string; online: number }) => p.pool === "eu" && p.online >= 1))
        const listed = yield* call("GET", "/agents?pool=eu", { token: tokens.robot })
        assert.isTrue(listed.body.agents.some((a: { agent_id: string }) => a.agent_id === workerId))
        const gone = yield* call("DELETE", `/agents/${workerId}`, { token: tokens.robot })
        assert.deepStrictEqual(gone.body, { agent_id: workerId, deregistered: true })
        assert.strictEqual((yield* call("GET", `/agents/${workerId}`, { token: tokens.robot })).status, 404)
      })
    )

    it.effect("failures retry then dead-letter; stats and listings report them; roles guard each route", () =>
      Effect.gen(function* () {
        const queue = `q-${crypto.randomUUID().slice(0, 8)}`
        const workerId = `robot.${queue}`
        const enqueued = yield* call("POST", "/queue/jobs", { token: tokens.alice, body: { queue, payload: 1 } })
        const claim = () =>
          call("POST", "/queue/claim", { token: tokens.robot, body: { worker_id: workerId, queues: [queue] } })
        const first = yield* claim()
        const failed = yield* call("PATCH", `/queue/jobs/${first.body.jobs[0].job_id}/fail`, {
          token: tokens.robot,
          body: { worker_id: workerId, error: "card declined", retryable: false }
        })
        assert.strictEqual(failed.body.status, "dead_lettered")
        assert.strictEqual(failed.body.last_error, "card declined")
        assert.strictEqual(failed.body.job_id, enqueued.body.job_id)

        const stats = yield* call("GET", `/queue/stats?queue=${queue}`, { token: tokens.carol })
        assert.strictEqual(stats.status, 200, stats.text)
        assert.strictEqual(stats.body.dead_lettered, 1)
        assert.strictEqual(stats.body.by_state.dead_lettered, 1)
        const page = yield* call("GET", `/queue/jobs?queue=${queue}&status=dead_lettered`, { token: tokens.carol })
        assert.strictEqual(page.body.jobs.length, 1)

        const requeued = yield* call("POST", "/queue/maintenance/requeue-expired", { token: tokens.root })
        assert.strictEqual(requeued.status, 200)
        assert.isNumber(requeued.body.requeued)
        assert.strictEqual(
          (yield* call("POST", "/queue/maintenance/requeue-expired", { token: tokens.robot })).status,
          403
        )
        assert.strictEqual(
          (yield* call("POST", "/queue/claim", {
            token: tokens.alice,
            body: { worker_id: "alice.x1", queues: [queue] }
          })).status,
          403
        )
        const badQueue = yield* call("POST", "/queue/jobs", {
          token: tokens.alice,
          body: { queue: "no spaces", payload: 1 }
        })
        assert.strictEqual(badQueue.status, 400)
        assert.strictEqual(badQueue.body.path, "$.queue")
        const badDelay = yield* call("POST", "/queue/jobs", {
          token: tokens.alice,
          body: { queue, payload: 1, run_at: 10, delay_ms: 10 }
        })
        assert.strictEqual(badDelay.status, 400)
        assert.strictEqual(badDelay.body.path, "$.delay_ms")
      })
    )
  }
)
