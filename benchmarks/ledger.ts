/**
 * Ledger benchmark (`npm run bench:ledger`): append throughput on the memory ledger, inclusion and consistency
 * proof generation and verification on a 1,000,000-entry ledger, checkpoints (whose root is recomputed from the
 * entries since the last one: all of them the first time, then a batch), and the physical limit they are
 * measured against: node:crypto SHA-256 of 64-byte inputs per second on this machine.
 *
 * Sizes can be lowered for a quick run: `LEDGER_BENCH_SIZE=100000 npm run bench:ledger`.
 *
 * @since 0.1.0
 */
import * as NodeCrypto from "node:crypto"
import { Anchor, entryLeafHash, Ledger, Merkle } from "@mandate/core"
import { Effect, Layer } from "effect"

const SIZE = Number(process.env.LEDGER_BENCH_SIZE ?? 1_000_000)
const SINGLE = Math.min(50_000, SIZE)
const BATCH = 1_000
const PROOFS = 10_000

const now = () => performance.now()
const rate = (n: number, ms: number) => Math.round((n / ms) * 1000)
const fmt = (n: number) => n.toLocaleString("en-US")
const micros = (ms: number, n: number) => `${((ms * 1000) / n).toFixed(1)} µs`
// Process CPU time (every thread, the garbage collector's included): steadier than wall time on a shared machine
const cpuMs = () => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1000
}

const timeSync = (n: number, f: (i: number) => void): number => {
  for (let i = 0; i < Math.min(n, 20_000); i++) f(i) // warm-up
  const start = now()
  for (let i = 0; i < n; i++) f(i)
  return now() - start
}

// ---- 1. The physical limit ----------------------------------------------------------------------------------
const input64 = NodeCrypto.randomBytes(64)
const HASHES = 2_000_000
const hashRate = () =>
  rate(
    HASHES,
    timeSync(HASHES, () => NodeCrypto.hash("sha256", input64, "buffer"))
  )
const hashesBefore = hashRate()
const createHashMs = timeSync(HASHES, () => NodeCrypto.createHash("sha256").update(input64).digest())

// The Merkle part of an append alone: one leaf hash plus (on average) one node hash per entry
const leafData = NodeCrypto.randomBytes(32)
const merkleRun = () => {
  let frontier: ReadonlyArray<Uint8Array> = []
  const start = now()
  for (let i = 0; i < SIZE; i++) frontier = Merkle.append(i, frontier, [Merkle.leafHash(leafData)]).frontier
  return now() - start
}
merkleRun() // warm-up
const merkleMs = merkleRun()

const entry = (i: number) => ({
  kind: "step.succeeded",
  taskId: `task_${i % 1000}`,
  stepId: "onchain_action",
  principal: { id: "agent-7", roles: ["agent" as const] },
  payload: { amount: i, to: "B".repeat(60), tick: 1_000_000 + i }
})

