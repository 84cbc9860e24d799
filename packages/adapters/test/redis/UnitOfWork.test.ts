import { assert, layer } from "@effect/vitest"
import { layerLedgerStore, layerQueue, layerTaskStore, layerUnitOfWork } from "@mandate/adapters/redis"
import { AgentId, Anchor, Ledger, Queue, TaskStore, UnitOfWork } from "@mandate/core"
import { makePlan, makeRecord } from "@mandate/core/conformance/taskStore"
import { suite } from "@mandate/core/conformance/unitOfWork"
import { Context, Deferred, Effect, Exit, Fiber, Layer } from "effect"
import { describeRedis, TestRedis } from "../utils/TestRedis.ts"

const stores = TestRedis.layerWith((options) =>
  Layer.mergeAll(layerUnitOfWork, layerTaskStore(options), layerQueue(options), layerLedgerStore(options))
)

describeRedis("UnitOfWork on Redis", () => {
  suite("redis", stores)

  layer(Ledger.layer().pipe(Layer.provide(Anchor.layerNone), Layer.provideMerge(stores)), { timeout: "120 seconds" })(
    "Redis specifics",
    (it) => {
      it.effect("a plain read (another client) sees nothing of a unit until its commit script ran", () =>
        Effect.gen(function* () {
          const uow = yield* UnitOfWork
          const store = yield* TaskStore
          const queue = yield* Queue
          const ledger = yield* Ledger
          const record = makeRecord()
          yield* store.create(record, makePlan(record))
          const written = yield* Deferred.make<string>()
          const release = yield* Deferred.make<void>()
          const unit = yield* Effect.forkChild(
            uow.run(
              Effect.gen(function* () {
                const job = yield* queue.enqueue({ queue: `plain-${record.task.id}`, payload: 1 })
                yield* store.save({ ...record, task: { ...record.task, version: 1 } }, 0)
                yield* ledger.append({ kind: "step.succeeded", taskId: record.task.id, payload: 1 })
                yield* Deferred.succeed(written, job.id)
                yield* Deferred.await(release)
              })
            )
          )
          const jobId = yield* Deferred.await(written)
          // outside any unit: what every other client reads
          assert.strictEqual((yield* store.get(record.task.id)).task.version, 0)
          assert.isTrue(Exit.isFailure(yield* Effect.exit(queue.get(jobId as never))))
          assert.strictEqual((yield* ledger.byTask(record.task.id)).length, 0)
          yield* Deferred.succeed(release, undefined)
          yield* Fiber.join(unit)
          assert.strictEqual((yield* store.get(record.task.id)).task.version, 1)
          assert.isTrue(Exit.isSuccess(yield* Effect.exit(queue.get(jobId as never))))
          assert.strictEqual((yield* ledger.byTask(record.task.id)).length, 1)
        })
      )

      it.effect(
        "a hand-off in a unit: claimed at commit, nothing from a failed unit, queued behind a higher priority",
        () =>
          Effect.gen(function* () {
            const uow = yield* UnitOfWork
            const store = yield* TaskStore
            const queue = yield* Queue
            const enqueueClaimed = queue.enqueueClaimed!
            const record = makeRecord()
            yield* store.create(record, makePlan(record))
            const name = `handoff-${record.task.id}`
            const worker = AgentId.make("worker-1")
            const handOff = { workerId: worker, leaseMs: 30_000 }

            // committed with the unit, as handed back: leased to the worker, hidden from other claims
            const handed = yield* uow.run(enqueueClaimed({ queue: name, payload: 1 }, handOff))
            assert.strictEqual(handed.state, "claimed")
            assert.strictEqual(handed.lease?.workerId, worker)
            assert.deepStrictEqual(yield* queue.get(handed.id), handed)
            assert.deepStrictEqual(yield* queue.claim({ queues: [name], workerId: AgentId.make("worker-2") }), [])
            assert.strictEqual((yield* queue.complete(handed.id, worker, "done")).state, "completed")

            // a unit that loses its compare-and-set hands nothing
            const conflict = yield* Effect.flip(
              uow.run(
                Effect.gen(function* () {
                  yield* enqueueClaimed({ queue: name, payload: 2 }, handOff)
                  yield* store.save({ ...record, task: { ...record.task, version: 1 } }, 5)
                })
              )
            )
            assert.strictEqual(conflict._tag, "VersionConflict")
            assert.deepStrictEqual(
              (yield* queue.list({ queue: name })).jobs.map((job) => job.id),
              [handed.id]
            )

            // a job of a higher priority enqueued by another client between the unit's check and its commit: the
            // unit runs again, and then enqueues the job as usual, behind it
            const checked = yield* Deferred.make<void>()
            const release = yield* Deferred.make<void>()
            const unit = yield* Effect.forkChild(
              uow.run(
                Effect.gen(function* () {
                  const job = yield* enqueueClaimed({ queue: name, payload: 3 }, handOff)
                  yield* Deferred.succeed(checked, undefined)
                  yield* Deferred.await(release)
                  return job
                })
              )
            )
            yield* Deferred.await(checked)
            const urgent = yield* queue.enqueue({ queue: name, payload: "urgent", priority: "high" })
            yield* Deferred.succeed(release, undefined)
            const queued = yield* Fiber.join(unit)
            assert.strictEqual(queued.state, "queued")
            assert.isUndefined(queued.lease)
            assert.deepStrictEqual(yield* queue.get(queued.id), queued)
            const claimed = yield* queue.claim({ queues: [name], workerId: worker, max: 2 })
            assert.deepStrictEqual(
              claimed.map((job) => job.id),
              [urgent.id, queued.id]
            )
          })
      )

      it.effect(
        "a job settled in a unit: the result handed back is the job as stored, and a failed unit settles nothing",
        () =>
          Effect.gen(function* () {
            const uow = yield* UnitOfWork
            const store = yield* TaskStore
            const queue = yield* Queue
            const record = makeRecord()
            yield* store.create(record, makePlan(record))
            const name = `settle-${record.task.id}`
            const worker = AgentId.make("worker-1")
            const [a, b, c, d] = yield* queue.enqueueBatch(
              [1, 2, 3, 4].map((n) => ({ queue: name, payload: { n }, maxAttempts: n === 3 ? 1 : 3 }))
            )
            const claimed = yield* queue.claim({ queues: [name], workerId: worker, max: 3 })
            assert.strictEqual(claimed.length, 3)

            // a unit that completes a job, then loses its compare-and-set: the job stays leased, as it was
            const conflict = yield* Effect.flip(
              uow.run(
                Effect.gen(function* () {
                  yield* queue.complete(a!.id, worker, { ok: true })
                  yield* store.save({ ...record, task: { ...record.task, version: 1 } }, 5)
                })
              )
            )
            assert.strictEqual(conflict._tag, "VersionConflict")
            assert.strictEqual((yield* queue.get(a!.id)).state, "claimed")

            // complete, fail (retried), fail (dead-lettered) and cancel in one unit, with the task's save
            const results = yield* uow.run(
              Effect.gen(function* () {
                const completed = yield* queue.complete(a!.id, worker, { ok: true })
                const retried = yield* queue.fail(b!.id, worker, "flaky")
                const dead = yield* queue.fail(c!.id, worker, "broken", { retryable: false })
                const cancelled = yield* queue.cancel(d!.id)
                yield* store.save({ ...record, task: { ...record.task, version: 1 } }, 0)
                return [completed, retried, dead, cancelled] as const
              })
            )
            assert.deepStrictEqual(
              results.map((j) => j.state),
              ["completed", "failed", "dead_lettered", "cancelled"]
            )
            for (const job of results) assert.deepStrictEqual(yield* queue.get(job.id), job)
            assert.strictEqual((yield* store.get(record.task.id)).task.version, 1)

            // a lease another worker holds is refused at once, inside the unit
            const lost = yield* Effect.flip(uow.run(queue.complete(b!.id, AgentId.make("worker-2"), null)))
            assert.strictEqual(lost._tag, "LeaseLost")
          })
      )

      it.effect("units of two processes racing on one task and the ledger: every one commits whole, once", () =>
        Effect.gen(function* () {
          const { prefix } = yield* TestRedis
          const here = {
            uow: yield* UnitOfWork,
            store: yield* TaskStore,
            ledger: yield* Ledger
          }
          // another process: its own connection, unit of work, stores and ledger over the same prefix
          const context = yield* Layer.build(
            Layer.mergeAll(
              layerUnitOfWork,
              layerTaskStore({ prefix }),
              Ledger.layer().pipe(Layer.provide(layerLedgerStore({ prefix })), Layer.provide(Anchor.layerNone))
            ).pipe(Layer.provide(TestRedis.otherClient()))
          )
          const there = {
            uow: Context.get(context, UnitOfWork),
            store: Context.get(context, TaskStore),
            ledger: Context.get(context, Ledger)
          }
          const record = makeRecord()
          yield* here.store.create(record, makePlan(record))
          const bump = (side: typeof here, n: number) =>
            side.uow
              .run(
                Effect.gen(function* () {
                  const current = yield* side.store.get(record.task.id)
                  yield* side.store.save(
                    {
                      ...current,
                      task: {
                        ...current.task,
                        version: current.task.version + 1,
                        reasons: [...current.task.reasons, `${n}`]
                      }
                    },
                    current.task.version
                  )
                  yield* side.ledger.append({ kind: "step.succeeded", taskId: record.task.id, payload: { n } })
                })
              )
              .pipe(Effect.retry({ while: (e) => e._tag === "VersionConflict", times: 500 }))
          const total = 40
          yield* Effect.all(
            Array.from({ length: total }, (_, n) => bump(n % 2 === 0 ? here : there, n)),
            { concurrency: "unbounded" }
          )
          const final = yield* here.store.get(record.task.id)
          assert.strictEqual(final.task.version, total)
          assert.strictEqual(new Set(final.task.reasons).size, total)
          const entries = yield* here.ledger.byTask(record.task.id)
          assert.strictEqual(entries.length, total)
          const verification = yield* here.ledger.verifyAll()
          assert.isTrue(verification.valid, JSON.stringify(verification.mismatch))
          // sequence numbers without gaps
          const size = yield* here.ledger.size
          const all = yield* here.ledger.entries({ from: 0, limit: 1_000 })
          assert.deepStrictEqual(
            all.map((e) => e.seq),
            Array.from({ length: size }, (_, i) => i)
          )
        })
      )
    }
  )
})
