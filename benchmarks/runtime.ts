/**
 * bench:runtime — N seed tasks (transfer_funds: check_balance → policy_check → onchain_action) on the memory
 * layers under an auto-approval policy. Prints tasks/s and task latency (start → task.completed).
 *
 *   npm run bench:runtime            (N = 10,000)
 *   npm run bench:runtime -- 2000    (another N)
 */
import { Mandate, Runtime } from "@mandate/core"
import { Effect } from "effect"
import { alice, autoApprove, percentile, trackCompletions, transfer } from "./support.ts"

const N = Number(process.argv[2] ?? 10_000)
const CONCURRENCY = Number(process.argv[3] ?? 32)

const run = (count: number, sequential: boolean) =>
  Effect.gen(function* () {
    const runtime = yield* Runtime
    const { started, latencies, allDone } = yield* trackCompletions(count)
    const t0 = performance.now()
    const cpu0 = process.cpuUsage()
    const submit = (i: number) =>
      Effect.gen(function* () {
        const begin = performance.now()
        const task = yield* runtime.start(transfer(i), alice)
        started(task.id, begin)
      })
    if (sequential) {
      for (let i = 0; i < count; i++) {
        const before = latencies.length
        yield* submit(i)
        while (latencies.length === before) yield* Effect.sleep("0 millis")
      }
    } else {
      yield* Effect.forEach(
        Array.from({ length: count }, (_, i) => i),
        submit,
        { concurrency: 64, discard: true }
      )
    }
    const submitted = performance.now() - t0
    yield* allDone
    const elapsed = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    latencies.sort((a, b) => a - b)
    return {
      submitted,
      elapsed,
      cpuMsPerTask: (cpu.user + cpu.system) / 1000 / count,
      p50: percentile(latencies, 0.5),
      p99: percentile(latencies, 0.99)
    }
  }).pipe(Effect.scoped)

const program = Effect.gen(function* () {
  const load = yield* run(N, false)
  const light = yield* run(200, true)
  const line = (label: string, value: string) => console.log(`${label.padEnd(34)}${value}`)
  console.log(
    `bench:runtime — ${N} seed tasks (3 steps, auto-approval) on memory layers, worker concurrency ${CONCURRENCY}`
  )
  line("submitted (start calls)", `${(N / (load.submitted / 1000)).toFixed(0)} tasks/s`)
  line("completed", `${(N / (load.elapsed / 1000)).toFixed(0)} tasks/s  (${(load.elapsed / 1000).toFixed(2)} s)`)
  line(
    "CPU per task",
    `${load.cpuMsPerTask.toFixed(2)} ms (${(1000 / load.cpuMsPerTask).toFixed(0)} tasks per CPU-second)`
  )
  line("task latency under load", `p50 ${load.p50.toFixed(1)} ms  p99 ${load.p99.toFixed(1)} ms`)
  line("task latency, one at a time", `p50 ${light.p50.toFixed(2)} ms  p99 ${light.p99.toFixed(2)} ms`)
})

program.pipe(
  Effect.provide(
    Mandate.layerMemory({
      policy: autoApprove,
      runtime: { concurrency: CONCURRENCY, pollIntervalMs: 100 },
      ledger: { anchorEvery: { entries: 10_000 } }
    })
  ),
  Effect.runPromise
)
