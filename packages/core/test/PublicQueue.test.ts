import { assert, describe, it } from "@effect/vitest"
import {
  AgentId,
  Agents,
  isReservedQueue,
  JobId,
  ownsWorker,
  Principal,
  PublicQueue,
  Queue,
  workerOwner
} from "@mandate/core"
import { Effect, Layer, Schema } from "effect"

const submitter = Principal.make("alice", ["submitter"])
const robot = Principal.make("robot", ["agent"])
const robotEu = Principal.make("robot.eu", ["agent"])
const auditor = Principal.make("carol", ["auditor"])
const admin = Principal.make("root", ["admin"])

const services = PublicQueue.layer.pipe(Layer.provideMerge(Layer.mergeAll(Queue.layerMemory(), Agents.layerMemory())))
const unique = () => crypto.randomUUID().slice(0, 8)

describe("PublicQueue", () => {
  describe("worker ids", () => {
    it("a worker id has one owner: the principal named before its first '.'", () => {
      assert.strictEqual(workerOwner("robot"), "robot")
      assert.strictEqual(workerOwner("robot.eu"), "robot")
      assert.strictEqual(workerOwner("robot.eu.w1"), "robot")
      assert.isTrue(ownsWorker(robot, "robot"))
      assert.isTrue(ownsWorker(robot, "robot.eu"))
      assert.isFalse(ownsWorker(robot, "robotic.w1"))
      assert.isFalse(ownsWorker(robot, "robot-eu"))
      // A principal whose id contains a '.' owns no worker id, not even its own id
      assert.isFalse(ownsWorker(robotEu, "robot.eu"))
      assert.isFalse(ownsWorker(robotEu, "robot.eu.w1"))
      assert.isTrue(ownsWorker(admin, "anyone.w1"))
    })

    it.effect("agent registration, heartbeat and deregistration need the worker id's owner", () =>
      Effect.gen(function* () {
        const queue = yield* PublicQueue
        const id = AgentId.make(`robot.${unique()}`)
        const refused = yield* Effect.flip(queue.register({ id, pool: "eu" }, robotEu))
        assert.strictEqual(refused._tag, "Forbidden")
        assert.match(refused.message, /contains one/)
        yield* queue.register({ id, pool: "eu" }, robot)
        assert.strictEqual((yield* Effect.flip(queue.agentHeartbeat(id, 0.5, robotEu)))._tag, "Forbidden")
        assert.strictEqual((yield* Effect.flip(queue.deregister(id, robotEu)))._tag, "Forbidden")
        assert.strictEqual((yield* Effect.flip(queue.deregister(id, submitter)))._tag, "Forbidden")
        assert.strictEqual((yield* queue.agentHeartbeat(id, 0.5, robot)).load, 0.5)
        yield* queue.deregister(id, robot)
      }).pipe(Effect.provide(services))
    )
  })

  describe("the runtime's workers", () => {
    it.effect("their registrations are the runtime's, whoever owns the worker id's prefix", () =>
      Effect.gen(function* () {
        const queue = yield* PublicQueue
        const registry = yield* Agents
        const host = Principal.make("host-1", ["agent"])
        const id = AgentId.make("host-1.worker")
        // What Worker.run registers for the runtime's in-process worker
        yield* registry.register({ id, pool: "default", capabilities: ["mandate.steps", "mandate.deadlines"] })
        for (const attempt of [
          queue.agentHeartbeat(id, 1, host),
          queue.deregister(id, host),
          queue.register({ id, pool: "eu" }, host),
          queue.deregister(id, admin)
        ]) {
          const refused = yield* Effect.flip(attempt)
          assert.strictEqual(refused._tag, "Forbidden")
        }
        assert.deepStrictEqual((yield* registry.get(id)).capabilities, ["mandate.steps", "mandate.deadlines"])
        const claimsReserved = yield* Effect.flip(
          queue.register({ id: AgentId.make("host-1.other"), pool: "eu", capabilities: ["mandate.steps"] }, host)
        )
        assert.strictEqual(claimsReserved._tag, "Forbidden")
      }).pipe(Effect.provide(services))
    )
  })

  describe("the runtime's queues", () => {
    it("the whole mandate. namespace is reserved", () => {
      assert.isTrue(isReservedQueue("mandate.steps"))
      assert.isTrue(isReservedQueue("mandate.deadlines"))
      assert.isTrue(isReservedQueue("mandate.anything"))
      assert.isFalse(isReservedQueue("mandate-steps"))
      assert.isFalse(isReservedQueue("signing"))
    })

    it.effect("no one, admins included, enqueues to or claims from a reserved queue", () =>
      Effect.gen(function* () {
        const queue = yield* PublicQueue
        for (const principal of [submitter, admin]) {
          const refused = yield* Effect.flip(
            queue.enqueue({ queue: "mandate.steps", payload: {}, idempotencyKey: "t/s/0" }, principal)
          )
          assert.strictEqual(refused._tag, "Forbidden")
          assert.match(refused.message, /reserved for the runtime/)
        }
        for (const principal of [robot, admin]) {
          const refused = yield* Effect.flip(
            queue.claim({ workerId: AgentId.make("robot.w1"), queues: ["signing", "mandate.deadlines"] }, principal)
          )
          assert.strictEqual(refused._tag, "Forbidden")
        }
        // Roles are checked in core as well as on the routes
        assert.strictEqual(
          (yield* Effect.flip(queue.enqueue({ queue: "signing", payload: {} }, robot)))._tag,
          "Forbidden"
        )
        assert.strictEqual(
          (yield* Effect.flip(queue.claim({ workerId: AgentId.make("alice"), queues: ["signing"] }, submitter)))._tag,
          "Forbidden"
        )
      }).pipe(Effect.provide(services))
    )

    it.effect("a reserved queue's job cannot be settled, and only admins can see it", () =>
      Effect.gen(function* () {
        const queue = yield* PublicQueue
        const inner = yield* Queue
        const worker = AgentId.make(`robot.${unique()}`)
        // The runtime's own job, claimed by the runtime's worker
        const job = yield* inner.enqueue({ queue: "mandate.steps", payload: { taskId: "t", stepId: "s", round: 0 } })
        for (const attempt of [
          queue.complete(job.id, worker, { forged: true }, robot),
          queue.fail(job.id, worker, "nope", undefined, robot),
          queue.start(job.id, worker, robot),
          queue.heartbeat(job.id, worker, 1_000, robot),
          queue.get(job.id, robot),
          queue.get(job.id, auditor)
        ]) {
          const refused = yield* Effect.flip(attempt)
          assert.strictEqual(refused._tag, "JobNotFound")
        }
        assert.strictEqual((yield* queue.get(job.id, admin)).id, job.id)
        const asAdmin = yield* Effect.flip(queue.complete(job.id, AgentId.make("root"), { forged: true }, admin))
        assert.strictEqual(asAdmin._tag, "Forbidden")
        assert.strictEqual((yield* inner.get(job.id)).state, "queued")
        // An unknown job is as absent as a reserved one
        const missing = yield* Effect.flip(queue.get(JobId.make("job_missing"), robot))
        assert.strictEqual(missing._tag, "JobNotFound")
      }).pipe(Effect.provide(services))
    )

    it.effect("listings leave the runtime's jobs out for non-admins, page by page", () =>
      Effect.gen(function* () {
        const queue = yield* PublicQueue
        const inner = yield* Queue
        const pool = `p${unique()}`
        // Interleaved: reserved, host, reserved, host, …
        const host: Array<string> = []
        for (let i = 0; i < 5; i++) {
          yield* inner.enqueue({ queue: "mandate.steps", payload: i, pool })
          host.push((yield* inner.enqueue({ queue: "signing", payload: i, pool })).id)
        }
        const seen: Array<string> = []
        let cursor: string | undefined
        for (let page = 0; page < 10; page++) {
          const got = yield* queue.list({ pool, limit: 2, ...(cursor === undefined ? {} : { cursor }) }, auditor)
          assert.isAtMost(got.jobs.length, 2)
          for (const job of got.jobs) {
            assert.isFalse(isReservedQueue(job.queue))
            seen.push(job.id)
          }
          cursor = got.nextCursor
          if (cursor === undefined) break
        }
        assert.deepStrictEqual(seen, host)
        const named = yield* Effect.flip(queue.list({ queue: "mandate.steps" }, robot))
        assert.strictEqual(named._tag, "Forbidden")
        const everything = yield* queue.list({ pool }, admin)
        assert.strictEqual(everything.jobs.length, 10)
        // Statistics are aggregates, readable by every reader (as in /metrics)
        assert.isAtLeast((yield* queue.stats("mandate.steps", auditor)).byState.queued, 5)
      }).pipe(Effect.provide(services))
    )

    it.effect("host queues work as before, and idempotency keys are the queue's own", () =>
      Effect.gen(function* () {
        const queue = yield* PublicQueue
        const inner = yield* Queue
        const key = "task_1/onchain_action/0"
        const runtimeJob = yield* inner.enqueue({ queue: "mandate.steps", payload: 1, idempotencyKey: key })
        const hostJob = yield* queue.enqueue({ queue: "signing", payload: 2, idempotencyKey: key }, submitter)
        assert.notStrictEqual(hostJob.id, runtimeJob.id)
        const worker = AgentId.make(`robot.${unique()}`)
        const [claimed] = yield* queue.claim({ workerId: worker, queues: ["signing"], max: 10 }, robot)
        assert.isDefined(claimed)
        // robot.eu cannot act as robot's worker, and owns no worker id of its own
        const foreign = yield* Effect.flip(queue.complete(claimed!.id, worker, {}, robotEu))
        assert.strictEqual(foreign._tag, "Forbidden")
        const done = yield* queue.complete(claimed!.id, worker, { ok: true }, robot)
        assert.strictEqual(done.state, "completed")
      }).pipe(Effect.provide(services))
    )
  })

  describe("principal ids", () => {
    it("authenticators may not issue ids in the runtime's namespace", () => {
      assert.isTrue(Principal.isReservedId(Principal.system.id))
      assert.isFalse(Principal.isReservedId("robot.eu"))
      const issuable = Schema.is(Principal.ExternalPrincipalId)
      assert.isFalse(issuable("mandate.runtime"))
      assert.isFalse(issuable("mandate.anyone"))
      assert.isTrue(issuable("robot.eu"))
      assert.isTrue(issuable("alice@example.com"))
    })
  })
})
