/**
 * The `Anchor` contract, as one suite every anchor layer runs: core's memory layer, the Qubic mock, the
 * Qubic RPC client, and any adapter a user writes.
 *
 * ```ts
 * import { suite } from "@mandate/core/conformance/anchor"
 * suite("my-chain", MyAnchor.layer)                       // layer time is TestClock: the suite advances it
 * suite("my-chain over http", MyAnchor.layerHttp, { testClock: false }) // real time: the suite polls
 * ```
 *
 * Tests isolate themselves with random roots, so one layer instance serves the whole suite. A receipt may be
 * `pending` when `publish` returns; the suite waits (advancing `TestClock`, or sleeping) until it confirms.
 *
 * @since 0.1.0
 */
import { assert, layer } from "@effect/vitest"
import { Anchor, type AnchorReceipt, Canonical } from "@mandate/core"
import { Duration, Effect, Fiber, type Layer, Option } from "effect"
import { TestClock } from "effect/testing"

/**
 * How the suite drives time. Options choose how to wait, never which assertions run.
 *
 * @category models
 * @since 0.1.0
 */
export interface AnchorSuiteOptions {
  /**
   * `true` (default): the layer's time is `TestClock`; the suite advances it by `step` while it waits.
   * `false`: the layer runs on real time (e.g. over HTTP); the suite sleeps `step` between checks.
   */
  readonly testClock?: boolean | undefined
  /** Time advanced (or slept) per check: default 1 second of `TestClock`, or 20 ms of real time. */
  readonly step?: Duration.Input | undefined
  /** Longest wait for one receipt to confirm: default 1 hour of `TestClock`, or 20 s of real time. */
  readonly timeout?: Duration.Input | undefined
}

const randomRoot = (): string => Canonical.sha256Hex(crypto.randomUUID())

/**
 * Runs the `Anchor` conformance suite against a layer.
 *
 * @category conformance
 * @since 0.1.0
 */
