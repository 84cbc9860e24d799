/**
 * Webhooks as data: subscriptions, the events people are told about, deliveries, and the Standard Webhooks
 * signature (https://www.standardwebhooks.com). Pure functions only; `WebhookStore` keeps subscriptions and
 * deliveries, and `Webhooks` turns the runtime's events into signed deliveries through the durable queue.
 *
 * **Signing** (Standard Webhooks, "symmetric" scheme): a secret is `whsec_` + base64 of 24–64 random bytes. A
 * delivery carries `webhook-id` (the message id, the same on every retry so receivers can drop duplicates),
 * `webhook-timestamp` (seconds since the epoch at the attempt) and `webhook-signature: v1,<base64 HMAC-SHA256>` of
 * `"<id>.<timestamp>.<body>"` keyed with the secret's decoded bytes.
 *
 * @since 0.1.0
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto"
import { Schema } from "effect"
import * as Canonical from "./Canonical.ts"
import { JobId } from "./Ids.ts"
import type { TaskEvent } from "./Runtime.ts"

// ---- events -------------------------------------------------------------------------------------------------

/**
 * What a subscription can ask to be told about:
 * - `approval.needed`: a step waits for approval (`step.waiting_approval`), one message per step and round;
 * - `task.completed`, `task.failed`, `task.rejected`: the task ended so;
 * - `step.dead_lettered`: a step's job ran out of attempts, or failed in a way retrying cannot help (a final
 *   `step.failed`).
 *
 * @category models
 * @since 0.1.0
 */
export const EventType = Schema.Literals([
  "approval.needed",
  "task.completed",
  "task.failed",
  "task.rejected",
  "step.dead_lettered"
])
export type EventType = typeof EventType.Type

/**
 * Every event type, in a stable order.
 *
 * @category constants
 * @since 0.1.0
 */
export const eventTypes: ReadonlyArray<EventType> = EventType.literals

/**
 * The webhook event a runtime event stands for, if any (most runtime events are not worth a notification).
 *
 * @category computations
 * @since 0.1.0
 */
export const eventTypeOf = (event: Pick<TaskEvent, "kind" | "data">): EventType | undefined => {
  switch (event.kind) {
    case "step.waiting_approval":
      return "approval.needed"
    case "task.completed":
    case "task.failed":
    case "task.rejected":
      return event.kind
    case "step.failed": {
      const data = event.data
      const final = typeof data === "object" && data !== null && !Array.isArray(data) && "final" in data
      return final && (data as { readonly final?: unknown }).final === true ? "step.dead_lettered" : undefined
    }
    default:
      return undefined
  }
}

// ---- subscriptions ------------------------------------------------------------------------------------------

/**
 * A subscription id: `wh_` and 1–64 letters, digits, `_` or `-`.
 *
 * @category models
 * @since 0.1.0
 */
export const SubscriptionId = Schema.String.check(
  Schema.isPattern(/^wh_[A-Za-z0-9_-]{1,64}$/, { message: "Expected a webhook id: wh_ and 1-64 letters or digits" })
).pipe(Schema.brand("WebhookId"))
export type SubscriptionId = typeof SubscriptionId.Type

const secretPattern = /^whsec_[A-Za-z0-9+/]+={0,2}$/

/**
 * A signing secret: `whsec_` + base64 of 24–64 bytes (the Standard Webhooks format).
 *
 * @category models
 * @since 0.1.0
 */
export const Secret = Schema.String.check(
  Schema.makeFilter((s: string) => {
    if (!secretPattern.test(s)) return "Expected a secret: whsec_ followed by base64"
    const bytes = Buffer.from(s.slice(6), "base64").length
    return (bytes >= 24 && bytes <= 64) || "Expected a secret of 24 to 64 bytes (base64 after whsec_)"
  })
)

/**
 * Where deliveries go: an `http:` or `https:` URL without credentials, at most 2,048 characters.
 *
 * @category models
 * @since 0.1.0
 */
export const Url = Schema.String.check(
  Schema.isMaxLength(2_048),
  Schema.makeFilter((s: string) => {
    if (!URL.canParse(s)) return "Expected an absolute URL"
    const url = new URL(s)
    if (url.protocol !== "http:" && url.protocol !== "https:") return "Expected an http: or https: URL"
    return (url.username === "" && url.password === "") || "Expected a URL without user name or password"
  })
)

/**
 * What creates a subscription (`POST /webhooks`, a webhooks file). Without `secret` one is generated; without
 * `enabled` it is enabled.
 *
 * @category models
 * @since 0.1.0
 */
