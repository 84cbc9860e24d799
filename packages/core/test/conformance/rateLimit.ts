/**
 * The RateLimit conformance suite: the whole behavioural contract of `RateLimit`, for any store.
 *
 * ```ts
 * import { suite } from "@mandate/core/conformance/rateLimit"
 * suite("redis", Redis.layerRateLimit().pipe(Layer.provide(MyRedis)), { testClock: false })
 * ```
 *
 * `testClock: false` is for stores that keep time themselves (Redis expires fixed windows by its own clock):
 * the suite then waits in real time, with windows short enough to keep it quick.
 *
 * @since 0.1.0
 */
import { assert, layer } from "@effect/vitest"
import { RateLimit, type RateLimitAlgorithm, type RateLimitRequest } from "@mandate/core"
import { Effect, type Layer } from "effect"
import { TestClock } from "effect/testing"

const algorithms: ReadonlyArray<RateLimitAlgorithm> = ["token-bucket", "fixed-window"]

/**
 * Runs the RateLimit contract against `limitLayer`.
 *
 * @category suites
 * @since 0.1.0
 */
export const suite = (
  name: string,
  limitLayer: Layer.Layer<RateLimit, unknown>,
  options?: { readonly testClock?: boolean }
): void =>
  layer(limitLayer, { timeout: "60 seconds", excludeTestServices: options?.testClock === false })(
    `RateLimit conformance (${name})`,
    (it) => {
      const live = options?.testClock === false
      const test = it.effect
      const wait = (millis: number) => (live ? Effect.sleep(millis) : TestClock.adjust(millis))
      const subject = () => `token-${crypto.randomUUID()}`

      for (const algorithm of algorithms) {
        test(`${algorithm}: allows the limit, then refuses with the delay until more is allowed`, () =>
          Effect.gen(function* () {
            const limits = yield* RateLimit
            const request: RateLimitRequest = { subject: subject(), limit: 5, window: "10 seconds", algorithm }
            const remaining: Array<number> = []
            for (let i = 0; i < 5; i++) {
              const status = yield* limits.consume(request)
              assert.strictEqual(status.limit, 5)
              assert.isAtMost(status.resetAfterMillis, 10_000)
              remaining.push(status.remaining)
            }
            assert.deepStrictEqual(remaining, [4, 3, 2, 1, 0])
            const refused = yield* Effect.flip(limits.consume(request))
            assert.strictEqual(refused._tag, "RateLimited")
            if (refused._tag === "RateLimited") {
              assert.strictEqual(refused.bucket, "api")
              assert.strictEqual(refused.limit, 5)
              assert.isAbove(refused.retryAfterMillis, 0)
              assert.isAtMost(refused.retryAfterMillis, 10_000)
              assert.notInclude(refused.message, request.subject)
            }
          }))

        test(`${algorithm}: the allowance comes back once the window has passed`, () =>
          Effect.gen(function* () {
            const limits = yield* RateLimit
            const request: RateLimitRequest = { subject: subject(), limit: 2, window: "400 millis", algorithm }
            yield* limits.consume(request)
            yield* limits.consume(request)
            const refused = yield* Effect.flip(limits.consume(request))
            assert.strictEqual(refused._tag, "RateLimited")
            yield* wait(450)
            yield* limits.consume(request)
            assert.strictEqual((yield* limits.consume(request)).remaining, 0)
          }))

        test(`${algorithm}: a request costing several units takes them all or none`, () =>
          Effect.gen(function* () {
            const limits = yield* RateLimit
            const request: RateLimitRequest = { subject: subject(), limit: 10, window: "1 minute", algorithm, cost: 4 }
            assert.strictEqual((yield* limits.consume(request)).remaining, 6)
            assert.strictEqual((yield* limits.consume(request)).remaining, 2)
            const refused = yield* Effect.flip(limits.consume(request))
            assert.strictEqual(refused._tag, "RateLimited")
            // the refused request took nothing: the last two units are still there
            assert.strictEqual((yield* limits.consume({ ...request, cost: 2 })).remaining, 0)
          }))

        test(`${algorithm}: many concurrent requests never get more than the limit`, () =>
          Effect.gen(function* () {
            const limits = yield* RateLimit
            const request: RateLimitRequest = { subject: subject(), limit: 15, window: "1 minute", algorithm }
            const results = yield* Effect.all(
              Array.from({ length: 40 }, () => Effect.result(limits.consume(request))),
              { concurrency: "unbounded" }
            )
            assert.strictEqual(results.filter((r) => r._tag === "Success").length, 15)
            assert.isTrue(results.every((r) => r._tag === "Success" || r.failure._tag === "RateLimited"))
          }))
      }

      test("subjects and buckets have separate allowances", () =>
        Effect.gen(function* () {
          const limits = yield* RateLimit
          const first = subject()
          const request: RateLimitRequest = { subject: first, limit: 1, window: "1 minute" }
          yield* limits.consume(request)
          assert.strictEqual((yield* Effect.flip(limits.consume(request)))._tag, "RateLimited")
          assert.strictEqual((yield* limits.consume({ ...request, subject: subject() })).remaining, 0)
          assert.strictEqual((yield* limits.consume({ ...request, bucket: "claims" })).remaining, 0)
          const refused = yield* Effect.flip(limits.consume({ ...request, bucket: "claims" }))
          assert.strictEqual(refused._tag === "RateLimited" && refused.bucket, "claims")
        }))

      test("a bad rule is InvalidInput naming every bad field", () =>
        Effect.gen(function* () {
          const limits = yield* RateLimit
          const bad = yield* Effect.flip(
            limits.consume({ subject: subject(), bucket: "has space", limit: 0, window: 0, cost: 0 })
          )
          assert.strictEqual(bad._tag, "InvalidInput")
          if (bad._tag === "InvalidInput") {
            assert.deepStrictEqual(bad.issues.map((i) => i.path).sort(), ["$.bucket", "$.cost", "$.limit", "$.window"])
          }
          const tooCostly = yield* Effect.flip(
            limits.consume({ subject: subject(), limit: 3, window: "1 second", cost: 4 })
          )
          assert.strictEqual(tooCostly._tag === "InvalidInput" && tooCostly.path, "$.cost")
          const fractional = yield* Effect.flip(limits.consume({ subject: subject(), limit: 2.5, window: "1 second" }))
          assert.strictEqual(fractional._tag === "InvalidInput" && fractional.path, "$.limit")
          const endless = yield* Effect.flip(limits.consume({ subject: subject(), limit: 2, window: "Infinity" }))
          assert.strictEqual(endless._tag === "InvalidInput" && endless.path, "$.window")
          const nobody = yield* Effect.flip(limits.consume({ subject: "", limit: 2, window: "1 second" }))
          assert.strictEqual(nobody._tag === "InvalidInput" && nobody.path, "$.subject")
        }))
    }
  )
