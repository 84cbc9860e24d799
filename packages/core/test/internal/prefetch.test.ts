import { assert, describe, it } from "@effect/vitest"
import { ewma, excessOf, MAX_HELD, prefetchOf } from "../../src/internal/prefetch.ts"

describe("internal/prefetch", () => {
  it("holds one job per slot until both times are measured", () => {
    assert.strictEqual(prefetchOf({ concurrency: 10, claimLatencyMs: undefined, runTimeMs: undefined }), 10)
    assert.strictEqual(prefetchOf({ concurrency: 10, claimLatencyMs: 2, runTimeMs: undefined }), 10)
    assert.strictEqual(prefetchOf({ concurrency: 10, claimLatencyMs: undefined, runTimeMs: 0.01 }), 10)
  })

  it("holds what the slots start in two claim round trips", () => {
    // 10 slots, a job each per 0.5 ms: 40 jobs start during two 1 ms claims
    assert.strictEqual(prefetchOf({ concurrency: 10, claimLatencyMs: 1, runTimeMs: 0.5 }), 40)
    assert.strictEqual(prefetchOf({ concurrency: 4, claimLatencyMs: 3, runTimeMs: 1 }), 24)
  })

  it("never holds fewer jobs than slots (long jobs), nor more than fifty per slot or 500 (short ones)", () => {
    assert.strictEqual(prefetchOf({ concurrency: 10, claimLatencyMs: 2, runTimeMs: 1_000 }), 10)
    assert.strictEqual(prefetchOf({ concurrency: 4, claimLatencyMs: 2, runTimeMs: 0.01 }), 200)
    assert.strictEqual(prefetchOf({ concurrency: 10, claimLatencyMs: 2, runTimeMs: 0.01 }), MAX_HELD)
    assert.strictEqual(prefetchOf({ concurrency: 50, claimLatencyMs: 2, runTimeMs: 0.01 }), MAX_HELD)
    // more slots than the cap: one held job per slot still
    assert.strictEqual(prefetchOf({ concurrency: 2_000, claimLatencyMs: 2, runTimeMs: 0.01 }), 2_000)
  })

  it("treats run times under the clock's resolution as the shortest, and instant claims as needing no more", () => {
    assert.strictEqual(prefetchOf({ concurrency: 2, claimLatencyMs: 0.5, runTimeMs: 0 }), 100)
    assert.strictEqual(prefetchOf({ concurrency: 10, claimLatencyMs: 0, runTimeMs: 0 }), 10)
    assert.strictEqual(prefetchOf({ concurrency: 10, claimLatencyMs: 0, runTimeMs: 5 }), 10)
  })

  it("averages with the new sample's weight, the first sample as is", () => {
    assert.strictEqual(ewma(undefined, 7, 0.2), 7)
    assert.strictEqual(ewma(10, 20, 0.2), 12)
    assert.strictEqual(ewma(10, 10, 0.5), 10)
  })

  it("gives back held jobs beyond the prefetch only when more than twice it and slow to start", () => {
    const long = { concurrency: 2, claimLatencyMs: 5, runTimeMs: 500 }
    // 100 held for 2 slots at 500 ms a job: the last would start in 25 s; keep the prefetch's 2
    assert.strictEqual(excessOf(100, 2, long), 98)
    // no more than twice the prefetch: kept
    assert.strictEqual(excessOf(4, 2, long), 0)
    // a pause in a drain: 400 held for 10 slots at 2.5 ms a job start within 100 ms, kept
    assert.strictEqual(excessOf(400, 10, { concurrency: 10, claimLatencyMs: 2, runTimeMs: 2.5 }), 0)
    // nothing measured yet: kept
    assert.strictEqual(excessOf(100, 2, { concurrency: 2, claimLatencyMs: undefined, runTimeMs: undefined }), 0)
  })
})
