/**
 * Queue micro-benchmark (memory layer): enqueue 100,000 no-op jobs, then drain them through `Worker.run`
 * with concurrency 10. Prints enqueue and processing throughput and the latency of each `claim` call.
 *
 * Run: `npm run bench:queue` (optionally `-- --jobs 20000 --concurrency 10`).
 *
 * @since 0.1.0
 */
import { type ClaimRequest, Queue, Worker } from "@mandate/core"
import { Deferred, Effect, Layer } from "effect"
import { cpuMs, percentile, rate } from "./support.ts"

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  const value = i >= 0 ? Number(process.argv[i + 1]) : Number.NaN
  return Number.isFinite(value) && value > 0 ? value : fallback
}
const jobs = arg("jobs", 100_000)
const concurrency = arg("concurrency", 10)

// Wraps the layer's claim to time each call; everything else goes straight to the memory queue
const claimLatencies: Array<number> = []
const TimedQueue = Layer.effect(
  Queue,
  Effect.gen(function* () {
    const queue = yield* Queue
    return Queue.of({
      ...queue,
      claim: (request: ClaimRequest) =>
        Effect.suspend(() => {
          const started = performance.now()
          return Effect.tap(queue.claim(request), () =>
            Effect.sync(() => void claimLatencies.push(performance.now() - started))
          )
        })
    })
  })
).pipe(Layer.provide(Queue.layerMemory()))

const phase = (label: string, count: number, wallMs: number, cpu: number) =>
  console.log(
    `${label.padEnd(30)}${rate(count, wallMs).padStart(9)} jobs/s  (${Math.round(wallMs)} ms wall, ${Math.round(cpu)} ms CPU: ${rate(count, cpu)} jobs per CPU-second)`
  )

const program = Effect.gen(function* () {
  const queue = yield* Queue

  // 1. one enqueue call per job
  let started = performance.now()
  let cpu = cpuMs()
  for (let i = 0; i < jobs; i++) yield* queue.enqueue({ queue: "bench", payload: { i } })
  const enqueueMs = performance.now() - started
  const enqueueCpu = cpuMs() - cpu

  // 1b. the same number of jobs in batches of 1,000 (another queue; not drained)
  started = performance.now()
  cpu = cpuMs()
  for (let i = 0; i < jobs; i += 1_000) {
    yield* queue.enqueueBatch(
      Array.from({ length: Math.min(1_000, jobs - i) }, (_, k) => ({ queue: "bench-batch", payload: { i: i + k } }))
    )
  }
  const batchMs = performance.now() - started
  const batchCpu = cpuMs() - cpu

  // 2. drain through a worker pool
  const done = yield* Deferred.make<void>()
  let processed = 0
  started = performance.now()
  cpu = cpuMs()
  const stats = yield* Effect.scoped(
    Effect.gen(function* () {
      const worker = yield* Worker.run({
        queues: ["bench"],
        concurrency,
        handler: () =>
          Effect.sync(() => {
            processed++
            if (processed === jobs) Deferred.doneUnsafe(done, Effect.void)
          })
      })
      yield* Deferred.await(done)
      return yield* worker.stats
    })
  )
  const drainMs = performance.now() - started
  const drainCpu = cpuMs() - cpu
  const left = yield* queue.stats("bench")

  const sorted = [...claimLatencies].sort((a, b) => a - b)
  const micros = (ms: number) => `${Math.round(ms * 1000)} µs`
  console.log(`Queue benchmark: memory layer, ${jobs.toLocaleString("en-US")} no-op jobs, concurrency ${concurrency}`)
  console.log(`node ${process.version}, ${process.platform}/${process.arch}`)
  phase("enqueue (one call per job)", jobs, enqueueMs, enqueueCpu)
  phase("enqueue (batches of 1,000)", jobs, batchMs, batchCpu)
  phase("processing (Worker.run)", jobs, drainMs, drainCpu)
  console.log(
    `claim latency: p50 ${micros(percentile(sorted, 0.5))}, p99 ${micros(percentile(sorted, 0.99))} ` +
      `over ${sorted.length.toLocaleString("en-US")} claims (${(stats.claimed / sorted.length).toFixed(1)} jobs per claim)`
  )
  console.log(`completed ${left.byState.completed.toLocaleString("en-US")}, left queued ${left.byState.queued}`)
  if (left.byState.completed !== jobs) throw new Error("not every job completed")
})

Effect.runPromise(program.pipe(Effect.provide(TimedQueue))).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
