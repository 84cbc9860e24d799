/**
 * Serves a `QubicNode` (normally the simulated `Chain`) over HTTP with the public gateway's paths and JSON
 * shapes, so an HTTP client written for the real network — `layerRpc`, or any other — can be tested against it.
 *
 * Live API: `GET /live/v1/tick-info`, `POST /live/v1/broadcast-transaction`, `GET /live/v1/balances/{id}`.
 * Query API: `POST /query/v1/getTransactionByHash`, `GET /query/v1/getLastProcessedTick`,
 * `POST /query/v1/getTickData`, `POST /query/v1/getTransactionsForTick`, `GET /query/v1/getProcessedTickIntervals`.
 * Errors are answered as grpc-gateway does: the HTTP status of the gRPC code and `{ code, message, details }`.
 * Request bodies follow proto3 JSON: a missing field is its zero value, unknown fields are ignored.
 *
 * @since 0.1.0
 */
import { createServer } from "node:http"
import { Effect, Layer, Schema } from "effect"
import { HttpRouter, HttpServer, type HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import {
  BroadcastTransactionRequest,
  GrpcCode,
  type QubicError,
  QubicNode,
  TickNumberRequest,
  TransactionByHashRequest
} from "./Api.ts"

const errorResponse = (code: number, status: number, message: string): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.jsonUnsafe({ code, message, details: [] }, { status })

const fromError = (error: QubicError): HttpServerResponse.HttpServerResponse =>
  error._tag === "QubicApiError"
    ? errorResponse(error.code, error.status, error.message)
    : errorResponse(GrpcCode.Unavailable, 503, error.message)

const reply = <A>(effect: Effect.Effect<A, QubicError>, body: (a: A) => unknown) =>
  effect.pipe(
    Effect.map((a) => HttpServerResponse.jsonUnsafe(body(a))),
    Effect.catch((error) => Effect.succeed(fromError(error)))
  )

const invalid = (message: string) => Effect.fail(errorResponse(GrpcCode.InvalidArgument, 400, message))

// proto3 JSON: missing fields take their zero value, so the defaults go under the body before decoding
const readBody = <A>(
  schema: Schema.Decoder<A>,
  defaults: Record<string, unknown>
): Effect.Effect<A, HttpServerResponse.HttpServerResponse, HttpServerRequest.HttpServerRequest> =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const text = yield* request.text.pipe(
      Effect.catch((error: HttpServerError.HttpServerError) => invalid(`reading the request body: ${error.message}`))
    )
    let json: unknown
    try {
      json = text.trim() === "" ? {} : JSON.parse(text)
    } catch (error) {
      return yield* invalid(`invalid JSON body: ${(error as Error).message}`)
    }
    if (typeof json !== "object" || json === null || Array.isArray(json))
      return yield* invalid("the body must be a JSON object")
    return yield* Schema.decodeUnknownEffect(schema)({ ...defaults, ...json }).pipe(
      Effect.catch((error) => invalid(`invalid request body: ${error.message}`))
    )
  })

const handle = (
  effect: Effect.Effect<
    HttpServerResponse.HttpServerResponse,
    HttpServerResponse.HttpServerResponse,
    HttpServerRequest.HttpServerRequest
  >
) => Effect.catch(effect, (response) => Effect.succeed(response))

/**
 * The gateway's routes over the `QubicNode` in context; unknown paths answer `404` like the gateway.
 *
 * @category layers
 * @since 0.1.0
 */
