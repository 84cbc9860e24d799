import { assert, it, layer } from "@effect/vitest"
import * as Postgres from "@mandate/adapters/postgres"
import { layerPolicyStore, layerTaskStore, layerUnitOfWork, makeTaskStore } from "@mandate/adapters/postgres"
import {
  type PolicySet,
  PolicyStore,
  type PolicyVersion,
  TaskId,
  TaskRecord,
  TaskStore,
  UnitOfWork
} from "@mandate/core"
import { makePlan, makeRecord, suite } from "@mandate/core/conformance/taskStore"
import { Context, Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { config, describePostgres, dropSchemaOnExit, TestPostgres } from "../utils/TestPostgres.ts"

class Boom {
  readonly _tag = "Boom"
}

const uniqueSet = (label: string): PolicySet.PolicySet => ({ name: `${label}-${crypto.randomUUID()}`, rules: [] })

// The server's own message, under the driver's wrappers
const rootMessage = (error: unknown): string => {
  let current = error
  while (current instanceof Error && current.cause instanceof Error) current = current.cause
  return current instanceof Error ? current.message : String(current)
}

// A task store on a second pool over the same schema: another process, as far as the server can tell
const otherProcess = Effect.gen(function* () {
  const { schema } = yield* TestPostgres
  const context = yield* Layer.build(TestPostgres.otherClient())
  return yield* makeTaskStore({ schema }).pipe(Effect.provide(context))
})

const advance = (record: TaskRecord, patch: Partial<TaskRecord["task"]>): TaskRecord => ({
  ...record,
  task: { ...record.task, ...patch, version: record.task.version + 1 }
})

describePostgres("TaskStore on Postgres", () => {
  suite(
    "postgres",
    TestPostgres.layerWith((options) => layerTaskStore(options))
  )

  layer(
    TestPostgres.layerWith((options) =>
      Layer.mergeAll(layerTaskStore(options), layerPolicyStore(options), layerUnitOfWork)
    )
  )("enlisted in the unit of work", (it) => {
    it.effect("a task write and a policy write in one unit roll back together", () =>
      Effect.gen(function* () {
        const tasks = yield* TaskStore
        const policies = yield* PolicyStore
        const uow = yield* UnitOfWork
        const other = yield* otherProcess
        const record = makeRecord()
        const plan = makePlan(record)
        const existing = makeRecord()
        yield* tasks.create(existing)
        let version: PolicyVersion | undefined
        const error = yield* Effect.flip(
          uow.run(
            Effect.gen(function* () {
              yield* tasks.create(record, plan)
              yield* tasks.save(advance(existing, { state: "completed" }), 0)
              version = (yield* policies.publish(uniqueSet("with-task"))).version
              // inside the unit its own writes are visible; outside it, none yet
              assert.deepStrictEqual(yield* tasks.get(record.task.id), record)
              assert.strictEqual((yield* Effect.flip(other.get(record.task.id)))._tag, "TaskNotFound")
              return yield* Effect.fail(new Boom())
            })
          )
        )
        assert.instanceOf(error, Boom)
        assert.strictEqual((yield* Effect.flip(tasks.get(record.task.id)))._tag, "TaskNotFound")
        assert.strictEqual((yield* Effect.flip(tasks.getPlan(plan.id)))._tag, "PlanNotFound")
        assert.deepStrictEqual(yield* tasks.get(existing.task.id), existing)
        assert.strictEqual((yield* Effect.flip(policies.get(version!)))._tag, "UnknownPolicyVersion")
      })
    )

    it.effect("and commit together, visible to other processes only after the commit", () =>
      Effect.gen(function* () {
        const tasks = yield* TaskStore
        const policies = yield* PolicyStore
        const uow = yield* UnitOfWork
        const other = yield* otherProcess
        const record = makeRecord()
        const version = yield* uow.run(
          Effect.gen(function* () {
            yield* tasks.create(record, makePlan(record))
            return (yield* policies.publish(uniqueSet("committed"))).version
          })
        )
        assert.deepStrictEqual(yield* other.get(record.task.id), record)
        assert.strictEqual((yield* policies.get(version)).version, version)
      })
    )

    it.effect("a refused create does not spoil the unit: its other writes still commit", () =>
      Effect.gen(function* () {
        const tasks = yield* TaskStore
        const uow = yield* UnitOfWork
        const requester = `req-${crypto.randomUUID()}`
        const first = makeRecord({ requester, idempotencyKey: "k" })
        yield* tasks.create(first)
        const later = makeRecord()
        const existing = yield* uow.run(
          Effect.gen(function* () {
            const refused = yield* Effect.flip(tasks.create(makeRecord({ requester, idempotencyKey: "k" })))
            yield* tasks.create(later)
            return refused._tag === "TaskExists" ? refused.existing : undefined
          })
        )
        assert.strictEqual(existing, first.task.id)
        assert.deepStrictEqual(yield* tasks.get(later.task.id), later)
      })
    )
  })

  layer(TestPostgres.layerWith((options) => layerTaskStore(options)))("several processes", (it) => {
    it.effect("concurrent creates with one idempotency key from two pools store one task", () =>
      Effect.gen(function* () {
        const here = yield* TaskStore
        const there = yield* otherProcess
        const requester = `req-${crypto.randomUUID()}`
        const results = yield* Effect.all(
          Array.from({ length: 12 }, (_, i) =>
            Effect.result((i % 2 === 0 ? here : there).create(makeRecord({ requester, idempotencyKey: "once" })))
          ),
          { concurrency: "unbounded" }
        )
        const winners = results.filter((r) => r._tag === "Success")
        assert.strictEqual(winners.length, 1)
        const stored = yield* here.findByIdempotencyKey(requester, "once")
        assert.isTrue(Option.isSome(stored))
        for (const r of results) {
          if (r._tag === "Failure") {
            assert.strictEqual(r.failure._tag, "TaskExists")
            if (r.failure._tag === "TaskExists") assert.strictEqual(r.failure.existing, Option.getOrThrow(stored))
          }
        }
      })
    )

    it.effect("of concurrent saves at one version from two pools, exactly one wins", () =>
      Effect.gen(function* () {
        const here = yield* TaskStore
        const there = yield* otherProcess
        const record = makeRecord()
        yield* here.create(record)
        const results = yield* Effect.all(
          Array.from({ length: 12 }, (_, i) =>
            Effect.result((i % 2 === 0 ? here : there).save(advance(record, { reasons: [`writer ${i}`] }), 0))
          ),
          { concurrency: "unbounded" }
        )
        const winners = results.flatMap((r, i) => (r._tag === "Success" ? [i] : []))
        assert.strictEqual(winners.length, 1)
        for (const r of results) {
          if (r._tag === "Failure") {
            assert.strictEqual(r.failure._tag, "VersionConflict")
            if (r.failure._tag === "VersionConflict") assert.strictEqual(r.failure.found, 1)
          }
        }
        assert.deepStrictEqual((yield* there.get(record.task.id)).task.reasons, [`writer ${winners[0]}`])
      })
    )
  })

  layer(TestPostgres.layerWith((options) => layerTaskStore(options)))("counts by state", (it) => {
    it.effect("stay equal to the table's own count through concurrent writers, bulk statements and deletes", () =>
      Effect.gen(function* () {
        const here = yield* TaskStore
        const there = yield* otherProcess
        const { schema } = yield* TestPostgres
        const sql = yield* SqlClient.SqlClient
        const table = sql(`${schema}.tasks`)
        const counted = Effect.map(
          sql<{ readonly state: string; readonly n: number }>`
            SELECT state, count(*)::int AS n FROM ${table} GROUP BY state`,
          (rows) => Object.fromEntries(rows.map((r) => [r.state, r.n]))
        )
        const nonZero = (counts: Readonly<Record<string, number>>) =>
          Object.fromEntries(Object.entries(counts).filter(([, n]) => n !== 0))
        const cycle = ["running", "waiting_approval", "running", "completed"] as const
        const records = Array.from({ length: 40 }, (_, i) => makeRecord({ state: i % 3 === 0 ? "pending" : "running" }))
        yield* Effect.forEach(records, (r, i) => (i % 2 === 0 ? here : there).create(r), { concurrency: 10 })
        // every task walks through states, on both pools at once
        yield* Effect.forEach(
          records,
          (r, i) =>
            Effect.forEach(cycle, (state, step) =>
              (i % 2 === 0 ? there : here).save(
                { ...r, task: { ...r.task, state, version: r.task.version + step + 1 } },
                r.task.version + step
              )
            ),
          { concurrency: 10 }
        )
        assert.deepStrictEqual(nonZero(yield* here.countByState), yield* counted)
        // statements touching many rows at once, as an operator might run
        yield* sql`UPDATE ${table} SET state = 'failed' WHERE id IN ${sql.in(records.slice(0, 15).map((r) => r.task.id))}`
        yield* sql`DELETE FROM ${table} WHERE id IN ${sql.in(records.slice(10, 20).map((r) => r.task.id))}`
        const counts = yield* here.countByState
        assert.deepStrictEqual(nonZero(counts), yield* counted)
        assert.strictEqual(counts.failed, 10)
        assert.strictEqual(counts.completed, 20)
        // a unit that rolls back leaves the counts as they were
        yield* Effect.flip(sql.withTransaction(Effect.andThen(here.create(makeRecord()), Effect.fail(new Boom()))))
        assert.deepStrictEqual(yield* here.countByState, counts)
        yield* sql`TRUNCATE ${table}`
        assert.deepStrictEqual(nonZero(yield* here.countByState), {})
      })
    )
  })

  layer(TestPostgres.layerWith((options) => layerTaskStore(options)))("stored data", (it) => {
    it.effect("keeps strings jsonb would refuse, exactly", () =>
      Effect.gen(function* () {
        const store = yield* TaskStore
        const base = makeRecord()
        const record: TaskRecord = {
          ...base,
          task: { ...base.task, params: { nul: "a\u0000b", lone: "\ud800", emoji: "🧾", big: 1e300, tiny: 5e-324 } }
        }
        yield* store.create(record)
        assert.deepStrictEqual(yield* store.get(record.task.id), record)
        // requesters and keys text columns cannot hold as such: still distinct, still found
        const requester = `a\u0000b-${crypto.randomUUID()}`
        const keys = ["\ud800", "\ud801", "\u0000", "\\u0000"]
        const created = keys.map((idempotencyKey) => makeRecord({ requester, idempotencyKey }))
        for (const r of created) yield* store.create(r)
        for (const [i, key] of keys.entries()) {
          assert.deepStrictEqual(yield* store.findByIdempotencyKey(requester, key), Option.some(created[i]!.task.id))
        }
        const again = yield* Effect.flip(store.create(makeRecord({ requester, idempotencyKey: "\ud800" })))
        assert.strictEqual(again._tag === "TaskExists" && again.existing, created[0]!.task.id)
        assert.deepStrictEqual(
          (yield* store.list({ requestedBy: requester })).tasks.map((t) => t.id),
          created.map((r) => r.task.id).reverse()
        )
        assert.strictEqual((yield* store.list({ requestedBy: "a\u0000b" })).tasks.length, 0)
      })
    )

    // JSON has no -0 (it reads back as 0) and no NaN or infinities (which the store refuses)
    const jsonNumbers = (value: unknown): { readonly finite: boolean; readonly normal: unknown } => {
      let finite = true
      const normal = JSON.parse(
        JSON.stringify(value, (_key, v: unknown) => {
          if (typeof v !== "number" || Number.isFinite(v)) return v
          finite = false
          return 0
        })
      )
      return { finite, normal }
    }

    it.effect.prop(
      "any record round-trips exactly, or is refused whole when it holds a number JSON cannot carry",
      [TaskRecord],
      ([generated]) =>
        Effect.gen(function* () {
          const store = yield* TaskStore
          // a fresh id and no idempotency key, so generated records never collide with each other
          const { idempotencyKey: _, ...task } = generated.task
          const record: TaskRecord = { ...generated, task: { ...task, id: TaskId.make(`task_${crypto.randomUUID()}`) } }
          const { finite, normal } = jsonNumbers(record)
          const created = yield* Effect.result(store.create(record))
          if (finite) {
            assert.strictEqual(created._tag, "Success")
            assert.deepStrictEqual(yield* store.get(record.task.id), normal)
          } else {
            assert.isTrue(created._tag === "Failure" && created.failure._tag === "TaskStoreError")
            assert.strictEqual((yield* Effect.flip(store.get(record.task.id)))._tag, "TaskNotFound")
          }
        }),
      { arbitrary: { runs: 100 } }
    )

    it.effect("refuses a record it could not read back, and stores nothing of it", () =>
      Effect.gen(function* () {
        const store = yield* TaskStore
        const base = makeRecord()
        const bad: TaskRecord = { ...base, task: { ...base.task, createdAt: Number.NaN } }
        const error = yield* Effect.flip(store.create(bad))
        assert.strictEqual(error._tag === "TaskStoreError" && error.operation, "create")
        assert.strictEqual((yield* Effect.flip(store.get(base.task.id)))._tag, "TaskNotFound")
        yield* store.create(base)
        const badSave = yield* Effect.flip(
          store.save({ ...advance(base, {}), steps: [{ ...base.steps[0]!, updatedAt: Number.POSITIVE_INFINITY }] }, 0)
        )
        assert.strictEqual(badSave._tag === "TaskStoreError" && badSave.operation, "save")
        assert.deepStrictEqual(yield* store.get(base.task.id), base)
      })
    )

    it.effect("the database refuses to change a stored plan", () =>
      Effect.gen(function* () {
        const store = yield* TaskStore
        const { schema } = yield* TestPostgres
        const sql = yield* SqlClient.SqlClient
        const plan = makePlan(makeRecord())
        yield* store.putPlan(plan)
        const error = yield* Effect.flip(
          sql`UPDATE ${sql(`${schema}.plans`)} SET plan = '{}'::json WHERE id = ${plan.id}`
        )
        assert.strictEqual(error.reason._tag, "ConstraintError")
        assert.include(rootMessage(error), "plans are immutable")
        assert.deepStrictEqual(yield* store.getPlan(plan.id), plan)
      })
    )

    it.effect("a plan is served from the row stored first, never from a later put that stored nothing", () =>
      Effect.gen(function* () {
        const store = yield* TaskStore
        const other = yield* otherProcess
        const plan = makePlan(makeRecord())
        const rival = { ...plan, kind: `${plan.kind}-rival` }
        yield* other.putPlan(rival)
        // The id is taken: nothing is inserted, and this process must not remember its own version
        yield* store.putPlan(plan)
        assert.deepStrictEqual(yield* store.getPlan(plan.id), rival)
        const record = makeRecord()
        const taken = makePlan(record)
        yield* other.putPlan({ ...taken, kind: `${taken.kind}-rival` })
        yield* store.create(record, taken)
        assert.strictEqual((yield* store.getPlan(taken.id)).kind, `${taken.kind}-rival`)
        // A plan it stored itself is served again after a read, unchanged
        const mine = makePlan(makeRecord())
        yield* store.putPlan(mine)
        assert.deepStrictEqual(yield* store.getPlan(mine.id), mine)
        assert.deepStrictEqual(yield* other.getPlan(mine.id), mine)
      })
    )

    it.effect("a cursor it did not hand out yields an empty page", () =>
      Effect.gen(function* () {
        const store = yield* TaskStore
        yield* store.create(makeRecord())
        for (const cursor of ["", "not a cursor", "-1", "zzzzzzzzzzzz"]) {
          const page = yield* store.list({ cursor })
          assert.deepStrictEqual(page, { tasks: [] })
        }
        assert.isAbove((yield* store.list({})).tasks.length, 0)
        assert.deepStrictEqual(yield* store.list({ states: [] }), { tasks: [] })
      })
    )

    it.effect("a bad schema name fails with InvalidInput at $.schema; a missing table with TaskStoreError", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(makeTaskStore({ schema: "Robert'); DROP TABLE tasks; --" }))
        assert.strictEqual(error._tag, "InvalidInput")
        assert.strictEqual(error.path, "$.schema")
        const missing = yield* makeTaskStore({ schema: "mandate_test_missing_schema" })
        const failed = yield* Effect.flip(missing.get(TaskId.make("task_x")))
        assert.strictEqual(failed._tag === "TaskStoreError" && failed.operation, "get")
      })
    )
  })

  // its own schema: the rows it corrupts stay out of the other tests' listings
  layer(TestPostgres.layerWith((options) => layerTaskStore(options)))("corrupted rows", (it) => {
    it.effect("a row that does not decode fails the read with TaskStoreError, not a defect", () =>
      Effect.gen(function* () {
        const store = yield* TaskStore
        const { schema } = yield* TestPostgres
        const sql = yield* SqlClient.SqlClient
        const table = sql(`${schema}.tasks`)
        const requester = `req-${crypto.randomUUID()}`
        const good = makeRecord({ requester })
        const corrupt = makeRecord({ requester })
        const shifted = makeRecord({ requester })
        for (const r of [good, corrupt, shifted]) yield* store.create(r)
        yield* sql`UPDATE ${table} SET task = '{"id": 5}'::json WHERE id = ${corrupt.task.id}`
        // the version column and the record disagree
        yield* sql`UPDATE ${table} SET version = 7 WHERE id = ${shifted.task.id}`
        const errors = yield* Effect.all([
          Effect.flip(store.get(corrupt.task.id)),
          Effect.flip(store.get(shifted.task.id)),
          Effect.flip(store.list({ requestedBy: requester }))
        ])
        assert.deepStrictEqual(
          errors.map((e) => e._tag === "TaskStoreError" && e.operation),
          ["get", "get", "list"]
        )
        assert.deepStrictEqual(yield* store.get(good.task.id), good)
        yield* sql`UPDATE ${table} SET state = 'exploded' WHERE id = ${good.task.id}`
        const counts = yield* Effect.flip(store.countByState)
        assert.strictEqual(counts._tag === "TaskStoreError" && counts.operation, "countByState")
      })
    )
  })

  it.effect("Postgres.layer provides the task store on the shared pool, enlisted in its unit of work", () =>
    Effect.gen(function* () {
      const cfg = config()
      yield* dropSchemaOnExit(cfg.schema)
      const context = yield* Layer.build(Postgres.layer(cfg))
      const tasks = Context.get(context, TaskStore)
      const uow = Context.get(context, UnitOfWork)
      const kept = makeRecord()
      const dropped = makeRecord()
      yield* uow.run(tasks.create(kept))
      yield* Effect.flip(uow.run(Effect.andThen(tasks.create(dropped), Effect.fail(new Boom()))))
      assert.deepStrictEqual(yield* tasks.get(kept.task.id), kept)
      assert.strictEqual((yield* Effect.flip(tasks.get(dropped.task.id)))._tag, "TaskNotFound")
    })
  )
})
