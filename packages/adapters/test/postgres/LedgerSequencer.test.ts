import { assert, layer } from "@effect/vitest"
import { layerLedger, Migrations, makeLedgerStore } from "@mandate/adapters/postgres"
import {
  Anchor,
  Canonical,
  type EntryInput,
  entryHashOf,
  genesisHash,
  Ledger,
  type LedgerEntry,
  type PendingEntry,
  UnitOfWork
} from "@mandate/core"
import { Context, Deferred, Effect, Exit, Fiber, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import * as PostgresLedger from "../utils/postgresLedger.ts"
import { describePostgres, dropSchemaOnExit, freshSchema, TestPostgres } from "../utils/TestPostgres.ts"

const newTask = () => `task_${crypto.randomUUID()}`
const entry = (taskId: string, i: number): EntryInput => ({
  kind: "step.succeeded",
  taskId,
  stepId: `step_${i}`,
  principal: { id: "alice", roles: ["submitter"] },
  payload: { i, memo: "a\u0000b \ud800" }
})
// What a unit stages for `entry(taskId, i)` (what `Ledger.record` would)
const pendingEntry = (taskId: string, i: number): PendingEntry => {
  const { payload, principal } = entry(taskId, i)
  return {
    kind: "step.succeeded",
    taskId,
    stepId: `step_${i}`,
    principal: Canonical.encode(principal),
    payload: Canonical.encode(payload),
    payloadHash: Canonical.hash(payload),
    storePayload: true
  }
}

// A task's entries are its recorded ones, once each, in recording order, each linked to the previous one
const assertTrail = (entries: ReadonlyArray<LedgerEntry>, count: number, label: string) => {
  assert.deepStrictEqual(
    entries.map((e) => (e.payload as { i: number }).i),
    Array.from({ length: count }, (_, i) => i),
    label
  )
  entries.forEach((e, i) => {
    assert.strictEqual(e.taskPrevHash, i === 0 ? genesisHash : entries[i - 1]!.entryHash, `${label} ${i}`)
    assert.strictEqual(entryHashOf(e), e.entryHash)
  })
}

describePostgres("Ledger sequencer on Postgres", () => {
  layer(PostgresLedger.layer, { timeout: "120 seconds" })("recorded entries", (it) => {
    const otherProcess = PostgresLedger.otherProcess

    const pendingOf = (schema: string, taskId?: string) =>
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        taskId === undefined
          ? sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM ${sql(`${schema}.ledger_pending`)}`
          : sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM ${sql(`${schema}.ledger_pending`)}
                                        WHERE task_id = ${taskId}`
      ).pipe(Effect.map(([row]) => row!.n))

    it.effect(
      "units in three processes record at once: each entry integrated once, each task's chain in recording order",
      () =>
        Effect.gen(function* () {
          const { schema } = yield* TestPostgres
          const processes = [
            { ledger: yield* Ledger, uow: yield* UnitOfWork },
            yield* otherProcess(schema),
            yield* otherProcess(schema)
          ]
          const tasks = Array.from({ length: 12 }, newTask)
          // A task's units one after the other (as the runtime's are), all tasks at once, each task on one process
          yield* Effect.forEach(
            tasks,
            (task, t) => {
              const { ledger, uow } = processes[t % 3]!
              return Effect.forEach(
                [0, 4, 8, 12, 16],
                (i) => uow.run(ledger.record([0, 1, 2, 3].map((k) => entry(task, i + k)))),
                { discard: true }
              )
            },
            { concurrency: "unbounded", discard: true }
          )
          // Any process reads every entry committed before the read, whoever integrates it
          for (const [t, task] of tasks.entries()) {
            assertTrail(yield* processes[(t + 1) % 3]!.ledger.byTask(task), 20, task)
          }
          assert.strictEqual(yield* pendingOf(schema), 0)
          const report = yield* processes[2]!.ledger.verifyAll()
          assert.isTrue(report.valid, JSON.stringify(report.mismatch))
          const all = yield* processes[0]!.ledger.entries({ limit: 100_000 })
          const mine = all.filter((e) => e.taskId !== undefined && tasks.includes(e.taskId))
          assert.strictEqual(mine.length, 12 * 20)
          assert.strictEqual(new Set(mine.map((e) => e.entryHash)).size, 12 * 20)
        })
    )

    it.effect("a unit that rolls back leaves no pending entry; one that commits is read at once", () =>
      Effect.gen(function* () {
        const { schema } = yield* TestPostgres
        const ledger = yield* Ledger
        const uow = yield* UnitOfWork
        const task = newTask()
        const failed = yield* Effect.exit(
          uow.run(Effect.andThen(ledger.record([entry(task, 0), entry(task, 1)]), Effect.fail("no")))
        )
        assert.isTrue(Exit.isFailure(failed))
        assert.strictEqual(yield* pendingOf(schema, task), 0)
        assert.deepStrictEqual(yield* ledger.byTask(task), [])
        // A unit that fails after a savepoint (a nested unit) committed: still nothing
        yield* Effect.exit(uow.run(Effect.andThen(uow.run(ledger.record([entry(task, 0)])), Effect.fail("no"))))
        assert.strictEqual(yield* pendingOf(schema, task), 0)
        yield* uow.run(ledger.record([entry(task, 0), entry(task, 1)]))
        assertTrail(yield* ledger.byTask(task), 2, task)
        const [first] = yield* ledger.byTask(task)
        const verified = yield* ledger.verify(first!.entryHash)
        assert.strictEqual(verified.proof.leafIndex, first!.seq)
      })
    )
    it.effect("a unit's entries commit with it in recording order, an inner unit's only if it succeeds", () =>
      Effect.gen(function* () {
        const { schema } = yield* TestPostgres
        const ledger = yield* Ledger
        const uow = yield* UnitOfWork
        const task = newTask()
        yield* uow.run(
          Effect.gen(function* () {
            yield* ledger.record([entry(task, 0)])
            // An inner unit that fails drops its own entries only; one that succeeds keeps them, in order
            yield* Effect.exit(uow.run(Effect.andThen(ledger.record([entry(task, 99)]), Effect.fail("no"))))
            yield* uow.run(ledger.record([entry(task, 1), entry(task, 2)]))
            yield* ledger.record([entry(task, 3)])
            // A read inside the unit sees what the unit recorded so far
            assertTrail(yield* ledger.byTask(task), 4, `${task} inside`)
            yield* ledger.record([entry(task, 4)])
          })
        )
        assertTrail(yield* ledger.byTask(task), 5, task)
        assert.strictEqual(yield* pendingOf(schema, task), 0)
        // A unit that records nothing commits nothing, and a unit that fails after recording leaves nothing
        yield* uow.run(Effect.void)
        const other = newTask()
        assert.isTrue(
          Exit.isFailure(
            yield* Effect.exit(uow.run(Effect.andThen(ledger.record([entry(other, 0)]), Effect.fail("no"))))
          )
        )
        assert.deepStrictEqual(yield* ledger.byTask(other), [])
      })
    )
  })

  // Each on a schema of its own: nothing else may integrate while the test looks at what is pending
  const isolated = Effect.gen(function* () {
    const schema = freshSchema()
    const main = yield* Layer.build(TestPostgres.otherClient())
    yield* Migrations.run({ schema }).pipe(Effect.provide(main), Effect.orDie)
    yield* dropSchemaOnExit(schema)
    const sql = Context.get(main, SqlClient.SqlClient)
    const count = (table: string) =>
      sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM ${sql(`${schema}.${table}`)}`.pipe(
        Effect.map(([row]) => row!.n),
        Effect.orDie
      )
    // A store alone, without a ledger (no sequencer): a process that stages and never integrates
    const storeOnly = Effect.gen(function* () {
      const client = yield* Layer.build(TestPostgres.otherClient())
      const { store } = yield* makeLedgerStore({ schema }).pipe(Effect.provide(client), Effect.orDie)
      return { store, pending: store.pending!, sql: Context.get(client, SqlClient.SqlClient) }
    })
    const ledgerProcess = Effect.gen(function* () {
      const client = yield* Layer.build(TestPostgres.otherClient())
      const context = yield* Layer.build(
        layerLedger({ schema, signingKey: PostgresLedger.signingKey }).pipe(
          Layer.provide(Anchor.layerMemory),
          Layer.provide(Layer.succeedContext(client))
        )
      )
      return Context.get(context, Ledger)
    })
    return { schema, sql, count, storeOnly, ledgerProcess }
  })

  layer(TestPostgres.layer, { timeout: "120 seconds" })("crashes and takeover", (it) => {
    it.effect(
      "entries a process committed and died before integrating are integrated by the next ledger, exactly once",
      () =>
        Effect.scoped(
          Effect.gen(function* () {
            const { count, storeOnly, ledgerProcess } = yield* isolated
            const tasks = [newTask(), newTask()]
            // The dying process commits its units' entries, and is gone before any sequencer ran
            yield* Effect.scoped(
              Effect.gen(function* () {
                const dying = yield* storeOnly
                for (const i of [0, 3, 6]) {
                  yield* dying.sql.withTransaction(
                    dying.pending.stage(tasks.flatMap((task) => [0, 1, 2].map((k) => pendingEntry(task, i + k))))
                  )
                }
              })
            ).pipe(Effect.orDie)
            assert.strictEqual(yield* count("ledger_pending"), 18)
            assert.strictEqual(yield* count("ledger_entries"), 0)
            // Two processes start and read at once: each sees every entry, integrated once
            const ledgers = [yield* ledgerProcess, yield* ledgerProcess]
            const trails = yield* Effect.all(
              ledgers.map((ledger, p) => ledger.byTask(tasks[p]!)),
              { concurrency: "unbounded" }
            )
            for (const [p, trail] of trails.entries()) assertTrail(trail, 9, tasks[p]!)
            assert.strictEqual(yield* count("ledger_pending"), 0)
            assert.strictEqual(yield* count("ledger_entries"), 18)
            const report = yield* ledgers[1]!.verifyAll()
            assert.isTrue(report.valid, JSON.stringify(report.mismatch))
            assert.strictEqual(report.entries, 18)
          })
        )
    )

    it.effect(
      "while a sequencer holds the turn no other integrates; when its session dies, another takes over, exactly once",
      () =>
        Effect.scoped(
          Effect.gen(function* () {
            const { sql, count, storeOnly, ledgerProcess } = yield* isolated
            const task = newTask()
            const a = yield* storeOnly
            const b = yield* storeOnly
            yield* a.pending.stage([0, 1, 2, 3, 4].map((i) => pendingEntry(task, i))).pipe(Effect.orDie)
            // Sequencer A takes the batch and hangs inside its transaction
            const pid = yield* Deferred.make<number>()
            const stuck = yield* a.pending
              .integrate(100, false, (entries) =>
                Effect.gen(function* () {
                  assert.strictEqual(entries.length, 5)
                  const [row] = yield* a.sql<{ readonly pid: number }>`SELECT pg_backend_pid() AS pid`
                  yield* Deferred.succeed(pid, row!.pid)
                  yield* a.sql`SELECT pg_sleep(60)`
                })
              )
              .pipe(Effect.forkChild)
            const holder = yield* Deferred.await(pid)
            // B finds the turn taken, and the entries still pending (A's deletion is not committed)
            const busy = yield* b.pending.integrate(100, false, () => Effect.succeed("integrated")).pipe(Effect.orDie)
            assert.isTrue(Option.isNone(busy))
            assert.strictEqual(yield* count("ledger_pending"), 5)
            // A's session dies: its transaction rolls back, the turn is free, the entries are pending again
            yield* sql`SELECT pg_terminate_backend(${holder})`.pipe(Effect.orDie)
            assert.isTrue(Exit.isFailure(yield* Fiber.await(stuck)))
            assert.strictEqual(yield* count("ledger_pending"), 5)
            const ledger = yield* ledgerProcess
            assertTrail(yield* ledger.byTask(task), 5, task)
            assert.strictEqual(yield* count("ledger_pending"), 0)
            assert.strictEqual(yield* count("ledger_entries"), 5)
            assert.isTrue((yield* ledger.verifyAll()).valid)
          })
        )
    )
  })
})
