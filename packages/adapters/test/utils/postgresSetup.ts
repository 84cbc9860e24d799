/**
 * Vitest global setup of the `adapters` project: probes PostgreSQL once per run, prints the one warning line
 * when it is unreachable (unless `CI=true`, where the tests fail instead), and hands the result to the test
 * files (`inject("mandatePostgresUnreachable")`, read by `TestPostgres`).
 *
 * @since 0.1.0
 */
import { PgClient } from "@effect/sql-pg"
import { Cause, Effect, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import type { TestProject } from "vitest/node"

declare module "vitest" {
  export interface ProvidedContext {
    /** Why PostgreSQL cannot be reached, or null when it can. */
    readonly mandatePostgresUnreachable: string | null
  }
}

/** The database the Postgres tests run against. */
export const url = process.env.DATABASE_URL ?? "postgres://root@127.0.0.1:5432/test"

/** `url` with its password masked, for messages. */
export const shownUrl = (() => {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = "***"
    return parsed.toString()
  } catch {
    return "(unparsable DATABASE_URL)"
  }
})()

// The innermost message of an error chain: "connect ECONNREFUSED 127.0.0.1:5432" rather than three wrappers
const rootMessage = (error: unknown): string => {
  let current = error
  while (current instanceof Error && current.cause instanceof Error) current = current.cause
  return current instanceof Error ? current.message : String(current)
}

/** Why PostgreSQL at `url` does not answer `SELECT 1`, or undefined when it does. */
export const probe: Effect.Effect<string | undefined> = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`SELECT 1`
}).pipe(
  Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 1, connectTimeout: "3 seconds" })),
  Effect.timeout("5 seconds"),
  Effect.as(undefined),
  Effect.catchCause((cause) => Effect.succeed(rootMessage(Cause.squash(cause))))
)

export default async function setup(project: TestProject): Promise<void> {
  const unreachable = await Effect.runPromise(probe)
  if (unreachable !== undefined && process.env.CI !== "true") {
    console.warn(
      `[mandate] Skipping the PostgreSQL tests: cannot reach ${shownUrl} (${unreachable}). ` +
        "Start PostgreSQL or set DATABASE_URL; with CI=true they fail instead."
    )
  }
  project.provide("mandatePostgresUnreachable", unreachable ?? null)
}
