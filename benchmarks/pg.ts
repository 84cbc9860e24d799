/**
 * The Postgres queue against graphile-worker 0.18.0 (in two configurations: its default, and batched, the fastest
 * its performance guide documents) and pg-boss 12.38.1, side by side in one run on one database (`DATABASE_URL`,
 * default `postgres://root@127.0.0.1:5432/test`), each in its own throw-away schema (dropped at the end), then the
 * runtime on Postgres:
 *
 * - enqueue: N no-op jobs (default 20,000), one call per job with 50 calls in flight (`enqueue` / `addJob` /
 *   `send`), and in batches of 1,000 (`enqueueBatch` / `addJobs` / `insert`);
 * - drain: those jobs through a worker at concurrency 10 and 50 (`Worker.run` / graphile-worker's `run` / pg-boss
 *   `work`), timed from the worker's start to the last job recorded as completed (Mandate: the worker's
 *   `completed` counter, bumped after the commit; graphile-worker: its `job:complete` event, emitted after the
 *   job's row is deleted; pg-boss: the queue holding no job short of `completed`, polled every 5 ms once every
 *   handler has run);
 * - latency at light load: an idle worker (concurrency 10) and one job every 10 ms; the time from the enqueue
 *   call to the handler starting, p50/p95/p99;
 * - the runtime on the Postgres backend (no peer equivalent): seed tasks (`transfer_funds`, three steps, an
 *   auto-approval policy) started 64 at a time, tasks/s to `task.completed`.
 *
 * Settings: every system gets a pool of the same size (`--pool`, default 20; graphile-worker at least 52, the
 * concurrency + 2 its guide asks for) and its default poll interval and
 * retention (Mandate and pg-boss keep completed jobs, graphile-worker deletes them). Mandate's drains run
 * `Worker.run` with `prefetch: 500` (a local queue of 500 claimed jobs beyond the running ones, as graphile-worker
 * batched holds 500; its default is `concurrency`), everything else at its defaults.
 * graphile-worker is woken by LISTEN/NOTIFY and polls every 2 s; "batched" adds what its performance guide
 * (worker.graphile.org/docs/performance) runs for its figures: `localQueue: { size: 500 }` (one statement fetches
 * and locks 500 jobs for the pool), `completeJobBatchDelay: 0` and `failJobBatchDelay: 0` (completions and
 * failures of one tick in one statement), prepared statements (its default). pg-boss 12 runs at its fastest
 * documented setting: `useListenNotify` with `notify` queues, `batchSize` equal to the concurrency with the
 * batch's jobs run at once, `burstWhenBatchFull` (fetch again at once while batches come back full) and
 * `pollingIntervalSeconds: 0.5` (the minimum). graphile-worker's logger is kept to warnings and errors (it logs
 * every job at `info`). Every system is warmed up (2,000 jobs enqueued one by one and 2,000 in batches of 200,
 * drained at concurrency 50) before anything is measured, and the systems take turns phase by phase, so a change
 * in the machine's load hits all alike.
 *
 * Figures are wall time and this process's CPU time; drains also report the CPU time of the Postgres backends that
 * served each system (read from `/proc`, so only when the server runs on this host: the work per job in the
 * database). Ratios are Mandate / the best peer: above 1 for throughput and below 1 for latency mean Mandate is ahead
 * of every peer.
 *
 * Run: `npm run bench:pg` (options: `-- --jobs 20000 --latency-jobs 500 --tasks 500 --pool 20 --boss-jobs N`;
 * `--drains-only --rounds 3`: only the drains, Mandate against graphile-worker batched, three rounds in turn).
 *
 * @since 0.1.0
 */
