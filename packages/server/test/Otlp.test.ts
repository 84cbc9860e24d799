/**
 * OpenTelemetry: a server wired with `OTEL_EXPORTER_OTLP_ENDPOINT` (through `Server.layerObservability`, as
 * `npm start` wires it) exports to a local OTLP/HTTP receiver; one task's spans arrive as one trace, rooted in
 * the incoming `traceparent`, and the server's metrics arrive too.
 */
import * as Http from "node:http"
import type * as Net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Observability, TaskTrace } from "@mandate/core"
import { ConfigProvider, Effect, Layer, Tracer } from "effect"
import { HttpClient } from "effect/http"
import * as Metrics from "../src/Metrics.ts"
import * as Server from "../src/Server.ts"
import type * as Stores from "../src/Stores.ts"
import * as TestPostgres from "./utils/TestPostgres.ts"
import * as TestServer from "./utils/TestServer.ts"

const { call, tokens, walletA, walletB, waitForStatus } = TestServer

interface KeyValue {
  readonly key: string
  readonly value: { readonly stringValue?: string; readonly intValue?: string | number }
}
interface OtlpSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string | undefined
  readonly name: string
  readonly kind: number
  readonly attributes: ReadonlyArray<KeyValue>
}
interface Received {
  readonly path: string
  readonly headers: Http.IncomingHttpHeaders
  readonly body: any
}

/** An OTLP/HTTP (JSON) receiver on a free port: what it received, and a wait for what it should receive. */
const receiver = Effect.acquireRelease(
  Effect.promise(
    () =>
      new Promise<{
        readonly url: string
        readonly received: Array<Received>
        readonly waitFor: (holds: (received: ReadonlyArray<Received>) => boolean) => Promise<void>
        readonly close: () => Promise<void>
      }>((resolve) => {
        const received: Array<Received> = []
        const waiters = new Set<() => void>()
        const server = Http.createServer((request, response) => {
          const chunks: Array<Buffer> = []
          request.on("data", (chunk: Buffer) => chunks.push(chunk))
          request.on("end", () => {
            const path = request.url ?? ""
            const known = path === "/v1/traces" || path === "/v1/metrics"
            response.writeHead(known ? 200 : 404, { "content-type": "application/json" }).end("{}")
            if (!known) return
            received.push({ path, headers: request.headers, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) })
            for (const waiter of waiters) waiter()
          })
        })
        server.listen(0, "127.0.0.1", () => {
          const { port } = server.address() as Net.AddressInfo
          resolve({
            url: `http://127.0.0.1:${port}`,
            received,
            waitFor: (holds) =>
              new Promise<void>((done) => {
                const check = () => {
                  if (!holds(received)) return
                  waiters.delete(check)
                  done()
                }
                waiters.add(check)
                check()
              }),
            close: () => new Promise<void>((closed) => server.close(() => closed()))
          })
        })
      })
  ),
  (r) => Effect.promise(r.close)
)

const spansOf = (received: ReadonlyArray<Received>): ReadonlyArray<OtlpSpan> =>
  received
    .filter((r) => r.path === "/v1/traces")
    .flatMap((r) => r.body.resourceSpans.flatMap((rs: any) => rs.scopeSpans.flatMap((ss: any) => ss.spans)))

const metricNames = (received: ReadonlyArray<Received>): ReadonlySet<string> =>
  new Set(
    received
      .filter((r) => r.path === "/v1/metrics")
      .flatMap((r) =>
        r.body.resourceMetrics.flatMap((rm: any) =>
          rm.scopeMetrics.flatMap((sm: any) => sm.metrics.map((m: { name: string }) => m.name))
        )
      )
  )

