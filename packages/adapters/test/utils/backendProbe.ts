/**
 * What the Postgres and Redis test supports share: the probe's result handed from vitest's global setup to the
 * test files, the one warning line when a server is unreachable, and the describe block that runs, skips or
 * (with `CI=true`) fails. Used by the `adapters` and `server` projects (`vitest.workspace.ts` names
 * `postgresSetup.ts` and `redisSetup.ts` as their global setup); test-only, never shipped.
 *
 * @since 0.1.0
 */
import { describe, it } from "@effect/vitest"
import { Cause, Effect } from "effect"
import type { TestProject } from "vitest/node"

/** The backends a test may need, with the environment variable naming each one's URL. */
export type Backend = "PostgreSQL" | "Redis"

const envName: Record<Backend, string> = { PostgreSQL: "DATABASE_URL", Redis: "REDIS_URL" }

/** Whether the tests must not skip an unreachable server (they fail instead). */
export const required = (): boolean => process.env.CI === "true"

/** `url` with its password masked, for messages. */
export const shown = (url: string, backend: Backend): string => {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = "***"
    return parsed.toString()
  } catch {
    return `(unparsable ${envName[backend]})`
  }
}

// The innermost message of an error chain: "connect ECONNREFUSED 127.0.0.1:5432" rather than the wrappers
const rootMessage = (error: unknown): string => {
  let current = error
  while (current instanceof Error && current.cause instanceof Error) current = current.cause
  if (current instanceof AggregateError && current.errors[0] instanceof Error) return current.errors[0].message
  return current instanceof Error ? current.message : String(current)
}

/** Why `check` does not succeed within five seconds, or undefined when it does. */
export const probe = <E>(check: Effect.Effect<unknown, E>): Effect.Effect<string | undefined> =>
  check.pipe(
    Effect.timeout("5 seconds"),
    Effect.as(undefined),
    Effect.catchCause((cause) => Effect.succeed(rootMessage(Cause.squash(cause))))
  )

/**
 * The global setup's work: probe once per run, print the one warning line when unreachable (unless `CI=true`),
 * and hand the answer to the test files under `key`.
 */
export const announce = async (
  project: TestProject,
  options: {
    readonly backend: Backend
    readonly url: string
    readonly key: "mandatePostgresUnreachable" | "mandateRedisUnreachable"
    readonly check: Effect.Effect<string | undefined>
  }
): Promise<void> => {
  const unreachable = await Effect.runPromise(options.check)
  if (unreachable !== undefined && !required()) {
    console.warn(
      `[mandate] Skipping the ${options.backend} tests of ${project.name}: cannot reach ` +
        `${shown(options.url, options.backend)} (${unreachable}). Start ${options.backend} or set ` +
        `${envName[options.backend]}; with CI=true they fail instead.`
    )
  }
  project.provide(options.key, unreachable ?? null)
}

/**
 * A describe block that needs `backend`: run when reachable, skipped when not (the global setup printed why),
 * and in its place one failing test when not and `CI=true`.
 */
export const describeNeeding =
  (backend: Backend, url: string, unreachable: string | null) =>
  (name: string, fn: () => void): void => {
    if (unreachable === null) describe(name, fn)
    else if (required()) {
      const where = shown(url, backend)
      describe(name, () => {
        it(`needs ${backend} at ${where} (CI=true)`, () => {
          throw new Error(`${backend} is required with CI=true but unreachable at ${where}: ${unreachable}`)
        })
      })
    } else describe.skip(name, fn)
  }

declare module "vitest" {
  export interface ProvidedContext {
    /** Why PostgreSQL cannot be reached, or null when it can. */
    readonly mandatePostgresUnreachable: string | null
    /** Why Redis cannot be reached, or null when it can. */
    readonly mandateRedisUnreachable: string | null
  }
}