import { EventEmitter } from "node:events"
import { readFileSync } from "node:fs"
import { cpus, loadavg } from "node:os"
import { constants, PerformanceObserver } from "node:perf_hooks"
import * as Postgres from "@mandate/adapters/postgres"
import { Mandate, Queue, Runtime, Worker } from "@mandate/core"
import { Context, Deferred, Effect, Layer, ManagedRuntime } from "effect"
import { SqlClient } from "effect/sql"
import {
  type WorkerEvents as GraphileEvents,
  Logger as GraphileLogger,
  type Runner as GraphileRunner,
  makeWorkerUtils,
  run as runGraphile
} from "graphile-worker"
import pg from "pg"
import { PgBoss } from "pg-boss"
import {
  alice,
  autoApprove,
  cpuMs,
  type Latency,
  latencyOf,
  pooled,
  sleep,
  trackCompletions,
  transfer
} from "./support.ts"

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  const value = i >= 0 ? Number(process.argv[i + 1]) : Number.NaN
  return Number.isFinite(value) && value > 0 ? Math.floor(value) : fallback
}
const jobs = arg("jobs", 20_000)
const latencyJobs = arg("latency-jobs", 500)
const tasks = arg("tasks", 500)
const poolSize = arg("pool", 20)
const bossJobs = Math.min(jobs, arg("boss-jobs", jobs))
const url = process.env.DATABASE_URL ?? "postgres://root@127.0.0.1:5432/test"
const run = crypto.randomUUID().replaceAll("-", "").slice(0, 12)
const schemas = {
  mandate: `mandate_bench_${run}`,
  runtime: `mandate_bench_rt_${run}`,
  graphile: `graphile_bench_${run}`,
  graphileBatched: `graphile_batched_bench_${run}`,
  boss: `pgboss_bench_${run}`
}
const warm = Math.min(2_000, jobs)

