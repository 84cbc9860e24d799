/**
 * The Redis backend: its configuration, the one client all Redis services share, and the layer that builds the
 * services over that client.
 *
 * The client is node-redis (the `redis` package) through `NodeRedis` from `@effect/platform-node`, which
 * implements Effect's abstract `Redis` service (`effect/persistence`): commands, Lua scripts loaded once and run
 * with `EVALSHA` (reloaded on `NOSCRIPT`), pub/sub, and `reserve` for blocking commands on a pooled connection of
 * their own. We chose it over ioredis because it is the implementation Effect ships and tests: with ioredis we
 * would have to write and maintain that `Redis` service ourselves, and Effect's Redis-backed stores
 * (`RateLimiter.layerStoreRedis`) run on it unchanged. node-redis pipelines concurrent commands on one connection,
 * so one client serves every fiber. On that shared connection the backend's `Redis` keeps a deadline per command
 * (one watchdog fiber, not a timer per command) and runs scripts by `EVALSHA`, falling back to `EVAL` (which also
 * caches the script) on `NOSCRIPT`; `subscribe` and `reserve` are NodeRedis' own.
 *
 * Build the backend once, at the edge of the application (`layer(config)` or `layerConfig()` from the
 * environment). The per-service layers (`layerTaskStore`, `layerRateLimit`, …) require only the abstract
 * `Redis` service and take the key prefix as an option; they never open a connection or read configuration, so
 * they also run on a `Redis` the host application built itself.
 *
 * @since 0.1.0
 */

import { createHash } from "node:crypto"
import { NodeRedis } from "@effect/platform-node"
import type {
  Agents,
  InvalidInput,
  LedgerStore,
  PolicySet,
  PolicyStore,
  PolicyStoreError,
  Queue,
  RateLimit,
  TaskStore,
  UnitOfWork,
  WebhookStore
} from "@mandate/core"
import { Cause, Clock, Config, Context, Duration, Effect, Layer, Redacted, Schedule, Schema } from "effect"
import { Redis } from "effect/persistence"
import { type AgentsOptions, layerAgents } from "./Agents.ts"
import { defaultPrefix, Prefix } from "./Keys.ts"
import { layerLedgerStore } from "./Ledger.ts"
import { layerPolicyStore } from "./PolicyStore.ts"
import { layerQueue, type QueueOptions } from "./Queue.ts"
import { layerRateLimit } from "./RateLimit.ts"
import { layerTaskStore } from "./TaskStore.ts"
import { layerUnitOfWork } from "./UnitOfWork.ts"
import { layerWebhookStore } from "./WebhookStore.ts"

/**
 * Everything needed to reach Redis and find Mandate's keys in it.
 *
 * @category models
 * @since 0.1.0
 */
export interface RedisConfig {
  /** `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS. */
  readonly url: Redacted.Redacted
  /** Prepended to every key, so several applications can share one Redis. */
  readonly prefix: string
  /** Opening a connection fails after this long. */
  readonly connectTimeout: Duration.Duration
  /**
   * A command fails after this long without a reply, including time spent waiting for a lost connection to come
   * back; zero disables the limit. Blocking commands on reserved connections are exempt: they wait on purpose. As
   * with any lost reply, a command that timed out may still have run (or run once the connection is back).
   */
  readonly commandTimeout: Duration.Duration
  /** Reconnection waits grow exponentially from 50 ms up to this (plus up to 10% jitter). */
  readonly reconnectMaxDelay: Duration.Duration
  /** Most connections kept for blocking commands (the queue's idle-worker wake-up), beside the shared one. */
  readonly reservedConnections: number
  /** The name every connection gives itself (`CLIENT SETNAME`), so operators can tell them apart in `CLIENT LIST`. */
  readonly clientName: string
}

/**
 * The defaults of every setting but the URL.
 *
 * @category constants
 * @since 0.1.0
 */
export const defaults: Omit<RedisConfig, "url"> = {
  prefix: defaultPrefix,
  connectTimeout: Duration.seconds(10),
  commandTimeout: Duration.seconds(10),
  reconnectMaxDelay: Duration.seconds(2),
  reservedConnections: 10,
  clientName: "mandate"
}

