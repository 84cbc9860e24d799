/**
 * What happens around every request, matched or not: a request id (the caller's `X-Request-Id` if it is
 * sane, else a new one) on the response and in every log line of the request; the body size limit (413 before
 * the body is read when `Content-Length` says so); the JSON limits (`JsonLimits`: nesting depth, number of values,
 * strings no store can hold), checked on the body's bytes before anything parses it, 400 with the path — but only
 * for a caller whose bearer token authenticates: anyone else gets 401 before the body is read at all; a JSON 404 for unknown
 * routes and a JSON 500, without a stack trace or error text, for a defect; `Retry-After` on every 503; one
 * structured access-log line and the HTTP metrics per request.
 *
 * @since 0.1.0
 */
import type { Principal } from "@mandate/core"
import { Cause, Clock, Context, Effect, type Layer, LogLevel, Option } from "effect"
import { HttpIncomingMessage, HttpMethod, HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import * as Metrics from "../Metrics.ts"
import { Authenticator } from "./Auth.ts"
import * as JsonLimits from "./JsonLimits.ts"

/**
 * The current request's id, and what the inner layers learn about it (its route, its principal).
 *
 * @category services
 * @since 0.1.0
 */
export class RequestInfo extends Context.Service<
  RequestInfo,
  {
    readonly requestId: string
    route: string | undefined
    principal: string | undefined
    /**
     * The bearer token this request already proved, and whom it stands for: the `Auth` middleware does not verify
     * the same token twice in one request (a body route's token is checked before its body is read).
     */
    verified: { readonly token: string; readonly principal: Principal.Principal } | undefined
  }
>()("@mandate/server/RequestInfo") {}

/**
 * @category options
 * @since 0.1.0
 */
export interface RequestOptions {
  /** Largest request body accepted, in bytes. */
  readonly maxBodyBytes: number
  /** Deepest nesting of objects and arrays accepted in a JSON body (default `JsonLimits.defaultMaxDepth`, 64). */
  readonly maxJsonDepth?: number | undefined
  /** Most JSON values accepted in a body (default `JsonLimits.defaultMaxValues`, 100,000). */
  readonly maxJsonValues?: number | undefined
}

const requestIdPattern = /^[A-Za-z0-9._:-]{1,128}$/

const json = (status: number, body: object, requestId: string) =>
  HttpServerResponse.jsonUnsafe(body, { status, headers: { "x-request-id": requestId } })

/**
 * The global middleware.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: RequestOptions): Layer.Layer<never, never, HttpRouter.HttpRouter> =>
  HttpRouter.middleware(
    Effect.map(Effect.serviceOption(Authenticator), (authenticator) => {
      const guarded = { ...options, authenticator: Option.getOrUndefined(authenticator) }
      return (httpEffect) =>
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
          const given = request.headers["x-request-id"]
          const requestId = given !== undefined && requestIdPattern.test(given) ? given : crypto.randomUUID()
          return handle(httpEffect, request, requestId, guarded).pipe(Effect.annotateLogs({ request_id: requestId }))
        })
    }),
    { global: true }
  )

type Guarded = RequestOptions & { readonly authenticator?: Authenticator["Service"] | undefined }

const handle = <E, R>(
  httpEffect: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>,
  request: HttpServerRequest.HttpServerRequest,
  requestId: string,
  options: Guarded
) =>
  Effect.gen(function* () {
    const started = yield* Clock.currentTimeNanos
    const info: RequestInfo["Service"] = { requestId, route: undefined, principal: undefined, verified: undefined }
    const declared = Number(request.headers["content-length"])
    const response: HttpServerResponse.HttpServerResponse =
      Number.isFinite(declared) && declared > options.maxBodyBytes
        ? json(
            413,
            {
              error: "payload_too_large",
              message: `The request body (${declared} bytes) exceeds the limit of ${options.maxBodyBytes} bytes`,
              limit_bytes: options.maxBodyBytes
            },
            requestId
          )
        : yield* Effect.flatMap(guard(request, options, info), (refused) =>
            refused !== undefined ? Effect.succeed(refused) : httpEffect
          ).pipe(
            Effect.provideService(RequestInfo, info),
            Effect.provideService(HttpIncomingMessage.MaxBodySize, options.maxBodyBytes as never),
            Effect.catchCause((cause) => {
              if (Cause.hasInterruptsOnly(cause)) return Effect.failCause(cause)
              const failure = Cause.findErrorOption(cause)
              const notFound =
                failure._tag === "Some" &&
                (failure.value as { readonly reason?: { readonly _tag?: string } })?.reason?._tag === "RouteNotFound"
              if (notFound) {
                return Effect.succeed(
                  json(
                    404,
                    { error: "not_found", message: `No route ${request.method} ${pathOf(request.url)}` },
                    requestId
                  )
                )
              }
              return Effect.as(
                Effect.logError("request failed", cause),
                json(
                  500,
                  { error: "internal", message: "Internal error; quote the request id", request_id: requestId },
                  requestId
                )
              )
            })
          )
    const withRetry =
      response.status === 503 && response.headers["retry-after"] === undefined
        ? HttpServerResponse.setHeader(response, "retry-after", "1")
        : response
    const withId = HttpServerResponse.setHeader(withRetry, "x-request-id", requestId)
    const seconds = Number((yield* Clock.currentTimeNanos) - started) / 1e9
    const route = info.route ?? (withId.status === 404 ? "unmatched" : pathOf(request.url))
    yield* Metrics.recordRequest(request.method, route, withId.status, seconds)
    // On the request's server span, when one is exported (OpenTelemetry names: the route template, the caller)
    yield* Effect.annotateCurrentSpan({
      "http.route": route,
      "mandate.request.id": requestId,
      ...(info.principal === undefined ? {} : { "enduser.id": info.principal })
    })
    // Built only when it is written: at `Warn` and above the access log costs nothing per request
    if (yield* infoEnabled) {
      yield* Effect.logInfo("request").pipe(
        Effect.annotateLogs({
          method: request.method,
          path: pathOf(request.url),
          route,
          status: withId.status,
          duration_ms: Math.round(seconds * 1e6) / 1e3,
          ...(info.principal === undefined ? {} : { principal: info.principal })
        })
      )
    }
    return withId
  })

const infoEnabled = LogLevel.isEnabled("Info")

const badRequest = (violation: JsonLimits.Violation) =>
  HttpServerResponse.jsonUnsafe(
    { error: "invalid_input", message: violation.message, path: violation.path, issues: [violation] },
    { status: 400 }
  )

const isJson = (contentType: string | undefined): boolean =>
  contentType === undefined || contentType.toLowerCase().includes("json")

// The URL, and a JSON body's bytes, against `JsonLimits` before routing and parsing: a refusal, or undefined to go
// on. The body is read once here; the request caches it, so the API's decoder reads the same bytes.
const guard = (
  request: HttpServerRequest.HttpServerRequest,
  options: Guarded,
  info: RequestInfo["Service"]
): Effect.Effect<HttpServerResponse.HttpServerResponse | undefined> => {
  const url = JsonLimits.scanUrl(request.url)
  if (url !== undefined) return Effect.succeed(badRequest(url))
  if (!HttpMethod.hasBody(request.method) || !isJson(request.headers["content-type"]) || !carriesBody(request)) {
    return Effect.undefined
  }
  // Every route that takes a body authenticates: a caller without a valid token gets 401 before the body is read
  const token = bearerOf(request) ?? ""
  const authenticated =
    options.authenticator === undefined
      ? Effect.undefined
      : options.authenticator.authenticate(token).pipe(
          Effect.map((principal) => {
            info.verified = { token, principal }
            return undefined
          }),
          Effect.catch((e) => Effect.succeed(unauthorized(e.message)))
        )
  const scanned = request.arrayBuffer.pipe(
    Effect.map((buffer) => {
      const violation = JsonLimits.scanJson(
        new Uint8Array(buffer),
        options.maxJsonDepth ?? JsonLimits.defaultMaxDepth,
        options.maxJsonValues ?? JsonLimits.defaultMaxValues
      )
      return violation === undefined ? undefined : badRequest(violation)
    }),
    Effect.catch((error) =>
      Effect.succeed(
        (error as { readonly reason?: { readonly reason?: unknown } }).reason?.reason === "BodyTooLarge"
          ? HttpServerResponse.jsonUnsafe(
              {
                error: "payload_too_large",
                message: `The request body exceeds the limit of ${options.maxBodyBytes} bytes`,
                limit_bytes: options.maxBodyBytes
              },
              { status: 413 }
            )
          : badRequest({ path: "$", message: "The request body could not be read" })
      )
    )
  )
  return Effect.flatMap(authenticated, (refused) => (refused !== undefined ? Effect.succeed(refused) : scanned))
}

// A body to read: a length above zero, or a chunked one
const carriesBody = (request: HttpServerRequest.HttpServerRequest): boolean => {
  const length = request.headers["content-length"]
  return length === undefined ? request.headers["transfer-encoding"] !== undefined : Number(length) !== 0
}

const bearerOf = (request: HttpServerRequest.HttpServerRequest): string | undefined =>
  /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? "")?.[1]

const unauthorized = (message: string) =>
  HttpServerResponse.jsonUnsafe(
    { error: "unauthorized", message },
    { status: 401, headers: { "www-authenticate": 'Bearer realm="mandate"' } }
  )

const pathOf = (url: string): string => {
  const q = url.indexOf("?")
  return q === -1 ? url : url.slice(0, q)
}
