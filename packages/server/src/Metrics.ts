/**
 * Prometheus metrics of the server: HTTP requests by route and status with a latency histogram (recorded by
 * the request middleware), and, read at scrape time, tasks by state, queue depth by state and priority, queue
 * waits and failure rate, agents by pool and status, and the ledger's size and checkpoints. `render` refreshes
 * the gauges from the core services and formats everything in the text format; with an OTLP exporter
 * (`layerRefreshFromEnv`) they are also refreshed on the export interval. `docs/grafana-dashboard.json`
 * charts them (a test keeps it in step with this module).
 *
 * Each server layer gets its own registry (`layerRegistry`), so two servers in one process (tests) do not
 * share counts.
 *
 * @since 0.1.0
 */
import { Agents, Ledger, Queue, TaskStore } from "@mandate/core"
import { Config, Duration, Effect, Layer, Metric, Option, Schedule } from "effect"
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
 * @category metrics
 * @since 0.1.0
 */
export const queueReady = Metric.gauge("mandate_queue_ready_jobs", {
  description: "Jobs ready to be claimed now, by priority (all queues)"
})

/**
 * @category metrics
 * @since 0.1.0
 */
export const queueWait = Metric.gauge("mandate_queue_wait_seconds", {
  description: "Wait from ready to claimed over recent jobs, by quantile (0.5, 0.95; all queues)"
})

/**
 * @category metrics
 * @since 0.1.0
 */
export const queueOldest = Metric.gauge("mandate_queue_oldest_ready_seconds", {
  description: "Age of the oldest job ready to be claimed (0 when none)"
})

/**
 * @category metrics
 * @since 0.1.0
 */
export const queueFailureRate = Metric.gauge("mandate_queue_failure_ratio", {
  description: "Failed attempts over finished attempts among recent jobs (all queues)"
})

/**
 * @category metrics
 * @since 0.1.0
 */
export const agents = Metric.gauge("mandate_agents", { description: "Registered agents by pool and status" })

/**
 * @category metrics
 * @since 0.1.0
 */
export const ledgerCheckpointSize = Metric.gauge("mandate_ledger_checkpoint_size", {
  description: "Entries covered by the latest signed checkpoint (entries beyond it are not yet signed)"
})

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
 * Refreshes the gauges from the stores.
 *
 * @category recording
 * @since 0.1.0
 */
export const refresh = Effect.gen(function* () {
  const counts = yield* TaskStore.use((store) => store.countByState)
  for (const [state, count] of Object.entries(counts)) {
    yield* Metric.update(Metric.withAttributes(tasks, { state }), count)
  }
  const stats = yield* Queue.use((queue) => queue.stats())
  for (const [state, count] of Object.entries(stats.byState)) {
    yield* Metric.update(Metric.withAttributes(queueJobs, { state }), count)
  }
  for (const [priority, count] of Object.entries(stats.pendingByPriority)) {
    yield* Metric.update(Metric.withAttributes(queueReady, { priority }), count)
  }
  yield* Metric.update(Metric.withAttributes(queueWait, { quantile: "0.5" }), (stats.waitP50Ms ?? 0) / 1_000)
  yield* Metric.update(Metric.withAttributes(queueWait, { quantile: "0.95" }), (stats.waitP95Ms ?? 0) / 1_000)
  yield* Metric.update(queueOldest, (stats.oldestReadyAgeMs ?? 0) / 1_000)
  yield* Metric.update(queueFailureRate, stats.failureRate ?? 0)
  for (const pool of yield* Agents.use((registry) => registry.pools)) {
    for (const status of ["online", "degraded", "offline"] as const) {
      yield* Metric.update(Metric.withAttributes(agents, { pool: pool.pool, status }), pool[status])
    }
  }
  const ledger = yield* Ledger
  yield* Metric.update(ledgerEntries, yield* ledger.size)
  const checkpoint = yield* ledger.latestCheckpoint
  yield* Metric.update(
    ledgerCheckpointSize,
    Option.match(checkpoint, { onNone: () => 0, onSome: (c) => c.checkpoint.size })
  )
})

/**
 * Refreshes the gauges from the stores and renders every metric as Prometheus text.
 *
 * @category rendering
 * @since 0.1.0
 */
export const render = Effect.andThen(refresh, PrometheusMetrics.format())

/**
 * A fresh metric registry for one server.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerRegistry = Layer.sync(Metric.MetricRegistry, () => new Map())

/**
 * When metrics are exported over OTLP (`OTEL_EXPORTER_OTLP_ENDPOINT` set), refreshes the gauges every
 * `OTEL_METRIC_EXPORT_INTERVAL` ms (default 10,000), as a scrape of `/metrics` would: a collector that never
 * scrapes still sees current counts. Nothing otherwise.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerRefreshFromEnv = Layer.effectDiscard(
  Effect.gen(function* () {
    const env = yield* Config.all({
      disabled: Config.Boolean("OTEL_SDK_DISABLED").pipe(Config.withDefault(false)),
      endpoint: Config.option(Config.String("OTEL_EXPORTER_OTLP_ENDPOINT")),
      interval: Config.Int("OTEL_METRIC_EXPORT_INTERVAL").pipe(Config.withDefault(10_000))
    })
    if (env.disabled || Option.isNone(env.endpoint)) return
    yield* refresh.pipe(
      Effect.catchCause((cause) => Effect.logWarning("refreshing the metrics' gauges failed", cause)),
      Effect.repeat(Schedule.spaced(Duration.millis(Math.max(100, env.interval)))),
      // Housekeeping: a trace of store reads every interval would only bury the tasks' traces
      Effect.withTracerEnabled(false),
      Effect.forkScoped
    )
  }).pipe(Effect.orDie)
)