// The latest `mandate_tasks{state="completed"}` exported, if any
const completedTasks = (received: ReadonlyArray<Received>): number | undefined => {
  let latest: number | undefined
  for (const r of received) {
    if (r.path !== "/v1/metrics") continue
    for (const rm of r.body.resourceMetrics) {
      for (const sm of rm.scopeMetrics) {
        for (const m of sm.metrics) {
          if (m.name !== "mandate_tasks") continue
          for (const point of m.gauge.dataPoints) {
            if (attribute(point.attributes, "state") === "completed") latest = Number(point.asInt ?? point.asDouble)
          }
        }
      }
    }
  }
  return latest
}

const attribute = (attributes: ReadonlyArray<KeyValue>, key: string) => {
  const value = attributes.find((a) => a.key === key)?.value
  return value?.stringValue ?? value?.intValue
}

const traceId = "4bf92f3577b34da6a3ce929d0e0e4736"
const parentSpanId = "00f067aa0ba902b7"

const oneTrace = <E>(services: Layer.Layer<Stores.Services | Stores.Readiness, E>) =>
  it.live(
    "one task's spans form one trace (request → start → policy → ledger → each step → completion); metrics arrive",
    () =>
      Effect.gen(function* () {
        const otlp = yield* receiver
        const env = ConfigProvider.fromEnvRecord({
          OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
          OTEL_SERVICE_NAME: "mandate-test",
          OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=test",
          OTEL_EXPORTER_OTLP_HEADERS: "x-collector-key=s%C3%A9same",
          OTEL_BSP_SCHEDULE_DELAY: "50",
          OTEL_METRIC_EXPORT_INTERVAL: "100"
        })
        const config = ConfigProvider.layer(env)
        // Wired as `Server.layerConfig` wires them: the exporter around everything, the gauges over the services
        const server = Layer.mergeAll(
          TestServer.layer(services),
          Metrics.layerRefreshFromEnv.pipe(Layer.provide([services, Metrics.layerRegistry, config]))
        ).pipe(Layer.provide(Server.layerObservability.pipe(Layer.provide(config))))

        yield* Effect.gen(function* () {
          const started = yield* call("POST", "/task/start", {
            token: tokens.alice,
            headers: { traceparent: `00-${traceId}-${parentSpanId}-01` },
            body: { task_type: "transfer_funds", parameters: { from: walletA, to: walletB, amount: 2_500 } }
          })
          assert.strictEqual(started.status, 200, started.text)
          const taskId: string = started.body.task_id
          yield* waitForStatus(taskId, (s) => s === "waiting_approval")
          const approved = yield* call("POST", `/task/${taskId}/approve`, {
            token: tokens.bob,
            body: { approved: true }
          })
          assert.strictEqual(approved.status, 200, approved.text)
          yield* waitForStatus(taskId, (s) => s === "completed")

          // Exported while the server runs (the intervals are short), not only when it stops
          yield* Effect.promise(() =>
            otlp.waitFor(
              (received) =>
                spansOf(received).some((s) => s.name === "Runtime.complete") &&
                metricNames(received).has("mandate_http_requests_total") &&
                completedTasks(received) === 1
            )
          )
        }).pipe(
          // The test's own client neither traces nor overwrites the traceparent it sends
          Effect.provideService(HttpClient.TracerPropagationEnabled, false),
          Effect.withTracerEnabled(false),
          Effect.provide(server)
        )

        // The server is released: whatever was still buffered has been flushed
        const spans = spansOf(otlp.received)
        const trace = spans.filter((s) => s.traceId === traceId)
        const byId = new Map(trace.map((s) => [s.spanId, s]))
        const descends = (span: OtlpSpan, ancestor: OtlpSpan): boolean => {
          let at: OtlpSpan | undefined = span
          while (at !== undefined) {
            if (at.parentSpanId === ancestor.spanId) return true
            at = at.parentSpanId === undefined ? undefined : byId.get(at.parentSpanId)
          }
          return false
        }
        const named = (name: string) => trace.filter((s) => s.name === name)

        // The request's span continues the caller's trace (W3C traceparent) as a server span
        const request = trace.find((s) => s.parentSpanId === parentSpanId)
        assert.isDefined(request, `no span under the incoming traceparent: ${spans.map((s) => s.name).join(", ")}`)
        assert.strictEqual(request!.kind, 2)
        assert.strictEqual(attribute(request!.attributes, "http.request.method"), "POST")
        assert.strictEqual(attribute(request!.attributes, "http.route"), "/task/start")
        assert.strictEqual(attribute(request!.attributes, "enduser.id"), "alice")

        const [start] = named("Runtime.start")
        assert.isDefined(start)
        assert.isTrue(descends(start!, request!), "Runtime.start is inside the request")
        const [plan] = named("Planner.plan")
        assert.isDefined(plan)
        assert.isTrue(descends(plan!, start!), "the policy is evaluated inside Runtime.start")
        assert.isTrue(
          named("Ledger.append").some((s) => descends(s, start!)),
          "the opening entries are appended inside Runtime.start"
        )

        // Each step ran (later, on a worker fiber) as a child of the task's start
        const steps = named("Runtime.step")
        assert.deepStrictEqual(steps.map((s) => attribute(s.attributes, "mandate.step.id")).sort(), [
          "check_balance",
          "onchain_action",
          "policy_check"
        ])
        for (const step of steps) assert.strictEqual(step.parentSpanId, start!.spanId)
        const settles = named("Runtime.settle")
        assert.strictEqual(settles.length, 3)
        for (const settle of settles) assert.strictEqual(settle.parentSpanId, start!.spanId)

        // The last step's settlement completes the task, and records it in the ledger
        const [complete] = named("Runtime.complete")
        assert.isDefined(complete)
        // (a backend's own spans, e.g. `sql.transaction`, may sit in between)
        const settling = settles.filter((s) => descends(complete!, s))
        assert.deepStrictEqual(
          settling.map((s) => attribute(s.attributes, "mandate.step.id")),
          ["onchain_action"]
        )
        assert.isTrue(named("Ledger.append").some((s) => descends(s, complete!)))

        // Resource and headers from the standard variables
        const traces = otlp.received.find((r) => r.path === "/v1/traces")!
        const resource: ReadonlyArray<KeyValue> = traces.body.resourceSpans[0].resource.attributes
        assert.strictEqual(attribute(resource, "service.name"), "mandate-test")
        assert.strictEqual(attribute(resource, "deployment.environment"), "test")
        assert.strictEqual(traces.headers["x-collector-key"], "sésame")

        // The server's metrics (its own registry, as on /metrics)
        const metrics = metricNames(otlp.received)
        assert.isTrue(metrics.has("mandate_http_requests_total"))
        assert.isTrue(metrics.has("mandate_http_request_duration_seconds"))
        // Refreshing the gauges (it ran: the completed task was counted) leaves no traces of its own
        assert.isFalse(spans.some((s) => s.name === "Queue.stats" || s.name === "Agents.pools"))
      }),
    { timeout: 60_000 }
  )

describe("OpenTelemetry over OTLP/HTTP", () => {
  describe("memory", () => oneTrace(TestServer.memoryServices()))
  // The steps after the approval are enqueued from the task as stored: its trace must survive the store
  TestPostgres.describePostgres("postgres", () =>
    oneTrace(TestPostgres.services({ schema: `mandate_test_otel_${crypto.randomUUID().replaceAll("-", "")}` }))
  )

  it.effect("without OTEL_EXPORTER_OTLP_ENDPOINT nothing is installed and tasks carry no trace", () =>
    Effect.gen(function* () {
      const tracer = yield* Effect.withFiber((fiber) => Effect.succeed(fiber.getRef(Tracer.Tracer)))
      assert.strictEqual(tracer, Tracer.nativeTracer)
      assert.isUndefined(yield* TaskTrace.capture.pipe(Effect.withSpan("outer")))
    }).pipe(
      Effect.provide(
        Observability.layerOtlpFromEnv().pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({}))))
      )
    )
  )
})
