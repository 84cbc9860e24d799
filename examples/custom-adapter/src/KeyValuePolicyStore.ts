/**
 * A custom adapter, as a user would write one: Mandate's `PolicyStore` over Effect's `KeyValueStore`, so any
 * backend with a KeyValueStore layer (memory, a directory of files, SQL) can hold versioned policy sets.
 *
 * It only stores: versions (the hash of a set's canonical JSON) and every rule of evaluation come from core.
 * Writes are serialised by a lock in this process, so it suits one process per store; the core conformance
 * suite (test/KeyValuePolicyStore.test.ts) proves it keeps the whole PolicyStore contract.
 */
import {
  PolicySet,
  PolicyStore,
  PolicyStoreError,
  type PolicyVersion,
  Seed,
  type StoredPolicySet,
  UnknownPolicyVersion
} from "@mandate/core"
import { Clock, Effect, Layer, Option, Schema, Semaphore } from "effect"
import { KeyValueStore } from "effect/persistence"

const Stored = Schema.Struct({ set: PolicySet.PolicySet, publishedAt: Schema.Number })
const Versions = Schema.Array(Schema.String)
const StoredJson = Schema.fromJsonString(Stored)
const VersionsJson = Schema.fromJsonString(Versions)

/** Builds the store over the `KeyValueStore` in context, publishing and activating `initial` on first use. */
export const make = (initial: PolicySet.PolicySet = Seed.defaultPolicySet) =>
  Effect.gen(function* () {
    const kv = yield* KeyValueStore.KeyValueStore
    const lock = yield* Semaphore.make(1)
    // Driver and decoding failures are the store's errors, never defects
    const fail = (operation: string) => (cause: unknown) => new PolicyStoreError({ operation, cause })

    const readVersions = Effect.flatMap(kv.get("policy:versions"), (text) =>
      text === undefined ? Effect.succeed([] as ReadonlyArray<string>) : Schema.decodeEffect(VersionsJson)(text)
    )
    const readSet = (version: string) =>
      Effect.flatMap(kv.get(`policy:set:${version}`), (text) =>
        text === undefined
          ? Effect.succeed(Option.none())
          : Effect.map(Schema.decodeEffect(StoredJson)(text), Option.some)
      )
    const activeVersion = kv.get("policy:active")
    const view = (version: string, stored: typeof Stored.Type, active: string | undefined): StoredPolicySet => ({
      version: version as PolicyVersion,
      set: stored.set,
      publishedAt: stored.publishedAt,
      active: version === active
    })

    const publish = (set: PolicySet.PolicySet) =>
      lock.withPermits(1)(
        Effect.gen(function* () {
          const version = PolicySet.version(set)
          const existing = yield* readSet(version)
          if (Option.isSome(existing)) return view(version, existing.value, yield* activeVersion)
          const stored = { set, publishedAt: yield* Clock.currentTimeMillis }
          yield* kv.set(`policy:set:${version}`, yield* Schema.encodeEffect(StoredJson)(stored))
          yield* kv.set(
            "policy:versions",
            yield* Schema.encodeEffect(VersionsJson)([version, ...(yield* readVersions)])
          )
          return view(version, stored, yield* activeVersion)
        })
      )

    const get = (version: PolicyVersion) =>
      Effect.gen(function* () {
        const stored = yield* readSet(version)
        if (Option.isNone(stored)) return yield* new UnknownPolicyVersion({ version })
        return view(version, stored.value, yield* activeVersion)
      })

    // First start: publish and activate the initial set
    if ((yield* activeVersion) === undefined) {
      const first = yield* publish(initial)
      yield* kv.set("policy:active", first.version)
    }

    return PolicyStore.of({
      publish: (set) => publish(set).pipe(Effect.mapError(fail("publish"))),
      activate: (version) =>
        lock
          .withPermits(1)(
            Effect.gen(function* () {
              const stored = yield* get(version)
              yield* kv.set("policy:active", version)
              return { ...stored, active: true }
            })
          )
          .pipe(Effect.mapError((e) => (e._tag === "UnknownPolicyVersion" ? e : fail("activate")(e)))),
      active: Effect.gen(function* () {
        const version = yield* activeVersion
        const stored = version === undefined ? Option.none() : yield* readSet(version)
        if (Option.isNone(stored)) return yield* Effect.fail(new Error("no active policy set"))
        return view(version!, stored.value, version)
      }).pipe(Effect.mapError(fail("active"))),
      get: (version) =>
        get(version).pipe(Effect.mapError((e) => (e._tag === "UnknownPolicyVersion" ? e : fail("get")(e)))),
      list: Effect.gen(function* () {
        const active = yield* activeVersion
        const out: Array<StoredPolicySet> = []
        for (const version of yield* readVersions) {
          const stored = yield* readSet(version)
          if (Option.isSome(stored)) out.push(view(version, stored.value, active))
        }
        return out
      }).pipe(Effect.mapError(fail("list")))
    })
  })

/** The layer: `PolicyStore` over any `KeyValueStore`. */
export const layer = (
  initial?: PolicySet.PolicySet
): Layer.Layer<PolicyStore, PolicyStoreError, KeyValueStore.KeyValueStore> =>
  Layer.effect(
    PolicyStore,
    make(initial).pipe(Effect.mapError((cause) => new PolicyStoreError({ operation: "start", cause })))
  )
