import { assert, it } from "@effect/vitest"
import * as Postgres from "@mandate/adapters/postgres"
import { layerAgents, makeAgents } from "@mandate/adapters/postgres"
import { AgentId, Agents } from "@mandate/core"
import { suite } from "@mandate/core/conformance/agents"
import { Context, Effect, Layer } from "effect"
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
      const cfg = config()
      yield* dropSchemaOnExit(cfg.schema)
      const here = Context.get(yield* Layer.build(Postgres.layer(cfg, { agents: thresholds })), Agents)
      const there = yield* makeAgents({ schema: cfg.schema, ...thresholds }).pipe(
        Effect.provide(yield* Layer.build(TestPostgres.otherClient()))
      )
      const id = AgentId.make(`agent-${crypto.randomUUID()}`)
      yield* here.register({ id, pool: "gpu", capabilities: ["a"], labels: { zone: "z\u0000" } })
      assert.deepStrictEqual(yield* there.get(id), yield* here.get(id))
      yield* Effect.sleep(thresholds.degradedAfterMs + 100)
      assert.strictEqual((yield* there.get(id)).status, "degraded")
      yield* there.heartbeat(id, 2)
      assert.deepStrictEqual([(yield* here.get(id)).status, (yield* here.get(id)).load], ["online", 2])
    })
  )
})
