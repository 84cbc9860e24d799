/**
 * Retry timing for failed jobs: exponential backoff with jitter, capped.
 *
 * Pure, and the only place retry delays are computed: every `Queue` layer (memory, Postgres, Redis, a user's
 * own) draws one random number from Effect's `Random` service, calls `decide`, and stores the outcome it gets
 * (a retry time or a dead letter). So backends never disagree on when a job runs again, and tests can fix the
 * draw.
 *
 * The jitter shortens a delay by up to `jitter` of it (delay ∈ [E·(1 − jitter), E], E = min(cap, base·factorⁿ⁻¹)).
 * Never lengthening it keeps every delay within the cap; with `factor · (1 − jitter) ≥ 1` (the defaults give
 * 2 · 0.8) each delay below the cap is at least the previous one, whatever the draws.
 *
 * @since 0.1.0
 */
import { Effect, Random } from "effect"

/**
 * Backoff settings. All optional; see `defaults`.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** Delay before the first retry, in ms. */
  readonly baseMs?: number | undefined
  /** Upper bound of any delay, in ms. */
  readonly capMs?: number | undefined
  /** Growth per attempt (≥ 1). */
  readonly factor?: number | undefined
  /** Fraction (0–1) of a delay that the random draw may take off it. */
  readonly jitter?: number | undefined
}

/**
 * Backoff settings with every field present and within range.
 *
 * @category models
 * @since 0.1.0
 */
export interface Settings {
  readonly baseMs: number
  readonly capMs: number
  readonly factor: number
  readonly jitter: number
}

/**
 * 1 s, doubling, at most 5 minutes, up to 20% jitter.
 *
 * @category constants
 * @since 0.1.0
 */
export const defaults: Settings = { baseMs: 1_000, capMs: 300_000, factor: 2, jitter: 0.2 }

const finiteOr = (value: number | undefined, fallback: number): number =>
  value !== undefined && Number.isFinite(value) ? value : fallback

/**
 * Fills in defaults and clamps each field to its range (base ≥ 0, cap ≥ base, factor ≥ 1, jitter in [0, 1]).
 *
 * @category constructors
 * @since 0.1.0
 */
export const settings = (options?: Options | undefined): Settings => {
  const baseMs = Math.max(0, finiteOr(options?.baseMs, defaults.baseMs))
  return {
    baseMs,
    capMs: Math.max(baseMs, finiteOr(options?.capMs, Math.max(baseMs, defaults.capMs))),
    factor: Math.max(1, finiteOr(options?.factor, defaults.factor)),
    jitter: Math.min(1, Math.max(0, finiteOr(options?.jitter, defaults.jitter)))
  }
}

/**
 * The undrawn delay after `attempt` failed attempts (1 = the first failure): min(cap, base · factor^(attempt − 1)).
 *
 * @category computations
 * @since 0.1.0
 */
export const ceiling = (attempt: number, options?: Options | undefined): number => {
  const s = settings(options)
  const exponent = Math.max(0, Math.floor(attempt) - 1)
  // factor ** exponent overflows to Infinity for large attempts, which the cap then bounds
  return Math.min(s.capMs, s.baseMs * s.factor ** exponent)
}

/**
 * The delay (whole ms) before retrying after `attempt` failed attempts, given a random `draw` in [0, 1).
 *
 * @category computations
 * @since 0.1.0
 */
export const delay = (attempt: number, draw: number, options?: Options | undefined): number => {
  const s = settings(options)
  const unit = Math.min(1, Math.max(0, Number.isFinite(draw) ? draw : 0))
  return Math.round(ceiling(attempt, s) * (1 - s.jitter * unit))
}

/**
 * The range `delay` can return for an attempt: [min, max] in ms.
 *
 * @category computations
 * @since 0.1.0
 */
export const bounds = (attempt: number, options?: Options | undefined): readonly [number, number] => {
  const s = settings(options)
  const top = ceiling(attempt, s)
  return [Math.round(top * (1 - s.jitter)), Math.round(top)]
}

/**
 * What happens to a job after a failed attempt.
 *
 * @category models
 * @since 0.1.0
 */
export type Decision =
  | { readonly _tag: "Retry"; readonly retryAt: number; readonly delayMs: number }
  | { readonly _tag: "DeadLetter"; readonly reason: "attempts_exhausted" | "not_retryable" }

/**
 * The facts `decide` needs about the failed attempt.
 *
 * @category models
 * @since 0.1.0
 */
export interface Failure {
  /** Attempts started so far, the failed one included. */
  readonly attempts: number
  readonly maxAttempts: number
  /** False when retrying cannot help: the job is dead-lettered at once. */
  readonly retryable: boolean
  /** When the attempt failed (epoch ms). */
  readonly now: number
  /** A random number in [0, 1). */
  readonly draw: number
}

/**
 * Retry at `now + delay(attempts, draw)` while attempts remain and the failure is retryable; dead-letter
 * otherwise.
 *
 * @category computations
 * @since 0.1.0
 */
export const decide = (failure: Failure, options?: Options | undefined): Decision => {
  if (!failure.retryable) return { _tag: "DeadLetter", reason: "not_retryable" }
  if (failure.attempts >= failure.maxAttempts) return { _tag: "DeadLetter", reason: "attempts_exhausted" }
  const delayMs = delay(failure.attempts, failure.draw, options)
  return { _tag: "Retry", retryAt: failure.now + delayMs, delayMs }
}

/**
 * `decide` with the draw taken from Effect's `Random` service (so `Random.withSeed` makes it repeatable).
 *
 * @category computations
 * @since 0.1.0
 */
export const decideEffect = (failure: Omit<Failure, "draw">, options?: Options | undefined): Effect.Effect<Decision> =>
  Effect.map(Random.next, (draw) => decide({ ...failure, draw }, options))
