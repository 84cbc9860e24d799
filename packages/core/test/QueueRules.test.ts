import { assert, describe, it } from "@effect/vitest"
import { ClaimRequest, decodeClaimRequest, EnqueueRequest, QueueRules } from "@mandate/core"
import { Effect, Exit, Result, Schema } from "effect"

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

// `decodeClaimRequest` checks the usual claim by hand too: the same verdict and claim as the Schema decode
describe("decodeClaimRequest", () => {
  const decode = Schema.decodeUnknownResult(ClaimRequest)
  class Claim {
    readonly workerId = "w"
    readonly queues = ["q"]
  }
  const bare = Object.create(null) as Record<string, unknown>
  bare.workerId = "w-1"
  bare.queues = ["a", "b"]
  class Queues extends Array<string> {}
  const sparse: Array<string> = []
  sparse[1] = "q"
  const cases: ReadonlyArray<unknown> = [
    { workerId: "w", queues: ["q"] },
    { workerId: "worker_01.a:b@c-d", queues: ["a", "b.c"], pool: "gpu", max: 20, leaseMs: 30_000, extra: 1 },
    { queues: ["q"], leaseMs: 86_400_000, max: 1_000, workerId: "w" },
    { workerId: "w", queues: ["q"], max: 1, leaseMs: 1 },
    { workerId: "w".repeat(128), queues: Array.from({ length: 64 }, (_, i) => `q${i}`) },
    { workerId: "w".repeat(129), queues: ["q"] },
    { workerId: "w", queues: Array.from({ length: 65 }, (_, i) => `q${i}`) },
    { workerId: "-w", queues: ["q"] },
    { workerId: "w w", queues: ["q"] },
    { workerId: 1, queues: ["q"] },
    { workerId: "w", queues: [] },
    { workerId: "w", queues: "q" },
    { workerId: "w", queues: ["q", "bad name"] },
    { workerId: "w", queues: ["q", 1] },
    { workerId: "w", queues: sparse },
    { workerId: "w", queues: Queues.from(["q"]) },
    { workerId: "w", queues: ["q"], pool: undefined },
    { workerId: "w", queues: ["q"], pool: "bad pool" },
    { workerId: "w", queues: ["q"], max: 0 },
    { workerId: "w", queues: ["q"], max: 1_001 },
    { workerId: "w", queues: ["q"], max: 2.5 },
    { workerId: "w", queues: ["q"], max: "5" },
    { workerId: "w", queues: ["q"], max: undefined },
    { workerId: "w", queues: ["q"], leaseMs: 0 },
    { workerId: "w", queues: ["q"], leaseMs: 86_400_001 },
    { workerId: "w", queues: ["q"], leaseMs: Number.NaN },
    { workerId: "w", queues: ["q"], leaseMs: -0 },
    new Claim(),
    bare,
    null,
    "w",
    [{ workerId: "w", queues: ["q"] }]
  ]
  it("agrees with the Schema decode on every claim", () => {
    for (const input of cases) {
      const ours = Effect.runSyncExit(decodeClaimRequest(input))
      const schema = decode(input, { errors: "all", onExcessProperty: "ignore" })
      const label = JSON.stringify(input) ?? String(input)
      assert.strictEqual(Exit.isSuccess(ours), Result.isSuccess(schema), label)
      if (Exit.isSuccess(ours) && Result.isSuccess(schema)) {
        assert.deepStrictEqual(ours.value, schema.success, label)
        assert.deepStrictEqual(Object.keys(ours.value), Object.keys(schema.success), label)
      }
    }
  })
  it("reads each queue name once: a getter cannot pass the check with one name and claim another", () => {
    let reads = 0
    const queues = ["q"]
    Object.defineProperty(queues, 0, { get: () => (reads++ === 0 ? "fine" : "not a queue name!") })
    const result = Effect.runSyncExit(decodeClaimRequest({ workerId: "w", queues }))
    assert.isTrue(Exit.isSuccess(result))
    if (Exit.isSuccess(result)) assert.deepStrictEqual(result.value.queues, ["fine"])
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
