/**
 * The ledger on Postgres: appends (one entry per call from 1 and 10 fibers, which all serialise on the append
 * lock; batches of 100), then root, inclusion and consistency proofs and `verifyAll` over the stored ledger,
 * where the Merkle nodes are read from the database.
 *
 * Run: `npm run bench:pg-ledger` (DATABASE_URL or postgres://root@127.0.0.1:5432/test; a throw-away schema).
 *
 * @since 0.1.0
 */
import * as Postgres from "@mandate/adapters/postgres"
import { Anchor, Ledger } from "@mandate/core"
import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { percentile } from "./support.ts"

const url = process.env.DATABASE_URL ?? "postgres://root@127.0.0.1:5432/test"
const schema = `mandate_bench_${crypto.randomUUID().replaceAll("-", "")}`
const config = Postgres.makeConfig(url, { schema, poolSize: 10 })

const measure = <E, R>(
  label: string,
  count: number,
  concurrency: number,
  op: (i: number) => Effect.Effect<unknown, E, R>
) =>
  Effect.gen(function* () {
    const latencies: Array<number> = []
    const started = performance.now()
    yield* Effect.forEach(
      Array.from({ length: count }, (_, i) => i),
      (i) =>
        Effect.suspend(() => {
          const t = performance.now()
          return Effect.tap(op(i), () => Effect.sync(() => latencies.push(performance.now() - t)))
        }),
      { concurrency, discard: true }
    )
    const seconds = (performance.now() - started) / 1000
    latencies.sort((a, b) => a - b)
    console.log(
      `${label.padEnd(48)} ${String(Math.round(count / seconds)).padStart(7)} ops/s   p50 ${percentile(latencies, 0.5).toFixed(2)} ms   p95 ${percentile(latencies, 0.95).toFixed(2)} ms`
    )
  })

const entry = (i: number) => ({
  kind: "step.succeeded",
  taskId: `task_${i % 500}`,
  stepId: `step_${i}`,
  payload: { i, amount: i * 10, memo: "benchmark" }
})

const program = Effect.gen(function* () {
  const ledger = yield* Ledger
  console.log(`Postgres ledger benchmark (${new Date().toISOString()}, Node ${process.version})`)
  yield* measure("append, 1 fiber", 2_000, 1, (i) => ledger.append(entry(i)))
  yield* measure("append, 10 fibers (one lock)", 3_000, 10, (i) => ledger.append(entry(i)))
  yield* measure("appendBatch of 100 (per batch)", 150, 1, (b) =>
    ledger.appendBatch(Array.from({ length: 100 }, (_, i) => entry(b * 100 + i)))
  )
  const size = yield* ledger.size
  console.log(`(ledger of ${size} entries)`)
  yield* measure("root of a random past size", 2_000, 1, (i) => ledger.root(1 + ((i * 7_919) % size)))
  yield* measure("inclusion proof, random entry", 2_000, 1, (i) => ledger.inclusionProof((i * 7_919) % size))
  yield* measure("consistency proof, random sizes", 2_000, 1, (i) =>
    ledger.consistencyProof(1 + ((i * 7_919) % (size - 1)), size)
  )
  const started = performance.now()
  const report = yield* ledger.verifyAll()
  const ms = performance.now() - started
  console.log(
    `${"verifyAll (every entry and node re-hashed)".padEnd(48)} ${String(Math.round(size / (ms / 1000))).padStart(7)} entries/s (${Math.round(ms)} ms, valid: ${report.valid})`
  )
})

// The schema is dropped after the backend stops, so its background fibers never see it vanish
const dropSchema = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`
}).pipe(Effect.provide(Postgres.layerClient(Postgres.makeConfig(url, { poolSize: 1 }))))

const main = Effect.scoped(
  Effect.gen(function* () {
    const backend = yield* Layer.build(Postgres.layer(config))
    const context = yield* Layer.build(
      Ledger.layer().pipe(Layer.provide(Anchor.layerNone), Layer.provide(Layer.succeedContext(backend)))
    )
    yield* program.pipe(Effect.provideService(Ledger, Context.get(context, Ledger)))
  })
).pipe(Effect.ensuring(Effect.ignore(dropSchema)))

Effect.runPromise(main).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
