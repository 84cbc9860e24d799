import { assert, describe, it } from "@effect/vitest"
import { EnqueueRequest, QueueRules } from "@mandate/core"
import { Result, Schema } from "effect"

// `validateEnqueue` checks the usual request by hand and leaves the rest to the Schema decode: whatever path a
// request takes, the verdict and the request built must be the Schema's
describe("QueueRules.validateEnqueue", () => {
  const decode = Schema.decodeUnknownResult(EnqueueRequest)
  class Request {
    readonly queue = "q"
    readonly payload = 1
  }
  const inherited = Object.create({ priority: "urgent" }) as Record<string, unknown>
  inherited.queue = "q"
  inherited.payload = 1
  const bare = Object.create(null) as Record<string, unknown>
  bare.queue = "q"
  bare.payload = { a: [1] }
  const cases: ReadonlyArray<unknown> = [
    { queue: "q", payload: { i: 1 } },
    { payload: null, pool: "gpu", queue: "a.b:c-d_e", priority: "low", extra: true },
    {
      queue: "q",
      payload: "x",
      priority: "critical",
      runAt: 0,
      maxAttempts: 1_000,
      idempotencyKey: "k".repeat(256),
      pool: "p"
    },
    { queue: "q", payload: 1, delayMs: 1.5 },
    { queue: "q", payload: 1, runAt: -0 },
    { queue: "x".repeat(64), payload: 1 },
    { queue: "x".repeat(65), payload: 1 },
    { queue: "no spaces", payload: 1 },
    { queue: "-q", payload: 1 },
    { queue: 1, payload: 1 },
    { queue: "q" },
    { queue: "q", payload: 1, priority: "urgent" },
    { queue: "q", payload: 1, priority: undefined },
    { queue: "q", payload: 1, pool: undefined },
    { queue: "q", payload: 1, pool: "bad pool" },
    { queue: "q", payload: 1, runAt: -1 },
    { queue: "q", payload: 1, runAt: Number.NaN },
    { queue: "q", payload: 1, delayMs: Number.POSITIVE_INFINITY },
    { queue: "q", payload: 1, delayMs: "5" },
    { queue: "q", payload: 1, maxAttempts: 0 },
    { queue: "q", payload: 1, maxAttempts: 1_001 },
    { queue: "q", payload: 1, maxAttempts: 2.5 },
    { queue: "q", payload: 1, idempotencyKey: "" },
    { queue: "q", payload: 1, idempotencyKey: "k".repeat(257) },
    { queue: "q", payload: 1, idempotencyKey: 7 },
    new Request(),
    inherited,
    bare,
    null,
    "q",
    [{ queue: "q", payload: 1 }]
  ]
  it("agrees with the Schema decode on every request", () => {
    for (const input of cases) {
      const ours = QueueRules.validateEnqueue(input)
      const schema = decode(input, { errors: "all", onExcessProperty: "ignore" })
      const label = JSON.stringify(input) ?? String(input)
      assert.strictEqual(Result.isSuccess(ours), Result.isSuccess(schema), label)
      if (Result.isSuccess(ours) && Result.isSuccess(schema)) {
        assert.deepStrictEqual(ours.success, schema.success, label)
        assert.deepStrictEqual(Object.keys(ours.success), Object.keys(schema.success), label)
      }
    }
  })
  it("names every bad field, whichever fields are bad", () => {
    const result = QueueRules.validateEnqueue({ queue: "bad name", payload: 1, priority: "urgent", maxAttempts: 0 })
    assert.isTrue(Result.isFailure(result))
    if (Result.isFailure(result)) {
      assert.deepStrictEqual(
        result.failure.issues.map((issue) => issue.path),
        ["$.queue", "$.priority", "$.maxAttempts"]
      )
    }
  })
})

describe("QueueRules.validateEnqueue, hostile objects", () => {
  it("reads each field once: a getter cannot pass the check with one name and enqueue another", () => {
    let reads = 0
    const shifty = {
      get queue() {
        return reads++ === 0 ? "fine" : "not a queue name!"
      },
      payload: 1
    }
    const result = QueueRules.validateEnqueue(shifty)
    assert.isTrue(Result.isSuccess(result))
    if (Result.isSuccess(result)) assert.strictEqual(result.success.queue, "fine")
    assert.strictEqual(reads, 1)
  })
})

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
