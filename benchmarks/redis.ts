/**
 * The Redis queue against BullMQ, side by side in one run on one Redis (`REDIS_URL`, default
 * `redis://127.0.0.1:6379`), each under its own throw-away key prefix:
 *
 * - enqueue: 20,000 no-op jobs, one call per job with 50 calls in flight (`enqueue` / `queue.add`), and in batches
 *   of 1,000 (`enqueueBatch` / `queue.addBulk`);
 * - drain: those 20,000 jobs through a worker at concurrency 10 and 50 (`Worker.run` / BullMQ's `Worker`), timed
 *   from the worker's start to the last job recorded as completed in Redis;
 * - latency at light load: an idle worker (concurrency 10) and one job every 10 ms; the time from the enqueue call
 *   to the handler starting, p50/p95/p99.
 *
 * Both run with their defaults (completed jobs kept). Figures are wall time and this process's CPU time, which
 * both systems share (the Redis server's CPU is not counted). Ratios are Mandate / BullMQ: above 1 for throughput
 * and below 1 for latency mean Mandate is ahead.
 *
 * Run: `npm run bench:redis` (options: `-- --jobs 20000 --latency-jobs 500`).
 *
 * @since 0.1.0
 */
import { loadavg } from "node:os"
import { layerClient, layerQueue, makeConfig } from "@mandate/adapters/redis"
import { AgentId, Queue, Worker } from "@mandate/core"
import { Queue as BullQueue, Worker as BullWorker } from "bullmq"
import { Deferred, Effect, Layer, ManagedRuntime } from "effect"
import { Redis } from "ioredis"
import { cpuMs, type Latency, latencyOf, pooled, sleep } from "./support.ts"

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  const value = i >= 0 ? Number(process.argv[i + 1]) : Number.NaN
  return Number.isFinite(value) && value > 0 ? value : fallback
}
const jobs = arg("jobs", 20_000)
const latencyJobs = arg("latency-jobs", 500)
const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"
const run = crypto.randomUUID().slice(0, 8)
const mandatePrefix = `mandate_bench:${run}:`
const bullPrefix = `bull_bench_${run}`

interface Measure {
  readonly label: string
  readonly count: number
  readonly wallMs: number
  readonly cpuMs: number
}
const measure = async (label: string, count: number, f: () => Promise<void>): Promise<Measure> => {
  const cpu = cpuMs()
  const started = performance.now()
  await f()
  return { label, count, wallMs: performance.now() - started, cpuMs: cpuMs() - cpu }
}

// ---- Mandate ---------------------------------------------------------------------------------------------------

const mandate = ManagedRuntime.make(
  layerQueue({ prefix: mandatePrefix }).pipe(
    Layer.provideMerge(layerClient(makeConfig(url, { prefix: mandatePrefix, clientName: "mandate-bench" })))
  )
)
const withQueue = <A>(f: (queue: Queue["Service"]) => Effect.Effect<A, unknown>) => mandate.runPromise(Queue.use(f))

const mandateEnqueueSingle = (name: string) =>
  measure("enqueue, one call per job", jobs, () =>
    withQueue((queue) =>
      Effect.forEach(
        Array.from({ length: jobs }, (_, i) => i),
        (i) => queue.enqueue({ queue: name, payload: { i } }),
        { concurrency: 50, discard: true }
      )
    )
  )

const mandateEnqueueBatches = (name: string) =>
  measure("enqueue, batches of 1,000", jobs, async () => {
    for (let i = 0; i < jobs; i += 1_000) {
      const size = Math.min(1_000, jobs - i)
      await withQueue((queue) =>
        queue.enqueueBatch(Array.from({ length: size }, (_, k) => ({ queue: name, payload: { i: i + k } })))
      )
    }
  })

const mandateDrain = (name: string, concurrency: number) =>
  measure(`drain at concurrency ${concurrency}`, jobs, () => mandateDrainN(name, jobs, concurrency))

