/**
 * The one place that picks backends: every core service over memory, Postgres or Redis stores, anchored on the
 * Qubic mock, a Qubic gateway or nothing, as the configuration says. Memory and the Qubic mock are the default,
 * so a fresh clone serves the whole API with nothing else installed.
 *
 * `Readiness` probes each configured store and the anchor for `GET /ready`.
 *
 * @since 0.1.0
 */
import * as Postgres from "@mandate/adapters/postgres"
import * as Qubic from "@mandate/adapters/qubic"
import {
  Agents,
  Anchor,
  Ledger,
  type LedgerOptions,
  LedgerStore,
  Mandate,
  type PolicySet,
  PolicyStore,
  Queue,
  type RuntimeOptions,
  Sha256Hex,
  TaskStore,
  UnitOfWork
} from "@mandate/core"
import { Clock, Context, Duration, Effect, Layer, Option, type Redacted, Schema } from "effect"
import type { Check, Readiness as ReadinessWire } from "./api/System.ts"
import type { AnchorKind, ServerConfig, StoreKind } from "./Config.ts"

/**
 * What every backend choice shares.
 *
 * @category models
 * @since 0.1.0
 */
export interface StoresOptions {
  /** The policy set of a new store (a Postgres store keeps its active version across restarts). */
  readonly policy?: PolicySet.PolicySet | undefined
  /** The chain (default: the Qubic mock). */
  readonly anchor?: Layer.Layer<Anchor, unknown> | undefined
  readonly ledger?: LedgerOptions | undefined
  readonly runtime?: RuntimeOptions | undefined
}

/**
 * The services a backend choice provides.
 *
 * @category models
 * @since 0.1.0
 */
export type Services = Mandate.Services | LedgerStore

/**
 * A backend that cannot be used in this build or configuration.
 *
 * @category errors
 * @since 0.1.0
 */
export class StoreUnavailable extends Schema.TaggedError<StoreUnavailable>()("StoreUnavailable", {
  store: Schema.String,
  message: Schema.String
}) {}

// A layer that fails to build with `error`
const failing = <A = never, E = never>(error: E): Layer.Layer<A, E> =>
  Layer.unwrap(Effect.fail(error)) as unknown as Layer.Layer<A, E>

// Finished jobs are forgotten after an hour, so a long-running memory server does not grow without bound
const memoryQueue = { retainFinishedMs: 3_600_000 }

