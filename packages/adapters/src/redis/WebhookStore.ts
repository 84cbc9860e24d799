/**
 * `WebhookStore` on Redis: each subscription and each delivery a JSON string (the core model), with a sorted set
 * of subscription ids by creation time and one of delivery ids by insertion sequence. Every write is one Lua
 * script, so concurrent adds of one delivery keep the first. Finished deliveries (`delivered`, `dead_lettered`,
 * `skipped`) expire after `retainFinishedMs` (default 7 days); listings drop ids whose delivery has expired.
 *
 * Keys: `<prefix>webhooks:sub:<id>`, `<prefix>webhooks:subs`, `<prefix>webhooks:delivery:<id>`,
 * `<prefix>webhooks:deliveries`, `<prefix>webhooks:seq`.
 *
 * @since 0.1.0
 */
import { type InvalidInput, Webhook, type WebhookDeliveryFilter, WebhookStore, WebhookStoreError } from "@mandate/core"
import { Effect, Layer, Option, Schema } from "effect"
import { Redis } from "effect/persistence"
import { type RedisOptions, resolvePrefix } from "./Keys.ts"

/**
 * Options of the Redis webhook store.
 *
 * @category models
 * @since 0.1.0
 */
export interface WebhookStoreOptions extends RedisOptions {
  /** How long a finished delivery is kept, in ms (default 7 days). */
  readonly retainFinishedMs?: number | undefined
}

const SubscriptionJson = Schema.fromJsonString(Webhook.Subscription)
const DeliveryJson = Schema.fromJsonString(Webhook.Delivery)
const decodeSubscription = Schema.decodeUnknownEffect(SubscriptionJson)
const decodeDelivery = Schema.decodeUnknownEffect(DeliveryJson)
const encodeSubscription = Schema.encodeEffect(SubscriptionJson)
const encodeDelivery = Schema.encodeEffect(DeliveryJson)

const finished = (status: Webhook.DeliveryStatus) =>
  status === "delivered" || status === "dead_lettered" || status === "skipped"

