/**
 * The Postgres foundation's costs: starting the backend (migrations), policy evaluation on the Postgres policy
 * store against the memory one, and a unit of work's transaction overhead.
 *
 * Run: `npm run bench:pg-foundation` (DATABASE_URL or postgres://root@127.0.0.1:5432/test; a throw-away schema).
 *
 * @since 0.1.0
 */
import * as Postgres from "@mandate/adapters/postgres"
import { Policy, PolicyStore, Principal, UnitOfWork } from "@mandate/core"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { measureOps } from "./support.ts"

const url = process.env.DATABASE_URL ?? "postgres://root@127.0.0.1:5432/test"
const schema = `mandate_bench_${crypto.randomUUID().replaceAll("-", "")}`
const config = Postgres.makeConfig(url, { schema, poolSize: 10 })

const alice = Principal.make("alice", ["submitter"])
const request = {
  action: "onchain_action",
  task: "transfer_funds",
  params: { from: "A".repeat(60), to: "B".repeat(60), amount: 2_500 },
  principal: alice
}

// Runs `op` `count` times with `concurrency` fibers
const measure = <E, R>(op: Effect.Effect<unknown, E, R>, count: number, concurrency: number) =>
  measureOps(() => op, count, concurrency)

const row = (name: string, result: { readonly opsPerSecond: number; readonly p50: number; readonly p95: number }) =>
  console.log(
    `${name.padEnd(44)} ${String(result.opsPerSecond).padStart(8)} ops/s   p50 ${result.p50.toFixed(3)} ms   p95 ${result.p95.toFixed(3)} ms`
  )

const startup = Effect.gen(function* () {
  const fresh = performance.now()
  yield* Effect.scoped(Layer.build(Postgres.layer(config)))
  const freshMs = performance.now() - fresh
  const again = performance.now()
  yield* Effect.scoped(Layer.build(Postgres.layer(config)))
  const againMs = performance.now() - again
  console.log(`backend start, fresh schema (migrations)      ${freshMs.toFixed(1)} ms`)
  console.log(`backend start, migrated schema                ${againMs.toFixed(1)} ms`)
})

const evaluate = Effect.flatMap(Policy, (policy) => policy.evaluate(request))

const policyRuns = (label: string) =>
  Effect.gen(function* () {
    yield* measure(evaluate, 500, 1) // warm-up
    row(`Policy.evaluate, ${label}, 1 fiber`, yield* measure(evaluate, 5_000, 1))
    row(`Policy.evaluate, ${label}, 10 fibers`, yield* measure(evaluate, 10_000, 10))
  })

const unitRuns = Effect.gen(function* () {
  const uow = yield* UnitOfWork
  const store = yield* PolicyStore
  const sql = yield* SqlClient.SqlClient
  const empty = uow.run(Effect.void)
  const oneRead = sql`SELECT 1`
  const unitWithRead = uow.run(sql`SELECT 1`)
  let n = 0
  const publishUnit = uow.run(Effect.suspend(() => store.publish({ name: `bench-${n++}`, rules: [] })))
  yield* measure(oneRead, 500, 1)
  row("one SELECT 1, no unit, 1 fiber", yield* measure(oneRead, 5_000, 1))
  row("empty unit (BEGIN; COMMIT), 1 fiber", yield* measure(empty, 5_000, 1))
  row("unit with SELECT 1, 1 fiber", yield* measure(unitWithRead, 5_000, 1))
  row("unit publishing a policy set, 1 fiber", yield* measure(publishUnit, 2_000, 1))
  row("unit publishing a policy set, 10 fibers", yield* measure(publishUnit, 5_000, 10))
})

const main = Effect.gen(function* () {
  console.log(`Postgres foundation benchmark (${new Date().toISOString()}, Node ${process.version})`)
  yield* startup
  yield* policyRuns("memory store").pipe(Effect.provide(Policy.layerMemory()))
  const backend = Policy.layer.pipe(Layer.provideMerge(Postgres.layer(config)))
  yield* Effect.gen(function* () {
    yield* policyRuns("Postgres store")
    yield* unitRuns
    const sql = yield* SqlClient.SqlClient
    yield* sql`DROP SCHEMA ${sql(schema)} CASCADE`
  }).pipe(Effect.provide(backend))
})

Effect.runPromise(main).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
