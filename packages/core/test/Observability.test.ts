/**
 * A host app's traces over OTLP/HTTP: `Observability.layerOtlp` around `Mandate.layerMemory`, a local receiver,
 * one task whose steps run on worker fibers (which know the task's trace only from their job) in one trace.
 */
import * as Http from "node:http"
import type * as Net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Mandate, Observability, Runtime, TaskStore, type TaskView } from "@mandate/core"
import { ConfigProvider, Effect, Layer } from "effect"
import { alice, walletA } from "./utils/fixtures.ts"

interface OtlpSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string | undefined
  readonly name: string
}

/** Collects what is posted to `/v1/traces` and `/v1/metrics` (OTLP/JSON). */
const receiver = Effect.acquireRelease(
  Effect.promise(
    () =>
      new Promise<{
        url: string
        bodies: Array<{ path: string; headers: Http.IncomingHttpHeaders; body: any }>
        server: Http.Server
      }>((resolve) => {
        const bodies: Array<{ path: string; headers: Http.IncomingHttpHeaders; body: any }> = []
        const server = Http.createServer((request, response) => {
          let text = ""
          request.on("data", (chunk) => {
            text += chunk
          })
          request.on("end", () => {
            bodies.push({ path: request.url ?? "", headers: request.headers, body: JSON.parse(text) })
            response.writeHead(200, { "content-type": "application/json" }).end("{}")
          })
        })
        server.listen(0, "127.0.0.1", () =>
          resolve({ url: `http://127.0.0.1:${(server.address() as Net.AddressInfo).port}/`, bodies, server })
        )
      })
  ),
  (r) => Effect.promise(() => new Promise<void>((closed) => r.server.close(() => closed())))
)

const waitFor = (taskId: string, until: (view: TaskView) => boolean) =>
  Effect.gen(function* () {
    const runtime = yield* Runtime
    while (true) {
      const view = yield* runtime.get(taskId)
      if (until(view)) return view
      yield* Effect.sleep("10 millis")
    }
  })

describe("Observability", () => {
  it.live("a host app's task is one trace: its request → Runtime.start → each step → Runtime.complete", () =>
    Effect.gen(function* () {
      const otlp = yield* receiver
      // provideMerge: the host's own spans (here `host.request`) go to the exporter too
      const app = Mandate.layerMemory({ runtime: { pollIntervalMs: 10, concurrency: 4 } }).pipe(
        Layer.provideMerge(
          Observability.layerOtlp({ baseUrl: otlp.url, serviceName: "host-app", tracesInterval: "50 millis" })
        )
      )
      const { taskId, stored } = yield* Effect.gen(function* () {
        const runtime = yield* Runtime
        const task = yield* runtime
          .start({ kind: "monitoring", params: { wallet: walletA } }, alice)
          .pipe(Effect.withSpan("host.request"))
        yield* waitFor(task.id, (view) => view.task.state === "completed")
        const stored = yield* TaskStore.use((store) => store.get(task.id))
        return { taskId: task.id, stored }
      }).pipe(Effect.provide(app))
      // Released: the exporter flushed what it held

      const spans: ReadonlyArray<OtlpSpan> = otlp.bodies
        .filter((b) => b.path === "/v1/traces")
        .flatMap((b) => b.body.resourceSpans.flatMap((rs: any) => rs.scopeSpans.flatMap((ss: any) => ss.spans)))
      const resource = otlp.bodies.find((b) => b.path === "/v1/traces")!.body.resourceSpans[0].resource.attributes
      assert.deepStrictEqual(resource.find((a: { key: string }) => a.key === "service.name").value, {
        stringValue: "host-app"
      })
      const root = spans.find((s) => s.name === "host.request")!
      assert.isDefined(root)
      const trace = spans.filter((s) => s.traceId === root.traceId)
      const start = trace.find((s) => s.name === "Runtime.start")!
      assert.strictEqual(start.parentSpanId, root.spanId)
      // The task keeps the span it was started in; its steps (on worker fibers) are its children
      assert.deepStrictEqual(stored.task.trace, { traceId: root.traceId, spanId: start.spanId })
      const steps = trace.filter((s) => s.name === "Runtime.step")
      assert.strictEqual(steps.length, stored.steps.length)
      for (const step of steps) assert.strictEqual(step.parentSpanId, start.spanId)
      assert.isTrue(
        trace.some((s) => s.name === "Runtime.complete"),
        `task ${taskId} has no Runtime.complete span`
      )
      assert.isTrue(trace.some((s) => s.name === "Planner.plan" && s.parentSpanId === start.spanId))
    })
  )

  it.live("from the environment: OTEL_SERVICE_NAME wins over the app's default name; headers are sent", () =>
    Effect.gen(function* () {
      const otlp = yield* receiver
      const env = ConfigProvider.fromEnvRecord({
        OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
        OTEL_SERVICE_NAME: "ops-name",
        OTEL_EXPORTER_OTLP_HEADERS: "authorization=Bearer%20abc"
      })
      yield* Effect.void.pipe(
        Effect.withSpan("host.job"),
        Effect.provide(
          Observability.layerOtlpFromEnv({ serviceName: "embed" }).pipe(Layer.provide(ConfigProvider.layer(env)))
        )
      )
      const traces = otlp.bodies.filter((b) => b.path === "/v1/traces")
      assert.strictEqual(traces.length, 1)
      assert.strictEqual(traces[0]!.headers.authorization, "Bearer abc")
      const resource = traces[0]!.body.resourceSpans[0].resource.attributes
      assert.deepStrictEqual(resource.find((a: { key: string }) => a.key === "service.name").value, {
        stringValue: "ops-name"
      })
      assert.strictEqual(traces[0]!.body.resourceSpans[0].scopeSpans[0].spans[0].name, "host.job")
    })
  )
})
