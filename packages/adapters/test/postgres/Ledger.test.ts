import { assert, layer } from "@effect/vitest"
import * as Postgres from "@mandate/adapters/postgres"
import { layerLedgerStoreWithTamper, layerUnitOfWork, makeLedgerStore } from "@mandate/adapters/postgres"
import { Anchor, type EntryInput, Ledger, LedgerStore, UnitOfWork } from "@mandate/core"
import { suite } from "@mandate/core/conformance/ledger"
import { Context, Deferred, Effect, Fiber, Layer } from "effect"
import { SqlClient } from "effect/sql"
import * as PostgresLedger from "../utils/postgresLedger.ts"
import { config, describePostgres, dropSchemaOnExit, TestPostgres } from "../utils/TestPostgres.ts"

const entry = (taskId: string, i: number): EntryInput => ({
  kind: "step.succeeded",
  taskId,
  stepId: `step_${i}`,
  payload: { i, memo: "a\u0000b \ud800" }
})
const newTask = () => `task_${crypto.randomUUID()}`

// The server's own message, under the driver's wrappers
const rootMessage = (error: unknown): string => {
  let current = error
  while (current instanceof Error && current.cause instanceof Error) current = current.cause
  return current instanceof Error ? current.message : String(current)
}

class Boom {
  readonly _tag = "Boom"
}

