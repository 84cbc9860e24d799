import { assert, layer } from "@effect/vitest"
import * as Postgres from "@mandate/adapters/postgres"
import { channelOf, layerQueue, layerTaskStore, layerUnitOfWork, makeQueue } from "@mandate/adapters/postgres"
import { AgentId, type Job, Queue, TaskStore, UnitOfWork } from "@mandate/core"
import { suite } from "@mandate/core/conformance/queue"
import { makeRecord } from "@mandate/core/conformance/taskStore"
import { Context, Deferred, Effect, Fiber, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import { config, describePostgres, dropSchemaOnExit, freshSchema, TestPostgres } from "../utils/TestPostgres.ts"

// The database keeps the time: real waits, short durations
const backoff = { baseMs: 100, capMs: 5_000 }
const requeueIntervalMs = 200

class Boom {
  readonly _tag = "Boom"
}

const uid = () => crypto.randomUUID()
const queueName = (label: string) => `${label}-${uid()}`
const worker = (label: string) => AgentId.make(`${label}-${uid()}`)

// A queue on a second pool over the same schema: another process, as far as the server can tell
const otherProcess = Effect.gen(function* () {
  const { schema } = yield* TestPostgres
  const context = yield* Layer.build(TestPostgres.otherClient())
  return yield* makeQueue({ schema, backoff, requeueIntervalMs }).pipe(Effect.provide(context))
})

// Whether a forked wait has returned, after giving a notification time to arrive
const wokeWithin = (fiber: Fiber.Fiber<void>, ms: number) =>
  Effect.andThen(
    Effect.sleep(ms),
    Effect.sync(() => fiber.pollUnsafe() !== undefined)
  )

const awaitWake = (fiber: Fiber.Fiber<void>) => Fiber.join(fiber).pipe(Effect.timeout("10 seconds"))

describePostgres("Queue on Postgres", () => {
  suite(
    "postgres",
    TestPostgres.layerWith((options) => layerQueue({ ...options, backoff, requeueIntervalMs })),
    { testClock: false, backoff, requeueIntervalMs }
  )

  layer(
    TestPostgres.layerWith((options) =>
      Layer.mergeAll(layerQueue({ ...options, backoff, requeueIntervalMs }), layerTaskStore(options), layerUnitOfWork)
    ),
    { excludeTestServices: true, timeout: "60 seconds" }
  )("in a unit of work", (it) => {
    it.effect("an enqueue wakes workers only when its unit commits, and never when it rolls back", () =>
      Effect.gen(function* () {
        const queue = yield* Queue
        const uow = yield* UnitOfWork
        const q = queueName("commit")
        const next = yield* queue.wakeups({ queues: [q] })
        const waiting = yield* Effect.forkChild(next)
        const written = yield* Deferred.make<Job>()
        const release = yield* Deferred.make<void>()
        const unit = yield* Effect.forkChild(
          uow.run(
            Effect.gen(function* () {
              yield* Deferred.succeed(written, yield* queue.enqueue({ queue: q, payload: "in a unit" }))
              yield* Deferred.await(release)
            })
          )
        )
        const job = yield* Deferred.await(written)
        assert.isFalse(yield* wokeWithin(waiting, 300), "woken before the commit")
        assert.deepStrictEqual(yield* queue.claim({ workerId: worker("outsider"), queues: [q] }), [])
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(unit)
        yield* awaitWake(waiting)
        const [claimed] = yield* queue.claim({ workerId: worker("w"), queues: [q] })
        assert.strictEqual(claimed?.id, job.id)

        const again = yield* Effect.forkChild(next)
        const failed = yield* Effect.flip(
          uow.run(Effect.andThen(queue.enqueue({ queue: q, payload: "rolled back" }), Effect.fail(new Boom())))
        )
        assert.instanceOf(failed, Boom)
        assert.isFalse(yield* wokeWithin(again, 300), "woken by a rolled-back enqueue")
        assert.deepStrictEqual(yield* queue.claim({ workerId: worker("w"), queues: [q] }), [])
        yield* Fiber.interrupt(again)
      }).pipe(Effect.scoped)
    )

    it.effect("a job and a task written in one unit commit or roll back together", () =>
      Effect.gen(function* () {
        const queue = yield* Queue
        const tasks = yield* TaskStore
        const uow = yield* UnitOfWork
        const q = queueName("with-task")
        const dropped = makeRecord()
        yield* Effect.flip(
          uow.run(
            Effect.gen(function* () {
              yield* tasks.create(dropped)
              yield* queue.enqueueBatch([
                { queue: q, payload: 1 },
                { queue: q, payload: 2 }
              ])
              return yield* Effect.fail(new Boom())
            })
          )
        )
        assert.strictEqual((yield* Effect.flip(tasks.get(dropped.task.id)))._tag, "TaskNotFound")
        assert.strictEqual((yield* queue.list({ queue: q })).jobs.length, 0)
        const kept = makeRecord()
        yield* uow.run(Effect.andThen(tasks.create(kept), queue.enqueue({ queue: q, payload: 3 })))
        assert.deepStrictEqual(yield* tasks.get(kept.task.id), kept)
        assert.deepStrictEqual(
          (yield* queue.list({ queue: q })).jobs.map((j) => j.payload),
          [3]
        )
      })
    )
  })

  layer(
    TestPostgres.layerWith((options) =>
      Layer.mergeAll(layerQueue({ ...options, backoff, requeueIntervalMs }), layerUnitOfWork)
    ),
    { excludeTestServices: true, timeout: "60 seconds" }
  )("several processes", (it) => {
    it.effect("an enqueue wakes another process's subscriber through NOTIFY, once its unit commits", () =>
      Effect.gen(function* () {
        const queue = yield* Queue
        const uow = yield* UnitOfWork
        const elsewhere = yield* otherProcess
        const q = queueName("cross")
        const next = yield* elsewhere.wakeups({ queues: [q] })
        const waiting = yield* Effect.forkChild(next)
        const release = yield* Deferred.make<void>()
        const written = yield* Deferred.make<void>()
        const unit = yield* Effect.forkChild(
          uow.run(
            Effect.gen(function* () {
              yield* queue.enqueue({ queue: q, payload: "from afar" })
              yield* Deferred.succeed(written, undefined)
              yield* Deferred.await(release)
            })
          )
        )
        yield* Deferred.await(written)
        assert.isFalse(yield* wokeWithin(waiting, 300), "woken before the commit")
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(unit)
        yield* awaitWake(waiting)
        const [claimed] = yield* elsewhere.claim({ workerId: worker("afar"), queues: [q] })
        assert.strictEqual(claimed?.payload, "from afar")
        // a delayed job is not announced: it is found by polling when it comes due
        const again = yield* Effect.forkChild(next)
        yield* queue.enqueue({ queue: q, payload: "later", delayMs: 60_000 })
        assert.isFalse(yield* wokeWithin(again, 300), "woken by a job that is not claimable yet")
        yield* Fiber.interrupt(again)
      }).pipe(Effect.scoped)
    )

    it.effect("three pools claiming at once give each of 600 jobs to exactly one worker", () =>
      Effect.gen(function* () {
        const here = yield* Queue
        const queues = [here, yield* otherProcess, yield* otherProcess]
        const q = queueName("pools")
        yield* here.enqueueBatch(Array.from({ length: 600 }, (_, i) => ({ queue: q, payload: i })))
        const claimer = (queue: Queue["Service"], n: number) =>
          Effect.gen(function* () {
            const w = worker(`claimer-${n}`)
            const mine: Array<Job> = []
            while (true) {
              const jobs = yield* queue.claim({ workerId: w, queues: [q], max: 10 })
              if (jobs.length === 0) return mine
              mine.push(...jobs)
            }
          })
        const results = yield* Effect.all(
          Array.from({ length: 9 }, (_, n) => claimer(queues[n % 3]!, n)),
          { concurrency: "unbounded" }
        )
        const all = results.flat()
        assert.strictEqual(all.length, 600)
        assert.strictEqual(new Set(all.map((j) => j.id)).size, 600)
        assert.isTrue(results.filter((r) => r.length > 0).length > 1)
      })
    )

    it.effect("a lease is kept by the database's clock, whatever the worker's clock says", () =>
      Effect.gen(function* () {
        const queue = yield* Queue
        const q = queueName("db-time")
        const w = worker("skewed")
        const job = yield* queue.enqueue({ queue: q, payload: {} })
        // this worker's clock is a day ahead: a lease computed from it would be judged by it too
        yield* TestClock.adjust("1 day")
        const [claimed] = yield* queue.claim({ workerId: w, queues: [q], leaseMs: 60_000 })
        assert.strictEqual(claimed?.id, job.id)
        const wall = Date.now()
        assert.isTrue(Math.abs(claimed!.lease!.expiresAt - (wall + 60_000)) < 10_000, "the lease is in database time")
        assert.deepStrictEqual(
          yield* queue.requeueExpired.pipe(Effect.map((jobs) => jobs.filter((j) => j.id === job.id))),
          []
        )
        assert.strictEqual((yield* queue.heartbeat(job.id, w, 60_000)).lease?.workerId, w)
        assert.strictEqual((yield* queue.complete(job.id, w, "done")).state, "completed")
      }).pipe(Effect.provide(TestClock.layer()))
    )

    it.effect("lists jobs made within one millisecond in the order they were made, page by page", () =>
      Effect.gen(function* () {
        const queue = yield* Queue
        const q = queueName("same-ms")
        // the clock stands still: every id is made in the same millisecond
        const made: Array<Job> = [
          ...(yield* queue.enqueueBatch(Array.from({ length: 30 }, (_, i) => ({ queue: q, payload: i }))))
        ]
        for (let i = 30; i < 45; i++) made.push(yield* queue.enqueue({ queue: q, payload: i }))
        const seen: Array<Job> = []
        let cursor: string | undefined
        do {
          const page = yield* queue.list({ queue: q, limit: 7, ...(cursor ? { cursor } : {}) })
          seen.push(...page.jobs)
          cursor = page.nextCursor
        } while (cursor !== undefined)
        assert.deepStrictEqual(
          seen.map((j) => j.payload),
          made.map((j) => j.payload)
        )
      }).pipe(Effect.provide(TestClock.layer()))
    )

    it.effect("wake-ups stay within their schema: another schema's enqueue on the same queue name wakes no one", () =>
      Effect.gen(function* () {
        const queue = yield* Queue
        const { schema } = yield* TestPostgres
        const other = config()
        yield* dropSchemaOnExit(other.schema)
        const elsewhere = Context.get(
          yield* Layer.build(Postgres.layer(other, { queue: { requeueIntervalMs } })),
          Queue
        )
        assert.notStrictEqual(channelOf(schema), channelOf(other.schema))
        const q = queueName("shared-name")
        const next = yield* queue.wakeups({ queues: [q] })
        const waiting = yield* Effect.forkChild(next)
        yield* elsewhere.enqueue({ queue: q, payload: "elsewhere" })
        assert.isFalse(yield* wokeWithin(waiting, 300), "woken by another schema")
        yield* (yield* otherProcess).enqueue({ queue: q, payload: "here, from another process" })
        yield* awaitWake(waiting)
      }).pipe(Effect.scoped)
    )

    it.effect("wake-ups survive a lost LISTEN connection", () =>
      Effect.gen(function* () {
        const queue = yield* Queue
        const { schema } = yield* TestPostgres
        const q = queueName("reconnect")
        const next = yield* queue.wakeups({ queues: [q] })
        // kill the listening session from outside, as a failover or an idle-session reaper would
        const admin = Context.get(yield* Layer.build(TestPostgres.otherClient()), SqlClient.SqlClient)
        const killed = yield* admin<{ readonly killed: boolean }>`
          SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
          WHERE query = ${`LISTEN "${channelOf(schema)}"`}`
        assert.deepStrictEqual(
          killed.map((r) => r.killed),
          [true]
        )
        // the layer listens again, and wakes its subscribers in case it missed something meanwhile
        yield* next.pipe(Effect.timeout("10 seconds"))
        // and notifications from other processes flow on the new connection
        const elsewhere = yield* otherProcess
        const waiting = yield* Effect.forkChild(next)
        yield* Effect.sleep(100)
        yield* elsewhere.enqueue({ queue: q, payload: "after the reconnect" })
        yield* awaitWake(waiting)
      }).pipe(Effect.scoped)
    )
  })

  layer(
    TestPostgres.layerWith((options) =>
      layerQueue({ ...options, backoff, requeueIntervalMs, retainFinishedMs: 300, pruneIntervalMs: 100 })
    ),
    { excludeTestServices: true, timeout: "60 seconds" }
  )("retention", (it) => {
    it.effect("deletes completed and cancelled jobs after the retention, keeps dead letters and live jobs", () =>
      Effect.gen(function* () {
        const queue = yield* Queue
        const q = queueName("retention")
        const w = worker("w")
        const [done, cancelled, dead, waiting] = yield* queue.enqueueBatch([
          { queue: q, payload: "done", priority: "critical", idempotencyKey: "reused" },
          { queue: q, payload: "cancelled" },
          { queue: q, payload: "dead", priority: "high", maxAttempts: 1 },
          { queue: q, payload: "waiting", priority: "low", delayMs: 60_000 }
        ])
        yield* queue.claim({ workerId: w, queues: [q], max: 2 })
        yield* queue.complete(done!.id, w, null)
        yield* queue.fail(dead!.id, w, "boom")
        yield* queue.cancel(cancelled!.id)
        const gone = (job: Job) =>
          Effect.map(Effect.result(queue.get(job.id)), (r) => r._tag === "Failure" && r.failure._tag === "JobNotFound")
        for (let i = 0; i < 100 && !((yield* gone(done!)) && (yield* gone(cancelled!))); i++) yield* Effect.sleep(50)
        assert.isTrue(yield* gone(done!))
        assert.isTrue(yield* gone(cancelled!))
        assert.strictEqual((yield* queue.get(dead!.id)).state, "dead_lettered")
        assert.strictEqual((yield* queue.get(waiting!.id)).state, "queued")
        // the pruned job's idempotency key is free again
        const fresh = yield* queue.enqueue({ queue: q, payload: "again", idempotencyKey: "reused" })
        assert.notStrictEqual(fresh.id, done!.id)
      })
    )
  })

  layer(
    TestPostgres.layerWith((options) => layerQueue({ ...options, backoff, requeueIntervalMs })),
    {
      excludeTestServices: true
    }
  )("stored data", (it) => {
    it.effect("an idempotency key stays taken while its job moves to the finished jobs, under racing enqueues", () =>
      Effect.gen(function* () {
        const queue = yield* Queue
        const { schema } = yield* TestPostgres
        const sql = yield* SqlClient.SqlClient
        const q = queueName("key-race")
        const w = worker("w")
        for (let i = 0; i < 10; i++) {
          const key = `k${i}`
          const first = yield* queue.enqueue({ queue: q, payload: i, idempotencyKey: key })
          yield* queue.claim({ workerId: w, queues: [q] })
          // The completion moves the job out of `jobs` while other enqueues of its key run
          const [completed, ...again] = yield* Effect.all(
            [
              queue.complete(first.id, w, i),
              ...Array.from({ length: 6 }, () => queue.enqueueBatch([{ queue: q, payload: -1, idempotencyKey: key }]))
            ],
            { concurrency: "unbounded" }
          )
          assert.strictEqual((completed as Job).state, "completed")
          for (const batch of again) assert.strictEqual((batch as ReadonlyArray<Job>)[0]!.id, first.id)
        }
        // Finished jobs live in `jobs_done`, not in the table claims read
        const [counts] = yield* sql<{ readonly live: number; readonly done: number }>`
          SELECT (SELECT count(*)::int FROM ${sql(`${schema}.jobs`)} WHERE queue = ${q}) AS live,
                 (SELECT count(*)::int FROM ${sql(`${schema}.jobs_done`)} WHERE queue = ${q}) AS done`
        assert.deepStrictEqual(counts, { live: 0, done: 10 })
        assert.strictEqual((yield* queue.list({ queue: q })).jobs.length, 10)
        assert.strictEqual((yield* queue.stats(q)).byState.completed, 10)
      })
    )

    it.effect("a row that does not decode fails the call with QueueStoreError, not a defect", () =>
      Effect.gen(function* () {
        const queue = yield* Queue
        const { schema } = yield* TestPostgres
        const sql = yield* SqlClient.SqlClient
        const q = queueName("corrupt")
        const [bad, good, badError, badPriority] = yield* queue.enqueueBatch([
          { queue: q, payload: 1 },
          { queue: q, payload: 2 },
          { queue: q, payload: 3 },
          { queue: q, payload: 4 }
        ])
        const jobs = sql(`${schema}.jobs`)
        yield* sql`UPDATE ${jobs} SET state = 'exploded' WHERE id = ${bad!.id}`
        // Rows are checked column by column (not Schema-decoded): a last error that is not a JSON string, an
        // unknown priority are refused too
        yield* sql`UPDATE ${jobs} SET last_error = '5'::json WHERE id = ${badError!.id}`
        yield* sql`UPDATE ${jobs} SET priority = 'urgent' WHERE id = ${badPriority!.id}`
        const errors = yield* Effect.all([
          Effect.flip(queue.get(bad!.id)),
          Effect.flip(queue.list({ queue: q })),
          Effect.flip(queue.get(badError!.id)),
          Effect.flip(queue.get(badPriority!.id))
        ])
        assert.deepStrictEqual(
          errors.map((e) => e._tag === "QueueStoreError" && e.operation),
          ["get", "list", "get", "get"]
        )
        assert.strictEqual((yield* queue.get(good!.id)).payload, 2)
        // A claim that returns a bad row fails as a store error too
        yield* sql`UPDATE ${jobs} SET state = 'cancelled' WHERE id IN (${good!.id}, ${badPriority!.id})`
        const claimError = yield* Effect.flip(queue.claim({ workerId: AgentId.make("worker_a"), queues: [q], max: 5 }))
        assert.strictEqual(claimError._tag === "QueueStoreError" && claimError.operation, "claim")
      })
    )

    it.effect("keeps payloads, results, errors and idempotency keys that text columns could not", () =>
      Effect.gen(function* () {
        const queue = yield* Queue
        const q = queueName("strings")
        const w = worker("w")
        const payload = { nul: "a\u0000b", lone: "\ud800", quote: '"\\' }
        const job = yield* queue.enqueue({ queue: q, payload, idempotencyKey: "k\u0000\ud800" })
        assert.deepStrictEqual(job.payload, payload)
        assert.strictEqual(job.idempotencyKey, "k\u0000\ud800")
        assert.strictEqual((yield* queue.enqueue({ queue: q, payload: 0, idempotencyKey: "k\u0000\ud800" })).id, job.id)
        assert.notStrictEqual(
          (yield* queue.enqueue({ queue: q, payload: 0, idempotencyKey: "k\u0000\ud801" })).id,
          job.id
        )
        yield* queue.claim({ workerId: w, queues: [q] })
        const failed = yield* queue.fail(job.id, w, "line\nwith \u0000 and \ud800")
        assert.strictEqual(failed.lastError, "line\nwith \u0000 and \ud800")
        yield* Effect.sleep(failed.runAt - failed.updatedAt + 100)
        const claimed = yield* queue.claim({ workerId: w, queues: [q], max: 10 })
        assert.isTrue(claimed.some((j) => j.id === job.id))
        const done = yield* queue.complete(job.id, w, { out: "\u0000" })
        assert.deepStrictEqual(done.result, { out: "\u0000" })
        assert.deepStrictEqual(yield* queue.get(job.id), done)
      })
    )

    // A batch goes in as Postgres arrays, one per column that varies (a column with one value is one parameter):
    // every column varies here, with values the array syntax quotes or escapes
    it.effect("a batch whose jobs differ in every column stores each as sent, whatever its strings hold", () =>
      Effect.gen(function* () {
        const queue = yield* Queue
        const a = queueName("mixed-a")
        const b = queueName("mixed-b")
        const odd = ['"', "\\", "{}", "a,b", "NULL", " x ", '\\"{,}', "é\u0000\ud800"]
        const at = Date.now() + 60_000
        const requests = [
          { queue: a, payload: { s: odd[0]!, n: null } },
          { queue: b, payload: odd[1]!, pool: "gpu", priority: "high" as const, idempotencyKey: odd[2]! },
          { queue: a, payload: [odd[2]!, odd[3]!], delayMs: 60_000, maxAttempts: 7, idempotencyKey: odd[4]! },
          { queue: b, payload: "NULL", runAt: at, priority: "low" as const, idempotencyKey: odd[5]! },
          { queue: a, payload: { [odd[6]!]: odd[7]! }, pool: "cpu", idempotencyKey: odd[6]! },
          { queue: b, payload: null, priority: "critical" as const, idempotencyKey: odd[7]! },
          { queue: a, payload: 1.5, idempotencyKey: odd[3]! }
        ]
        const jobs = yield* queue.enqueueBatch(requests)
        assert.strictEqual(new Set(jobs.map((job) => job.id)).size, requests.length)
        for (let i = 0; i < requests.length; i++) {
          const r = requests[i]!
          const job = jobs[i]!
          assert.deepStrictEqual(
            [job.queue, job.payload, job.pool, job.priority, job.maxAttempts, job.idempotencyKey],
            [r.queue, r.payload, r.pool, r.priority ?? "normal", r.maxAttempts ?? 5, r.idempotencyKey]
          )
          if (r.runAt !== undefined) assert.strictEqual(job.runAt, r.runAt)
          else if (r.delayMs !== undefined) assert.strictEqual(job.runAt, job.createdAt + r.delayMs)
          else assert.strictEqual(job.runAt, job.createdAt)
          assert.deepStrictEqual(yield* queue.get(job.id), job)
        }
        // The keys are taken as sent: enqueued again, each returns its job
        const again = yield* queue.enqueueBatch(requests.map((r) => ({ ...r, payload: "again" })))
        assert.deepStrictEqual(
          again.map((job) => job.id),
          requests.map((r, i) => (r.idempotencyKey === undefined ? again[i]!.id : jobs[i]!.id))
        )
        assert.notStrictEqual(again[0]!.id, jobs[0]!.id)
      })
    )
  })

  layer(
    TestPostgres.layerWith((options) => layerQueue({ ...options, backoff, requeueIntervalMs })),
    { excludeTestServices: true, timeout: "60 seconds" }
  )("merged lease-holder writes", (it) => {
    it.effect(
      "a batch-claimed job whose lease expired goes to another worker; the merged completions write the rest",
      () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("expired-in-batch")
          const a = worker("a")
          const b = worker("b")
          yield* queue.enqueueBatch(Array.from({ length: 5 }, (_, i) => ({ queue: q, payload: { i } })))
          const claimed = yield* queue.claim({ workerId: a, queues: [q], max: 5, leaseMs: 60_000 })
          assert.strictEqual(claimed.length, 5)
          // All but the last stay leased; the last one's lease runs out while `a` still holds it in its batch (its
          // holder cuts it to a millisecond: no race with the machine's speed)
          const late = claimed[4]!
          yield* queue.heartbeat(late.id, a, 1)
          let taken: ReadonlyArray<Job> = []
          while (taken.length === 0) {
            yield* Effect.sleep(100)
            taken = yield* queue.claim({ workerId: b, queues: [q], max: 5 })
          }
          assert.deepStrictEqual(
            taken.map((job) => job.id),
            [late.id]
          )
          // `a` completes its whole batch at once: one merged statement, each job under its own lease
          const outcomes = yield* Effect.forEach(
            claimed,
            (job) => Effect.exit(queue.complete(job.id, a, { by: "a" })),
            {
              concurrency: "unbounded"
            }
          )
          for (const [i, exit] of outcomes.entries()) {
            const job = claimed[i]!
            if (job.id === late.id) {
              assert.isTrue(exit._tag === "Failure")
              const error = yield* Effect.flip(Effect.suspend(() => exit))
              assert.strictEqual(error._tag, "LeaseLost")
              if (error._tag === "LeaseLost") assert.strictEqual(error.reason, "held_by_other")
            } else {
              assert.isTrue(exit._tag === "Success")
              // what the merged write returns is what was stored
              if (exit._tag === "Success") assert.deepStrictEqual(exit.value, yield* queue.get(job.id))
            }
          }
          const mine = yield* queue.complete(late.id, b, { by: "b" })
          assert.deepStrictEqual(mine.result, { by: "b" })
          assert.strictEqual(mine.attempts, 2)
        })
    )

    it.effect("merged heartbeats extend every live lease in one go and refuse the others, each with its reason", () =>
      Effect.gen(function* () {
        const queue = yield* Queue
        const q = queueName("merged-heartbeat")
        const a = worker("a")
        const b = worker("b")
        yield* queue.enqueueBatch(Array.from({ length: 4 }, (_, i) => ({ queue: q, payload: { i } })))
        const mine = yield* queue.claim({ workerId: a, queues: [q], max: 3, leaseMs: 1_000 })
        const [theirs] = yield* queue.claim({ workerId: b, queues: [q], max: 1 })
        const beats = yield* Effect.forEach(
          [...mine, theirs!],
          (job) => Effect.exit(queue.heartbeat(job.id, a, 60_000)),
          { concurrency: "unbounded" }
        )
        for (const [i, job] of mine.entries()) {
          const beat = beats[i]!
          assert.isTrue(beat._tag === "Success")
          if (beat._tag === "Success") {
            assert.deepStrictEqual(beat.value, yield* queue.get(job.id))
            assert.isAbove(beat.value.lease!.expiresAt, job.lease!.expiresAt + 30_000)
          }
        }
        const refused = yield* Effect.flip(Effect.suspend(() => beats[3]!))
        assert.strictEqual(refused._tag, "LeaseLost")
        if (refused._tag === "LeaseLost") assert.strictEqual(refused.reason, "held_by_other")
      })
    )

    it.effect("merged failures return the jobs as stored: retried, dead-lettered, or refused at a stale attempt", () =>
      Effect.gen(function* () {
        const queue = yield* Queue
        const q = queueName("merged-fail")
        const a = worker("a")
        yield* queue.enqueueBatch([
          { queue: q, payload: "retry" },
          { queue: q, payload: "dead", maxAttempts: 1 },
          { queue: q, payload: "permanent" }
        ])
        const claimed = yield* queue.claim({ workerId: a, queues: [q], max: 3 })
        assert.strictEqual(claimed.length, 3)
        const failed = yield* Effect.forEach(
          claimed,
          (job) => queue.fail(job.id, a, `failed ${String(job.payload)}`, { retryable: job.payload !== "permanent" }),
          { concurrency: "unbounded" }
        )
        for (const job of failed) assert.deepStrictEqual(job, yield* queue.get(job.id))
        const byPayload = new Map(failed.map((job) => [job.payload, job]))
        assert.strictEqual(byPayload.get("retry")!.state, "failed")
        assert.isAbove(byPayload.get("retry")!.runAt, byPayload.get("retry")!.updatedAt)
        assert.strictEqual(byPayload.get("dead")!.state, "dead_lettered")
        assert.strictEqual(byPayload.get("permanent")!.state, "dead_lettered")
        assert.strictEqual(byPayload.get("permanent")!.lastError, "failed permanent")
        // failing again (the lease is gone) is refused, also when merged
        const again = yield* Effect.flip(queue.fail(claimed[0]!.id, a, "again"))
        assert.strictEqual(again._tag, "LeaseLost")
      })
    )
  })

  layer(TestPostgres.otherClient(), { excludeTestServices: true, timeout: "60 seconds" })("upgrade", (it) => {
    it.effect("jobs stored before migrations 0012-0014 are completed, drained and pruned after them", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const schema = freshSchema()
        yield* dropSchemaOnExit(schema)
        // The schema as it was before 0012: every earlier migration applied, `jobs_finished` in place, the text
        // keys under the database's collation (before 0013), finished jobs and keys in `jobs` (before 0014)
        yield* Postgres.Migrations.run({ schema })
        yield* sql`ALTER TABLE ${sql(`${schema}.jobs`)}
                     ALTER COLUMN id TYPE text COLLATE "default",
                     ALTER COLUMN queue TYPE text COLLATE "default",
                     ALTER COLUMN idempotency_key TYPE text COLLATE "default"`
        yield* sql`CREATE INDEX jobs_finished ON ${sql(`${schema}.jobs`)} (finished_at)
                   WHERE state IN ('completed', 'cancelled')`
        yield* sql`DELETE FROM ${sql(`${schema}.${Postgres.Migrations.migrationsTable}`)} WHERE migration_id >= 12`
        const q = queueName("upgrade")
        const w = worker("w")
        const before = yield* Effect.scoped(
          Effect.gen(function* () {
            // Jobs as the layer before 0014 wrote them: finished rows and keys in `jobs`
            const j = sql(`${schema}.jobs`)
            const oldJob = (id: string, key: string | null, state: string) =>
              sql`INSERT INTO ${j} (id, queue, priority, priority_rank, state, payload, run_at, attempts, max_attempts,
                                    failures, idempotency_key, result, created_at, updated_at, finished_at)
                  VALUES (${id}, ${q}, 'normal', 2, ${state}, '"old"', 1, 1, 3, 0, ${key}, '{"old":true}', 1, 2, 2)`
            yield* oldJob("job_00000000-0001-7000-8000-000000000001", "k-old", "completed")
            yield* oldJob("job_00000000-0002-7000-8000-000000000002", null, "cancelled")
            const old = yield* makeQueue({ schema, backoff, requeueIntervalMs, retainFinishedMs: Infinity })
            const stored = yield* old.enqueueBatch([
              { queue: q, payload: "done before", priority: "critical", idempotencyKey: "k1" },
              { queue: q, payload: "held across", priority: "high", idempotencyKey: "k2" },
              { queue: q, payload: "dead", priority: "normal", maxAttempts: 1 },
              ...Array.from({ length: 20 }, (_, i) => ({ queue: q, payload: i, priority: "low" as const }))
            ])
            yield* old.claim({ workerId: w, queues: [q], max: 3 })
            yield* old.complete(stored[0]!.id, w, { ok: 1 })
            yield* old.fail(stored[2]!.id, w, "boom")
            return stored
          })
        )
        // Before 0014 finished jobs stayed in `jobs` and keys were unique there: the rows this layer wrote go back
        yield* sql`INSERT INTO ${sql(`${schema}.jobs`)} OVERRIDING SYSTEM VALUE
                   SELECT * FROM ${sql(`${schema}.jobs_done`)}`
        yield* sql`DROP TABLE ${sql(`${schema}.jobs_done`)}, ${sql(`${schema}.job_keys`)}`
        yield* sql`CREATE UNIQUE INDEX jobs_idempotency ON ${sql(`${schema}.jobs`)} (queue, idempotency_key)
                   WHERE idempotency_key IS NOT NULL`
        yield* sql`CREATE INDEX jobs_leases ON ${sql(`${schema}.jobs`)} (lease_expires_at)
                   WHERE state IN ('claimed', 'running')`
        yield* sql`DROP INDEX ${sql(`${schema}.jobs_ready`)}`
        yield* sql`CREATE INDEX jobs_ready ON ${sql(`${schema}.jobs`)} (queue, priority_rank, run_at, seq)
                   WHERE state IN ('queued', 'failed')`
        yield* sql`ALTER TABLE ${sql(`${schema}.jobs`)} SET (fillfactor = 80)`
        const exists = yield* sql<{
          readonly found: boolean
        }>`SELECT to_regclass(${`${schema}.jobs_finished`}) IS NOT NULL AS found`
        assert.isTrue(exists[0]!.found)
        assert.deepStrictEqual(yield* Postgres.Migrations.run({ schema }), [
          [12, "jobs_prune_by_id"],
          [13, "jobs_bytewise_keys"],
          [14, "jobs_finished_table"]
        ])
        // Finished rows moved out of `jobs`, keys into `job_keys`
        const tables = yield* sql<{ readonly live: number; readonly done: number; readonly keys: number }>`
          SELECT (SELECT count(*)::int FROM ${sql(`${schema}.jobs`)}) AS live,
                 (SELECT count(*)::int FROM ${sql(`${schema}.jobs_done`)}) AS done,
                 (SELECT count(*)::int FROM ${sql(`${schema}.job_keys`)}) AS keys`
        assert.deepStrictEqual(tables[0], { live: 22, done: 3, keys: 3 })
        const collations = yield* sql<{ readonly collation: string | null }>`
          SELECT collation_name AS collation FROM information_schema.columns
          WHERE table_schema = ${schema} AND table_name = 'jobs'
            AND column_name IN ('id', 'queue', 'idempotency_key')`
        assert.deepStrictEqual(
          collations.map((c) => c.collation),
          ["C", "C", "C"]
        )
        const gone = yield* sql<{
          readonly found: boolean
        }>`SELECT to_regclass(${`${schema}.jobs_finished`}) IS NOT NULL AS found`
        assert.isFalse(gone[0]!.found)

        // Finished before the upgrade: read as they were, their keys still taken (a layer keeping them, before
        // the one below prunes them)
        const reader = yield* makeQueue({ schema, backoff, requeueIntervalMs, retainFinishedMs: Infinity })
        const finishedBefore = yield* reader.get(before[0]!.id)
        assert.deepStrictEqual(
          [finishedBefore.state, finishedBefore.result, finishedBefore.idempotencyKey],
          ["completed", { ok: 1 }, "k1"]
        )
        const oldKeyed = yield* reader.enqueue({ queue: q, payload: "dup", idempotencyKey: "k-old" })
        assert.deepStrictEqual(
          [oldKeyed.id, oldKeyed.state, oldKeyed.result],
          ["job_00000000-0001-7000-8000-000000000001", "completed", { old: true }]
        )
        assert.strictEqual(
          (yield* reader.enqueue({ queue: q, payload: "dup", idempotencyKey: "k1" })).id,
          before[0]!.id
        )
        const cancelledBefore = yield* reader.get("job_00000000-0002-7000-8000-000000000002" as Job["id"])
        assert.strictEqual(cancelledBefore.state, "cancelled")
        const queue = yield* makeQueue({
          schema,
          backoff,
          requeueIntervalMs,
          retainFinishedMs: 300,
          pruneIntervalMs: 100
        })
        // A lease taken before the upgrade is still its holder's: completed by a layer that never saw the claim
        const [held] = yield* queue.completeMany!([{ jobId: before[1]!.id, workerId: w, result: "after" }])
        assert.isTrue(held!._tag === "Success" && held!.value.state === "completed" && held!.value.result === "after")
        // The rest drain
        let drained = 0
        while (drained < 20) {
          const claimed = yield* queue.claim({ workerId: w, queues: [q], max: 7 })
          assert.isAbove(claimed.length, 0)
          const exits = yield* queue.completeMany!(claimed.map((job) => ({ jobId: job.id, workerId: w })))
          for (const exit of exits) assert.isTrue(exit._tag === "Success" && exit.value.state === "completed")
          drained += claimed.length
        }
        assert.strictEqual(drained, 20)
        // Pruned after the retention, old rows and new alike; the dead letter stays, the keys are free again
        const isGone = (id: Job["id"]) =>
          Effect.map(Effect.result(queue.get(id)), (r) => r._tag === "Failure" && r.failure._tag === "JobNotFound")
        for (let i = 0; i < 100 && !((yield* isGone(before[0]!.id)) && (yield* isGone(before[22]!.id))); i++) {
          yield* Effect.sleep(50)
        }
        for (const job of [before[0]!, before[1]!, ...before.slice(3)]) assert.isTrue(yield* isGone(job.id))
        assert.strictEqual((yield* queue.get(before[2]!.id)).state, "dead_lettered")
        const again = yield* queue.enqueue({ queue: q, payload: "again", idempotencyKey: "k1" })
        assert.notStrictEqual(again.id, before[0]!.id)
      })
    )
  })
})
