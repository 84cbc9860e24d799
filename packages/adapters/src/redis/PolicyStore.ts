/**
 * `PolicyStore` on Redis: published sets by version in one hash (the set and its publish time as JSON), their
 * publish order in a sorted set scored by a counter, and the active version in a key of its own (see
 * `Keys.policy`).
 *
 * Versions are computed in core (`PolicySet.version`); each write is one Lua script: `publish` stores a version
 * once (a second publish of the same rules returns the first one, publish time included), `activate` moves the
 * pointer only to a version that exists, and reads the set it points to in the same step. Stored sets are decoded
 * with Schema: one that does not decode fails the call with `PolicyStoreError` instead of handing out a malformed
 * set. In a `UnitOfWork` on the same Redis, `publish` and `activate` are gathered into the unit (guarded on the
 * version's stored set and the active pointer they read) and commit with it, so a policy change and its ledger
 * entry are written together or not at all; `get` and `active` in a unit see its own writes, `list` sees Redis as
 * committed. Outside a unit each write is one script, atomic alone.
 *
 * @since 0.1.0
 */
import {
  type InvalidInput,
  PolicySet,
  PolicyStore,
  PolicyStoreError,
  PolicyVersion,
  Seed,
  type StoredPolicySet,
  UnknownPolicyVersion
} from "@mandate/core"
import { Clock, Effect, Layer, Schema } from "effect"
import { Redis } from "effect/persistence"
import { makeKeys, type RedisOptions, resolvePrefix } from "./Keys.ts"
import { operation as gathered, guard, type UnitState, unitOf, valueOfKey } from "./Unit.ts"

/**
 * Options of the Redis policy store.
 *
 * @category models
 * @since 0.1.0
 */
export interface PolicyStoreOptions extends RedisOptions {
  /**
   * Published and activated when the layer starts on a prefix where no set is active yet (default: the seed
   * policy). Ignored once a set is active: use `PolicyStore.adopt` to move a store to a configured set.
   */
  readonly initial?: PolicySet.PolicySet | undefined
}

const Stored = Schema.fromJsonString(Schema.Struct({ set: PolicySet.PolicySet, publishedAt: Schema.Number }))
const decodeStored = Schema.decodeUnknownEffect(Stored)
const encodeStored = Schema.encodeEffect(Stored)
const decodeVersion = Schema.decodeUnknownEffect(PolicyVersion)

