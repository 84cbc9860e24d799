import { assert, layer } from "@effect/vitest"
import { layerWebhookStore, makeWebhookStore } from "@mandate/adapters/redis"
import { JobId, Webhook, WebhookStore } from "@mandate/core"
import { suite } from "@mandate/core/conformance/webhookStore"
import { Effect, Option } from "effect"
import { describeRedis, TestRedis } from "../utils/TestRedis.ts"

describeRedis("WebhookStore on Redis", () => {
  suite(
    "redis",
    TestRedis.layerWith((options) => layerWebhookStore(options))
  )

  layer(
    TestRedis.layerWith((options) => layerWebhookStore(options)),
    { excludeTestServices: true }
  )("Redis specifics", (it) => {
    it.effect("a finished delivery expires after retainFinishedMs and leaves the listing", () =>
      Effect.gen(function* () {
        const { prefix } = yield* TestRedis
        const store = yield* makeWebhookStore({ prefix, retainFinishedMs: 1 })
        const subscriptionId = Webhook.SubscriptionId.make(`wh_${crypto.randomUUID().replaceAll("-", "")}`)
        const base = {
          subscriptionId,
          type: "task.completed" as const,
          taskId: "task_1",
          jobId: JobId.make("job_1"),
          attempts: 1,
          createdAt: 1,
          updatedAt: 1
        }
        yield* store.addDelivery({ ...base, id: `msg_${crypto.randomUUID()}`, status: "pending" })
        const done = { ...base, id: `msg_${crypto.randomUUID()}`, status: "pending" as const }
        yield* store.addDelivery(done)
        yield* store.saveDelivery({ ...done, status: "delivered" })
        // Redis expires keys on its own clock: wait for it, as a reader would
        while (Option.isSome(yield* store.delivery(done.id))) yield* Effect.sleep("5 millis")
        const listed = yield* store.deliveries({ subscriptionId, limit: 10 })
        assert.deepStrictEqual(
          listed.map((d) => d.status),
          ["pending"]
        )
        // The layer in context shares the keys
        assert.strictEqual((yield* (yield* WebhookStore).deliveries({ subscriptionId, limit: 10 })).length, 1)
      })
    )
  })
})
