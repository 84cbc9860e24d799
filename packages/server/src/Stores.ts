/**
 * The one place that picks backends: every core service over memory, Postgres or Redis stores, anchored on the
 * Qubic mock, a Qubic gateway or nothing, as the configuration says. Memory and the Qubic mock are the default,
 * so a fresh clone serves the whole API with nothing else installed.
 *
 * **What outlives a restart besides the stores** (`layerFromConfig`). A persistent store (Postgres, Redis) never
 * gets a throw-away signing key: the ledger signs with `MANDATE_LEDGER_KEY`, else with a key generated once and
 * kept in the data directory (`MANDATE_DATA_DIR`, `LedgerKeys.inDirectory`), and trusts every key used there
 * before, so a restart or a rotation leaves earlier checkpoints verifiable. The Qubic mock keeps its network and
 * its receipts in the data directory too, so transactions, receipts and confirmations survive a restart. On the
 * memory store all of it ends with the process, and the startup log says so.
 *
 * `Readiness` probes each configured store and the anchor for `GET /ready`, and says where each lives and whether
 * it outlives the process (`placements`); the startup log says the same in one line.
 *
 * @since 0.1.0
 */
import * as NodePath from "node:path"
import * as NodeUrl from "node:url"
import { ChatCompletions } from "@mandate/adapters/openai"
import * as Postgres from "@mandate/adapters/postgres"
import * as Qubic from "@mandate/adapters/qubic"
import * as Redis from "@mandate/adapters/redis"
import {
  Agents,
  Anchor,
  Ledger,
  LedgerKeys,
  type LedgerOptions,
  type LedgerStore,
  Mandate,
  type PolicySet,
  PolicyStore,
  Queue,
  RateLimit,
  type RuntimeOptions,
  Sha256Hex,
  TaskStore,
  WebhookStore,
  Webhooks,
  type WebhooksOptions
} from "@mandate/core"
import { Clock, Config, Context, Duration, Effect, Layer, Option, type Redacted, Schema } from "effect"
import { FetchHttpClient } from "effect/http"
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
  /** Step types run by remote agents: step type → pool (`MANDATE_REMOTE_STEPS`). */
  readonly remoteSteps?: { readonly [type: string]: string } | undefined
  /** The principals whose agents may serve each pool (`MANDATE_POOL_PRINCIPALS`); other pools are open to agents. */
  readonly poolPrincipals?: { readonly [pool: string]: ReadonlyArray<string> } | undefined
  /** Where request budgets are counted (default: the backend's own, else memory). */
  readonly rateLimit?: Layer.Layer<RateLimit, unknown> | undefined
  /** Plan `goal` tasks with a language model (default: templates only). */
  readonly llm?: Mandate.MemoryOptions["llm"]
  /** Webhook subscriptions from configuration and the console's public address (see `Webhooks.layer`). */
  readonly webhooks?: WebhooksOptions | undefined
}

/**
 * The services a backend choice provides.
 *
 * @category models
 * @since 0.1.0
 */
export type Services = Mandate.Services | LedgerStore | RateLimit | Webhooks

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
  withWebhooks(
    Layer.mergeAll(
      Mandate.layer(
        Mandate.layerMemoryStores({ policy: options?.policy, queue: memoryQueue }),
        mandateOptions(options)
      ),
      options?.rateLimit ?? RateLimit.layerMemory
    ),
    options
  )

