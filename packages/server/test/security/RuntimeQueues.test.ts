/**
 * Issue 12, findings 1–3, as the attacks were made over HTTP — each must now fail, on every store:
 * 1. a submitter enqueues a `mandate.deadlines` job to reject someone else's task;
 * 2. a submitter takes the idempotency key of the job an approval will create, on `mandate.steps`;
 * 3. an agent claims `mandate.steps` jobs (or completes one) and forges a step's result.
 * The runtime's queues are closed to the public queue API; the rules behind it (deadlines only when stored and
 * passed, one settle path) are tested in core (`PublicQueue.test.ts`, `RuntimeTrust.test.ts`, `Runtime.test.ts`).
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import type * as Stores from "../../src/Stores.ts"
import * as TestPostgres from "../utils/TestPostgres.ts"
import * as TestRedis from "../utils/TestRedis.ts"
import * as TestServer from "../utils/TestServer.ts"

const { call, tokens, walletA, walletB, waitForStatus } = TestServer

/** alice's transfer, which the seed policy gates on approval (without a deadline). */
const startTransfer = Effect.gen(function* () {
  const started = yield* call("POST", "/task/start", {
    token: tokens.alice,
    body: { task_type: "transfer_funds", parameters: { from: walletA, to: walletB, amount: 2_500 } }
  })
  assert.strictEqual(started.status, 200, started.text)
  const taskId: string = started.body.task_id
  yield* waitForStatus(taskId, (s) => s === "waiting_approval")
  return taskId
})

const kindsOf = (taskId: string) =>
  Effect.map(call("GET", `/audit/${taskId}`, { token: tokens.carol }), (audit) => {
    assert.strictEqual(audit.status, 200, audit.text)
    return audit.body.entries as ReadonlyArray<{ kind: string; step_id?: string; payload?: any; principal?: any }>
  })

const approveAndComplete = (taskId: string) =>
  Effect.gen(function* () {
    const approved = yield* call("POST", `/task/${taskId}/approve`, { token: tokens.bob, body: { approved: true } })
    assert.strictEqual(approved.status, 200, approved.text)
    yield* waitForStatus(taskId, (s) => s === "completed" || s === "failed" || s === "rejected")
    const status = yield* call("GET", `/task/${taskId}/status`, { token: tokens.carol })
    assert.strictEqual(status.body.status, "completed", status.text)
  })

