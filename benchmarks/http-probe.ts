/**
 * Preloaded into bench:http's server process (`--import`): the event loop's delay and the GC pauses, per phase.
 * SIGHUP starts counting afresh; SIGUSR2 prints one line to stderr (`probe: …`), so the benchmark asks for one
 * line per route. It tells a long p99 that comes from stalls of the loop (GC, a synchronous burst) from one that
 * comes from queueing behind many short requests.
 */
import * as PerfHooks from "node:perf_hooks"

const delay = PerfHooks.monitorEventLoopDelay({ resolution: 5 })
delay.enable()
let gcCount = 0
let gcMs = 0
let gcMaxMs = 0
let majorCount = 0
let majorMs = 0
new PerfHooks.PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gcCount++
    gcMs += entry.duration
    gcMaxMs = Math.max(gcMaxMs, entry.duration)
    if (
      (entry as unknown as { readonly detail?: { readonly kind?: number } }).detail?.kind ===
      PerfHooks.constants.NODE_PERFORMANCE_GC_MAJOR
    ) {
      majorCount++
      majorMs += entry.duration
    }
  }
}).observe({ entryTypes: ["gc"] })

const reset = () => {
  delay.reset()
  gcCount = 0
  gcMs = 0
  gcMaxMs = 0
  majorCount = 0
  majorMs = 0
}
process.on("SIGHUP", reset)
process.on("SIGUSR2", () => {
  const ms = (ns: number) => (ns / 1e6).toFixed(1)
  process.stderr.write(
    `probe: loop delay p50 ${ms(delay.percentile(50))} ms, p99 ${ms(delay.percentile(99))} ms, max ${ms(delay.max)} ms; GC ${gcCount} pauses, ${gcMs.toFixed(0)} ms in all, longest ${gcMaxMs.toFixed(1)} ms, major ${majorCount} (${majorMs.toFixed(0)} ms); heap ${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(0)} MB\n`
  )
  reset()
})
