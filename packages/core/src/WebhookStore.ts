/**
 * Where webhook subscriptions and the record of their deliveries are kept. A thin store: what to keep, when a
 * delivery changes state and who may ask are decided by `Webhooks`.
 *
 * Layers: memory (here; what it holds ends with the process), Postgres and Redis (`@mandate/adapters`), all
 * held to `@mandate/core/conformance/webhookStore`. The deliveries themselves are jobs in the `Queue`.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option, Schema } from "effect"
import type { Delivery, DeliveryStatus, Subscription } from "./Webhook.ts"

/**
 * Which deliveries to list, newest first.
 *
 * @category models
 * @since 0.1.0
 */
export interface WebhookDeliveryFilter {
  readonly subscriptionId?: string | undefined
  readonly status?: DeliveryStatus | undefined
  readonly taskId?: string | undefined
  readonly limit: number
}

/**
 * The backing store failed.
 *
 * @category errors
 * @since 0.1.0
 */
export class WebhookStoreError extends Schema.TaggedError<WebhookStoreError>()("WebhookStoreError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

/**
 * Options of `WebhookStore.layerMemory`.
 *
 * @category models
 * @since 0.1.0
 */
export interface WebhookStoreMemoryOptions {
  /** Deliveries kept (default 10,000): past it, the oldest finished ones are forgotten. */
  readonly maxDeliveries?: number | undefined
}

/**
 * @category services
 * @since 0.1.0
 */
export class WebhookStore extends Context.Service<
  WebhookStore,
  {
    /** Every subscription, oldest first (`createdAt`, then id). */
    readonly subscriptions: Effect.Effect<ReadonlyArray<Subscription>, WebhookStoreError>
    readonly subscription: (id: string) => Effect.Effect<Option.Option<Subscription>, WebhookStoreError>
    /** Inserts or replaces (by id). */
    readonly putSubscription: (subscription: Subscription) => Effect.Effect<void, WebhookStoreError>
    /** Whether there was one to remove. */
    readonly removeSubscription: (id: string) => Effect.Effect<boolean, WebhookStoreError>
    /** Inserts the delivery unless one with its id exists; returns the stored one. */
    readonly addDelivery: (delivery: Delivery) => Effect.Effect<Delivery, WebhookStoreError>
    /** Inserts or replaces (by id). */
    readonly saveDelivery: (delivery: Delivery) => Effect.Effect<void, WebhookStoreError>
    readonly delivery: (id: string) => Effect.Effect<Option.Option<Delivery>, WebhookStoreError>
    readonly deliveries: (filter: WebhookDeliveryFilter) => Effect.Effect<ReadonlyArray<Delivery>, WebhookStoreError>
  }
>()("@mandate/core/WebhookStore") {
  /**
   * In-process store.
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layerMemory = (options?: WebhookStoreMemoryOptions): Layer.Layer<WebhookStore> =>
    Layer.sync(WebhookStore, () => makeMemory(options))
}

/**
 * The order of `subscriptions`: `createdAt`, then id.
 *
 * @category computations
 * @since 0.1.0
 */
export const bySubscriptionCreation = (a: Subscription, b: Subscription): number =>
  a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)

const makeMemory = (options?: WebhookStoreMemoryOptions): WebhookStore["Service"] => {
  const max = Math.max(1, Math.floor(options?.maxDeliveries ?? 10_000))
  const subscriptions = new Map<string, Subscription>()
  // Insertion order is creation order: a Map iterates oldest first
  const deliveries = new Map<string, Delivery>()
  const trim = () => {
    if (deliveries.size <= max) return
    for (const [id, d] of deliveries) {
      if (deliveries.size <= max) break
      if (d.status !== "pending" && d.status !== "retrying") deliveries.delete(id)
    }
  }
  return WebhookStore.of({
    subscriptions: Effect.sync(() => [...subscriptions.values()].sort(bySubscriptionCreation)),
    subscription: (id) => Effect.sync(() => Option.fromNullishOr(subscriptions.get(id))),
    putSubscription: (subscription) => Effect.sync(() => void subscriptions.set(subscription.id, subscription)),
    removeSubscription: (id) => Effect.sync(() => subscriptions.delete(id)),
    addDelivery: (delivery) =>
      Effect.sync(() => {
        const existing = deliveries.get(delivery.id)
        if (existing !== undefined) return existing
        deliveries.set(delivery.id, delivery)
        trim()
        return delivery
      }),
    saveDelivery: (delivery) => Effect.sync(() => void deliveries.set(delivery.id, delivery)),
    delivery: (id) => Effect.sync(() => Option.fromNullishOr(deliveries.get(id))),
    deliveries: (filter) =>
      Effect.sync(() => {
        const out: Array<Delivery> = []
        const all = [...deliveries.values()]
        for (let i = all.length - 1; i >= 0 && out.length < filter.limit; i--) {
          const d = all[i]!
          if (filter.subscriptionId !== undefined && d.subscriptionId !== filter.subscriptionId) continue
          if (filter.status !== undefined && d.status !== filter.status) continue
          if (filter.taskId !== undefined && d.taskId !== filter.taskId) continue
          out.push(d)
        }
        return out
      })
  })
}
