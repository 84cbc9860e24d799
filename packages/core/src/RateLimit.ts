/**
 * Request limits per subject (a bearer token, a principal): the server takes one unit of a subject's allowance
 * per request and answers 429 with `Retry-After` when it is spent.
 *
 * The counting is Effect's `RateLimiter` (`effect/persistence`): token bucket or fixed window, over a
 * `RateLimiterStore` (memory here, Redis in `@mandate/adapters/redis`, so that several server processes share one
 * allowance). This module adds what a server needs around it: the rule is validated (bad limits are
 * `InvalidInput`, not a division by zero), the subject is hashed before it reaches the store (a bearer token is a
 * secret and must not become a Redis key), and failures are Mandate errors with the retry delay.
 *
 * @since 0.1.0
 */
import { Context, Duration, Effect, Layer, Schema } from "effect"
import { RateLimiter } from "effect/persistence"
import { sha256Hex } from "./Canonical.ts"
import { InvalidInput } from "./InvalidInput.ts"

/**
 * How allowances refill. `token-bucket`: `limit` units, one more every `window / limit`, so bursts up to `limit`
 * and a smooth rate after. `fixed-window`: `limit` units per `window`, the window restarting once it has run out.
 *
 * @category models
 * @since 0.1.0
 */
export const RateLimitAlgorithm = Schema.Literals(["token-bucket", "fixed-window"])
export type RateLimitAlgorithm = typeof RateLimitAlgorithm.Type

/**
 * One request for `cost` units of `subject`'s allowance under a rule.
 *
 * @category models
 * @since 0.1.0
 */
export interface RateLimitRequest {
  /** Whose allowance: a bearer token, a principal id. Only its SHA-256 reaches the store. */
  readonly subject: string
  /** Separate allowances of one subject, e.g. `api` and `claims` (default `api`). */
  readonly bucket?: string | undefined
  /** Units per window: an integer from 1 to 1,000,000. */
  readonly limit: number
  /** At least one millisecond, finite. */
  readonly window: Duration.Input
  /** Default `token-bucket`. */
  readonly algorithm?: RateLimitAlgorithm | undefined
  /** Units this request takes, from 1 to `limit` (default 1). */
  readonly cost?: number | undefined
}

/**
 * Where a subject stands after an allowed request: what is left and when the allowance is whole again.
 *
 * @category models
 * @since 0.1.0
 */
export interface RateLimitStatus {
  readonly limit: number
  readonly remaining: number
  readonly resetAfterMillis: number
}

/**
 * The subject's allowance is spent; the request may be retried after `retryAfterMillis`.
 *
 * @category errors
 * @since 0.1.0
 */
export class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", {
  bucket: Schema.String,
  limit: Schema.Number,
  retryAfterMillis: Schema.Number
}) {
  override get message(): string {
    return `Rate limit of ${this.limit} (${this.bucket}) exceeded; retry after ${this.retryAfterMillis} ms`
  }
}

/**
 * The store behind the limiter failed; wraps the driver error.
 *
 * @category errors
 * @since 0.1.0
 */
