import { assert, describe, it } from "@effect/vitest"
import {
  Chain,
  decodeAnchorInput,
  fromBase64,
  identityFromPublicKey,
  isTxId,
  k12,
  layerMock,
  MOCK_SEED,
  makeAnchor,
  makeMockSigner,
  QubicApiError,
  QubicNode,
  Signer
} from "@mandate/adapters/qubic"
import { Anchor, type AnchorReceipt, Canonical } from "@mandate/core"
import { suite } from "@mandate/core/conformance/anchor"
import { Effect, Fiber, Option } from "effect"
import { TestClock } from "effect/testing"
import { mockSigner, seedB, signedTx } from "../utils/qubic.ts"

suite("qubic-mock", layerMock())

const root = () => Canonical.sha256Hex(crypto.randomUUID())
const seconds = (n: number) => TestClock.adjust(n * 1000)

// Runs `self` while TestClock moves forward a second at a time
const drive = <A, E, R>(self: Effect.Effect<A, E, R>, limit = 600) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(self)
    for (let i = 0; fiber.pollUnsafe() === undefined; i++) {
      if (i > limit) return yield* Effect.die(new Error("still running"))
      yield* seconds(1)
    }
    return yield* Fiber.join(fiber)
  })

const settle = (r: string) =>
  drive(
    Effect.gen(function* () {
      const anchor = yield* Anchor
      for (;;) {
        const receipt = yield* anchor.lookup(r)
        if (Option.isSome(receipt) && receipt.value.status !== "pending") return receipt.value
        yield* Effect.sleep("1 second")
      }
    })
  )

const mockIdentity = identityFromPublicKey(Effect.runSync(makeMockSigner(MOCK_SEED)).publicKey)

