import { assert, describe, it } from "@effect/vitest"
import {
  Chain,
  fromBase64,
  identityFromPublicKey,
  layerChain,
  type QubicError,
  toBase64
} from "@mandate/adapters/qubic"
import { Effect, Option } from "effect"
import { TestClock } from "effect/testing"
import { mockSigner, seedA, seedB, signedTx } from "../utils/qubic.ts"

const a = mockSigner(seedA)
const b = mockSigner(seedB)
const idA = identityFromPublicKey(a.publicKey)
const idB = identityFromPublicKey(b.publicKey)

const network = layerChain({ tickDuration: "1 second", archiveLag: 2, epochTickGap: 1000, balances: { [idA]: 1000 } })

const ticks = (n: number) => TestClock.adjust(n * 1000)

// The gateway error of a failing call
const apiError = <A>(effect: Effect.Effect<A, QubicError>) =>
  Effect.map(Effect.flip(effect), (error) => {
    assert.strictEqual(error._tag, "QubicApiError")
    return error as Extract<QubicError, { _tag: "QubicApiError" }>
  })

const broadcast = (signer: typeof a, options: Parameters<typeof signedTx>[1]) =>
  Effect.gen(function* () {
    const chain = yield* Chain
    const tx = yield* signedTx(signer, options)
    const answer = yield* chain.broadcastTransaction(tx.encoded)
    assert.deepStrictEqual(answer, { peersBroadcasted: 3, encodedTransaction: tx.encoded, transactionId: tx.txId })
    return tx
  })

