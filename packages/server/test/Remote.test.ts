/**
 * Remote steps over HTTP, on memory, Postgres and Redis: the seed transfer with `onchain_action` run by an agent of
 * pool `signers` (offered only once approved, settled through the runtime's one settle path, the agent named in the
 * ledger), a step taken over by another agent when its holder dies mid-step (exactly one success), everyone else
 * kept out (another pool's agent, a submitter, an agent without the lease), a refused result as a failed attempt,
 * pools and stalled steps in the status, and `POST /execute`.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Fiber, type Layer } from "effect"
import { ServerConfig } from "../src/Config.ts"
import type * as Stores from "../src/Stores.ts"
import * as TestPostgres from "./utils/TestPostgres.ts"
import * as TestRedis from "./utils/TestRedis.ts"
import * as TestServer from "./utils/TestServer.ts"

const { call, tokens, walletA, walletB, waitForStatus } = TestServer

/**
 * `onchain_action` runs on agents of pool `signers`, served by principal `robot`, `monitor_action` on pool
 * `watchers`, which only the agents of principal `hsm` may serve.
 */
const options = {
  remoteSteps: { onchain_action: "signers", monitor_action: "watchers" },
  poolPrincipals: { signers: ["robot"], watchers: ["hsm"] }
}

const transfer = (amount: number) => ({
  task_type: "transfer_funds",
  parameters: { from: walletA, to: walletB, amount }
})

const receipt = (txId: string) => ({ chain: "remote-signer", txId, tick: 7, digest: "ab".repeat(32) })

const register = (agentId: string, pool: string, token: string = tokens.robot) =>
  Effect.gen(function* () {
    const reply = yield* call("POST", "/agents", { token, body: { agent_id: agentId, pool } })
    assert.strictEqual(reply.status, 200, reply.text)
  })

const claim = (agentId: string, pool: string, options?: { readonly leaseMs?: number; readonly token?: string }) =>
  call("POST", `/pools/${pool}/claim`, {
    token: options?.token ?? tokens.robot,
    body: { worker_id: agentId, max: 4, ...(options?.leaseMs === undefined ? {} : { lease_ms: options.leaseMs }) }
  })

/** Claims until the pool offers a step of `taskId` (the step becomes claimable when its queue says so). */
const claimStep = (agentId: string, pool: string, taskId: string, leaseMs?: number) =>
  Effect.gen(function* () {
    while (true) {
      const reply = yield* claim(agentId, pool, leaseMs === undefined ? undefined : { leaseMs })
      assert.strictEqual(reply.status, 200, reply.text)
      const step = reply.body.steps.find((s: { task_id: string }) => s.task_id === taskId)
      if (step !== undefined) return step
      yield* Effect.sleep("20 millis")
    }
  })

const startApproved = (amount: number) =>
  Effect.gen(function* () {
    const started = yield* call("POST", "/task/start", { token: tokens.alice, body: transfer(amount) })
    assert.strictEqual(started.status, 200, started.text)
    const taskId: string = started.body.task_id
    yield* waitForStatus(taskId, (s) => s === "waiting_approval")
    const approved = yield* call("POST", `/task/${taskId}/approve`, { token: tokens.bob, body: { approved: true } })
    assert.strictEqual(approved.status, 200, approved.text)
    return taskId
  })

const audit = (taskId: string) =>
  Effect.map(
    call("GET", `/audit/${taskId}`, { token: tokens.carol }),
    (reply) => reply.body.entries as ReadonlyArray<any>
  )

