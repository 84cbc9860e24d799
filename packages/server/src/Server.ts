/**
 * The server: the API's handlers behind the `Auth` and `RequestErrors` middleware, `/openapi.json`, the Scalar
 * docs page at `/docs`, the request middleware (request ids, size limit, access logs, metrics), served by
 * Node's HTTP server. `layerApp` needs the services and an `HttpServer` (tests use `NodeHttpServer.layerTest`);
 * `layerConfig` builds everything from the environment.
 *
 * @since 0.1.0
 */
import type * as NodeHttp from "node:http"
import { createServer } from "node:http"
import { NodeHttpServer, NodeServices } from "@effect/platform-node"
import { loadFile, Observability } from "@mandate/core"
import {
  Clock,
  Duration,
  Effect,
  Latch,
  Layer,
  Logger,
  type LogLevel,
  Option,
  Redacted,
  References,
  Scheduler
} from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import { HttpApiBuilder, HttpApiScalar } from "effect/http-api"
import { Api } from "./api/Api.ts"
import { isDevelopmentMode, loadWebhooks, ServerConfig } from "./Config.ts"
import * as Audit from "./http/Audit.ts"
import {
  Authenticator,
  type AuthOptions,
  developmentKeys,
  layerAuth,
  layerRequestErrors,
  parseApiKeys,
  type RateLimitOptions
} from "./http/Auth.ts"
import * as Console from "./http/Console.ts"
import * as Plans from "./http/Plans.ts"
import * as Policy from "./http/Policy.ts"
import * as Queue from "./http/Queue.ts"
import * as Remote from "./http/Remote.ts"
import * as Requests from "./http/Requests.ts"
import * as System from "./http/System.ts"
import * as Tasks from "./http/Tasks.ts"
import * as Webhooks from "./http/Webhooks.ts"
import * as Metrics from "./Metrics.ts"
import * as Mcp from "./mcp/Mcp.ts"
import * as Stores from "./Stores.ts"

/**
 * @category models
 * @since 0.1.0
 */
export interface AppOptions {
  /** Largest request body, in bytes (default 1 MiB). */
  readonly maxBodyBytes?: number | undefined
  /** Deepest nesting of objects and arrays in a JSON body (default 64). */
  readonly maxJsonDepth?: number | undefined
  /** Most JSON values in a body (`MANDATE_MAX_JSON_VALUES`, default 100,000). */
  readonly maxJsonValues?: number | undefined
  /** Requests per principal per window (default 600 per minute). */
  readonly rateLimit?: RateLimitOptions | undefined
  /** How often a task event stream sends a `keepalive` event (default 15 s; zero: never). */
  readonly sseKeepAlive?: Duration.Input | undefined
  /** Completes when the server begins to shut down; open event streams end then (default: never). */
  readonly shuttingDown?: Effect.Effect<void> | undefined
  /** The web console at `/` (default: served from `Console.defaultDir`); `false` serves none. */
  readonly console?: Console.ConsoleOptions | false | undefined
  /** Origins whose pages may call the API from a browser (CORS); default none, and CORS stays off. */
  readonly corsOrigins?: ReadonlyArray<string> | undefined
  /** The MCP endpoint at `/mcp` (default: on, with the seed catalog's tools); `false` serves none. */
  readonly mcp?: Omit<Mcp.HttpOptions, "rateLimit"> | false | undefined
}