describePostgres("Ledger on Postgres", () => {
  suite(
    "postgres",
    TestPostgres.layerWith((options) =>
      Ledger.layer().pipe(
        Layer.provideMerge(layerLedgerStoreWithTamper(options)),
        Layer.provide(Anchor.layerMemory),
        Layer.merge(layerUnitOfWork)
      )
    )
  )

  layer(PostgresLedger.layer, { timeout: "120 seconds" })("stored data", (it) => {
    // Another process: its own pool, its own ledger instance, the same schema and key
    const otherProcess = Effect.flatMap(TestPostgres, ({ schema }) =>
      Effect.map(PostgresLedger.otherProcess(schema), (other) => other.ledger)
    )

    it.effect("the database refuses to change or delete entries, nodes and checkpoints", () =>
      Effect.gen(function* () {
        const ledger = yield* Ledger
        const { schema } = yield* TestPostgres
        const sql = yield* SqlClient.SqlClient
        const receipt = yield* ledger.append(entry(newTask(), 1))
        const anchored = yield* ledger.anchor
        const table = (name: string) => sql(`${schema}.${name}`)
        const refusals = yield* Effect.all([
          Effect.flip(sql`UPDATE ${table("ledger_entries")} SET kind = 'task.failed' WHERE pos = ${receipt.seq}`),
          Effect.flip(sql`DELETE FROM ${table("ledger_entries")} WHERE pos = ${receipt.seq}`),
          Effect.flip(sql`TRUNCATE ${table("ledger_entries")}`),
          Effect.flip(sql`UPDATE ${table("ledger_nodes")} SET hash = hash WHERE level = 0 AND idx = ${receipt.seq}`),
          Effect.flip(sql`DELETE FROM ${table("ledger_nodes")}`),
          Effect.flip(sql`UPDATE ${table("ledger_checkpoints")} SET root = 'x'`),
          Effect.flip(sql`DELETE FROM ${table("ledger_checkpoints")}`),
          Effect.flip(sql`DELETE FROM ${table("ledger_anchors")}`),
          Effect.flip(sql`TRUNCATE ${table("ledger_anchors")}`)
        ])
        for (const error of refusals) {
          assert.strictEqual(error.reason._tag, "ConstraintError")
          assert.include(rootMessage(error), "the ledger is append-only")
        }
        assert.isTrue((yield* ledger.verifyAll()).valid)
        assert.strictEqual(
          (yield* ledger.checkpoints).find((r) => r.checkpoint.size === anchored.checkpoint.size)?.anchor?.txId,
          anchored.anchor?.txId
        )
      })
    )

    it.effect("three processes appending at once keep one chain and one tree", () =>
      Effect.gen(function* () {
        const ledgers = [yield* Ledger, yield* otherProcess, yield* otherProcess]
        const task = newTask()
        const results = yield* Effect.forEach(
          Array.from({ length: 30 }, (_, f) => f),
          (f) =>
            f % 2 === 0
              ? ledgers[f % 3]!.appendBatch([0, 1].map((i) => entry(task, f * 10 + i)))
              : Effect.map(ledgers[f % 3]!.append(entry(task, f * 10)), (r) => [r]),
          { concurrency: "unbounded" }
        )
        const receipts = results.flat().sort((a, b) => a.seq - b.seq)
        for (let i = 1; i < receipts.length; i++) {
          assert.strictEqual(receipts[i]!.seq, receipts[i - 1]!.seq + 1)
          assert.strictEqual(receipts[i]!.prevHash, receipts[i - 1]!.entryHash)
        }
        // every process computes the same tree over the stored nodes
        const roots = yield* Effect.all(ledgers.map((l) => l.root()))
        assert.strictEqual(new Set(roots).size, 1)
        const report = yield* ledgers[1]!.verifyAll()
        assert.isTrue(report.valid, JSON.stringify(report.mismatch))
        // a checkpoint signed by one process verifies in another (same key)
        yield* ledgers[2]!.verifyCheckpoint(yield* ledgers[0]!.checkpoint)
      })
    )

    it.effect(
      "an appender whose process saw a head that moved on (another process, a rolled-back unit) continues the stored chain",
      () =>
        Effect.gen(function* () {
          const ledger = yield* Ledger
          const other = yield* otherProcess
          const uow = yield* UnitOfWork
          const task = newTask()
          yield* ledger.append(entry(task, 1))
          // the other process appends to the same task: this process' head and the task's last entry are stale
          const theirs = yield* other.append(entry(task, 2))
          const alone = yield* ledger.append(entry(task, 3))
          assert.strictEqual(alone.prevHash, theirs.entryHash)
          assert.strictEqual(alone.seq, theirs.seq + 1)
          const theirsAgain = yield* other.append(entry(task, 4))
          const inUnit = yield* uow.run(ledger.appendBatch([5, 6].map((i) => entry(task, i))))
          assert.strictEqual(inUnit[0]!.prevHash, theirsAgain.entryHash)
          // a unit of this process writes and rolls back while another of its fibers appends to the same task
          const written = yield* Deferred.make<void>()
          const release = yield* Deferred.make<void>()
          const unit = yield* Effect.forkChild(
            Effect.flip(
              uow.run(
                ledger
                  .append(entry(task, 7))
                  .pipe(
                    Effect.andThen(Deferred.succeed(written, undefined)),
                    Effect.andThen(Deferred.await(release)),
                    Effect.andThen(Effect.fail(new Boom()))
                  )
              )
            )
          )
          yield* Deferred.await(written)
          const waiting = yield* Effect.forkChild(ledger.append(entry(task, 8)))
          yield* Deferred.succeed(release, undefined)
          assert.instanceOf(yield* Fiber.join(unit), Boom)
          const after = yield* Fiber.join(waiting)
          assert.strictEqual(after.prevHash, inUnit[1]!.entryHash)
          assert.strictEqual(after.seq, inUnit[1]!.seq + 1)
          const chain = (yield* ledger.byTask(task)).map((e) => e.entryHash)
          assert.deepStrictEqual(chain.slice(-2), [inUnit[1]!.entryHash, after.entryHash])
          assert.strictEqual((yield* other.byTask(task)).at(-1)?.taskPrevHash, inUnit[1]!.entryHash)
          assert.isTrue((yield* other.verifyAll({ from: alone.seq - 2 })).valid)
        })
    )

    it.effect("many units of one process append at once, some twice, beside another process: one chain", () =>
      Effect.gen(function* () {
        const ledger = yield* Ledger
        const other = yield* otherProcess
        const uow = yield* UnitOfWork
        // A unit that appended holds the head row to COMMIT; its second append must not wait behind the units
        // that take turns for the row (they wait for that COMMIT): this would hang, not fail
        const results = yield* Effect.forEach(
          Array.from({ length: 24 }, (_, f) => f),
          (f) => {
            const task = newTask()
            return f % 4 === 3
              ? Effect.map(other.append(entry(task, 1)), (r) => [r])
              : uow.run(
                  f % 2 === 0
                    ? Effect.all([ledger.append(entry(task, 1)), ledger.append(entry(task, 2))])
                    : Effect.map(ledger.append(entry(task, 1)), (r) => [r])
                )
          },
          { concurrency: "unbounded" }
        )
        const receipts = results.flat().sort((a, b) => a.seq - b.seq)
        for (let i = 1; i < receipts.length; i++) {
          assert.strictEqual(receipts[i]!.seq, receipts[i - 1]!.seq + 1)
          assert.strictEqual(receipts[i]!.prevHash, receipts[i - 1]!.entryHash)
        }
        assert.isTrue((yield* other.verifyAll({ from: receipts[0]!.seq })).valid)
      })
    )

    it.effect("a unit that rolls back takes its entries with it; the next append continues the committed chain", () =>
      Effect.gen(function* () {
        const ledger = yield* Ledger
        const uow = yield* UnitOfWork
        const task = newTask()
        const kept = yield* ledger.append(entry(task, 1))
        const failed = yield* Effect.flip(
          uow.run(Effect.andThen(ledger.appendBatch([2, 3].map((i) => entry(task, i))), Effect.fail(new Boom())))
        )
        assert.instanceOf(failed, Boom)
        assert.deepStrictEqual(
          (yield* ledger.byTask(task)).map((e) => e.entryHash),
          [kept.entryHash]
        )
        const next = yield* ledger.append(entry(task, 4))
        assert.strictEqual(next.prevHash, kept.entryHash)
        assert.strictEqual(next.seq, kept.seq + 1)
        assert.isTrue((yield* ledger.verifyAll({ from: kept.seq })).valid)
      })
    )

    it.effect("a write out of place is refused whole, and keeps what is stored", () =>
      Effect.gen(function* () {
        const ledger = yield* Ledger
        const store = yield* LedgerStore
        const receipt = yield* ledger.append(entry(newTask(), 1))
        const stored = yield* ledger.get(receipt.entryHash)
        // the same seq again, and a seq past the end
        for (const seq of [receipt.seq, receipt.seq + 2]) {
          const error = yield* Effect.flip(
            store.withAppendLock(
              store.write([{ ...stored, seq }], [{ level: 0, index: seq, hash: new Uint8Array(32) }])
            )
          )
          assert.strictEqual(error._tag, "LedgerStoreError")
        }
        assert.strictEqual(yield* ledger.size, receipt.seq + 1)
        assert.isTrue((yield* ledger.verifyAll({ from: receipt.seq })).valid)
      })
    )

    it.effect("a restarted ledger reads the same tree and verifies the checkpoints signed before", () =>
      Effect.gen(function* () {
        const ledger = yield* Ledger
        yield* ledger.appendBatch([1, 2, 3].map((i) => entry(newTask(), i)))
        const checkpoint = yield* ledger.checkpoint
        const restarted = yield* otherProcess
        assert.strictEqual(yield* restarted.root(checkpoint.size), checkpoint.root)
        yield* restarted.verifyCheckpoint(checkpoint)
        const report = yield* restarted.verifyAll()
        assert.isTrue(report.valid, JSON.stringify(report.mismatch))
        assert.isAtLeast(report.checkpoints, 1)
      })
    )

    it.effect("a stored anchor receipt that does not decode fails the read with LedgerStoreError", () =>
      Effect.gen(function* () {
        const ledger = yield* Ledger
        const { schema } = yield* TestPostgres
        const sql = yield* SqlClient.SqlClient
        yield* ledger.append(entry(newTask(), 1))
        const anchored = yield* ledger.anchor
        const anchors = sql(`${schema}.ledger_anchors`)
        const size = anchored.checkpoint.size
        const original = JSON.stringify(anchored.anchor)
        yield* sql`UPDATE ${anchors} SET receipt = '{"chain": 5}'::json WHERE size = ${size}`
        const error = yield* Effect.flip(ledger.checkpoints)
        yield* sql`UPDATE ${anchors} SET receipt = ${original}::json WHERE size = ${size}`
        assert.strictEqual(error._tag, "LedgerStoreError")
        assert.strictEqual(
          (yield* ledger.checkpoints).find((r) => r.checkpoint.size === size)?.anchor?.txId,
          anchored.anchor?.txId
        )
      })
    )

    it.effect("a bad schema name fails with InvalidInput at $.schema", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(makeLedgerStore({ schema: "no-dashes" }))
        assert.strictEqual(error._tag, "InvalidInput")
        assert.strictEqual(error.path, "$.schema")
      })
    )
  })

  layer(TestPostgres.layer)("Postgres.layer", (it) => {
    it.effect("provides the ledger store on the shared pool, enlisted in its unit of work", () =>
      Effect.gen(function* () {
        const cfg = config()
        yield* dropSchemaOnExit(cfg.schema)
        const backend = yield* Layer.build(Postgres.layer(cfg))
        const context = yield* Layer.build(
          Ledger.layer({ signingKey: PostgresLedger.signingKey }).pipe(
            Layer.provide(Anchor.layerMemory),
            Layer.provide(Layer.succeedContext(backend))
          )
        )
        const ledger = Context.get(context, Ledger)
        const uow = Context.get(backend, UnitOfWork)
        const task = newTask()
        yield* uow.run(ledger.append(entry(task, 1)))
        yield* Effect.flip(uow.run(Effect.andThen(ledger.append(entry(task, 2)), Effect.fail(new Boom()))))
        assert.strictEqual((yield* ledger.byTask(task)).length, 1)
        assert.isTrue((yield* ledger.verifyAll()).valid)
      })
    )
  })
})
