/**
 * Test utilities for the Redis layers: a real server, a fresh key prefix per layer build, a visible skip.
 *
 * - Redis is `REDIS_URL`, or `redis://127.0.0.1:6379`.
 * - `TestRedis.layer` provides the client (`Redis` + `NodeRedis`) and a fresh prefix `mandate_test:<uuid>:`,
 *   whose keys are deleted when the layer is released; `TestRedis.layerWith(f)` builds a per-service layer over
 *   it: `TestRedis.layerWith((options) => Redis.layerTaskStore(options))`.
 * - `describeRedis(name, fn)` runs the block when the server answers. When it does not, the block is skipped
 *   (`redisSetup.ts`, the project's global setup, printed the one warning line saying why), except under
 *   `CI=true`, where a failing test takes its place.
 *
 * @since 0.1.0
 */
import type { NodeRedis } from "@effect/platform-node"
import { layerClient, makeConfig, type RedisConfig, type RedisOptions } from "@mandate/adapters/redis"
import { Context, Effect, Layer, type Scope } from "effect"
import { Redis } from "effect/persistence"
import { inject } from "vitest"
import { describeNeeding } from "./backendProbe.ts"
import { url } from "./redisSetup.ts"

export { url }

/** A key prefix no other test run uses. */
export const freshPrefix = (): string => `mandate_test:${crypto.randomUUID().replaceAll("-", "")}:`

/** A `RedisConfig` for the test server with a fresh prefix and a small reserved pool (2 shared cores). */
export const config = (overrides?: Partial<Omit<RedisConfig, "url">>): RedisConfig =>
  makeConfig(url, {
    prefix: freshPrefix(),
    reservedConnections: 4,
    clientName: `mandate-test-${crypto.randomUUID().slice(0, 8)}`,
    ...overrides
  })

const unreachable = inject("mandateRedisUnreachable")
if (unreachable === undefined) {
  throw new Error("TestRedis needs test/utils/redisSetup.ts as the vitest project's globalSetup")
}

/** Whether the tests can reach Redis (probed once per run by `redisSetup.ts`). */
export const reachable = unreachable === null

/**
 * A describe block that needs Redis: run when reachable, skipped with a warning when not, failing when not and
 * `CI=true`.
 */
export const describeRedis: (name: string, fn: () => void) => void = describeNeeding("Redis", url, unreachable)

/**
 * Every key under `prefix` (SCAN: tests only, never a service's hot path).
 */
export const keysUnder = (prefix: string): Effect.Effect<ReadonlyArray<string>, Redis.RedisError, Redis.Redis> =>
  Effect.gen(function* () {
    const redis = yield* Redis.Redis
    const found: Array<string> = []
    let cursor = "0"
    do {
      const [next, batch] = yield* redis.send<[string, ReadonlyArray<string>]>(
        "SCAN",
        cursor,
        "MATCH",
        `${prefix}*`,
        "COUNT",
        "1000"
      )
      found.push(...batch)
      cursor = next
    } while (cursor !== "0")
    return found
  })

/** Deletes every key under `prefix`. */
export const deleteKeys = (prefix: string): Effect.Effect<void, never, Redis.Redis> =>
  Effect.gen(function* () {
    const redis = yield* Redis.Redis
    const keys = yield* keysUnder(prefix)
    for (let i = 0; i < keys.length; i += 500) yield* redis.send("UNLINK", ...keys.slice(i, i + 500))
  }).pipe(Effect.orDie)

/** Deletes every key under `prefix` over a connection of its own (cleanup only). */
export const deleteKeysNow = (prefix: string): Effect.Effect<void> =>
  deleteKeys(prefix).pipe(Effect.provide(layerClient(makeConfig(url, { reservedConnections: 1 }))), Effect.ignoreCause)

/** Deletes every key under `prefix` when the current scope closes (for tests that build their own backend). */
export const deleteKeysOnExit = (prefix: string): Effect.Effect<void, never, Scope.Scope> =>
  Effect.addFinalizer(() => deleteKeysNow(prefix))

/**
 * The prefix a `TestRedis.layer` build uses (and will clear), with the config that reaches it.
 */
export class TestRedis extends Context.Service<TestRedis, { readonly prefix: string; readonly config: RedisConfig }>()(
  "@mandate/adapters/test/TestRedis"
) {
  /**
   * A client on the test server and a fresh prefix whose keys are deleted on release. Each build gets its own.
   */
  static readonly layer: Layer.Layer<TestRedis | Redis.Redis | NodeRedis.NodeRedis, Redis.RedisError> = Layer.unwrap(
    Effect.sync(() => {
      const cfg = config()
      return Layer.effect(
        TestRedis,
        Effect.acquireRelease(Effect.succeed({ prefix: cfg.prefix, config: cfg }), () => deleteKeys(cfg.prefix))
      ).pipe(Layer.provideMerge(layerClient(cfg)))
    })
  )

  /**
   * A layer built by `f` over `TestRedis.layer`: `f` receives the options naming the fresh prefix.
   */
  static readonly layerWith = <A, E, R>(
    f: (options: RedisOptions) => Layer.Layer<A, E, R>
  ): Layer.Layer<
    A | TestRedis | Redis.Redis | NodeRedis.NodeRedis,
    E | Redis.RedisError,
    Exclude<R, TestRedis | Redis.Redis | NodeRedis.NodeRedis>
  > =>
    Layer.unwrap(
      Effect.gen(function* () {
        const { prefix } = yield* TestRedis
        return f({ prefix })
      })
    ).pipe(Layer.provideMerge(TestRedis.layer))

  /**
   * A second, independent client on the test server: another process, as far as Redis can tell.
   */
  static readonly otherClient = (): Layer.Layer<Redis.Redis | NodeRedis.NodeRedis> =>
    layerClient(makeConfig(url, { reservedConnections: 2 })).pipe(Layer.orDie)
}
