import { assert, layer } from "@effect/vitest"
import { layerRateLimit, makeRateLimit } from "@mandate/adapters/redis"
import { Canonical, RateLimit } from "@mandate/core"
import { suite } from "@mandate/core/conformance/rateLimit"
import { Effect, Layer } from "effect"
import { describeRedis, keysUnder, TestRedis } from "../utils/TestRedis.ts"

describeRedis("RateLimit on Redis", () => {
  // Redis expires fixed windows on its own clock: the suite waits in real time
  suite(
    "redis",
    TestRedis.layerWith((options) => layerRateLimit(options)),
    { testClock: false }
  )

  layer(TestRedis.layerWith((options) => layerRateLimit(options)))("Redis specifics", (it) => {
    it.effect("the subject never reaches Redis: keys carry its SHA-256, under the prefix", () =>
      Effect.gen(function* () {
        const { prefix } = yield* TestRedis
        const limits = yield* RateLimit
        const token = `secret-bearer-${crypto.randomUUID()}`
        yield* limits.consume({ subject: token, limit: 3, window: "1 minute", algorithm: "fixed-window" })
        yield* limits.consume({ subject: token, limit: 3, window: "1 minute", bucket: "claims" })
        const keys = yield* keysUnder(prefix)
        assert.isAbove(keys.length, 0)
        assert.isTrue(keys.every((key) => !key.includes(token)))
        const digest = Canonical.sha256Hex(token)
        assert.include(keys, `${prefix}ratelimit:api:${digest}`)
        assert.isTrue(keys.some((key) => key.startsWith(`${prefix}ratelimit:claims:${digest}`)))
      })
    )

    it.effect("two processes share one allowance", () =>
      Effect.gen(function* () {
        const { prefix } = yield* TestRedis
        const here = yield* RateLimit
        const otherConnection = yield* Layer.build(TestRedis.otherClient())
        const there = yield* makeRateLimit({ prefix }).pipe(Effect.provide(otherConnection))
        const request = { subject: `token-${crypto.randomUUID()}`, limit: 4, window: "1 minute" } as const
        const results = yield* Effect.all(
          Array.from({ length: 10 }, (_, i) => Effect.result((i % 2 === 0 ? here : there).consume(request))),
          { concurrency: "unbounded" }
        )
        assert.strictEqual(results.filter((r) => r._tag === "Success").length, 4)
      })
    )

    it.effect("a bad prefix fails with InvalidInput at $.prefix", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(makeRateLimit({ prefix: "white space" }))
        assert.strictEqual(error._tag === "InvalidInput" && error.path, "$.prefix")
      })
    )
  })
})