const suite = <E>(name: string, services: Layer.Layer<Stores.Services | Stores.Readiness, E>) =>
  layer(TestServer.layer(services), { excludeTestServices: true, timeout: "90 seconds" })(name, (it) => {
    it.effect("seed transfer: onchain_action offered only after approval, signed by the pool's agent, audited", () =>
      Effect.gen(function* () {
        const started = yield* call("POST", "/task/start", { token: tokens.alice, body: transfer(2_500) })
        assert.strictEqual(started.status, 200, started.text)
        const taskId: string = started.body.task_id
        yield* waitForStatus(taskId, (s) => s === "waiting_approval")

        const signer = `robot.signer-${name}`
        yield* register(signer, "signers")
        // Waiting for approval: nothing to offer yet
        const early = yield* claim(signer, "signers")
        assert.strictEqual(early.status, 200, early.text)
        assert.isFalse(early.body.steps.some((s: { task_id: string }) => s.task_id === taskId))
        yield* call("DELETE", `/agents/${signer}`, { token: tokens.robot })

        const approved = yield* call("POST", `/task/${taskId}/approve`, { token: tokens.bob, body: { approved: true } })
        assert.strictEqual(approved.status, 200, approved.text)
        // No live agent in the pool: the status says what the step waits for
        const stalled = yield* waitForStatus(taskId, (s) => s === "running")
        assert.deepStrictEqual(stalled.waiting_for_agents, [{ step_id: "onchain_action", pool: "signers" }])

        yield* register(signer, "signers")
        const pools = yield* call("GET", "/agents/pools", { token: tokens.carol })
        const signers = pools.body.pools.find((p: { pool: string }) => p.pool === "signers")
        assert.deepStrictEqual(signers.step_types, ["onchain_action"])
        assert.isAtLeast(signers.online, 1)
        assert.isAtLeast(signers.waiting, 1)

        // The pool publishes the JSON Schemas of what its agents get and must send back
        const published = yield* call("GET", "/pools/signers", { token: tokens.robot })
        assert.strictEqual(published.status, 200, published.text)
        const declared = published.body.step_types[0]
        assert.strictEqual(declared.type, "onchain_action")
        assert.deepStrictEqual([...declared.params_schema.required].sort(), ["amount", "from", "to"])
        assert.includeMembers(declared.result_schema.required, ["chain", "txId", "tick", "digest"])
        assert.strictEqual((yield* call("GET", "/pools/nowhere", { token: tokens.robot })).status, 404)

        const step = yield* claimStep(signer, "signers", taskId)
        assert.strictEqual(step.step_id, "onchain_action")
        assert.strictEqual(step.type, "onchain_action")
        assert.strictEqual(step.attempt, 1)
        assert.strictEqual(step.worker_id, signer)
        assert.strictEqual(step.idempotency_key, `${taskId}/onchain_action`)
        assert.deepStrictEqual(step.params, { from: walletA, to: walletB, amount: 2_500 })
        assert.isAbove(step.lease_expires_at, 0)
        const status = yield* call("GET", `/task/${taskId}/status`, { token: tokens.carol })
        assert.strictEqual(status.body.waiting_for_agents, undefined)

        const beat = yield* call("POST", `/steps/${step.lease_id}/heartbeat`, {
          token: tokens.robot,
          body: { worker_id: signer, extend_ms: 60_000 }
        })
        assert.strictEqual(beat.status, 200, beat.text)
        assert.isAbove(beat.body.lease_expires_at, step.lease_expires_at)

        const done = yield* call("POST", `/steps/${step.lease_id}/complete`, {
          token: tokens.robot,
          body: { worker_id: signer, result: receipt("tx-1") }
        })
        assert.strictEqual(done.status, 200, done.text)
        assert.deepStrictEqual(done.body, {
          lease_id: step.lease_id,
          task_id: taskId,
          step_id: "onchain_action",
          outcome: "succeeded"
        })
        yield* waitForStatus(taskId, (s) => s === "completed")
        const detail = yield* call("GET", `/task/${taskId}`, { token: tokens.alice })
        const onchain = detail.body.steps.find((s: { step_id: string }) => s.step_id === "onchain_action")
        assert.deepStrictEqual(onchain.result, receipt("tx-1"))

        const entries = yield* audit(taskId)
        const of = (kind: string) => entries.filter((e) => e.kind === kind && e.step_id === "onchain_action")
        assert.strictEqual(of("step.started").length, 1)
        assert.strictEqual(of("step.started")[0].principal.id, "robot")
        assert.strictEqual(of("step.started")[0].payload.worker, signer)
        assert.strictEqual(of("step.succeeded").length, 1)
        assert.strictEqual(of("step.succeeded")[0].principal.id, "robot")
        assert.strictEqual(of("step.succeeded")[0].payload.worker, signer)
        assert.strictEqual(entries.at(-1).kind, "task.completed")
      })
    )

    it.effect("an agent dies mid-step: its lease expires, another agent of the pool takes it, one success", () =>
      Effect.gen(function* () {
        const taskId = yield* startApproved(1_200)
        const first = `robot.dies-${name}`
        const second = `robot.takes-${name}`
        yield* register(first, "signers")
        yield* register(second, "signers")
        const taken = yield* claimStep(first, "signers", taskId, 200)
        assert.strictEqual(taken.attempt, 1)
        // The first agent never comes back; the second gets the step once the lease has expired
        const retaken = yield* claimStep(second, "signers", taskId)
        assert.strictEqual(retaken.step_id, "onchain_action")
        assert.strictEqual(retaken.attempt, 2)
        assert.strictEqual(retaken.idempotency_key, taken.idempotency_key)
        // The first agent, back too late, cannot settle the step any more
        const late = yield* call("POST", `/steps/${taken.lease_id}/complete`, {
          token: tokens.robot,
          body: { worker_id: first, result: receipt("tx-late") }
        })
        assert.strictEqual(late.status, 409, late.text)
        const done = yield* call("POST", `/steps/${retaken.lease_id}/complete`, {
          token: tokens.robot,
          body: { worker_id: second, result: receipt("tx-2") }
        })
        assert.strictEqual(done.body.outcome, "succeeded", done.text)
        yield* waitForStatus(taskId, (s) => s === "completed")

        const entries = yield* audit(taskId)
        const of = (kind: string) => entries.filter((e) => e.kind === kind && e.step_id === "onchain_action")
        assert.deepStrictEqual(
          of("step.started").map((e) => e.payload.worker),
          [first, second]
        )
        assert.strictEqual(of("step.succeeded").length, 1)
        assert.strictEqual(of("step.succeeded")[0].payload.worker, second)
        assert.deepStrictEqual(of("step.succeeded")[0].payload.result, receipt("tx-2"))
      })
    )

    it.effect("only the pool's agents holding the lease claim, see or settle a step", () =>
      Effect.gen(function* () {
        const taskId = yield* startApproved(1_300)
        const holder = `robot.holder-${name}`
        const peer = `robot.peer-${name}`
        const watcher = `robot.watcher-${name}`
        yield* register(holder, "signers")
        yield* register(peer, "signers")
        // robot's agents may not serve watchers, a pool only hsm's agents serve: not even register there
        const notServing = yield* call("POST", "/agents", {
          token: tokens.robot,
          body: { agent_id: watcher, pool: "watchers" }
        })
        assert.strictEqual(notServing.status, 403, notServing.text)
        assert.include(notServing.body.message, "served by the agents of hsm only")
        const stranger = `robot.stranger-${name}`
        yield* register(stranger, "observers")

        // Another pool's agent may not claim this pool's steps
        const otherPool = yield* claim(stranger, "signers")
        assert.strictEqual(otherPool.status, 403, otherPool.text)
        // Nor does robot's would-be watcher claim there: it has no pool
        assert.strictEqual((yield* claim(watcher, "watchers")).status, 404)
        // A submitter is no agent; an agent may not act as a worker id of another principal
        assert.strictEqual((yield* claim(holder, "signers", { token: tokens.alice })).status, 403)
        assert.strictEqual((yield* claim("mallory.x", "signers")).status, 403)
        // An unregistered worker id has no pool
        assert.strictEqual((yield* claim(`robot.nobody-${name}`, "signers")).status, 404)

        const step = yield* claimStep(holder, "signers", taskId)
        const settle = (worker: string, token: string = tokens.robot) =>
          call("POST", `/steps/${step.lease_id}/complete`, {
            token,
            body: { worker_id: worker, result: receipt("tx-forged") }
          })
        // The step does not exist for another pool's agent; the pool's other agent holds no lease on it
        assert.strictEqual((yield* settle(stranger)).status, 404)
        assert.strictEqual((yield* settle(watcher)).status, 404)
        assert.strictEqual((yield* settle(peer)).status, 409)
        assert.strictEqual((yield* settle(holder, tokens.alice)).status, 403)
        assert.strictEqual((yield* settle(holder, tokens.robotEu)).status, 403)
        const peerBeat = yield* call("POST", `/steps/${step.lease_id}/heartbeat`, {
          token: tokens.robot,
          body: { worker_id: peer }
        })
        assert.strictEqual(peerBeat.status, 409)
        // The runtime's queue stays closed through the public queue API
        const viaQueue = yield* call("PATCH", `/queue/jobs/${step.lease_id}/complete`, {
          token: tokens.robot,
          body: { worker_id: holder, result: receipt("tx-forged") }
        })
        assert.strictEqual(viaQueue.status, 404)
        // Agents read no tasks
        assert.strictEqual((yield* call("GET", `/task/${taskId}`, { token: tokens.robot })).status, 403)

        const failed = yield* call("POST", `/steps/${step.lease_id}/fail`, {
          token: tokens.robot,
          body: { worker_id: holder, error: "the signer is busy" }
        })
        assert.strictEqual(failed.status, 200, failed.text)
        assert.strictEqual(failed.body.outcome, "retrying")
        // Retried: the pool gets the step again, a new attempt under the same idempotency key
        const again = yield* claimStep(peer, "signers", taskId)
        assert.strictEqual(again.attempt, 2)
        assert.strictEqual(again.idempotency_key, step.idempotency_key)
        const done = yield* call("POST", `/steps/${again.lease_id}/complete`, {
          token: tokens.robot,
          body: { worker_id: peer, result: receipt("tx-3") }
        })
        assert.strictEqual(done.body.outcome, "succeeded", done.text)
        yield* waitForStatus(taskId, (s) => s === "completed")
        const entries = yield* audit(taskId)
        const failure = entries.find((e) => e.kind === "step.failed" && e.step_id === "onchain_action")
        assert.strictEqual(failure.payload.error.message, "the signer is busy")
        assert.strictEqual(failure.payload.worker, holder)
        assert.strictEqual(failure.principal.id, "robot")
      })
    )

    it.effect("a result the step type's schema refuses is a failed attempt carrying the decode error", () =>
      Effect.gen(function* () {
        const taskId = yield* startApproved(1_400)
        const agent = `robot.sloppy-${name}`
        yield* register(agent, "signers")
        const step = yield* claimStep(agent, "signers", taskId)
        const refused = yield* call("POST", `/steps/${step.lease_id}/complete`, {
          token: tokens.robot,
          body: { worker_id: agent, result: { signed: true } }
        })
        assert.strictEqual(refused.status, 200, refused.text)
        assert.strictEqual(refused.body.outcome, "failed")
        assert.include(refused.body.error, "result does not match the onchain_action")
        const failed = yield* waitForStatus(taskId, (s) => s === "failed")
        assert.include(failed.reasons[0], "result does not match")
        const entries = yield* audit(taskId)
        const failure = entries.find((e) => e.kind === "step.failed" && e.step_id === "onchain_action")
        assert.include(failure.payload.error.message, "result does not match the onchain_action")
        assert.strictEqual(failure.payload.worker, agent)
        assert.isFalse(entries.some((e) => e.kind === "step.succeeded" && e.step_id === "onchain_action"))
      })
    )

    it.effect("a long-polling claim (wait_ms) answers when a step comes to the pool", () =>
      Effect.gen(function* () {
        const agent = `robot.waiter-${name}`
        yield* register(agent, "signers")
        const waiting = yield* Effect.forkChild(
          call("POST", "/pools/signers/claim", {
            token: tokens.robot,
            body: { worker_id: agent, max: 1, wait_ms: 20_000 }
          })
        )
        const taskId = yield* startApproved(1_500)
        const reply = yield* Fiber.join(waiting)
        assert.strictEqual(reply.status, 200, reply.text)
        assert.strictEqual(reply.body.steps.length, 1)
        assert.strictEqual(reply.body.steps[0].task_id, taskId)
        const done = yield* call("POST", `/steps/${reply.body.steps[0].lease_id}/complete`, {
          token: tokens.robot,
          body: { worker_id: agent, result: receipt("tx-long-poll") }
        })
        assert.strictEqual(done.body.outcome, "succeeded", done.text)
        const tooLong = yield* call("POST", "/pools/signers/claim", {
          token: tokens.robot,
          body: { worker_id: agent, wait_ms: 60_000 }
        })
        assert.strictEqual(tooLong.status, 400)
        assert.strictEqual(tooLong.body.path, "$.wait_ms")
      })
    )

    it.effect("POST /execute runs one step type as a governed one-step task, waiting for its result", () =>
      Effect.gen(function* () {
        const ran = yield* call("POST", "/execute", {
          token: tokens.alice,
          body: { step_type: "check_balance", parameters: { wallet: walletA }, wait_ms: 20_000 }
        })
        assert.strictEqual(ran.status, 200, ran.text)
        assert.match(ran.body.task_id, /^task_/)
        assert.strictEqual(ran.body.status, "completed")
        assert.strictEqual(ran.body.result.wallet, walletA)
        assert.isTrue(ran.body.result.sufficient)

        // Under policy like any task: the seed policy has no rule for an on-chain action outside a transfer task
        // (kind step.onchain_action), so it is denied, and recorded as rejected
        const denied = yield* call("POST", "/execute", {
          token: tokens.alice,
          body: { step_type: "onchain_action", parameters: { from: walletA, to: walletB, amount: 900 } }
        })
        assert.strictEqual(denied.status, 422, denied.text)
        assert.strictEqual(denied.body.error, "policy_denied")
        const rejected = yield* call("GET", `/task/${denied.body.task_id}/status`, { token: tokens.alice })
        assert.strictEqual(rejected.body.status, "rejected")

        const unknown = yield* call("POST", "/execute", {
          token: tokens.alice,
          body: { step_type: "launch_rocket", parameters: {} }
        })
        assert.strictEqual(unknown.status, 400, unknown.text)
        assert.strictEqual(unknown.body.path, "$.step_type")
        const badParams = yield* call("POST", "/execute", {
          token: tokens.alice,
          body: { step_type: "check_balance", parameters: { wallet: "nope" } }
        })
        assert.strictEqual(badParams.status, 400, badParams.text)
        assert.match(badParams.body.path, /^\$\.parameters/)
        assert.strictEqual(
          (yield* call("POST", "/execute", {
            token: tokens.robot,
            body: { step_type: "check_balance", parameters: { wallet: walletA } }
          })).status,
          403
        )
      })
    )
  })