interface Measure {
  readonly count: number
  readonly wallMs: number
  readonly cpuMs: number
  /** Garbage collection pauses in this process (all systems' clients share it) */
  readonly gcMs: number
  /** Scavenges (young-generation collections): with a fixed semi-space (`--min-semi-space-size` equal to
   * `--max-semi-space-size`), a measure of the bytes allocated */
  readonly scavenges: number
  /** CPU time of the Postgres backends serving the system during the drain (NaN when unreadable) */
  dbCpuMs?: number
  /** Of it, the backends not found before the drain (counted from their start: connection set-up, first plans) */
  dbNewBackends?: number
  dbNewCpuMs?: number
}
// Total GC pause time so far, from the `gc` performance entries
let gcTotalMs = 0
let scavengeCount = 0
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gcTotalMs += entry.duration
    if (
      ((entry as { detail?: unknown }).detail as { kind?: number } | undefined)?.kind ===
      constants.NODE_PERFORMANCE_GC_MINOR
    )
      scavengeCount++
  }
}).observe({ entryTypes: ["gc"] })
// A stopwatch over wall and this process's CPU time; `stop` is called where the measured work ends, which for a
// drain is before the worker is stopped
const stopwatch = (count: number) => {
  const cpu = cpuMs()
  const gc = gcTotalMs
  const scavenges = scavengeCount
  const started = performance.now()
  return (): Measure => ({
    count,
    wallMs: performance.now() - started,
    cpuMs: cpuMs() - cpu,
    gcMs: gcTotalMs - gc,
    scavenges: scavengeCount - scavenges
  })
}
// Postgres work per job: the CPU time (user + system, from /proc: the server must run on this host) of the client
// backends whose last statement names the system's schema, read before and after a drain on a connection of its
// own. Every drain statement of each system names its schema; a backend started during the drain counts from 0.
// Autovacuum is not counted (a worker may span drains): keeping finished rows costs Mandate more of it
const ticksPerMs = 0.1 // USER_HZ is 100 on Linux
// Before a drain every client backend is read (`schema` undefined), whatever its last statement: a backend of the
// system that last ran something else was otherwise counted from its start after the drain, its earlier phases
// included (seen: Mandate's three drain backends counted from the warm-up, the whole Postgres figure at 10)
const backendTicks = async (schema: string | undefined): Promise<Map<number, number>> => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const { rows } = await client.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity
       WHERE backend_type = 'client backend' AND ($1::text IS NULL OR query LIKE '%' || $1 || '%')
         AND pid <> pg_backend_pid()`,
      [schema ?? null]
    )
    const ticks = new Map<number, number>()
    for (const { pid } of rows) {
      try {
        const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
        ticks.set(pid, Number(fields[11]) + Number(fields[12]))
      } catch {
        ticks.set(pid, Number.NaN)
      }
    }
    return ticks
  } finally {
    await client.end()
  }
}
const withDbCpu = async (system: System, drain: () => Promise<Measure>): Promise<Measure> => {
  const before = await backendTicks(undefined)
  const measured = await drain()
  const after = await backendTicks(system.schema)
  let ticks = after.size === 0 ? Number.NaN : 0
  let fresh = 0
  let freshTicks = 0
  for (const [pid, t] of after) {
    ticks += t - (before.get(pid) ?? 0)
    if (!before.has(pid)) {
      fresh++
      freshTicks += t
    }
  }
  measured.dbCpuMs = ticks / ticksPerMs
  measured.dbNewBackends = fresh
  measured.dbNewCpuMs = freshTicks / ticksPerMs
  return measured
}
const measure = async (count: number, f: () => Promise<unknown>): Promise<Measure> => {
  const stop = stopwatch(count)
  await f()
  return stop()
}
const batches = async (count: number, f: (from: number, size: number) => Promise<unknown>) => {
  for (let i = 0; i < count; i += 1_000) await f(i, Math.min(1_000, count - i))
}

type Payload = { readonly [key: string]: number }

// A system under test: the same operations over each library's own API
interface System {
  readonly name: string
  /** The schema its statements name: how its Postgres backends are found */
  readonly schema: string
  readonly enqueue: (queue: string, payload: Payload) => Promise<unknown>
  readonly enqueueBatch: (queue: string, payloads: ReadonlyArray<Payload>) => Promise<unknown>
  /** Drains `count` jobs of `queue` at `concurrency`; the measure stops when the last is recorded as completed. */
  readonly drain: (queue: string, count: number, concurrency: number) => Promise<Measure>
  /** An idle worker at concurrency 10, one job every 10 ms: enqueue call → handler start. */
  readonly latency: (queue: string) => Promise<Latency>
}

// A job's enqueue time rides in its payload; every system runs in this process, so `performance.now()` compares
const lightLoad = async (
  enqueue: (payload: Payload) => Promise<unknown>,
  samples: Array<number>,
  finished: Promise<void>
): Promise<Latency> => {
  await sleep(500) // idle: the worker waits for a wake-up or its next poll
  for (let i = 0; i < latencyJobs; i++) {
    await enqueue({ t: performance.now() })
    await sleep(10)
  }
  await finished
  return latencyOf(samples)
}
const sinceEnqueued = (payload: unknown) => performance.now() - (payload as { t: number }).t

const signal = () => {
  let resolve: () => void = () => {}
  const promise = new Promise<void>((r) => {
    resolve = r
  })
  return { promise, resolve }
}

// ---- Mandate ---------------------------------------------------------------------------------------------------

// As many held jobs as graphile-worker batched's local queue
const mandatePrefetch = 500
const mandateConfig = Postgres.makeConfig(url, { schema: schemas.mandate, poolSize })
const mandate = ManagedRuntime.make(Postgres.layer(mandateConfig))
const withQueue = <A>(f: (queue: Queue["Service"]) => Effect.Effect<A, unknown>) => mandate.runPromise(Queue.use(f))

const mandateSystem: System = {
  name: "Mandate (prefetch 500)",
  schema: schemas.mandate,
  enqueue: (queue, payload) => withQueue((q) => q.enqueue({ queue, payload })),
  enqueueBatch: (queue, payloads) => withQueue((q) => q.enqueueBatch(payloads.map((payload) => ({ queue, payload })))),
  drain: (queue, count, concurrency) =>
    mandate.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const handled = yield* Deferred.make<void>()
          let started = 0
          const stop = stopwatch(count)
          const worker = yield* Worker.run({
            queues: [queue],
            concurrency,
            prefetch: mandatePrefetch,
            handler: () =>
              Effect.sync(() => {
                if (++started === count) Deferred.doneUnsafe(handled, Effect.void)
              })
          })
          yield* Deferred.await(handled)
          // the counter moves once the completion is committed
          while ((yield* worker.stats).completed < count) yield* Effect.sleep(1)
          return stop()
        })
      )
    ),
  latency: (queue) =>
    mandate.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const samples: Array<number> = []
          const done = signal()
          yield* Worker.run({
            queues: [queue],
            concurrency: 10,
            handler: (job) =>
              Effect.sync(() => {
                samples.push(sinceEnqueued(job.payload))
                if (samples.length === latencyJobs) done.resolve()
              })
          })
          const q = yield* Queue
          return yield* Effect.promise(() =>
            lightLoad((payload) => mandate.runPromise(q.enqueue({ queue, payload })), samples, done.promise)
          )
        })
      )
    )
}

// ---- graphile-worker ---------------------------------------------------------------------------------------------

// Warnings and errors only: at `info` it logs a line per job
const graphileLogger = new GraphileLogger(() => (level, message) => {
  if (String(level) === "error" || String(level) === "warning") console.error(`graphile-worker ${level}: ${message}`)
})
// One pool for its utilities and runners, as Mandate's backend has one: no runner opens connections in a timed phase
// (both configurations share it; only one runs at a time), each configuration in its own schema
// graphile-worker's performance guide wants a pool of at least its concurrency + 2 (it warns otherwise): it gets
// that for the largest drain (50) even where the others get `--pool`, so it runs as documented
const graphilePool = new pg.Pool({ connectionString: url, max: Math.max(poolSize, 52) })
graphilePool.on("error", (error) => console.error(`graphile-worker pool error: ${error.message}`))
const graphileUtilities = async (schema: string) => {
  const utils = await makeWorkerUtils({ pgPool: graphilePool, schema, logger: graphileLogger })
  await utils.migrate()
  return utils
}
const graphileUtils = {
  batched: await graphileUtilities(schemas.graphileBatched),
  default: await graphileUtilities(schemas.graphile)
}

// What worker.graphile.org/docs/performance runs for its figures ("Batching options"); prepared statements are on
// by default in both configurations
const graphileBatched = {
  localQueue: { size: 500 },
  completeJobBatchDelay: 0,
  failJobBatchDelay: 0,
  preparedStatements: true
} as const

// Task identifiers keep the phases apart: a runner takes only the jobs of the tasks in its list (a named queue
// would run its jobs one at a time, so none is used)
const graphileRun = async (
  batched: boolean,
  task: string,
  concurrency: number,
  handler: (payload: unknown) => void
): Promise<{ readonly runner: GraphileRunner; readonly events: GraphileEvents }> => {
  const events: GraphileEvents = new EventEmitter()
  const runner = await runGraphile({
    pgPool: graphilePool,
    schema: batched ? schemas.graphileBatched : schemas.graphile,
    logger: graphileLogger,
    events,
    concurrency,
    noHandleSignals: true,
    ...(batched ? { preset: { worker: graphileBatched } } : {}),
    taskList: {
      [task]: async (payload) => {
        handler(payload)
      }
    }
  })
  return { runner, events }
}

const graphileSystem = (batched: boolean): System => {
  const utils = batched ? graphileUtils.batched : graphileUtils.default
  return {
    name: batched ? "graphile batched" : "graphile default",
    schema: batched ? schemas.graphileBatched : schemas.graphile,
    enqueue: (task, payload) => utils.addJob(task, payload),
    enqueueBatch: (task, payloads) => utils.addJobs(payloads.map((payload) => ({ identifier: task, payload }))),
    drain: async (task, count, concurrency) => {
      let completed = 0
      const done = signal()
      let result: Measure | undefined
      const stop = stopwatch(count)
      const { runner, events } = await graphileRun(batched, task, concurrency, () => {})
      // emitted once the job's completion is written (its row deleted; batched: once its batch's statement returned)
      events.on("job:complete", ({ error }) => {
        if (error == null && ++completed === count) {
          result = stop()
          done.resolve()
        }
      })
      await done.promise
      await runner.stop()
      return result!
    },
    latency: async (task) => {
      const samples: Array<number> = []
      const done = signal()
      const { runner } = await graphileRun(batched, task, 10, (payload) => {
        samples.push(sinceEnqueued(payload))
        if (samples.length === latencyJobs) done.resolve()
      })
      const latency = await lightLoad((payload) => utils.addJob(task, payload), samples, done.promise)
      await runner.stop()
      return latency
    }
  }
}

// ---- pg-boss -----------------------------------------------------------------------------------------------------

const boss = new PgBoss({ connectionString: url, schema: schemas.boss, max: poolSize, useListenNotify: true })
boss.on("error", (error) => console.error(`pg-boss error: ${error.message}`))
await boss.start()
const bossWork = { pollingIntervalSeconds: 0.5, burstWhenBatchFull: true } as const
const bossSchema = pg.escapeIdentifier(schemas.boss)
// Jobs of a queue short of `completed` (a drain of fewer than all leaves the rest queued), read from its table
const bossPending = async (queue: string): Promise<number> => {
  const { rows } = await graphilePool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM ${bossSchema}.job WHERE name = $1 AND state IN ('created', 'retry', 'active')`,
    [queue]
  )
  return rows[0]!.n
}

