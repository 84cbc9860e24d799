/**
 * Notifications: webhook subscriptions managed by admins, and signed deliveries of the runtime's events to them
 * through the durable queue.
 *
 * - **Where deliveries come from.** A transactional outbox (`Runtime.outbox`): inside the unit of work of each
 *   transition, every event of a subscribed type (`Webhook.eventTypeOf`) becomes one job per interested
 *   subscription on the queue `mandate.webhooks`, so the jobs commit with the transition or not at all (on memory,
 *   Postgres and Redis alike). A process that stops right after a commit loses no notification: any worker on the
 *   same stores delivers it. Each job's idempotency key is its message id (`Webhook.messageId`: subscription,
 *   task, version, kind, step), so the same event offered twice (a retried unit, a replay through `notify`) is one
 *   job and one delivery. A transition without an event of a webhook type costs nothing; one with such an event
 *   reads the subscriptions in its unit (so a subscription created through any process counts from its commit on)
 *   and costs one job per subscription that wants it, none when nobody does.
 * - **How they go out.** A `Worker` on that queue POSTs the message, signed the Standard Webhooks way
 *   (`Webhook.headers`), to the subscription's URL. A 2xx answer is recorded as `delivered` before the job is
 *   completed, and an attempt first checks that record, so a worker that stops (or loses its lease) after the
 *   answer and before completing the job does not make the next worker send it again. Anything else fails the
 *   attempt: the queue retries it with exponential backoff and dead-letters it after the last attempt.
 * - **Who may manage them.** Only admins list, create, change and remove subscriptions, read deliveries and send a
 *   dead letter again; the rule is here, not in an HTTP handler.
 * - **What the workers send.** Only jobs whose MAC verifies with their subscription's secret (`Webhook.jobMac`),
 *   and only a delivery's own job changes that delivery's record.
 *
 * Delivery is at least once between a receiver's answer and our record of it; receivers drop a repeated
 * `webhook-id`.
 *
 * @since 0.1.0
 */
import { Cause, Clock, Context, Effect, Layer, Option, PubSub, Schema, type Scope, Stream } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import * as Canonical from "./Canonical.ts"
import { type JobId, JobId as JobIdSchema } from "./Ids.ts"
import { decode, InvalidInput } from "./InvalidInput.ts"
import type { Job } from "./Job.ts"
import { hasRole, type Principal } from "./Principal.ts"
import { type EnqueueRequest, Queue, QueueStoreError } from "./Queue.ts"
import { Forbidden, Runtime, type TaskEvent } from "./Runtime.ts"
import { IllegalTransition } from "./Task.ts"
import { UnitOfWork } from "./UnitOfWork.ts"
import {
  type Delivery,
  DeliveryJob,
  DeliveryStatus,
  eventTypeOf,
  generateId,
  generateSecret,
  headers,
  jobMac,
  messageId,
  message as messageOf,
  Secret,
  type Subscription,
  SubscriptionId,
  SubscriptionInput,
  type SubscriptionView,
  verifyJobMac,
  view,
  wants
} from "./Webhook.ts"
import { WebhookStore, type WebhookStoreError } from "./WebhookStore.ts"
import * as Worker from "./Worker.ts"

/**
 * The queue of delivery jobs, in the reserved `mandate.` namespace (`PublicQueue` lets no one enqueue or claim
 * there). Code that enqueues there through `Queue` itself still cannot have a message of its own signed and sent: a
 * job's MAC must verify with the subscription's secret.
 *
 * @category constants
 * @since 0.1.0
 */
export const webhooksQueue = "mandate.webhooks"

/**
 * No subscription with this id.
 *
 * @category errors
 * @since 0.1.0
 */
export class WebhookNotFound extends Schema.TaggedError<WebhookNotFound>()("WebhookNotFound", {
  webhookId: Schema.String
}) {
  override get message(): string {
    return `No webhook ${this.webhookId}`
  }
}

/**
 * No delivery with this id (message id).
 *
 * @category errors
 * @since 0.1.0
 */
export class WebhookDeliveryNotFound extends Schema.TaggedError<WebhookDeliveryNotFound>()("WebhookDeliveryNotFound", {
  deliveryId: Schema.String
}) {
  override get message(): string {
    return `No webhook delivery ${this.deliveryId}`
  }
}

/**
 * Changes to a subscription (`Webhooks.update`): any of its URL, events, enabled flag and description. The secret
 * is not changed this way: create a new subscription and remove the old one.
 *
 * @category models
 * @since 0.1.0
 */
