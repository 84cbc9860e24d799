/**
 * Run: npm start (from the repository root), or npm start -w @mandate/example-embed. With
 * OTEL_EXPORTER_OTLP_ENDPOINT set, its traces and metrics go to that OpenTelemetry collector.
 */
import { Observability } from "@mandate/core"
import { Effect } from "effect"
import { demo, layer } from "./app.ts"

Effect.runPromise(
  demo((line) => console.log(line)).pipe(
    Effect.provide(layer),
    Effect.provide(Observability.layerOtlpFromEnv({ serviceName: "mandate-embed" }))
  )
)
