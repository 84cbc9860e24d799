/**
 * `QubicNode` over HTTP: a client of the Qubic gateway's Live API (`/live/v1`) and Query API (`/query/v1`).
 *
 * Point it at the public gateway (`https://rpc.qubic.org`), at your own deployment of qubic-http and the
 * archive-query-service behind one base URL, or at the mock server. Responses are decoded with the same
 * schemas the mock serves (`Api.ts`); a non-2xx answer becomes `QubicApiError` with the gateway's gRPC code
 * and message, anything else (no answer, timeout, an undocumented body) `QubicNetworkError`.
 *
 * @since 0.1.0
 */
import { type Duration, Effect, Layer, Schema } from "effect"
import { FetchHttpClient, HttpClient, HttpClientRequest, type HttpClientResponse } from "effect/http"
import {
  ArchivedTransaction,
  Balance,
  BroadcastTransactionResponse,
  ErrorBody,
  GrpcCode,
  LastProcessedTick,
  ProcessedTickInterval,
  QubicApiError,
  type QubicError,
  QubicNetworkError,
  QubicNode,
  TickData,
  TickInfo
} from "./Api.ts"

/**
 * @category models
 * @since 0.1.0
 */
export interface RpcNodeOptions {
  /** The gateway's base URL, e.g. `https://rpc.qubic.org` (paths `/live/v1/...` and `/query/v1/...` follow it). */
  readonly url: string
  /** Time limit of one request (default 10 seconds). */
  readonly requestTimeout?: Duration.Input | undefined
}

const codeOfStatus = (status: number): number => {
  switch (status) {
    case 400:
      return GrpcCode.InvalidArgument
    case 404:
      return GrpcCode.NotFound
    case 501:
      return GrpcCode.Unimplemented
    case 503:
      return GrpcCode.Unavailable
    default:
      return GrpcCode.Internal
  }
}

/**
 * A `QubicNode` that calls a gateway over the `HttpClient` in context.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeRpcNode = Effect.fnUntraced(function* (options: RpcNodeOptions) {
  const client = yield* HttpClient.HttpClient
  const base = options.url.replace(/\/+$/, "")
  const timeout = options.requestTimeout ?? "10 seconds"

  const call = <A>(
    operation: string,
    request: HttpClientRequest.HttpClientRequest,
    schema: Schema.Decoder<A>
  ): Effect.Effect<A, QubicError> =>
    client.execute(HttpClientRequest.acceptJson(request)).pipe(
      Effect.timeout(timeout),
      Effect.mapError(
        (cause) =>
          new QubicNetworkError({
            operation,
            message: `${request.method} ${request.url} failed: ${cause.message}`,
            cause
          })
      ),
      Effect.flatMap(
        (response): Effect.Effect<A, QubicError> =>
          response.status >= 200 && response.status < 300
            ? decodeBody(operation, response, schema)
            : apiError(operation, response)
      )
    )

  const decodeBody = <A>(
    operation: string,
    response: HttpClientResponse.HttpClientResponse,
    schema: Schema.Decoder<A>
  ): Effect.Effect<A, QubicNetworkError> =>
    response.json.pipe(
      Effect.flatMap((json) => Schema.decodeUnknownEffect(schema)(json)),
      Effect.mapError(
        (cause) =>
          new QubicNetworkError({
            operation,
            message: `the ${operation} answer is not the documented shape: ${cause.message}`,
            cause
          })
      )
    )

  const apiError = (
    operation: string,
    response: HttpClientResponse.HttpClientResponse
  ): Effect.Effect<never, QubicApiError> =>
    response.text.pipe(
      Effect.orElseSucceed(() => ""),
      Effect.flatMap((text) => {
        const body = Schema.decodeUnknownOption(Schema.fromJsonString(ErrorBody))(text)
        return Effect.fail(
          new QubicApiError({
            operation,
            status: response.status,
            code: body._tag === "Some" ? body.value.code : codeOfStatus(response.status),
            message: body._tag === "Some" ? body.value.message : text.slice(0, 500)
          })
        )
      })
    )

  const get = (path: string) => HttpClientRequest.get(`${base}${path}`)
  const post = (path: string, body: unknown) =>
    HttpClientRequest.bodyJsonUnsafe(HttpClientRequest.post(`${base}${path}`), body)

  return QubicNode.of({
    tickInfo: Effect.map(
      call("tickInfo", get("/live/v1/tick-info"), Schema.Struct({ tickInfo: TickInfo })),
      (r) => r.tickInfo
    ),
    broadcastTransaction: (encodedTransaction) =>
      call(
        "broadcastTransaction",
        post("/live/v1/broadcast-transaction", { encodedTransaction }),
        BroadcastTransactionResponse
      ),
    balance: (identity) =>
      Effect.map(
        call("balance", get(`/live/v1/balances/${encodeURIComponent(identity)}`), Schema.Struct({ balance: Balance })),
        (r) => r.balance
      ),
    lastProcessedTick: call("lastProcessedTick", get("/query/v1/getLastProcessedTick"), LastProcessedTick),
    processedTickIntervals: call(
      "processedTickIntervals",
      get("/query/v1/getProcessedTickIntervals"),
      Schema.Array(ProcessedTickInterval)
    ),
    transactionByHash: (hash) =>
      call("transactionByHash", post("/query/v1/getTransactionByHash", { hash }), ArchivedTransaction),
    tickData: (tickNumber) =>
      Effect.map(
        call("tickData", post("/query/v1/getTickData", { tickNumber }), Schema.Struct({ tickData: TickData })),
        (r) => r.tickData
      ),
    transactionsForTick: (tickNumber) =>
      call(
        "transactionsForTick",
        post("/query/v1/getTransactionsForTick", { tickNumber }),
        Schema.Array(ArchivedTransaction)
      )
  })
})

/**
 * `makeRpcNode` as a layer over the `HttpClient` in context.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerRpcNodeWith = (options: RpcNodeOptions): Layer.Layer<QubicNode, never, HttpClient.HttpClient> =>
  Layer.effect(QubicNode, makeRpcNode(options))

/**
 * `makeRpcNode` over the platform's `fetch`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerRpcNode = (options: RpcNodeOptions): Layer.Layer<QubicNode> =>
  layerRpcNodeWith(options).pipe(Layer.provide(FetchHttpClient.layer))