/**
 * Every service over PostgreSQL: policy sets, tasks, the queue, agents and the ledger in one database, one pool,
 * and a transition's writes in one transaction. Request budgets stay in memory unless `rateLimit` says otherwise.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerPg = (config: Postgres.PostgresConfig, options?: StoresOptions): Layer.Layer<Services, unknown> => {
  // One pool: the layer is memoised, so both uses below share one build
  const backend = Postgres.layer(config, { policy: options?.policy })
  return withWebhooks(
    Layer.mergeAll(Mandate.layer(backend, mandateOptions(options)), options?.rateLimit ?? RateLimit.layerMemory),
    options,
    Layer.effect(
      WebhookStore,
      Effect.gen(function* () {
        return yield* WebhookStore
      })
    ).pipe(Layer.provide(backend))
  )
}

/**
 * Every service over Redis: policy sets, tasks, the queue, agents, the ledger and request budgets under one key
 * prefix, one client, and a transition's writes (the task's compare-and-set, its jobs, its ledger entries) in one
 * unit of work, committed by one Lua script. Nothing that must outlive the process stays in it.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerRedis = (config: Redis.RedisConfig, options?: StoresOptions): Layer.Layer<Services, unknown> => {
  // One client: the layer is memoised, so both uses below share one build
  const backend = Redis.layer(config, { policy: options?.policy })
  const services = Layer.mergeAll(
    Mandate.layer(backend, mandateOptions(options)),
    options?.rateLimit ??
      Layer.effect(
        RateLimit,
        Effect.gen(function* () {
          return yield* RateLimit
        })
      ).pipe(Layer.provide(backend))
  )
  return withWebhooks(
    services,
    options,
    Layer.effect(
      WebhookStore,
      Effect.gen(function* () {
        return yield* WebhookStore
      })
    ).pipe(Layer.provide(backend))
  )
}

/**
 * Webhooks over the given services: deliveries on their queue (`mandate.webhooks`), delivered by this process when
 * it runs workers; subscriptions and the delivery record in `store` (the backend's own, else memory). Configured
 * subscriptions are written again at each start. Redirects are not followed: a 3xx answer is a failed attempt.
 *
 * @category layers
 * @since 0.1.0
 */
export const withWebhooks = <E, R>(
  services: Layer.Layer<Exclude<Services, Webhooks>, E, R>,
  options?: StoresOptions,
  store: Layer.Layer<WebhookStore, unknown> = WebhookStore.layerMemory()
): Layer.Layer<Services, unknown, R> =>
  Webhooks.layer({
    ...options?.webhooks,
    workers: options?.webhooks?.workers ?? options?.runtime?.workers,
    // Stops within the runtime's grace, as the step workers do
    worker: { shutdownGraceMs: options?.runtime?.shutdownGraceMs, ...options?.webhooks?.worker }
  }).pipe(
    Layer.provide([
      store,
      FetchHttpClient.layer.pipe(Layer.provide(Layer.succeed(FetchHttpClient.RequestInit, { redirect: "manual" })))
    ]),
    Layer.provideMerge(services)
  )

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
  ...(options?.runtime === undefined ? {} : { runtime: options.runtime }),
  ...(options?.llm === undefined ? {} : { llm: options.llm }),
  ...(options?.remoteSteps === undefined ? {} : { remoteSteps: options.remoteSteps }),
  ...(options?.poolPrincipals === undefined ? {} : { poolPrincipals: options.poolPrincipals })
})

/**
 * The LLM planner's model from the environment, when `MANDATE_PLANNER=llm`: an OpenAI-compatible endpoint at
 * `MANDATE_LLM_URL` (e.g. `http://127.0.0.1:11434/v1` for Ollama), `MANDATE_LLM_MODEL`, and optionally
 * `MANDATE_LLM_API_KEY`.
 *
 * @category config
 * @since 0.1.0
 */
export const llmFromConfig = (config: ServerConfig) =>
  Effect.gen(function* () {
    if (config.planner !== "llm") return undefined
    const url = yield* Config.String("MANDATE_LLM_URL")
    const model = yield* Config.String("MANDATE_LLM_MODEL")
    const apiKey = yield* Config.Redacted("MANDATE_LLM_API_KEY").pipe(Config.option)
    const languageModel = ChatCompletions.layer({ url, model, apiKey: Option.getOrUndefined(apiKey) }).pipe(
      Layer.provide(FetchHttpClient.layer)
    )
    return { model, languageModel } satisfies NonNullable<Mandate.MemoryOptions["llm"]>
  })

/**
 * How `layerAnchor` builds the chain.
 *
 * @category models
 * @since 0.1.0
 */
export interface AnchorOptions {
  /** The gateway of `qubic-rpc`. */
  readonly rpcUrl?: string | undefined
  /** The anchor identity's 55-letter seed (required by `qubic-rpc`; the mock's default is `Qubic.MOCK_SEED`). */
  readonly seed?: Redacted.Redacted | undefined
  /** `mock` (default), or a module whose default export makes the `Signer` layer from the seed (`signerFromModule`). */
  readonly signer?: string | undefined
  /** The Qubic mock's tick period (default 1 second). */
  readonly tick?: Duration.Input | undefined
  /** A directory where the Qubic mock keeps its network, and the Qubic anchors their receipts, across restarts. */
  readonly stateDirectory?: string | undefined
}