const bossSystem: System = {
  name: "pg-boss",
  schema: schemas.boss,
  enqueue: (queue, payload) => boss.send(queue, payload),
  enqueueBatch: (queue, payloads) =>
    boss.insert(
      queue,
      payloads.map((data) => ({ data }))
    ),
  drain: async (queue, count, concurrency) => {
    let handled = 0
    const done = signal()
    const left = (await bossPending(queue)) - count
    const stop = stopwatch(count)
    await boss.work(queue, { ...bossWork, batchSize: concurrency }, async (batch) => {
      await Promise.all(
        batch.map(async () => {
          if (++handled === count) done.resolve()
        })
      )
    })
    await done.promise
    // the last batch is completed after its handler returns: wait for that write
    while ((await bossPending(queue)) > left) await sleep(5)
    const result = stop()
    await boss.offWork(queue)
    return result
  },
  latency: async (queue) => {
    const samples: Array<number> = []
    const done = signal()
    await boss.work(queue, { ...bossWork, batchSize: 10 }, async (batch) => {
      for (const job of batch) samples.push(sinceEnqueued(job.data))
      if (samples.length >= latencyJobs) done.resolve()
    })
    const latency = await lightLoad((payload) => boss.send(queue, payload), samples, done.promise)
    await boss.offWork(queue)
    return latency
  }
}