describe("Anchor on the simulated Qubic chain", () => {
  it.effect("anchors the root and size in a real-format transaction from the anchor identity to itself", () =>
    Effect.gen(function* () {
      const anchor = yield* Anchor
      const chain = yield* Chain
      const now = (yield* chain.tickInfo).tick
      const r = root()
      const receipt = yield* anchor.publish(r, 1234)
      assert.strictEqual(receipt.chain, "qubic-mock")
      assert.strictEqual(receipt.status, "pending")
      assert.strictEqual(receipt.tick, now + 15)
      assert.isTrue(isTxId(receipt.txId))
      const final = yield* settle(r)
      assert.strictEqual(final.status, "confirmed")
      const tx = yield* chain.transactionByHash(final.txId)
      assert.deepStrictEqual(
        [tx.source, tx.destination, tx.amount, tx.inputSize],
        [mockIdentity, mockIdentity, "0", 40]
      )
      assert.deepStrictEqual(Option.getOrThrow(decodeAnchorInput(fromBase64(tx.inputData)!)), { root: r, size: 1234 })
      assert.strictEqual(final.confirmedAt, Number(tx.timestamp))
    }).pipe(Effect.provide(layerMock()))
  )

  it.effect("a dropped transaction (404 once archived) is broadcast again with a new target tick", () =>
    Effect.gen(function* () {
      const anchor = yield* Anchor
      const chain = yield* Chain
      yield* chain.faults.dropTransactions(1)
      const r = root()
      const first = yield* anchor.publish(r, 5)
      const final = yield* settle(r)
      assert.strictEqual(final.status, "confirmed")
      assert.notStrictEqual(final.txId, first.txId)
      assert.isAbove(final.tick, first.tick)
      assert.strictEqual((yield* anchor.getTx(first.txId)).status, "dropped")
      const gone = yield* Effect.flip(chain.transactionByHash(first.txId))
      assert.isTrue(gone._tag === "QubicApiError" && gone.status === 404)
      assert.strictEqual((yield* chain.transactionByHash(final.txId)).tickNumber, final.tick)
    }).pipe(Effect.provide(layerMock()))
  )

  it.effect("gives up after maxRebroadcasts drops and leaves the receipt dropped", () =>
    Effect.gen(function* () {
      const anchor = yield* Anchor
      const chain = yield* Chain
      yield* chain.faults.dropTransactions(10)
      const r = root()
      yield* anchor.publish(r, 5)
      const final = yield* settle(r)
      assert.strictEqual(final.status, "dropped")
    }).pipe(Effect.provide(layerMock({ maxRebroadcasts: 1 })))
  )

  it.effect("failed broadcasts are retried with backoff; publish fails with AnchorError when they keep failing", () =>
    Effect.gen(function* () {
      const anchor = yield* Anchor
      const chain = yield* Chain
      yield* chain.faults.failBroadcasts(3)
      const recovered = yield* drive(anchor.publish(root(), 1))
      assert.strictEqual(recovered.status, "pending")
      yield* chain.faults.failBroadcasts(2, { mode: "unpropagated" })
      const unpropagated = root()
      yield* drive(anchor.publish(unpropagated, 2))
      assert.strictEqual((yield* settle(unpropagated)).status, "confirmed")
      yield* chain.faults.failBroadcasts(1000)
      const error = yield* Effect.flip(drive(anchor.publish(root(), 3)))
      assert.strictEqual(error._tag, "AnchorError")
      assert.match(error.message, /broadcast failed/)
    }).pipe(Effect.provide(layerMock()))
  )

  it.effect("a stalled network leaves the receipt pending; it confirms when ticks resume", () =>
    Effect.gen(function* () {
      const anchor = yield* Anchor
      const chain = yield* Chain
      const r = root()
      yield* anchor.publish(r, 9)
      yield* chain.faults.stallTicks()
      yield* seconds(120)
      assert.strictEqual(Option.getOrThrow(yield* anchor.lookup(r)).status, "pending")
      yield* chain.faults.resumeTicks
      assert.strictEqual((yield* settle(r)).status, "confirmed")
    }).pipe(Effect.provide(layerMock()))
  )

  it.effect("an epoch transition discards the pending transaction; the root is anchored again in the new epoch", () =>
    Effect.gen(function* () {
      const anchor = yield* Anchor
      const chain = yield* Chain
      const r = root()
      const first = yield* anchor.publish(r, 11)
      yield* seconds(3)
      yield* chain.faults.epochTransition("5 minutes")
      const final = yield* settle(r)
      assert.strictEqual(final.status, "confirmed")
      const info = yield* chain.tickInfo
      assert.strictEqual(info.epoch, 161)
      assert.isAtLeast(final.tick, info.initialTick)
      assert.strictEqual((yield* anchor.getTx(first.txId)).status, "dropped")
    }).pipe(Effect.provide(layerMock()))
  )

  it.effect("a publish during an epoch outage waits out the outage with its retries", () =>
    Effect.gen(function* () {
      const anchor = yield* Anchor
      const chain = yield* Chain
      yield* chain.faults.epochTransition("5 seconds")
      const r = root()
      const receipt = yield* drive(anchor.publish(r, 1))
      assert.isAtLeast(receipt.tick, (yield* chain.tickInfo).initialTick)
      assert.strictEqual((yield* settle(r)).status, "confirmed")
    }).pipe(Effect.provide(layerMock()))
  )

  it.effect(
    "publishes one transaction at a time: the second waits until the first is final, nothing is overwritten",
    () =>
      Effect.gen(function* () {
        const anchor = yield* Anchor
        const [r1, r2] = [root(), root()]
        const [first, second] = yield* drive(
          Effect.all([anchor.publish(r1, 1), anchor.publish(r2, 2)], { concurrency: "unbounded" })
        )
        const final1 = yield* settle(r1)
        assert.strictEqual(final1.txId, first.txId) // confirmed as first sent: not overwritten, not rebroadcast
        assert.isAbove(second.tick, final1.tick)
        assert.isAtLeast(second.publishedAt, final1.confirmedAt!)
        assert.strictEqual((yield* settle(r2)).txId, second.txId)
      }).pipe(Effect.provide(layerMock()))
  )

  it.effect("publishing a pending or confirmed root again returns its receipt", () =>
    Effect.gen(function* () {
      const anchor = yield* Anchor
      const r = root()
      const [a, b] = yield* Effect.all([anchor.publish(r, 3), anchor.publish(r, 3)], { concurrency: "unbounded" })
      assert.strictEqual(a.txId, b.txId)
      const final = yield* settle(r)
      assert.strictEqual((yield* anchor.publish(r, 3)).txId, final.txId)
    }).pipe(Effect.provide(layerMock()))
  )

  it.effect("with awaitConfirmation, publish returns the confirmed receipt", () =>
    Effect.gen(function* () {
      const anchor = yield* Anchor
      const receipt: AnchorReceipt = yield* drive(anchor.publish(root(), 8))
      assert.strictEqual(receipt.status, "confirmed")
      assert.isDefined(receipt.confirmedAt)
    }).pipe(Effect.provide(layerMock({ awaitConfirmation: "2 minutes" })))
  )

  it.effect("a broadcast refused because the network passed the target tick is built again and sent", () =>
    Effect.gen(function* () {
      const node = yield* QubicNode
      let stale = true
      // the first tick-info is 20 ticks old, as from a node that lags the one the gateway checks against
      const lagging = QubicNode.of({
        ...node,
        tickInfo: Effect.map(node.tickInfo, (info) => {
          const answer = stale ? { ...info, tick: info.tick - 20 } : info
          stale = false
          return answer
        })
      })
      const anchor = yield* makeAnchor({ retryBase: "100 millis" }).pipe(
        Effect.provideService(QubicNode, lagging),
        Effect.provideService(Signer, mockSigner(seedB))
      )
      const receipt = yield* drive(anchor.publish(root(), 1))
      assert.isAbove(receipt.tick, (yield* node.tickInfo).tick)
    }).pipe(Effect.provide(layerMock()))
  )

  it.effect("a broadcast refused for any other reason is not retried", () =>
    Effect.gen(function* () {
      const node = yield* QubicNode
      let calls = 0
      const refusing = QubicNode.of({
        ...node,
        broadcastTransaction: () =>
          Effect.suspend(() => {
            calls += 1
            return Effect.fail(QubicApiError.of("broadcastTransaction", 3, "invalid signature"))
          })
      })
      const anchor = yield* makeAnchor().pipe(
        Effect.provideService(QubicNode, refusing),
        Effect.provideService(Signer, mockSigner(seedB))
      )
      const error = yield* Effect.flip(drive(anchor.publish(root(), 1)))
      assert.strictEqual(error._tag, "AnchorError")
      assert.match(error.message, /invalid signature/)
      assert.strictEqual(calls, 1)
    }).pipe(Effect.provide(layerMock()))
  )

  it.effect("getTx reads a transaction it did not send from the archive; a non-anchor transaction is not found", () =>
    Effect.gen(function* () {
      const anchor = yield* Anchor
      const chain = yield* Chain
      const other = yield* makeAnchor({ chain: "qubic-mock" }).pipe(
        Effect.provideService(QubicNode, chain),
        Effect.provideService(Signer, mockSigner(seedB))
      )
      const r = root()
      yield* other.publish(r, 77)
      const sent = yield* drive(
        Effect.gen(function* () {
          for (;;) {
            const receipt = Option.getOrThrow(yield* other.lookup(r))
            if (receipt.status === "confirmed") return receipt
            yield* Effect.sleep("1 second")
          }
        })
      )
      const read = yield* anchor.getTx(sent.txId)
      assert.deepStrictEqual(read, { ...sent, publishedAt: sent.confirmedAt! })
      assert.strictEqual(Option.getOrThrow(yield* anchor.lookup(r)).txId, sent.txId)
      const transfer = yield* signedTx(mockSigner(seedB), { tick: (yield* chain.tickInfo).tick + 2 })
      yield* chain.broadcastTransaction(transfer.encoded)
      yield* seconds(6)
      assert.strictEqual((yield* chain.transactionByHash(transfer.txId)).inputSize, 0)
      assert.strictEqual((yield* Effect.flip(anchor.getTx(transfer.txId)))._tag, "AnchorNotFound")
      const unknown = identityFromPublicKey(k12(new TextEncoder().encode(r)), { lowercase: true }) // well-formed
      assert.strictEqual((yield* Effect.flip(anchor.getTx(unknown)))._tag, "AnchorNotFound")
    }).pipe(Effect.provide(layerMock()))
  )

  it.effect("refuses a malformed root or size, and invalid options", () =>
    Effect.gen(function* () {
      const anchor = yield* Anchor
      assert.match((yield* Effect.flip(anchor.publish("ABC", 1))).message, /64 lowercase hex/)
      assert.match((yield* Effect.flip(anchor.publish("a".repeat(64), -1))).message, /size/)
      const bad = yield* Effect.flip(
        Effect.provide(
          Anchor.use(() => Effect.void),
          layerMock({ destination: "nobody", tickOffset: 0 })
        )
      )
      assert.strictEqual(bad._tag, "InvalidInput")
    }).pipe(Effect.provide(layerMock()))
  )
})
