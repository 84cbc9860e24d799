/**
 * Webhooks over HTTP, for admins: subscriptions (list, create — the secret is shown once —, read, remove) and the
 * recent deliveries with their status.
 *
 * @since 0.1.0
 */
import { Webhook } from "@mandate/core"
import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import { Auth, RequiredRoles } from "./Auth.ts"
import { Conflict, NotFound, Unavailable } from "./Errors.ts"

/**
 * `POST /webhooks`. Checked by core (URL scheme, event names, secret format), each bad field named by path.
 *
 * @category models
 * @since 0.1.0
 */
export const CreateWebhook = Schema.Struct({
  url: Schema.String,
  events: Schema.Array(Schema.String),
  /** `whsec_` + base64 of 24–64 bytes; generated when absent. */
  secret: Schema.optionalKey(Schema.String),
  enabled: Schema.optionalKey(Schema.Boolean),
  description: Schema.optionalKey(Schema.String),
  id: Schema.optionalKey(Schema.String)
})

/**
 * `PATCH /webhooks/{id}`: any of URL, events, enabled flag, description (checked by core).
 *
 * @category models
 * @since 0.1.0
 */
export const UpdateWebhook = Schema.Struct({
  url: Schema.optionalKey(Schema.String),
  events: Schema.optionalKey(Schema.Array(Schema.String)),
  enabled: Schema.optionalKey(Schema.Boolean),
  description: Schema.optionalKey(Schema.String)
})

/**
 * A subscription as listed (no secret).
 *
 * @category models
 * @since 0.1.0
 */
export const WebhookWire = Schema.Struct({
  id: Schema.String,
  url: Schema.String,
  events: Schema.Array(Webhook.EventType),
  enabled: Schema.Boolean,
  description: Schema.optionalKey(Schema.String),
  created_at: Schema.Finite,
  created_by: Schema.String
})

/**
 * A subscription just created, with its secret: the only time it is shown.
 *
 * @category models
 * @since 0.1.0
 */
export const CreatedWebhookWire = Schema.Struct({ ...WebhookWire.fields, secret: Schema.String })

/**
 * One message to one subscription and where it stands.
 *
 * @category models
 * @since 0.1.0
 */
export const DeliveryWire = Schema.Struct({
  id: Schema.String,
  webhook_id: Schema.String,
  type: Webhook.EventType,
  task_id: Schema.String,
  step_id: Schema.optionalKey(Schema.String),
  job_id: Schema.String,
  status: Webhook.DeliveryStatus,
  attempts: Schema.Int,
  last_status: Schema.optionalKey(Schema.Int),
  last_error: Schema.optionalKey(Schema.String),
  next_attempt_at: Schema.optionalKey(Schema.Finite),
  created_at: Schema.Finite,
  updated_at: Schema.Finite
})

const id = Schema.String.check(Schema.isBetweenLength(1, 128))
const admins = ["admin"] as const

/**
 * Admin-only (core checks the role again).
 *
 * @category groups
 * @since 0.1.0
 */
export class WebhooksApi extends HttpApiGroup.make("webhooks")
  .add(
    HttpApiEndpoint.get("list", "/webhooks", {
      success: Schema.Struct({ webhooks: Schema.Array(WebhookWire) }),
      error: Unavailable
    })
      .annotate(RequiredRoles, admins)
      .annotate(OpenApi.Description, "Every webhook subscription (without secrets)"),
    HttpApiEndpoint.post("create", "/webhooks", {
      payload: CreateWebhook,
      success: CreatedWebhookWire.pipe(HttpApiSchema.status(201)),
      error: Unavailable
    })
      .annotate(RequiredRoles, admins)
      .annotate(OpenApi.Description, "Creates a subscription; the response holds its secret, shown this once"),
    HttpApiEndpoint.get("deliveries", "/webhooks/deliveries", {
      query: {
        webhook_id: Schema.optional(Schema.String),
        status: Schema.optional(Schema.String),
        task_id: Schema.optional(Schema.String),
        limit: Schema.optional(Schema.Int)
      },
      success: Schema.Struct({ deliveries: Schema.Array(DeliveryWire) }),
      error: Unavailable
    })
      .annotate(RequiredRoles, admins)
      .annotate(OpenApi.Description, "Recent deliveries, newest first, with their status and last answer"),
    HttpApiEndpoint.get("get", "/webhooks/:id", {
      params: { id },
      success: WebhookWire,
      error: [NotFound, Unavailable]
    })
      .annotate(RequiredRoles, admins)
      .annotate(OpenApi.Description, "One subscription (without its secret)"),
    HttpApiEndpoint.post("retry", "/webhooks/deliveries/:id/retry", {
      params: { id },
      success: DeliveryWire,
      error: [NotFound, Conflict, Unavailable]
    })
      .annotate(RequiredRoles, admins)
      .annotate(OpenApi.Description, "Sends a dead-lettered delivery again, with a fresh attempt budget"),
    HttpApiEndpoint.patch("update", "/webhooks/:id", {
      params: { id },
      payload: UpdateWebhook,
      success: WebhookWire,
      error: [NotFound, Unavailable]
    })
      .annotate(RequiredRoles, admins)
      .annotate(OpenApi.Description, "Changes a subscription's URL, events, enabled flag or description"),
    HttpApiEndpoint.delete("remove", "/webhooks/:id", {
      params: { id },
      success: HttpApiSchema.NoContent,
      error: [NotFound, Unavailable]
    })
      .annotate(RequiredRoles, admins)
      .annotate(OpenApi.Description, "Removes a subscription; its pending deliveries are skipped")
  )
  .middleware(Auth) {}
