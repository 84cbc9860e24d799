/**
 * Handlers of the `webhooks` group: each one call into core's `Webhooks` (which checks the admin role), mapped to
 * the wire.
 *
 * @since 0.1.0
 */
import { type Webhook, Webhooks } from "@mandate/core"
import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../api/Api.ts"
import { CurrentPrincipal } from "../api/Auth.ts"
import type { DeliveryWire, WebhookWire } from "../api/Webhooks.ts"
import { mapErrors } from "./Errors.ts"
import type * as Models from "./Models.ts"

const subscription = (s: Webhook.SubscriptionView): Models.Wire<typeof WebhookWire> => ({
  id: s.id,
  url: s.url,
  events: s.events,
  enabled: s.enabled,
  ...(s.description === undefined ? {} : { description: s.description }),
  created_at: s.createdAt,
  created_by: s.createdBy
})

const delivery = (d: Webhook.Delivery): Models.Wire<typeof DeliveryWire> => ({
  id: d.id,
  webhook_id: d.subscriptionId,
  type: d.type,
  task_id: d.taskId,
  ...(d.stepId === undefined ? {} : { step_id: d.stepId }),
  job_id: d.jobId,
  status: d.status,
  attempts: d.attempts,
  ...(d.lastStatus === undefined ? {} : { last_status: d.lastStatus }),
  ...(d.lastError === undefined ? {} : { last_error: d.lastError }),
  ...(d.nextAttemptAt === undefined ? {} : { next_attempt_at: d.nextAttemptAt }),
  created_at: d.createdAt,
  updated_at: d.updatedAt
})

const queryNames = { "$query.webhookId": "$query.webhook_id", "$query.taskId": "$query.task_id" }

/**
 * @category handlers
 * @since 0.1.0
 */
export const layer = HttpApiBuilder.group(Api, "webhooks", (handlers) =>
  Effect.gen(function* () {
    const webhooks = yield* Webhooks
    return handlers
      .handle("list", () =>
        Effect.flatMap(CurrentPrincipal, (principal) => webhooks.list(principal)).pipe(
          Effect.map((all) => ({ webhooks: all.map(subscription) })),
          mapErrors()
        )
      )
      .handle("create", ({ payload }) =>
        Effect.flatMap(CurrentPrincipal, (principal) => webhooks.create(principal, payload)).pipe(
          Effect.map((created) => ({ ...subscription(created), secret: created.secret })),
          mapErrors()
        )
      )
      .handle("deliveries", ({ query }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          webhooks.deliveries(principal, {
            ...(query.webhook_id === undefined ? {} : { webhookId: query.webhook_id }),
            ...(query.status === undefined ? {} : { status: query.status }),
            ...(query.task_id === undefined ? {} : { taskId: query.task_id }),
            ...(query.limit === undefined ? {} : { limit: query.limit })
          })
        ).pipe(
          Effect.map((all) => ({ deliveries: all.map(delivery) })),
          mapErrors(queryNames)
        )
      )
      .handle("get", ({ params }) =>
        Effect.flatMap(CurrentPrincipal, (principal) => webhooks.get(principal, params.id)).pipe(
          Effect.map(subscription),
          mapErrors()
        )
      )
      .handle("update", ({ params, payload }) =>
        Effect.flatMap(CurrentPrincipal, (principal) => webhooks.update(principal, params.id, payload)).pipe(
          Effect.map(subscription),
          mapErrors()
        )
      )
      .handle("retry", ({ params }) =>
        Effect.flatMap(CurrentPrincipal, (principal) => webhooks.retry(principal, params.id)).pipe(
          Effect.map(delivery),
          mapErrors()
        )
      )
      .handle("remove", ({ params }) =>
        Effect.flatMap(CurrentPrincipal, (principal) => webhooks.remove(principal, params.id)).pipe(mapErrors())
      )
  })
)
