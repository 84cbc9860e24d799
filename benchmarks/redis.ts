/**
 * The Redis queue against BullMQ, side by side in one run on one Redis (`REDIS_URL`, default
 * `redis://127.0.0.1:6379`), each under its own throw-away key prefix:
 *
 * - enqueue: 20,000 no-op jobs, one call per job with 50 calls in flight (`enqueue` / `queue.add`), and in batches
 *   of 1,000 (`enqueueBatch` / `queue.addBulk`);
 * - drain: those 20,000 jobs through a worker at concurrency 10 and 50 (`Worker.run` / BullMQ's `Worker`), timed
 *   from the worker's start to the last job recorded as completed in Redis (Mandate: the worker's `completed`
 *   counter, which moves once the completion is written, as in `bench:pg`; BullMQ: its `completed` event);
 * - latency at light load: an idle worker (concurrency 10) and one job every 10 ms; the time from the enqueue call
 *   to the handler starting, p50/p95/p99.
 *
 * Mandate runs with its defaults (completed jobs kept). BullMQ runs twice per phase: with its defaults, and in the
 * fastest configuration its documentation gives (`bullConfigs`: finished jobs removed at once, no stalled-job
 * checker, no lock renewal); ratios are against the faster of the two in the same run: above 1 for throughput and
 * below 1 for latency mean Mandate is ahead. Each phase also reports CPU per job: this process's (which runs both
 * systems' client code) and the Redis server's (`INFO cpu`; any other client of that Redis adds to it), and the
 * bytes per job into and out of Redis (`INFO stats`, likewise). `BENCH_PREFIX` puts every key under a namespace.
 *
 * Run: `npm run bench:redis` (options: `-- --jobs 20000 --latency-jobs 500 --rounds 1 --warm-up 20000
 * --prefetch 90 --mandate-only`; with several rounds each is reported, then each system's median per phase).
 *
 * @since 0.1.0
 */
import { loadavg } from "node:os"
import { layerClient, layerQueue, makeConfig } from "@mandate/adapters/redis"
import { AgentId, Queue, Worker } from "@mandate/core"
import { Queue as BullQueue, Worker as BullWorker, type Processor, type QueueOptions, type WorkerOptions } from "bullmq"
import { Deferred, Effect, Layer, ManagedRuntime } from "effect"
import { Redis } from "ioredis"
import { arg, cpuMs, type Latency, latencyOf, pooled, sleep } from "./support.ts"

const jobs = arg("jobs", 20_000)
const latencyJobs = arg("latency-jobs", 500)
const rounds = arg("rounds", 1)
const warm = arg("warm-up", 20_000)
// `--prefetch n`: Mandate's `Worker` prefetch in the drains (default: the `Worker`'s, = concurrency)
const prefetch = process.argv.includes("--prefetch") ? arg("prefetch", 0) : undefined
const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"
const run = crypto.randomUUID().slice(0, 8)
// BENCH_PREFIX: a namespace of the caller's on a shared Redis
const namespace = process.env.BENCH_PREFIX ?? ""
const mandatePrefix = `${namespace}mandate_bench:${run}:`
const bullPrefix = `${namespace}bull_bench_${run}`

interface Measure {
  readonly label: string
  readonly count: number
  readonly wallMs: number
  readonly cpuMs: number
  /** The Redis server's CPU time over the phase (every client's: other load on the same Redis shows here). */
  readonly redisCpuMs: number
  /** Bytes the Redis server read and wrote over the phase (every client's, as for its CPU). */
  readonly bytesIn: number
  readonly bytesOut: number
}
// The Redis server's own CPU time so far (user + system of all its threads), in ms, and its network bytes so far
const probe = new Redis(url, { maxRetriesPerRequest: null })
const redisCounters = async (): Promise<{
  readonly cpuMs: number
  readonly bytesIn: number
  readonly bytesOut: number
}> => {
  const info = await probe.info()
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, "m").exec(info)?.[1] ?? Number.NaN)
  return {
    cpuMs: (field("used_cpu_user") + field("used_cpu_sys")) * 1000,
    bytesIn: field("total_net_input_bytes"),
    bytesOut: field("total_net_output_bytes")
  }
}
const measure = async (label: string, count: number, f: () => Promise<void>): Promise<Measure> => {
  const before = await redisCounters()
  const cpu = cpuMs()
  const started = performance.now()
  await f()
  const wallMs = performance.now() - started
  const cpuSpent = cpuMs() - cpu
  const after = await redisCounters()
  return {
    label,
    count,
    wallMs,
    cpuMs: cpuSpent,
    redisCpuMs: after.cpuMs - before.cpuMs,
    bytesIn: after.bytesIn - before.bytesIn,
    bytesOut: after.bytesOut - before.bytesOut
  }
}