export class RateLimitStoreError extends Schema.TaggedError<RateLimitStoreError>()("RateLimitStoreError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

/**
 * Per-subject request limits.
 *
 * @category services
 * @since 0.1.0
 */
export class RateLimit extends Context.Service<
  RateLimit,
  {
    /** Takes `cost` units of the subject's allowance, or fails with `RateLimited` (nothing taken). */
    readonly consume: (
      request: RateLimitRequest
    ) => Effect.Effect<RateLimitStatus, RateLimited | InvalidInput | RateLimitStoreError>
  }
>()("@mandate/core/RateLimit") {
  /**
   * Limits over any `RateLimiterStore` (Effect's memory or Redis store, or one of your own).
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layerStore: Layer.Layer<RateLimit, never, RateLimiter.RateLimiterStore> = Layer.effect(
    RateLimit,
    Effect.suspend(() => makeRateLimit)
  )

  /**
   * Limits counted in this process: the embedded default, and a single server.
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layerMemory: Layer.Layer<RateLimit> = Layer.suspend(() =>
    RateLimit.layerStore.pipe(Layer.provide(RateLimiter.layerStoreMemory))
  )
}

const subjectPattern = /^[A-Za-z0-9_.:-]{1,64}$/

// Every problem with the rule, each at its JSON path, as `decode` reports schema failures
const validate = (request: RateLimitRequest): InvalidInput | undefined => {
  const issues: Array<{ path: string; message: string }> = []
  const bucket = request.bucket ?? "api"
  if (!subjectPattern.test(bucket)) {
    issues.push({ path: "$.bucket", message: "Expected a bucket name: 1-64 letters, digits and _ . : -" })
  }
  if (!Number.isInteger(request.limit) || request.limit < 1 || request.limit > 1_000_000) {
    issues.push({ path: "$.limit", message: "Expected an integer from 1 to 1000000" })
  }
  const window = Duration.fromInput(request.window)
  if (window._tag === "None" || !Duration.isFinite(window.value) || Duration.toMillis(window.value) < 1) {
    issues.push({ path: "$.window", message: "Expected a finite duration of at least 1 millisecond" })
  }
  const cost = request.cost ?? 1
  if (!Number.isInteger(cost) || cost < 1 || (Number.isInteger(request.limit) && cost > request.limit)) {
    issues.push({ path: "$.cost", message: "Expected an integer from 1 to the limit" })
  }
  if (typeof request.subject !== "string" || request.subject.length === 0) {
    issues.push({ path: "$.subject", message: "Expected a non-empty subject" })
  }
  const first = issues[0]
  return first === undefined ? undefined : new InvalidInput({ message: first.message, path: first.path, issues })
}

const toMillis = (duration: Duration.Duration): number => Math.max(0, Math.ceil(Duration.toMillis(duration)))

/**
 * Builds the service over the `RateLimiterStore` in context.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeRateLimit: Effect.Effect<RateLimit["Service"], never, RateLimiter.RateLimiterStore> = Effect.map(
  RateLimiter.make,
  (limiter) => {
    // The store key of each subject seen lately: the same few subjects ask again and again, and hashing each
    // time cost more than the count. Keyed by the exact subject; bounded, the oldest goes first.
    const hashed = new Map<string, string>()
    const subjectKey = (subject: string): string => {
      let key = hashed.get(subject)
      if (key === undefined) {
        if (hashed.size >= subjectKeyCacheSize) hashed.delete(hashed.keys().next().value!)
        key = sha256Hex(subject)
        hashed.set(subject, key)
      }
      return key
    }
    return RateLimit.of({
      consume: (request) => {
        const invalid = validate(request)
        if (invalid !== undefined) return Effect.fail(invalid)
        const bucket = request.bucket ?? "api"
        return limiter
          .consume({
            key: `${bucket}:${subjectKey(request.subject)}`,
            limit: request.limit,
            window: request.window,
            algorithm: request.algorithm ?? "token-bucket",
            tokens: request.cost ?? 1,
            onExceeded: "fail"
          })
          .pipe(
            Effect.map(
              (result): RateLimitStatus => ({
                limit: result.limit,
                remaining: Math.max(0, Math.floor(result.remaining)),
                resetAfterMillis: toMillis(result.resetAfter)
              })
            ),
            Effect.mapError((error) =>
              error.reason._tag === "RateLimitExceeded"
                ? new RateLimited({
                    bucket,
                    limit: request.limit,
                    retryAfterMillis: Math.max(1, toMillis(error.reason.retryAfter))
                  })
                : new RateLimitStoreError({ operation: "consume", cause: error.reason.cause ?? error.reason })
            )
          )
      }
    })
  }
)

const subjectKeyCacheSize = 10_000
