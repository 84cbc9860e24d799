/**
 * The Qubic RPC surface that anchoring needs, as one service with two implementations.
 *
 * `QubicNode` mirrors the public gateway's Live API (`/live/v1`: tick info, broadcast, balances) and Query
 * (archive) API (`/query/v1`: transaction by hash, tick data, transactions of a tick, last processed tick,
 * processed tick intervals). The schemas below are the JSON bodies of those endpoints exactly as the gateway
 * sends them (camelCase, proto3 JSON: 64-bit integers as strings, 32-bit as numbers), so the in-process chain
 * (`Chain.ts`), the mock HTTP server (`MockServer.ts`) and the HTTP client (`RpcClient.ts`) share one
 * definition and cannot drift apart. Errors are shaped like the gateway's (grpc-gateway): a gRPC `code`, a
 * `message`, and the HTTP status that code maps to.
 *
 * @since 0.1.0
 */
import { Context, type Effect, Schema } from "effect"

const U32 = Schema.Number.check(Schema.isUint32())
const I32 = Schema.Number.check(Schema.isInt32())
/** proto3 JSON writes uint64 as a decimal string. */
const U64String = Schema.String.check(
  Schema.isPattern(/^(0|[1-9][0-9]{0,19})$/, { message: "Expected a uint64 string" })
)
/** proto3 JSON writes int64 as a decimal string. */
const I64String = Schema.String.check(
  Schema.isPattern(/^(0|-?[1-9][0-9]{0,18})$/, { message: "Expected an int64 string" })
)

/**
 * `GET /live/v1/tick-info` → `{ tickInfo }`. `tick` is the tick the network is working on now.
 *
 * @category models
 * @since 0.1.0
 */
export const TickInfo = Schema.Struct({ tick: U32, duration: U32, epoch: U32, initialTick: U32 })
export type TickInfo = typeof TickInfo.Type

/**
 * `POST /live/v1/broadcast-transaction` request body.
 *
 * @category models
 * @since 0.1.0
 */
export const BroadcastTransactionRequest = Schema.Struct({ encodedTransaction: Schema.String })
export type BroadcastTransactionRequest = typeof BroadcastTransactionRequest.Type

/**
 * `POST /live/v1/broadcast-transaction` response.
 *
 * @category models
 * @since 0.1.0
 */
export const BroadcastTransactionResponse = Schema.Struct({
  peersBroadcasted: I32,
  encodedTransaction: Schema.String,
  transactionId: Schema.String
})
export type BroadcastTransactionResponse = typeof BroadcastTransactionResponse.Type

/**
 * `GET /live/v1/balances/{id}` → `{ balance }`.
 *
 * @category models
 * @since 0.1.0
 */
export const Balance = Schema.Struct({
  id: Schema.String,
  balance: I64String,
  validForTick: U32,
  latestIncomingTransferTick: U32,
  latestOutgoingTransferTick: U32,
  incomingAmount: I64String,
  outgoingAmount: I64String,
  numberOfIncomingTransfers: U32,
  numberOfOutgoingTransfers: U32
})
export type Balance = typeof Balance.Type

/**
 * A transaction as the archive returns it (`POST /query/v1/getTransactionByHash` answers with this object
 * itself). `inputData` and `signature` are base64, `timestamp` is milliseconds.
 *
 * @category models
 * @since 0.1.0
 */
export const ArchivedTransaction = Schema.Struct({
  hash: Schema.String,
  amount: U64String,
  source: Schema.String,
  destination: Schema.String,
  tickNumber: U32,
  timestamp: U64String,
  inputType: U32,
  inputSize: U32,
  inputData: Schema.String,
  signature: Schema.String,
  moneyFlew: Schema.Boolean
})
export type ArchivedTransaction = typeof ArchivedTransaction.Type

/**
 * `POST /query/v1/getTickData` → `{ tickData }`.
 *
 * @category models
 * @since 0.1.0
 */
export const TickData = Schema.Struct({
  tickNumber: U32,
  epoch: U32,
  computorIndex: U32,
  timestamp: U64String,
  varStruct: Schema.String,
  timeLock: Schema.String,
  transactionHashes: Schema.Array(Schema.String),
  contractFees: Schema.Array(I64String),
  signature: Schema.String
})
export type TickData = typeof TickData.Type

/**
 * `GET /query/v1/getLastProcessedTick`: the newest tick the archive has processed.
 *
 * @category models
 * @since 0.1.0
 */
export const LastProcessedTick = Schema.Struct({ tickNumber: U32, epoch: U32, intervalInitialTick: U32 })
export type LastProcessedTick = typeof LastProcessedTick.Type

/**
 * One element of `GET /query/v1/getProcessedTickIntervals`: a run of consecutive processed ticks.
 *
 * @category models
 * @since 0.1.0
 */