/**
 * The chain: the in-process Qubic mock, a Qubic gateway (`QUBIC_RPC_URL`, signing with the configured signer:
 * the mock signer, which only the mock network accepts, or a module of your own — see `signerFromModule`), core's
 * in-process chain (instant confirmations; for benchmarks and tests, it proves nothing to a third party), or no
 * anchoring.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerAnchor = (kind: AnchorKind, options?: AnchorOptions): Layer.Layer<Anchor, unknown> => {
  const inState = (name: string) =>
    options?.stateDirectory === undefined ? undefined : NodePath.join(options.stateDirectory, name)
  switch (kind) {
    case "none":
      return Anchor.layerNone
    case "memory":
      return Anchor.layerMemory
    case "qubic-mock":
      return Qubic.layerMock({
        ...(options?.seed === undefined ? {} : { seed: options.seed as Redacted.Redacted<string> }),
        network: {
          ...(options?.tick === undefined ? {} : { tickDuration: options.tick }),
          stateFile: inState("qubic-mock-network.json")
        },
        stateFile: inState("qubic-mock-anchor.json")
      })
    case "qubic-rpc":
      if (options?.rpcUrl === undefined) {
        return failing(
          new StoreUnavailable({ store: "qubic-rpc", message: "MANDATE_ANCHOR=qubic-rpc needs QUBIC_RPC_URL" })
        )
      }
      if (options.seed === undefined) {
        return failing(
          new StoreUnavailable({
            store: "qubic-rpc",
            message: "MANDATE_ANCHOR=qubic-rpc needs MANDATE_QUBIC_SEED, the 55-letter seed of the anchor identity"
          })
        )
      }
      return Qubic.layerRpc({ url: options.rpcUrl, stateFile: inState("qubic-anchor.json") }).pipe(
        Layer.provide(signerFromModule(options.signer ?? "mock", options.seed as Redacted.Redacted<string>))
      )
  }
}

/**
 * The `Signer` of anchor transactions: `mock` (`Qubic.layerMockSigner`), or a module — a path (relative to the
 * working directory) or a package name — whose default export is a function from the seed (`Redacted`) to a
 * `Signer` layer. That is how a real SchnorrQ signer (e.g. one over a Qubic library whose licence you accept)
 * plugs into `qubic-rpc` without changes to Mandate:
 *
 * ```ts
 * // my-signer.ts, used with MANDATE_QUBIC_SIGNER=./my-signer.ts
 * export default (seed: Redacted.Redacted<string>) => Layer.effect(Qubic.Signer, ...)
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const signerFromModule = (
  specifier: string,
  seed: Redacted.Redacted<string>
): Layer.Layer<Qubic.Signer, unknown> => {
  if (specifier === "mock") return Qubic.layerMockSigner(seed)
  const unusable = (message: string) => new StoreUnavailable({ store: "qubic-signer", message })
  return Layer.unwrap(
    Effect.gen(function* () {
      const url =
        specifier.startsWith(".") || NodePath.isAbsolute(specifier)
          ? NodeUrl.pathToFileURL(NodePath.resolve(specifier)).href
          : specifier
      const module = yield* Effect.tryPromise({
        try: () => import(url) as Promise<{ readonly default?: unknown }>,
        catch: (error) =>
          unusable(
            `MANDATE_QUBIC_SIGNER ${specifier} cannot be loaded: ${error instanceof Error ? error.message : error}`
          )
      })
      if (typeof module.default !== "function") {
        return yield* unusable(`MANDATE_QUBIC_SIGNER ${specifier} has no default export making a Signer layer`)
      }
      const layer: unknown = module.default(seed)
      if (!Layer.isLayer(layer)) {
        return yield* unusable(`MANDATE_QUBIC_SIGNER ${specifier}: its default export did not return a Layer`)
      }
      return layer as Layer.Layer<Qubic.Signer, unknown>
    })
  )
}

/**
 * The ledger's keys for a backend: on a persistent store, `MANDATE_LEDGER_KEY` or the data directory's key
 * (`LedgerKeys.inDirectory`, which logs where the key came from); on the memory store, `MANDATE_LEDGER_KEY` or a
 * key for this process only, logged as such.
 *
 * @category constructors
 * @since 0.1.0
 */