export const SubscriptionInput = Schema.Struct({
  /** A fixed id (a webhooks file names its subscriptions so a restart keeps them); default a generated one. */
  id: Schema.optionalKey(SubscriptionId),
  url: Url,
  events: Schema.NonEmptyArray(EventType).check(Schema.isMaxLength(eventTypes.length)),
  secret: Schema.optionalKey(Secret),
  enabled: Schema.optionalKey(Schema.Boolean),
  description: Schema.optionalKey(Schema.String.check(Schema.isMaxLength(256)))
})
export type SubscriptionInput = typeof SubscriptionInput.Type

/**
 * A stored subscription, secret included. Only the creator sees the secret, once (`Webhooks.create`); listings
 * show `SubscriptionView`.
 *
 * @category models
 * @since 0.1.0
 */
export const Subscription = Schema.Struct({
  id: SubscriptionId,
  url: Url,
  events: Schema.Array(EventType),
  secret: Secret,
  enabled: Schema.Boolean,
  description: Schema.optionalKey(Schema.String),
  createdAt: Schema.Number,
  /** Who created it: a principal id, or `configuration` for subscriptions from the webhooks file. */
  createdBy: Schema.String
})
export type Subscription = typeof Subscription.Type

/**
 * A subscription as listed: without its secret.
 *
 * @category models
 * @since 0.1.0
 */
export type SubscriptionView = Omit<Subscription, "secret">

/**
 * @category computations
 * @since 0.1.0
 */
export const view = (subscription: Subscription): SubscriptionView => {
  const { secret: _, ...rest } = subscription
  return rest
}

/**
 * A new secret: `whsec_` + base64 of 32 random bytes from the operating system.
 *
 * @category constructors
 * @since 0.1.0
 */
export const generateSecret = (): string => `whsec_${randomBytes(32).toString("base64")}`

/**
 * A new subscription id.
 *
 * @category constructors
 * @since 0.1.0
 */
export const generateId = (): SubscriptionId => SubscriptionId.make(`wh_${randomBytes(12).toString("base64url")}`)

/**
 * Whether `subscription` wants `type` now.
 *
 * @category predicates
 * @since 0.1.0
 */
export const wants = (subscription: Subscription, type: EventType): boolean =>
  subscription.enabled && subscription.events.includes(type)

// ---- messages -----------------------------------------------------------------------------------------------

/**
 * The message id of one event for one subscription: `msg_` + 32 hex digits of SHA-256 over the subscription id
 * and the event's task id, task version, kind and step id. The same event always gets the same id, so enqueueing
 * it again (a replay, a second process) finds the first job, and a receiver can drop a repeated `webhook-id`.
 *
 * @category computations
 * @since 0.1.0
 */
export const messageId = (
  subscriptionId: string,
  event: Pick<TaskEvent, "taskId" | "version" | "kind" | "stepId">
): string =>
  `msg_${Canonical.sha256Hex(
    Canonical.encode([subscriptionId, event.taskId, event.version, event.kind, event.stepId ?? null])
  ).slice(0, 32)}`

/**
 * The link to a task's page in the web console: `<base>/#/task/<id>`.
 *
 * @category computations
 * @since 0.1.0
 */
export const taskLink = (publicUrl: string, taskId: string): string =>
  `${publicUrl.replace(/\/+$/, "")}/#/task/${encodeURIComponent(taskId)}`

/**
 * The body of a delivery (the Standard Webhooks shape: `type`, `timestamp`, `data`). `data.details` is the
 * runtime event's own data (a step's required approvals and deadline, a failure's reason); a completed task's
 * results are left out (they can be large and are one link away).
 *
 * @category models
 * @since 0.1.0
 */
export const Message = Schema.Struct({
  type: EventType,
  /** When the event happened (ISO 8601). */
  timestamp: Schema.String,
  data: Schema.Struct({
    task_id: Schema.String,
    step_id: Schema.optionalKey(Schema.String),
    /** The task's state after the event. */
    state: Schema.String,
    version: Schema.Int,
    /** The runtime event behind this one (`step.waiting_approval`, `step.failed`, …). */
    event: Schema.String,
    /** The task's page in the web console. */
    link: Schema.String,
    details: Schema.optionalKey(Schema.Json)
  })
})
export type Message = typeof Message.Type

/**
 * The message for a runtime event of webhook type `type`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const message = (type: EventType, event: Omit<TaskEvent, "seq">, publicUrl: string): Message => ({
  type,
  timestamp: new Date(event.at).toISOString(),
  data: {
    task_id: event.taskId,
    ...(event.stepId === undefined ? {} : { step_id: event.stepId }),
    state: event.state,
    version: event.version,
    event: event.kind,
    link: taskLink(publicUrl, event.taskId),
    ...(event.data === undefined || type === "task.completed" ? {} : { details: event.data })
  }
})

/**
 * The payload of a delivery job: which subscription, the message id, the message and a MAC of them keyed with the
 * subscription's secret. The URL and the secret are read from the subscription at each attempt (so a job never
 * holds a secret, and a disabled or removed subscription stops its pending deliveries); a job whose MAC does not
 * verify is never sent, so whoever could enqueue to the queue still cannot have us sign a message of theirs.
 *
 * @category models
 * @since 0.1.0
 */
