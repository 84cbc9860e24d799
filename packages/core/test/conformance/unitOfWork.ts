/**
 * The `UnitOfWork` conformance suite: what a unit of work guarantees over the stores a runtime transition writes
 * (the task's compare-and-set, the jobs it enqueues, its ledger entries), run against any backend. The memory
 * layers, the Postgres layers and the Redis layers call this same function, as a user-written backend would.
 *
 * ```ts
 * import { suite } from "@mandate/core/conformance/unitOfWork"
 * suite("my-backend", Layer.mergeAll(MyUnitOfWork, MyTaskStore, MyQueue, MyLedgerStore))
 * ```
 *
 * The layer provides the four stores of one backend; the suite builds core's `Ledger` over its `LedgerStore`.
 * Tests isolate by names (a queue and a task of their own), so they never depend on each other's data.
 *
 * @since 0.1.0
 */
import { assert, layer } from "@effect/vitest"
import {
  Anchor,
  type EntryInput,
  type Job,
  type JobId,
  Ledger,
  type LedgerStore,
  Queue,
  type TaskRecord,
  TaskStore,
  UnitOfWork,
  VersionConflict
} from "@mandate/core"
import { Deferred, Effect, Exit, Fiber, Layer } from "effect"
import { makePlan, makeRecord } from "./taskStore.ts"

/**
 * How the suite is run against a layer. No option removes an assertion.
 *
 * @category models
 * @since 0.1.0
 */
export interface SuiteOptions {
  /** Concurrent units racing on one task (default 8). */
  readonly racers?: number | undefined
}

class Boom {
  readonly _tag = "Boom"
}

const uid = () => crypto.randomUUID().slice(0, 8)

// A task of its own and a queue of its own, stored outside any unit
const fixture = Effect.gen(function* () {
  const store = yield* TaskStore
  const record = makeRecord({ id: `task_uow_${uid()}` })
  yield* store.create(record, makePlan(record))
  return { taskId: record.task.id, queue: `uow-${uid()}` }
})

const entry = (taskId: string, n: number, extra: Partial<EntryInput> = {}): EntryInput => ({
  kind: "step.succeeded",
  taskId,
  stepId: `step_${n}`,
  payload: { n },
  ...extra
})

// The writes of one transition, in the runtime's order: jobs, the record (compare-and-set), ledger entries
const transition = (
  taskId: TaskRecord["task"]["id"],
  queueName: string,
  n: number,
  options?: { readonly expected?: number | undefined; readonly entries?: ReadonlyArray<EntryInput> | undefined }
) =>
  Effect.gen(function* () {
    const store = yield* TaskStore
    const queue = yield* Queue
    const ledger = yield* Ledger
    const record = yield* store.get(taskId)
    const jobs = yield* queue.enqueueBatch([
      { queue: queueName, payload: { taskId, n } },
      { queue: queueName, payload: { taskId, n, second: true }, idempotencyKey: `${taskId}/${n}` }
    ])
    const expected = options?.expected ?? record.task.version
    yield* store.save(
      { ...record, task: { ...record.task, version: expected + 1, reasons: [...record.task.reasons, `n=${n}`] } },
      expected
    )
    yield* ledger.appendBatch(options?.entries ?? [entry(taskId, n), entry(taskId, n, { kind: "task.completed" })])
    return jobs
  })

// What the stores hold for a task and its queue
const observe = (taskId: TaskRecord["task"]["id"], queueName: string, jobIds: ReadonlyArray<JobId> = []) =>
  Effect.gen(function* () {
    const store = yield* TaskStore
    const queue = yield* Queue
    const ledger = yield* Ledger
    const record = yield* store.get(taskId)
    const listed = (yield* queue.list({ queue: queueName, limit: 1_000 })).jobs
    const found: Array<Job> = []
    for (const jobId of jobIds) {
      const exit = yield* Effect.exit(queue.get(jobId))
      if (Exit.isSuccess(exit)) found.push(exit.value)
      else assert.strictEqual(Exit.isFailure(exit) && String(exit.cause).includes("JobNotFound"), true)
    }
    return {
      version: record.task.version,
      reasons: record.task.reasons,
      jobs: listed.length,
      found: found.length,
      entries: (yield* ledger.byTask(taskId)).length
    }
  })

