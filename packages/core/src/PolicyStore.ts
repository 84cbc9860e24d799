/**
 * Versioned policy sets: publish a set (its version is its hash), activate one, read any version.
 * Tasks stay pinned to the version they were planned under, so old versions are never deleted.
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, Layer, Schema } from "effect"
import { PolicyVersion } from "./Ids.ts"
import { PolicySet, version as versionOf } from "./PolicySet.ts"
import { defaultPolicySet } from "./Seed.ts"
import { UnitOfWork } from "./UnitOfWork.ts"

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
        // Every operation reads and writes it synchronously, so each is atomic; inside a `UnitOfWork` a write
        // registers its undo, so a unit that fails (say, its ledger entry could not be appended) leaves no
        // published or activated version behind
        let state: {
          readonly activeVersion: PolicyVersion
          readonly sets: ReadonlyMap<PolicyVersion, Omit<StoredPolicySet, "active">>
        } = { activeVersion: first.version, sets: new Map([[first.version, first]]) }
        const view = (stored: Omit<StoredPolicySet, "active">): StoredPolicySet => ({
          ...stored,
          active: stored.version === state.activeVersion
        })
        return PolicyStore.of({
          publish: (set) =>
            Effect.flatMap(Clock.currentTimeMillis, (publishedAt) =>
              Effect.suspend(() => {
                const version = versionOf(set)
                const existing = state.sets.get(version)
                if (existing) return Effect.succeed(view(existing))
                const stored = { version, set, publishedAt }
                state = { ...state, sets: new Map(state.sets).set(version, stored) }
                return Effect.as(
                  UnitOfWork.onRollback(() => {
                    const sets = new Map(state.sets)
                    sets.delete(version)
                    state = { ...state, sets }
                  }),
                  view(stored)
                )
              })
            ),
          activate: (version) =>
            Effect.suspend(() => {
              const stored = state.sets.get(version)
              if (!stored) return Effect.fail(new UnknownPolicyVersion({ version }))
              const previous = state.activeVersion
              state = { ...state, activeVersion: version }
              return Effect.as(
                UnitOfWork.onRollback(() => {
                  if (state.activeVersion === version) state = { ...state, activeVersion: previous }
                }),
                view(stored)
              )
            }),
          active: Effect.sync(() => view(state.sets.get(state.activeVersion)!)),
          get: (version) =>
            Effect.suspend(() => {
              const stored = state.sets.get(version)
              return stored ? Effect.succeed(view(stored)) : Effect.fail(new UnknownPolicyVersion({ version }))
            }),
          list: Effect.sync(() => [...state.sets.values()].reverse().map(view))
        })
      })
    )
}
