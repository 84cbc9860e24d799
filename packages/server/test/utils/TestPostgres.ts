/**
 * The server's Postgres runs: `DATABASE_URL` or `postgres://root@127.0.0.1:5432/test`, a fresh schema per
 * server (dropped when it stops), a visible skip when unreachable, a failure instead under `CI=true`.
 */
import { PgClient } from "@effect/sql-pg"
import { describe, it } from "@effect/vitest"
import * as Postgres from "@mandate/adapters/postgres"
import { Effect, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import * as Stores from "../../src/Stores.ts"
import { fastChain, fastRuntime } from "./TestServer.ts"

const url = process.env.DATABASE_URL ?? "postgres://root@127.0.0.1:5432/test"

/** A pool of its own on the test database (e.g. to act as a database administrator beside the server). */
export const client = (maxConnections: number) =>
  PgClient.layer({ url: Redacted.make(url), maxConnections, connectTimeout: "3 seconds" })

const unreachable: string | undefined = await Effect.runPromise(
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`).pipe(
    Effect.provide(client(1)),
    Effect.timeout("5 seconds"),
    Effect.as(undefined),
    Effect.catchCause((cause) => Effect.succeed(String(cause).split("\n")[0]))
  )
)

/** A describe block that needs PostgreSQL: skipped with one warning when unreachable, failing under CI=true. */
export const describePostgres = (name: string, fn: () => void): void => {
  if (unreachable === undefined) describe(name, fn)
  else if (process.env.CI === "true") {
    describe(name, () => {
      it(`needs PostgreSQL at ${url}`, () => {
        throw new Error(`PostgreSQL is required with CI=true but unreachable: ${unreachable}`)
      })
    })
  } else {
    console.warn(`[mandate] Skipping the server's PostgreSQL run: cannot reach ${url} (${unreachable})`)
    describe.skip(name, fn)
  }
}

/**
 * Every service the Postgres backend has (the rest on memory), in a fresh schema dropped afterwards (named
 * `schema` when given, so a test can find its own connections), with any other store options given.
 */
export const services = ({ schema: named, ...options }: Stores.StoresOptions & { readonly schema?: string } = {}) =>
  Layer.unwrap(
    Effect.sync(() => {
      const schema = named ?? `mandate_test_${crypto.randomUUID().replaceAll("-", "")}`
      const drop = Layer.effectDiscard(
        Effect.addFinalizer(() =>
          Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`).pipe(
            Effect.provide(client(1)),
            Effect.ignore
          )
        )
      )
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
  const schema = `mandate_test_${crypto.randomUUID().replaceAll("-", "")}`
  yield* Effect.addFinalizer(() =>
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`).pipe(
      Effect.provide(client(1)),
      Effect.ignore
    )
  )
  return Postgres.makeConfig(url, { schema, poolSize: 3 })
})
