/**
 * `WebhookStore` on Postgres: subscriptions in `webhook_subscriptions`, deliveries in `webhook_deliveries`
 * (migration 0006), each row holding the core model as JSON. So every server process sharing the database knows
 * the same subscriptions, and a delivery answered by one process is not sent again by another.
 *
 * Every statement goes through the abstract `SqlClient` (inside `UnitOfWork.run` it joins the unit's
 * transaction). Rows are decoded with the core schemas: a row that does not decode fails the call with
 * `WebhookStoreError`, as driver failures do.
 *
 * @since 0.1.0
 */
import { type InvalidInput, Webhook, type WebhookDeliveryFilter, WebhookStore, WebhookStoreError } from "@mandate/core"
import { Effect, Layer, Option, Schema } from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import { type PostgresOptions, resolveSchema } from "./Options.ts"

const decodeSubscription = Schema.decodeUnknownEffect(Webhook.Subscription)
const decodeDelivery = Schema.decodeUnknownEffect(Webhook.Delivery)
const encodeSubscription = Schema.encodeEffect(Webhook.Subscription)
const encodeDelivery = Schema.encodeEffect(Webhook.Delivery)

/**
 * Builds the Postgres webhook store over the `SqlClient` in context (the migrations must have run).
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeWebhookStore = Effect.fnUntraced(function* (options?: PostgresOptions) {
  const sql = yield* SqlClient.SqlClient
  const schema = yield* resolveSchema(options)
  const subscriptions = sql(`${schema}.webhook_subscriptions`)
  const deliveries = sql(`${schema}.webhook_deliveries`)

  const fail =
    (operation: string) =>
    (cause: unknown): WebhookStoreError =>
      new WebhookStoreError({ operation, cause })
  const run = <A, E extends SqlError.SqlError | Schema.SchemaError>(operation: string, effect: Effect.Effect<A, E>) =>
    effect.pipe(Effect.mapError(fail(operation)), Effect.withSpan(`WebhookStore.${operation}`))

  const subscriptionOf = (row: { readonly subscription: unknown }) => decodeSubscription(row.subscription)
  const deliveryOf = (row: { readonly delivery: unknown }) => decodeDelivery(row.delivery)

  const getDelivery = (id: string) =>
    Effect.gen(function* () {
      const rows = yield* sql<{ delivery: unknown }>`SELECT delivery FROM ${deliveries} WHERE id = ${id}`
      return rows.length === 0 ? Option.none() : Option.some(yield* deliveryOf(rows[0]!))
    })

  return WebhookStore.of({
    subscriptions: run(
      "subscriptions",
      Effect.flatMap(
        sql<{ subscription: unknown }>`SELECT subscription FROM ${subscriptions} ORDER BY created_at, id`,
        (rows) => Effect.forEach(rows, subscriptionOf)
      )
    ),
    subscription: (id) =>
      run(
        "subscription",
        Effect.gen(function* () {
          const rows = yield* sql<{ subscription: unknown }>`
            SELECT subscription FROM ${subscriptions} WHERE id = ${id}`
          return rows.length === 0 ? Option.none() : Option.some(yield* subscriptionOf(rows[0]!))
        })
      ),
    putSubscription: (subscription) =>
      run(
        "putSubscription",
        Effect.gen(function* () {
          const json = JSON.stringify(yield* encodeSubscription(subscription))
          yield* sql`INSERT INTO ${subscriptions} (id, created_at, subscription)
            VALUES (${subscription.id}, ${subscription.createdAt}, ${json}::jsonb)
            ON CONFLICT (id) DO UPDATE SET created_at = excluded.created_at, subscription = excluded.subscription`
        })
      ),
    removeSubscription: (id) =>
      run(
        "removeSubscription",
        Effect.map(
          sql<{ id: string }>`DELETE FROM ${subscriptions} WHERE id = ${id} RETURNING id`,
          (rows) => rows.length > 0
        )
      ),
    addDelivery: (delivery) =>
      run(
        "addDelivery",
        Effect.gen(function* () {
          const json = JSON.stringify(yield* encodeDelivery(delivery))
          const inserted = yield* sql<{ id: string }>`
            INSERT INTO ${deliveries} (id, subscription_id, task_id, status, delivery)
            VALUES (${delivery.id}, ${delivery.subscriptionId}, ${delivery.taskId}, ${delivery.status}, ${json}::jsonb)
            ON CONFLICT (id) DO NOTHING
            RETURNING id`
          if (inserted.length > 0) return delivery
          // Under READ COMMITTED this SELECT sees the row a concurrent insert committed while ours waited on it
          const existing = yield* getDelivery(delivery.id)
          return Option.getOrElse(existing, () => delivery)
        })
      ),
    saveDelivery: (delivery) =>
      run(
        "saveDelivery",
        Effect.gen(function* () {
          const json = JSON.stringify(yield* encodeDelivery(delivery))
          yield* sql`INSERT INTO ${deliveries} (id, subscription_id, task_id, status, delivery)
            VALUES (${delivery.id}, ${delivery.subscriptionId}, ${delivery.taskId}, ${delivery.status}, ${json}::jsonb)
            ON CONFLICT (id) DO UPDATE SET status = excluded.status, delivery = excluded.delivery`
        })
      ),
    delivery: (id) => run("delivery", getDelivery(id)),
    deliveries: (filter: WebhookDeliveryFilter) =>
      run(
        "deliveries",
        Effect.flatMap(
          sql<{ delivery: unknown }>`SELECT delivery FROM ${deliveries}
            WHERE ${sql.and([
              sql`true`,
              ...(filter.subscriptionId === undefined ? [] : [sql`subscription_id = ${filter.subscriptionId}`]),
              ...(filter.status === undefined ? [] : [sql`status = ${filter.status}`]),
              ...(filter.taskId === undefined ? [] : [sql`task_id = ${filter.taskId}`])
            ])}
            ORDER BY seq DESC
            LIMIT ${filter.limit}`,
          (rows) => Effect.forEach(rows, deliveryOf)
        )
      )
  })
})

/**
 * `WebhookStore` on Postgres, over the `SqlClient` in context.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerWebhookStore = (
  options?: PostgresOptions
): Layer.Layer<WebhookStore, InvalidInput, SqlClient.SqlClient> => Layer.effect(WebhookStore, makeWebhookStore(options))