const program = Effect.gen(function* () {
  const ledger = yield* Ledger
  const results: Record<string, string> = {}

  // ---- 2. Appends -----------------------------------------------------------------------------------------
  let start = now()
  let cpuStart = cpuMs()
  for (let i = 0; i < SINGLE; i++) yield* ledger.append(entry(i))
  const singleMs = now() - start
  const singleCpuMs = cpuMs() - cpuStart

  start = now()
  cpuStart = cpuMs()
  let appended = SINGLE
  while (appended < SIZE) {
    const n = Math.min(BATCH, SIZE - appended)
    yield* ledger.appendBatch(Array.from({ length: n }, (_, j) => entry(appended + j)))
    appended += n
  }
  const batchMs = now() - start
  const batchCpuMs = cpuMs() - cpuStart
  const batched = SIZE - SINGLE

  // ---- 3. Proofs on the full ledger -----------------------------------------------------------------------
  const size = yield* ledger.size
  start = now()
  const checkpoint = yield* ledger.checkpoint
  const checkpointMs = now() - start
  const indexes = Array.from({ length: PROOFS }, () => Math.floor(Math.random() * size))
  const leaves = new Map<number, string>()
  for (const i of indexes) {
    const [e] = yield* ledger.entries({ from: i, limit: 1 })
    leaves.set(i, entryLeafHash(e!.entryHash))
  }
  start = now()
  const proofs: Array<Merkle.InclusionProof> = []
  for (const i of indexes) proofs.push(yield* ledger.inclusionProof(i, size))
  const proveMs = now() - start
  start = now()
  let verified = 0
  for (const proof of proofs) {
    if (Merkle.verifyInclusionProof(proof, leaves.get(proof.leafIndex)!, checkpoint.root)) verified++
  }
  const verifyMs = now() - start
  if (verified !== PROOFS) throw new Error(`only ${verified} of ${PROOFS} proofs verified`)

  const olds = Array.from({ length: PROOFS }, () => 1 + Math.floor(Math.random() * (size - 1)))
  start = now()
  const consistency: Array<Merkle.ConsistencyProof> = []
  for (const m of olds) consistency.push(yield* ledger.consistencyProof(m, size))
  const consistencyMs = now() - start
  const oldRoots = new Map<number, string>()
  for (const m of olds) oldRoots.set(m, yield* ledger.root(m))
  start = now()
  for (const proof of consistency) {
    if (!Merkle.verifyConsistencyProof(proof, oldRoots.get(proof.oldSize)!, checkpoint.root)) {
      throw new Error("a consistency proof did not verify")
    }
  }
  const consistencyVerifyMs = now() - start

  start = now()
  const verification = yield* ledger.verifyAll()
  const verifyAllMs = now() - start
  if (!verification.valid) throw new Error(`verifyAll failed: ${JSON.stringify(verification.mismatch)}`)

  // A checkpoint recomputes the root from the entries since the last one: time one after a batch of new entries
  yield* ledger.appendBatch(Array.from({ length: BATCH }, (_, j) => entry(size + j)))
  start = now()
  yield* ledger.checkpoint
  const nextCheckpointMs = now() - start

  // ---- Report -------------------------------------------------------------------------------------------
  // The machine may be shared: the limit is measured before and after the ledger runs, and averaged
  const hashesAfter = hashRate()
  const hashLimit = Math.round((hashesBefore + hashesAfter) / 2)
  // Per append: payloadHash, entryHash, the leaf, and on average one interior node
  const hashesPerAppend = 4
  const ideal = hashLimit / hashesPerAppend
  const batchRate = rate(batched, batchMs)
  results["SHA-256, 64-byte inputs (crypto.hash one-shot)"] =
    `${fmt(hashLimit)} hashes/s (before ${fmt(hashesBefore)}, after ${fmt(hashesAfter)})`
  results["SHA-256, 64-byte inputs (createHash)"] = `${fmt(rate(HASHES, createHashMs))} hashes/s`
  results["ideal appends/s (4 SHA-256 per append)"] = fmt(Math.round(ideal))
  results["Merkle.append alone (leaf + node hashes)"] = `${fmt(rate(SIZE, merkleMs))} leaves/s`
  results[`Ledger.append, one at a time (${fmt(SINGLE)})`] =
    `${fmt(rate(SINGLE, singleMs))} appends/s, ${micros(singleCpuMs, SINGLE)} CPU each`
  results[`Ledger.appendBatch, ${fmt(BATCH)} per batch (${fmt(batched)})`] =
    `${fmt(batchRate)} appends/s, ${micros(batchCpuMs, batched)} CPU each`
  results["batched appends / ideal"] = `${((batchRate / ideal) * 100).toFixed(0)} %`
  results[`first checkpoint (root recomputed from all ${fmt(size)} entries)`] = `${checkpointMs.toFixed(0)} ms`
  results[`next checkpoint (${fmt(BATCH)} new entries re-checked)`] = `${nextCheckpointMs.toFixed(2)} ms`
  results[`inclusion proof generation at ${fmt(size)} (${fmt(PROOFS)} random leaves)`] = micros(proveMs, PROOFS)
  results[`inclusion proof verification (${proofs[0]!.path.length} hashes)`] = micros(verifyMs, PROOFS)
  results["consistency proof generation"] = micros(consistencyMs, PROOFS)
  results["consistency proof verification"] = micros(consistencyVerifyMs, PROOFS)
  results[`verifyAll over ${fmt(size)} entries`] =
    `${(verifyAllMs / 1000).toFixed(1)} s (${fmt(rate(size, verifyAllMs))} entries/s)`
  // Live data only (npm run bench:ledger passes --expose-gc)
  ;(globalThis as { gc?: () => void }).gc?.()
  const memory = process.memoryUsage()
  results[`heap used after GC, ${fmt(size)} entries held`] =
    `${Math.round(memory.heapUsed / 2 ** 20)} MiB (${Math.round(memory.heapUsed / size)} B/entry)`
  // The memory store keeps entries as bytes in Buffers, outside the JavaScript heap
  results["array buffers (outside the heap)"] =
    `${Math.round(memory.arrayBuffers / 2 ** 20)} MiB (${Math.round(memory.arrayBuffers / size)} B/entry)`
  return results
})

const results = await Effect.runPromise(
  program.pipe(Effect.provide(Ledger.layerMemory().pipe(Layer.provide(Anchor.layerNone))))
)
console.log(`Ledger benchmark (Node ${process.version}, ${fmt(SIZE)} entries)\n`)
const width = Math.max(...Object.keys(results).map((k) => k.length))
for (const [name, value] of Object.entries(results)) console.log(`${name.padEnd(width)}  ${value}`)
