import { assert, layer } from "@effect/vitest"
import {
  layerLedgerStore,
  layerPolicyStore,
  layerTaskStore,
  layerUnitOfWork,
  makePolicyStore
} from "@mandate/adapters/redis"
import { PolicyAdmin, PolicySet, PolicyStore, Principal, Seed } from "@mandate/core"
import { suite } from "@mandate/core/conformance/policyStore"
import { Effect } from "effect"
import { Redis } from "effect/persistence"
import { adminOver, failedEntryLeavesNoChange } from "../utils/policyAdminUnit.ts"
import { describeRedis, TestRedis } from "../utils/TestRedis.ts"

const custom: PolicySet.PolicySet = {
  name: "custom-initial",
  rules: [{ id: "all", effect: "allow", match: {} }]
}

describeRedis("PolicyStore on Redis", () => {
  suite(
    "redis",
    TestRedis.layerWith((options) => layerPolicyStore(options))
  )
  suite(
    "redis, custom initial set",
    TestRedis.layerWith((options) => layerPolicyStore({ ...options, initial: custom })),
    { initial: custom }
  )

  layer(TestRedis.layer)("first start and restarts", (it) => {
    it.effect("a restart keeps the active version, whatever initial set it is given", () =>
      Effect.gen(function* () {
        const { prefix } = yield* TestRedis
        const first = yield* makePolicyStore({ prefix })
        assert.strictEqual((yield* first.active).version, PolicySet.version(Seed.defaultPolicySet))
        const chosen = yield* first.publish({ name: "chosen", rules: [] })
        yield* first.activate(chosen.version)
        const restarted = yield* makePolicyStore({ prefix, initial: custom })
        assert.strictEqual((yield* restarted.active).version, chosen.version)
        assert.isFalse((yield* restarted.list).some((s) => s.set.name === custom.name))
      })
    )

    it.effect("concurrent first starts agree on one active set", () =>
      Effect.gen(function* () {
        const prefix = `${(yield* TestRedis).prefix}concurrent:`
        const initials = Array.from({ length: 10 }, (_, i): PolicySet.PolicySet => ({ name: `start-${i}`, rules: [] }))
        const stores = yield* Effect.all(
          initials.map((initial) => makePolicyStore({ prefix, initial })),
          { concurrency: "unbounded" }
        )
        const actives = yield* Effect.all(stores.map((s) => s.active))
        assert.strictEqual(new Set(actives.map((a) => a.version)).size, 1)
        const listed = yield* stores[0]!.list
        assert.deepStrictEqual(
          listed.map((s) => s.version),
          [actives[0]!.version]
        )
      })
    )

    it.effect("a stored set that no longer decodes is a PolicyStoreError, not a malformed set", () =>
      Effect.gen(function* () {
        const prefix = `${(yield* TestRedis).prefix}broken:`
        const store = yield* makePolicyStore({ prefix })
        const stored = yield* store.publish({ name: "to-break", rules: [] })
        const redis = yield* Redis.Redis
        yield* redis.send("HSET", `${prefix}policy:sets`, stored.version, JSON.stringify({ set: { rules: 1 } }))
        const error = yield* Effect.flip(store.get(stored.version))
        assert.strictEqual(error._tag, "PolicyStoreError")
      })
    )
  })

  const adminLayer = TestRedis.layerWith((options) =>
    adminOver({
      policyStore: layerPolicyStore(options),
      ledgerStore: layerLedgerStore(options),
      taskStore: layerTaskStore(options),
      unitOfWork: layerUnitOfWork
    })
  )
  layer(adminLayer)("policy administration in one unit of work", (it) => {
    const root = Principal.make("root", ["admin"])

    it.effect("a failing ledger append leaves neither the change nor its entry behind", () => failedEntryLeavesNoChange)

    it.effect("concurrent activations: each entry names the version it really replaced", () =>
      Effect.gen(function* () {
        const admin = yield* PolicyAdmin
        const store = yield* PolicyStore
        const sets = Array.from({ length: 6 }, (_, i): PolicySet.PolicySet => ({ name: `race-${i}`, rules: [] }))
        const versions = yield* Effect.forEach(sets, (set) =>
          Effect.map(admin.propose(set, root), (proposed) => proposed.version)
        )
        const before = (yield* store.active).version
        yield* Effect.forEach(versions, (version) => admin.activate(version, root), { concurrency: "unbounded" })
        const activations = (yield* admin.activations(root)).slice(-versions.length)
        // Without the guard on the active pointer two activations can both name the same previous version
        assert.strictEqual(activations[0]!.previous, before)
        for (let i = 1; i < activations.length; i++) {
          assert.strictEqual(activations[i]!.previous, activations[i - 1]!.version)
        }
        assert.strictEqual((yield* store.active).version, activations.at(-1)!.version)
      })
    )
  })
})