/**
 * Builds the Redis webhook store over the `Redis` service in context.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeWebhookStore = Effect.fnUntraced(function* (options?: WebhookStoreOptions) {
  const redis = yield* Redis.Redis
  const prefix = `${yield* resolvePrefix(options)}webhooks:`
  const retainMs = Math.max(1, Math.floor(options?.retainFinishedMs ?? 7 * 86_400_000))
  const keys = {
    subscription: `${prefix}sub:`,
    subscriptions: `${prefix}subs`,
    delivery: `${prefix}delivery:`,
    deliveries: `${prefix}deliveries`,
    sequence: `${prefix}seq`
  }
  const put = redis.eval(putSubscriptionScript)
  const remove = redis.eval(removeSubscriptionScript)
  const readAll = redis.eval(readSubscriptionsScript)
  const add = redis.eval(addDeliveryScript)
  const save = redis.eval(saveDeliveryScript)
  const list = redis.eval(listDeliveriesScript)

  const run = <A, E>(operation: string, effect: Effect.Effect<A, E>) =>
    effect.pipe(
      Effect.mapError((cause) => new WebhookStoreError({ operation, cause })),
      Effect.withSpan(`WebhookStore.${operation}`)
    )

  const getDelivery = (id: string) =>
    Effect.flatMap(redis.send<string | null>("GET", `${keys.delivery}${id}`), (json) =>
      json === null ? Effect.succeed(Option.none()) : Effect.map(decodeDelivery(json), Option.some)
    )

  return WebhookStore.of({
    subscriptions: run(
      "subscriptions",
      Effect.flatMap(readAll(keys.subscriptions, keys.subscription), (rows) =>
        Effect.forEach(rows, (json) => decodeSubscription(json))
      )
    ),
    subscription: (id) =>
      run(
        "subscription",
        Effect.flatMap(redis.send<string | null>("GET", `${keys.subscription}${id}`), (json) =>
          json === null ? Effect.succeed(Option.none()) : Effect.map(decodeSubscription(json), Option.some)
        )
      ),
    putSubscription: (subscription) =>
      run(
        "putSubscription",
        Effect.flatMap(encodeSubscription(subscription), (json) =>
          put(
            `${keys.subscription}${subscription.id}`,
            keys.subscriptions,
            subscription.id,
            subscription.createdAt,
            json
          )
        )
      ),
    removeSubscription: (id) =>
      run(
        "removeSubscription",
        Effect.map(remove(`${keys.subscription}${id}`, keys.subscriptions, id), (n) => n === 1)
      ),
    addDelivery: (delivery) =>
      run(
        "addDelivery",
        Effect.gen(function* () {
          const json = yield* encodeDelivery(delivery)
          const existing = yield* add(
            `${keys.delivery}${delivery.id}`,
            keys.deliveries,
            keys.sequence,
            delivery.id,
            json,
            finished(delivery.status) ? retainMs : 0
          )
          return existing === null ? delivery : yield* decodeDelivery(existing)
        })
      ),
    saveDelivery: (delivery) =>
      run(
        "saveDelivery",
        Effect.flatMap(encodeDelivery(delivery), (json) =>
          save(
            `${keys.delivery}${delivery.id}`,
            keys.deliveries,
            keys.sequence,
            delivery.id,
            json,
            finished(delivery.status) ? retainMs : 0
          )
        )
      ),
    delivery: (id) => run("delivery", getDelivery(id)),
    deliveries: (filter: WebhookDeliveryFilter) =>
      run(
        "deliveries",
        Effect.flatMap(
          list(
            keys.deliveries,
            keys.delivery,
            filter.limit,
            filter.subscriptionId ?? "",
            filter.status ?? "",
            filter.taskId ?? ""
          ),
          (rows) => Effect.forEach(rows, (json) => decodeDelivery(json))
        )
      )
  })
})

/**
 * `WebhookStore` on Redis, over the `Redis` service in context.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerWebhookStore = (
  options?: WebhookStoreOptions
): Layer.Layer<WebhookStore, InvalidInput, Redis.Redis> => Layer.effect(WebhookStore, makeWebhookStore(options))

// ---- scripts ------------------------------------------------------------------------------------------------

// KEYS: subscription, subscriptions by creation. ARGV: id, createdAt, JSON
const putSubscriptionScript = Redis.script(
  (keySubscription: string, keyAll: string, id: string, createdAt: number, json: string) => [
    keySubscription,
    keyAll,
    id,
    createdAt,
    json
  ],
  {
    numberOfKeys: 2,
    lua: `
redis.call('SET', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
`
  }
).withReturnType<number>()

// KEYS: subscription, subscriptions by creation. ARGV: id. Returns 1 when there was one
const removeSubscriptionScript = Redis.script(
  (keySubscription: string, keyAll: string, id: string) => [keySubscription, keyAll, id],
  {
    numberOfKeys: 2,
    lua: `
redis.call('ZREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
`
  }
).withReturnType<number>()

// KEYS: subscriptions by creation. ARGV: the subscription keys' prefix. Equal scores come in id order
const readSubscriptionsScript = Redis.script((keyAll: string, keyPrefix: string) => [keyAll, keyPrefix], {
  numberOfKeys: 1,
  lua: `
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local json = redis.call('GET', ARGV[1] .. id)
  if json then table.insert(out, json) end
end
return out
`
}).withReturnType<ReadonlyArray<string>>()

// KEYS: delivery, deliveries by sequence, sequence. ARGV: id, JSON, expiry in ms (0: none).
// Returns the stored JSON when the delivery existed (unchanged), else nil
const addDeliveryScript = Redis.script(
  (keyDelivery: string, keyAll: string, keySequence: string, id: string, json: string, expireMs: number) => [
    keyDelivery,
    keyAll,
    keySequence,
    id,
    json,
    expireMs
  ],
  {
    numberOfKeys: 3,
    lua: `
local existing = redis.call('GET', KEYS[1])
if existing then return existing end
redis.call('SET', KEYS[1], ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1])
return false
`
  }
).withReturnType<string | null>()

// KEYS and ARGV as addDelivery; replaces the delivery, keeping its place in the listing
const saveDeliveryScript = Redis.script(
  (keyDelivery: string, keyAll: string, keySequence: string, id: string, json: string, expireMs: number) => [
    keyDelivery,
    keyAll,
    keySequence,
    id,
    json,
    expireMs
  ],
  {
    numberOfKeys: 3,
    lua: `
redis.call('SET', KEYS[1], ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1])
end
return 1
`
  }
).withReturnType<number>()

// KEYS: deliveries by sequence. ARGV: the delivery keys' prefix, limit, subscription id, status, task id ('' = any).
// Newest first; ids whose delivery expired are dropped from the set on the way
const listDeliveriesScript = Redis.script(
  (keyAll: string, keyPrefix: string, limit: number, subscriptionId: string, status: string, taskId: string) => [
    keyAll,
    keyPrefix,
    limit,
    subscriptionId,
    status,
    taskId
  ],
  {
    numberOfKeys: 1,
    lua: `
local limit = tonumber(ARGV[2])
local out = {}
local start = 0
while #out < limit do
  local ids = redis.call('ZREVRANGE', KEYS[1], start, start + 199)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    local json = redis.call('GET', ARGV[1] .. id)
    if not json then
      redis.call('ZREM', KEYS[1], id)
      start = start - 1
    else
      local d = cjson.decode(json)
      if (ARGV[3] == '' or d.subscriptionId == ARGV[3]) and (ARGV[4] == '' or d.status == ARGV[4])
        and (ARGV[5] == '' or d.taskId == ARGV[5]) then
        table.insert(out, json)
        if #out >= limit then break end
      end
    end
  end
  start = start + #ids
end
return out
`
  }
).withReturnType<ReadonlyArray<string>>()
