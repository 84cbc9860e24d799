/**
 * The `PolicyStore` conformance suite: the whole behavioural contract of `PolicyStore`, run against any layer.
 * The memory layer, the Postgres layer and any user-written store call this same function.
 *
 * ```ts
 * import { suite } from "@mandate/core/conformance/policyStore"
 * suite("my-store", MyStore.layer)
 * ```
 *
 * The layer is built once for the whole suite. Tests publish sets with unique names, so they never depend on
 * each other's sets; the single active version is shared state, so every test that reads it sets it first.
 *
 * @since 0.1.0
 */
import { assert, layer } from "@effect/vitest"
import { PolicySet, PolicyStore, type PolicyVersion, Seed, type StoredPolicySet } from "@mandate/core"
import { Context, Effect, Layer } from "effect"
import { TestClock } from "effect/testing"

/**
 * How the suite is run against a layer.
 *
 * @category models
 * @since 0.1.0
 */
export interface SuiteOptions {
  /** The set the layer was built to start with (default: `Seed.defaultPolicySet`, as `layerMemory()`). */
  readonly initial?: PolicySet.PolicySet | undefined
}

// What the store looked like right after it was built, before any test touched it
class Snapshot extends Context.Service<
  Snapshot,
  { readonly active: StoredPolicySet; readonly list: ReadonlyArray<StoredPolicySet> }
>()("@mandate/core/conformance/policyStore/Snapshot") {}

const uniqueSet = (label: string, rules: PolicySet.PolicySet["rules"] = []): PolicySet.PolicySet => ({
  name: `${label}-${crypto.randomUUID()}`,
  rules: [{ id: "read-only", effect: "allow", match: { action: "check_*" } }, ...rules]
})

// Exercises every corner of the model, so a store that loses or reshapes anything fails the round trip
const richSet = (): PolicySet.PolicySet => ({
  name: `rich-${crypto.randomUUID()}`,
  description: 'Ünïcödé, "quotes", \\ backslashes, \u2028 separators and 🙂',
  rules: [
    {
      id: "big-transfers",
      description: "large",
      effect: "require_approval",
      match: {
        action: ["onchain_action", "transfer_*"],
        task: "transfer_funds",
        roles: ["submitter", "admin"],
        when: [
          { param: "amount", op: "gt", value: 10_000.5 },
          { param: "amount", op: "lte", value: 1e21 },
          { param: "fee", op: "gte", value: -0.000001 },
          { param: "to.address", op: "in", value: ["A", 1, null, true, { nested: [1.5, "x"] }] },
          { param: "memo", op: "regex", value: "^[a-z]+\\d*$" },
          { param: "tag", op: "matches", value: "ops-?-*" },
          { param: "flag", op: "exists" },
          { param: "other", op: "exists", value: false },
          { param: "kind", op: "neq", value: { a: [], b: {} } }
        ],
        window: { from: "22:00", to: "06:30", days: ["mon", "fri"], timezone: "Europe/Paris" }
      },
      reason: "needs two",
      approvals: { required: 2, timeoutSeconds: 86_400 }
    },
    { id: "deny-rest", effect: "deny", match: {} }
  ]
})

const versions = (sets: ReadonlyArray<StoredPolicySet>): ReadonlyArray<PolicyVersion> => sets.map((s) => s.version)

const assertOneActive = (listed: ReadonlyArray<StoredPolicySet>): StoredPolicySet => {
  const active = listed.filter((s) => s.active)
  assert.strictEqual(active.length, 1, `exactly one listed set is active, got ${active.length}`)
  return active[0]!
}

/**
 * Runs the `PolicyStore` contract against `storeLayer`.
 *
 * @category conformance
 * @since 0.1.0
 */