// ---- the runtime on Postgres -------------------------------------------------------------------------------------

const runtimeConcurrency = 32

interface RuntimeFigures {
  readonly measure: Measure
  readonly submittedMs: number
  readonly latency: Latency
}
const seedTasks = (count: number, inFlight: number) =>
  Effect.gen(function* () {
    const runtime = yield* Runtime
    const { started, latencies, allDone } = yield* trackCompletions(count)
    const stop = stopwatch(count)
    const t0 = performance.now()
    yield* Effect.forEach(
      Array.from({ length: count }, (_, i) => i),
      (i) =>
        Effect.gen(function* () {
          const begin = performance.now()
          const task = yield* runtime.start(transfer(i), alice)
          started(task.id, begin)
        }),
      { concurrency: inFlight, discard: true }
    )
    const submittedMs = performance.now() - t0
    yield* allDone
    return { measure: stop(), submittedMs, latency: latencyOf(latencies) } satisfies RuntimeFigures
  }).pipe(Effect.scoped)

const runtimeBench = Effect.gen(function* () {
  yield* seedTasks(Math.min(50, tasks), 16) // warm-up
  const load = yield* seedTasks(tasks, 64)
  const one = yield* seedTasks(Math.min(100, tasks), 1)
  return { load, one }
}).pipe(
  Effect.provide(
    Mandate.layer(
      Postgres.layer(Postgres.makeConfig(url, { schema: schemas.runtime, poolSize }), { policy: autoApprove }),
      {
        runtime: { concurrency: runtimeConcurrency, pollIntervalMs: 100 },
        ledger: { anchorEvery: { entries: 10_000 } }
      }
    )
  )
)

// ---- the run -----------------------------------------------------------------------------------------------------

const fmt = (n: number) => Math.round(n).toLocaleString("en-US")
const rate = (m: Measure) => (m.count / m.wallMs) * 1000
const cpuRate = (m: Measure) => (m.count / m.cpuMs) * 1000
// `--drains-only`: Mandate against graphile-worker batched, drains alone (filled by batches), `--rounds` times in
// turn: a quick comparison while working on the drain path
const drainsOnly = process.argv.includes("--drains-only")
const rounds = arg("rounds", 1)
const systems: ReadonlyArray<System> = drainsOnly
  ? [mandateSystem, graphileSystem(true)]
  : [mandateSystem, graphileSystem(true), graphileSystem(false), bossSystem]