/**
 * Builds the Redis policy store over the `Redis` service in context. On a prefix where no set is active, it
 * publishes and activates `options.initial`; concurrent first starts agree on one active set.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makePolicyStore = Effect.fnUntraced(function* (options?: PolicyStoreOptions) {
  const redis = yield* Redis.Redis
  const k = makeKeys(yield* resolvePrefix(options)).policy
  const publishScript = redis.eval(publishSet)
  const activateScript = redis.eval(activateSet)
  const storeError = (operation: string) => (cause: unknown) => new PolicyStoreError({ operation, cause })

  const toStored = (version: string, json: string, activeVersion: string | null, operation: string) =>
    Effect.gen(function* () {
      const stored = yield* decodeStored(json).pipe(Effect.mapError(storeError(operation)))
      return {
        version: yield* decodeVersion(version).pipe(Effect.mapError(storeError(operation))),
        set: stored.set,
        publishedAt: stored.publishedAt,
        active: version === activeVersion
      } satisfies StoredPolicySet
    })

  // In a unit: a version's stored set as the unit sees it (its own publish, or Redis, guarded on what was read)
  const setIn = (unit: UnitState, version: string, operation: string) =>
    Effect.gen(function* () {
      const own = unit.policySets.get(version)
      if (own !== undefined) return own
      const json = yield* redis
        .send<string | null>("HGET", k.sets, version)
        .pipe(Effect.mapError(storeError(operation)))
      guard(unit, k.sets, version, json)
      return json
    })

  // In a unit: the active version as the unit sees it, guarded so that an activation another writer commits
  // first makes the unit run again (the `policy.activated` entry names the version it replaced)
  const activeIn = (unit: UnitState, operation: string) =>
    Effect.gen(function* () {
      if (unit.activePolicy !== undefined) return unit.activePolicy
      const version = yield* redis.send<string | null>("GET", k.active).pipe(Effect.mapError(storeError(operation)))
      guard(unit, k.active, valueOfKey, version)
      return version
    })

  const publishAt = (set: PolicySet.PolicySet, publishedAt: number, operation: string) =>
    Effect.gen(function* () {
      const version = PolicySet.version(set)
      const json = yield* encodeStored({ set, publishedAt }).pipe(Effect.mapError(storeError(operation)))
      const unit = yield* unitOf(redis)
      if (unit !== undefined) {
        let stored = yield* setIn(unit, version, operation)
        if (stored === null) {
          unit.operations.push(
            gathered("policy.publish", publishSet, k.sets, k.order, k.sequence, k.active, version, json)
          )
          unit.policySets.set(version, json)
          stored = json
        }
        return yield* toStored(version, stored, yield* activeIn(unit, operation), operation)
      }
      const [stored, active] = yield* publishScript(k.sets, k.order, k.sequence, k.active, version, json).pipe(
        Effect.mapError(storeError(operation))
      )
      return yield* toStored(version, stored, active, operation)
    })

  const publish = (set: PolicySet.PolicySet) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => publishAt(set, now, "publish")).pipe(
      Effect.withSpan("PolicyStore.publish")
    )

  const activate = (version: PolicyVersion) =>
    Effect.gen(function* () {
      const unit = yield* unitOf(redis)
      if (unit !== undefined) {
        const json = yield* setIn(unit, version, "activate")
        if (json === null) return yield* new UnknownPolicyVersion({ version })
        unit.operations.push(gathered("policy.activate", activateSet, k.sets, k.active, version))
        unit.activePolicy = version
        return yield* toStored(version, json, version, "activate")
      }
      const stored = yield* activateScript(k.sets, k.active, version).pipe(Effect.mapError(storeError("activate")))
      if (stored === null) return yield* new UnknownPolicyVersion({ version })
      return yield* toStored(version, stored, version, "activate")
    }).pipe(Effect.withSpan("PolicyStore.activate"))

  const get = (version: PolicyVersion) =>
    Effect.gen(function* () {
      const unit = yield* unitOf(redis)
      const [json, active] =
        unit !== undefined
          ? [yield* setIn(unit, version, "get"), yield* activeIn(unit, "get")]
          : yield* Effect.all([
              redis.send<string | null>("HGET", k.sets, version),
              redis.send<string | null>("GET", k.active)
            ]).pipe(Effect.mapError(storeError("get")))
      if (json === null) return yield* new UnknownPolicyVersion({ version })
      return yield* toStored(version, json, active, "get")
    }).pipe(Effect.withSpan("PolicyStore.get"))

  const active = Effect.gen(function* () {
    const unit = yield* unitOf(redis)
    const version =
      unit !== undefined
        ? yield* activeIn(unit, "active")
        : yield* redis.send<string | null>("GET", k.active).pipe(Effect.mapError(storeError("active")))
    const json =
      version === null
        ? null
        : unit !== undefined
          ? yield* setIn(unit, version, "active")
          : yield* redis.send<string | null>("HGET", k.sets, version).pipe(Effect.mapError(storeError("active")))
    if (version === null || json === null) {
      return yield* storeError("active")(new Error("no policy set is active"))
    }
    return yield* toStored(version, json, version, "active")
  }).pipe(Effect.withSpan("PolicyStore.active"))

  const list = Effect.gen(function* () {
    const [versions, activeVersion] = yield* Effect.all([
      redis.send<ReadonlyArray<string>>("ZRANGE", k.order, "0", "-1", "REV"),
      redis.send<string | null>("GET", k.active)
    ]).pipe(Effect.mapError(storeError("list")))
    if (versions.length === 0) return []
    const sets = yield* redis
      .send<ReadonlyArray<string | null>>("HMGET", k.sets, ...versions)
      .pipe(Effect.mapError(storeError("list")))
    const out: Array<StoredPolicySet> = []
    for (let i = 0; i < versions.length; i++) {
      const json = sets[i]
      if (json !== null && json !== undefined) out.push(yield* toStored(versions[i]!, json, activeVersion, "list"))
    }
    return out
  }).pipe(Effect.withSpan("PolicyStore.list"))

  // First start on this prefix: publish and activate the initial set, unless a set is active (one script: two
  // processes starting together agree on one)
  const initial = options?.initial ?? Seed.defaultPolicySet
  const now = yield* Clock.currentTimeMillis
  const initialJson = yield* encodeStored({ set: initial, publishedAt: now }).pipe(
    Effect.mapError(storeError("initialize"))
  )
  yield* redis
    .eval(initializeSet)(k.sets, k.order, k.sequence, k.active, PolicySet.version(initial), initialJson)
    .pipe(Effect.mapError(storeError("initialize")))

  return PolicyStore.of({ publish, activate, active, get, list })
})

/**
 * The Redis policy store as a layer over the `Redis` service (see `makePolicyStore`).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerPolicyStore = (
  options?: PolicyStoreOptions
): Layer.Layer<PolicyStore, PolicyStoreError | InvalidInput, Redis.Redis> =>
  Layer.effect(PolicyStore, makePolicyStore(options))

// KEYS: sets, order, sequence, active. ARGV: version, stored JSON
// Stores the version unless it is stored; returns {the stored JSON, the active version or false}
const publishSet = Redis.script(
  (keySets: string, keyOrder: string, keySequence: string, keyActive: string, version: string, json: string) => [
    keySets,
    keyOrder,
    keySequence,
    keyActive,
    version,
    json
  ],
  {
    numberOfKeys: 4,
    lua: `
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1])
end
return {redis.call('HGET', KEYS[1], ARGV[1]), redis.call('GET', KEYS[4])}
`
  }
).withReturnType<readonly [string, string | null]>()

// KEYS: sets, active. ARGV: version. Points active at the version if it is stored; returns its JSON, or nil
const activateSet = Redis.script(
  (keySets: string, keyActive: string, version: string) => [keySets, keyActive, version],
  {
    numberOfKeys: 2,
    lua: `
local json = redis.call('HGET', KEYS[1], ARGV[1])
if not json then return false end
redis.call('SET', KEYS[2], ARGV[1])
return json
`
  }
).withReturnType<string | null>()

// KEYS: sets, order, sequence, active. ARGV: version, stored JSON. Publishes and activates unless a set is active
const initializeSet = Redis.script(
  (keySets: string, keyOrder: string, keySequence: string, keyActive: string, version: string, json: string) => [
    keySets,
    keyOrder,
    keySequence,
    keyActive,
    version,
    json
  ],
  {
    numberOfKeys: 4,
    lua: `
if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1])
end
redis.call('SET', KEYS[4], ARGV[1])
return 1
`
  }
).withReturnType<number>()

/**
 * The policy store's writes a Redis unit of work gathers (name → Lua), for the unit's commit script.
 *
 * @category models
 * @since 0.1.0
 */
export const policyStoreOperations: Readonly<Record<string, string>> = {
  "policy.publish": publishSet.lua,
  "policy.activate": activateSet.lua
}
