import { assert, describe, it } from "@effect/vitest"
import { Backoff } from "@mandate/core"
import { Effect, Random, Schema } from "effect"

const Attempt = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 40 }))
const Draw = Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 0.999999 }))

describe("Backoff", () => {
  it("doubles from the base up to the cap, and jitter only shortens", () => {
    const options = { baseMs: 1_000, capMs: 10_000, factor: 2, jitter: 0.2 }
    assert.deepStrictEqual(
      [1, 2, 3, 4, 5, 6].map((n) => Backoff.ceiling(n, options)),
      [1_000, 2_000, 4_000, 8_000, 10_000, 10_000]
    )
    assert.strictEqual(Backoff.delay(1, 0, options), 1_000)
    assert.strictEqual(Backoff.delay(1, 0.5, options), 900)
    assert.strictEqual(Backoff.delay(3, 0.999, options), Math.round(4_000 * (1 - 0.2 * 0.999)))
    assert.deepStrictEqual(Backoff.bounds(2, options), [1_600, 2_000])
    assert.strictEqual(Backoff.delay(1_000, 0.3, options), Math.round(10_000 * 0.94), "huge attempts stay capped")
  })

  it("fills defaults and clamps settings to their ranges", () => {
    assert.deepStrictEqual(Backoff.settings(), Backoff.defaults)
    assert.deepStrictEqual(Backoff.settings({ baseMs: -5, capMs: Number.NaN, factor: 0.5, jitter: 3 }), {
      baseMs: 0,
      capMs: Backoff.defaults.capMs,
      factor: 1,
      jitter: 1
    })
    assert.strictEqual(Backoff.settings({ baseMs: 5_000, capMs: 1_000 }).capMs, 5_000, "the cap is at least the base")
  })

  it.prop(
    "every delay lies within its bounds and under the cap",
    { attempt: Attempt, draw: Draw },
    ({ attempt, draw }) => {
      const delay = Backoff.delay(attempt, draw)
      const [min, max] = Backoff.bounds(attempt)
      return delay >= min && delay <= max && delay <= Backoff.defaults.capMs
    }
  )

  it.prop(
    "with the defaults each delay below the cap exceeds the previous one, whatever the draws",
    { attempt: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 8 })), a: Draw, b: Draw },
    ({ attempt, a, b }) => Backoff.delay(attempt + 1, b) > Backoff.delay(attempt, a)
  )

  it("retries while attempts remain and the failure is retryable, else dead-letters", () => {
    const failure = { attempts: 2, maxAttempts: 3, retryable: true, now: 10_000, draw: 0 }
    assert.deepStrictEqual(Backoff.decide(failure), { _tag: "Retry", retryAt: 12_000, delayMs: 2_000 })
    assert.deepStrictEqual(Backoff.decide({ ...failure, attempts: 3 }), {
      _tag: "DeadLetter",
      reason: "attempts_exhausted"
    })
    assert.deepStrictEqual(Backoff.decide({ ...failure, retryable: false }), {
      _tag: "DeadLetter",
      reason: "not_retryable"
    })
  })

  it.effect("draws from the Random service, so a seed makes it repeatable", () =>
    Effect.gen(function* () {
      const failure = { attempts: 1, maxAttempts: 5, retryable: true, now: 0 }
      const seeded = Backoff.decideEffect(failure, { jitter: 1 }).pipe(Random.withSeed("mandate"))
      const first = yield* seeded
      const second = yield* seeded
      assert.deepStrictEqual(first, second)
      assert.strictEqual(first._tag, "Retry")
      const many = yield* Effect.forEach(Array.from({ length: 20 }), () => Backoff.decideEffect(failure, { jitter: 1 }))
      assert.isTrue(new Set(many.map((d) => (d._tag === "Retry" ? d.delayMs : -1))).size > 1, "draws vary")
    })
  )
})