const runtimeQueues = <E>(name: string, services: Layer.Layer<Stores.Services | Stores.Readiness, E>) =>
  layer(TestServer.layer(services), { excludeTestServices: true, timeout: "60 seconds" })(name, (it) => {
    it.effect("finding 1: no one can enqueue a deadline job to reject someone else's task", () =>
      Effect.gen(function* () {
        const taskId = yield* startTransfer
        for (const token of [tokens.dave, tokens.alice, tokens.root]) {
          const forged = yield* call("POST", "/queue/jobs", {
            token,
            body: { queue: "mandate.deadlines", payload: { taskId, stepId: "onchain_action", round: 0 } }
          })
          assert.strictEqual(forged.status, 403, forged.text)
          assert.match(forged.body.message, /reserved for the runtime/)
        }
        // The whole namespace is the runtime's, not just today's two queues
        const other = yield* call("POST", "/queue/jobs", {
          token: tokens.dave,
          body: { queue: "mandate.anything", payload: {} }
        })
        assert.strictEqual(other.status, 403, other.text)

        const status = yield* call("GET", `/task/${taskId}/status`, { token: tokens.alice })
        assert.strictEqual(status.body.status, "waiting_approval")
        yield* approveAndComplete(taskId)
        const entries = yield* kindsOf(taskId)
        assert.isFalse(entries.some((e) => e.kind === "approval.rejected" || e.kind === "task.rejected"))
      })
    )

    it.effect("finding 2: no one can take the idempotency key of the job an approval creates", () =>
      Effect.gen(function* () {
        const taskId = yield* startTransfer
        const key = `${taskId}/onchain_action/0`
        for (const payload of [{ taskId, stepId: "onchain_action", round: 0 }, { junk: true }]) {
          const hijack = yield* call("POST", "/queue/jobs", {
            token: tokens.dave,
            body: { queue: "mandate.steps", payload, idempotency_key: key, delay_ms: 1e12 }
          })
          assert.strictEqual(hijack.status, 403, hijack.text)
        }
        // The same key on a host queue is that queue's own: it cannot reach the runtime's job
        const elsewhere = yield* call("POST", "/queue/jobs", {
          token: tokens.dave,
          body: { queue: `dave-${crypto.randomUUID().slice(0, 8)}`, payload: {}, idempotency_key: key, delay_ms: 1e12 }
        })
        assert.strictEqual(elsewhere.status, 200, elsewhere.text)

        yield* approveAndComplete(taskId)
        const detail = yield* call("GET", `/task/${taskId}`, { token: tokens.alice })
        const onchain = detail.body.steps.find((s: { step_id: string }) => s.step_id === "onchain_action")
        assert.strictEqual(onchain.status, "succeeded")
        assert.notStrictEqual(onchain.job_id, elsewhere.body.job_id)
        assert.strictEqual(onchain.result.chain, "qubic-mock")
      })
    )

    it.effect("finding 3: no agent can claim, see or settle a step job, so none can forge a step's result", () =>
      Effect.gen(function* () {
        const worker = `robot.agent-${crypto.randomUUID().slice(0, 8)}`
        for (const queues of [["mandate.steps"], ["signing", "mandate.steps"], ["mandate.deadlines"]]) {
          const claim = yield* call("POST", "/queue/claim", {
            token: tokens.robot,
            body: { worker_id: worker, queues, max: 10 }
          })
          assert.strictEqual(claim.status, 403, claim.text)
          assert.match(claim.body.message, /reserved for the runtime/)
        }

        const taskId = yield* startTransfer
        const detail = yield* call("GET", `/task/${taskId}`, { token: tokens.alice })
        const jobId: string = detail.body.steps.find((s: { step_id: string }) => s.step_id === "check_balance").job_id
        assert.isString(jobId)
        // To an agent or an auditor the runtime's job does not exist: no settling, no reading
        const attempts = [
          call("PATCH", `/queue/jobs/${jobId}/complete`, {
            token: tokens.robot,
            body: { worker_id: worker, result: { forged: true } }
          }),
          call("PATCH", `/queue/jobs/${jobId}/fail`, { token: tokens.robot, body: { worker_id: worker, error: "x" } }),
          call("PATCH", `/queue/jobs/${jobId}/start`, { token: tokens.robot, body: { worker_id: worker } }),
          call("POST", `/queue/jobs/${jobId}/heartbeat`, { token: tokens.robot, body: { worker_id: worker } }),
          call("GET", `/queue/jobs/${jobId}`, { token: tokens.robot }),
          call("GET", `/queue/jobs/${jobId}`, { token: tokens.carol })
        ]
        for (const attempt of attempts) {
          const reply = yield* attempt
          assert.strictEqual(reply.status, 404, reply.text)
        }
        // An admin may read it, but not settle it either
        assert.strictEqual((yield* call("GET", `/queue/jobs/${jobId}`, { token: tokens.root })).status, 200)
        const asAdmin = yield* call("PATCH", `/queue/jobs/${jobId}/complete`, {
          token: tokens.root,
          body: { worker_id: "root", result: { forged: true } }
        })
        assert.strictEqual(asAdmin.status, 403, asAdmin.text)

        // Listings leave the runtime's jobs out; naming its queue is refused
        const listed = yield* call("GET", "/queue/jobs?limit=1000", { token: tokens.carol })
        assert.strictEqual(listed.status, 200, listed.text)
        assert.isFalse(listed.body.jobs.some((j: { queue: string }) => j.queue.startsWith("mandate.")))
        assert.strictEqual((yield* call("GET", "/queue/jobs?queue=mandate.steps", { token: tokens.robot })).status, 403)
        const admin = yield* call("GET", "/queue/jobs?queue=mandate.steps&limit=1000", { token: tokens.root })
        assert.isTrue(admin.body.jobs.some((j: { job_id: string }) => j.job_id === jobId))
        // Aggregate statistics stay readable (documented): counts only, no ids or payloads
        assert.strictEqual(
          (yield* call("GET", "/queue/stats?queue=mandate.steps", { token: tokens.carol })).status,
          200
        )

        // The step's outcome is the runtime's: recorded with the worker that ran it, the result its handler gave
        const entries = yield* kindsOf(taskId)
        const succeeded = entries.find((e) => e.kind === "step.succeeded" && e.step_id === "check_balance")
        assert.isDefined(succeeded)
        assert.isString(succeeded!.payload.worker)
        assert.isFalse("forged" in succeeded!.payload.result)
        assert.strictEqual(succeeded!.payload.result.sufficient, true)
        const started = entries.find((e) => e.kind === "step.started" && e.step_id === "check_balance")
        assert.strictEqual(started!.payload.worker, succeeded!.payload.worker)
      })
    )
  })

describe("security: the runtime's queues are its own", () => {
  runtimeQueues("memory", TestServer.memoryServices())
  TestPostgres.describePostgres("postgres", () => {
    runtimeQueues("postgres", TestPostgres.services())
  })
  TestRedis.describeRedis("redis", () => {
    runtimeQueues("redis", TestRedis.services())
  })
})
