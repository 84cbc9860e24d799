/**
 * The server's Redis runs: `REDIS_URL` or `redis://127.0.0.1:6379`, a fresh key prefix per server (its keys
 * deleted when it stops), a visible skip when unreachable, a failure instead under `CI=true`.
 */

import { describe, it } from "@effect/vitest"
import * as RedisBackend from "@mandate/adapters/redis"
import { Duration, Effect, Layer } from "effect"
import { Redis } from "effect/persistence"
import * as Stores from "../../src/Stores.ts"
import { fastChain, fastRuntime } from "./TestServer.ts"

const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"

const client = (prefix: string) =>
  RedisBackend.layerClient(
    RedisBackend.makeConfig(url, { prefix, connectTimeout: Duration.seconds(3), reservedConnections: 1 })
  )

const unreachable: string | undefined = await Effect.runPromise(
  Effect.flatMap(Redis.Redis, (redis) => redis.send("PING")).pipe(
    Effect.provide(client("mandate_probe:")),
    Effect.timeout("5 seconds"),
    Effect.as(undefined),
    Effect.catchCause((cause) => Effect.succeed(String(cause).split("\n")[0]))
  )
)

/** A describe block that needs Redis: skipped with one warning when unreachable, failing under CI=true. */
export const describeRedis = (name: string, fn: () => void): void => {
  if (unreachable === undefined) describe(name, fn)
  else if (process.env.CI === "true") {
    describe(name, () => {
      it(`needs Redis at ${url}`, () => {
        throw new Error(`Redis is required with CI=true but unreachable: ${unreachable}`)
      })
    })
  } else {
    console.warn(`[mandate] Skipping the server's Redis run: cannot reach ${url} (${unreachable})`)
    describe.skip(name, fn)
  }
}

const deleteKeys = (prefix: string) =>
  Effect.gen(function* () {
    const redis = yield* Redis.Redis
    let cursor = "0"
    do {
      const [next, keys] = yield* redis.send<[string, ReadonlyArray<string>]>(
        "SCAN",
        cursor,
        "MATCH",
        `${prefix}*`,
        "COUNT",
        "1000"
      )
      if (keys.length > 0) yield* redis.send("UNLINK", ...keys)
      cursor = next
    } while (cursor !== "0")
  }).pipe(Effect.provide(client(prefix)), Effect.ignore)

/** Every service on the Redis backend, under a fresh prefix deleted afterwards. */
export const services = (options?: Stores.StoresOptions) =>
  Layer.unwrap(
    Effect.sync(() => {
      const prefix = `mandate_test:${crypto.randomUUID().replaceAll("-", "")}:`
      const config = RedisBackend.makeConfig(url, {
        prefix,
        reservedConnections: 4,
        clientName: `mandate-server-test-${prefix.slice(13, 21)}`
      })
      return Stores.Readiness.layer({ store: "redis", anchor: "qubic-mock" }).pipe(
        Layer.provideMerge(Stores.layerRedis(config, { runtime: fastRuntime, anchor: fastChain(), ...options })),
        Layer.provideMerge(Layer.effectDiscard(Effect.addFinalizer(() => deleteKeys(prefix))))
      )
    })
  )
