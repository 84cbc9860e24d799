import { assert, describe, it } from "@effect/vitest"
import { QueueRules } from "@mandate/core"

describe("QueueRules.sweepPauseMs", () => {
  it("keeps the interval after a short sweep, and grows with a long one up to a minute", () => {
    assert.strictEqual(QueueRules.sweepPauseMs(1_000, 0), 1_000)
    assert.strictEqual(QueueRules.sweepPauseMs(1_000, 16), 1_000, "16 ms × 50 is within the interval")
    assert.strictEqual(QueueRules.sweepPauseMs(1_000, 160), 8_000, "a 160 ms scan: 2 % of the time")
    assert.strictEqual(QueueRules.sweepPauseMs(1_000, 10_000), 60_000, "at most a minute")
    assert.strictEqual(QueueRules.sweepPauseMs(120_000, 10_000), 120_000, "a longer interval is kept")
  })

  it("falls back to the interval for a duration that is not a number", () => {
    assert.strictEqual(QueueRules.sweepPauseMs(1_000, Number.NaN), 1_000)
    assert.strictEqual(QueueRules.sweepPauseMs(1_000, Number.POSITIVE_INFINITY), 1_000)
    assert.strictEqual(QueueRules.sweepPauseMs(1_000, -5), 1_000)
  })
})