export const WebhookPatch = Schema.Struct({
  url: Schema.optionalKey(SubscriptionInput.fields.url),
  events: Schema.optionalKey(SubscriptionInput.fields.events),
  enabled: Schema.optionalKey(Schema.Boolean),
  description: Schema.optionalKey(Schema.String.check(Schema.isMaxLength(256)))
})
export type WebhookPatch = typeof WebhookPatch.Type

/**
 * A subscription from configuration (a webhooks file, an environment variable): its secret is required (it is
 * never shown, so the receiver must already know it). Without an id it gets one derived from its URL and events, so
 * it keeps its id, and its messages their ids, across restarts.
 *
 * @category models
 * @since 0.1.0
 */
export const ConfiguredWebhook = Schema.Struct({ ...SubscriptionInput.fields, secret: Secret })
export type ConfiguredWebhook = typeof ConfiguredWebhook.Type

/**
 * A webhooks file or variable: an array of subscriptions, or `{ "subscriptions": [...] }`.
 *
 * @category models
 * @since 0.1.0
 */
export const WebhooksConfig = Schema.Union([
  Schema.Array(ConfiguredWebhook),
  Schema.Struct({ subscriptions: Schema.Array(ConfiguredWebhook) })
])

/**
 * Decodes a webhooks configuration (already parsed JSON); bad fields are named by JSON path.
 *
 * @category decoding
 * @since 0.1.0
 */
export const decodeWebhooksConfig = (
  input: unknown,
  root = "$"
): Effect.Effect<ReadonlyArray<ConfiguredWebhook>, InvalidInput> =>
  Effect.map(decode(WebhooksConfig, root)(input), (config) =>
    "subscriptions" in config ? config.subscriptions : config
  )

/**
 * Which deliveries to list (newest first; `limit` default 100, at most 1,000).
 *
 * @category models
 * @since 0.1.0
 */
export const WebhookDeliveryQuery = Schema.Struct({
  webhookId: Schema.optionalKey(SubscriptionId),
  status: Schema.optionalKey(DeliveryStatus),
  taskId: Schema.optionalKey(Schema.String.check(Schema.isBetweenLength(1, 128))),
  limit: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1_000 })))
})
export type WebhookDeliveryQuery = typeof WebhookDeliveryQuery.Type

/**
 * Options of `Webhooks.layer`.
 *
 * @category models
 * @since 0.1.0
 */
export interface WebhooksOptions {
  /** The console's address, for links to a task's page (default `http://127.0.0.1:8000`). */
  readonly publicUrl?: string | undefined
  /** Subscriptions from configuration (see `ConfiguredWebhook`), written at start. */
  readonly subscriptions?: ReadonlyArray<unknown> | undefined
  /** The queue of delivery jobs (default `mandate.webhooks`). */
  readonly queue?: string | undefined
  /** Attempts per delivery before it is dead-lettered (default 8). Backoff is the queue's. */
  readonly maxAttempts?: number | undefined
  /** Run a delivery worker in this process (default true). */
  readonly workers?: boolean | undefined
  /** Options of the delivery worker started by the layer. */
  readonly worker?: WebhookWorkerOptions | undefined
}

/**
 * Options of a delivery worker (`Webhooks.startWorker`).
 *
 * @category models
 * @since 0.1.0
 */
export interface WebhookWorkerOptions {
  /** Deliveries in flight at once (default 4). */
  readonly concurrency?: number | undefined
  /** Time limit of one attempt in ms, answer included (default 10,000). */
  readonly timeoutMs?: number | undefined
  readonly workerId?: string | undefined
  readonly leaseMs?: number | undefined
  readonly pollIntervalMs?: number | undefined
  readonly shutdownGraceMs?: number | undefined
}

/**
 * @category services
 * @since 0.1.0
 */
