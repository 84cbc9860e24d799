/**
 * Webhook subscriptions and the record of their deliveries (`WebhookStore`). Each row keeps the core model as
 * JSON, with the columns the store filters and orders by beside it. `seq` orders deliveries by insertion, newest
 * first in listings.
 *
 * Released: never edit this file; add a migration.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE webhook_subscriptions (
    id text PRIMARY KEY,
    created_at bigint NOT NULL,
    subscription jsonb NOT NULL
  )`
  yield* sql`CREATE TABLE webhook_deliveries (
    id text PRIMARY KEY,
    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    subscription_id text NOT NULL,
    task_id text NOT NULL,
    status text NOT NULL,
    delivery jsonb NOT NULL
  )`
  yield* sql`CREATE INDEX webhook_deliveries_by_subscription ON webhook_deliveries (subscription_id, seq DESC)`
  yield* sql`CREATE INDEX webhook_deliveries_by_task ON webhook_deliveries (task_id, seq DESC)`
})
