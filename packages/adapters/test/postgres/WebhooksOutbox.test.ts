import { it } from "@effect/vitest"
import * as Postgres from "@mandate/adapters/postgres"
import { Effect } from "effect"
import { config, describePostgres, dropSchemaOnExit } from "../utils/TestPostgres.ts"
import { survivesStopAfterCommit } from "../utils/WebhooksOutbox.ts"

describePostgres("Webhooks outbox on Postgres", () => {
  it.live("a process that stops right after a commit loses none of its deliveries", () =>
    Effect.gen(function* () {
      const cfg = config({ poolSize: 3 })
      yield* dropSchemaOnExit(cfg.schema)
      yield* survivesStopAfterCommit(() =>
        Postgres.layer(cfg, { queue: { backoff: { baseMs: 5, capMs: 20 }, requeueIntervalMs: 50 } })
      )
    }).pipe(Effect.scoped)
  )
})
