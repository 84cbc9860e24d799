/**
 * The `WebhookStore` conformance suite: the whole behavioural contract of `WebhookStore`, run against any layer.
 * The memory layer, the Postgres layer, the Redis layer and any user-written store call this same function.
 *
 * ```ts
 * import { suite } from "@mandate/core/conformance/webhookStore"
 * suite("my-store", MyWebhookStore.layer)
 * ```
 *
 * The layer is built once for the whole suite; every test uses ids of its own, so tests never see each other's
 * rows (listings are filtered to the test's ids).
 *
 * @since 0.1.0
 */
import { assert, layer } from "@effect/vitest"
import { JobId, Webhook, WebhookStore } from "@mandate/core"
import { Effect, type Layer, Option } from "effect"

const unique = () => crypto.randomUUID().replaceAll("-", "")

const subscription = (overrides?: Partial<Webhook.Subscription>): Webhook.Subscription => ({
  id: Webhook.SubscriptionId.make(`wh_${unique()}`),
  url: "https://hooks.example.com/in?token=a%20b",
  events: ["approval.needed", "task.failed"],
  secret: Webhook.generateSecret(),
  enabled: true,
  description: 'Ünïcödé "quotes" 🙂',
  createdAt: 1_000,
  createdBy: "root",
  ...overrides
})

const delivery = (subscriptionId: string, overrides?: Partial<Webhook.Delivery>): Webhook.Delivery => ({
  id: `msg_${unique()}`,
  subscriptionId: Webhook.SubscriptionId.make(subscriptionId),
  type: "approval.needed",
  taskId: `task_${unique()}`,
  stepId: "onchain_action",
  jobId: JobId.make(`job_${unique()}`),
  status: "pending",
  attempts: 0,
  createdAt: 2_000,
  updatedAt: 2_000,
  ...overrides
})

/**
 * Runs the suite against `storeLayer`.
 *
 * @category suites
 * @since 0.1.0
 */
