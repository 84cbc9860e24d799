/**
 * Qubic adapter benchmark (`npm run bench:qubic`): the cost of real-format identities and transaction ids (K12)
 * against the machine's SHA-256, the simulated chain's broadcast and tick throughput, and round trips to the
 * mock gateway over HTTP. Figures go to benchmarks/README.md ("Qubic anchoring").
 */
import { createHash } from "node:crypto"
import {
  Chain,
  encodeAnchorInput,
  encodeTransaction,
  identityFromPublicKey,
  isIdentity,
  k12,
  layerChain,
  layerMockServer,
  layerRpcNode,
  makeMockSigner,
  mockServerUrl,
  QubicNode,
  type Signer,
  Signer as SignerTag,
  signTransaction,
  toBase64,
  txIdFromSignedBytes
} from "@mandate/adapters/qubic"
import { Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import { percentile } from "./support.ts"

const rate = (label: string, n: number, run: (i: number) => void) => {
  for (let i = 0; i < Math.min(n, 1000); i++) run(i) // warm up
  const start = performance.now()
  for (let i = 0; i < n; i++) run(i)
  const seconds = (performance.now() - start) / 1000
  console.log(
    `${label.padEnd(62)} ${Math.round(n / seconds)
      .toLocaleString("en-US")
      .padStart(12)} /s`
  )
}

const percentiles = (label: string, samples: Array<number>) => {
  const sorted = [...samples].sort((a, b) => a - b)
  const at = (p: number) => percentile(sorted, p).toFixed(2)
  console.log(`${label.padEnd(62)} p50 ${at(0.5)} ms  p95 ${at(0.95)} ms  p99 ${at(0.99)} ms`)
}

const signerFor = (i: number): Signer["Service"] =>
  Effect.runSync(
    makeMockSigner(
      String.fromCharCode(...Array.from({ length: 55 }, (_, j) => 97 + ((i * 7 + j * 13 + (i >> (j % 16))) % 26)))
    )
  )

const anchorTx = (signer: Signer["Service"], tick: number, i: number) =>
  Effect.runSync(
    signTransaction({
      sourcePublicKey: signer.publicKey,
      destinationPublicKey: signer.publicKey,
      amount: 0n,
      tick,
      inputType: 0,
      input: encodeAnchorInput(createHash("sha256").update(String(i)).digest("hex"), i)
    }).pipe(Effect.provideService(SignerTag, signer))
  )

console.log(`Qubic benchmark — Node ${process.version}, ${process.arch}`)

// 1. Hashing and encoding
const keys = Array.from({ length: 1024 }, (_, i) => k12(Uint8Array.of(i & 255, i >> 8)))
const identities = keys.map((key) => identityFromPublicKey(key))
const signer = signerFor(0)
const sampleTx = encodeTransaction(anchorTx(signer, 1_000_000, 1))
const sha = (data: Uint8Array) => createHash("sha256").update(data).digest()
const blocks = keys.map((key, i) => Uint8Array.from([...key, ...keys[(i + 1) & 1023]!]))
rate("SHA-256 (node:crypto) of 64 bytes (reference)", 300_000, (i) => sha(blocks[i & 1023]!))
rate(`SHA-256 (node:crypto) of a ${sampleTx.length}-byte anchor transaction`, 300_000, () => sha(sampleTx))
rate("K12 (@noble/hashes) of 32 bytes", 100_000, (i) => k12(keys[i & 1023]!))
rate(`transaction id: K12 of a ${sampleTx.length}-byte signed transaction`, 100_000, () =>
  txIdFromSignedBytes(sampleTx)
)
rate("identity from public key (base-26 + K12 checksum)", 100_000, (i) => identityFromPublicKey(keys[i & 1023]!))
rate("identity validation (decode + re-encode + checksum)", 100_000, (i) => isIdentity(identities[i & 1023]!))

// 2. The simulated chain: broadcasts accepted per second, and the time to process a tick full of them
const TXS = 5_000
const chainBench = Effect.gen(function* () {
  const chain = yield* Chain
  const target = (yield* chain.tickInfo).tick + 5
  const signers = Array.from({ length: TXS }, (_, i) => signerFor(i + 1))
  const encoded = signers.map((s, i) => toBase64(encodeTransaction(anchorTx(s, target, i))))
  let start = performance.now()
  for (const tx of encoded) yield* chain.broadcastTransaction(tx)
  const broadcastSeconds = (performance.now() - start) / 1000
  console.log(
    `${`chain: broadcasts accepted (${TXS} sources, base64 + decode + K12)`.padEnd(62)} ${Math.round(
      TXS / broadcastSeconds
    )
      .toLocaleString("en-US")
      .padStart(12)} /s`
  )
  start = performance.now()
  yield* TestClock.adjust("6 seconds") // the target tick and the archive catch-up
  const tickMillis = performance.now() - start
  const included = (yield* chain.transactionsForTick(target)).length
  console.log(
    `${`chain: ticks to process ${included} transactions in one tick`.padEnd(62)} ${tickMillis.toFixed(1).padStart(12)} ms`
  )
}).pipe(
  Effect.provide(layerChain({ tickDuration: "1 second", archiveLag: 0 })),
  Effect.provide(TestClock.layer()),
  Effect.scoped
)
await Effect.runPromise(chainBench)

// 3. The mock gateway over HTTP (loopback): sequential round trips with the RPC client
const ROUNDS = 2_000
const httpBench = Effect.gen(function* () {
  const url = yield* mockServerUrl
  const node = yield* QubicNode.use((n) => Effect.succeed(n)).pipe(Effect.provide(layerRpcNode({ url })))
  const tickInfo: Array<number> = []
  const byHash: Array<number> = []
  const missing = identityFromPublicKey(k12(Uint8Array.of(1)), { lowercase: true })
  for (let i = 0; i < ROUNDS; i++) {
    let t = performance.now()
    yield* node.tickInfo
    tickInfo.push(performance.now() - t)
    t = performance.now()
    yield* Effect.ignore(node.transactionByHash(missing))
    byHash.push(performance.now() - t)
  }
  percentiles(`http: GET tick-info (${ROUNDS} sequential)`, tickInfo.slice(100))
  percentiles(`http: POST getTransactionByHash → 404 (${ROUNDS} sequential)`, byHash.slice(100))
  const info = yield* node.tickInfo
  const txs = Array.from({ length: 500 }, (_, i) =>
    toBase64(encodeTransaction(anchorTx(signerFor(10_000 + i), info.tick + 1_000, i)))
  )
  const start = performance.now()
  yield* Effect.forEach(txs, (tx) => node.broadcastTransaction(tx), { concurrency: 8 })
  const seconds = (performance.now() - start) / 1000
  console.log(
    `${"http: broadcasts, 8 concurrent (500 sources)".padEnd(62)} ${Math.round(txs.length / seconds)
      .toLocaleString("en-US")
      .padStart(12)} /s`
  )
}).pipe(Effect.provide(layerMockServer().pipe(Layer.provide(layerChain({ tickDuration: "1 second" })))), Effect.scoped)
await Effect.runPromise(httpBench)