const table = (title: string, rows: ReadonlyArray<readonly [string, ReadonlyArray<string>, string]>) => {
  console.log("")
  console.log(title)
  console.log(
    `${"".padEnd(24)}${systems.map((s) => s.name.padStart(24)).join("")}${"Mandate / best peer".padStart(22)}`
  )
  for (const [label, values, ratio] of rows) {
    console.log(`${label.padEnd(24)}${values.map((v) => v.padStart(24)).join("")}${ratio.padStart(22)}`)
  }
}
// Throughput: Mandate over the highest peer; latency: Mandate over the lowest peer
const ratioUp = (values: ReadonlyArray<number>) => (values[0]! / Math.max(...values.slice(1))).toFixed(2)
const ratioDown = (values: ReadonlyArray<number>) => (values[0]! / Math.min(...values.slice(1))).toFixed(2)
const throughputTable = (title: string, measures: ReadonlyArray<Measure>) =>
  table(title, [
    ["jobs/s", measures.map((m) => fmt(rate(m))), ratioUp(measures.map(rate))],
    ["jobs per CPU-second", measures.map((m) => fmt(cpuRate(m))), ratioUp(measures.map(cpuRate))],
    ...(measures.some((m) => m.dbCpuMs !== undefined)
      ? [
          [
            "Postgres CPU µs per job",
            measures.map((m) => (m.dbCpuMs === undefined ? "" : ((m.dbCpuMs / m.count) * 1000).toFixed(0))),
            ratioDown(measures.map((m) => (m.dbCpuMs ?? Number.NaN) / m.count))
          ] as const,
          [
            "  of it, new backends (n)",
            measures.map((m) =>
              m.dbNewCpuMs === undefined ? "" : `${((m.dbNewCpuMs / m.count) * 1000).toFixed(0)} (${m.dbNewBackends})`
            ),
            ""
          ] as const
        ]
      : []),
    ["GC µs per job", measures.map((m) => ((m.gcMs / m.count) * 1000).toFixed(1)), ""],
    ["scavenges per 1,000 jobs", measures.map((m) => ((m.scavenges / m.count) * 1000).toFixed(2)), ""],
    ["wall ms (jobs)", measures.map((m) => `${fmt(m.wallMs)} (${fmt(m.count)})`), ""]
  ])

const serverVersion = Effect.scoped(
  Effect.gen(function* () {
    const sql = Context.get(
      yield* Layer.build(Postgres.layerClient(Postgres.makeConfig(url, { poolSize: 1 }))),
      SqlClient.SqlClient
    )
    const rows = yield* sql<{ server_version: string }>`SHOW server_version`
    return rows[0]?.server_version ?? "?"
  })
)

// Progress on stderr, so the tables on stdout stay clean
const progress = (message: string) => process.stderr.write(`  … ${message}\n`)

