/**
 * Proof bundle benchmark (`npm run bench:bundle`): export (`taskBundle`: entries, inclusion proofs, consistency
 * proof, anchor evidence) and offline verification (`WebBundle.verifyBundle`, Web Crypto) of tasks of 10 and 1,000
 * entries in a ledger of 1,000,000 entries, on the memory ledger (`LedgerStore.layerMemory`; the export reads the
 * store through the same calls on Postgres and Redis, where each costs a round trip). The peer in the same run
 * is what a verifier had before bundles: `Ledger.verify` once per entry (what `GET /verify/{hash}` answers).
 *
 * The two tasks' entries are spread evenly over the ledger, between entries of 5,000 other tasks; checkpoints are
 * taken every 100,000 entries while it fills, one is anchored at 900,000, and one signed after the last entry, so
 * every export proves against a signed checkpoint with a consistency proof to the anchored one.
 *
 * `BUNDLE_BENCH_SIZE=100000 npm run bench:bundle` gives a quick run.
 *
 * @since 0.2.0
 */
import * as os from "node:os"
import { Anchor, Ledger, LedgerStore, Principal, TaskStore, taskBundle, WebBundle } from "@mandate/core"
import { Effect, Layer } from "effect"
import { percentile } from "./support.ts"

const SIZE = Number(process.env.BUNDLE_BENCH_SIZE ?? 1_000_000)
const BATCH = 1_000
const RUNS = 5
const tasks = { task_small: 10, task_large: 1_000 } as const

const now = () => performance.now()
const fmt = (n: number) => n.toLocaleString("en-US")
const median = (xs: ReadonlyArray<number>) =>
  percentile(
    [...xs].sort((a, b) => a - b),
    0.5
  )
const ms = (x: number) => (x < 10 ? `${x.toFixed(2)} ms` : `${x.toFixed(0)} ms`)

// Which task entry i belongs to: each bench task's entries spread evenly, the rest among 5,000 others
const taskOf = (i: number): string => {
  for (const [task, n] of Object.entries(tasks)) {
    const every = Math.floor(SIZE / n)
    if (i % every === every >> 1 && i / every < n) return task
  }
  return `task_${i % 5_000}`
}

const entry = (i: number) => ({
  kind: "step.succeeded",
  taskId: taskOf(i),
  stepId: "onchain_action",
  principal: { id: "agent-7", roles: ["agent" as const] },
  payload: { amount: i, to: "B".repeat(60), tick: 1_000_000 + i }
})

const auditor = Principal.make("carol", ["auditor"])

const program = Effect.gen(function* () {
  const ledger = yield* Ledger
  const fillStart = now()
  for (let appended = 0; appended < SIZE; ) {
    const n = Math.min(BATCH, SIZE - appended)
    yield* ledger.appendBatch(Array.from({ length: n }, (_, j) => entry(appended + j)))
    appended += n
    if (appended % 100_000 === 0) yield* ledger.checkpoint
    if (appended === Math.floor(SIZE * 0.9)) yield* ledger.anchor
  }
  yield* ledger.checkpoint
  const fillMs = now() - fillStart

  const rows: Array<[string, string]> = []
  for (const [task, n] of Object.entries(tasks)) {
    const exports: Array<number> = []
    const verifies: Array<number> = []
    let bytes = 0
    for (let run = 0; run < RUNS; run++) {
      let start = now()
      const bundle = yield* taskBundle(task, auditor)
      const text = JSON.stringify(bundle)
      exports.push(now() - start)
      bytes = text.length
      if (bundle.entries.length !== n) throw new Error(`${task}: ${bundle.entries.length} entries, expected ${n}`)
      start = now()
      const report = yield* Effect.promise(() => WebBundle.verifyBundle(JSON.parse(text), ledger.publicKey))
      verifies.push(now() - start)
      if (!report.ok || report.checks.some((c) => c.skipped)) throw new Error(JSON.stringify(report.checks))
    }
    // The peer: one Ledger.verify per entry (what GET /verify/{hash} answers), as verifiers had to before
    const entries = yield* ledger.byTask(task)
    const start = now()
    for (const e of entries) yield* ledger.verify(e.entryHash)
    const perEntryMs = now() - start
    rows.push([`${fmt(n)}-entry task: export (taskBundle + JSON)`, ms(median(exports))])
    rows.push([`${fmt(n)}-entry task: verify offline (verifyBundle, Web Crypto)`, ms(median(verifies))])
    rows.push([`${fmt(n)}-entry task: bundle size`, `${fmt(Math.round(bytes / 1024))} KiB`])
    rows.push([`${fmt(n)}-entry task: peer, Ledger.verify per entry`, ms(perEntryMs)])
  }
  return { fillMs, rows }
})

const layer = Layer.mergeAll(
  Ledger.layer().pipe(Layer.provideMerge(LedgerStore.layerMemory), Layer.provide(Anchor.layerMemory)),
  TaskStore.layerMemory
)
const { fillMs, rows } = await Effect.runPromise(program.pipe(Effect.provide(layer)))
console.log(
  `Proof bundle benchmark (Node ${process.version}, memory ledger of ${fmt(SIZE)} entries, filled in ${(fillMs / 1000).toFixed(0)} s; load average ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")}; median of ${RUNS} runs)\n`
)
const width = Math.max(...rows.map(([k]) => k.length))
for (const [name, value] of rows) console.log(`${name.padEnd(width)}  ${value}`)
