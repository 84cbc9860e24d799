import { assert, describe, layer } from "@effect/vitest"
import {
  Chain,
  identityFromPublicKey,
  k12,
  layerChain,
  layerMockServer,
  layerMockSigner,
  layerRpc,
  layerRpcNode,
  makeAnchor,
  mockServerUrl,
  type QubicError,
  QubicNode,
  Signer,
  toBase64
} from "@mandate/adapters/qubic"
import { Anchor, type AnchorReceipt, Canonical } from "@mandate/core"
import { suite } from "@mandate/core/conformance/anchor"
import { Effect, Layer, Option } from "effect"
import { mockSigner, seedA, seedB, signedTx } from "../utils/qubic.ts"

// The simulated chain behind the mock HTTP server; the RPC layer only reaches it over HTTP
const network = () => layerChain({ tickDuration: "40 millis", archiveLag: 2 })
const rpcOptions = { tickOffset: 4, pollInterval: "10 millis", retryBase: "20 millis" } as const

const rpcAnchor = () => {
  const server = layerMockServer().pipe(Layer.provideMerge(network()))
  return Layer.unwrap(Effect.map(mockServerUrl, (url) => layerRpc({ url, ...rpcOptions }))).pipe(
    Layer.provide(layerMockSigner(seedA)),
    Layer.provideMerge(server)
  )
}

suite("qubic-rpc over the mock server", rpcAnchor(), { testClock: false })

const root = () => Canonical.sha256Hex(crypto.randomUUID())

// Polls (real time) until `root`'s receipt is no longer pending
const settle = (anchor: Anchor["Service"], r: string) =>
  Effect.gen(function* () {
    for (let i = 0; i < 800; i++) {
      const receipt = yield* anchor.lookup(r)
      if (Option.isSome(receipt) && receipt.value.status !== "pending") return receipt.value
      yield* Effect.sleep("10 millis")
    }
    return yield* Effect.die(new Error(`root ${r} still pending`))
  })

const withoutPublishedAt = ({ publishedAt: _, ...rest }: AnchorReceipt) => rest

