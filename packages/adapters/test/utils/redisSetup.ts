/**
 * Vitest global setup of the `adapters` project: probes Redis once per run, prints the one warning line when it
 * is unreachable (unless `CI=true`, where the tests fail instead), and hands the result to the test files
 * (`inject("mandateRedisUnreachable")`, read by `TestRedis`).
 *
 * @since 0.1.0
 */
import { NodeRedis } from "@effect/platform-node"
import { Cause, Effect, Layer, References } from "effect"
import { Redis } from "effect/persistence"
import type { TestProject } from "vitest/node"

declare module "vitest" {
  export interface ProvidedContext {
    /** Why Redis cannot be reached, or null when it can. */
    readonly mandateRedisUnreachable: string | null
  }
}

/** The Redis the tests run against. */
export const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"

/** `url` with its password masked, for messages. */
export const shownUrl = (() => {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = "***"
    return parsed.toString()
  } catch {
    return "(unparsable REDIS_URL)"
  }
})()

// The innermost message of an error chain: "connect ECONNREFUSED 127.0.0.1:6379" rather than the wrappers
const rootMessage = (error: unknown): string => {
  let current = error
  while (current instanceof Error && current.cause instanceof Error) current = current.cause
  if (current instanceof AggregateError && current.errors[0] instanceof Error) return current.errors[0].message
  return current instanceof Error ? current.message : String(current)
}

/** Why Redis at `url` does not answer `PING`, or undefined when it does. */
export const probe: Effect.Effect<string | undefined> = Effect.gen(function* () {
  const redis = yield* Redis.Redis
  yield* redis.send("PING")
}).pipe(
  Effect.provide(NodeRedis.layer({ url, socket: { connectTimeout: 3_000 } })),
  // the client's own warnings would add lines to the one this setup prints
  Effect.provide(Layer.succeed(References.MinimumLogLevel, "None")),
  Effect.timeout("5 seconds"),
  Effect.as(undefined),
  Effect.catchCause((cause) => Effect.succeed(rootMessage(Cause.squash(cause))))
)

export default async function setup(project: TestProject): Promise<void> {
  const unreachable = await Effect.runPromise(probe)
  if (unreachable !== undefined && process.env.CI !== "true") {
    console.warn(
      `[mandate] Skipping the Redis tests: cannot reach ${shownUrl} (${unreachable}). ` +
        "Start Redis or set REDIS_URL; with CI=true they fail instead."
    )
  }
  project.provide("mandateRedisUnreachable", unreachable ?? null)
}
