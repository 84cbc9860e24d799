/**
 * The schema migrations shipped with `@mandate/adapters/postgres`, and the migrator that applies them.
 *
 * Migrations are numbered files under `migrations/` (`0001_policy_sets.ts`, …), each default-exporting an Effect
 * that runs one statement per `sql` call. They are imported statically into the record below, so the migrator
 * works from `dist/` without reading the file system. A released migration is never edited: add the next
 * number.
 *
 * `run` applies the pending ones in id order, inside one transaction that
 * 1. lifts `statement_timeout`: an index build on a big table may be slow, and waiting for another process's
 *    migrations must not time out halfway;
 * 2. takes a transaction-scoped advisory lock keyed by the schema name, so two processes starting at once apply
 *    each migration once (the second waits, then finds nothing to do) and the `CREATE SCHEMA` cannot race;
 * 3. creates the schema if needed and sets `search_path` to it with `SET LOCAL`, so migration files write
 *    unqualified table names and the setting ends with the transaction instead of leaking into the pool;
 * 4. runs Effect's `Migrator`, which records applied ids in `mandate_migrations` inside the schema.
 * A migration that fails rolls the whole run back, including the record of the ones before it.
 *
 * Migration files that create functions or triggers must not depend on the caller's `search_path` at run time:
 * declare them with `SET search_path FROM CURRENT`, which pins the schema they were created in.
 *
 * @since 0.1.0
 */
import type { InvalidInput } from "@mandate/core"
import { Effect, Layer } from "effect"
import { Migrator, SqlClient, type SqlError } from "effect/sql"
import m0001 from "./migrations/0001_policy_sets.ts"
import m0002 from "./migrations/0002_tasks.ts"
import m0003 from "./migrations/0003_queue.ts"
import m0004 from "./migrations/0004_ledger.ts"
import m0005 from "./migrations/0005_ledger_head.ts"
import m0006 from "./migrations/0006_webhooks.ts"
import m0007 from "./migrations/0007_ledger_task_chain.ts"
import m0008 from "./migrations/0008_jobs_lean.ts"
import m0009 from "./migrations/0009_jobs_list_by_id.ts"
import m0010 from "./migrations/0010_ledger_append.ts"
import m0011 from "./migrations/0011_ledger_pending.ts"
import m0012 from "./migrations/0012_jobs_prune_by_id.ts"
import m0013 from "./migrations/0013_jobs_bytewise_keys.ts"
import m0014 from "./migrations/0014_jobs_finished_table.ts"
import { type PostgresOptions, resolveSchema } from "./Options.ts"

/**
 * Every migration, by `<id>_<name>`. Append only.
 *
 * @category migrations
 * @since 0.1.0
 */
export const migrations = {
  "0001_policy_sets": m0001,
  "0002_tasks": m0002,
  "0003_queue": m0003,
  "0004_ledger": m0004,
  "0005_ledger_head": m0005,
  "0006_webhooks": m0006,
  "0007_ledger_task_chain": m0007,
  "0008_jobs_lean": m0008,
  "0009_jobs_list_by_id": m0009,
  "0010_ledger_append": m0010,
  "0011_ledger_pending": m0011,
  "0012_jobs_prune_by_id": m0012,
  "0013_jobs_bytewise_keys": m0013,
  "0014_jobs_finished_table": m0014
} as const

/**
 * The table, inside the configured schema, recording which migrations ran.
 *
 * @category migrations
 * @since 0.1.0
 */
export const migrationsTable = "mandate_migrations"

// First half of the two-int advisory lock key ("MNDT"); the second half is hashtext(schema)
const lockClass = 0x4d4e4454

const migrate = Migrator.make({})({ loader: Migrator.fromRecord(migrations), table: migrationsTable })

/**
 * Applies the pending migrations to the schema; returns the `[id, name]` of each one applied (empty when the
 * schema was up to date or another process applied them first).
 *
 * @category migrations
 * @since 0.1.0
 */
export const run = (
  options?: PostgresOptions
): Effect.Effect<
  ReadonlyArray<readonly [id: number, name: string]>,
  Migrator.MigrationError | SqlError.SqlError | InvalidInput,
  SqlClient.SqlClient
> =>
  Effect.gen(function* () {
    const schema = yield* resolveSchema(options)
    const sql = yield* SqlClient.SqlClient
    return yield* Effect.gen(function* () {
      yield* sql`SET LOCAL statement_timeout TO 0`
      yield* sql`SELECT pg_advisory_xact_lock(${lockClass}, hashtext(${schema}))`
      yield* sql`CREATE SCHEMA IF NOT EXISTS ${sql(schema)}`
      yield* sql`SET LOCAL search_path TO ${sql(schema)}`
      // The Migrator's own transaction nests as a savepoint inside this one
      return yield* migrate
    }).pipe(sql.withTransaction, Effect.withSpan("Postgres.migrate", { attributes: { schema } }))
  })

/**
 * Runs the migrations when the layer is built; the services built after it find their tables.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options?: PostgresOptions
): Layer.Layer<never, Migrator.MigrationError | SqlError.SqlError | InvalidInput, SqlClient.SqlClient> =>
  Layer.effectDiscard(run(options))
