/**
 * Remote step types in core, without HTTP: where their jobs go (the pool's reserved queue, never run in process,
 * closed to the public queue API), the declaration's checks, and the rules of `RemoteSteps`.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  AgentId,
  Agents,
  asRemoteStep,
  handler,
  Mandate,
  type PolicySet,
  Principal,
  PublicQueue,
  Queue,
  RemoteSteps,
  Runtime,
  remoteStep,
  Seed,
  taskTemplate
} from "@mandate/core"
import { Cause, Effect, Exit, Layer, Schema } from "effect"
import { TestClock } from "effect/testing"
import { alice } from "./utils/fixtures.ts"

const Note = Schema.Struct({ text: Schema.String })
const Signed = Schema.Struct({ text: Schema.String, signature: Schema.String })
const sign = remoteStep({ type: "sign_note", pool: "signers", params: Note, result: Signed, principals: ["robot"] })
const note = handler({ type: "note", params: Note, result: Note, run: (p) => Effect.succeed(p) })
const signedNote = taskTemplate({
  kind: "signed_note",
  params: Note,
  steps: (p) => [
    { id: "write", type: "note", params: p },
    { id: "sign", type: "sign_note", params: p, dependsOn: ["write"] }
  ]
})
const policy: PolicySet.PolicySet = {
  ...Seed.defaultPolicySet,
  rules: [...Seed.defaultPolicySet.rules, { id: "notes", effect: "allow", match: { action: ["note", "sign_note"] } }]
}

const robot = Principal.make("robot", ["agent"])
const services = Mandate.layerMemory({
  handlers: [note, sign],
  templates: [signedNote],
  policy,
  runtime: { pollIntervalMs: 10, leaseMs: 1_000, heartbeatIntervalMs: 50 }
})
const layer = Layer.mergeAll(RemoteSteps.layer, PublicQueue.layer).pipe(Layer.provideMerge(services))

/** Lets the in-process worker run until the remote step is queued. */
const queuedRemote = (taskId: string) =>
  Effect.gen(function* () {
    const runtime = yield* Runtime
    for (let i = 0; i < 200; i++) {
      const view = yield* runtime.get(taskId)
      const step = view.steps.find((s) => s.id === "sign")!
      if (step.state === "queued") return step
      yield* TestClock.adjust("20 millis")
    }
    return assert.fail("the remote step was never queued")
  })

/** The JSON path of the `InvalidInput` an exit failed with. */
const pathOf = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) ? (Cause.squash(exit.cause) as { readonly path?: string }).path : undefined