export const suite = (name: string, anchorLayer: Layer.Layer<Anchor, unknown>, options?: AnchorSuiteOptions): void => {
  const testClock = options?.testClock ?? true
  const step = Duration.toMillis(options?.step ?? (testClock ? "1 second" : "20 millis"))
  const timeout = Duration.toMillis(options?.timeout ?? (testClock ? "1 hour" : "20 seconds"))
  const testTimeout = testClock ? 30_000 : timeout + 10_000

  // Runs `self` to the end; under TestClock, time moves forward `step` at a time while it runs
  const drive = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    testClock
      ? Effect.gen(function* () {
          const fiber = yield* Effect.forkChild(self)
          for (let waited = 0; fiber.pollUnsafe() === undefined; waited += step) {
            if (waited > timeout) return yield* Effect.die(new Error(`still running after ${timeout} ms of TestClock`))
            yield* TestClock.adjust(step)
          }
          return yield* Fiber.join(fiber)
        })
      : Effect.timeoutOrElse(self, {
          duration: timeout,
          orElse: () => Effect.die(new Error(`still running after ${timeout} ms`))
        })

  const publish = (root: string, size: number) => drive(Anchor.use((anchor) => anchor.publish(root, size)))

  // The receipt of `root` once it is confirmed
  const confirmed = (root: string) =>
    drive(
      Effect.gen(function* () {
        const anchor = yield* Anchor
        for (;;) {
          const receipt = yield* anchor.lookup(root)
          if (Option.isSome(receipt) && receipt.value.status === "confirmed") return receipt.value
          yield* Effect.sleep(step)
        }
      })
    )

  const assertReceipt = (receipt: AnchorReceipt, root: string, size: number) => {
    assert.strictEqual(receipt.root, root)
    assert.strictEqual(receipt.size, size)
    assert.isString(receipt.chain)
    assert.isAbove(receipt.chain.length, 0)
    assert.isString(receipt.txId)
    assert.isAbove(receipt.txId.length, 0)
    assert.isTrue(Number.isInteger(receipt.tick) && receipt.tick >= 0, `tick ${receipt.tick}`)
    assert.isTrue(Number.isFinite(receipt.publishedAt))
    assert.include(["pending", "confirmed"], receipt.status)
  }

  layer(anchorLayer, { excludeTestServices: !testClock, timeout: testTimeout })(
    `Anchor conformance (${name})`,
    (it) => {
      it.effect(
        "publish returns a receipt that getTx and lookup find",
        () =>
          Effect.gen(function* () {
            const anchor = yield* Anchor
            const root = randomRoot()
            const receipt = yield* publish(root, 7)
            assertReceipt(receipt, root, 7)
            const byTx = yield* anchor.getTx(receipt.txId)
            assert.strictEqual(byTx.txId, receipt.txId)
            assert.strictEqual(byTx.root, root)
            assert.strictEqual(byTx.size, 7)
            assert.strictEqual(byTx.tick, receipt.tick)
            assert.strictEqual(byTx.chain, receipt.chain)
            const byRoot = yield* anchor.lookup(root)
            assert.isTrue(Option.isSome(byRoot))
            assert.strictEqual(Option.getOrThrow(byRoot).root, root)
            assert.strictEqual(Option.getOrThrow(byRoot).size, 7)
          }),
        testTimeout
      )

      it.effect(
        "an unknown transaction is AnchorNotFound, an unknown root is none",
        () =>
          Effect.gen(function* () {
            const anchor = yield* Anchor
            const id = `unknown-${crypto.randomUUID()}`
            const error = yield* Effect.flip(anchor.getTx(id))
            assert.strictEqual(error._tag, "AnchorNotFound")
            assert.strictEqual((error as { readonly id: string }).id, id)
            assert.isTrue(Option.isNone(yield* anchor.lookup(randomRoot())))
          }),
        testTimeout
      )

      it.effect(
        "receipts confirm, and getTx and lookup show the confirmation",
        () =>
          Effect.gen(function* () {
            const anchor = yield* Anchor
            const root = randomRoot()
            const published = yield* publish(root, 42)
            const final = yield* confirmed(root)
            assertReceipt(final, root, 42)
            assert.strictEqual(final.status, "confirmed")
            assert.isDefined(final.confirmedAt)
            assert.isAtLeast(final.confirmedAt!, published.publishedAt)
            const byTx = yield* anchor.getTx(final.txId)
            assert.strictEqual(byTx.status, "confirmed")
            assert.strictEqual(byTx.confirmedAt, final.confirmedAt)
            assert.strictEqual(byTx.root, root)
          }),
        testTimeout
      )

      it.effect(
        "roots stay distinct",
        () =>
          Effect.gen(function* () {
            const anchor = yield* Anchor
            const [a, b] = [randomRoot(), randomRoot()]
            const receiptA = yield* publish(a, 1)
            const receiptB = yield* publish(b, 2)
            assert.notStrictEqual(receiptA.txId, receiptB.txId)
            const [finalA, finalB] = [yield* confirmed(a), yield* confirmed(b)]
            assert.notStrictEqual(finalA.txId, finalB.txId)
            assert.deepStrictEqual([finalA.root, finalA.size], [a, 1])
            assert.deepStrictEqual([finalB.root, finalB.size], [b, 2])
            const txA = yield* anchor.getTx(finalA.txId)
            const txB = yield* anchor.getTx(finalB.txId)
            assert.deepStrictEqual([txA.root, txA.size, txB.root, txB.size], [a, 1, b, 2])
          }),
        testTimeout
      )

      it.effect(
        "concurrent publishes each get their own transaction, and all confirm",
        () =>
          Effect.gen(function* () {
            const anchor = yield* Anchor
            const roots = Array.from({ length: 4 }, randomRoot)
            const receipts = yield* drive(
              Effect.forEach(roots, (root, i) => anchor.publish(root, i + 10), { concurrency: "unbounded" })
            )
            for (const [i, receipt] of receipts.entries()) assertReceipt(receipt, roots[i]!, i + 10)
            const finals = yield* Effect.forEach(roots, confirmed)
            assert.strictEqual(new Set(finals.map((r) => r.txId)).size, roots.length)
            for (const [i, root] of roots.entries()) {
              const found = Option.getOrThrow(yield* anchor.lookup(root))
              assert.deepStrictEqual([found.root, found.size, found.status], [root, i + 10, "confirmed"])
              assert.strictEqual((yield* anchor.getTx(found.txId)).root, root)
            }
          }),
        testTimeout
      )
    }
  )
}
