/**
 * Vitest global setup (the `adapters` and `server` projects): probes PostgreSQL once per run, prints the one
 * warning line when it is unreachable (unless `CI=true`, where the tests fail instead), and hands the result to
 * the test files (`inject("mandatePostgresUnreachable")`, read by `TestPostgres`).
 *
 * @since 0.1.0
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import type { TestProject } from "vitest/node"
import { announce, probe, shown } from "./backendProbe.ts"

/** The database the Postgres tests run against. */
export const url = process.env.DATABASE_URL ?? "postgres://root@127.0.0.1:5432/test"

/** `url` with its password masked, for messages. */
export const shownUrl = shown(url, "PostgreSQL")

/** A pool of its own on the test database (`maxConnections` of them), e.g. to drop a schema. */
export const client = (maxConnections: number) =>
  PgClient.layer({ url: Redacted.make(url), maxConnections, connectTimeout: "3 seconds" })

export default (project: TestProject): Promise<void> =>
  announce(project, {
    backend: "PostgreSQL",
    url,
    key: "mandatePostgresUnreachable",
    check: probe(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`).pipe(Effect.provide(client(1))))
  })
