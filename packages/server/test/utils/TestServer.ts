/**
 * A real server on an ephemeral port (`NodeHttpServer.layerTest`) over the given services, with one API key
 * per role, and a small client to call it: `call(method, path, { token, body })` → status, headers, JSON.
 */
import { NodeHttpServer } from "@effect/platform-node"
import * as Qubic from "@mandate/adapters/qubic"
import { Principal } from "@mandate/core"
import { Duration, Effect, Fiber, Layer, Redacted, References } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { type ApiKey, Authenticator } from "../../src/http/Auth.ts"
import * as Server from "../../src/Server.ts"
import * as Stores from "../../src/Stores.ts"

/** One principal per role, plus a second submitter and a submitter who also approves. */
export const tokens = {
  alice: "alice.submit-token-1",
  dave: "dave.submit-token-2",
  bob: "bob.approve-token-1",
  erin: "erin.submit-approve-token-1",
  carol: "carol.audit-token-1",
  robot: "robot.agent-token-1",
  /** An agent whose principal id has a dot: `robot.eu` (issue 12, finding 6). */
  robotEu: "roboteu.agent-token-1",
  root: "root.admin-token-1"
} as const

const apiKeys: ReadonlyArray<ApiKey> = [
  { token: Redacted.make(tokens.alice), principal: Principal.make("alice", ["submitter"]) },
  { token: Redacted.make(tokens.dave), principal: Principal.make("dave", ["submitter"]) },
  { token: Redacted.make(tokens.bob), principal: Principal.make("bob", ["approver"]) },
  { token: Redacted.make(tokens.erin), principal: Principal.make("erin", ["submitter", "approver"]) },
  { token: Redacted.make(tokens.carol), principal: Principal.make("carol", ["auditor"]) },
  { token: Redacted.make(tokens.robot), principal: Principal.make("robot", ["agent"]) },
  { token: Redacted.make(tokens.robotEu), principal: Principal.make("robot.eu", ["agent"]) },
  { token: Redacted.make(tokens.root), principal: Principal.make("root", ["admin"]) }
]

export const walletA = "A".repeat(60)
export const walletB = "B".repeat(60)

/** Fast enough runtime settings for tests on a shared machine. */
export const fastRuntime = { pollIntervalMs: 20, leaseMs: 2_000, heartbeatIntervalMs: 100, concurrency: 8 }

/** The Qubic mock with fast ticks (the real network's are about a second). */
export const fastChain = () =>
  Qubic.layerMock({ network: { tickDuration: "40 millis" }, pollInterval: "20 millis", tickOffset: 3 })

/** Every service on memory, with readiness. */
export const memoryServices = (options?: Stores.StoresOptions) =>
  Stores.Readiness.layer({ store: "memory", anchor: "qubic-mock" }).pipe(
    Layer.provideMerge(Stores.layerMemory({ runtime: fastRuntime, anchor: fastChain(), ...options }))
  )

/** The test keys, as development mode's tokens would be handed to the console. */
export const keys: ReadonlyArray<ApiKey> = apiKeys

/** The server over `services`, on an ephemeral port, with the test keys. */
export const layer = <E>(
  services: Layer.Layer<Stores.Services | Stores.Readiness, E>,
  options?: {
    readonly rateLimit?: number
    readonly maxBodyBytes?: number
    readonly maxJsonDepth?: number
    readonly sseKeepAlive?: Duration.Input
    readonly console?: Server.AppOptions["console"]
    readonly corsOrigins?: ReadonlyArray<string>
  }
) =>
  Server.layerApp({
    console: options?.console ?? false,
    ...(options?.corsOrigins === undefined ? {} : { corsOrigins: options.corsOrigins }),
    maxBodyBytes: options?.maxBodyBytes ?? 64 * 1024,
    ...(options?.maxJsonDepth === undefined ? {} : { maxJsonDepth: options.maxJsonDepth }),
    rateLimit: { limit: options?.rateLimit ?? 100_000, window: Duration.minutes(1) },
    ...(options?.sseKeepAlive === undefined ? {} : { sseKeepAlive: options.sseKeepAlive })
  }).pipe(
    Layer.provide(Layer.mergeAll(Authenticator.layer({ apiKeys }), services)),
    // Access logs would drown the test output
    Layer.provide(Layer.succeed(References.MinimumLogLevel, "Warn")),
    Layer.provideMerge(NodeHttpServer.layerTest)
  )

export interface Reply {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: any
  readonly text: string
}

/** Calls the server; `body` is sent as JSON (a string is sent as is). */
export const call = (
  method: "GET" | "POST" | "PATCH" | "DELETE",
  path: string,
  options?: { readonly token?: string; readonly body?: unknown; readonly headers?: Record<string, string> }
) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    let request = HttpClientRequest.make(method)(path).pipe(HttpClientRequest.setHeaders(options?.headers ?? {}))
    if (options?.token !== undefined) request = HttpClientRequest.bearerToken(request, options.token)
    if (options?.body !== undefined) {
      request = HttpClientRequest.bodyText(
        request,
        typeof options.body === "string" ? options.body : JSON.stringify(options.body),
        "application/json"
      )
    }
    const response = yield* client.execute(request)
    const text = yield* response.text
    let body: unknown
    try {
      body = text.length > 0 ? JSON.parse(text) : undefined
    } catch {
      body = undefined
    }
    return { status: response.status, headers: response.headers, body, text } as Reply
  }).pipe(Effect.orDie)

/** Polls the task's status until `until` holds. */
export const waitForStatus = (
  taskId: string,
  until: (status: string) => boolean,
  timeout: Duration.Input = "20 seconds"
) =>
  Effect.gen(function* () {
    while (true) {
      const reply = yield* call("GET", `/task/${taskId}/status`, { token: tokens.carol })
      if (reply.status === 200 && until(reply.body.status)) return reply.body
      yield* Effect.sleep("25 millis")
    }
  }).pipe(Effect.timeout(timeout), Effect.orDie)

/**
 * Opens the task's event stream (as the auditor) and reads it in the background: `events` waits for the stream
 * to end and gives its events, parsed.
 */
export const openEvents = (taskId: string) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    const response = yield* client.execute(
      HttpClientRequest.get(`/task/${taskId}/events`).pipe(HttpClientRequest.bearerToken(tokens.carol))
    )
    const body = yield* Effect.forkChild(response.text)
    return {
      status: response.status,
      contentType: response.headers["content-type"] ?? "",
      events: Effect.map(Fiber.join(body), parseSse)
    }
  }).pipe(Effect.orDie)

/** Server-Sent Events of a response body: each event's data, parsed. */
export const parseSse = (text: string): ReadonlyArray<any> =>
  text
    .split("\n\n")
    .map((block) =>
      block
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n")
    )
    .filter((data) => data.length > 0)
    .map((data) => JSON.parse(data))