describe("Anchor over the Qubic RPC API", () => {
  layer(rpcAnchor(), { excludeTestServices: true })("confirmation workflow and faults over HTTP", (it) => {
    it.effect("a dropped transaction (404 after its tick is archived) is broadcast again", () =>
      Effect.gen(function* () {
        const anchor = yield* Anchor
        const chain = yield* Chain
        yield* chain.faults.dropTransactions(1)
        const r = root()
        const first = yield* anchor.publish(r, 3)
        const final = yield* settle(anchor, r)
        assert.strictEqual(final.status, "confirmed")
        assert.notStrictEqual(final.txId, first.txId)
        assert.strictEqual((yield* anchor.getTx(first.txId)).status, "dropped")
        assert.strictEqual((yield* chain.transactionByHash(final.txId)).tickNumber, final.tick)
      })
    )

    it.effect("failed broadcasts — 500s, or no peer reached — are retried until one lands", () =>
      Effect.gen(function* () {
        const anchor = yield* Anchor
        const chain = yield* Chain
        yield* chain.faults.failBroadcasts(3)
        const a = root()
        yield* anchor.publish(a, 1)
        assert.strictEqual((yield* settle(anchor, a)).status, "confirmed")
        yield* chain.faults.failBroadcasts(2, { mode: "unpropagated" })
        const b = root()
        yield* anchor.publish(b, 2)
        assert.strictEqual((yield* settle(anchor, b)).status, "confirmed")
      })
    )

    it.effect("stalled ticks keep the receipt pending; it confirms once the network moves again", () =>
      Effect.gen(function* () {
        const anchor = yield* Anchor
        const chain = yield* Chain
        const r = root()
        yield* anchor.publish(r, 4)
        yield* chain.faults.stallTicks()
        yield* Effect.sleep("400 millis")
        assert.strictEqual(Option.getOrThrow(yield* anchor.lookup(r)).status, "pending")
        yield* chain.faults.resumeTicks
        assert.strictEqual((yield* settle(anchor, r)).status, "confirmed")
      })
    )

    it.effect("an epoch transition drops the pending transaction; the root is anchored in the new epoch", () =>
      Effect.gen(function* () {
        const anchor = yield* Anchor
        const chain = yield* Chain
        const r = root()
        const first = yield* anchor.publish(r, 5)
        yield* chain.faults.epochTransition("300 millis")
        const final = yield* settle(anchor, r)
        assert.strictEqual(final.status, "confirmed")
        assert.isAtLeast(final.tick, (yield* chain.tickInfo).initialTick)
        assert.strictEqual((yield* anchor.getTx(first.txId)).status, "dropped")
      })
    )

    it.effect("the mock and the RPC client agree: same receipts through layerMock's node and layerRpc", () =>
      Effect.gen(function* () {
        const rpc = yield* Anchor
        const node = yield* QubicNode // the simulated chain, in process
        // an anchor on the chain in process, with another identity so the two never share a pending slot
        const local = yield* makeAnchor({ chain: "qubic", ...rpcOptions }).pipe(
          Effect.provideService(QubicNode, node),
          Effect.provideService(Signer, mockSigner(seedB))
        )
        const viaRpc = root()
        yield* rpc.publish(viaRpc, 21)
        const rpcReceipt = yield* settle(rpc, viaRpc)
        const viaLocal = root()
        yield* local.publish(viaLocal, 22)
        const localReceipt = yield* settle(local, viaLocal)
        // each layer reads the other's transaction back from the chain: the receipts match field for field
        assert.deepStrictEqual(withoutPublishedAt(yield* local.getTx(rpcReceipt.txId)), withoutPublishedAt(rpcReceipt))
        assert.deepStrictEqual(
          withoutPublishedAt(yield* rpc.getTx(localReceipt.txId)),
          withoutPublishedAt(localReceipt)
        )
        assert.deepStrictEqual(
          Option.map(yield* local.lookup(viaRpc), (r) => r.txId),
          Option.some(rpcReceipt.txId)
        )
      })
    )

    it.effect("the mock and the RPC client agree: every endpoint answers the same, errors included", () =>
      Effect.gen(function* () {
        const chain = yield* Chain
        const url = yield* mockServerUrl
        const http = yield* QubicNode.use((n) => Effect.succeed(n)).pipe(Effect.provide(layerRpcNode({ url })))
        const sent = yield* signedTx(mockSigner(seedB), { tick: (yield* chain.tickInfo).tick + 3, amount: 0n })
        yield* http.broadcastTransaction(sent.encoded)
        // freeze the network, and let the archive catch up, so both clients see the same state
        yield* Effect.sleep("300 millis")
        yield* chain.faults.stallTicks()
        yield* Effect.sleep("200 millis")
        const last = yield* chain.lastProcessedTick
        const tick = (yield* chain.transactionByHash(sent.txId)).tickNumber
        const same = <A>(f: (node: QubicNode["Service"]) => Effect.Effect<A, QubicError>) =>
          Effect.gen(function* () {
            const [direct, overHttp] = yield* Effect.all([Effect.result(f(chain)), Effect.result(f(http))])
            assert.deepStrictEqual(overHttp, direct)
          })
        yield* same((n) => n.tickInfo)
        yield* same((n) => n.lastProcessedTick)
        yield* same((n) => n.processedTickIntervals)
        yield* same((n) => n.balance(sent.source))
        yield* same((n) => n.transactionByHash(sent.txId))
        yield* same((n) => n.tickData(tick))
        yield* same((n) => n.transactionsForTick(tick))
        yield* same((n) => n.tickData(last.tickNumber + 1))
        yield* same((n) => n.tickData(1))
        yield* same((n) => n.transactionByHash("nope"))
        yield* same((n) => n.transactionByHash(sent.txId.replace(/^./, (c) => (c === "a" ? "b" : "a")))) // bad checksum
        yield* same((n) => n.transactionByHash(identityFromPublicKey(k12(Uint8Array.of(7)), { lowercase: true })))
        yield* same((n) => n.balance("NOBODY"))
        yield* same((n) => n.broadcastTransaction("%%%"))
        yield* same((n) => n.broadcastTransaction(toBase64(new Uint8Array(20))))
        yield* same((n) => n.broadcastTransaction(sent.encoded)) // its tick has passed
        yield* chain.faults.resumeTicks
      })
    )
  })
})