export const ProcessedTickInterval = Schema.Struct({ epoch: U32, firstTick: U32, lastTick: U32 })
export type ProcessedTickInterval = typeof ProcessedTickInterval.Type

/**
 * Request body of `getTickData` and `getTransactionsForTick` (proto3 JSON accepts a uint32 as a number or a
 * decimal string).
 *
 * @category models
 * @since 0.1.0
 */
export const TickNumberRequest = Schema.Struct({
  tickNumber: Schema.Union([U32, Schema.NumberFromString.check(Schema.isUint32())])
})

/**
 * Request body of `getTransactionByHash`.
 *
 * @category models
 * @since 0.1.0
 */
export const TransactionByHashRequest = Schema.Struct({ hash: Schema.String })

/**
 * The body of every gateway error (grpc-gateway's `google.rpc.Status` in JSON).
 *
 * @category models
 * @since 0.1.0
 */
export const ErrorBody = Schema.Struct({
  code: Schema.Int,
  message: Schema.String,
  details: Schema.Array(Schema.Unknown)
})
export type ErrorBody = typeof ErrorBody.Type

/**
 * gRPC status codes the gateway uses, and the HTTP status grpc-gateway maps each to.
 *
 * @category constants
 * @since 0.1.0
 */
export const GrpcCode = {
  InvalidArgument: 3,
  NotFound: 5,
  FailedPrecondition: 9,
  OutOfRange: 11,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14
} as const
export type GrpcCode = (typeof GrpcCode)[keyof typeof GrpcCode]

/**
 * The HTTP status grpc-gateway answers for a gRPC code.
 *
 * @category constants
 * @since 0.1.0
 */
export const httpStatusOf = (code: number): number => {
  switch (code) {
    case GrpcCode.InvalidArgument:
    case GrpcCode.FailedPrecondition:
    case GrpcCode.OutOfRange:
      return 400
    case GrpcCode.NotFound:
      return 404
    case GrpcCode.Unimplemented:
      return 501
    case GrpcCode.Unavailable:
      return 503
    default:
      return 500
  }
}

/**
 * The node (gateway) answered with an error: `status` is the HTTP status, `code` the gRPC code.
 *
 * @category errors
 * @since 0.1.0
 */
export class QubicApiError extends Schema.TaggedError<QubicApiError>()("QubicApiError", {
  operation: Schema.String,
  status: Schema.Int,
  code: Schema.Int,
  message: Schema.String
}) {
  /**
   * An error with the HTTP status its gRPC code maps to.
   */
  static of(operation: string, code: GrpcCode, message: string): QubicApiError {
    return new QubicApiError({ operation, status: httpStatusOf(code), code, message })
  }
}

/**
 * No usable answer: the node could not be reached, or answered with a body that is not the documented shape.
 *
 * @category errors
 * @since 0.1.0
 */
export class QubicNetworkError extends Schema.TaggedError<QubicNetworkError>()("QubicNetworkError", {
  operation: Schema.String,
  message: Schema.String,
  cause: Schema.optionalKey(Schema.Defect())
}) {}

/**
 * @category errors
 * @since 0.1.0
 */
export type QubicError = QubicApiError | QubicNetworkError

/**
 * Whether retrying the same request may succeed: no answer, or a server-side (5xx) error.
 *
 * @category errors
 * @since 0.1.0
 */
export const isRetryable = (error: QubicError): boolean =>
  error._tag === "QubicNetworkError" || error.status >= 500 || error.status === 429

/**
 * A Qubic node's Live and Query (archive) APIs. `Chain` is the simulated one; `layerRpcNode` talks to a real
 * gateway (or the mock server) over HTTP.
 *
 * @category services
 * @since 0.1.0
 */
export class QubicNode extends Context.Service<
  QubicNode,
  {
    readonly tickInfo: Effect.Effect<TickInfo, QubicError>
    /** Broadcasts a base64 signed transaction. Acceptance is not inclusion: confirm through the archive. */
    readonly broadcastTransaction: (
      encodedTransaction: string
    ) => Effect.Effect<BroadcastTransactionResponse, QubicError>
    readonly balance: (identity: string) => Effect.Effect<Balance, QubicError>
    readonly lastProcessedTick: Effect.Effect<LastProcessedTick, QubicError>
    readonly processedTickIntervals: Effect.Effect<ReadonlyArray<ProcessedTickInterval>, QubicError>
    /** An archived transaction; `QubicApiError` with status 404 when the archive does not hold it. */
    readonly transactionByHash: (hash: string) => Effect.Effect<ArchivedTransaction, QubicError>
    readonly tickData: (tickNumber: number) => Effect.Effect<TickData, QubicError>
    readonly transactionsForTick: (tickNumber: number) => Effect.Effect<ReadonlyArray<ArchivedTransaction>, QubicError>
  }
>()("@mandate/adapters/qubic/QubicNode") {}
