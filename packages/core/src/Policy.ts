/**
 * The policy decision point: evaluates actions against the active policy set, or against the version a
 * task is pinned to, and explains decisions. Rules are data (`PolicySet`); sets are stored by `PolicyStore`.
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, FileSystem, Layer } from "effect"
import type { PolicyVersion } from "./Ids.ts"
import { InvalidInput } from "./InvalidInput.ts"
import * as PolicySet from "./PolicySet.ts"
import { PolicyStore, type PolicyStoreError, type StoredPolicySet, type UnknownPolicyVersion } from "./PolicyStore.ts"

/**
 * Evaluate under a given version instead of the active one.
 *
 * @category models
 * @since 0.1.0
 */
export interface EvaluateOptions {
  readonly version?: PolicyVersion | undefined
}

/**
 * @category services
 * @since 0.1.0
 */
export class Policy extends Context.Service<
  Policy,
  {
    /** The active policy set and its version. */
    readonly active: Effect.Effect<StoredPolicySet, PolicyStoreError>
    readonly evaluate: (
      request: PolicySet.ActionRequest,
      options?: EvaluateOptions
    ) => Effect.Effect<PolicySet.PolicyDecision, UnknownPolicyVersion | PolicyStoreError>
    /** A dry run: the decision for a hypothetical action and every rule's part in it. */
    readonly explain: (
      request: PolicySet.ActionRequest,
      options?: EvaluateOptions
    ) => Effect.Effect<PolicySet.PolicyExplanation, UnknownPolicyVersion | PolicyStoreError>
  }
>()("@mandate/core/Policy") {
  /**
   * Policy over any `PolicyStore`. Versions are immutable, so each is read from the store once and cached.
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layer: Layer.Layer<Policy, never, PolicyStore> = Layer.effect(
    Policy,
    Effect.gen(function* () {
      const store = yield* PolicyStore
      const cache = new Map<PolicyVersion, PolicySet.PolicySet>()
      const setFor = (options: EvaluateOptions | undefined) =>
        Effect.gen(function* () {
          if (options?.version === undefined) {
            const active = yield* store.active
            return { version: active.version, set: active.set }
          }
          const version = options.version
          const cached = cache.get(version)
          if (cached) return { version, set: cached }
          const stored = yield* store.get(version)
          cache.set(version, stored.set)
          return { version, set: stored.set }
        })
      // Untraced: evaluated once per planned step, where a span would cost more than the evaluation
      const explain = Effect.fnUntraced(function* (request: PolicySet.ActionRequest, options?: EvaluateOptions) {
        const { version, set } = yield* setFor(options)
        return PolicySet.explain(set, version, request, yield* Clock.currentTimeMillis)
      })
      return Policy.of({
        active: store.active,
        evaluate: Effect.fnUntraced(function* (request: PolicySet.ActionRequest, options?: EvaluateOptions) {
          const { version, set } = yield* setFor(options)
          return PolicySet.evaluate(set, version, request, yield* Clock.currentTimeMillis)
        }),
        explain
      })
    })
  )

  /**
   * Policy on an in-process store holding `set` (the seed policy by default).
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layerMemory = (set?: PolicySet.PolicySet): Layer.Layer<Policy | PolicyStore> =>
    Policy.layer.pipe(Layer.provideMerge(PolicyStore.layerMemory(set)))

  /**
   * Policy on an in-process store holding the set read from a JSON or YAML file (by extension). A malformed
   * file fails the layer with `InvalidInput` naming every bad field's path.
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layerFile = (path: string): Layer.Layer<Policy | PolicyStore, InvalidInput, FileSystem.FileSystem> =>
    Layer.unwrap(Effect.map(loadFile(path), (set) => Policy.layerMemory(set)))
}

/**
 * Reads and decodes a policy set file (JSON, or YAML for `.yaml`/`.yml`).
 *
 * @category loading
 * @since 0.1.0
 */
export const loadFile = (path: string): Effect.Effect<PolicySet.PolicySet, InvalidInput, FileSystem.FileSystem> =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs
      .readFileString(path)
      .pipe(Effect.mapError((error) => InvalidInput.at("$", `Cannot read policy file ${path}: ${error.message}`)))
    return yield* PolicySet.fromText(path, text)
  })