/**
 * Every route: the API (with `/openapi.json`), `/docs`, and the request middleware.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerRoutes = (options?: AppOptions) => {
  const maxBodyBytes = options?.maxBodyBytes ?? 1_048_576
  const handlers = Layer.mergeAll(
    Tasks.layer,
    Plans.layer,
    Policy.layer,
    Audit.layer,
    Queue.layer,
    Remote.layer,
    System.layer,
    Webhooks.layer
  ).pipe(
    Layer.provide([
      layerAuth(options?.rateLimit ?? { limit: 600, window: Duration.minutes(1) }),
      layerRequestErrors({ maxBodyBytes }),
      Layer.succeed(Tasks.SseKeepAlive, Duration.fromInputUnsafe(options?.sseKeepAlive ?? Duration.seconds(15))),
      Layer.succeed(Tasks.ShuttingDown, options?.shuttingDown ?? Effect.never)
    ])
  )
  const corsOrigins = options?.corsOrigins ?? []
  return Layer.mergeAll(
    HttpApiBuilder.layer(Api, { openapiPath: "/openapi.json" }).pipe(Layer.provide(handlers)),
    HttpApiScalar.layer(Api, { path: "/docs" }),
    options?.console === false ? Layer.empty : Console.layer(options?.console),
    corsOrigins.length === 0 ? Layer.empty : layerCors(corsOrigins),
    options?.mcp === false ? Layer.empty : Mcp.layerHttp({ ...options?.mcp, rateLimit: options?.rateLimit }),
    Requests.layer({ maxBodyBytes, maxJsonDepth: options?.maxJsonDepth, maxJsonValues: options?.maxJsonValues })
  )
}

/**
 * CORS for the given origins (`*`: any): browsers may then call the API from pages of those origins with a bearer
 * token (never cookies: credentials stay off), and read the request id and `Retry-After`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerCors = (origins: ReadonlyArray<string>): Layer.Layer<never, never, HttpRouter.HttpRouter> =>
  HttpRouter.cors({
    // One origin is echoed as it is; `*` alone is the wildcard; several are matched against the request's Origin
    allowedOrigins: origins.includes("*") ? ["*"] : origins,
    allowedMethods: ["GET", "POST", "PATCH", "DELETE"],
    allowedHeaders: ["authorization", "content-type", "x-request-id", "last-event-id"],
    exposedHeaders: ["x-request-id", "retry-after"],
    maxAge: 600,
    credentials: false
  })

/**
 * The application served on the `HttpServer` in context, over the core services, `Readiness`,
 * `Authenticator` and core's `RateLimit`. Its metrics go to a registry of its own.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerApp = (options?: AppOptions) =>
  HttpRouter.serve(layerRoutes(options), { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provide(Metrics.layerRegistry)
  )

/**
 * Traces and metrics over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (`Observability.layerOtlpFromEnv`;
 * service name `mandate` unless `OTEL_SERVICE_NAME` says otherwise), else nothing. The metrics are those of the
 * server's own registry, the ones `GET /metrics` shows (`Metrics.layerRefreshFromEnv` keeps its gauges current).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerObservability = Observability.layerOtlpFromEnv().pipe(Layer.provide(Metrics.layerRegistry))

/**
 * JSON logs, one object per line, at `level` and above.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerLogging = (level: LogLevel.LogLevel = "Info") =>
  Layer.mergeAll(Logger.layer([Logger.consoleJson]), Layer.succeed(References.MinimumLogLevel, level))

const announce = (details: Record<string, unknown>) =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const server = yield* HttpServer.HttpServer
      yield* Effect.logInfo("Mandate server listening").pipe(
        Effect.annotateLogs({ address: HttpServer.formatAddress(server.address), ...details })
      )
      yield* Effect.addFinalizer(() => Effect.logInfo("Mandate server shutting down"))
    })
  )

// The remote pools of `MANDATE_REMOTE_STEPS`, each also served by development mode's `agent` principal
const withDevelopmentAgent = (config: ServerConfig) => {
  const out: { [pool: string]: ReadonlyArray<string> } = { ...config.poolPrincipals }
  for (const pool of new Set(Object.values(config.remoteSteps))) {
    out[pool] = [...new Set([...(out[pool] ?? []), "agent"])]
  }
  return out
}

/**
 * The whole server from the environment (`ServerConfig`): stores, anchor, credentials, rate limits, the Node
 * HTTP server. Release it (SIGTERM) and it stops accepting connections, lets requests and running steps finish
 * within `MANDATE_SHUTDOWN_GRACE` (then releases the rest to the queue), and closes the pools.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = Layer.unwrap(
  Effect.gen(function* () {
    const config = yield* ServerConfig
    const policy = Option.isSome(config.policyFile)
      ? yield* loadFile(config.policyFile.value).pipe(Effect.provide(NodeServices.layer))
      : undefined
    const development = isDevelopmentMode(config)
    const auth: AuthOptions = development
      ? { apiKeys: yield* developmentKeys(config.devTokensFile) }
      : {
          apiKeys: Option.isSome(config.apiKeys) ? yield* parseApiKeys(Redacted.value(config.apiKeys.value)) : [],
          jwtSecret: Option.getOrUndefined(config.jwtSecret),
          jwtPublicKey: Option.getOrUndefined(config.jwtPublicKey),
          jwtIssuer: Option.getOrUndefined(config.jwtIssuer),
          jwtAudience: Option.getOrUndefined(config.jwtAudience),
          jwtMaxLifetime: config.jwtMaxLifetime
        }
    const grace = Duration.toMillis(config.shutdownGrace)
    const subscriptions = yield* loadWebhooks(config)
    const services = Stores.layerFromConfig(config, {
      policy,
      webhooks: {
        publicUrl: Option.getOrElse(
          config.publicUrl,
          () => `http://${config.host === "0.0.0.0" ? "127.0.0.1" : config.host}:${config.port}`
        ),
        subscriptions
      },
      // The signing key is chosen with the store (Stores.ledgerKeys)
      ledger:
        config.anchor === "none"
          ? {}
          : { anchorEvery: { entries: config.anchorEntries, interval: config.anchorInterval } },
      remoteSteps: config.remoteSteps,
      // Development mode's agent serves every configured remote pool (a configured server names its own)
      poolPrincipals: development ? withDevelopmentAgent(config) : config.poolPrincipals,
      runtime: {
        workers: config.workerConcurrency > 0,
        concurrency: Math.max(1, config.workerConcurrency),
        shutdownGraceMs: grace
      }
    }).pipe(
      // The fibers the stores fork (the workers, the pollers) yield to the event loop every `workerYieldOps`
      // operations rather than Effect's 2048: requests (which keep the default) are then not queued behind
      // sixteen workers' long slices (bench:http, workers in the server: no more 10 s waits, p99 down)
      Layer.provide(Layer.succeed(Scheduler.MaxOpsBeforeYield, config.workerYieldOps))
    )
    const server = createServer()
    // Node listens before the routes are registered: until they are, answer 503 rather than leave a request
    // without anyone to answer it (it would hang)
    server.on("request", (_request, response) => {
      if (server.listenerCount("request") > 1) return
      response.writeHead(503, { "content-type": "application/json", "retry-after": "1" })
      response.end(JSON.stringify({ error: "unavailable", message: "The server is starting" }))
    })
    // Opened when the drain begins: event streams end then, so they do not hold the drain for its whole grace
    const draining = Latch.makeUnsafe(false)
    const app = layerApp({
      console: { devTokens: development ? auth.apiKeys : undefined },
      ...(Option.isSome(config.publicUrl) ? { mcp: { consoleUrl: config.publicUrl.value } } : {}),
      corsOrigins: config.corsOrigins,
      maxBodyBytes: config.maxBodyBytes,
      maxJsonDepth: config.maxJsonDepth,
      maxJsonValues: config.maxJsonValues,
      rateLimit: { limit: config.rateLimit, window: config.rateWindow },
      sseKeepAlive: config.sseKeepAlive,
      shuttingDown: draining.await
    }).pipe(Layer.provide(Layer.mergeAll(Authenticator.layer(auth), services)))
    // The server listens before the routes are registered; `announce` and `layerDrain` are built after them
    // (so "listening" means serving), and released first (so the drain runs while everything is still there)
    return Layer.mergeAll(
      layerDrain(server, config.shutdownGrace, { draining }),
      Metrics.layerRefreshFromEnv.pipe(Layer.provide([services, Metrics.layerRegistry])),
      announce({
        store: config.store,
        anchor: config.anchor,
        ...(config.store === "memory" ? {} : { data_dir: config.dataDir }),
        auth: development ? "development" : "configured",
        planner: config.planner,
        console: `http://${config.host === "0.0.0.0" ? "127.0.0.1" : config.host}:${config.port}/`,
        cors: config.corsOrigins.length === 0 ? "off" : config.corsOrigins.join(" "),
        rate_limit: `${config.rateLimit}/${Duration.format(config.rateWindow)}`
      })
    ).pipe(
      Layer.provideMerge(app),
      Layer.provideMerge(
        NodeHttpServer.layer(() => server, {
          port: config.port,
          host: config.host,
          gracefulShutdownTimeout: config.shutdownGrace
        })
      ),
      // Built first, released last: after the workers, the stores and their pools
      Layer.provideMerge(Layer.effectDiscard(Effect.addFinalizer(() => Effect.logInfo("Mandate server stopped")))),
      // Built first and released last: every span and metric of the server goes out, the last ones flushed
      Layer.provide(layerObservability),
      Layer.provide(layerLogging(config.logLevel))
    )
  })
)

/**
 * On release, stops accepting connections and waits (up to `grace`) for the requests in flight to finish,
 * before anything else shuts down. (Without it, releasing the server interrupts requests still running.)
 *
 * @category layers
 * @since 0.1.0
 */
