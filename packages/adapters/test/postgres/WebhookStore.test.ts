import { layerWebhookStore } from "@mandate/adapters/postgres"
import { suite } from "@mandate/core/conformance/webhookStore"
import { describePostgres, TestPostgres } from "../utils/TestPostgres.ts"

describePostgres("WebhookStore on Postgres", () => {
  suite(
    "postgres",
    TestPostgres.layerWith((options) => layerWebhookStore(options))
  )
})