export const ledgerKeys = (options: {
  readonly persistent: boolean
  readonly dataDir: string
  readonly signingKey?: Redacted.Redacted | undefined
}): Effect.Effect<LedgerKeys.LedgerKeys, unknown> => {
  const signingKey = options.signingKey as Redacted.Redacted<string> | undefined
  if (options.persistent) return LedgerKeys.inDirectory(options.dataDir, { signingKey })
  if (signingKey !== undefined) return LedgerKeys.make({ signingKey })
  return Effect.tap(LedgerKeys.ephemeral, (keys) =>
    Effect.logInfo(
      `Ledger signing key ${keys.keyId} is ephemeral: the memory store ends with the process, and so does the key`
    )
  )
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
  const persistent = config.store !== "memory"
  const anchor = layerAnchor(config.anchor, {
    rpcUrl: Option.getOrUndefined(config.qubicRpcUrl),
    seed: Option.getOrUndefined(config.qubicSeed),
    signer: config.qubicSigner,
    tick: config.qubicTick,
    stateDirectory: persistent ? config.dataDir : undefined
  })
  const services: Layer.Layer<Services, unknown> = Layer.unwrap(
    Effect.gen(function* (): Effect.fn.Return<Layer.Layer<Services, unknown>, unknown> {
      const redis = Option.isSome(config.redisUrl) ? Option.some(yield* Redis.RedisConfig) : Option.none()
      const keys = yield* ledgerKeys({
        persistent,
        dataDir: config.dataDir,
        signingKey: Option.getOrUndefined(config.ledgerKey)
      })
      const llm = yield* llmFromConfig(config)
      const stores: StoresOptions = {
        ...options,
        ...(llm === undefined ? {} : { llm }),
        ledger: { ...options?.ledger, keys },
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
  const placed = placements({
    store: config.store,
    anchor: config.anchor,
    rateLimitOnRedis: Option.isSome(config.redisUrl)
  })
  // One line at start says where everything lives, and what a restart loses
  const announce = Layer.effectDiscard(
    Effect.logInfo(`Stores: ${describePlacements(placed)}`).pipe(Effect.annotateLogs({ service: "Stores" }))
  )
  return Readiness.layer({ store: config.store, anchor: config.anchor, placements: placed }).pipe(
    Layer.provideMerge(services),
    Layer.merge(announce)
  )
}

// ---- where each store lives -----------------------------------------------------------------------------------

/**
 * Where one store lives, and whether what it holds outlives the process.
 *
 * @category models
 * @since 0.1.0
 */
export interface Placement {
  readonly backend: string
  readonly persistent: boolean
}

/**
 * Where each store of a configuration lives, by the names `/ready` uses for its checks.
 *
 * @category constructors
 * @since 0.1.0
 */
export const placements = (names: {
  readonly store: StoreKind
  readonly anchor: AnchorKind
  /** Whether request budgets are counted on Redis (`REDIS_URL` set). */
  readonly rateLimitOnRedis?: boolean | undefined
}): Readonly<Record<string, Placement>> => {
  const persistent = names.store !== "memory"
  const store: Placement = { backend: names.store, persistent }
  return {
    task_store: store,
    queue: store,
    agents: store,
    ledger: store,
    policy_store: store,
    unit_of_work: store,
    rate_limit:
      names.rateLimitOnRedis === true || names.store === "redis"
        ? { backend: "redis", persistent: true }
        : { backend: "memory", persistent: false },
    // The mock keeps its network in the data directory with a persistent store; a gateway is a real chain
    anchor: {
      backend: names.anchor,
      persistent: names.anchor === "qubic-rpc" || (names.anchor === "qubic-mock" && persistent)
    }
  }
}

const describePlacements = (placed: Readonly<Record<string, Placement>>): string =>
  Object.entries(placed)
    .map(([name, p]) => `${name}=${p.backend}${p.persistent ? "" : " (ends with the process)"}`)
    .join(", ")

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
    /** Where each store lives (default: `placements({ store, anchor })`); each check reports its own. */
    readonly placements?: Readonly<Record<string, Placement>> | undefined
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
        const placed = names.placements ?? placements(names)
        const probe = <A, E>(name: string, effect: Effect.Effect<A, E>): Effect.Effect<Check> =>
          Effect.gen(function* () {
            const started = yield* Clock.currentTimeMillis
            const outcome = yield* effect.pipe(Effect.timeout(probeTimeout), Effect.result)
            const latency_ms = (yield* Clock.currentTimeMillis) - started
            const where = placed[name]
            const placement = where === undefined ? {} : { backend: where.backend, persistent: where.persistent }
            return outcome._tag === "Success"
              ? { name, ok: true, latency_ms, ...placement }
              : { name, ok: false, latency_ms, error: errorText(outcome.failure), ...placement }
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
