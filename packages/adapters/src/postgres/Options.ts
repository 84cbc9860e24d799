/**
 * Where Mandate's tables live: the Postgres schema every Postgres layer takes as an option.
 *
 * All of Mandate's tables sit in one schema (`mandate` unless configured), so several applications, or several
 * test runs, can share one database. Queries name their tables schema-qualified (`"mandate"."policy_sets"`,
 * written `sql(`${schema}.policy_sets`)`) rather than relying on a connection's `search_path`: a statement then
 * means the same on every connection, including one from a host application's own pool or from a
 * transaction-pooling PgBouncer, neither of which keeps our session settings. Migrations are the one place that
 * uses `search_path`, set transaction-locally (see `Migrations`), so that migration files never name a schema.
 *
 * @since 0.1.0
 */
import { decode, type InvalidInput } from "@mandate/core"
import { type Effect, Schema } from "effect"

/**
 * A Postgres schema name Mandate accepts: lowercase letters, digits and `_`, starting with a letter or `_`, at
 * most 63 characters (Postgres' identifier limit). Narrower than Postgres allows on purpose: the name is spliced
 * into `schema.table` identifiers, so it must not contain a dot or need quoting.
 *
 * @category models
 * @since 0.1.0
 */
export const SchemaName = Schema.String.check(
  Schema.isPattern(/^[a-z_][a-z0-9_]{0,62}$/, {
    message: "Expected a schema name: lowercase letters, digits and _, starting with a letter or _, at most 63"
  })
)

/**
 * The schema used when none is configured.
 *
 * @category constants
 * @since 0.1.0
 */
export const defaultSchema = "mandate"

/**
 * Options every per-service Postgres layer takes.
 *
 * @category models
 * @since 0.1.0
 */
export interface PostgresOptions {
  /** The Postgres schema holding Mandate's tables (default `mandate`). */
  readonly schema?: string | undefined
}

/**
 * The validated schema name of `options`; a bad name fails with `InvalidInput` at `$.schema`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const resolveSchema = (options?: PostgresOptions): Effect.Effect<string, InvalidInput> =>
  decode(SchemaName, "$.schema")(options?.schema ?? defaultSchema)
