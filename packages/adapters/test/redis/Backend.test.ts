import { createHash } from "node:crypto"
import { NodeRedis } from "@effect/platform-node"
import { assert, describe, it, layer } from "@effect/vitest"
import * as RedisBackend from "@mandate/adapters/redis"
import { Agents, Queue, RateLimit, TaskStore } from "@mandate/core"
import { makeRecord } from "@mandate/core/conformance/taskStore"
import { Cause, ConfigProvider, Duration, Effect, Fiber, Layer, Redacted } from "effect"
import { Redis } from "effect/persistence"
import { TestClock } from "effect/testing"
import { config, deleteKeysOnExit, describeRedis, keysUnder, TestRedis, url } from "../utils/TestRedis.ts"

const readConfig = (env: Record<string, string>) => RedisBackend.RedisConfig.parse(ConfigProvider.fromEnvRecord(env))

describe("RedisConfig", () => {
  it.effect("defaults to the local Redis and the documented settings", () =>
    Effect.gen(function* () {
      const read = yield* readConfig({})
      assert.strictEqual(Redacted.value(read.url), "redis://127.0.0.1:6379")
      assert.strictEqual(read.prefix, "mandate:")
      assert.strictEqual(Duration.toMillis(read.connectTimeout), 10_000)
      assert.strictEqual(Duration.toMillis(read.commandTimeout), 10_000)
      assert.strictEqual(Duration.toMillis(read.reconnectMaxDelay), 2_000)
      assert.strictEqual(read.reservedConnections, 10)
      assert.strictEqual(read.clientName, "mandate")
    })
  )

  it.effect("reads REDIS_URL (kept redacted) and every override", () =>
    Effect.gen(function* () {
      const read = yield* readConfig({
        REDIS_URL: "redis://app:s3cret@cache:6380/2",
        MANDATE_REDIS_PREFIX: "{billing}:",
        MANDATE_REDIS_CONNECT_TIMEOUT: "2 seconds",
        MANDATE_REDIS_COMMAND_TIMEOUT: "750 millis",
        MANDATE_REDIS_RECONNECT_MAX_DELAY: "5 seconds",
        MANDATE_REDIS_RESERVED_CONNECTIONS: "3",
        MANDATE_REDIS_CLIENT_NAME: "billing-workers"
      })
      assert.strictEqual(Redacted.value(read.url), "redis://app:s3cret@cache:6380/2")
      assert.notInclude(String(read.url), "s3cret")
      assert.strictEqual(read.prefix, "{billing}:")
      assert.strictEqual(Duration.toMillis(read.connectTimeout), 2_000)
      assert.strictEqual(Duration.toMillis(read.commandTimeout), 750)
      assert.strictEqual(Duration.toMillis(read.reconnectMaxDelay), 5_000)
      assert.strictEqual(read.reservedConnections, 3)
      assert.strictEqual(read.clientName, "billing-workers")
    })
  )

  it.effect("refuses a bad prefix, pool size or duration, naming the variable", () =>
    Effect.gen(function* () {
      for (const [name, value] of [
        ["MANDATE_REDIS_PREFIX", "has space"],
        ["MANDATE_REDIS_RESERVED_CONNECTIONS", "0"],
        ["MANDATE_REDIS_COMMAND_TIMEOUT", "soon"]
      ] as const) {
        const error = yield* Effect.flip(readConfig({ [name]: value }))
        assert.include(String(error), name)
      }
    })
  )

  it("reconnect waits double from 50 ms up to the cap, with at most 10% jitter", () => {
    const cap = Duration.seconds(2)
    assert.deepStrictEqual(
      [0, 1, 2, 3, 4, 5, 6, 10, 100].map((n) => RedisBackend.reconnectDelay(n, cap, 0)),
      [50, 100, 200, 400, 800, 1600, 2000, 2000, 2000]
    )
    assert.strictEqual(RedisBackend.reconnectDelay(0, cap, 1), 55)
    assert.strictEqual(RedisBackend.reconnectDelay(100, cap, 0.5), 2100)
  })
})

describe("Redis client", () => {
  it.effect("an unreachable Redis fails the layer with RedisError, promptly", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Layer.build(RedisBackend.layerClient(RedisBackend.makeConfig("redis://127.0.0.1:1")))
      )
      assert.strictEqual(error._tag, "RedisError")
    }).pipe(Effect.timeout("10 seconds"))
  )
})

