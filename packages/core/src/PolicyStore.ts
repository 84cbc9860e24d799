/**
 * Versioned policy sets: publish a set (its version is its hash), activate one, read any version.
 * Tasks stay pinned to the version they were planned under, so old versions are never deleted.
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, Layer, Schema, SynchronizedRef } from "effect"
import { PolicyVersion } from "./Ids.ts"
import { PolicySet, version as versionOf } from "./PolicySet.ts"
import { defaultPolicySet } from "./Seed.ts"

/**
 * A published policy set.
 *
 * @category models
 * @since 0.1.0
 */
export const StoredPolicySet = Schema.Struct({
  version: PolicyVersion,
  set: PolicySet,
  publishedAt: Schema.Number,
  active: Schema.Boolean
})
export type StoredPolicySet = typeof StoredPolicySet.Type

/**
 * @category errors
 * @since 0.1.0
 */
export class UnknownPolicyVersion extends Schema.TaggedError<UnknownPolicyVersion>()("UnknownPolicyVersion", {
  version: Schema.String
}) {
  override get message(): string {
    return `No policy set with version ${this.version}`
  }
}

/**
 * The backing store failed (connection, query); wraps the driver error.
 *
 * @category errors
 * @since 0.1.0
 */
export class PolicyStoreError extends Schema.TaggedError<PolicyStoreError>()("PolicyStoreError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

/**
 * Versioned policy sets.
 *
 * @category services
 * @since 0.1.0
 */
export class PolicyStore extends Context.Service<
  PolicyStore,
  {
    /** Stores a set under its version (idempotent: publishing the same rules again returns the stored one). */
    readonly publish: (set: PolicySet) => Effect.Effect<StoredPolicySet, PolicyStoreError>
    /** Makes a published version the active one; new tasks are planned under it. */
    readonly activate: (
      version: PolicyVersion
    ) => Effect.Effect<StoredPolicySet, UnknownPolicyVersion | PolicyStoreError>
    readonly active: Effect.Effect<StoredPolicySet, PolicyStoreError>
    readonly get: (version: PolicyVersion) => Effect.Effect<StoredPolicySet, UnknownPolicyVersion | PolicyStoreError>
    /** Every published version, newest first. */
    readonly list: Effect.Effect<ReadonlyArray<StoredPolicySet>, PolicyStoreError>
  }
>()("@mandate/core/PolicyStore") {
  /**
   * In-process store, starting with `initial` (the seed policy by default) published and active.
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layerMemory = (initial: PolicySet = defaultPolicySet): Layer.Layer<PolicyStore> =>
    Layer.effect(
      PolicyStore,
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const first: StoredPolicySet = { version: versionOf(initial), set: initial, publishedAt: now, active: true }
        const state = yield* SynchronizedRef.make({
          activeVersion: first.version,
          sets: new Map<PolicyVersion, Omit<StoredPolicySet, "active">>([[first.version, first]])
        })
        const view = (s: { readonly activeVersion: PolicyVersion }, stored: Omit<StoredPolicySet, "active">) => ({
          ...stored,
          active: stored.version === s.activeVersion
        })
        return PolicyStore.of({
          publish: (set) =>
            Effect.flatMap(Clock.currentTimeMillis, (publishedAt) =>
              SynchronizedRef.modify(state, (s) => {
                const version = versionOf(set)
                const existing = s.sets.get(version)
                if (existing) return [view(s, existing), s]
                const stored = { version, set, publishedAt }
                return [view(s, stored), { ...s, sets: new Map(s.sets).set(version, stored) }]
              })
            ),
          activate: (version) =>
            SynchronizedRef.modifyEffect(state, (s) => {
              const stored = s.sets.get(version)
              if (!stored) return Effect.fail(new UnknownPolicyVersion({ version }))
              const next = { ...s, activeVersion: version }
              return Effect.succeed([view(next, stored), next] as const)
            }),
          active: Effect.map(SynchronizedRef.get(state), (s) => view(s, s.sets.get(s.activeVersion)!)),
          get: (version) =>
            Effect.flatMap(SynchronizedRef.get(state), (s) => {
              const stored = s.sets.get(version)
              return stored ? Effect.succeed(view(s, stored)) : Effect.fail(new UnknownPolicyVersion({ version }))
            }),
          list: Effect.map(SynchronizedRef.get(state), (s) =>
            [...s.sets.values()].reverse().map((stored) => view(s, stored))
          )
        })
      })
    )
}
