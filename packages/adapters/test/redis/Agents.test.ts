import { assert, layer } from "@effect/vitest"
import { layerAgents, makeAgents } from "@mandate/adapters/redis"
import { AgentId, Agents } from "@mandate/core"
import { suite } from "@mandate/core/conformance/agents"
import { Effect, Layer } from "effect"
import { Redis } from "effect/persistence"
import { describeRedis, TestRedis } from "../utils/TestRedis.ts"

describeRedis("Agents on Redis", () => {
  suite(
    "Agents conformance (redis)",
    TestRedis.layerWith((options) => layerAgents(options))
  )

  suite(
    "Agents conformance (redis, short thresholds)",
    TestRedis.layerWith((options) => layerAgents({ ...options, degradedAfterMs: 1_000, offlineAfterMs: 5_000 })),
    { degradedAfterMs: 1_000, offlineAfterMs: 5_000 }
  )

  layer(TestRedis.layerWith((options) => layerAgents(options)))("Redis specifics", (it) => {
    it.effect("two processes see one registry; a pool change moves the agent between pools", () =>
      Effect.gen(function* () {
        const { prefix } = yield* TestRedis
        const here = yield* Agents
        const otherConnection = yield* Layer.build(TestRedis.otherClient())
        const there = yield* makeAgents({ prefix }).pipe(Effect.provide(otherConnection))
        const id = AgentId.make(`mover-${crypto.randomUUID()}`)
        const [from, to] = [`from-${crypto.randomUUID()}`, `to-${crypto.randomUUID()}`]
        yield* here.register({ id, pool: from, capabilities: ["x"] })
        assert.deepStrictEqual(
          (yield* there.list({ pool: from })).map((a) => a.id),
          [id]
        )
        yield* there.register({ id, pool: to })
        assert.deepStrictEqual(yield* here.list({ pool: from }), [])
        assert.strictEqual((yield* here.get(id)).pool, to)
        yield* there.deregister(id)
        assert.strictEqual((yield* Effect.flip(here.get(id)))._tag, "AgentNotFound")
      })
    )

    it.effect("a stored registration that does not decode is an AgentsStoreError", () =>
      Effect.gen(function* () {
        const { prefix } = yield* TestRedis
        const agents = yield* Agents
        const id = AgentId.make(`broken-${crypto.randomUUID()}`)
        yield* agents.register({ id, pool: "p" })
        yield* Redis.Redis.use((redis) => redis.send("HSET", `${prefix}agent:${id}`, "registration", "{not json"))
        const error = yield* Effect.flip(agents.get(id))
        assert.strictEqual(error._tag === "AgentsStoreError" && error.operation, "get")
      })
    )
  })
})
