/**
 * The server's Redis runs, on the adapters' test support (`packages/adapters/test/utils`): `REDIS_URL` or
 * `redis://127.0.0.1:6379`, probed once per run by the project's global setup, a fresh key prefix per server
 * (its keys deleted when it stops), a visible skip when unreachable, a failure instead under `CI=true`.
 */
import * as RedisBackend from "@mandate/adapters/redis"
import { Effect, Layer } from "effect"
import { deleteKeysNow, describeRedis, freshPrefix, url } from "../../../adapters/test/utils/TestRedis.ts"
import * as Stores from "../../src/Stores.ts"
import { fastChain, fastRuntime } from "./TestServer.ts"

export { deleteKeysNow, describeRedis, freshPrefix, url }

/** Every service on the Redis backend, under a fresh prefix deleted afterwards. */
export const services = (options?: Stores.StoresOptions) =>
  Layer.unwrap(
    Effect.sync(() => {
      const prefix = freshPrefix()
      const config = RedisBackend.makeConfig(url, {
        prefix,
        reservedConnections: 4,
        clientName: `mandate-server-test-${prefix.slice(13, 21)}`
      })
      return Stores.Readiness.layer({ store: "redis", anchor: "qubic-mock" }).pipe(
        Layer.provideMerge(Stores.layerRedis(config, { runtime: fastRuntime, anchor: fastChain(), ...options })),
        Layer.provideMerge(Layer.effectDiscard(Effect.addFinalizer(() => deleteKeysNow(prefix))))
      )
    })
  )