const main = async () => {
  const cpu = cpus()
  console.log(
    `Postgres queue benchmark: Mandate vs graphile-worker 0.18.0 (batched and default) vs pg-boss 12.38.1, ${fmt(jobs)} no-op jobs` +
      (bossJobs < jobs ? ` (pg-boss drains ${fmt(bossJobs)} of them)` : "")
  )
  console.log(
    `${cpu.length} × ${cpu[0]?.model ?? "?"}, node ${process.version}, PostgreSQL ${await Effect.runPromise(serverVersion)}, ` +
      `pool ${poolSize} each (graphile-worker ${Math.max(poolSize, 52)}), load average ${loadavg()
        .map((n) => n.toFixed(1))
        .join(" ")}`
  )

  // pg-boss wants its queues created (with NOTIFY on); Mandate's backend migrates on start, graphile-worker's
  // utilities did
  for (const queue of ["warm-up", "drain-10", "drain-50", "latency"]) await boss.createQueue(queue, { notify: true })
  await mandate.runPromise(Effect.void)

  // Warm-up (not reported): connections open, statements prepared, code paths compiled, for each (drained at
  // concurrency 50, where pg-boss takes 20 s for 2,000 jobs rather than 100 s)
  for (const system of systems) {
    progress(`warm-up, ${system.name}`)
    await pooled(warm, 50, (i) => system.enqueue("warm-up", { i }))
    // and in batches (of 200: the statements are the same at any size), so the measured batches do not pay for
    // planning their statement on each pooled connection
    for (let i = 0; i < warm; i += 200) {
      await system.enqueueBatch(
        "warm-up",
        Array.from({ length: Math.min(200, warm - i) }, (_, k) => ({ i: i + k }))
      )
    }
    progress(`warm-up drain, ${system.name}`)
    await system.drain("warm-up", 2 * warm, 50)
  }

  const drainCount = (system: System) => (system === bossSystem ? bossJobs : jobs)
  const fill = (system: System, queue: string) =>
    measure(jobs, () =>
      batches(jobs, (i, size) =>
        system.enqueueBatch(
          queue,
          Array.from({ length: size }, (_, k) => ({ i: i + k }))
        )
      )
    )
  if (drainsOnly) {
    for (let round = 1; round <= rounds; round++) {
      const drains: Record<number, Array<Measure>> = { 10: [], 50: [] }
      for (const concurrency of [10, 50]) {
        for (const system of systems) {
          await fill(system, `drain-${concurrency}`)
          progress(`round ${round}: drain at concurrency ${concurrency}, ${system.name}`)
          drains[concurrency]!.push(
            await withDbCpu(system, () => system.drain(`drain-${concurrency}`, jobs, concurrency))
          )
        }
      }
      console.log(`\nround ${round} of ${rounds}, load average ${loadavg()[0]!.toFixed(1)}`)
      throughputTable("drain at concurrency 10", drains[10]!)
      throughputTable("drain at concurrency 50", drains[50]!)
    }
    return
  }
  const single: Array<Measure> = []
  const drain10: Array<Measure> = []
  const batch: Array<Measure> = []
  const drain50: Array<Measure> = []
  for (const system of systems) {
    progress(`enqueue, one call per job, ${system.name}`)
    single.push(await measure(jobs, () => pooled(jobs, 50, (i) => system.enqueue("drain-10", { i }))))
  }
  for (const system of systems) {
    progress(`drain at concurrency 10, ${system.name}`)
    drain10.push(await withDbCpu(system, () => system.drain("drain-10", drainCount(system), 10)))
  }
  for (const system of systems) {
    progress(`enqueue, batches of 1,000, ${system.name}`)
    batch.push(
      await measure(jobs, () =>
        batches(jobs, (i, size) =>
          system.enqueueBatch(
            "drain-50",
            Array.from({ length: size }, (_, k) => ({ i: i + k }))
          )
        )
      )
    )
  }
  for (const system of systems) {
    progress(`drain at concurrency 50, ${system.name}`)
    drain50.push(await withDbCpu(system, () => system.drain("drain-50", drainCount(system), 50)))
  }
  const latencies: Array<Latency> = []
  for (const system of systems) {
    progress(`latency at light load, ${system.name}`)
    latencies.push(await system.latency("latency"))
  }

  throughputTable("enqueue, one call per job, 50 in flight", single)
  throughputTable("enqueue, batches of 1,000", batch)
  throughputTable("drain at concurrency 10 (worker start → last job recorded as completed)", drain10)
  throughputTable("drain at concurrency 50", drain50)
  const ms = (n: number) => n.toFixed(2)
  table(
    `latency at light load, ms (idle worker at concurrency 10, 1 job / 10 ms, ${latencyJobs} jobs, enqueue call → handler start)`,
    (["p50", "p95", "p99"] as const).map((p) => {
      const values = latencies.map((l) => l[p])
      return [p, values.map(ms), ratioDown(values)] as const
    })
  )

  progress("runtime on Postgres")
  const { load, one } = await Effect.runPromise(runtimeBench)
  console.log("")
  console.log(
    `runtime on Postgres: ${fmt(tasks)} seed tasks (transfer_funds, 3 steps, auto-approval), 64 starts in flight, ` +
      `worker concurrency ${runtimeConcurrency}`
  )
  console.log(
    `  completed      ${fmt(rate(load.measure))} tasks/s  (${fmt(load.measure.wallMs)} ms; starts took ${fmt(load.submittedMs)} ms)`
  )
  console.log(`  CPU per task   ${(load.measure.cpuMs / tasks).toFixed(2)} ms in Node`)
  console.log(`  task latency   p50 ${ms(load.latency.p50)} ms  p95 ${ms(load.latency.p95)} ms  under load`)
  console.log(
    `                 p50 ${ms(one.latency.p50)} ms  p95 ${ms(one.latency.p95)} ms  one at a time (${one.measure.count} tasks)`
  )
}

// Every system stops before its schema goes, so no background loop sees it vanish
const dropSchemas = Effect.scoped(
  Effect.gen(function* () {
    const sql = Context.get(
      yield* Layer.build(Postgres.layerClient(Postgres.makeConfig(url, { poolSize: 1 }))),
      SqlClient.SqlClient
    )
    for (const schema of Object.values(schemas)) yield* sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`
  })
)

const cleanup = async () => {
  await boss.stop({ graceful: false }).catch(() => undefined)
  await mandate.dispose()
  await graphileUtils.batched.release()
  await graphileUtils.default.release()
  await graphilePool.end()
  await Effect.runPromise(Effect.ignore(dropSchemas))
}
// Interrupted (Ctrl-C, a time limit): the schemas still go
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    progress(`${signal}: stopping and dropping the schemas`)
    void cleanup().finally(() => process.exit(130))
  })
}

try {
  await main()
} catch (error) {
  console.error(error)
  process.exitCode = 1
} finally {
  await cleanup()
}