const assertVerifies = Effect.gen(function* () {
  const ledger = yield* Ledger
  const verification = yield* ledger.verifyAll()
  assert.isTrue(verification.valid, JSON.stringify(verification.mismatch))
})

/**
 * Runs the `UnitOfWork` contract against `storesLayer` (one backend's unit of work, task store, queue and ledger
 * store).
 *
 * @category conformance
 * @since 0.1.0
 */
export const suite = (
  name: string,
  storesLayer: Layer.Layer<UnitOfWork | TaskStore | Queue | LedgerStore, unknown>,
  options?: SuiteOptions
): void => {
  const racers = options?.racers ?? 8
  const stores = Ledger.layer().pipe(Layer.provide(Anchor.layerNone), Layer.provideMerge(storesLayer))

  layer(stores, { timeout: "120 seconds" })(`UnitOfWork conformance (${name})`, (it) => {
    it.effect("a unit's compare-and-set, enqueued jobs and ledger entries take effect together", () =>
      Effect.gen(function* () {
        const uow = yield* UnitOfWork
        const { taskId, queue } = yield* fixture
        const jobs = yield* uow.run(transition(taskId, queue, 1))
        const seen = yield* observe(
          taskId,
          queue,
          jobs.map((j) => j.id)
        )
        assert.deepStrictEqual(seen, { version: 1, reasons: ["n=1"], jobs: 2, found: 2, entries: 2 })
        // and the next unit continues from there
        yield* uow.run(transition(taskId, queue, 2))
        assert.strictEqual((yield* observe(taskId, queue)).version, 2)
        assert.strictEqual((yield* observe(taskId, queue)).entries, 4)
        yield* assertVerifies
      })
    )

    it.effect("a compare-and-set that fails in the middle leaves none of the unit's writes", () =>
      Effect.gen(function* () {
        const uow = yield* UnitOfWork
        const ledger = yield* Ledger
        const { taskId, queue } = yield* fixture
        const size = yield* ledger.size
        let enqueued: ReadonlyArray<JobId> = []
        const error = yield* Effect.flip(
          uow.run(
            Effect.gen(function* () {
              // a ledger entry and jobs first, then a compare-and-set against a version that is not stored
              yield* ledger.append(entry(taskId, 0))
              enqueued = (yield* Effect.orDie(
                Queue.use((q) => q.enqueueBatch([{ queue, payload: { before: true } }]))
              )).map((j) => j.id)
              return yield* transition(taskId, queue, 1, { expected: 7 })
            })
          )
        )
        assert.instanceOf(error, VersionConflict)
        assert.strictEqual(enqueued.length, 1)
        assert.deepStrictEqual(yield* observe(taskId, queue, enqueued), {
          version: 0,
          reasons: [],
          jobs: 0,
          found: 0,
          entries: 0
        })
        assert.strictEqual(yield* ledger.size, size)
        yield* assertVerifies
        // the chain goes on from where it was, and the same idempotency key can be used again
        const jobs = yield* uow.run(transition(taskId, queue, 1))
        assert.deepStrictEqual(
          yield* observe(
            taskId,
            queue,
            jobs.map((j) => j.id)
          ),
          { version: 1, reasons: ["n=1"], jobs: 2, found: 2, entries: 2 }
        )
        yield* assertVerifies
      })
    )

    it.effect("a ledger append refused after the compare-and-set leaves none of the unit's writes", () =>
      Effect.gen(function* () {
        const uow = yield* UnitOfWork
        const ledger = yield* Ledger
        const { taskId, queue } = yield* fixture
        const size = yield* ledger.size
        const error = yield* Effect.flip(
          uow.run(
            transition(taskId, queue, 1, {
              // the second entry's payload is not JSON: the whole batch is refused
              entries: [entry(taskId, 1), entry(taskId, 2, { payload: { bad: Number.NaN } })]
            })
          )
        )
        assert.strictEqual((error as { _tag: string })._tag, "InvalidInput")
        assert.deepStrictEqual(yield* observe(taskId, queue), {
          version: 0,
          reasons: [],
          jobs: 0,
          found: 0,
          entries: 0
        })
        assert.strictEqual(yield* ledger.size, size)
      })
    )

    it.effect("a unit that fails after all its writes leaves none of them; so does an interrupted one", () =>
      Effect.gen(function* () {
        const uow = yield* UnitOfWork
        const { taskId, queue } = yield* fixture
        let jobIds: ReadonlyArray<JobId> = []
        const error = yield* Effect.flip(
          uow.run(
            Effect.gen(function* () {
              jobIds = (yield* transition(taskId, queue, 1)).map((j) => j.id)
              return yield* Effect.fail(new Boom())
            })
          )
        )
        assert.instanceOf(error, Boom)
        assert.deepStrictEqual(yield* observe(taskId, queue, jobIds), {
          version: 0,
          reasons: [],
          jobs: 0,
          found: 0,
          entries: 0
        })

        const written = yield* Deferred.make<ReadonlyArray<JobId>>()
        const unit = yield* Effect.forkChild(
          uow.run(
            Effect.gen(function* () {
              const jobs = yield* transition(taskId, queue, 2)
              yield* Deferred.succeed(
                written,
                jobs.map((j) => j.id)
              )
              return yield* Effect.never
            })
          )
        )
        const interruptedJobs = yield* Deferred.await(written)
        yield* Fiber.interrupt(unit)
        assert.deepStrictEqual(yield* observe(taskId, queue, interruptedJobs), {
          version: 0,
          reasons: [],
          jobs: 0,
          found: 0,
          entries: 0
        })
        yield* assertVerifies
      })
    )

    it.effect("a unit inside a unit that fails undoes only its own writes", () =>
      Effect.gen(function* () {
        const uow = yield* UnitOfWork
        const ledger = yield* Ledger
        const { taskId, queue } = yield* fixture
        const jobs = yield* uow.run(
          Effect.gen(function* () {
            const jobs = yield* transition(taskId, queue, 1)
            const inner = yield* Effect.flip(
              uow.run(
                Effect.gen(function* () {
                  yield* ledger.append(entry(taskId, 99))
                  yield* Effect.orDie(Queue.use((q) => q.enqueue({ queue, payload: { inner: true } })))
                  return yield* Effect.fail(new Boom())
                })
              )
            )
            assert.instanceOf(inner, Boom)
            // the outer unit goes on after its inner unit failed
            yield* ledger.append(entry(taskId, 3))
            return jobs
          })
        )
        assert.deepStrictEqual(
          yield* observe(
            taskId,
            queue,
            jobs.map((j) => j.id)
          ),
          { version: 1, reasons: ["n=1"], jobs: 2, found: 2, entries: 3 }
        )
        const steps: ReadonlyArray<string | undefined> = (yield* ledger.byTask(taskId)).map((e) => e.stepId)
        assert.deepStrictEqual(steps, ["step_1", "step_1", "step_3"])
        yield* assertVerifies
      })
    )

    it.effect("concurrent units on one task: each commits whole or retries, and no update is lost", () =>
      Effect.gen(function* () {
        const uow = yield* UnitOfWork
        const { taskId, queue } = yield* fixture
        // every racer reads the record, enqueues, compare-and-sets and appends; a racer that lost retries
        const racer = (n: number) =>
          uow
            .run(
              Effect.gen(function* () {
                const store = yield* TaskStore
                const record = yield* store.get(taskId)
                yield* Effect.yieldNow
                const q = yield* Queue
                yield* q.enqueue({ queue, payload: { n } })
                yield* store.save(
                  {
                    ...record,
                    task: {
                      ...record.task,
                      version: record.task.version + 1,
                      reasons: [...record.task.reasons, `${n}`]
                    }
                  },
                  record.task.version
                )
                yield* Effect.yieldNow
                yield* (yield* Ledger).append(entry(taskId, n))
              })
            )
            .pipe(Effect.retry({ while: (e) => e instanceof VersionConflict, times: 200 }))
        yield* Effect.all(
          Array.from({ length: racers }, (_, n) => racer(n)),
          { concurrency: "unbounded" }
        )
        const seen = yield* observe(taskId, queue)
        assert.strictEqual(seen.version, racers)
        assert.deepStrictEqual([...seen.reasons].sort(), Array.from({ length: racers }, (_, n) => `${n}`).sort())
        // a racer that lost and retried left no job and no entry behind
        assert.strictEqual(seen.jobs, racers)
        assert.strictEqual(seen.entries, racers)
        yield* assertVerifies
      })
    )

    it.effect("another unit never reads a unit's writes before it commits, and reads all of them after", () =>
      Effect.gen(function* () {
        const uow = yield* UnitOfWork
        const store = yield* TaskStore
        const queue = yield* Queue
        const ledger = yield* Ledger
        const { taskId, queue: queueName } = yield* fixture
        const written = yield* Deferred.make<ReadonlyArray<JobId>>()
        const release = yield* Deferred.make<void>()
        let committing = false
        const writer = yield* Effect.forkChild(
          uow.run(
            Effect.gen(function* () {
              const jobs = yield* transition(taskId, queueName, 1)
              yield* Deferred.succeed(
                written,
                jobs.map((j) => j.id)
              )
              yield* Deferred.await(release)
              committing = true
            })
          )
        )
        const jobIds = yield* Deferred.await(written)
        // A reader in a unit of its own (a backend that runs units one at a time makes it wait for the writer).
        // Each read notes whether the writer had begun to commit once the read was done: a read done before that
        // cannot have seen committed writes, so it must show the state before the unit.
        const reads: Array<{ readonly what: string; readonly seen: boolean; readonly committing: boolean }> = []
        const note = (what: string, seen: boolean) => Effect.sync(() => void reads.push({ what, seen, committing }))
        const reader = yield* Effect.forkChild(
          uow.run(
            Effect.gen(function* () {
              yield* note("task", (yield* store.get(taskId)).task.version === 1)
              yield* note("job", Exit.isSuccess(yield* Effect.exit(queue.get(jobIds[0]!))))
              yield* note("list", (yield* queue.list({ queue: queueName })).jobs.length > 0)
              yield* note("ledger", (yield* ledger.byTask(taskId)).length > 0)
            })
          )
        )
        // Give a reader that is not held up time to read before the commit, in the backend's own round trips (a
        // read of another task), not in wall-clock time; a backend that makes it wait gets the release regardless
        const probe = (yield* fixture).taskId
        for (let i = 0; i < 50 && reads.length < 4; i++) yield* store.get(probe)
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(writer)
        yield* Fiber.join(reader)
        assert.strictEqual(reads.length, 4)
        for (const read of reads) {
          if (!read.committing) assert.isFalse(read.seen, `the ${read.what} read saw a write before its commit`)
        }
        assert.deepStrictEqual(yield* observe(taskId, queueName, jobIds), {
          version: 1,
          reasons: ["n=1"],
          jobs: 2,
          found: 2,
          entries: 2
        })
      })
    )

    it.effect("afterCommit runs once the unit committed, sees its writes, and never runs for a failed unit", () =>
      Effect.gen(function* () {
        const uow = yield* UnitOfWork
        const context = yield* Effect.context<TaskStore | Queue | Ledger>()
        const { taskId, queue } = yield* fixture
        const log: Array<string> = []
        let seenAfterCommit: unknown
        let jobIds: ReadonlyArray<JobId> = []
        yield* uow.run(
          Effect.gen(function* () {
            jobIds = (yield* transition(taskId, queue, 1)).map((j) => j.id)
            yield* uow.afterCommit(
              Effect.gen(function* () {
                log.push("after commit")
                seenAfterCommit = yield* Effect.orDie(observe(taskId, queue, jobIds))
              }).pipe(Effect.provide(context))
            )
            // a failed inner unit drops what it deferred
            yield* uow
              .run(
                Effect.andThen(uow.afterCommit(Effect.sync(() => log.push("failed inner"))), Effect.fail(new Boom()))
              )
              .pipe(Effect.ignore)
            log.push("body done")
          })
        )
        assert.deepStrictEqual(log, ["body done", "after commit"])
        assert.deepStrictEqual(seenAfterCommit, { version: 1, reasons: ["n=1"], jobs: 2, found: 2, entries: 2 })

        log.length = 0
        const error = yield* Effect.flip(
          uow.run(
            Effect.gen(function* () {
              yield* uow.afterCommit(Effect.sync(() => log.push("never")))
              return yield* transition(taskId, queue, 2, { expected: 0 })
            })
          )
        )
        assert.instanceOf(error, VersionConflict)
        assert.deepStrictEqual(log, [])
        assert.strictEqual((yield* observe(taskId, queue)).version, 1)
      })
    )
  })
}