export class Webhooks extends Context.Service<
  Webhooks,
  {
    /** Every subscription, without secrets. Admins only. */
    readonly list: (
      principal: Principal
    ) => Effect.Effect<ReadonlyArray<SubscriptionView>, Forbidden | WebhookStoreError>
    /** One subscription, without its secret. Admins only. */
    readonly get: (
      principal: Principal,
      id: string
    ) => Effect.Effect<SubscriptionView, Forbidden | WebhookNotFound | WebhookStoreError>
    /**
     * Creates a subscription (`SubscriptionInput`); returns it with its secret, given or generated — the only time
     * the secret is shown. Admins only.
     */
    readonly create: (
      principal: Principal,
      input: unknown
    ) => Effect.Effect<Subscription, Forbidden | InvalidInput | WebhookStoreError>
    /** Changes a subscription's URL, events, enabled flag or description (`WebhookPatch`). Admins only. */
    readonly update: (
      principal: Principal,
      id: string,
      patch: unknown
    ) => Effect.Effect<SubscriptionView, Forbidden | WebhookNotFound | InvalidInput | WebhookStoreError>
    /** Removes a subscription; its pending deliveries are skipped. Admins only. */
    readonly remove: (
      principal: Principal,
      id: string
    ) => Effect.Effect<void, Forbidden | WebhookNotFound | WebhookStoreError>
    /** Recent deliveries with their status, newest first. Admins only. */
    readonly deliveries: (
      principal: Principal,
      query?: unknown
    ) => Effect.Effect<ReadonlyArray<Delivery>, Forbidden | InvalidInput | WebhookStoreError>
    /**
     * Sends a dead-lettered delivery again: its job goes back to the queue with a fresh attempt budget (same
     * message id). Admins only. A delivery that is not dead-lettered is an `IllegalTransition` of its job.
     */
    readonly retry: (
      principal: Principal,
      deliveryId: string
    ) => Effect.Effect<
      Delivery,
      Forbidden | WebhookDeliveryNotFound | IllegalTransition | WebhookStoreError | QueueStoreError
    >
    /**
     * The deliveries of one runtime event: one job per enabled subscription that wants its type (read from the
     * store), enqueued idempotently. The layer enqueues every transition's deliveries itself, in the transition's
     * unit of work; calling this with an event already handled changes nothing.
     */
    readonly notify: (
      event: TaskEvent
    ) => Effect.Effect<ReadonlyArray<Delivery>, WebhookStoreError | QueueStoreError | InvalidInput>
    /** Each delivery as its status changes, live, for the life of the scope. */
    readonly updates: Effect.Effect<Stream.Stream<Delivery>, never, Scope.Scope>
    /** Starts a delivery worker in the caller's scope (the layer starts one unless `workers: false`). */
    readonly startWorker: (
      options?: WebhookWorkerOptions
    ) => Effect.Effect<Worker.WorkerHandle, InvalidInput, Scope.Scope>
  }