export const layerDrain = (
  server: NodeHttp.Server,
  grace: Duration.Duration,
  options?: {
    /** Opened when the drain begins (the server's event streams end on it). */
    readonly draining?: Latch.Latch | undefined
  }
): Layer.Layer<never> =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      let active = 0
      const track = (_request: NodeHttp.IncomingMessage, response: NodeHttp.ServerResponse) => {
        active++
        response.once("close", () => active--)
      }
      server.on("request", track)
      // A request sent with `Expect: 100-continue` (curl sends it for bodies over 1 KB) comes as "checkContinue"
      // instead: Effect's server listens for it, so Node emits no "request" for it
      server.on("checkContinue", track)
      yield* Effect.addFinalizer(() =>
        Effect.gen(function* () {
          yield* Effect.logInfo("Mandate server draining").pipe(Effect.annotateLogs({ in_flight: active }))
          // Stop accepting; idle keep-alive connections close now, busy ones after their response
          server.close()
          options?.draining?.openUnsafe()
          const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(grace)
          while (active > 0 && (yield* Clock.currentTimeMillis) < deadline) yield* Effect.sleep("20 millis")
          if (active > 0) {
            yield* Effect.logWarning("requests still running after the grace period are cut").pipe(
              Effect.annotateLogs({ in_flight: active })
            )
          }
        })
      )
    })
  )
