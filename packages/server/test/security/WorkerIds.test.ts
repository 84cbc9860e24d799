/**
 * Issue 12, finding 6: worker-id ownership was a prefix check and principal ids may contain dots, so principal
 * `robot` acted as the workers of principal `robot.eu` (completed its jobs, deregistered it). A worker id now has
 * exactly one owner, the principal named before its first `.`; a principal whose id has a dot owns none.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import type * as Stores from "../../src/Stores.ts"
import * as TestPostgres from "../utils/TestPostgres.ts"
import * as TestRedis from "../utils/TestRedis.ts"
import * as TestServer from "../utils/TestServer.ts"

const { call, tokens } = TestServer

const workerIds = <E>(name: string, services: Layer.Layer<Stores.Services | Stores.Readiness, E>) =>
  layer(TestServer.layer(services), { excludeTestServices: true, timeout: "60 seconds" })(name, (it) => {
    it.effect("robot.eu can hold no worker id, so robot can never act as one of its workers", () =>
      Effect.gen(function* () {
        const queue = `q-${crypto.randomUUID().slice(0, 8)}`
        // What robot.eu did before: register and claim as `robot.eu`, a worker id robot also matched by prefix
        const registered = yield* call("POST", "/agents", {
          token: tokens.robotEu,
          body: { agent_id: "robot.eu", pool: "eu" }
        })
        assert.strictEqual(registered.status, 403, registered.text)
        assert.strictEqual(registered.body.principal, "robot.eu")
        const generated = yield* call("POST", "/agents", { token: tokens.robotEu, body: { pool: "eu" } })
        assert.strictEqual(generated.status, 403, generated.text)
        yield* call("POST", "/queue/jobs", { token: tokens.alice, body: { queue, payload: { n: 1 } } })
        for (const worker of ["robot.eu", "robot.eu.w1", "robot"]) {
          const claim = yield* call("POST", "/queue/claim", {
            token: tokens.robotEu,
            body: { worker_id: worker, queues: [queue] }
          })
          assert.strictEqual(claim.status, 403, claim.text)
        }
        assert.strictEqual(
          (yield* call("POST", "/agents/robot.eu/heartbeat", { token: tokens.robotEu, body: {} })).status,
          403
        )

        // The reverse: robot's worker holds a lease; robot.eu cannot complete, fail, heartbeat or deregister it
        const worker = `robot.${queue}`
        assert.strictEqual(
          (yield* call("POST", "/agents", { token: tokens.robot, body: { agent_id: worker, pool: "eu" } })).status,
          200
        )
        const claimed = yield* call("POST", "/queue/claim", {
          token: tokens.robot,
          body: { worker_id: worker, queues: [queue] }
        })
        assert.strictEqual(claimed.status, 200, claimed.text)
        const jobId: string = claimed.body.jobs[0].job_id
        const holder = { worker_id: worker }
        const attempts = [
          call("PATCH", `/queue/jobs/${jobId}/complete`, { token: tokens.robotEu, body: { ...holder, result: {} } }),
          call("PATCH", `/queue/jobs/${jobId}/fail`, { token: tokens.robotEu, body: { ...holder, error: "x" } }),
          call("POST", `/queue/jobs/${jobId}/heartbeat`, { token: tokens.robotEu, body: holder }),
          call("POST", `/agents/${worker}/heartbeat`, { token: tokens.robotEu, body: {} }),
          call("DELETE", `/agents/${worker}`, { token: tokens.robotEu })
        ]
        for (const attempt of attempts) {
          const reply = yield* attempt
          assert.strictEqual(reply.status, 403, reply.text)
        }
        // Nothing changed: the lease and the registration are still robot's
        const done = yield* call("PATCH", `/queue/jobs/${jobId}/complete`, {
          token: tokens.robot,
          body: { ...holder, result: { ok: true } }
        })
        assert.strictEqual(done.status, 200, done.text)
        assert.strictEqual((yield* call("GET", `/agents/${worker}`, { token: tokens.carol })).status, 200)
        assert.strictEqual((yield* call("DELETE", `/agents/${worker}`, { token: tokens.robot })).status, 200)
      })
    )
  })

describe("security: worker ids are owned exactly", () => {
  workerIds("memory", TestServer.memoryServices())
  TestPostgres.describePostgres("postgres", () => {
    workerIds("postgres", TestPostgres.services())
  })
  TestRedis.describeRedis("redis", () => {
    workerIds("redis", TestRedis.services())
  })
})
