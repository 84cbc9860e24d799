import { assert, it } from "@effect/vitest"
import * as Postgres from "@mandate/adapters/postgres"
import { layerAgents, makeAgents } from "@mandate/adapters/postgres"
import { AgentId, Agents } from "@mandate/core"
import { suite } from "@mandate/core/conformance/agents"
import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { config, describePostgres, dropSchemaOnExit, TestPostgres } from "../utils/TestPostgres.ts"

// The database keeps the time: real waits, short thresholds
const thresholds = { degradedAfterMs: 400, offlineAfterMs: 900 }

describePostgres("Agents on Postgres", () => {
  suite(
    "postgres",
    TestPostgres.layerWith((options) => layerAgents({ ...options, ...thresholds })),
    { testClock: false, ...thresholds }
  )

  it.live("Postgres.layer provides the registry; two processes see one agent with one status", () =>
    Effect.gen(function* () {
      // Wide thresholds, and the heartbeat's age set in the database (the row backdated) instead of waited for:
      // no elapsed time decides a status here, however slow the machine
      const wide = { degradedAfterMs: 60_000, offlineAfterMs: 3_600_000 }
      const cfg = config()
      yield* dropSchemaOnExit(cfg.schema)
      const here = Context.get(yield* Layer.build(Postgres.layer(cfg, { agents: wide })), Agents)
      const otherClient = yield* Layer.build(TestPostgres.otherClient())
      const there = yield* makeAgents({ schema: cfg.schema, ...wide }).pipe(Effect.provide(otherClient))
      const id = AgentId.make(`agent-${crypto.randomUUID()}`)
      yield* here.register({ id, pool: "gpu", capabilities: ["a"], labels: { zone: "z\u0000" } })
      assert.deepStrictEqual(yield* there.get(id), yield* here.get(id))
      assert.strictEqual((yield* here.get(id)).status, "online")
      // its last heartbeat two minutes ago, by the database's clock: degraded for both processes
      yield* Effect.flatMap(
        SqlClient.SqlClient,
        (sql) =>
          sql`UPDATE ${sql(`${cfg.schema}.agents`)} SET last_heartbeat_at = last_heartbeat_at - 120000 WHERE id = ${id}`
      ).pipe(Effect.provide(otherClient))
      assert.strictEqual((yield* there.get(id)).status, "degraded")
      assert.deepStrictEqual(yield* there.get(id), yield* here.get(id))
      yield* there.heartbeat(id, 2)
      assert.deepStrictEqual([(yield* here.get(id)).status, (yield* here.get(id)).load], ["online", 2])
    })
  )
})
