import { assert, describe, it } from "@effect/vitest"
import {
  Anchor,
  adoptConfigured,
  Ledger,
  LedgerStoreError,
  Mandate,
  PolicyAdmin,
  PolicySet,
  PolicyStore,
  Principal,
  Queue,
  QueueAdmin,
  Runtime,
  Seed,
  TaskStore,
  UnitOfWork
} from "@mandate/core"
import { Effect, Layer } from "effect"
import { admin, alice, walletA, walletB } from "./utils/fixtures.ts"

const auditor = Principal.make("audra", ["auditor"])
const frozen: PolicySet.PolicySet = {
  ...Seed.defaultPolicySet,
  name: "frozen",
  rules: [...Seed.defaultPolicySet.rules, { id: "freeze", effect: "deny", match: { task: "transfer_funds" } }]
}
const transfer = { kind: "transfer_funds", params: { from: walletA, to: walletB, amount: 10 } }

describe("PolicyAdmin", () => {
  it.effect("the admin rule lives in core: others are refused whatever their route", () =>
    Effect.gen(function* () {
      const policyAdmin = yield* PolicyAdmin
      for (const who of [alice, auditor]) {
        const refused = yield* Effect.flip(policyAdmin.propose(frozen, who, { dryRun: true }))
        assert.strictEqual(refused._tag, "Forbidden")
        const activation = yield* Effect.flip(policyAdmin.activate(PolicySet.version(frozen), who))
        assert.strictEqual(activation._tag, "Forbidden")
      }
      assert.strictEqual((yield* Effect.flip(policyAdmin.versions(alice)))._tag, "Forbidden")
      assert.strictEqual((yield* Effect.flip(policyAdmin.activations(alice)))._tag, "Forbidden")
      assert.lengthOf(yield* policyAdmin.versions(auditor), 1)
    }).pipe(Effect.provide(Mandate.layerMemory({ runtime: { workers: false } })))
  )

  it.effect(
    "a dry run evaluates recent tasks' recorded inputs and stores nothing; publish and activate are recorded",
    () =>
      Effect.gen(function* () {
        const policyAdmin = yield* PolicyAdmin
        const runtime = yield* Runtime
        const task = yield* runtime.start(transfer, alice)
        const dry = yield* policyAdmin.propose(frozen, admin, { dryRun: true })
        assert.isUndefined(dry.stored)
        assert.strictEqual(dry.impact.examined, 1)
        assert.deepStrictEqual(
          dry.impact.tasks[0]!.steps.map((s) => [s.stepId, s.before, s.after]),
          [
            ["check_balance", "allow", "deny"],
            ["policy_check", "allow", "deny"],
            ["onchain_action", "require_approval", "deny"]
          ]
        )
        assert.strictEqual(dry.impact.tasks[0]!.taskId, task.id)
        assert.lengthOf(yield* policyAdmin.versions(admin), 1)

        const published = yield* policyAdmin.propose(frozen, admin)
        assert.isDefined(published.stored)
        assert.isFalse((yield* policyAdmin.propose(frozen, admin)).new)
        const activation = yield* policyAdmin.activate(published.version, admin)
        assert.strictEqual(activation.previous, PolicySet.version(Seed.defaultPolicySet))
        const back = yield* policyAdmin.activate(PolicySet.version(Seed.defaultPolicySet), admin)
        assert.isTrue(back.rollback)

        const entries = yield* (yield* Ledger).entries()
        const kinds = entries.filter((e) => e.kind.startsWith("policy.") && e.kind !== "policy.decided")
        assert.deepStrictEqual(
          kinds.map((e) => [e.kind, (e.payload as { version: string }).version, e.principal?.id]),
          [
            ["policy.published", published.version, "root"],
            ["policy.activated", published.version, "root"],
            ["policy.activated", PolicySet.version(Seed.defaultPolicySet), "root"]
          ]
        )
        // The activation history, from those entries: who, which version, when
        const activations = yield* policyAdmin.activations(auditor)
        const activated = kinds.filter((e) => e.kind === "policy.activated")
        assert.deepStrictEqual(activations, [
          {
            version: published.version,
            previous: PolicySet.version(Seed.defaultPolicySet),
            name: "frozen",
            by: "root",
            rollback: false,
            at: activated[0]!.at,
            seq: activated[0]!.seq,
            entryHash: activated[0]!.entryHash
          },
          {
            version: PolicySet.version(Seed.defaultPolicySet),
            previous: published.version,
            name: Seed.defaultPolicySet.name,
            by: "root",
            rollback: true,
            at: activated[1]!.at,
            seq: activated[1]!.seq,
            entryHash: activated[1]!.entryHash
          }
        ])
        // read again, only newer entries are scanned: the same answer, then the next activation added
        assert.deepStrictEqual(yield* policyAdmin.activations(admin), activations)
        yield* policyAdmin.activate(published.version, admin)
        const again = yield* policyAdmin.activations(admin)
        assert.lengthOf(again, 3)
        assert.deepStrictEqual(again.slice(0, 2), activations)
        assert.strictEqual(again[2]!.version, published.version)

        const unknown = yield* Effect.flip(policyAdmin.activate("not-a-version", admin))
        assert.strictEqual(unknown._tag, "UnknownPolicyVersion")
      }).pipe(Effect.provide(Mandate.layerMemory({ runtime: { workers: false } })))
  )

  it.effect("a configured policy is adopted through the same activation, once", () =>
    Effect.gen(function* () {
      const first = yield* adoptConfigured(frozen)
      assert.strictEqual(first.active.version, PolicySet.version(frozen))
      const again = yield* adoptConfigured(frozen)
      assert.isUndefined(again.previous)
      const activations = (yield* (yield* Ledger).entries()).filter((e) => e.kind === "policy.activated")
      assert.lengthOf(activations, 1)
      assert.strictEqual((activations[0]!.payload as { by: string }).by, "configuration")
      assert.strictEqual((yield* (yield* PolicyStore).active).version, PolicySet.version(frozen))
    }).pipe(Effect.provide(Mandate.layerMemory({ runtime: { workers: false } })))
  )
})