export const routes: Layer.Layer<never, never, HttpRouter.HttpRouter | QubicNode> = HttpRouter.use((router) =>
  Effect.gen(function* () {
    const node = yield* QubicNode
    yield* router.add(
      "GET",
      "/live/v1/tick-info",
      reply(node.tickInfo, (tickInfo) => ({ tickInfo }))
    )
    yield* router.add(
      "POST",
      "/live/v1/broadcast-transaction",
      handle(
        Effect.flatMap(readBody(BroadcastTransactionRequest, { encodedTransaction: "" }), (body) =>
          reply(node.broadcastTransaction(body.encodedTransaction), (response) => response)
        )
      )
    )
    yield* router.add(
      "GET",
      "/live/v1/balances/:id",
      Effect.flatMap(HttpRouter.params, (params) => reply(node.balance(params.id ?? ""), (balance) => ({ balance })))
    )
    yield* router.add(
      "POST",
      "/query/v1/getTransactionByHash",
      handle(
        Effect.flatMap(readBody(TransactionByHashRequest, { hash: "" }), (body) =>
          reply(node.transactionByHash(body.hash), (transaction) => transaction)
        )
      )
    )
    yield* router.add(
      "GET",
      "/query/v1/getLastProcessedTick",
      reply(node.lastProcessedTick, (tick) => tick)
    )
    yield* router.add(
      "POST",
      "/query/v1/getTickData",
      handle(
        Effect.flatMap(readBody(TickNumberRequest, { tickNumber: 0 }), (body) =>
          reply(node.tickData(body.tickNumber), (tickData) => ({ tickData }))
        )
      )
    )
    yield* router.add(
      "POST",
      "/query/v1/getTransactionsForTick",
      handle(
        Effect.flatMap(readBody(TickNumberRequest, { tickNumber: 0 }), (body) =>
          reply(node.transactionsForTick(body.tickNumber), (transactions) => transactions)
        )
      )
    )
    yield* router.add(
      "GET",
      "/query/v1/getProcessedTickIntervals",
      reply(node.processedTickIntervals, (intervals) => intervals)
    )
    yield* router.add("*", "*", errorResponse(GrpcCode.NotFound, 404, "Not Found"))
  })
)

/**
 * @category models
 * @since 0.1.0
 */
export interface MockServerOptions {
  /** TCP port (default 0: an ephemeral port; read it with `mockServerUrl`). */
  readonly port?: number | undefined
  /** Interface to listen on (default `127.0.0.1`). */
  readonly host?: string | undefined
}

/**
 * An optional peer dependency a layer needs is not installed.
 *
 * @category errors
 * @since 0.1.0
 */
export class MissingPeerDependency extends Schema.TaggedError<MissingPeerDependency>()("MissingPeerDependency", {
  dependency: Schema.String,
  needed: Schema.String
}) {
  override get message(): string {
    return `${this.needed} needs the optional peer dependency ${this.dependency}: npm install ${this.dependency}`
  }
}

/**
 * A Node HTTP server answering the gateway's routes over the `QubicNode` in context (provide `layerChain`).
 * The server closes when the layer is released. Needs `@effect/platform-node` (an optional peer dependency,
 * loaded only here, so the rest of this subpath works without it).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerMockServer = (
  options?: MockServerOptions
): Layer.Layer<HttpServer.HttpServer, HttpServerError.ServeError | MissingPeerDependency, QubicNode> =>
  HttpRouter.serve(routes, { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provideMerge(
      Layer.unwrap(
        Effect.tryPromise({
          try: () => import("@effect/platform-node"),
          catch: () =>
            new MissingPeerDependency({ dependency: "@effect/platform-node", needed: "Qubic.layerMockServer" })
        }).pipe(
          Effect.map(({ NodeHttpServer }) =>
            NodeHttpServer.layer(createServer, { port: options?.port ?? 0, host: options?.host ?? "127.0.0.1" })
          )
        )
      )
    )
  )

/**
 * The base URL of the running server, e.g. `http://127.0.0.1:40123` (pass it to `layerRpc`).
 *
 * @category accessors
 * @since 0.1.0
 */
export const mockServerUrl: Effect.Effect<string, never, HttpServer.HttpServer> = Effect.gen(function* () {
  const server = yield* HttpServer.HttpServer
  return HttpServer.formatAddress(server.address)
})
