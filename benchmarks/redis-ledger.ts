/**
 * The ledger on Redis, as `bench:pg-ledger` measures it on Postgres: appends (one entry per call from 1 and 10
 * fibers, which take turns on the process's ledger lock; batches of 100), appends from two processes' worth of
 * clients racing on one prefix (each append is a guarded unit: a lost race writes nothing and runs again), then
 * root, inclusion and consistency proofs and `verifyAll` over the stored ledger, whose Merkle nodes are read from
 * Redis.
 *
 * Run: `npm run bench:redis-ledger` (REDIS_URL or redis://127.0.0.1:6379; a throw-away key prefix).
 *
 * @since 0.1.0
 */
import * as Redis from "@mandate/adapters/redis"
import { Anchor, Ledger } from "@mandate/core"
import { Context, Effect, Layer } from "effect"
import { Redis as RedisService } from "effect/persistence"
import { percentile } from "./support.ts"

const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"
const prefix = `mandate_bench:${crypto.randomUUID().replaceAll("-", "")}:`
const config = Redis.makeConfig(url, { prefix, reservedConnections: 2 })

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
  console.log(`Redis ledger benchmark (${new Date().toISOString()}, Node ${process.version})`)
  yield* measure("append, 1 fiber", 2_000, 1, (i) => ledger.append(entry(i)))
  yield* measure("append, 10 fibers (one lock)", 3_000, 10, (i) => ledger.append(entry(i)))
  yield* measure("appendBatch of 100 (per batch)", 150, 1, (b) =>
    ledger.appendBatch(Array.from({ length: 100 }, (_, i) => entry(b * 100 + i)))
  )
  // A second client with a ledger of its own: another process as far as Redis can tell
  const other = yield* Layer.build(
    Redis.layerLedger({ prefix }).pipe(Layer.provide(Anchor.layerNone), Layer.provide(Redis.layerClient(config)))
  )
  const second = Context.get(other, Ledger)
  yield* measure("append, 2 clients x 5 fibers (racing)", 3_000, 10, (i) =>
    (i % 2 === 0 ? ledger : second).append(entry(i))
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

// The prefix's keys are deleted after the ledger stops
const deleteKeys = Effect.gen(function* () {
  const redis = yield* RedisService.Redis
  let cursor = "0"
  do {
    const [next, keys] = yield* redis.send<[string, ReadonlyArray<string>]>("SCAN", cursor, "MATCH", `${prefix}*`)
    if (keys.length > 0) yield* redis.send("UNLINK", ...keys)
    cursor = next
  } while (cursor !== "0")
}).pipe(Effect.provide(Redis.layerClient(Redis.makeConfig(url, { reservedConnections: 1 }))))

const main = Effect.scoped(
  Effect.gen(function* () {
    const context = yield* Layer.build(
      Redis.layerLedger({ prefix }).pipe(Layer.provide(Anchor.layerNone), Layer.provide(Redis.layerClient(config)))
    )
    yield* program.pipe(Effect.provideService(Ledger, Context.get(context, Ledger)))
  })
).pipe(Effect.ensuring(Effect.ignore(deleteKeys)))

Effect.runPromise(main).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
