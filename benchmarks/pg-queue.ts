/**
 * The Postgres queue: enqueue (one call per job, and batches), drain through `Worker.run` at concurrency 10 and
 * 50, the latency of each `claim`, and how soon an idle worker (polling only once a minute) picks up a job
 * after its enqueue, which is the LISTEN/NOTIFY path.
 *
 * Run: `npm run bench:pg-queue` (optionally `-- --jobs 20000`; DATABASE_URL or
 * postgres://root@127.0.0.1:5432/test; a throw-away schema).
 *
 * @since 0.1.0
 */
import * as Postgres from "@mandate/adapters/postgres"
import { type ClaimRequest, Queue, Worker } from "@mandate/core"
import { Context, Deferred, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { percentile } from "./support.ts"

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  const value = i >= 0 ? Number(process.argv[i + 1]) : Number.NaN
  return Number.isFinite(value) && value > 0 ? value : fallback
}
const jobs = arg("jobs", 20_000)
const url = process.env.DATABASE_URL ?? "postgres://root@127.0.0.1:5432/test"
const schema = `mandate_bench_${crypto.randomUUID().replaceAll("-", "")}`
const config = Postgres.makeConfig(url, { schema, poolSize: 20 })

const claimLatencies: Array<number> = []
// The backend's queue with each `claim` timed (the worker calls claim; everything else goes straight through)
const timedClaims = (queue: Queue["Service"]): Queue["Service"] =>
  Queue.of({
    ...queue,
    claim: (request: ClaimRequest) =>
      Effect.suspend(() => {
        const started = performance.now()
        return Effect.tap(queue.claim(request), () =>
          Effect.sync(() => void claimLatencies.push(performance.now() - started))
        )
      })
  })

const rate = (count: number, ms: number) => Math.round((count / ms) * 1000).toLocaleString("en-US")
const cpuMs = () => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1000
}
const phase = (label: string, count: number, wallMs: number, cpu: number) =>
  console.log(
    `${label.padEnd(36)}${rate(count, wallMs).padStart(8)} jobs/s  (${Math.round(wallMs)} ms wall, ${Math.round(cpu)} ms CPU in Node)`
  )
const latencies = (label: string, values: Array<number>) => {
  values.sort((a, b) => a - b)
  console.log(
    `${label.padEnd(36)}p50 ${percentile(values, 0.5).toFixed(2)} ms  p95 ${percentile(values, 0.95).toFixed(2)} ms  p99 ${percentile(values, 0.99).toFixed(2)} ms  (${values.length} samples)`
  )
}

const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const started = performance.now()
    const cpu = cpuMs()
    yield* effect
    return { wall: performance.now() - started, cpu: cpuMs() - cpu }
  })

const drain = (queue: string, concurrency: number) =>
  Effect.scoped(
    Effect.gen(function* () {
      let done = 0
      const finished = yield* Deferred.make<void>()
      yield* Worker.run({
        queues: [queue],
        concurrency,
        batchSize: concurrency,
        pollIntervalMs: 50,
        handler: () =>
          Effect.sync(() => {
            if (++done === jobs) Deferred.doneUnsafe(finished, Effect.void)
          })
      })
      yield* Deferred.await(finished)
    })
  )

const program = Effect.gen(function* () {
  const queue = yield* Queue
  console.log(`Postgres queue benchmark (${new Date().toISOString()}, Node ${process.version}), ${jobs} jobs`)

  let t = yield* timed(
    Effect.forEach(
      Array.from({ length: jobs }, (_, i) => i),
      (i) => queue.enqueue({ queue: "single", payload: { i } }),
      {
        concurrency: 10,
        discard: true
      }
    )
  )
  phase("enqueue, one call per job, 10 fibers", jobs, t.wall, t.cpu)

  for (const concurrency of [10, 50]) {
    const name = `batch-${concurrency}`
    t = yield* timed(
      Effect.forEach(
        Array.from({ length: Math.ceil(jobs / 1_000) }, (_, b) => b),
        (b) =>
          queue.enqueueBatch(
            Array.from({ length: Math.min(1_000, jobs - b * 1_000) }, (_, i) => ({
              queue: name,
              payload: { i: b * 1_000 + i }
            }))
          ),
        { discard: true }
      )
    )
    if (concurrency === 10) phase("enqueue, batches of 1,000", jobs, t.wall, t.cpu)
    claimLatencies.length = 0
    t = yield* timed(drain(name, concurrency))
    phase(`drain via Worker.run, concurrency ${concurrency}`, jobs, t.wall, t.cpu)
    latencies(`  claim latency (${concurrency} per claim)`, [...claimLatencies])
  }

  // Light load: one job at a time to an idle worker that would poll only once a minute; the worker runs on the
  // same queue instance (woken in-process after the commit) or on another backend over its own pool (woken by
  // NOTIFY, as a worker in another process is)
  const lightLoad = (label: string, workerQueue: Queue["Service"]) =>
    Effect.scoped(
      Effect.gen(function* () {
        const waits: Array<number> = []
        const name = `light-${label.replaceAll(" ", "-")}`
        let started = 0
        let picked = yield* Deferred.make<void>()
        yield* Worker.run({
          queues: [name],
          pollIntervalMs: 60_000,
          handler: () =>
            Effect.sync(() => {
              waits.push(performance.now() - started)
              Deferred.doneUnsafe(picked, Effect.void)
            })
        }).pipe(Effect.provideService(Queue, workerQueue))
        yield* Effect.sleep(200)
        for (let i = 0; i < 200; i++) {
          picked = yield* Deferred.make<void>()
          started = performance.now()
          yield* queue.enqueue({ queue: name, payload: { i } })
          yield* Deferred.await(picked)
          yield* Effect.sleep(20)
        }
        latencies(`enqueue → handler start, ${label}`, waits)
      })
    )
  yield* lightLoad("same instance", queue)
  const other = yield* Layer.build(Postgres.layer({ ...config, poolSize: 4 }))
  yield* lightLoad("other instance", Context.get(other, Queue))
})

// The schema is dropped after the backend stops, so its background fibers never see it vanish
const dropSchema = Effect.scoped(
  Effect.gen(function* () {
    const sql = Context.get(
      yield* Layer.build(Postgres.layerClient(Postgres.makeConfig(url, { poolSize: 1 }))),
      SqlClient.SqlClient
    )
    yield* sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`
  })
)

const main = Effect.scoped(
  Effect.gen(function* () {
    const backend = yield* Layer.build(Postgres.layer(config))
    yield* program.pipe(Effect.provideService(Queue, timedClaims(Context.get(backend, Queue))))
  })
).pipe(Effect.ensuring(Effect.ignore(dropSchema)))

Effect.runPromise(main).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