export const suite = (name: string, storeLayer: Layer.Layer<WebhookStore, unknown>) =>
  layer(storeLayer, { timeout: "60 seconds" })(`WebhookStore conformance (${name})`, (it) => {
    it.effect("keeps a subscription exactly, replaces it by id and removes it", () =>
      Effect.gen(function* () {
        const store = yield* WebhookStore
        const first = subscription()
        const { description: _, ...bare } = subscription({ enabled: false, createdAt: 999 })
        yield* store.putSubscription(first)
        yield* store.putSubscription(bare)
        assert.deepStrictEqual(yield* store.subscription(first.id), Option.some(first))
        assert.deepStrictEqual(yield* store.subscription(bare.id), Option.some(bare))
        const mine = (yield* store.subscriptions).filter((s) => s.id === first.id || s.id === bare.id)
        // Oldest first (createdAt), whatever the order of writing
        assert.deepStrictEqual(mine, [bare, first])

        const replaced = {
          ...first,
          url: "https://other.example/",
          events: ["task.completed" as const],
          enabled: false
        }
        yield* store.putSubscription(replaced)
        assert.deepStrictEqual(yield* store.subscription(first.id), Option.some(replaced))
        assert.strictEqual((yield* store.subscriptions).filter((s) => s.id === first.id).length, 1)

        assert.isTrue(yield* store.removeSubscription(first.id))
        assert.isFalse(yield* store.removeSubscription(first.id))
        assert.isTrue(Option.isNone(yield* store.subscription(first.id)))
        assert.isTrue(Option.isNone(yield* store.subscription(`wh_${unique()}`)))
        assert.isTrue(yield* store.removeSubscription(bare.id))
      })
    )

    it.effect("adds a delivery once: a second add returns the first, unchanged", () =>
      Effect.gen(function* () {
        const store = yield* WebhookStore
        const d = delivery(`wh_${unique()}`)
        assert.deepStrictEqual(yield* store.addDelivery(d), d)
        const again = yield* store.addDelivery({
          ...d,
          status: "delivered",
          attempts: 3,
          jobId: JobId.make("job_other")
        })
        assert.deepStrictEqual(again, d)
        assert.deepStrictEqual(yield* store.delivery(d.id), Option.some(d))
        assert.isTrue(Option.isNone(yield* store.delivery(`msg_${unique()}`)))
      })
    )

    it.effect("keeps one delivery under 20 concurrent adds of the same id", () =>
      Effect.gen(function* () {
        const store = yield* WebhookStore
        const base = delivery(`wh_${unique()}`)
        const added = yield* Effect.all(
          Array.from({ length: 20 }, (_, i) => store.addDelivery({ ...base, attempts: i })),
          { concurrency: "unbounded" }
        )
        const stored = Option.getOrThrow(yield* store.delivery(base.id))
        assert.isTrue(added.every((d) => d.attempts === stored.attempts))
        const listed = yield* store.deliveries({ subscriptionId: base.subscriptionId, limit: 100 })
        assert.strictEqual(listed.length, 1)
      })
    )

    it.effect("saves a delivery's changes, optional fields included", () =>
      Effect.gen(function* () {
        const store = yield* WebhookStore
        const d = delivery(`wh_${unique()}`)
        yield* store.addDelivery(d)
        const retrying: Webhook.Delivery = {
          ...d,
          status: "retrying",
          attempts: 2,
          lastStatus: 503,
          lastError: "HTTP 503 — «unavailable»",
          nextAttemptAt: 5_000,
          updatedAt: 4_000
        }
        yield* store.saveDelivery(retrying)
        assert.deepStrictEqual(yield* store.delivery(d.id), Option.some(retrying))
        const { nextAttemptAt: _, lastError: __, stepId: ___, ...rest } = retrying
        const delivered: Webhook.Delivery = { ...rest, status: "delivered", attempts: 3, lastStatus: 200 }
        yield* store.saveDelivery(delivered)
        assert.deepStrictEqual(yield* store.delivery(d.id), Option.some(delivered))
      })
    )

    it.effect("lists deliveries newest first, filtered by subscription, status and task, up to the limit", () =>
      Effect.gen(function* () {
        const store = yield* WebhookStore
        const [a, b] = [`wh_${unique()}`, `wh_${unique()}`]
        const task = `task_${unique()}`
        const added: Array<Webhook.Delivery> = []
        for (let i = 0; i < 6; i++) {
          const d = delivery(i % 2 === 0 ? a : b, {
            taskId: i < 4 ? task : `task_${unique()}`,
            status: i % 3 === 0 ? "delivered" : "pending",
            createdAt: 10_000 + i
          })
          added.push(yield* store.addDelivery(d))
        }
        const ids = (list: ReadonlyArray<Webhook.Delivery>) => list.map((d) => d.id)
        const newestFirst = [...added].reverse()
        assert.deepStrictEqual(
          ids(yield* store.deliveries({ subscriptionId: a, limit: 100 })),
          ids(newestFirst.filter((d) => d.subscriptionId === a))
        )
        assert.deepStrictEqual(
          ids(yield* store.deliveries({ subscriptionId: b, status: "pending", limit: 100 })),
          ids(newestFirst.filter((d) => d.subscriptionId === b && d.status === "pending"))
        )
        assert.deepStrictEqual(
          ids(yield* store.deliveries({ taskId: task, limit: 3 })),
          ids(newestFirst.filter((d) => d.taskId === task).slice(0, 3))
        )
        // A save changes the delivery, not its place in the listing
        yield* store.saveDelivery({ ...added[0]!, status: "dead_lettered", updatedAt: 99_999 })
        const listed = yield* store.deliveries({ subscriptionId: a, limit: 100 })
        assert.deepStrictEqual(ids(listed), ids(newestFirst.filter((d) => d.subscriptionId === a)))
        assert.strictEqual(listed.at(-1)!.status, "dead_lettered")
        assert.deepStrictEqual(
          ids(yield* store.deliveries({ subscriptionId: a, status: "dead_lettered", limit: 100 })),
          [added[0]!.id]
        )
      })
    )
  })
