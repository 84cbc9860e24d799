/**
 * The policy-administration-in-one-unit check shared by the Postgres and Redis policy store tests: `PolicyAdmin`
 * over a backend's stores and a ledger whose append fails (after its entry was written in the unit) while
 * `refuse.on` is set; a change whose entry fails must leave neither behind.
 */
import { assert } from "@effect/vitest"
import {
  Anchor,
  Ledger,
  type LedgerStore,
  LedgerStoreError,
  PolicyAdmin,
  PolicySet,
  PolicyStore,
  Principal,
  Seed,
  type TaskStore,
  type UnitOfWork
} from "@mandate/core"
import { Effect, Layer } from "effect"

export const refuse = { on: false }

const refusingLedger = Layer.effect(
  Ledger,
  Effect.map(Effect.service(Ledger), (ledger) =>
    Ledger.of({
      ...ledger,
      append: (entry) =>
        Effect.flatMap(ledger.append(entry), (receipt) =>
          refuse.on
            ? Effect.fail(new LedgerStoreError({ operation: "append", cause: "refused" }))
            : Effect.succeed(receipt)
        )
    })
  )
)

/** `PolicyAdmin` (and the stores) over one backend's policy store, ledger store, task store and unit of work. */
export const adminOver = <E, R>(stores: {
  readonly policyStore: Layer.Layer<PolicyStore, E, R>
  readonly ledgerStore: Layer.Layer<LedgerStore, E, R>
  readonly taskStore: Layer.Layer<TaskStore, E, R>
  readonly unitOfWork: Layer.Layer<UnitOfWork, E, R>
}) =>
  PolicyAdmin.layer.pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        stores.policyStore,
        refusingLedger.pipe(
          Layer.provide(Ledger.layer()),
          Layer.provide(Layer.mergeAll(stores.ledgerStore, Anchor.layerNone))
        ),
        stores.taskStore,
        stores.unitOfWork
      )
    )
  )

/** A failed entry leaves neither the activation nor the publication it was for; once entries go in, both do. */
export const failedEntryLeavesNoChange = Effect.gen(function* () {
  const admin = yield* PolicyAdmin
  const store = yield* PolicyStore
  const ledger = yield* Ledger
  const root = Principal.make("root", ["admin"])
  const published = yield* admin.propose({ name: "unit-check", rules: [] }, root)
  const seed = PolicySet.version(Seed.defaultPolicySet)
  const size = yield* ledger.size
  const other: PolicySet.PolicySet = { name: "unit-check-other", rules: [] }
  refuse.on = true
  const failed = yield* Effect.flip(admin.activate(published.version, root))
  const failedPublish = yield* Effect.flip(admin.propose(other, root))
  refuse.on = false
  assert.strictEqual(failed._tag, "LedgerStoreError")
  assert.strictEqual(failedPublish._tag, "LedgerStoreError")
  assert.strictEqual((yield* store.active).version, seed)
  assert.strictEqual((yield* Effect.flip(store.get(PolicySet.version(other))))._tag, "UnknownPolicyVersion")
  assert.isFalse((yield* store.list).some((s) => s.set.name === other.name))
  assert.strictEqual(yield* ledger.size, size)
  assert.isTrue((yield* ledger.verifyAll()).valid)
  assert.strictEqual((yield* admin.activate(published.version, root)).previous, seed)
  assert.strictEqual((yield* store.active).version, published.version)
  assert.strictEqual(yield* ledger.size, size + 1)
}).pipe(
  Effect.ensuring(
    Effect.sync(() => {
      refuse.on = false
    })
  )
)