/**
 * The URL used when `REDIS_URL` is not set.
 *
 * @category constants
 * @since 0.1.0
 */
export const defaultUrl = "redis://127.0.0.1:6379"

/**
 * `RedisConfig` read from the environment (or any `ConfigProvider`): `REDIS_URL` (default
 * `redis://127.0.0.1:6379`), `MANDATE_REDIS_PREFIX`, `MANDATE_REDIS_CONNECT_TIMEOUT`,
 * `MANDATE_REDIS_COMMAND_TIMEOUT`, `MANDATE_REDIS_RECONNECT_MAX_DELAY` (durations such as `10 seconds`),
 * `MANDATE_REDIS_RESERVED_CONNECTIONS`, `MANDATE_REDIS_CLIENT_NAME`.
 *
 * @category config
 * @since 0.1.0
 */
export const RedisConfig: Config.Config<RedisConfig> = Config.all({
  url: Config.Redacted("REDIS_URL").pipe(Config.withDefault(Redacted.make(defaultUrl))),
  prefix: Config.schema(Prefix, "MANDATE_REDIS_PREFIX").pipe(Config.withDefault(defaults.prefix)),
  connectTimeout: Config.Duration("MANDATE_REDIS_CONNECT_TIMEOUT").pipe(Config.withDefault(defaults.connectTimeout)),
  commandTimeout: Config.Duration("MANDATE_REDIS_COMMAND_TIMEOUT").pipe(Config.withDefault(defaults.commandTimeout)),
  reconnectMaxDelay: Config.Duration("MANDATE_REDIS_RECONNECT_MAX_DELAY").pipe(
    Config.withDefault(defaults.reconnectMaxDelay)
  ),
  reservedConnections: Config.schema(
    Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1000 })),
    "MANDATE_REDIS_RESERVED_CONNECTIONS"
  ).pipe(Config.withDefault(defaults.reservedConnections)),
  clientName: Config.schema(
    Schema.String.check(Schema.isPattern(/^[\x21-\x7e]{1,64}$/, { message: "Expected 1-64 printable characters" })),
    "MANDATE_REDIS_CLIENT_NAME"
  ).pipe(Config.withDefault(defaults.clientName))
})

/**
 * A `RedisConfig` from a URL, with the defaults for every setting not overridden.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeConfig = (
  url: string | Redacted.Redacted = defaultUrl,
  overrides?: Partial<Omit<RedisConfig, "url">>
): RedisConfig => ({
  ...defaults,
  ...overrides,
  url: typeof url === "string" ? Redacted.make(url) : url
})

// Milliseconds for node-redis: whole, at least 1; undefined for "no limit"
const driverMillis = (duration: Duration.Duration): number | undefined => {
  const millis = Duration.toMillis(duration)
  return Number.isFinite(millis) && millis > 0 ? Math.max(1, Math.round(millis)) : undefined
}

/**
 * The wait before reconnection attempt `retries` (0-based): 50 ms doubling up to `maxDelay`, plus up to 10%
 * jitter so that many clients cut off together do not reconnect in lockstep.
 *
 * @category constructors
 * @since 0.1.0
 */
export const reconnectDelay = (retries: number, maxDelay: Duration.Duration, jitter: number): number => {
  const cap = driverMillis(maxDelay) ?? 50
  const base = Math.min(cap, 50 * 2 ** Math.min(retries, 20))
  return Math.round(base * (1 + 0.1 * Math.min(1, Math.max(0, jitter))))
}

type NodeRedisClient = NodeRedis.NodeRedis["Service"]["client"]

// A command in flight under the deadline: settled by its reply or by the watchdog, whichever comes first
interface InFlight {
  readonly deadline: number
  readonly settle: (result: Effect.Effect<unknown, Redis.RedisError>) => void
}

