/**
 * `RateLimit` on Redis: Effect's Redis rate-limiter store (`RateLimiter.layerStoreRedis`, one Lua script per
 * consume) under the backend's key prefix, so every server process sharing the Redis shares each subject's
 * allowance. Keys are `<prefix>ratelimit:<bucket>:<sha256 of the subject>` and expire once the allowance is whole
 * again, so idle subjects cost nothing.
 *
 * Fixed windows expire on Redis' clock; token buckets refill on the caller's `Clock` (Effect's store passes the
 * time to its script), so hosts sharing a Redis should keep their clocks in sync, as they must anyway.
 *
 * @since 0.1.0
 */
import { type InvalidInput, makeRateLimit as makeOverStore, RateLimit } from "@mandate/core"
import { Effect, Layer } from "effect"
import { RateLimiter, type Redis } from "effect/persistence"
import { makeKeys, type RedisOptions, resolvePrefix } from "./Keys.ts"

/**
 * Builds the Redis rate limiter over the `Redis` service in context.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeRateLimit = Effect.fnUntraced(function* (options?: RedisOptions) {
  const keys = makeKeys(yield* resolvePrefix(options))
  const store = yield* RateLimiter.makeStoreRedis({ prefix: keys.rateLimit })
  return yield* makeOverStore.pipe(Effect.provideService(RateLimiter.RateLimiterStore, store))
})

/**
 * The Redis rate limiter as a layer over the `Redis` service.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerRateLimit = (options?: RedisOptions): Layer.Layer<RateLimit, InvalidInput, Redis.Redis> =>
  Layer.effect(RateLimit, makeRateLimit(options))