export const DeliveryJob = Schema.Struct({
  subscriptionId: SubscriptionId,
  messageId: Schema.String,
  message: Message,
  /** `jobMac` of the rest: only who knows the subscription's secret can make a job the workers will send. */
  mac: Schema.String
})
export type DeliveryJob = typeof DeliveryJob.Type

// ---- deliveries ---------------------------------------------------------------------------------------------

/**
 * Where a delivery stands: `pending` (queued, not tried yet), `retrying` (an attempt failed; the queue runs it
 * again at `nextAttemptAt`), `delivered` (a 2xx answer), `dead_lettered` (the last attempt failed), `skipped`
 * (the subscription was removed or disabled before it went out).
 *
 * @category models
 * @since 0.1.0
 */
export const DeliveryStatus = Schema.Literals(["pending", "retrying", "delivered", "dead_lettered", "skipped"])
export type DeliveryStatus = typeof DeliveryStatus.Type

/**
 * One message to one subscription, with its attempts so far.
 *
 * @category models
 * @since 0.1.0
 */
export const Delivery = Schema.Struct({
  /** The message id (`webhook-id`). */
  id: Schema.String,
  subscriptionId: SubscriptionId,
  type: EventType,
  taskId: Schema.String,
  stepId: Schema.optionalKey(Schema.String),
  jobId: JobId,
  status: DeliveryStatus,
  attempts: Schema.Int,
  /** The HTTP status of the last answer. */
  lastStatus: Schema.optionalKey(Schema.Int),
  lastError: Schema.optionalKey(Schema.String),
  nextAttemptAt: Schema.optionalKey(Schema.Number),
  createdAt: Schema.Number,
  updatedAt: Schema.Number
})
export type Delivery = typeof Delivery.Type

// ---- signatures ---------------------------------------------------------------------------------------------

const secretKey = (secret: string): Buffer =>
  Buffer.from(secret.startsWith("whsec_") ? secret.slice(6) : secret, "base64")

/**
 * The `webhook-signature` value: `v1,` + base64 HMAC-SHA256 of `"<id>.<timestamp>.<body>"` keyed with the
 * secret's bytes.
 *
 * @category computations
 * @since 0.1.0
 */
export const sign = (secret: string, id: string, timestampSeconds: number, body: string): string =>
  `v1,${createHmac("sha256", secretKey(secret)).update(`${id}.${timestampSeconds}.${body}`).digest("base64")}`

/**
 * The three headers of a signed delivery (plus its content type).
 *
 * @category computations
 * @since 0.1.0
 */
export const headers = (
  secret: string,
  id: string,
  timestampSeconds: number,
  body: string
): Readonly<Record<string, string>> => ({
  "content-type": "application/json",
  "webhook-id": id,
  "webhook-timestamp": String(timestampSeconds),
  "webhook-signature": sign(secret, id, timestampSeconds, body)
})

// Domain separation from the delivery signatures: a header value (the webhook-id) cannot hold a newline
const jobMacContext = "mandate.webhooks.job\n"

/**
 * The MAC of a delivery job's content: base64 HMAC-SHA256, keyed with the subscription's secret, of a fixed
 * context line and the canonical JSON of subscription id, message id and message.
 *
 * @category computations
 * @since 0.1.0
 */
export const jobMac = (secret: string, job: Omit<DeliveryJob, "mac">): string =>
  createHmac("sha256", secretKey(secret))
    .update(jobMacContext + Canonical.encode([job.subscriptionId, job.messageId, job.message]))
    .digest("base64")

/**
 * Whether a delivery job's MAC is the one `secret` gives (constant-time).
 *
 * @category predicates
 * @since 0.1.0
 */
export const verifyJobMac = (secret: string, job: DeliveryJob): boolean => {
  const expected = Buffer.from(jobMac(secret, job), "base64")
  const given = Buffer.from(job.mac, "base64")
  return given.length === expected.length && timingSafeEqual(given, expected)
}

/**
 * Whether a `webhook-signature` header (space-separated `v1,<sig>` entries) holds a valid signature of the body,
 * compared in constant time. Receivers should also refuse timestamps far from their clock (replays).
 *
 * @category predicates
 * @since 0.1.0
 */
export const verify = (
  secret: string,
  id: string,
  timestampSeconds: number,
  body: string,
  signatureHeader: string
): boolean => {
  const expected = Buffer.from(sign(secret, id, timestampSeconds, body).slice(3), "base64")
  return signatureHeader.split(" ").some((entry) => {
    const [version, value] = entry.split(",", 2)
    if (version !== "v1" || value === undefined) return false
    const given = Buffer.from(value, "base64")
    return given.length === expected.length && timingSafeEqual(given, expected)
  })
}
