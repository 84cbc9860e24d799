/**
 * The Postgres `TaskStore` against the memory one: creates, reads, compare-and-set saves, and the listing
 * queries (newest first by requester, by state, `unfinished`, `countByState`) on a table of about 200,000 tasks
 * (a fifth unfinished), where the indexes have to carry them.
 *
 * Run: `npm run bench:pg-taskstore` (DATABASE_URL or postgres://root@127.0.0.1:5432/test; a throw-away schema).
 *
 * @since 0.1.0
 */
import * as Postgres from "@mandate/adapters/postgres"
import { type Task, TaskStore } from "@mandate/core"
import { makeRecord } from "@mandate/core/conformance/taskStore"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { measureOps as measure } from "./support.ts"

const url = process.env.DATABASE_URL ?? "postgres://root@127.0.0.1:5432/test"
const schema = `mandate_bench_${crypto.randomUUID().replaceAll("-", "")}`
const config = Postgres.makeConfig(url, { schema, poolSize: 10 })

const row = (name: string, result: { readonly opsPerSecond: number; readonly p50: number; readonly p95: number }) =>
  console.log(
    `${name.padEnd(52)} ${String(result.opsPerSecond).padStart(8)} ops/s   p50 ${result.p50.toFixed(3)} ms   p95 ${result.p95.toFixed(3)} ms`
  )

// A steady state: most tasks finished long ago, a fifth still in flight
const states: ReadonlyArray<Task.TaskState> = [
  "running",
  "waiting_approval",
  ...Array.from({ length: 8 }, () => "completed" as const)
]

// create, get and save on whichever store is in context
const writes = (label: string) =>
  Effect.gen(function* () {
    const store = yield* TaskStore
    const run = crypto.randomUUID().slice(0, 8)
    const records = Array.from({ length: 6_000 }, (_, i) =>
      makeRecord({ requester: `bench-${run}-${i % 50}`, idempotencyKey: `k-${i}`, state: states[i % states.length]! })
    )
    row(`create, ${label}, 1 fiber`, yield* measure((i) => store.create(records[i]!), 2_000, 1))
    row(`create, ${label}, 10 fibers`, yield* measure((i) => store.create(records[2_000 + i]!), 4_000, 10))
    row(`get, ${label}, 1 fiber`, yield* measure((i) => store.get(records[i]!.task.id), 3_000, 1))
    row(`get, ${label}, 10 fibers`, yield* measure((i) => store.get(records[i % 6_000]!.task.id), 6_000, 10))
    const save = (i: number) => {
      const record = records[i]!
      return store.save({ ...record, task: { ...record.task, reasons: ["saved"], version: 1 } }, 0)
    }
    row(`save (compare-and-set), ${label}, 1 fiber`, yield* measure(save, 2_000, 1))
    row(`save (compare-and-set), ${label}, 10 fibers`, yield* measure((i) => save(2_000 + i), 4_000, 10))
    return records
  })

const main = Effect.gen(function* () {
  console.log(`Postgres TaskStore benchmark (${new Date().toISOString()}, Node ${process.version})`)
  yield* writes("memory").pipe(Effect.provide(TaskStore.layerMemory))
  yield* Effect.gen(function* () {
    const store = yield* TaskStore
    const sql = yield* SqlClient.SqlClient
    const records = yield* writes("Postgres")
    // a save that changes no indexed column can be a HOT update (fillfactor 80 leaves room on the page)
    yield* sql`SELECT pg_stat_force_next_flush()`
    const [hot] = yield* sql<{ readonly updates: number; readonly hot: number }>`
      SELECT n_tup_upd::int AS updates, n_tup_hot_upd::int AS hot FROM pg_stat_user_tables
      WHERE schemaname = ${schema} AND relname = 'tasks'`
    console.log(`(saves: ${hot?.hot ?? "?"} of ${hot?.updates ?? "?"} were HOT updates)`)
    // Grow the table to 200,000 tasks by copying stored rows (the store itself would take minutes on 2 cores)
    const tasks = sql(`${schema}.tasks`)
    yield* sql`INSERT INTO ${tasks} (id, kind, state, requested_by, idempotency_key, version, task, steps, approvals)
      SELECT t.id || '-' || g, t.kind, t.state, t.requested_by || '-' || (g % 500), NULL, t.version,
             t.task, t.steps, t.approvals
      FROM ${tasks} t CROSS JOIN generate_series(1, 32) g`
    yield* sql`VACUUM ANALYZE ${tasks}`
    const [{ n }] = yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM ${tasks}`
    console.log(`(table grown to ${n} tasks; listings below run against it)`)
    const requester = records[0]!.task.requestedBy.id
    const first = yield* store.list({ requestedBy: requester, limit: 50 })
    row(
      "list newest first by requester, page 1 of 50",
      yield* measure(() => store.list({ requestedBy: requester, limit: 50 }), 2_000, 1)
    )
    row(
      "list by requester, following page (cursor)",
      yield* measure(() => store.list({ requestedBy: requester, limit: 50, cursor: first.nextCursor }), 2_000, 1)
    )
    row(
      "list newest first by state (waiting_approval), 50",
      yield* measure(() => store.list({ states: ["waiting_approval"], limit: 50 }), 2_000, 1)
    )
    row("list newest first, no filter, 50", yield* measure(() => store.list({ limit: 50 }), 2_000, 1))
    row("countByState (200k tasks)", yield* measure(() => store.countByState, 100, 1))
    const unfinished = (yield* store.unfinished).length
    row(`unfinished (${unfinished} ids of 200k)`, yield* measure(() => store.unfinished, 20, 1))
  }).pipe(Effect.provide(Postgres.layer(config)))
})

// The schema is dropped after the backend stops, so its background fibers never see it vanish
const dropSchema = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`
}).pipe(Effect.provide(Postgres.layerClient(Postgres.makeConfig(url, { poolSize: 1 }))))

Effect.runPromise(main.pipe(Effect.ensuring(Effect.ignore(dropSchema)))).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
