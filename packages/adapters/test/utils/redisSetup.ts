/**
 * Vitest global setup (the `adapters` and `server` projects): probes Redis once per run, prints the one warning
 * line when it is unreachable (unless `CI=true`, where the tests fail instead), and hands the result to the test
 * files (`inject("mandateRedisUnreachable")`, read by `TestRedis`).
 *
 * @since 0.1.0
 */
import { NodeRedis } from "@effect/platform-node"
import { Effect, Layer, References } from "effect"
import { Redis } from "effect/persistence"
import type { TestProject } from "vitest/node"
import { announce, probe, shown } from "./backendProbe.ts"

/** The Redis the tests run against. */
export const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"

/** `url` with its password masked, for messages. */
export const shownUrl = shown(url, "Redis")

export default (project: TestProject): Promise<void> =>
  announce(project, {
    backend: "Redis",
    url,
    key: "mandateRedisUnreachable",
    check: probe(
      Effect.flatMap(Redis.Redis, (redis) => redis.send("PING")).pipe(
        Effect.provide(NodeRedis.layer({ url, socket: { connectTimeout: 3_000 } })),
        // the client's own warnings would add lines to the one this setup prints
        Effect.provide(Layer.succeed(References.MinimumLogLevel, "None"))
      )
    )
  })
