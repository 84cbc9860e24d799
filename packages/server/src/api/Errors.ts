/**
 * The errors of the HTTP API, as they go over the wire: one JSON shape per HTTP status, each naming its kind
 * in `error` (`invalid_input`, `not_found`, …) and saying what went wrong in `message`. Core errors are mapped to
 * these by the handlers (`http/Errors.ts`); nothing else reaches a client, so a client never sees a stack trace
 * or an empty 500 for bad input.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { HttpApiSchema } from "effect/http-api"

/**
 * One problem with the request: where (a JSON path such as `$.parameters.amount`, `$query.limit` or
 * `$path.id`) and what.
 *
 * @category models
 * @since 0.1.0
 */
export const Issue = Schema.Struct({ path: Schema.String, message: Schema.String })
export type Issue = typeof Issue.Type

/**
 * 400: the request does not decode. `path`/`message` name the first problem, `issues` all of them.
 *
 * @category errors
 * @since 0.1.0
 */
export class BadRequest extends Schema.Error<BadRequest>("@mandate/server/BadRequest")(
  {
    error: Schema.tag("invalid_input"),
    message: Schema.String,
    path: Schema.String,
    issues: Schema.Array(Issue)
  },
  { httpApiStatus: 400, description: "The request does not decode: every bad field with its JSON path" }
) {}

/**
 * 401: no credentials, or credentials that do not verify.
 *
 * @category errors
 * @since 0.1.0
 */
export class Unauthorized extends Schema.Error<Unauthorized>("@mandate/server/Unauthorized")(
  { error: Schema.tag("unauthorized"), message: Schema.String },
  { httpApiStatus: 401, description: "Missing, malformed, expired or unknown bearer token" }
) {}

/**
 * 403: the principal may not do this (a role it lacks, four eyes, not the requester).
 *
 * @category errors
 * @since 0.1.0
 */
export class Forbidden extends Schema.Error<Forbidden>("@mandate/server/Forbidden")(
  { error: Schema.tag("forbidden"), message: Schema.String, principal: Schema.String },
  { httpApiStatus: 403, description: "The principal may not do this" }
) {}

/**
 * 404: no such task, plan, job, agent, ledger entry or transaction.
 *
 * @category errors
 * @since 0.1.0
 */
export class NotFound extends Schema.Error<NotFound>("@mandate/server/NotFound")(
  { error: Schema.tag("not_found"), message: Schema.String, resource: Schema.String, id: Schema.String },
  { httpApiStatus: 404, description: "No such resource" }
) {}

/**
 * 409: the resource is not in a state that allows this (an illegal transition, a lost lease, a step not
 * waiting for approval, a ledger that no longer verifies).
 *
 * @category errors
 * @since 0.1.0
 */
export class Conflict extends Schema.Error<Conflict>("@mandate/server/Conflict")(
  { error: Schema.tag("conflict"), message: Schema.String, reason: Schema.String },
  { httpApiStatus: 409, description: "The resource's state does not allow this" }
) {}

/**
 * 413: the request body is larger than the server accepts.
 *
 * @category errors
 * @since 0.1.0
 */
export class PayloadTooLarge extends Schema.Error<PayloadTooLarge>("@mandate/server/PayloadTooLarge")(
  { error: Schema.tag("payload_too_large"), message: Schema.String, limit_bytes: Schema.Int },
  { httpApiStatus: 413, description: "The request body exceeds the size limit" }
) {}

/**
 * 422: policy denied the task. The task exists, `rejected`, with its plan and decisions in the ledger.
 *
 * @category errors
 * @since 0.1.0
 */
export class PolicyDenied extends Schema.Error<PolicyDenied>("@mandate/server/PolicyDenied")(
  {
    error: Schema.tag("policy_denied"),
    message: Schema.String,
    task_id: Schema.String,
    plan_id: Schema.String,
    reasons: Schema.Array(Schema.String)
  },
  { httpApiStatus: 422, description: "Policy denied the task; it is recorded as rejected with the reasons" }
) {}

/**
 * 422: the request is well-formed but cannot be carried out (a plan with a step type no handler runs, a cyclic
 * plan).
 *
 * @category errors
 * @since 0.1.0
 */
export class Unprocessable extends Schema.Error<Unprocessable>("@mandate/server/Unprocessable")(
  { error: Schema.tag("unprocessable"), message: Schema.String },
  { httpApiStatus: 422, description: "Well-formed, but it cannot be carried out" }
) {}

/**
 * 429: the token used up its request budget; retry after `retry_after` seconds (also the `Retry-After` header).
 *
 * @category errors
 * @since 0.1.0
 */
export class TooManyRequests extends Schema.Error<TooManyRequests>("@mandate/server/TooManyRequests")({
  error: Schema.tag("rate_limited"),
  message: Schema.String,
  retry_after: Schema.Int
}) {}

const TooManyRequestsBody = Schema.Struct({
  error: Schema.Literal("rate_limited"),
  message: Schema.String,
  retry_after: Schema.Int
}).pipe(HttpApiSchema.status(429))

/**
 * `TooManyRequests` on the wire: the JSON body and a `Retry-After` header (seconds).
 *
 * @category errors
 * @since 0.1.0
 */
export const TooManyRequestsResponse = TooManyRequests.pipe(
  HttpApiSchema.encodeToWithHeaders(
    { body: TooManyRequestsBody, headers: { "retry-after": Schema.String } },
    {
      decode: ({ body }) => new TooManyRequests({ message: body.message, retry_after: body.retry_after }),
      encode: (e) => ({
        body: { error: "rate_limited" as const, message: e.message, retry_after: e.retry_after },
        headers: { "retry-after": String(e.retry_after) }
      })
    }
  )
).annotate({ description: "Rate limit exceeded for this token; see Retry-After" })

/**
 * 503: a store or the chain could not be reached; retrying later may succeed.
 *
 * @category errors
 * @since 0.1.0
 */
export class Unavailable extends Schema.Error<Unavailable>("@mandate/server/Unavailable")(
  { error: Schema.tag("unavailable"), message: Schema.String },
  { httpApiStatus: 503, description: "A backing store or the chain is unavailable" }
) {}