// ---- Mandate ---------------------------------------------------------------------------------------------------

const mandate = ManagedRuntime.make(
  layerQueue({ prefix: mandatePrefix }).pipe(
    Layer.provideMerge(layerClient(makeConfig(url, { prefix: mandatePrefix, clientName: "mandate-bench" })))
  )
)
const withQueue = <A>(f: (queue: Queue["Service"]) => Effect.Effect<A, unknown>) => mandate.runPromise(Queue.use(f))

const mandateEnqueueSingle = (name: string) =>
  measure("enqueue, one call per job", jobs, () => mandateEnqueueSingleN(name, jobs))

const mandateEnqueueSingleN = (name: string, count: number) =>
  withQueue((queue) =>
    Effect.forEach(
      Array.from({ length: count }, (_, i) => i),
      (i) => queue.enqueue({ queue: name, payload: { i } }),
      { concurrency: 50, discard: true }
    )
  )

const mandateEnqueueBatches = (name: string) =>
  measure("enqueue, batches of 1,000", jobs, () => mandateEnqueueBatchesN(name, jobs))

const mandateEnqueueBatchesN = async (name: string, count: number) => {
  for (let i = 0; i < count; i += 1_000) {
    const size = Math.min(1_000, count - i)
    await withQueue((queue) =>
      queue.enqueueBatch(Array.from({ length: size }, (_, k) => ({ queue: name, payload: { i: i + k } })))
    )
  }
}

const mandateDrain = (name: string, concurrency: number) =>
  measure(`drain at concurrency ${concurrency}`, jobs, () => mandateDrainN(name, jobs, concurrency))

const mandateDrainN = (name: string, count: number, concurrency = 10) =>
  mandate.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const handled = yield* Deferred.make<void>()
        let started = 0
        const worker = yield* Worker.run({
          queues: [name],
          concurrency,
          ...(prefetch === undefined ? {} : { prefetch }),
          workerId: AgentId.make(`bench-${name}-${concurrency}-${run}`),
          handler: () =>
            Effect.sync(() => {
              if (++started === count) Deferred.doneUnsafe(handled, Effect.void)
            })
        })
        yield* Deferred.await(handled)
        // the worker's counter moves once the completion is written (as in bench:pg)
        while ((yield* worker.stats).completed < count) yield* Effect.sleep(1)
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

/**
 * BullMQ's two configurations: its defaults, and the fastest its documentation gives for this workload (finished
 * jobs removed at once instead of kept in the completed set, no stalled-job checker and no lock-renewal timer on
 * the worker; `addBulk` for batches in both). Everything else (events stream, lock duration) stays default.
 */
interface BullConfig {
  readonly name: string
  readonly queue: Omit<QueueOptions, "connection" | "prefix">
  readonly worker: Omit<WorkerOptions, "connection" | "prefix" | "concurrency">
}
const allBullConfigs: ReadonlyArray<BullConfig> = [
  { name: "default", queue: {}, worker: {} },
  {
    name: "fast",
    queue: { defaultJobOptions: { removeOnComplete: true, removeOnFail: true } },
    worker: {
      removeOnComplete: { count: 0 },
      removeOnFail: { count: 0 },
      skipStalledCheck: true,
      skipLockRenewal: true
    }
  }
]

// `--mandate-only`: Mandate's phases alone (for profiling it)
const bullConfigs = process.argv.includes("--mandate-only") ? [] : allBullConfigs

const connection = () => new Redis(url, { maxRetriesPerRequest: null })
const bullConnections: Array<Redis> = []
const bullQueue = (config: BullConfig, name: string) => {
  const conn = connection()
  bullConnections.push(conn)
  return new BullQueue(`${config.name}-${name}`, { ...config.queue, connection: conn, prefix: bullPrefix })
}
const bullWorker = (config: BullConfig, name: string, concurrency: number, processor: Processor) => {
  const conn = connection()
  bullConnections.push(conn)
  return new BullWorker(`${config.name}-${name}`, processor, {
    ...config.worker,
    connection: conn,
    prefix: bullPrefix,
    concurrency
  })
}

const bullEnqueueSingle = (config: BullConfig, name: string) => {
  const queue = bullQueue(config, name)
  return measure("enqueue, one call per job", jobs, () => pooled(jobs, 50, (i) => queue.add("job", { i })))
}

const bullEnqueueBatches = (config: BullConfig, name: string) =>
  measure("enqueue, batches of 1,000", jobs, () => bullEnqueueBatchesN(config, name, jobs))

const bullEnqueueBatchesN = async (config: BullConfig, name: string, count: number) => {
  const queue = bullQueue(config, name)
  for (let i = 0; i < count; i += 1_000) {
    const size = Math.min(1_000, count - i)
    await queue.addBulk(Array.from({ length: size }, (_, k) => ({ name: "job", data: { i: i + k } })))
  }
}

