/**
 * Test utilities for the Postgres layers: a real server, a fresh schema per layer build, a visible skip.
 *
 * - The database is `DATABASE_URL`, or `postgres://root@127.0.0.1:5432/test`.
 * - `TestPostgres.layer` provides the pool (`PgClient` + `SqlClient`) and a freshly migrated schema
 *   `mandate_test_<uuid>`, dropped when the layer is released; `TestPostgres.layerWith(f)` builds a per-service
 *   layer over it: `TestPostgres.layerWith((options) => Postgres.layerQueue(options))`.
 * - `describePostgres(name, fn)` runs the block when the server answers. When it does not, the block is skipped
 *   (`postgresSetup.ts`, the project's global setup, printed the one warning line saying why), except under
 *   `CI=true`, where a failing test takes its place.
 *
 * @since 0.1.0
 */
import type { PgClient } from "@effect/sql-pg"
import {
  layerClient,
  Migrations,
  makeConfig,
  type PostgresConfig,
  type PostgresOptions,
  type PostgresStartError
} from "@mandate/adapters/postgres"
import { Context, Effect, Layer, type Scope } from "effect"
import { SqlClient } from "effect/sql"
import { inject } from "vitest"
import { describeNeeding } from "./backendProbe.ts"
import { client, url } from "./postgresSetup.ts"

export { client, url }

/** A schema name no other test run uses. */
export const freshSchema = (): string => `mandate_test_${crypto.randomUUID().replaceAll("-", "")}`

/** A `PostgresConfig` for the test database with a fresh schema and a small pool (2 shared cores). */
export const config = (overrides?: Partial<Omit<PostgresConfig, "url">>): PostgresConfig =>
  makeConfig(url, { schema: freshSchema(), poolSize: 5, ...overrides })

const unreachable = inject("mandatePostgresUnreachable")
if (unreachable === undefined) {
  throw new Error("TestPostgres needs test/utils/postgresSetup.ts as the vitest project's globalSetup")
}

/** Whether the tests can reach PostgreSQL (probed once per run by `postgresSetup.ts`). */
export const reachable = unreachable === null

/**
 * A describe block that needs PostgreSQL: run when reachable, skipped with a warning when not, failing when
 * not and `CI=true`.
 */
export const describePostgres: (name: string, fn: () => void) => void = describeNeeding("PostgreSQL", url, unreachable)

const dropSchema = (schema: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`).pipe(Effect.orDie)

/** Drops `schema` (and everything in it) over a connection of its own; failures are ignored (cleanup only). */
export const dropSchemaNow = (schema: string): Effect.Effect<void> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`).pipe(
    Effect.provide(client(1)),
    Effect.ignoreCause
  )

/** Drops `schema` when the current scope closes (for tests that build their own backend on a fresh schema). */
export const dropSchemaOnExit = (schema: string): Effect.Effect<void, never, Scope.Scope> =>
  Effect.addFinalizer(() => dropSchema(schema).pipe(Effect.provide(TestPostgres.otherClient())))

/**
 * The schema a `TestPostgres.layer` build migrated (and will drop), with the config that reaches it.
 */
export class TestPostgres extends Context.Service<
  TestPostgres,
  { readonly schema: string; readonly config: PostgresConfig }
>()("@mandate/adapters/test/TestPostgres") {
  /**
   * A pool on the test database and a fresh, migrated schema, dropped on release. Each build gets its own schema.
   */
  static readonly layer: Layer.Layer<TestPostgres | PgClient.PgClient | SqlClient.SqlClient, PostgresStartError> =
    Layer.unwrap(
      Effect.sync(() => {
        const cfg = config()
        return Layer.effect(
          TestPostgres,
          Effect.acquireRelease(
            Effect.as(Migrations.run({ schema: cfg.schema }), { schema: cfg.schema, config: cfg }),
            () => dropSchema(cfg.schema)
          )
        ).pipe(Layer.provideMerge(layerClient(cfg)))
      })
    )

  /**
   * A layer built by `f` over `TestPostgres.layer`: `f` receives the options naming the fresh schema.
   */
  static readonly layerWith = <A, E, R>(
    f: (options: PostgresOptions) => Layer.Layer<A, E, R>
  ): Layer.Layer<
    A | TestPostgres | PgClient.PgClient | SqlClient.SqlClient,
    E | PostgresStartError,
    Exclude<R, TestPostgres | PgClient.PgClient | SqlClient.SqlClient>
  > =>
    Layer.unwrap(
      Effect.gen(function* () {
        const { schema } = yield* TestPostgres
        return f({ schema })
      })
    ).pipe(Layer.provideMerge(TestPostgres.layer))

  /**
   * A second, independent pool on the test database: another process, as far as the server can tell.
   */
  static readonly otherClient = (): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, never> =>
    layerClient(makeConfig(url, { poolSize: 3 })).pipe(Layer.orDie)
}
