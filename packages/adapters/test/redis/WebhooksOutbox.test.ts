import { it } from "@effect/vitest"
import * as Redis from "@mandate/adapters/redis"
import { Effect } from "effect"
import { config, deleteKeysOnExit, describeRedis } from "../utils/TestRedis.ts"
import { survivesStopAfterCommit } from "../utils/WebhooksOutbox.ts"

describeRedis("Webhooks outbox on Redis", () => {
  it.live("a process that stops right after a commit loses none of its deliveries", () =>
    Effect.gen(function* () {
      const cfg = config()
      yield* deleteKeysOnExit(cfg.prefix)
      yield* survivesStopAfterCommit(() =>
        Redis.layer(cfg, { queue: { backoff: { baseMs: 5, capMs: 20 }, requeueIntervalMs: 50 } })
      )
    }).pipe(Effect.scoped)
  )
})
