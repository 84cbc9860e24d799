/**
 * Operations: liveness and readiness (no credentials needed), Prometheus metrics and the caller's identity.
 *
 * @since 0.1.0
 */
import { Principal } from "@mandate/core"
import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import { Auth, RequiredRoles } from "./Auth.ts"
import { Unavailable } from "./Errors.ts"

/**
 * One dependency's state in `GET /ready`.
 *
 * @category models
 * @since 0.1.0
 */
export const Check = Schema.Struct({
  name: Schema.String,
  ok: Schema.Boolean,
  latency_ms: Schema.Finite,
  error: Schema.optionalKey(Schema.String),
  /** The backend holding this store (`memory`, `postgres`, `redis`, or the anchor's kind). */
  backend: Schema.optionalKey(Schema.String),
  /** Whether what it holds outlives the process. */
  persistent: Schema.optionalKey(Schema.Boolean)
})
export type Check = typeof Check.Type

/**
 * `GET /ready`: every configured store and the anchor.
 *
 * @category models
 * @since 0.1.0
 */
export const Readiness = Schema.Struct({
  status: Schema.Literals(["ready", "unavailable"]),
  store: Schema.String,
  anchor: Schema.String,
  checks: Schema.Array(Check)
})
export type Readiness = typeof Readiness.Type

/**
 * @category groups
 * @since 0.1.0
 */
export class SystemApi extends HttpApiGroup.make("system").add(
  HttpApiEndpoint.get("health", "/health", { success: Schema.Struct({ status: Schema.Literal("ok") }) }).annotate(
    OpenApi.Description,
    "Liveness: the process serves requests"
  ),
  HttpApiEndpoint.get("ready", "/ready", {
    success: Readiness,
    error: Readiness.pipe(HttpApiSchema.status(503))
  }).annotate(OpenApi.Description, "Readiness: each configured store and the anchor answer")
) {}

/**
 * @category groups
 * @since 0.1.0
 */
export class OpsApi extends HttpApiGroup.make("ops")
  .add(
    HttpApiEndpoint.get("metrics", "/metrics", {
      success: Schema.String.pipe(HttpApiSchema.asText({ contentType: "text/plain; version=0.0.4" })),
      error: Unavailable
    })
      .annotate(RequiredRoles, ["auditor"])
      .annotate(OpenApi.Description, "Prometheus text: HTTP requests, tasks by state, queue depth, ledger size"),
    HttpApiEndpoint.get("whoami", "/whoami", { success: Principal.Principal })
      .annotate(RequiredRoles, ["submitter", "approver", "auditor", "agent"])
      .annotate(OpenApi.Description, "The principal and roles of the bearer token")
  )
  .middleware(Auth) {}