describe("MANDATE_REMOTE_STEPS and MANDATE_POOL_PRINCIPALS", () => {
  const parse = (env: Record<string, string>) => ServerConfig.parse(ConfigProvider.fromEnvRecord(env))

  it.effect("are type:pool and pool:principal+principal lists, empty by default; anything else is refused", () =>
    Effect.gen(function* () {
      const none = yield* parse({})
      assert.deepStrictEqual(none.remoteSteps, {})
      assert.deepStrictEqual(none.poolPrincipals, {})
      const some = yield* parse({
        MANDATE_REMOTE_STEPS: " onchain_action:signers , monitor_action:watchers,",
        MANDATE_POOL_PRINCIPALS: "signers:hsm+robot"
      })
      assert.deepStrictEqual(some.remoteSteps, { onchain_action: "signers", monitor_action: "watchers" })
      assert.deepStrictEqual(some.poolPrincipals, { signers: ["hsm", "robot"] })
      for (const bad of ["onchain_action", "onchain_action:", `onchain_action:${"p".repeat(52)}`, "Bad:pool"]) {
        assert.include(String(yield* Effect.flip(parse({ MANDATE_REMOTE_STEPS: bad }))), "MANDATE_REMOTE_STEPS", bad)
      }
      for (const bad of ["signers", "signers:", "signers:a b"]) {
        assert.include(
          String(yield* Effect.flip(parse({ MANDATE_POOL_PRINCIPALS: bad }))),
          "MANDATE_POOL_PRINCIPALS",
          bad
        )
      }
    })
  )
})

describe("remote steps over HTTP", () => {
  suite("memory", TestServer.memoryServices(options))
  TestPostgres.describePostgres("postgres", () => {
    suite("postgres", TestPostgres.services(options))
  })
  TestRedis.describeRedis("redis", () => {
    suite("redis", TestRedis.services(options))
  })
})