>()("@mandate/core/Webhooks") {
  /**
   * Subscriptions in `WebhookStore`, deliveries on `Queue` through `HttpClient`, following `Runtime`'s events.
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layer = (
    options?: WebhooksOptions
  ): Layer.Layer<
    Webhooks,
    InvalidInput | WebhookStoreError,
    Runtime | Queue | WebhookStore | UnitOfWork | HttpClient.HttpClient
  > => Layer.effect(Webhooks, make(options))
}

const requireAdmin = (principal: Principal, action: string) =>
  hasRole(principal, "admin")
    ? Effect.void
    : Effect.fail(new Forbidden({ principal: principal.id, action, reason: "the admin role is required" }))

const decodeInput = decode(SubscriptionInput)
const decodeQuery = decode(WebhookDeliveryQuery, "$query")
const decodeJob = decode(DeliveryJob, "$.payload")
const decodeId = decode(SubscriptionId)
const decodePatch = decode(WebhookPatch)

/** The id of a configured subscription without one: stable across restarts. */
const configuredId = (s: ConfiguredWebhook) =>
  s.id ?? SubscriptionId.make(`wh_cfg_${Canonical.hash([s.url, [...s.events].sort()]).slice(0, 24)}`)

const make = (options?: WebhooksOptions) =>
  Effect.gen(function* () {
    const store = yield* WebhookStore
    const queue = yield* Queue
    const runtime = yield* Runtime
    const uow = yield* UnitOfWork
    const client = yield* HttpClient.HttpClient
    const queueName = options?.queue ?? webhooksQueue
    const publicUrl = options?.publicUrl ?? "http://127.0.0.1:8000"
    const maxAttempts = options?.maxAttempts ?? 8
    const hub = yield* PubSub.sliding<Delivery>(4_096)

    // Configuration first: a configured subscription replaces the one with its id (its secret may have rotated)
    const configured = yield* decodeWebhooksConfig(options?.subscriptions ?? [])
    const startedAt = yield* Clock.currentTimeMillis
    for (const s of configured) {
      yield* store.putSubscription({
        id: configuredId(s),
        url: s.url,
        events: s.events,
        secret: s.secret,
        enabled: s.enabled ?? true,
        ...(s.description === undefined ? {} : { description: s.description }),
        createdAt: startedAt,
        createdBy: "configuration"
      })
    }

    const published = (delivery: Delivery) => Effect.as(PubSub.publish(hub, delivery), delivery)

    // The delivery jobs of one event for those of `subscriptions` that want it
    const stagedOf = (subscriptions: ReadonlyArray<Subscription>, event: Omit<TaskEvent, "seq">) => {
      const type = eventTypeOf(event)
      if (type === undefined) return []
      const wanting = subscriptions.filter((s) => wants(s, type))
      if (wanting.length === 0) return []
      const message = messageOf(type, event, publicUrl)
      return wanting.map((subscription) => {
        const id = messageId(subscription.id, event)
        const content = { subscriptionId: subscription.id, messageId: id, message }
        const payload: DeliveryJob = { ...content, mac: jobMac(subscription.secret, content) }
        const request: EnqueueRequest = {
          queue: queueName,
          payload: payload as unknown as Schema.Json,
          idempotencyKey: id,
          maxAttempts
        }
        return { payload, request }
      })
    }

    // A record for each job (a job enqueued before keeps its record), told to `updates` when new
    const recordAll = (jobs: ReadonlyArray<Job>, payloads: ReadonlyArray<DeliveryJob>) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.forEach(jobs, (job, i) =>
          Effect.gen(function* () {
            const fresh = deliveryOf(job.id, payloads[i]!, now)
            const stored = yield* store.addDelivery(fresh)
            return stored === fresh ? yield* published(stored) : stored
          })
        )
      )

    const notify = (event: TaskEvent) =>
      Effect.gen(function* () {
        const staged = stagedOf(yield* store.subscriptions, event)
        if (staged.length === 0) return []
        const jobs = yield* queue.enqueueBatch(staged.map((s) => s.request))
        return yield* recordAll(
          jobs,
          staged.map((s) => s.payload)
        )
      })

    // ---- one attempt ----------------------------------------------------------------------------------------

    const attempt = (job: Job) =>
      Effect.gen(function* () {
        const payload = yield* decodeJob(job.payload).pipe(
          Effect.mapError((e) => Worker.JobFailure.permanent(`not a delivery job: ${e.message} at ${e.path}`))
        )
        const found = yield* store.delivery(payload.messageId)
        // Sent and answered before, but the job was not completed then (a stop, a lost lease): never twice
        if (Option.isSome(found) && found.value.status === "delivered") return { delivered: true, repeated: true }
        // Checked before anything is written: a job that is not this delivery's own leaves its record alone
        if (Option.isSome(found) && found.value.jobId !== job.id) {
          return yield* Worker.JobFailure.permanent(`delivery ${payload.messageId} belongs to job ${found.value.jobId}`)
        }
        const now = yield* Clock.currentTimeMillis
        const subscription = yield* store.subscription(payload.subscriptionId)
        if (Option.isSome(subscription) && !verifyJobMac(subscription.value.secret, payload)) {
          return yield* Worker.JobFailure.permanent(
            "the job's MAC does not verify with the subscription's secret: not enqueued by Mandate, or the secret changed"
          )
        }
        if (Option.isNone(subscription) || !subscription.value.enabled) {
          if (Option.isSome(found)) yield* store.saveDelivery({ ...found.value, status: "skipped", updatedAt: now })
          return { skipped: Option.isNone(subscription) ? "subscription removed" : "subscription disabled" }
        }
        // Authentic: its record may not be written yet (the worker was faster than the enqueuer), so write it
        const record = Option.isSome(found)
          ? found.value
          : yield* store.addDelivery(deliveryOf(job.id, payload, job.createdAt))
        const body = JSON.stringify(payload.message)
        const timestamp = Math.floor(now / 1000)
        const request = HttpClientRequest.post(subscription.value.url).pipe(
          HttpClientRequest.setHeaders(headers(subscription.value.secret, payload.messageId, timestamp, body)),
          HttpClientRequest.bodyText(body, "application/json")
        )
        // The scope ends the exchange once the status is in: the answer's body is not read
        const answer = yield* Effect.scoped(
          Effect.map(HttpClient.withScope(client).execute(request), (response) => response.status)
        ).pipe(Effect.result)
        const at = yield* Clock.currentTimeMillis
        if (answer._tag === "Failure") {
          const error = `request failed: ${answer.failure.message}`
          yield* store.saveDelivery({ ...record, attempts: job.attempts, lastError: error, updatedAt: at })
          return yield* Worker.JobFailure.transient(error)
        }
        const status = answer.success
        if (status >= 200 && status < 300) {
          const { lastError: _, nextAttemptAt: __, ...rest } = record
          yield* store.saveDelivery({
            ...rest,
            status: "delivered",
            attempts: job.attempts,
            lastStatus: status,
            updatedAt: at
          })
          return { delivered: true, status }
        }
        const error = `HTTP ${status}`
        yield* store.saveDelivery({
          ...record,
          attempts: job.attempts,
          lastStatus: status,
          lastError: error,
          updatedAt: at
        })
        return yield* Worker.JobFailure.transient(error)
      })

    // After the queue recorded the attempt: the delivery's status follows its job's
    const settle = (job: Job, outcome: Worker.Outcome) =>
      Effect.gen(function* () {
        const payload = yield* Effect.option(decodeJob(job.payload))
        if (Option.isNone(payload)) return
        // Only the delivery's own job moves its record (a refused job has none, or another's)
        const found = yield* store.delivery(payload.value.messageId)
        if (Option.isNone(found) || found.value.jobId !== job.id) return
        const record = found.value
        if (outcome._tag === "Completed") return yield* published(record)
        const { nextAttemptAt: _, ...rest } = record
        const next: Delivery =
          job.state === "dead_lettered"
            ? {
                ...rest,
                status: "dead_lettered",
                attempts: job.attempts,
                lastError: outcome.error,
                updatedAt: job.updatedAt
              }
            : {
                ...rest,
                status: "retrying",
                attempts: job.attempts,
                lastError: outcome.error,
                nextAttemptAt: job.runAt,
                updatedAt: job.updatedAt
              }
        yield* store.saveDelivery(next)
        yield* published(next)
      })

    const startWorker = (worker?: WebhookWorkerOptions) =>
      Worker.run({
        queues: [queueName],
        handler: attempt,
        settle,
        concurrency: worker?.concurrency ?? 4,
        timeoutMs: worker?.timeoutMs ?? 10_000,
        ...(worker?.workerId === undefined ? {} : { workerId: worker.workerId }),
        ...(worker?.leaseMs === undefined ? {} : { leaseMs: worker.leaseMs }),
        ...(worker?.pollIntervalMs === undefined ? {} : { pollIntervalMs: worker.pollIntervalMs }),
        ...(worker?.shutdownGraceMs === undefined ? {} : { shutdownGraceMs: worker.shutdownGraceMs })
      }).pipe(Effect.provideService(Queue, queue))

    // ---- following the runtime ------------------------------------------------------------------------------

    const scope = yield* Effect.scope

    // The outbox: a transition's deliveries are enqueued in its own unit of work, so they commit with it (a process
    // that stops right after the commit loses none). A transition without an event of a webhook type costs nothing;
    // one with such an event reads the subscriptions (in the unit, so one created through any process counts from
    // its commit on), and costs a job only per subscription that wants it. The delivery records are written once the
    // unit has committed, off the transition's path; a worker writes one that is missing.
    yield* runtime.outbox((events) => {
      if (!events.some((event) => eventTypeOf(event) !== undefined)) return Effect.void
      return store.subscriptions.pipe(
        Effect.map((subscriptions) => events.flatMap((event) => stagedOf(subscriptions, event))),
        Effect.flatMap((staged) =>
          staged.length === 0
            ? Effect.void
            : Effect.flatMap(queue.enqueueBatch(staged.map((s) => s.request)), (jobs) =>
                uow.afterCommit(
                  Effect.asVoid(
                    Effect.forkIn(
                      recordAll(
                        jobs,
                        staged.map((s) => s.payload)
                      ).pipe(
                        Effect.catchCause((cause) =>
                          Effect.logWarning(`webhook delivery records not written: ${Cause.pretty(cause)}`)
                        )
                      ),
                      scope
                    )
                  )
                )
              )
        ),
        // The runtime's unit fails with its stores' errors: a failed read or enqueue here fails the transition
        Effect.catchTags({
          WebhookStoreError: (cause) =>
            Effect.fail(new QueueStoreError({ operation: "webhook outbox: read subscriptions", cause })),
          InvalidInput: (cause) =>
            Effect.fail(new QueueStoreError({ operation: "webhook outbox: enqueue deliveries", cause }))
        })
      )
    })
    if (options?.workers !== false) yield* startWorker(options?.worker)

    const getOne = (id: string) =>
      Effect.gen(function* () {
        const valid = yield* Effect.option(decodeId(id))
        const found = Option.isNone(valid) ? Option.none() : yield* store.subscription(valid.value)
        if (Option.isNone(found)) return yield* new WebhookNotFound({ webhookId: id })
        return found.value
      })

    return Webhooks.of({
      list: (principal) =>
        Effect.andThen(
          requireAdmin(principal, "list webhooks"),
          Effect.map(store.subscriptions, (all) => all.map(view))
        ),
      get: (principal, id) => Effect.andThen(requireAdmin(principal, "read webhooks"), Effect.map(getOne(id), view)),
      create: (principal, input) =>
        Effect.gen(function* () {
          yield* requireAdmin(principal, "create webhooks")
          const valid = yield* decodeInput(input)
          if (valid.id !== undefined && Option.isSome(yield* store.subscription(valid.id))) {
            return yield* InvalidInput.at("$.id", `A webhook with id ${valid.id} exists`)
          }
          const subscription: Subscription = {
            id: valid.id ?? generateId(),
            url: valid.url,
            events: [...new Set(valid.events)],
            secret: valid.secret ?? generateSecret(),
            enabled: valid.enabled ?? true,
            ...(valid.description === undefined ? {} : { description: valid.description }),
            createdAt: yield* Clock.currentTimeMillis,
            createdBy: principal.id
          }
          yield* store.putSubscription(subscription)
          return subscription
        }),
      update: (principal, id, patch) =>
        Effect.gen(function* () {
          yield* requireAdmin(principal, "change webhooks")
          const found = yield* getOne(id)
          const valid = yield* decodePatch(patch)
          const updated: Subscription = {
            ...found,
            ...(valid.url === undefined ? {} : { url: valid.url }),
            ...(valid.events === undefined ? {} : { events: [...new Set(valid.events)] }),
            ...(valid.enabled === undefined ? {} : { enabled: valid.enabled }),
            ...(valid.description === undefined ? {} : { description: valid.description })
          }
          yield* store.putSubscription(updated)
          return view(updated)
        }),
      retry: (principal, deliveryId) =>
        Effect.gen(function* () {
          yield* requireAdmin(principal, "retry webhook deliveries")
          const found = yield* store.delivery(deliveryId)
          if (Option.isNone(found)) return yield* new WebhookDeliveryNotFound({ deliveryId })
          const job = yield* queue
            .retryDeadLettered(found.value.jobId)
            .pipe(
              Effect.catchTag("JobNotFound", () =>
                Effect.fail(
                  new IllegalTransition({ entity: "job", id: found.value.jobId, from: "forgotten", to: "queued" })
                )
              )
            )
          const { nextAttemptAt: _, ...rest } = found.value
          const pending: Delivery = { ...rest, status: "pending", attempts: job.attempts, updatedAt: job.updatedAt }
          yield* store.saveDelivery(pending)
          return yield* published(pending)
        }),
      remove: (principal, id) =>
        Effect.gen(function* () {
          yield* requireAdmin(principal, "remove webhooks")
          const found = yield* getOne(id)
          yield* store.removeSubscription(found.id)
        }),
      deliveries: (principal, query) =>
        Effect.gen(function* () {
          yield* requireAdmin(principal, "read webhook deliveries")
          const q = yield* decodeQuery(query ?? {})
          return yield* store.deliveries({
            subscriptionId: q.webhookId,
            status: q.status,
            taskId: q.taskId,
            limit: q.limit ?? 100
          })
        }),
      notify,
      updates: Effect.map(PubSub.subscribe(hub), Stream.fromSubscription),
      startWorker
    })
  })

const deliveryOf = (jobId: JobId, payload: DeliveryJob, now: number): Delivery => ({
  id: payload.messageId,
  subscriptionId: payload.subscriptionId,
  type: payload.message.type,
  taskId: payload.message.data.task_id,
  ...(payload.message.data.step_id === undefined ? {} : { stepId: payload.message.data.step_id }),
  jobId: JobIdSchema.make(jobId),
  status: "pending",
  attempts: 0,
  createdAt: now,
  updatedAt: now
})
