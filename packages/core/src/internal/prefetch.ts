/**
 * The `Worker`'s default local queue: how many claimed jobs it holds beyond the running ones, from what it
 * measured. A held job should start before the next claim could bring one, and no much later: the worker holds
 * what its slots start in about two claim round trips (it claims again once half of it is gone, so a claim is
 * always under way while the rest run). Short jobs then get large claims (fewer round trips per job), long jobs a
 * local queue no larger than the slots, so other workers can take what this one could not start soon.
 *
 * @since 0.1.0
 */

/**
 * Held jobs per slot at most, whatever was measured: a bad estimate (short jobs, then long ones) holds no more.
 * No-op jobs on Redis at concurrency 10 drained about a third faster with 50 than with 10 (benchmarks/README.md).
 */
export const MAX_PER_SLOT = 50
/** Held jobs at most, whatever the concurrency (on Redis at concurrency 50, 1,000 drained no faster than 500). */
export const MAX_HELD = 500
/** Claim round trips the held jobs should cover. */
export const ROUND_TRIPS = 2

/**
 * What the worker measured: its claims' round trip and its slots' time per job (taking a held job to being free
 * for the next), both moving averages in ms; `undefined` until a first sample.
 *
 * @category models
 * @since 0.1.0
 */
export interface Measured {
  readonly concurrency: number
  readonly claimLatencyMs: number | undefined
  readonly runTimeMs: number | undefined
}

/**
 * The fewest held jobs: `concurrency` (a freed slot starts the next job without a round trip), until both times
 * are known; then `concurrency × ROUND_TRIPS × claimLatency / runTime` — the jobs the slots start while that many
 * claims are under way — clamped between `concurrency` and `MAX_PER_SLOT × concurrency` (at most `MAX_HELD`, unless the slots
 * alone are more).
 *
 * @category constructors
 * @since 0.1.0
 */
export const prefetchOf = ({ concurrency, claimLatencyMs, runTimeMs }: Measured): number => {
  const max = Math.max(concurrency, Math.min(MAX_HELD, MAX_PER_SLOT * concurrency))
  if (claimLatencyMs === undefined || runTimeMs === undefined) return concurrency
  // A run time under the clock's resolution (averaging 0): the slots outrun any claim
  if (runTimeMs <= 0) return claimLatencyMs > 0 ? max : concurrency
  const wanted = Math.ceil((concurrency * ROUND_TRIPS * claimLatencyMs) / runTimeMs)
  return Math.min(max, Math.max(concurrency, wanted))
}

/** A held job expected to start within this many ms is kept, whatever the prefetch (see `excessOf`). */
export const KEEP_WITHIN_MS = 1_000

/**
 * Held jobs to give back: those beyond the prefetch, once they are more than twice it and the last of them would
 * start more than `KEEP_WITHIN_MS` from now at the measured time per job (short jobs, then long ones: hundreds
 * claimed for short jobs would wait behind slots busy with long ones while other workers could run them). The
 * factor and the floor keep one slow job in a drain (a pause) from giving back what starts soon anyway.
 *
 * @category constructors
 * @since 0.1.0
 */
export const excessOf = (held: number, prefetch: number, { concurrency, runTimeMs }: Measured): number =>
  held > 2 * prefetch && runTimeMs !== undefined && (held / concurrency) * runTimeMs > KEEP_WITHIN_MS
    ? held - prefetch
    : 0

/**
 * An exponentially weighted moving average: `sample` given the weight `alpha`, the first sample taken as is.
 *
 * @category constructors
 * @since 0.1.0
 */
export const ewma = (average: number | undefined, sample: number, alpha: number): number =>
  average === undefined ? sample : average + alpha * (sample - average)
