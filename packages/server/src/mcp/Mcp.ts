/**
 * The MCP server: Mandate's tools (`Tools`) over Streamable HTTP at `/mcp` on the reference server, authenticated
 * with the API's bearer tokens. (`Stdio` serves the same tools over stdio, forwarding to this endpoint.)
 *
 * @since 0.1.0
 */
import { RateLimit } from "@mandate/core"
import { Duration, Effect, Layer, Option } from "effect"
import { McpProtocol, McpServer } from "effect/ai"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { Authenticator, type RateLimitOptions } from "../http/Auth.ts"
import * as Tools from "./Tools.ts"
import { McpCaller, type ToolsOptions } from "./Tools.ts"

export type { ToolsOptions } from "./Tools.ts"

const info = {
  name: "mandate",
  version: "0.1.0",
  instructions:
    "Mandate runs governed tasks: each tool call starts a task that is planned, checked against policy, may wait " +
    "for a human's approval, and is recorded in a tamper-evident ledger. A denial comes back as a tool error with " +
    "the policy's reasons; a pending approval as a result with the task id (poll task_status). Use plan_preview " +
    "to learn beforehand what policy would say."
} as const

const bearer = (request: HttpServerRequest.HttpServerRequest): string | undefined => {
  const header = request.headers.authorization
  const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header)
  return match?.[1]
}

const unauthorized = (message: string) =>
  HttpServerResponse.jsonUnsafe(
    { error: "unauthorized", message },
    { status: 401, headers: { "www-authenticate": 'Bearer realm="mandate"' } }
  )

/**
 * Requests to `/mcp` without a valid bearer token are refused before the MCP server sees them; each request spends
 * the principal's request budget, the same one as the API's.
 */
const authMiddleware = (rateLimit: RateLimitOptions) =>
  HttpRouter.middleware(
    Effect.gen(function* () {
      const auth = yield* Authenticator
      const limiter = yield* RateLimit
      return (httpEffect) =>
        Effect.gen(function* () {
          const request = yield* HttpServerRequest.HttpServerRequest
          const token = bearer(request)
          if (token === undefined) return unauthorized("A bearer token is required")
          const principal = yield* auth.authenticate(token).pipe(Effect.option)
          if (Option.isNone(principal)) return unauthorized("The bearer token is not valid")
          const limited = yield* limiter
            .consume({ subject: principal.value.id, limit: rateLimit.limit, window: rateLimit.window })
            .pipe(
              Effect.as(undefined),
              Effect.catchTag("RateLimited", (e) => Effect.succeed(Math.max(1, Math.ceil(e.retryAfterMillis / 1000)))),
              // A limiter store that fails lets the request through: the limit must not take the service down
              Effect.catchTag(["RateLimitStoreError", "InvalidInput"], (e) =>
                Effect.as(Effect.logWarning("rate limiter unavailable; request let through", e), undefined)
              )
            )
          if (limited !== undefined) {
            return HttpServerResponse.jsonUnsafe(
              { error: "rate_limited", message: `Rate limit of ${rateLimit.limit} requests exceeded` },
              { status: 429, headers: { "retry-after": String(limited) } }
            )
          }
          return yield* httpEffect
        })
    })
  ).layer

/** The caller of an HTTP tool call: the principal of the request's bearer token. */
const callerHttp = (consoleUrl: string | undefined) =>
  Layer.effect(
    McpCaller,
    Effect.gen(function* () {
      const auth = yield* Authenticator
      const request = Effect.serviceOption(HttpServerRequest.HttpServerRequest)
      return McpCaller.of({
        principal: Effect.flatMap(request, (r) => {
          const token = Option.isSome(r) ? bearer(r.value) : undefined
          return token === undefined
            ? Effect.fail("A bearer token is required")
            : auth.authenticate(token).pipe(Effect.mapError((e) => e.message))
        }),
        consoleUrl: Effect.map(request, (r) => {
          if (consoleUrl !== undefined) return consoleUrl.replace(/\/+$/, "")
          const host = Option.isSome(r) ? r.value.headers.host : undefined
          return host === undefined ? "http://127.0.0.1:8000" : `http://${host}`
        })
      })
    })
  )

/**
 * The MCP endpoint at `options.path` (default `/mcp`) on the router, for every bearer token the API accepts.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerHttp = (options?: HttpOptions) =>
  McpServer.layerHttp({
    ...info,
    path: options?.path ?? "/mcp",
    protocols: [McpProtocol.v2025_11_25, McpProtocol.v2026_07_28],
    registrations: Tools.layer(options).pipe(Layer.provide(callerHttp(options?.consoleUrl)))
  }).pipe(Layer.provide(authMiddleware(options?.rateLimit ?? { limit: 600, window: Duration.minutes(1) })))

/**
 * @category models
 * @since 0.1.0
 */
export interface HttpOptions extends ToolsOptions {
  readonly path?: `/${string}` | undefined
  /** The console's public address for task links (default: from the request's `Host`). */
  readonly consoleUrl?: string | undefined
  /** The per-principal request budget (shared with the API's). */
  readonly rateLimit?: RateLimitOptions | undefined
}