// Memory stores whose ledger refuses every append while `refuse.on` is set (a full disk, a lost connection)
const refuse = { on: false }
const failingLedger = Layer.effect(
  Ledger,
  Effect.map(Effect.service(Ledger), (ledger) =>
    Ledger.of({
      ...ledger,
      append: (entry) =>
        refuse.on ? Effect.fail(new LedgerStoreError({ operation: "append", cause: "refused" })) : ledger.append(entry)
    })
  )
).pipe(Layer.provide(Ledger.layerMemory()), Layer.provide(Anchor.layerNone))
const unreliable = PolicyAdmin.layer.pipe(
  Layer.provideMerge(
    Layer.mergeAll(PolicyStore.layerMemory(), failingLedger, TaskStore.layerMemory, UnitOfWork.layerMemory)
  )
)

describe("PolicyAdmin: a change and its ledger entry are one unit", () => {
  it.effect("a failing ledger append leaves no activated or published version behind", () =>
    Effect.gen(function* () {
      const policyAdmin = yield* PolicyAdmin
      const store = yield* PolicyStore
      const ledger = yield* Ledger
      const seed = PolicySet.version(Seed.defaultPolicySet)
      const published = yield* policyAdmin.propose(frozen, admin)
      const entries = yield* ledger.size

      refuse.on = true
      const failed = yield* Effect.flip(policyAdmin.activate(published.version, admin))
      assert.strictEqual(failed._tag, "LedgerStoreError")
      assert.strictEqual((yield* store.active).version, seed)
      assert.isFalse((yield* store.get(published.version)).active)
      const other = { ...frozen, name: "other" }
      assert.strictEqual((yield* Effect.flip(policyAdmin.propose(other, admin)))._tag, "LedgerStoreError")
      assert.strictEqual((yield* Effect.flip(store.get(PolicySet.version(other))))._tag, "UnknownPolicyVersion")
      assert.strictEqual((yield* Effect.flip(adoptConfigured(other)))._tag, "LedgerStoreError")
      assert.strictEqual((yield* Effect.flip(store.get(PolicySet.version(other))))._tag, "UnknownPolicyVersion")
      assert.strictEqual((yield* store.active).version, seed)
      assert.strictEqual(yield* ledger.size, entries)

      // Once the ledger takes entries again, the same activation goes through, entry and all
      refuse.on = false
      assert.strictEqual((yield* policyAdmin.activate(published.version, admin)).previous, seed)
      assert.strictEqual((yield* store.active).version, published.version)
      assert.strictEqual(yield* ledger.size, entries + 1)
    }).pipe(
      Effect.ensuring(
        Effect.sync(() => {
          refuse.on = false
        })
      ),
      Effect.provide(unreliable)
    )
  )
})

describe("QueueAdmin", () => {
  it.effect("redrive: admins only, dead letters only, never the runtime's queues", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const queueAdmin = yield* QueueAdmin
      const job = yield* queue.enqueue({ queue: "emails", payload: {}, maxAttempts: 1 })
      const [claimed] = yield* queue.claim({ workerId: "w1" as never, queues: ["emails"] })
      assert.strictEqual(claimed?.id, job.id)
      yield* queue.fail(job.id, "w1" as never, "down")
      assert.strictEqual((yield* Effect.flip(queueAdmin.redrive(job.id, alice)))._tag, "Forbidden")
      const redriven = yield* queueAdmin.redrive(job.id, admin)
      assert.strictEqual(redriven.state, "queued")
      assert.strictEqual((yield* Effect.flip(queueAdmin.redrive(job.id, admin)))._tag, "IllegalTransition")
      const own = yield* queue.enqueue({ queue: "mandate.steps", payload: {} })
      assert.strictEqual((yield* Effect.flip(queueAdmin.redrive(own.id, admin)))._tag, "Forbidden")
    }).pipe(Effect.provide(Mandate.layerMemory({ runtime: { workers: false } })))
  )
})