export const suite = (name: string, storeLayer: Layer.Layer<PolicyStore, unknown>, options?: SuiteOptions): void => {
  const initial = options?.initial ?? Seed.defaultPolicySet
  const withSnapshot = Layer.effect(
    Snapshot,
    Effect.gen(function* () {
      const store = yield* PolicyStore
      return { active: yield* store.active, list: yield* store.list }
    })
  ).pipe(Layer.provideMerge(storeLayer))

  layer(withSnapshot, { timeout: "60 seconds" })(`PolicyStore conformance (${name})`, (it) => {
    it.effect("starts with the initial set published and active", () =>
      Effect.gen(function* () {
        const snapshot = yield* Snapshot
        assert.strictEqual(snapshot.active.version, PolicySet.version(initial))
        assert.deepStrictEqual(snapshot.active.set, initial)
        assert.isTrue(snapshot.active.active)
        assert.deepStrictEqual(versions(snapshot.list), [PolicySet.version(initial)])
        assert.isTrue(snapshot.list[0]!.active)
      })
    )

    it.effect("publishes a set under the hash of its canonical JSON, inactive, readable by version", () =>
      Effect.gen(function* () {
        const store = yield* PolicyStore
        const set = uniqueSet("publish")
        const stored = yield* store.publish(set)
        assert.strictEqual(stored.version, PolicySet.version(set))
        assert.deepStrictEqual(stored.set, set)
        assert.isFalse(stored.active)
        assert.deepStrictEqual(yield* store.get(stored.version), stored)
        assert.strictEqual((yield* store.list)[0]!.version, stored.version)
      })
    )

    it.effect("stores every part of a set exactly: what is read back hashes to the same version", () =>
      Effect.gen(function* () {
        const store = yield* PolicyStore
        const set = richSet()
        const published = yield* store.publish(set)
        const read = yield* store.get(published.version)
        assert.deepStrictEqual(read.set, set)
        assert.strictEqual(PolicySet.version(read.set), published.version)
        const activated = yield* store.activate(published.version)
        assert.deepStrictEqual(activated.set, set)
        assert.deepStrictEqual((yield* store.active).set, set)
      })
    )

    it.effect("takes publishedAt from the Clock", () =>
      Effect.gen(function* () {
        const store = yield* PolicyStore
        yield* TestClock.setTime(Date.parse("2031-05-06T07:08:09.123Z"))
        const stored = yield* store.publish(uniqueSet("clock"))
        assert.strictEqual(stored.publishedAt, Date.parse("2031-05-06T07:08:09.123Z"))
        assert.strictEqual((yield* store.get(stored.version)).publishedAt, stored.publishedAt)
      })
    )

    it.effect("publish is idempotent: the same rules (in any key order) keep their version and publish time", () =>
      Effect.gen(function* () {
        const store = yield* PolicyStore
        const set = uniqueSet("idempotent", [
          { id: "limit", effect: "deny", match: { action: "onchain_action" }, reason: "frozen" }
        ])
        yield* TestClock.setTime(1_000)
        const first = yield* store.publish(set)
        yield* TestClock.setTime(5_000)
        yield* store.publish(uniqueSet("later"))
        const reverseKeys = <A extends object>(value: A): A => Object.fromEntries(Object.entries(value).reverse()) as A
        const reordered = reverseKeys({ ...set, rules: set.rules.map(reverseKeys) })
        assert.notStrictEqual(JSON.stringify(reordered), JSON.stringify(set))
        const again = yield* store.publish(reordered)
        assert.strictEqual(again.version, first.version)
        assert.strictEqual(again.publishedAt, 1_000)
        const listed = yield* store.list
        assert.strictEqual(listed.filter((s) => s.version === first.version).length, 1)
        // republishing does not move an old version to the front
        assert.notStrictEqual(listed[0]!.version, first.version)
      })
    )

    it.effect("lists every version newest first, by publish order even within one millisecond", () =>
      Effect.gen(function* () {
        const store = yield* PolicyStore
        yield* TestClock.setTime(10_000)
        const a = yield* store.publish(uniqueSet("order-a"))
        const b = yield* store.publish(uniqueSet("order-b"))
        const c = yield* store.publish(uniqueSet("order-c"))
        const listed = yield* store.list
        assert.deepStrictEqual(versions(listed.slice(0, 3)), [c.version, b.version, a.version])
        // and the initial set is still there, oldest
        assert.strictEqual(listed[listed.length - 1]!.version, PolicySet.version(initial))
        assert.strictEqual(new Set(versions(listed)).size, listed.length)
      })
    )

    it.effect("get of an unknown version fails with UnknownPolicyVersion naming it", () =>
      Effect.gen(function* () {
        const store = yield* PolicyStore
        const missing = PolicySet.version(uniqueSet("never-published"))
        const error = yield* Effect.flip(store.get(missing))
        assert.strictEqual(error._tag, "UnknownPolicyVersion")
        assert.strictEqual((error as { version: string }).version, missing)
      })
    )

    it.effect("activating an unknown version fails with UnknownPolicyVersion and changes nothing", () =>
      Effect.gen(function* () {
        const store = yield* PolicyStore
        const current = yield* store.activate((yield* store.publish(uniqueSet("current"))).version)
        const missing = PolicySet.version(uniqueSet("never-published"))
        const error = yield* Effect.flip(store.activate(missing))
        assert.strictEqual(error._tag, "UnknownPolicyVersion")
        assert.strictEqual((error as { version: string }).version, missing)
        assert.strictEqual((yield* store.active).version, current.version)
        assert.strictEqual(assertOneActive(yield* store.list).version, current.version)
      })
    )

    it.effect("activate makes exactly that version active; the previous one stays readable, inactive", () =>
      Effect.gen(function* () {
        const store = yield* PolicyStore
        const before = yield* store.activate((yield* store.publish(uniqueSet("before"))).version)
        const next = yield* store.publish(uniqueSet("next"))
        const activated = yield* store.activate(next.version)
        assert.isTrue(activated.active)
        assert.strictEqual(activated.version, next.version)
        assert.deepStrictEqual(activated.set, next.set)
        assert.strictEqual((yield* store.active).version, next.version)
        assert.isTrue((yield* store.get(next.version)).active)
        const old = yield* store.get(before.version)
        assert.isFalse(old.active)
        assert.deepStrictEqual(old.set, before.set)
        assert.strictEqual(assertOneActive(yield* store.list).version, next.version)
        // activating the active version again is harmless
        assert.strictEqual((yield* store.activate(next.version)).version, next.version)
        // and an older version can be made active again
        assert.strictEqual((yield* store.activate(before.version)).version, before.version)
        assert.strictEqual((yield* store.active).version, before.version)
      })
    )

    it.effect("concurrent publishes of the same set store it once", () =>
      Effect.gen(function* () {
        const store = yield* PolicyStore
        const set = uniqueSet("same")
        const results = yield* Effect.all(
          Array.from({ length: 25 }, () => store.publish({ ...set })),
          { concurrency: "unbounded" }
        )
        const version = PolicySet.version(set)
        assert.isTrue(results.every((r) => r.version === version))
        assert.strictEqual(new Set(results.map((r) => r.publishedAt)).size, 1)
        assert.strictEqual((yield* store.list).filter((s) => s.version === version).length, 1)
      })
    )

    it.effect("concurrent publishes of different sets store each of them", () =>
      Effect.gen(function* () {
        const store = yield* PolicyStore
        const sets = Array.from({ length: 25 }, (_, i) => uniqueSet(`many-${i}`))
        yield* Effect.all(
          sets.map((set) => store.publish(set)),
          { concurrency: "unbounded" }
        )
        const listed = new Set(versions(yield* store.list))
        for (const set of sets) assert.isTrue(listed.has(PolicySet.version(set)))
        const count = (yield* store.list).length
        assert.strictEqual(new Set(versions(yield* store.list)).size, count)
      })
    )

    it.effect("concurrent activations end consistent: one active version, agreed on by active, get and list", () =>
      Effect.gen(function* () {
        const store = yield* PolicyStore
        const published = yield* Effect.all(
          Array.from({ length: 10 }, (_, i) => store.publish(uniqueSet(`race-${i}`))),
          { concurrency: "unbounded" }
        )
        const candidates = new Set(versions(published))
        // readers racing the activations never see zero or two active sets
        const readers = Effect.all(
          Array.from({ length: 10 }, () =>
            Effect.flatMap(store.list, (listed) => Effect.sync(() => assertOneActive(listed)))
          ),
          { concurrency: "unbounded" }
        )
        const activations = Effect.all(
          [...published, ...published].map((s) => store.activate(s.version)),
          { concurrency: "unbounded" }
        )
        const [activated] = yield* Effect.all([activations, readers], { concurrency: "unbounded" })
        assert.isTrue(activated.every((s) => s.active && candidates.has(s.version)))
        const active = yield* store.active
        assert.isTrue(candidates.has(active.version))
        assert.strictEqual(assertOneActive(yield* store.list).version, active.version)
        assert.isTrue((yield* store.get(active.version)).active)
        for (const s of published) {
          if (s.version !== active.version) assert.isFalse((yield* store.get(s.version)).active)
        }
      })
    )
  })
}