const mandateDrainN = (name: string, count: number, concurrency = 10) =>
  mandate.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const done = yield* Deferred.make<void>()
        let settled = 0
        yield* Worker.run({
          queues: [name],
          concurrency,
          workerId: AgentId.make(`bench-${name}-${concurrency}-${run}`),
          handler: () => Effect.void,
          settle: () =>
            Effect.sync(() => {
              if (++settled === count) Deferred.doneUnsafe(done, Effect.void)
            })
        })
        yield* Deferred.await(done)
      })
    )
  )

const mandateLatency = (name: string) =>
  mandate.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const samples: Array<number> = []
        const done = yield* Deferred.make<void>()
        yield* Worker.run({
          queues: [name],
          concurrency: 10,
          handler: (job) =>
            Effect.sync(() => {
              samples.push(performance.now() - (job.payload as { t: number }).t)
              if (samples.length === latencyJobs) Deferred.doneUnsafe(done, Effect.void)
            })
        })
        const queue = yield* Queue
        yield* Effect.sleep(500) // idle: the worker waits for a wake-up
        for (let i = 0; i < latencyJobs; i++) {
          yield* queue.enqueue({ queue: name, payload: { t: performance.now() } })
          yield* Effect.sleep(10)
        }
        yield* Deferred.await(done)
        return latencyOf(samples)
      })
    )
  )

// ---- BullMQ ----------------------------------------------------------------------------------------------------

const connection = () => new Redis(url, { maxRetriesPerRequest: null })
const bullConnections: Array<Redis> = []
const bullQueue = (name: string) => {
  const conn = connection()
  bullConnections.push(conn)
  return new BullQueue(name, { connection: conn, prefix: bullPrefix })
}

const bullEnqueueSingle = (name: string) => {
  const queue = bullQueue(name)
  return measure("enqueue, one call per job", jobs, () => pooled(jobs, 50, (i) => queue.add("job", { i })))
}

const bullEnqueueBatches = (name: string) => {
  const queue = bullQueue(name)
  return measure("enqueue, batches of 1,000", jobs, async () => {
    for (let i = 0; i < jobs; i += 1_000) {
      const size = Math.min(1_000, jobs - i)
      await queue.addBulk(Array.from({ length: size }, (_, k) => ({ name: "job", data: { i: i + k } })))
    }
  })
}

const bullDrain = (name: string, concurrency: number) =>
  measure(`drain at concurrency ${concurrency}`, jobs, () => bullDrainN(name, jobs, concurrency))

const bullDrainN = async (name: string, count: number, concurrency = 10) => {
  let completed = 0
  let resolve: () => void = () => {}
  const finished = new Promise<void>((r) => {
    resolve = r
  })
  const conn = connection()
  bullConnections.push(conn)
  const worker = new BullWorker(name, async () => {}, { connection: conn, prefix: bullPrefix, concurrency })
  worker.on("completed", () => {
    if (++completed === count) resolve()
  })
  await finished
  await worker.close()
}

const bullLatency = async (name: string): Promise<Latency> => {
  const samples: Array<number> = []
  let resolve: () => void = () => {}
  const finished = new Promise<void>((r) => {
    resolve = r
  })
  const conn = connection()
  bullConnections.push(conn)
  const worker = new BullWorker(
    name,
    async (job) => {
      samples.push(performance.now() - (job.data as { t: number }).t)
      if (samples.length === latencyJobs) resolve()
    },
    { connection: conn, prefix: bullPrefix, concurrency: 10 }
  )
  await worker.waitUntilReady()
  const queue = bullQueue(name)
  await sleep(500)
  for (let i = 0; i < latencyJobs; i++) {
    await queue.add("job", { t: performance.now() })
    await sleep(10)
  }
  await finished
  await worker.close()
  return latencyOf(samples)
}

// ---- the run ---------------------------------------------------------------------------------------------------

const rate = (m: Measure) => Math.round((m.count / m.wallMs) * 1000)
const cpuRate = (m: Measure) => Math.round((m.count / m.cpuMs) * 1000)
const fmt = (n: number) => n.toLocaleString("en-US")
const ms = (n: number) => n.toFixed(2)