const bullDrain = (config: BullConfig, name: string, concurrency: number) =>
  measure(`drain at concurrency ${concurrency}`, jobs, () => bullDrainN(config, name, jobs, concurrency))

const bullDrainN = async (config: BullConfig, name: string, count: number, concurrency = 10) => {
  let completed = 0
  let resolve: () => void = () => {}
  const finished = new Promise<void>((r) => {
    resolve = r
  })
  const worker = bullWorker(config, name, concurrency, async () => {})
  worker.on("completed", () => {
    if (++completed === count) resolve()
  })
  await finished
  await worker.close()
}

const bullLatency = async (config: BullConfig, name: string): Promise<Latency> => {
  const samples: Array<number> = []
  let resolve: () => void = () => {}
  const finished = new Promise<void>((r) => {
    resolve = r
  })
  const worker = bullWorker(config, name, 10, async (job) => {
    samples.push(performance.now() - (job.data as { t: number }).t)
    if (samples.length === latencyJobs) resolve()
  })
  await worker.waitUntilReady()
  const queue = bullQueue(config, name)
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
const perJobUs = (ms: number, m: Measure) => Math.round((ms * 1000) / m.count)
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

interface Row {
  readonly mandate: Measure
  readonly bull: ReadonlyArray<Measure>
}

const main = async () => {
  console.log(`Redis queue benchmark: Mandate vs BullMQ 6.7.0 (ioredis), ${fmt(jobs)} no-op jobs, on ${url}`)
  console.log(
    `node ${process.version}, ${process.platform}/${process.arch}, load average ${loadavg()
      .map((n) => n.toFixed(1))
      .join(" ")}`
  )
  if (prefetch !== undefined) console.log(`Mandate's Worker: prefetch ${prefetch} (not its default)`)

  // Warm-up (not reported): scripts loaded, code paths compiled and optimized, connections open, for each
  // system alike: every throughput phase once with `--warm-up` jobs (default 20,000; V8 was still optimizing
  // Mandate's enqueue path after 2,000, which cost the first system measured up to 2× client CPU per job)
  console.log(`warming up: ${fmt(warm)} jobs through every throughput phase, each system`)
  await mandateEnqueueSingleN("warm-up", warm)
  await mandateDrainN("warm-up", warm, 10)
  await mandateEnqueueBatchesN("warm-up", warm)
  await mandateDrainN("warm-up", warm, 50)
  for (const config of bullConfigs) {
    const warmBull = bullQueue(config, "warm-up")
    await pooled(warm, 50, (i) => warmBull.add("job", { i }))
    await bullDrainN(config, "warm-up", warm, 10)
    await bullEnqueueBatchesN(config, "warm-up", warm)
    await bullDrainN(config, "warm-up", warm, 50)
  }

  const results: Array<Round> = []
  for (let round = 1; round <= rounds; round++) {
    results.push(await runRound(round))
    if (rounds > 1) console.log(`round ${round} of ${rounds} done, load average ${loadavg()[0]!.toFixed(1)}`)
  }
  for (const [i, result] of results.entries()) report(rounds > 1 ? `round ${i + 1}` : "", result)
  if (rounds > 1) {
    // Each system's median per phase over the rounds (the rounds interleave both, so load hits them alike)
    const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
    const medianMeasure = (ms: ReadonlyArray<Measure>): Measure => {
      const byRate = [...ms].sort((a, b) => rate(a) - rate(b))
      return byRate[Math.floor(byRate.length / 2)]!
    }
    const rows = results[0]!.rows.map((row, i) => ({
      mandate: medianMeasure(results.map((r) => r.rows[i]!.mandate)),
      bull: row.bull.map((_, b) => medianMeasure(results.map((r) => r.rows[i]!.bull[b]!)))
    }))
    const latencyMedian = (ls: ReadonlyArray<Latency>): Latency => ({
      p50: median(ls.map((l) => l.p50)),
      p95: median(ls.map((l) => l.p95)),
      p99: median(ls.map((l) => l.p99))
    })
    report(`median of ${rounds} rounds`, {
      rows,
      mandateLatency: latencyMedian(results.map((r) => r.mandateLatency)),
      bullLatency: bullConfigs.map((_, b) => latencyMedian(results.map((r) => r.bullLatency[b]!)))
    })
  }
}

interface Round {
  readonly rows: ReadonlyArray<Row>
  readonly mandateLatency: Latency
  readonly bullLatency: ReadonlyArray<Latency>
}

// One pass of every phase for Mandate and each BullMQ configuration, on queues of their own. Who goes first turns
// with the round, so that none always runs on the warmest (or the quietest) machine
const runRound = async (round: number): Promise<Round> => {
  const order = <A>(runs: ReadonlyArray<() => Promise<A>>): Promise<Array<A>> =>
    (async () => {
      const out: Array<A> = new Array(runs.length)
      for (let k = 0; k < runs.length; k++) {
        const i = (k + round - 1) % runs.length
        out[i] = await runs[i]!()
      }
      return out
    })()
  const rows: Array<Row> = []
  // enqueue one call per job, then drain those at concurrency 10; batches, then drain at concurrency 50
  for (const [concurrency, single] of [
    [10, true],
    [50, false]
  ] as const) {
    const name = `drain-${concurrency}-${round}`
    const [mEnqueue, ...bEnqueue] = await order<Measure>([
      () => (single ? mandateEnqueueSingle(name) : mandateEnqueueBatches(name)),
      ...bullConfigs.map(
        (config) => () => (single ? bullEnqueueSingle(config, name) : bullEnqueueBatches(config, name))
      )
    ])
    rows.push({ mandate: mEnqueue!, bull: bEnqueue })
    const [mDrain, ...bDrain] = await order<Measure>([
      () => mandateDrain(name, concurrency),
      ...bullConfigs.map((config) => () => bullDrain(config, name, concurrency))
    ])
    rows.push({ mandate: mDrain!, bull: bDrain })
  }
  const [mandateLatencyOf, ...bullLatencyOf] = await order<Latency>([
    () => mandateLatency(`latency-${round}`),
    ...bullConfigs.map((config) => () => bullLatency(config, `latency-${round}`))
  ])
  return { rows, mandateLatency: mandateLatencyOf!, bullLatency: bullLatencyOf }
}

const report = (title: string, { rows, mandateLatency: mLatency, bullLatency: bLatency }: Round) => {
  const names = bullConfigs.map((c) => `BullMQ ${c.name}`)
  console.log("")
  if (title !== "") console.log(`== ${title}`)
  console.log("throughput, jobs/s (ratio: Mandate / the faster BullMQ configuration of the same run)")
  console.log(
    `${"phase".padEnd(28)}${"Mandate".padStart(10)}${names.map((n) => n.padStart(16)).join("")}${"ratio".padStart(8)}`
  )
  for (const { mandate: m, bull } of rows) {
    const best = Math.max(...bull.map(rate))
    console.log(
      `${m.label.padEnd(28)}${fmt(rate(m)).padStart(10)}${bull.map((b) => fmt(rate(b)).padStart(16)).join("")}${(bull.length === 0 ? "" : (rate(m) / best).toFixed(2)).padStart(8)}`
    )
  }
  console.log("")
  console.log("CPU per job, µs: this process (client) + the Redis server (its CPU counts every client of that Redis)")
  console.log(`${"phase".padEnd(28)}${"Mandate".padStart(12)}${names.map((n) => n.padStart(18)).join("")}`)
  const cpu = (m: Measure) => `${perJobUs(m.cpuMs, m)} + ${perJobUs(m.redisCpuMs, m)}`
  for (const { mandate: m, bull } of rows) {
    console.log(`${m.label.padEnd(28)}${cpu(m).padStart(12)}${bull.map((b) => cpu(b).padStart(18)).join("")}`)
  }
  console.log("")
  console.log("Bytes per job on the wire: into Redis / out of Redis (every client of that Redis)")
  const bytes = (m: Measure) => `${Math.round(m.bytesIn / m.count)} / ${Math.round(m.bytesOut / m.count)}`
  for (const { mandate: m, bull } of rows) {
    console.log(`${m.label.padEnd(28)}${bytes(m).padStart(12)}${bull.map((b) => bytes(b).padStart(18)).join("")}`)
  }
  console.log("")
  console.log(`latency at light load (1 job / 10 ms, ${latencyJobs} jobs, enqueue call → handler start), ms:`)
  console.log(`${"".padEnd(18)}${"p50".padStart(8)}${"p95".padStart(8)}${"p99".padStart(8)}`)
  const line = (label: string, l: Latency) =>
    console.log(`${label.padEnd(18)}${ms(l.p50).padStart(8)}${ms(l.p95).padStart(8)}${ms(l.p99).padStart(8)}`)
  line("Mandate", mLatency)
  for (let i = 0; i < bLatency.length; i++) line(names[i]!, bLatency[i]!)
  const bestOf = (p: keyof Latency) => Math.min(...bLatency.map((l) => l[p]))
  if (bLatency.length === 0) return
  console.log(
    `${"ratio to best".padEnd(18)}${(mLatency.p50 / bestOf("p50")).toFixed(2).padStart(8)}${(mLatency.p95 / bestOf("p95")).toFixed(2).padStart(8)}${(mLatency.p99 / bestOf("p99")).toFixed(2).padStart(8)}`
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
    await probe.quit().catch(() => undefined)
    await cleanup()
  })
