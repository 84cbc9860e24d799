import { assert, describe, it } from "@effect/vitest"
import { RateLimit } from "@mandate/core"
import { suite } from "@mandate/core/conformance/rateLimit"
import { Effect } from "effect"

suite("memory", RateLimit.layerMemory)
// the path stores that keep their own time take: real waits instead of TestClock
suite("memory, real clock", RateLimit.layerMemory, { testClock: false })

// The limiter remembers each subject's store key (a bounded cache): what it remembers must never mix subjects up
// nor lose a subject's count when the entry is evicted
describe("memory: the subject-key cache", () => {
  it.effect("subjects one character apart keep their own allowances; an evicted subject keeps its count", () =>
    Effect.gen(function* () {
      const limits = yield* RateLimit
      const rule = { limit: 1, window: "1 minute" } as const
      yield* limits.consume({ ...rule, subject: "tenant-a" })
      // A subject a byte away from a cached one gets its own allowance, and the cached one stays spent
      assert.strictEqual((yield* limits.consume({ ...rule, subject: "tenant-b" })).remaining, 0)
      assert.strictEqual((yield* Effect.flip(limits.consume({ ...rule, subject: "tenant-a" })))._tag, "RateLimited")
      // More subjects than the cache holds: tenant-a's key is computed again, and its count is the same
      for (let i = 0; i < 10_050; i++) yield* limits.consume({ ...rule, subject: `other-${i}` })
      assert.strictEqual((yield* Effect.flip(limits.consume({ ...rule, subject: "tenant-a" })))._tag, "RateLimited")
    }).pipe(Effect.provide(RateLimit.layerMemory))
  )
})
