/**
 * The server's Postgres runs, on the adapters' test support (`packages/adapters/test/utils`): `DATABASE_URL` or
 * `postgres://root@127.0.0.1:5432/test`, probed once per run by the project's global setup, a fresh schema per
 * server (dropped when it stops), a visible skip when unreachable, a failure instead under `CI=true`.
 */
import * as Postgres from "@mandate/adapters/postgres"
import { Effect, Layer } from "effect"
import { client, describePostgres, dropSchemaNow, freshSchema, url } from "../../../adapters/test/utils/TestPostgres.ts"
import * as Stores from "../../src/Stores.ts"
import { fastChain, fastRuntime } from "./TestServer.ts"

export { client, describePostgres, dropSchemaNow, freshSchema, url }

/**
 * Every service the Postgres backend has (the rest on memory), in a fresh schema dropped afterwards (named
 * `schema` when given, so a test can find its own connections), with any other store options given.
 */
export const services = ({ schema: named, ...options }: Stores.StoresOptions & { readonly schema?: string } = {}) =>
  Layer.unwrap(
    Effect.sync(() => {
      const schema = named ?? freshSchema()
      const drop = Layer.effectDiscard(Effect.addFinalizer(() => dropSchemaNow(schema)))
      const config = Postgres.makeConfig(url, { schema, poolSize: 4 })
      return Stores.Readiness.layer({ store: "postgres", anchor: "qubic-mock" }).pipe(
        Layer.provideMerge(Stores.layerPg(config, { runtime: fastRuntime, anchor: fastChain(), ...options })),
        Layer.provideMerge(drop)
      )
    })
  )

/**
 * A config on a fresh schema, dropped when the scope closes: for tests that start several server processes (each
 * `Stores.layerPg` its own pool) on one database.
 */
export const freshConfig = Effect.gen(function* () {
  const schema = freshSchema()
  yield* Effect.addFinalizer(() => dropSchemaNow(schema))
  return Postgres.makeConfig(url, { schema, poolSize: 3 })
})