describe("simulated Qubic chain", () => {
  it.effect("ticks advance with the clock and the archive trails the network by archiveLag ticks", () =>
    Effect.gen(function* () {
      const chain = yield* Chain
      assert.deepStrictEqual(yield* chain.tickInfo, {
        tick: 20_000_003,
        duration: 1,
        epoch: 160,
        initialTick: 20_000_000
      })
      assert.deepStrictEqual(yield* chain.lastProcessedTick, {
        tickNumber: 20_000_000,
        epoch: 160,
        intervalInitialTick: 20_000_000
      })
      yield* ticks(5)
      assert.strictEqual((yield* chain.tickInfo).tick, 20_000_008)
      assert.strictEqual((yield* chain.lastProcessedTick).tickNumber, 20_000_005)
      assert.deepStrictEqual(yield* chain.processedTickIntervals, [
        { epoch: 160, firstTick: 20_000_000, lastTick: 20_000_005 }
      ])
    }).pipe(Effect.provide(network))
  )

  it.effect("a transaction lands in its target tick, and the archive answers 404 until it has processed it", () =>
    Effect.gen(function* () {
      const chain = yield* Chain
      const t = (yield* chain.tickInfo).tick
      const input = Uint8Array.from([1, 2, 3])
      const tx = yield* broadcast(a, { tick: t + 2, input, inputType: 7 })
      assert.deepStrictEqual(yield* chain.pending(idA), Option.some(tx.txId))
      yield* ticks(3) // the network is past t + 2, the archive is at t
      assert.strictEqual((yield* chain.tickInfo).tick, t + 3)
      const early = yield* apiError(chain.transactionByHash(tx.txId))
      assert.deepStrictEqual([early.status, early.code, early.message], [404, 5, "transaction not found"])
      yield* ticks(2)
      const archived = yield* chain.transactionByHash(tx.txId)
      assert.deepStrictEqual(archived, {
        hash: tx.txId,
        amount: "0",
        source: idA,
        destination: idA,
        tickNumber: t + 2,
        timestamp: archived.timestamp,
        inputType: 7,
        inputSize: 3,
        inputData: toBase64(input),
        signature: toBase64(tx.tx.signature),
        moneyFlew: false
      })
      assert.match(archived.timestamp, /^\d+$/)
      assert.deepStrictEqual(fromBase64(archived.inputData), input)
      assert.isTrue(Option.isNone(yield* chain.pending(idA)))
      const tickData = yield* chain.tickData(t + 2)
      assert.deepStrictEqual(tickData.transactionHashes, [tx.txId])
      assert.strictEqual(tickData.timestamp, archived.timestamp)
      assert.deepStrictEqual(tickData.contractFees, [])
      assert.deepStrictEqual(yield* chain.transactionsForTick(t + 2), [archived])
      assert.deepStrictEqual(yield* chain.transactionsForTick(t + 1), [])
      const ahead = (yield* chain.lastProcessedTick).tickNumber + 1
      const notYet = yield* apiError(chain.tickData(ahead))
      assert.deepStrictEqual(
        [notYet.status, notYet.code, notYet.message],
        [400, 9, `requested tick number ${ahead} is greater than last processed tick ${ahead - 1}`]
      )
    }).pipe(Effect.provide(network))
  )

  it.effect("the target tick must be ahead of the current tick", () =>
    Effect.gen(function* () {
      const chain = yield* Chain
      const t = (yield* chain.tickInfo).tick
      for (const tick of [t, t - 5]) {
        const tx = yield* signedTx(a, { tick })
        const error = yield* apiError(chain.broadcastTransaction(tx.encoded))
        assert.deepStrictEqual(
          [error.status, error.code, error.message],
          [400, 3, `Target tick: ${tick} for the transaction should be greater than max tick: ${t}`]
        )
      }
      assert.isTrue(Option.isNone(yield* chain.pending(idA)))
    }).pipe(Effect.provide(network))
  )

  it.effect("one pending transaction per source: a higher tick overwrites it, a lower or equal one is ignored", () =>
    Effect.gen(function* () {
      const chain = yield* Chain
      const t = (yield* chain.tickInfo).tick
      const first = yield* broadcast(a, { tick: t + 5 })
      const higher = yield* broadcast(a, { tick: t + 8 })
      assert.deepStrictEqual(yield* chain.pending(idA), Option.some(higher.txId))
      const lower = yield* broadcast(a, { tick: t + 6 }) // answered 200, but ignored
      const equal = yield* broadcast(a, { tick: t + 8, amount: 1n })
      assert.deepStrictEqual(yield* chain.pending(idA), Option.some(higher.txId))
      const other = yield* broadcast(b, { tick: t + 5 }) // another source has its own slot
      assert.deepStrictEqual(yield* chain.pending(idB), Option.some(other.txId))
      yield* ticks(12)
      for (const dropped of [first, lower, equal]) {
        assert.strictEqual((yield* apiError(chain.transactionByHash(dropped.txId))).status, 404)
      }
      assert.strictEqual((yield* chain.transactionByHash(higher.txId)).tickNumber, t + 8)
      assert.strictEqual((yield* chain.transactionByHash(other.txId)).tickNumber, t + 5)
    }).pipe(Effect.provide(network))
  )

  it.effect("moves QU only when the source holds enough, and reports balances with 64-bit strings", () =>
    Effect.gen(function* () {
      const chain = yield* Chain
      const t = (yield* chain.tickInfo).tick
      const pay = yield* broadcast(a, { tick: t + 2, amount: 300n, to: b })
      const overdraw = yield* broadcast(b, { tick: t + 2, amount: 500n, to: a }) // B holds 300 by then
      yield* ticks(5)
      assert.isTrue((yield* chain.transactionByHash(pay.txId)).moneyFlew)
      assert.strictEqual((yield* chain.transactionByHash(pay.txId)).amount, "300")
      assert.isFalse((yield* chain.transactionByHash(overdraw.txId)).moneyFlew)
      const balanceA = yield* chain.balance(idA)
      assert.deepStrictEqual(balanceA, {
        id: idA,
        balance: "700",
        validForTick: (yield* chain.tickInfo).tick,
        latestIncomingTransferTick: 0,
        latestOutgoingTransferTick: t + 2,
        incomingAmount: "1000",
        outgoingAmount: "300",
        numberOfIncomingTransfers: 0,
        numberOfOutgoingTransfers: 1
      })
      assert.strictEqual((yield* chain.balance(idB)).balance, "300")
      const bad = yield* apiError(chain.balance(idA.toLowerCase()))
      assert.deepStrictEqual([bad.status, bad.code], [400, 3])
    }).pipe(Effect.provide(network))
  )

  it.effect("refuses malformed broadcasts and ids as the gateway does", () =>
    Effect.gen(function* () {
      const chain = yield* Chain
      const notBase64 = yield* apiError(chain.broadcastTransaction("not base64!"))
      assert.deepStrictEqual([notBase64.status, notBase64.code], [400, 3])
      const short = yield* apiError(chain.broadcastTransaction(toBase64(new Uint8Array(10))))
      assert.deepStrictEqual([short.status, short.code], [500, 13])
      const t = (yield* chain.tickInfo).tick
      const valid = (yield* signedTx(a, { tick: t + 3 })).bytes
      const padded = yield* apiError(chain.broadcastTransaction(toBase64(new Uint8Array([...valid, 0]))))
      assert.deepStrictEqual([padded.status, padded.code], [400, 3])
      const huge = new Uint8Array(144 + 2000)
      huge.set(valid.slice(0, 80))
      new DataView(huge.buffer).setUint16(78, 2000, true)
      const oversized = yield* apiError(chain.broadcastTransaction(toBase64(huge)))
      assert.deepStrictEqual([oversized.status, oversized.code], [400, 3])
      assert.match(oversized.message, /at most 1024/)
      for (const id of ["nope", idA]) {
        const error = yield* apiError(chain.transactionByHash(id))
        assert.deepStrictEqual([error.status, error.code], [400, 3])
        assert.match(error.message, /^invalid id format/)
      }
    }).pipe(Effect.provide(network))
  )

  it.effect("injected fault: failing broadcasts, as an error or as a broadcast that reaches no peer", () =>
    Effect.gen(function* () {
      const chain = yield* Chain
      const t = (yield* chain.tickInfo).tick
      yield* chain.faults.failBroadcasts(2)
      const tx = yield* signedTx(a, { tick: t + 3 })
      for (let i = 0; i < 2; i++) {
        const error = yield* apiError(chain.broadcastTransaction(tx.encoded))
        assert.deepStrictEqual([error.status, error.code], [500, 13])
      }
      assert.strictEqual((yield* chain.broadcastTransaction(tx.encoded)).peersBroadcasted, 3)
      yield* chain.faults.failBroadcasts(1, { mode: "unpropagated" })
      const lost = yield* signedTx(b, { tick: t + 3 })
      const answer = yield* chain.broadcastTransaction(lost.encoded)
      assert.deepStrictEqual(answer, {
        peersBroadcasted: 0,
        encodedTransaction: lost.encoded,
        transactionId: lost.txId
      })
      assert.isTrue(Option.isNone(yield* chain.pending(idB)))
      yield* ticks(6)
      assert.strictEqual((yield* chain.transactionByHash(tx.txId)).tickNumber, t + 3)
      assert.strictEqual((yield* apiError(chain.transactionByHash(lost.txId))).status, 404)
    }).pipe(Effect.provide(network))
  )

  it.effect("injected fault: dropped transactions are never included", () =>
    Effect.gen(function* () {
      const chain = yield* Chain
      const t = (yield* chain.tickInfo).tick
      yield* chain.faults.dropTransactions(1)
      const dropped = yield* broadcast(a, { tick: t + 2 })
      const kept = yield* broadcast(b, { tick: t + 3 })
      yield* ticks(6)
      assert.strictEqual((yield* apiError(chain.transactionByHash(dropped.txId))).status, 404)
      assert.deepStrictEqual((yield* chain.tickData(t + 2)).transactionHashes, [])
      assert.strictEqual((yield* chain.transactionByHash(kept.txId)).tickNumber, t + 3)
    }).pipe(Effect.provide(network))
  )

  it.effect("injected fault: stalled ticks; the archive catches up, broadcasts are still accepted", () =>
    Effect.gen(function* () {
      const chain = yield* Chain
      yield* chain.faults.stallTicks()
      const t = (yield* chain.tickInfo).tick
      yield* ticks(10)
      assert.strictEqual((yield* chain.tickInfo).tick, t)
      assert.strictEqual((yield* chain.lastProcessedTick).tickNumber, t - 1)
      const tx = yield* broadcast(a, { tick: t + 1 })
      yield* chain.faults.resumeTicks
      yield* ticks(4)
      assert.strictEqual((yield* chain.tickInfo).tick, t + 4)
      assert.strictEqual((yield* chain.transactionByHash(tx.txId)).tickNumber, t + 1)
      yield* chain.faults.stallTicks("5 seconds") // a stall that ends by itself
      yield* ticks(4)
      assert.strictEqual((yield* chain.tickInfo).tick, t + 4)
      yield* ticks(3)
      assert.isAbove((yield* chain.tickInfo).tick, t + 4)
    }).pipe(Effect.provide(network))
  )

  it.effect("injected fault: an epoch transition — outage, pending transactions lost, a new tick interval", () =>
    Effect.gen(function* () {
      const chain = yield* Chain
      const t = (yield* chain.tickInfo).tick
      const lost = yield* broadcast(a, { tick: t + 5 })
      yield* chain.faults.epochTransition("1 minute")
      assert.isTrue(Option.isNone(yield* chain.pending(idA)))
      const during = yield* signedTx(b, { tick: t + 6 })
      const refused = yield* apiError(chain.broadcastTransaction(during.encoded))
      assert.deepStrictEqual([refused.status, refused.code], [503, 14])
      yield* ticks(30)
      assert.deepStrictEqual(yield* chain.tickInfo, { tick: t, duration: 1, epoch: 160, initialTick: 20_000_000 })
      assert.strictEqual((yield* chain.lastProcessedTick).tickNumber, t - 1) // the archive stays up and catches up
      yield* ticks(30) // the outage ends 60 s after it began
      assert.deepStrictEqual(yield* chain.tickInfo, { tick: t + 1000, duration: 1, epoch: 161, initialTick: t + 1000 })
      yield* ticks(10)
      assert.deepStrictEqual(yield* chain.lastProcessedTick, {
        tickNumber: t + 1007,
        epoch: 161,
        intervalInitialTick: t + 1000
      })
      assert.deepStrictEqual(yield* chain.processedTickIntervals, [
        { epoch: 160, firstTick: 20_000_000, lastTick: t - 1 },
        { epoch: 161, firstTick: t + 1000, lastTick: t + 1007 }
      ])
      assert.strictEqual((yield* apiError(chain.transactionByHash(lost.txId))).status, 404)
      const skipped = yield* apiError(chain.tickData(t + 5))
      assert.deepStrictEqual(
        [skipped.status, skipped.code, skipped.message],
        [400, 11, `provided tick number ${t + 5} was skipped by the system, next available tick is ${t + 1000}`]
      )
      const after = yield* broadcast(a, { tick: t + 1012 })
      yield* ticks(15)
      assert.strictEqual((yield* chain.transactionByHash(after.txId)).tickNumber, t + 1012)
    }).pipe(Effect.provide(network))
  )

  it.effect("refuses invalid options with the path of the bad field", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Effect.provide(
          Chain.use(() => Effect.void),
          layerChain({ balances: { nobody: 1 } })
        )
      )
      assert.strictEqual(error._tag, "InvalidInput")
      assert.strictEqual(error.path, "$.balances.nobody")
      const lag = yield* Effect.flip(
        Effect.provide(
          Chain.use(() => Effect.void),
          layerChain({ archiveLag: -1 })
        )
      )
      assert.strictEqual(lag.path, "$.archiveLag")
    })
  )
})
