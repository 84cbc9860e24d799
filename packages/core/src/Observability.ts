/**
 * Exporting traces and metrics to an OpenTelemetry collector over OTLP/HTTP (JSON), with Effect's own exporter:
 * no OpenTelemetry SDK needed. Provide the layer around everything else (the server, or a host app's Mandate
 * layers) so that it is built first and released last, flushing what is still buffered.
 *
 * ```ts
 * // OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 OTEL_SERVICE_NAME=payments node app.js
 * program.pipe(Effect.provide(Mandate.layerMemory()), Effect.provide(Observability.layerOtlpFromEnv()))
 * // or, composing layers: Mandate.layerMemory().pipe(Layer.provideMerge(Observability.layerOtlpFromEnv()))
 * // (`provideMerge`, not `provide`: the program's own spans need the tracer too)
 * ```
 *
 * A task's spans form one trace (see `TaskTrace`): the request that started it, `Runtime.start`, `Planner.plan`,
 * `Ledger.append`, then each `Runtime.step` and `Runtime.settle` (run later by a worker, perhaps in another
 * process) down to `Runtime.complete`. Metrics are those of the `MetricRegistry` in context where the layer is
 * built.
 *
 * @since 0.1.0
 */
import { Config, Duration, Effect, Layer, Option, Schema } from "effect"
import { FetchHttpClient, type Headers } from "effect/http"
import { OtlpExporter, OtlpMetrics, OtlpSerialization, OtlpTracer } from "effect/observability"

/**
 * @category models
 * @since 0.1.0
 */
export interface OtlpOptions {
  /** The collector's OTLP/HTTP base URL: traces go to `<baseUrl>/v1/traces`, metrics to `<baseUrl>/v1/metrics`. */
  readonly baseUrl: string
  /**
   * `service.name` (default: `OTEL_SERVICE_NAME`, else `service.name` in `OTEL_RESOURCE_ATTRIBUTES`, else
   * `"mandate"`).
   */
  readonly serviceName?: string | undefined
  readonly serviceVersion?: string | undefined
  /** More resource attributes (merged over `OTEL_RESOURCE_ATTRIBUTES`). */
  readonly attributes?: Record<string, unknown> | undefined
  /** Headers sent with every export (e.g. an API key of a hosted collector). */
  readonly headers?: Headers.Input | undefined
  /** How often buffered spans are sent (default 5 s). */
  readonly tracesInterval?: Duration.Input | undefined
  /** How often metrics are sent (default 10 s). */
  readonly metricsInterval?: Duration.Input | undefined
}

// Effect's resource reader requires a service name; the standard variables win over `fallback` (`undefined`:
// the name is in OTEL_RESOURCE_ATTRIBUTES, where Effect reads it)
const serviceNameFromEnv = (fallback: string) =>
  Effect.gen(function* () {
    const name = yield* Config.option(Config.String("OTEL_SERVICE_NAME"))
    if (Option.isSome(name)) return name.value
    const attributes = yield* Config.option(Config.String("OTEL_RESOURCE_ATTRIBUTES"))
    return Option.isSome(attributes) && /(^|,)\s*service\.name\s*=/.test(attributes.value) ? undefined : fallback
  })

const joinUrl = (base: string, path: string) => `${base.endsWith("/") ? base.slice(0, -1) : base}${path}`

/**
 * Traces and metrics over OTLP/HTTP (JSON) to `options.baseUrl`, sent with `fetch`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerOtlp = (options: OtlpOptions): Layer.Layer<OtlpExporter.Flusher> =>
  Layer.unwrap(
    Effect.gen(function* () {
      const serviceName = options.serviceName ?? (yield* serviceNameFromEnv("mandate"))
      const resource = {
        ...(serviceName === undefined ? {} : { serviceName }),
        ...(options.serviceVersion === undefined ? {} : { serviceVersion: options.serviceVersion }),
        ...(options.attributes === undefined ? {} : { attributes: options.attributes })
      }
      return Layer.mergeAll(
        OtlpTracer.layer({
          url: joinUrl(options.baseUrl, "/v1/traces"),
          resource,
          headers: options.headers,
          exportInterval: options.tracesInterval
        }),
        OtlpMetrics.layer({
          url: joinUrl(options.baseUrl, "/v1/metrics"),
          resource,
          headers: options.headers,
          exportInterval: options.metricsInterval
        })
      )
    }).pipe(Effect.orDie)
  ).pipe(Layer.provide(OtlpSerialization.layerJson), Layer.provide(FetchHttpClient.layer))

/**
 * `layerOtlp` configured by the standard OpenTelemetry variables, or nothing when `OTEL_EXPORTER_OTLP_ENDPOINT`
 * is unset (or `OTEL_SDK_DISABLED=true`): `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
 * `OTEL_EXPORTER_OTLP_HEADERS` (`key=value,…`, values percent-decoded), `OTEL_BSP_SCHEDULE_DELAY` (ms between
 * span exports) and `OTEL_METRIC_EXPORT_INTERVAL` (ms between metric exports). A malformed value is a defect at
 * startup, not a silently untraced service. `serviceName` here is a default: `OTEL_SERVICE_NAME` (or `service.name`
 * in `OTEL_RESOURCE_ATTRIBUTES`) wins. The `Flusher` it provides sends what is buffered (a no-op without
 * an endpoint).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerOtlpFromEnv = (
  options?: Omit<OtlpOptions, "baseUrl" | "headers" | "tracesInterval" | "metricsInterval">
): Layer.Layer<OtlpExporter.Flusher> =>
  Layer.unwrap(
    Effect.gen(function* () {
      const env = yield* Config.all({
        disabled: Config.Boolean("OTEL_SDK_DISABLED").pipe(Config.withDefault(false)),
        endpoint: Config.option(Config.URL("OTEL_EXPORTER_OTLP_ENDPOINT")),
        headers: Config.option(
          Config.Record(Schema.String, Schema.StringFromUriComponent, "OTEL_EXPORTER_OTLP_HEADERS")
        ),
        tracesInterval: Config.option(Config.Int("OTEL_BSP_SCHEDULE_DELAY")),
        metricsInterval: Config.option(Config.Int("OTEL_METRIC_EXPORT_INTERVAL"))
      })
      if (env.disabled || Option.isNone(env.endpoint)) return OtlpExporter.layerFlusher
      return layerOtlp({
        ...options,
        serviceName: yield* serviceNameFromEnv(options?.serviceName ?? "mandate"),
        baseUrl: env.endpoint.value.toString(),
        headers: Option.getOrUndefined(env.headers),
        tracesInterval: Option.getOrUndefined(Option.map(env.tracesInterval, Duration.millis)),
        metricsInterval: Option.getOrUndefined(Option.map(env.metricsInterval, Duration.millis))
      })
    }).pipe(Effect.orDie)
  )