/**
 * Every service on memory.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerMemory = (options?: StoresOptions): Layer.Layer<Services, unknown> =>
  Mandate.layer(Mandate.layerMemoryStores({ policy: options?.policy, queue: memoryQueue }), mandateOptions(options))

/**
 * Every service over PostgreSQL as far as the Postgres adapters of this build go: the policy store (versioned
 * policy sets, kept across restarts). The task store, queue, agents and ledger stay on memory until their
 * Postgres layers land, and so does the unit of work: a transition writes those stores, and only the memory
 * unit (a lock) makes their writes atomic.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerPg = (config: Postgres.PostgresConfig, options?: StoresOptions): Layer.Layer<Services, unknown> =>
  Mandate.layer(
    Layer.mergeAll(
      TaskStore.layerMemory,
      Queue.layerMemory(memoryQueue),
      Agents.layerMemory(),
      LedgerStore.layerMemory,
      UnitOfWork.layerMemory,
      Layer.effect(
        PolicyStore,
        Effect.gen(function* () {
          return yield* PolicyStore
        })
      ).pipe(Layer.provide(Postgres.layer(config, { initialPolicy: options?.policy })))
    ),
    mandateOptions(options)
  )

/**
 * Redis stores. The Redis adapters (task store, queue) have not landed in this build: the layer fails at
 * start, saying so, rather than quietly running on memory.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerRedis = (
  _url: Redacted.Redacted,
  _options?: StoresOptions
): Layer.Layer<Services, StoreUnavailable> =>
  failing(
    new StoreUnavailable({
      store: "redis",
      message:
        "MANDATE_STORE=redis: the Redis task store and queue are not part of this build yet; use memory or postgres " +
        "(REDIS_URL alone already moves the rate limits to Redis)"
    })
  )

const mandateOptions = (options: StoresOptions | undefined): Mandate.MemoryOptions => ({
  anchor: options?.anchor ?? layerAnchor("qubic-mock"),
  ...(options?.ledger === undefined ? {} : { ledger: options.ledger }),
  ...(options?.runtime === undefined ? {} : { runtime: options.runtime })
})

/**
 * The chain: the in-process Qubic mock, a Qubic gateway (`QUBIC_RPC_URL`, signing with the mock signer, which
 * only the mock network accepts), core's in-process chain (instant confirmations; for benchmarks and tests, it
 * proves nothing to a third party), or no anchoring.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerAnchor = (
  kind: AnchorKind,
  options?: { readonly rpcUrl?: string | undefined; readonly seed?: Redacted.Redacted | undefined }
): Layer.Layer<Anchor, unknown> => {
  switch (kind) {
    case "none":
      return Anchor.layerNone
    case "memory":
      return Anchor.layerMemory
    case "qubic-mock":
      return Qubic.layerMock(options?.seed === undefined ? {} : { seed: options.seed as Redacted.Redacted<string> })
    case "qubic-rpc":
      return options?.rpcUrl === undefined
        ? failing(new StoreUnavailable({ store: "qubic-rpc", message: "MANDATE_ANCHOR=qubic-rpc needs QUBIC_RPC_URL" }))
        : Qubic.layerRpc({ url: options.rpcUrl }).pipe(
            Layer.provide(Qubic.layerMockSigner((options.seed as Redacted.Redacted<string>) ?? Qubic.MOCK_SEED))
          )
  }
}

/**
 * The services the configuration asks for.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerFromConfig = (
  config: ServerConfig,
  options?: Omit<StoresOptions, "anchor">
): Layer.Layer<Services | Readiness, unknown> => {
  const anchor = layerAnchor(config.anchor, {
    rpcUrl: Option.getOrUndefined(config.qubicRpcUrl),
    seed: Option.getOrUndefined(config.qubicSeed)
  })
  const stores = { ...options, anchor }
  const services: Layer.Layer<Services, unknown> = Layer.unwrap(
    Effect.gen(function* (): Effect.fn.Return<Layer.Layer<Services, unknown>, unknown> {
      switch (config.store) {
        case "memory":
          return layerMemory(stores)
        case "postgres":
          return layerPg(yield* Postgres.PostgresConfig, stores)
        case "redis":
          return Option.isSome(config.redisUrl)
            ? layerRedis(config.redisUrl.value, stores)
            : failing(new StoreUnavailable({ store: "redis", message: "MANDATE_STORE=redis needs REDIS_URL" }))
      }
    })
  )
  return Readiness.layer({ store: config.store, anchor: config.anchor }).pipe(Layer.provideMerge(services))
}

// ---- readiness ---------------------------------------------------------------------------------------------

const probeTimeout = Duration.seconds(2)
const zeroHash = Sha256Hex.make("0".repeat(64))

/**
 * Probes of every configured store and the anchor.
 *
 * @category services
 * @since 0.1.0
 */
export class Readiness extends Context.Service<Readiness, { readonly check: Effect.Effect<ReadinessWire> }>()(
  "@mandate/server/Readiness"
) {
  /**
   * Readiness over the services in context; `store` and `anchor` name the configured backends.
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layer = (names: {
    readonly store: StoreKind
    readonly anchor: AnchorKind
  }): Layer.Layer<Readiness, never, TaskStore | Queue | Agents | Ledger | PolicyStore | Anchor> =>
    Layer.effect(
      Readiness,
      Effect.gen(function* () {
        const tasks = yield* TaskStore
        const queue = yield* Queue
        const agents = yield* Agents
        const ledger = yield* Ledger
        const policies = yield* PolicyStore
        const anchor = yield* Anchor
        const probe = <A, E>(name: string, effect: Effect.Effect<A, E>): Effect.Effect<Check> =>
          Effect.gen(function* () {
            const started = yield* Clock.currentTimeMillis
            const outcome = yield* effect.pipe(Effect.timeout(probeTimeout), Effect.result)
            const latency_ms = (yield* Clock.currentTimeMillis) - started
            return outcome._tag === "Success"
              ? { name, ok: true, latency_ms }
              : { name, ok: false, latency_ms, error: errorText(outcome.failure) }
          })
        const probes = [
          probe("task_store", tasks.countByState),
          probe("queue", queue.stats()),
          probe("agents", agents.pools),
          probe("ledger", ledger.size),
          probe("policy_store", policies.active),
          ...(names.anchor === "none" ? [] : [probe("anchor", anchor.lookup(zeroHash))])
        ]
        return Readiness.of({
          check: Effect.map(Effect.all(probes, { concurrency: "unbounded" }), (checks) => ({
            status: checks.every((c) => c.ok) ? ("ready" as const) : ("unavailable" as const),
            store: names.store,
            anchor: names.anchor,
            checks
          }))
        })
      })
    )
}

const errorText = (error: unknown): string => {
  const e = error as { readonly _tag?: unknown; readonly message?: unknown }
  return `${String(e?._tag ?? "Error")}: ${typeof e?.message === "string" ? e.message : String(error)}`
}
