/**
 * Prometheus metrics of the server: HTTP requests by route and status with a latency histogram (recorded by
 * the request middleware), and, read at scrape time, tasks by state, queue depth by state and the ledger's
 * size. `render` refreshes the gauges from the core services and formats everything in the text format.
 *
 * Each server layer gets its own registry (`layerRegistry`), so two servers in one process (tests) do not
 * share counts.
 *
 * @since 0.1.0
 */
import { Ledger, Queue, TaskStore } from "@mandate/core"
import { Effect, Layer, Metric } from "effect"
import { PrometheusMetrics } from "effect/observability"

/**
 * @category metrics
 * @since 0.1.0
 */
export const httpRequests = Metric.counter("mandate_http_requests_total", {
  description: "HTTP requests by method, route and status"
})

/**
 * @category metrics
 * @since 0.1.0
 */
export const httpDuration = Metric.histogram("mandate_http_request_duration_seconds", {
  description: "HTTP request latency (until the response head) by method and route",
  boundaries: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
})

/**
 * @category metrics
 * @since 0.1.0
 */
export const tasks = Metric.gauge("mandate_tasks", { description: "Tasks by state" })

/**
 * @category metrics
 * @since 0.1.0
 */
export const queueJobs = Metric.gauge("mandate_queue_jobs", { description: "Queue jobs by state (all queues)" })

/**
 * @category metrics
 * @since 0.1.0
 */
export const ledgerEntries = Metric.gauge("mandate_ledger_entries", { description: "Entries in the audit ledger" })

/**
 * Records one HTTP request.
 *
 * @category recording
 * @since 0.1.0
 */
export const recordRequest = (method: string, route: string, status: number, seconds: number): Effect.Effect<void> => {
  // Tagged metrics are cached: routes and statuses are few, and building one per request showed in profiles
  const key = `${method} ${route} ${status}`
  let tagged = taggedMetrics.get(key)
  if (tagged === undefined) {
    if (taggedMetrics.size > 10_000) taggedMetrics.clear()
    tagged = {
      count: Metric.withAttributes(httpRequests, { method, route, status: String(status) }),
      duration: Metric.withAttributes(httpDuration, { method, route })
    }
    taggedMetrics.set(key, tagged)
  }
  return Effect.andThen(Metric.update(tagged.count, 1), Metric.update(tagged.duration, seconds))
}

const taggedMetrics = new Map<
  string,
  { readonly count: Metric.Metric<number, unknown>; readonly duration: Metric.Metric<number, unknown> }
>()

/**
 * Refreshes the gauges from the stores and renders every metric as Prometheus text.
 *
 * @category rendering
 * @since 0.1.0
 */
export const render = Effect.gen(function* () {
  const counts = yield* TaskStore.use((store) => store.countByState)
  for (const [state, count] of Object.entries(counts)) {
    yield* Metric.update(Metric.withAttributes(tasks, { state }), count)
  }
  const stats = yield* Queue.use((queue) => queue.stats())
  for (const [state, count] of Object.entries(stats.byState)) {
    yield* Metric.update(Metric.withAttributes(queueJobs, { state }), count)
  }
  yield* Metric.update(ledgerEntries, yield* Ledger.use((ledger) => ledger.size))
  return yield* PrometheusMetrics.format()
})

/**
 * A fresh metric registry for one server.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerRegistry = Layer.sync(Metric.MetricRegistry, () => new Map())