describe("RemoteSteps", () => {
  it.effect(
    "a remote step's job waits in its pool's reserved queue: never run in process, closed to the queue API",
    () =>
      Effect.gen(function* () {
        const runtime = yield* Runtime
        const task = yield* runtime.start({ kind: "signed_note", params: { text: "hello" } }, alice)
        const step = yield* queuedRemote(task.id)
        const job = yield* Queue.use((q) => q.get(step.jobId!))
        assert.strictEqual(job.queue, "mandate.pool.signers")
        // However long the in-process worker runs, it does not take the step
        yield* TestClock.adjust("2 seconds")
        const still = (yield* runtime.get(task.id)).steps.find((s) => s.id === "sign")!
        assert.strictEqual(still.state, "queued")
        assert.strictEqual(still.attempts, 0)
        const publicQueue = yield* PublicQueue
        const viaQueue = yield* Effect.exit(
          publicQueue.claim({ workerId: AgentId.make("robot.q"), queues: ["mandate.pool.signers"] }, robot)
        )
        assert.isTrue(Exit.isFailure(viaQueue))

        // Its pool's agent gets it, with its params, and settles it through the runtime
        const agents = yield* Agents
        yield* agents.register({ id: AgentId.make("robot.signer"), pool: "signers" })
        const remote = yield* RemoteSteps
        const [claimed] = yield* remote.claim("signers", { workerId: AgentId.make("robot.signer") }, robot)
        assert.deepStrictEqual(claimed!.params, { text: "hello" })
        assert.strictEqual(claimed!.idempotencyKey, `${task.id}/sign`)
        const settled = yield* remote.complete(
          { leaseId: claimed!.leaseId, workerId: claimed!.workerId },
          { text: "hello", signature: "sig" },
          robot
        )
        assert.strictEqual(settled.outcome, "succeeded")
        const done = yield* runtime.get(task.id)
        assert.strictEqual(done.task.state, "completed")
        assert.deepStrictEqual(done.steps.find((s) => s.id === "sign")!.result, { text: "hello", signature: "sig" })

        const [pool] = (yield* remote.pools).filter((p) => p.pool === "signers")
        assert.deepStrictEqual(pool!.stepTypes, ["sign_note"])
        const published = yield* remote.pool("signers")
        assert.deepStrictEqual((published.types[0]!.resultSchema as { required: Array<string> }).required.sort(), [
          "signature",
          "text"
        ])
      }).pipe(Effect.provide(layer))
  )

  it.effect("a pool name too long for its queue, or a remote step type without a handler, is refused", () =>
    Effect.gen(function* () {
      const tooLong = yield* Effect.exit(
        Layer.build(Mandate.layerMemory({ handlers: [asRemoteStep(note, "p".repeat(52))] }))
      )
      assert.strictEqual(pathOf(tooLong), '$.handlers["note"].pool')
      const unknown = yield* Effect.exit(Layer.build(Mandate.layerMemory({ remoteSteps: { launch_rocket: "x" } })))
      assert.strictEqual(pathOf(unknown), '$.remoteSteps["launch_rocket"]')
    }).pipe(Effect.scoped)
  )

  it.effect("the runtime's pool names (default, mandate.*) cannot be a remote pool", () =>
    Effect.gen(function* () {
      for (const pool of ["default", "mandate.steps", "mandate.x"]) {
        const exit = yield* Effect.exit(Layer.build(Mandate.layerMemory({ handlers: [asRemoteStep(note, pool)] })))
        assert.strictEqual(pathOf(exit), '$.handlers["note"].pool', pool)
      }
    }).pipe(Effect.scoped)
  )

  it.effect("a remote pool naming no principals is closed to every agent but admins': no registration, no claim", () =>
    Effect.gen(function* () {
      const publicQueue = yield* PublicQueue
      const remote = yield* RemoteSteps
      const agents = yield* Agents
      const vaults = (principal: Principal.Principal, id: string) =>
        publicQueue.register({ id: AgentId.make(id), pool: "vaults" }, principal)
      const refused = yield* Effect.flip(vaults(robot, "robot.v1"))
      assert.strictEqual(refused._tag, "Forbidden")
      assert.include(refused.message, "names no principals")
      // Registered some other way (the registry is no gate), robot's agent still claims nothing there
      yield* agents.register({ id: AgentId.make("robot.v2"), pool: "vaults" })
      const claim = yield* Effect.flip(remote.claim("vaults", { workerId: AgentId.make("robot.v2") }, robot))
      assert.strictEqual(claim._tag, "Forbidden")
      // A listed pool admits its principal and refuses others
      assert.strictEqual(
        (yield* publicQueue.register({ id: AgentId.make("robot.s1"), pool: "signers" }, robot)).pool,
        "signers"
      )
      const mallory = Principal.make("mallory", ["agent"])
      assert.strictEqual(
        (yield* Effect.flip(publicQueue.register({ id: AgentId.make("mallory.s1"), pool: "signers" }, mallory)))._tag,
        "Forbidden"
      )
      // Pools no remote step type uses stay open to agents (host queues' pools)
      assert.strictEqual((yield* vaults(mallory, "mallory.x").pipe(Effect.flip))._tag, "Forbidden")
      assert.strictEqual(
        (yield* publicQueue.register({ id: AgentId.make("mallory.h"), pool: "hosts" }, mallory)).pool,
        "hosts"
      )
      // Admins serve any pool
      const root = Principal.make("root", ["admin"])
      assert.strictEqual((yield* vaults(root, "root.v")).pool, "vaults")
    }).pipe(
      Effect.provide(
        Layer.mergeAll(RemoteSteps.layer, PublicQueue.layer).pipe(
          Layer.provideMerge(
            Mandate.layerMemory({ handlers: [note, sign, asRemoteStep(handler({ ...note, type: "lock" }), "vaults")] })
          )
        )
      )
    )
  )
})