describeRedis("Redis backend", () => {
  it.effect("layer builds every service on one client under the configured prefix", () =>
    Effect.gen(function* () {
      const cfg = config()
      yield* deleteKeysOnExit(cfg.prefix)
      yield* Effect.gen(function* () {
        const store = yield* TaskStore
        const limits = yield* RateLimit
        const queue = yield* Queue
        const agents = yield* Agents
        const agent = yield* agents.register({ pool: "backend" })
        assert.deepStrictEqual(yield* agents.get(agent.id), agent)
        const job = yield* queue.enqueue({ queue: "backend", payload: { n: 1 } })
        assert.deepStrictEqual(yield* queue.get(job.id), job)
        const record = makeRecord()
        yield* store.create(record)
        assert.deepStrictEqual(yield* store.get(record.task.id), record)
        yield* limits.consume({ subject: "token", limit: 1, window: "1 minute" })
        const keys = yield* keysUnder(cfg.prefix)
        assert.isTrue(keys.some((k) => k.startsWith(`${cfg.prefix}task:`)))
        assert.isTrue(keys.some((k) => k.startsWith(`${cfg.prefix}ratelimit:`)))
        assert.isTrue(keys.some((k) => k.startsWith(`${cfg.prefix}job:`)))
        assert.isTrue(keys.some((k) => k.startsWith(`${cfg.prefix}agent:`)))
        // every connection carries the configured name
        const clients = yield* Redis.Redis.use((redis) => redis.send<string>("CLIENT", "INFO"))
        assert.include(clients, `name=${cfg.clientName}`)
      }).pipe(Effect.provide(RedisBackend.layer(cfg)))
    })
  )

  it.effect("layerConfig reads the environment", () =>
    Effect.gen(function* () {
      const prefix = config().prefix
      yield* deleteKeysOnExit(prefix)
      const env = ConfigProvider.layer(ConfigProvider.fromEnvRecord({ REDIS_URL: url, MANDATE_REDIS_PREFIX: prefix }))
      yield* Effect.gen(function* () {
        yield* (yield* TaskStore).create(makeRecord())
        assert.isAbove((yield* keysUnder(prefix)).length, 0)
      }).pipe(Effect.provide(RedisBackend.layerConfig().pipe(Layer.provide(env))))
    })
  )

  layer(RedisBackend.layerClient(config({ commandTimeout: Duration.millis(200) })))("command timeout", (it) => {
    it.effect("a command without a reply in time fails with RedisError, on the real clock", () =>
      Effect.gen(function* () {
        const redis = yield* Redis.Redis
        // BLPOP holds the shared connection for 600 ms: longer than the 200 ms allowed. The test runs
        // under TestClock, which never moves here: the deadline keeps real time.
        const started = Date.now()
        const error = yield* Effect.flip(redis.send("BLPOP", `mandate_test:never:${crypto.randomUUID()}`, "0.6"))
        const waited = Date.now() - started
        assert.strictEqual(error._tag, "RedisError")
        // a timeout, not BLPOP's own empty reply at 600 ms: the deadline fired first (on a loaded machine it
        // may fire late, so only its lower bound is checked)
        assert.isTrue(Cause.isTimeoutError(error.cause))
        assert.isAtLeast(waited, 150)
        // the abandoned BLPOP still holds the connection: wait (really) until Redis has answered it
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 600)))
        const ping = yield* redis.send("PING").pipe(Effect.forkChild)
        yield* TestClock.adjust("1 hour") // moving the test clock times out nothing in flight
        assert.strictEqual(yield* Fiber.join(ping), "PONG")
      })
    )
  })

  layer(RedisBackend.layerClient(config()))("scripts", (it) => {
    it.effect("a script Redis has not cached runs anyway, and is cached after its first run", () =>
      Effect.gen(function* () {
        const redis = yield* Redis.Redis
        // a source no one has loaded: its SHA-1 is unknown to the server until the first run
        const lua = `-- ${crypto.randomUUID()}\nreturn tonumber(ARGV[1]) + redis.call('EXISTS', KEYS[1])`
        const sha = createHash("sha1").update(lua).digest("hex")
        const script = Redis.script((key: string, n: number) => [key, n], {
          lua,
          numberOfKeys: 1
        }).withReturnType<number>()
        assert.deepStrictEqual(yield* redis.send("SCRIPT", "EXISTS", sha), [0])
        assert.strictEqual(yield* redis.eval(script)(`mandate_test:none:${crypto.randomUUID()}`, 41), 41)
        assert.deepStrictEqual(yield* redis.send("SCRIPT", "EXISTS", sha), [1])
        assert.strictEqual(yield* redis.eval(script)(`mandate_test:none:${crypto.randomUUID()}`, 1), 1)
        const failing = Redis.script(() => [], { lua: "return redis.call('NOPE')", numberOfKeys: 0 })
        assert.strictEqual((yield* Effect.flip(redis.eval(failing)()))._tag, "RedisError")
      })
    )
  })

  layer(RedisBackend.layerClient(config()))("reconnect", (it) => {
    it.effect("a killed connection is re-opened and commands go on", () =>
      Effect.gen(function* () {
        const redis = yield* Redis.Redis
        const node = yield* NodeRedis.NodeRedis
        const id = yield* redis.send<number>("CLIENT", "ID")
        const killer = yield* Layer.build(TestRedis.otherClient())
        const killed = yield* Redis.Redis.use((other) => other.send<number>("CLIENT", "KILL", "ID", String(id))).pipe(
          Effect.provide(killer)
        )
        assert.strictEqual(killed, 1)
        // commands sent while the client reconnects wait for it, then run
        const replies = yield* Effect.all(
          Array.from({ length: 5 }, () => redis.send<string>("PING")),
          { concurrency: "unbounded" }
        )
        assert.deepStrictEqual(replies, ["PONG", "PONG", "PONG", "PONG", "PONG"])
        assert.notStrictEqual(yield* redis.send<number>("CLIENT", "ID"), id)
        assert.isTrue(node.client.isReady)
      })
    )
  })
})
