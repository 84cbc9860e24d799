import { assert, layer } from "@effect/vitest"
import { layerTaskStore, makeTaskStore } from "@mandate/adapters/redis"
import { TaskId, type TaskRecord, TaskStore } from "@mandate/core"
import { makeRecord, suite } from "@mandate/core/conformance/taskStore"
import { Effect, Layer } from "effect"
import { Redis } from "effect/persistence"
import { describeRedis, freshPrefix, keysUnder, TestRedis } from "../utils/TestRedis.ts"

const advance = (record: TaskRecord, patch: Partial<TaskRecord["task"]>): TaskRecord => ({
  ...record,
  task: { ...record.task, ...patch, version: record.task.version + 1 }
})

describeRedis("TaskStore on Redis", () => {
  suite(
    "redis",
    TestRedis.layerWith((options) => layerTaskStore(options))
  )

  layer(TestRedis.layerWith((options) => layerTaskStore(options)))("Redis specifics", (it) => {
    it.effect("two processes racing to advance one task: exactly one wins", () =>
      Effect.gen(function* () {
        const { prefix } = yield* TestRedis
        const here = yield* TaskStore
        // a store on a second, independent connection: another runtime as far as Redis can tell
        const otherConnection = yield* Layer.build(TestRedis.otherClient())
        const there = yield* makeTaskStore({ prefix }).pipe(Effect.provide(otherConnection))
        const record = makeRecord()
        yield* here.create(record)
        const attempts = Array.from({ length: 20 }, (_, i) =>
          Effect.result((i % 2 === 0 ? here : there).save(advance(record, { reasons: [`writer ${i}`] }), 0))
        )
        const results = yield* Effect.all(attempts, { concurrency: "unbounded" })
        const winners = results.flatMap((r, i) => (r._tag === "Success" ? [i] : []))
        assert.strictEqual(winners.length, 1)
        assert.deepStrictEqual((yield* there.get(record.task.id)).task.reasons, [`writer ${winners[0]}`])
        assert.isTrue(results.every((r) => r._tag === "Success" || r.failure._tag === "VersionConflict"))
      })
    )

    it.effect("a selective listing over a long index resumes across script calls and stays exact", () =>
      Effect.gen(function* () {
        const store = yield* TaskStore
        const kind = `bulk_${crypto.randomUUID().slice(0, 8)}`
        // more tasks of one kind than a listing script examines per call, three of them completed
        const total = 2_300
        const completedAt = new Set([5, 1_200, 2_290])
        const records = Array.from({ length: total }, (_, i) =>
          makeRecord({ kind, state: completedAt.has(i) ? "completed" : "running" })
        )
        // created in order (sequence numbers follow creation), many in flight at once
        for (let i = 0; i < total; i += 100) {
          yield* Effect.forEach(records.slice(i, i + 100), (r) => store.create(r), { concurrency: 100 })
        }
        const expected = [2_290, 1_200, 5].map((i) => records[i]!.task.id)
        const pages: Array<ReadonlyArray<string>> = []
        let cursor: string | undefined
        do {
          const page = yield* store.list({ kind, states: ["completed"], limit: 2, cursor })
          pages.push(page.tasks.map((t) => t.id))
          cursor = page.nextCursor
        } while (cursor !== undefined)
        const listed = pages.flat()
        // the three sit in different batches of 100, so their creation order is known
        assert.deepStrictEqual(listed, expected)
        assert.strictEqual(pages.length, 2)
        assert.strictEqual((yield* store.list({ kind, limit: 1_000 })).tasks.length, 1_000)
      })
    )

    it.effect("a save that changes a task's kind or requester moves it between listings", () =>
      Effect.gen(function* () {
        const store = yield* TaskStore
        const before = `kind_a_${crypto.randomUUID().slice(0, 6)}`
        const after = `kind_b_${crypto.randomUUID().slice(0, 6)}`
        const record = makeRecord({ kind: before, requester: `old-${crypto.randomUUID()}` })
        yield* store.create(record)
        const moved = advance(record, {
          kind: after,
          requestedBy: { id: `new-${crypto.randomUUID()}` as never, roles: [] }
        })
        yield* store.save(moved, 0)
        assert.deepStrictEqual((yield* store.list({ kind: before })).tasks, [])
        assert.deepStrictEqual(
          (yield* store.list({ kind: after })).tasks.map((t) => t.id),
          [record.task.id]
        )
        assert.deepStrictEqual((yield* store.list({ requestedBy: record.task.requestedBy.id })).tasks, [])
        assert.deepStrictEqual(
          (yield* store.list({ requestedBy: moved.task.requestedBy.id })).tasks.map((t) => t.id),
          [record.task.id]
        )
      })
    )

    it.effect("a stored record that does not decode fails the read with TaskStoreError, not a defect", () =>
      Effect.gen(function* () {
        const store = yield* TaskStore
        const { prefix } = yield* TestRedis
        const redis = yield* Redis.Redis
        const record = makeRecord()
        yield* store.create(record)
        yield* redis.send("HSET", `${prefix}task:${record.task.id}`, "record", '{"task": 5}')
        const error = yield* Effect.flip(store.get(record.task.id))
        assert.strictEqual(error._tag === "TaskStoreError" && error.operation, "get")
        const listError = yield* Effect.flip(store.list({ requestedBy: record.task.requestedBy.id }))
        assert.strictEqual(listError._tag === "TaskStoreError" && listError.operation, "list")
      })
    )

    it.effect("a Redis failure is a TaskStoreError naming the operation", () =>
      Effect.gen(function* () {
        const store = yield* TaskStore
        const { prefix } = yield* TestRedis
        const redis = yield* Redis.Redis
        const id = TaskId.make(`task_wrongtype_${crypto.randomUUID().slice(0, 8)}`)
        // a string where the task's hash belongs: every command on it fails with WRONGTYPE
        yield* redis.send("SET", `${prefix}task:${id}`, "not a hash")
        const error = yield* Effect.flip(store.get(id))
        assert.strictEqual(error._tag === "TaskStoreError" && error.operation, "get")
        const saveError = yield* Effect.flip(store.save(makeRecord({ id }), 0))
        assert.strictEqual(saveError._tag === "TaskStoreError" && saveError.operation, "save")
      })
    )

    it.effect("every key lives under the prefix; another prefix on the same Redis sees nothing", () =>
      Effect.gen(function* () {
        const { prefix } = yield* TestRedis
        const store = yield* TaskStore
        const record = makeRecord({ idempotencyKey: "k" })
        yield* store.create(record)
        const all = yield* Redis.Redis.use((redis) => redis.send<number>("DBSIZE"))
        const mine = yield* keysUnder(prefix)
        assert.isAbove(mine.length, 0)
        assert.isAtMost(mine.length, all)
        const otherPrefix = freshPrefix()
        const other = yield* makeTaskStore({ prefix: otherPrefix })
        assert.strictEqual((yield* Effect.flip(other.get(record.task.id)))._tag, "TaskNotFound")
        assert.deepStrictEqual((yield* other.list()).tasks, [])
        yield* other.create(record) // the same id is free under the other prefix
        assert.deepStrictEqual(yield* other.get(record.task.id), record)
        const otherKeys = yield* keysUnder(otherPrefix)
        assert.isTrue(otherKeys.every((k) => k.startsWith(otherPrefix)))
        yield* Redis.Redis.use((redis) => redis.send("UNLINK", ...otherKeys))
      })
    )

    it.effect("a bad prefix fails the layer with InvalidInput at $.prefix", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(makeTaskStore({ prefix: "has space" }))
        assert.strictEqual(error._tag, "InvalidInput")
        assert.strictEqual(error.path, "$.prefix")
        const built = yield* Effect.flip(Layer.build(layerTaskStore({ prefix: "" })))
        assert.strictEqual(built._tag, "InvalidInput")
      })
    )
  })
})