const cleanup = async () => {
  const conn = connection()
  for (const pattern of [`${mandatePrefix}*`, `${bullPrefix}:*`]) {
    let cursor = "0"
    do {
      const [next, keys] = await conn.scan(cursor, "MATCH", pattern, "COUNT", 1000)
      if (keys.length > 0) await conn.unlink(...keys)
      cursor = next
    } while (cursor !== "0")
  }
  await conn.quit()
}

const main = async () => {
  console.log(`Redis queue benchmark: Mandate vs BullMQ 6.7.0 (ioredis), ${fmt(jobs)} no-op jobs, on ${url}`)
  console.log(
    `node ${process.version}, ${process.platform}/${process.arch}, load average ${loadavg()
      .map((n) => n.toFixed(1))
      .join(" ")}`
  )
  const rows: Array<{ readonly mandate: Measure; readonly bull: Measure }> = []

  // Warm-up (not reported): scripts loaded, code paths compiled, connections open, for both
  const warm = Math.min(2_000, jobs)
  await withQueue((queue) =>
    Effect.forEach(
      Array.from({ length: warm }, (_, i) => i),
      (i) => queue.enqueue({ queue: "warm-up", payload: { i } }),
      { concurrency: 50, discard: true }
    )
  )
  const warmBull = bullQueue("warm-up")
  await pooled(warm, 50, (i) => warmBull.add("job", { i }))
  await Promise.all([mandateDrainN("warm-up", warm), bullDrainN("warm-up", warm)])

  // enqueue one call per job, then drain those at concurrency 10; batches, then drain at concurrency 50
  for (const [concurrency, single] of [
    [10, true],
    [50, false]
  ] as const) {
    const mName = `drain-${concurrency}`
    const bName = `drain-${concurrency}`
    const mEnqueue = single ? await mandateEnqueueSingle(mName) : await mandateEnqueueBatches(mName)
    const bEnqueue = single ? await bullEnqueueSingle(bName) : await bullEnqueueBatches(bName)
    rows.push({ mandate: mEnqueue, bull: bEnqueue })
    const mDrain = await mandateDrain(mName, concurrency)
    const bDrain = await bullDrain(bName, concurrency)
    rows.push({ mandate: mDrain, bull: bDrain })
  }
  const mLatency = await mandateLatency("latency")
  const bLatency = await bullLatency("latency")

  console.log("")
  console.log(
    `${"phase".padEnd(30)}${"Mandate jobs/s".padStart(16)}${"BullMQ jobs/s".padStart(16)}${"ratio".padStart(8)}` +
      `${"Mandate /CPU-s".padStart(16)}${"BullMQ /CPU-s".padStart(16)}`
  )
  for (const { mandate: m, bull: b } of rows) {
    console.log(
      `${m.label.padEnd(30)}${fmt(rate(m)).padStart(16)}${fmt(rate(b)).padStart(16)}${(rate(m) / rate(b)).toFixed(2).padStart(8)}` +
        `${fmt(cpuRate(m)).padStart(16)}${fmt(cpuRate(b)).padStart(16)}`
    )
  }
  console.log("")
  console.log(`latency at light load (1 job / 10 ms, ${latencyJobs} jobs, enqueue call → handler start), ms:`)
  console.log(`${"".padEnd(10)}${"p50".padStart(8)}${"p95".padStart(8)}${"p99".padStart(8)}`)
  console.log(
    `${"Mandate".padEnd(10)}${ms(mLatency.p50).padStart(8)}${ms(mLatency.p95).padStart(8)}${ms(mLatency.p99).padStart(8)}`
  )
  console.log(
    `${"BullMQ".padEnd(10)}${ms(bLatency.p50).padStart(8)}${ms(bLatency.p95).padStart(8)}${ms(bLatency.p99).padStart(8)}`
  )
  console.log(
    `${"ratio".padEnd(10)}${(mLatency.p50 / bLatency.p50).toFixed(2).padStart(8)}${(mLatency.p95 / bLatency.p95).toFixed(2).padStart(8)}${(mLatency.p99 / bLatency.p99).toFixed(2).padStart(8)}`
  )
}

main()
  .catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
  .finally(async () => {
    await mandate.dispose()
    await Promise.all(bullConnections.map((c) => c.quit().catch(() => undefined)))
    await cleanup()
  })