/**
 * `send` and `eval` on the shared connection with a deadline per command, and `subscribe`/`reserve` as `base`
 * has them (blocking commands on reserved connections wait on purpose).
 *
 * A per-call `Effect.timeout` forks a fiber and arms a timer for every command, which halved throughput in our
 * measurements; instead each command registers in a set that one watchdog fiber sweeps on the real clock, and
 * settles it with a `TimeoutError` once overdue. The real clock because a test moving a `TestClock` must not time
 * out commands in flight. The reply to an abandoned command still arrives and is dropped: node-redis matches
 * replies by position, so the connection stays in step.
 *
 * Scripts run as node-redis runs its own: `EVALSHA` with the SHA-1 of the source, and `EVAL` (which also caches
 * the script on the server) when Redis answers `NOSCRIPT`, so a script costs one round trip even right after a
 * restart or a `SCRIPT FLUSH`.
 */
const makeCommands = Effect.fnUntraced(function* (
  base: Redis.Redis["Service"],
  client: NodeRedisClient,
  timeout: Duration.Duration
) {
  const millis = driverMillis(timeout)
  const clock = Clock.Clock.defaultValue()
  const inFlight = new Set<InFlight>()

  if (millis !== undefined) {
    const sweepEvery = Math.min(1_000, Math.max(10, Math.floor(millis / 4)))
    const sweep = Effect.sync(() => {
      const now = clock.currentTimeMillisUnsafe()
      for (const entry of inFlight) {
        if (entry.deadline <= now) {
          entry.settle(
            Effect.fail(
              new Redis.RedisError({ cause: new Cause.TimeoutError(`Redis did not answer within ${millis} ms`) })
            )
          )
        }
      }
    })
    yield* sweep.pipe(
      Effect.repeat(Schedule.spaced(Duration.millis(sweepEvery))),
      Effect.provideService(Clock.Clock, clock),
      Effect.forkScoped
    )
  }

  const run = <A>(args: Array<string>): Effect.Effect<A, Redis.RedisError> =>
    Effect.callback<A, Redis.RedisError>((resume) => {
      let done = false
      const entry: InFlight = {
        deadline: millis === undefined ? Number.POSITIVE_INFINITY : clock.currentTimeMillisUnsafe() + millis,
        settle: (result) => {
          if (done) return
          done = true
          inFlight.delete(entry)
          resume(result as Effect.Effect<A, Redis.RedisError>)
        }
      }
      if (millis !== undefined) inFlight.add(entry)
      client.sendCommand(args).then(
        (reply) => entry.settle(Effect.succeed(reply)),
        (cause) => entry.settle(Effect.fail(new Redis.RedisError({ cause })))
      )
      // interrupted: the reply will be dropped; stop watching it
      return Effect.sync(() => {
        done = true
        inFlight.delete(entry)
      })
    })

  const shas = new WeakMap<object, string>()
  const shaOf = (lua: string, script: object) => {
    let sha = shas.get(script)
    if (sha === undefined) {
      sha = createHash("sha1").update(lua).digest("hex")
      shas.set(script, sha)
    }
    return sha
  }
  const isNoScript = (error: Redis.RedisError) => String(error.cause).includes("NOSCRIPT")

  return Redis.Redis.of({
    send: (command, ...args) => run([command, ...args]),
    eval: (script) => {
      return (...params) => {
        const keys = String(script.numberOfKeys(...params))
        const values = script.params(...params).map(String)
        const sha = shaOf(script.lua, script)
        return run<any>(["EVALSHA", sha, keys, ...values]).pipe(
          Effect.catchIf(isNoScript, () => run<any>(["EVAL", script.lua, keys, ...values]))
        )
      }
    },
    subscribe: base.subscribe,
    reserve: base.reserve
  })
})

