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
import * as Redis from "@mandate/adapters/redis"
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
  RateLimit,
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
  /** The policy set to run under: published and activated at start on any store where it is not active yet. */
  readonly policy?: PolicySet.PolicySet | undefined
  /** The chain (default: the Qubic mock). */
  readonly anchor?: Layer.Layer<Anchor, unknown> | undefined
  readonly ledger?: LedgerOptions | undefined
  readonly runtime?: RuntimeOptions | undefined
  /** Where request budgets are counted (default: the backend's own, else memory). */
  readonly rateLimit?: Layer.Layer<RateLimit, unknown> | undefined
}

/**
 * The services a backend choice provides.
 *
 * @category models
 * @since 0.1.0
 */
export type Services = Mandate.Services | LedgerStore | RateLimit

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
  Layer.mergeAll(
    Mandate.layer(Mandate.layerMemoryStores({ policy: options?.policy, queue: memoryQueue }), mandateOptions(options)),
    options?.rateLimit ?? RateLimit.layerMemory
  )

/**
 * Every service over PostgreSQL: policy sets, tasks, the queue, agents and the ledger in one database, one pool,
 * and a transition's writes in one transaction. Request budgets stay in memory unless `rateLimit` says otherwise.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerPg = (config: Postgres.PostgresConfig, options?: StoresOptions): Layer.Layer<Services, unknown> =>
  Layer.mergeAll(
    Mandate.layer(Postgres.layer(config, { policy: options?.policy }), mandateOptions(options)),
    options?.rateLimit ?? RateLimit.layerMemory
  )

/**
 * Tasks, the queue, agents and request budgets on Redis. Redis has no ledger or policy store (their durable
 * home is Postgres): they stay in this process, and so does the unit of work, so a transition's writes to the
 * task store, the queue and the ledger are not one transaction (steps are at-least-once; handlers get an
 * idempotency key).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerRedis = (config: Redis.RedisConfig, options?: StoresOptions): Layer.Layer<Services, unknown> => {
  // One client: the layer is memoised, so both uses below share one build
  const backend = Redis.layer(config)
  return Layer.mergeAll(
    Mandate.layer(
      Layer.mergeAll(LedgerStore.layerMemory, PolicyStore.layerMemory(options?.policy), UnitOfWork.layerMemory).pipe(
        Layer.provideMerge(backend)
      ),
      mandateOptions(options)
    ),
    options?.rateLimit ??
      Layer.effect(
        RateLimit,
        Effect.gen(function* () {
          return yield* RateLimit
        })
      ).pipe(Layer.provide(backend))
  )
}

/**
 * Request budgets on Redis (`REDIS_URL`), shared by every server using it, whatever the stores.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerRedisRateLimit = (config: Redis.RedisConfig): Layer.Layer<RateLimit, unknown> =>
  Redis.layerRateLimit({ prefix: config.prefix }).pipe(Layer.provide(Redis.layerClient(config)))

const mandateOptions = (options: StoresOptions | undefined): Mandate.MemoryOptions => ({
  anchor: options?.anchor ?? layerAnchor("qubic-mock"),
  ...(options?.policy === undefined ? {} : { policy: options.policy }),
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
  const services: Layer.Layer<Services, unknown> = Layer.unwrap(
    Effect.gen(function* (): Effect.fn.Return<Layer.Layer<Services, unknown>, unknown> {
      const redis = Option.isSome(config.redisUrl) ? Option.some(yield* Redis.RedisConfig) : Option.none()
      const stores: StoresOptions = {
        ...options,
        anchor,
        ...(Option.isSome(redis) ? { rateLimit: layerRedisRateLimit(redis.value) } : {})
      }
      switch (config.store) {
        case "memory":
          return layerMemory(stores)
        case "postgres":
          return layerPg(yield* Postgres.PostgresConfig, stores)
        case "redis":
          return layerRedis(
            Option.getOrElse(redis, () => Redis.makeConfig()),
            stores
          )
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