/**
 * The client alone: `Redis` (Effect's abstract service, with the command deadline) and `NodeRedis` (the raw
 * node-redis client) over one connection, plus a pool of up to `reservedConnections` for blocking commands.
 *
 * Building the layer connects, and fails with `RedisError` if Redis cannot be reached. Once connected, a lost
 * connection is re-opened with exponential backoff (`reconnectDelay`) while commands wait for it up to the
 * command timeout. Releasing the layer closes every connection.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerClient = (config: RedisConfig): Layer.Layer<Redis.Redis | NodeRedis.NodeRedis, Redis.RedisError> =>
  Layer.effectContext(
    Effect.gen(function* () {
      // Before the first connection succeeds, a failure is final (the layer fails: wrong URL, Redis down);
      // after it, the client keeps reconnecting
      let connected = false
      const connectTimeout = driverMillis(config.connectTimeout)
      const context = yield* Layer.build(
        NodeRedis.layer({
          url: Redacted.value(config.url),
          socket: {
            ...(connectTimeout === undefined ? {} : { connectTimeout }),
            // node-redis calls this synchronously, outside any fiber: Math.random is the jitter source
            reconnectStrategy: (retries: number, cause: Error) =>
              connected ? reconnectDelay(retries, config.reconnectMaxDelay, Math.random()) : cause
          },
          // No per-command timeout in node-redis: it arms an AbortSignal timer per command, which cost more client
          // CPU than the command itself (28 µs against 3 µs per PING in our measurements). makeCommands' watchdog
          // keeps the deadline instead, for the whole round trip
          commandOptions: { timeout: 0 },
          clientInfoTag: "mandate",
          name: config.clientName,
          maxConnections: config.reservedConnections
        }).pipe(Layer.provide(Layer.succeed(Clock.Clock, Clock.Clock.defaultValue())))
      )
      connected = true
      const commands = yield* makeCommands(
        Context.get(context, Redis.Redis),
        Context.get(context, NodeRedis.NodeRedis).client,
        config.commandTimeout
      )
      return Context.add(context, Redis.Redis, commands)
    })
  )

/**
 * Everything the Redis backend provides.
 *
 * @category models
 * @since 0.1.0
 */
export type RedisServices =
  | Queue
  | Agents
  | TaskStore
  | LedgerStore
  | PolicyStore
  | UnitOfWork
  | RateLimit
  | WebhookStore
  | Redis.Redis
  | NodeRedis.NodeRedis

/**
 * What the backend's layer builds besides the client.
 *
 * @category models
 * @since 0.1.0
 */
export interface BackendOptions {
  /** The queue's backoff, sweep interval and retention (its prefix is the backend's). */
  readonly queue?: Omit<QueueOptions, "prefix"> | undefined
  /** The agent registry's status thresholds. */
  readonly agents?: Omit<AgentsOptions, "prefix"> | undefined
  /** Published and activated on a prefix where no policy set is active yet (default: the seed policy). */
  readonly policy?: PolicySet.PolicySet | undefined
}

/**
 * Errors building the backend can fail with: Redis unreachable or refusing, a bad key prefix.
 *
 * @category models
 * @since 0.1.0
 */
export type RedisStartError = Redis.RedisError | InvalidInput | PolicyStoreError

/**
 * The whole Redis backend: one client, and every Redis service over it under the configured prefix: tasks, the
 * queue, agents, the ledger store, policy sets, request budgets and the unit of work that makes a transition's
 * writes one. Build `Ledger.layer` (with kept keys and an `Anchor`) and `Policy.layer` over it, or hand it to
 * `Mandate.layer`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (config: RedisConfig, options?: BackendOptions): Layer.Layer<RedisServices, RedisStartError> => {
  const prefix = { prefix: config.prefix }
  return Layer.mergeAll(
    layerQueue({ ...options?.queue, ...prefix }),
    layerAgents({ ...options?.agents, ...prefix }),
    layerTaskStore(prefix),
    layerLedgerStore(prefix),
    layerPolicyStore({ ...prefix, initial: options?.policy }),
    layerUnitOfWork,
    layerRateLimit(prefix),
    layerWebhookStore(prefix)
  ).pipe(Layer.provideMerge(layerClient(config)))
}

/**
 * The whole Redis backend configured from the environment (`RedisConfig`, or another `Config` of it).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (
  config: Config.Config<RedisConfig> = RedisConfig,
  options?: BackendOptions
): Layer.Layer<RedisServices, RedisStartError | Config.ConfigError> =>
  Layer.unwrap(
    Effect.gen(function* () {
      return layer(yield* config, options)
    })
  )
