/**
 * The `Queue` contract as a test suite: run it against any Queue layer (memory, Postgres, Redis, your own).
 *
 * ```ts
 * import { suite } from "@mandate/core/conformance/queue"
 * suite("Queue on my store", myQueueLayer)
 * ```
 *
 * One layer instance serves the whole suite: every test works in its own queues (random names), so tests never
 * see each other's jobs. With `testClock` (the default) `TestClock` drives the layer's time; a layer whose time
 * is not the `Clock`'s (e.g. a database's `now()`) runs with `testClock: false`, and the suite waits in real
 * time with short durations instead. Options choose how to check, never what.
 *
 * @since 0.1.0
 */
import { assert, describe, layer } from "@effect/vitest"
import { AgentId, Backoff, type EnqueueRequest, type Job, JobId, Queue } from "@mandate/core"
import { Effect, Fiber, type Layer, Result } from "effect"
import { TestClock } from "effect/testing"

/**
 * How the suite drives the layer under test.
 *
 * @category models
 * @since 0.1.0
 */
export interface QueueSuiteOptions {
  /** Drive time with `TestClock` (default true). False: wait in real time (for layers with their own clock). */
  readonly testClock?: boolean | undefined
  /** The backoff the layer was built with (default `Backoff.defaults`): retry delays must fall in its bounds. */
  readonly backoff?: Backoff.Options | undefined
  /** The layer's requeue interval in ms (default 1,000): expired leases must come back within it. */
  readonly requeueIntervalMs?: number | undefined
}

// Real-time mode: extra wait past a deadline, for scheduling and database round trips
const LIVE_MARGIN_MS = 150

/**
 * Registers the Queue conformance tests under `name`.
 *
 * @category suites
 * @since 0.1.0
 */
export const suite = (name: string, queueLayer: Layer.Layer<Queue, unknown>, options?: QueueSuiteOptions): void => {
  const testClock = options?.testClock !== false
  const backoff = options?.backoff
  const requeueIntervalMs = options?.requeueIntervalMs ?? 1_000
  // Durations: exact under TestClock; in real time, short ones so the suite stays fast
  const leaseMs = testClock ? 30_000 : 2_000
  const delayMs = testClock ? 60_000 : 800

  const uid = () => crypto.randomUUID()
  const queueName = (label: string) => `${label}-${uid()}`
  const worker = (label: string) => AgentId.make(`${label}-${uid()}`)
  const advance = (ms: number) => (testClock ? TestClock.adjust(ms) : Effect.sleep(ms + LIVE_MARGIN_MS))
  /**
   * Waits until `check` holds, however long the backend takes (a loaded machine is slow, not wrong): the test's
   * timeout is the only limit, and says what it still waited for. Between checks it lets real time pass (a
   * backend's reply, a sweep fiber's I/O), which the TestClock does not move.
   */
  const eventually = <E, R>(check: Effect.Effect<boolean, E, R>, what: string) =>
    Effect.gen(function* () {
      while (!(yield* check)) {
        yield* Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, testClock ? 5 : 50)))
      }
    }).pipe(Effect.onInterrupt(() => Effect.logError(`the test timed out waiting for ${what}`)))
  const ids = (jobs: ReadonlyArray<Job>) => jobs.map((j) => j.id)
  const bad = (request: unknown) => request as EnqueueRequest

  layer(queueLayer, { excludeTestServices: !testClock })(name, (it) => {
    describe("enqueue", () => {
      it.effect("enqueues with defaults and reads the job back", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("defaults")
          const job = yield* queue.enqueue({ queue: q, payload: { n: 1, nested: { list: [1, "two", null] } } })
          assert.strictEqual(job.queue, q)
          assert.strictEqual(job.state, "queued")
          assert.strictEqual(job.priority, "normal")
          assert.strictEqual(job.attempts, 0)
          assert.strictEqual(job.maxAttempts, 5)
          assert.strictEqual(job.runAt, job.createdAt)
          assert.isUndefined(job.lease)
          assert.deepStrictEqual(job.payload, { n: 1, nested: { list: [1, "two", null] } })
          assert.deepStrictEqual(yield* queue.get(job.id), job)
          const missing = yield* Effect.flip(queue.get(JobId.make(`job_${uid()}`)))
          assert.strictEqual(missing._tag, "JobNotFound")
        })
      )

      it.effect("keeps its own copy of the payload", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const payload = { list: [1, 2] }
          const job = yield* queue.enqueue({ queue: queueName("copy"), payload })
          payload.list.push(3)
          assert.deepStrictEqual((yield* queue.get(job.id)).payload, { list: [1, 2] })
        })
      )

      it.effect("enqueues a batch in order", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("batch")
          const jobs = yield* queue.enqueueBatch([
            { queue: q, payload: 1, priority: "low" },
            { queue: q, payload: 2, priority: "critical", maxAttempts: 2 },
            { queue: q, payload: 3 }
          ])
          assert.deepStrictEqual(
            jobs.map((j) => [j.payload, j.priority, j.maxAttempts, j.state]),
            [
              [1, "low", 5, "queued"],
              [2, "critical", 2, "queued"],
              [3, "normal", 5, "queued"]
            ]
          )
          assert.strictEqual(new Set(ids(jobs)).size, 3)
          assert.strictEqual((yield* queue.list({ queue: q })).jobs.length, 3)
          assert.deepStrictEqual(yield* queue.enqueueBatch([]), [])
        })
      )

      it.effect("refuses bad requests with the field's path, and stores nothing", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("bad")
          const pathOf = (request: unknown) =>
            Effect.map(Effect.flip(queue.enqueue(bad(request))), (e) => {
              assert.strictEqual(e._tag, "InvalidInput")
              return e._tag === "InvalidInput" ? e.path : ""
            })
          assert.strictEqual(yield* pathOf({ queue: "no spaces allowed", payload: {} }), "$.queue")
          assert.strictEqual(yield* pathOf({ queue: "x".repeat(65), payload: {} }), "$.queue")
          assert.strictEqual(yield* pathOf({ queue: q, payload: {}, delayMs: -1 }), "$.delayMs")
          assert.strictEqual(yield* pathOf({ queue: q, payload: {}, runAt: -5 }), "$.runAt")
          assert.strictEqual(yield* pathOf({ queue: q, payload: {}, maxAttempts: 0 }), "$.maxAttempts")
          assert.strictEqual(yield* pathOf({ queue: q, payload: {}, maxAttempts: 1.5 }), "$.maxAttempts")
          assert.strictEqual(yield* pathOf({ queue: q, payload: {}, priority: "urgent" }), "$.priority")
          assert.strictEqual(yield* pathOf({ queue: q, payload: {}, pool: "a pool" }), "$.pool")
          assert.strictEqual(yield* pathOf({ queue: q, payload: {}, idempotencyKey: "" }), "$.idempotencyKey")
          assert.strictEqual(yield* pathOf({ queue: q, payload: { amount: Number.NaN } }), "$.payload.amount")
          assert.strictEqual(yield* pathOf({ queue: q, payload: { list: [1, Infinity] } }), "$.payload.list[1]")
          assert.strictEqual(yield* pathOf({ queue: q, payload: { a: undefined } }), "$.payload.a")
          assert.strictEqual(yield* pathOf({ queue: q, payload: () => 1 }), "$.payload")
          assert.strictEqual(yield* pathOf({ queue: q, payload: { when: new Date(0) } }), "$.payload.when")
          assert.strictEqual(yield* pathOf({ queue: q }), "$.payload")
          assert.strictEqual(yield* pathOf({ queue: q, payload: 1, runAt: 10, delayMs: 10 }), "$.delayMs")
          const several = yield* Effect.flip(queue.enqueue(bad({ queue: "bad name", payload: { x: Number.NaN } })))
          assert.deepStrictEqual(several._tag === "InvalidInput" ? several.issues.map((i) => i.path) : [], [
            "$.queue",
            "$.payload.x"
          ])
          const batch = yield* Effect.flip(
            queue.enqueueBatch([
              { queue: q, payload: 1 },
              bad({ queue: "bad name", payload: 2 }),
              bad({ queue: q, payload: 3, maxAttempts: -1 })
            ])
          )
          assert.strictEqual(batch._tag, "InvalidInput")
          if (batch._tag === "InvalidInput") {
            assert.deepStrictEqual(
              batch.issues.map((i) => i.path),
              ["$[1].queue", "$[2].maxAttempts"]
            )
          }
          assert.strictEqual((yield* queue.list({ queue: q })).jobs.length, 0, "a refused batch enqueues nothing")
        })
      )

      it.effect("returns the stored job for a repeated idempotency key in the same queue", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("idem")
          const other = queueName("idem-other")
          const first = yield* queue.enqueue({ queue: q, payload: { v: 1 }, idempotencyKey: "order-1" })
          yield* advance(1)
          const again = yield* queue.enqueue({ queue: q, payload: { v: 2 }, idempotencyKey: "order-1" })
          assert.strictEqual(again.id, first.id)
          assert.deepStrictEqual(again.payload, { v: 1 })
          assert.strictEqual(again.idempotencyKey, "order-1")
          const elsewhere = yield* queue.enqueue({ queue: other, payload: { v: 3 }, idempotencyKey: "order-1" })
          assert.notStrictEqual(elsewhere.id, first.id)
          const batch = yield* queue.enqueueBatch([
            { queue: q, payload: 4, idempotencyKey: "order-2" },
            { queue: q, payload: 5, idempotencyKey: "order-2" },
            { queue: q, payload: 6, idempotencyKey: "order-1" }
          ])
          assert.strictEqual(batch[0]!.id, batch[1]!.id)
          assert.strictEqual(batch[2]!.id, first.id)
          // the key holds whatever state the job is in
          const [claimed] = yield* queue.claim({ workerId: worker("w"), queues: [q], max: 1 })
          assert.strictEqual(claimed!.id, first.id)
          assert.strictEqual((yield* queue.enqueue({ queue: q, payload: 7, idempotencyKey: "order-1" })).id, first.id)
          assert.strictEqual((yield* queue.list({ queue: q })).jobs.length, 2)
        })
      )

      it.effect("creates one job for one key under 20 concurrent enqueues", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("idem-race")
          const jobs = yield* Effect.all(
            Array.from({ length: 20 }, (_, i) => queue.enqueue({ queue: q, payload: i, idempotencyKey: "same" })),
            { concurrency: "unbounded" }
          )
          assert.strictEqual(new Set(ids(jobs)).size, 1)
          assert.strictEqual((yield* queue.list({ queue: q })).jobs.length, 1)
        })
      )
    })

    describe("claim", () => {
      it.effect("claims the highest priority first, then the oldest runAt", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("prio")
          const w = worker("w")
          const order: Array<Job> = []
          for (const priority of ["low", "normal", "high", "critical", "normal"] as const) {
            order.push(yield* queue.enqueue({ queue: q, payload: priority, priority }))
            yield* advance(5)
          }
          const [low, normal1, high, critical, normal2] = order
          const claimed = yield* queue.claim({ workerId: w, queues: [q], max: 10, leaseMs })
          assert.deepStrictEqual(ids(claimed), ids([critical!, high!, normal1!, normal2!, low!]))
          for (const job of claimed) {
            assert.strictEqual(job.state, "claimed")
            assert.strictEqual(job.attempts, 1)
            assert.strictEqual(job.lease?.workerId, w)
            assert.strictEqual(job.lease!.expiresAt, job.claimedAt! + leaseMs)
          }
          assert.deepStrictEqual(yield* queue.claim({ workerId: w, queues: [q], max: 10, leaseMs }), [])
        })
      )

      it.effect("claims at most max, across several queues, defaulting to one", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const qa = queueName("multi-a")
          const qb = queueName("multi-b")
          const w = worker("w")
          yield* queue.enqueueBatch([
            { queue: qa, payload: "a1" },
            { queue: qa, payload: "a2" },
            { queue: qb, payload: "b1", priority: "high" }
          ])
          const first = yield* queue.claim({ workerId: w, queues: [qa, qb] })
          assert.deepStrictEqual(
            first.map((j) => j.payload),
            ["b1"]
          )
          const rest = yield* queue.claim({ workerId: w, queues: [qb, qa], max: 5 })
          assert.deepStrictEqual(rest.map((j) => j.payload).sort(), ["a1", "a2"])
        })
      )

      it.effect("gives each of 1,000 jobs to exactly one of 8 concurrent claimers", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("race")
          const enqueued: Array<Job> = []
          for (let batch = 0; batch < 4; batch++) {
            enqueued.push(
              ...(yield* queue.enqueueBatch(
                Array.from({ length: 250 }, (_, i) => ({ queue: q, payload: batch * 250 + i }))
              ))
            )
          }
          const claimer = (n: number) =>
            Effect.gen(function* () {
              const w = worker(`claimer-${n}`)
              const mine: Array<Job> = []
              while (true) {
                // a lease longer than any run: on a slow machine a short one could expire mid-test and hand the
                // job out again, which is lease expiry working, not the race this test is about
                const jobs = yield* queue.claim({ workerId: w, queues: [q], max: 7, leaseMs: 30 * 60_000 })
                if (jobs.length === 0) return mine
                for (const job of jobs) assert.strictEqual(job.lease?.workerId, w)
                mine.push(...jobs)
                yield* Effect.yieldNow
              }
            })
          const results = yield* Effect.all(
            Array.from({ length: 8 }, (_, n) => claimer(n)),
            { concurrency: "unbounded" }
          )
          const all = results.flat()
          assert.strictEqual(all.length, 1_000)
          assert.strictEqual(new Set(ids(all)).size, 1_000)
          assert.deepStrictEqual(new Set(ids(all)), new Set(ids(enqueued)))
          assert.isTrue(results.filter((r) => r.length > 0).length > 1, "more than one claimer got work")
        })
      )

      it.effect("lets only a claim for its pool take a pool-bound job", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("pools")
          const w = worker("w")
          const [gpu, cpu, open] = yield* queue.enqueueBatch([
            { queue: q, payload: "gpu", pool: "gpu", priority: "critical" },
            { queue: q, payload: "cpu", pool: "cpu", priority: "critical" },
            { queue: q, payload: "open" }
          ])
          assert.strictEqual(gpu!.pool, "gpu")
          assert.deepStrictEqual(ids(yield* queue.claim({ workerId: w, queues: [q], max: 10 })), [open!.id])
          assert.deepStrictEqual(ids(yield* queue.claim({ workerId: w, queues: [q], pool: "cpu", max: 10 })), [cpu!.id])
          assert.deepStrictEqual(yield* queue.claim({ workerId: w, queues: [q], pool: "cpu", max: 10 }), [])
          assert.deepStrictEqual(ids(yield* queue.claim({ workerId: w, queues: [q], pool: "gpu", max: 10 })), [gpu!.id])
        })
      )

      it.effect("refuses bad claims with the field's path", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const w = worker("w")
          const q = queueName("badclaim")
          const pathOf = (request: unknown) =>
            Effect.map(Effect.flip(queue.claim(request as never)), (e) => (e._tag === "InvalidInput" ? e.path : e._tag))
          assert.match(yield* pathOf({ workerId: w, queues: [] }), /^\$\.queues/)
          assert.strictEqual(yield* pathOf({ workerId: w, queues: ["bad name"] }), "$.queues[0]")
          assert.strictEqual(yield* pathOf({ workerId: w, queues: [q], max: 0 }), "$.max")
          assert.strictEqual(yield* pathOf({ workerId: w, queues: [q], leaseMs: -1 }), "$.leaseMs")
          assert.strictEqual(yield* pathOf({ workerId: "bad id!", queues: [q] }), "$.workerId")
          assert.strictEqual(yield* pathOf({ workerId: w, queues: [q], pool: "" }), "$.pool")
        })
      )
    })

    describe("delays", () => {
      it.effect("keeps a delayed job invisible until its runAt, without holding back ready jobs", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("delay")
          const w = worker("w")
          const delayed = yield* queue.enqueue({ queue: q, payload: "later", priority: "critical", delayMs })
          assert.strictEqual(delayed.runAt, delayed.createdAt + delayMs)
          const ready = yield* queue.enqueue({ queue: q, payload: "now", priority: "low" })
          assert.deepStrictEqual(ids(yield* queue.claim({ workerId: w, queues: [q], max: 10 })), [ready.id])
          yield* queue.complete(ready.id, w, null)
          if (testClock) {
            yield* TestClock.adjust(delayMs - 1)
            assert.deepStrictEqual(yield* queue.claim({ workerId: w, queues: [q], max: 10 }), [])
            yield* TestClock.adjust(1)
          } else {
            yield* advance(delayMs)
          }
          assert.deepStrictEqual(ids(yield* queue.claim({ workerId: w, queues: [q], max: 10 })), [delayed.id])
        })
      )

      it.effect("honours an absolute runAt", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("runat")
          const w = worker("w")
          const probe = yield* queue.enqueue({ queue: q, payload: "probe", priority: "low" })
          const job = yield* queue.enqueue({ queue: q, payload: "at", runAt: probe.createdAt + delayMs })
          assert.strictEqual(job.runAt, probe.createdAt + delayMs)
          assert.deepStrictEqual(ids(yield* queue.claim({ workerId: w, queues: [q], max: 10 })), [probe.id])
          yield* queue.complete(probe.id, w, null)
          yield* advance(delayMs)
          assert.deepStrictEqual(ids(yield* queue.claim({ workerId: w, queues: [q], max: 10 })), [job.id])
          // a runAt in the past is simply ready
          const past = yield* queue.enqueue({ queue: q, payload: "past", runAt: 0 })
          assert.deepStrictEqual(ids(yield* queue.claim({ workerId: w, queues: [q], max: 10 })), [past.id])
        })
      )
    })

    describe("leases", () => {
      it.effect("lets only the lease holder complete a job, once", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("holder")
          const w1 = worker("w1")
          const w2 = worker("w2")
          const job = yield* queue.enqueue({ queue: q, payload: {} })
          yield* queue.claim({ workerId: w1, queues: [q], leaseMs })
          const stranger = yield* Effect.flip(queue.complete(job.id, w2, "mine"))
          assert.strictEqual(stranger._tag, "LeaseLost")
          if (stranger._tag === "LeaseLost") {
            assert.strictEqual(stranger.reason, "held_by_other")
            assert.strictEqual(stranger.holder, w1)
          }
          assert.strictEqual((yield* Effect.flip(queue.fail(job.id, w2, "no")))._tag, "LeaseLost")
          assert.strictEqual((yield* Effect.flip(queue.heartbeat(job.id, w2, leaseMs)))._tag, "LeaseLost")
          const done = yield* queue.complete(job.id, w1, { ok: true, list: [1] })
          assert.strictEqual(done.state, "completed")
          assert.deepStrictEqual(done.result, { ok: true, list: [1] })
          assert.isDefined(done.finishedAt)
          assert.isUndefined(done.lease)
          assert.deepStrictEqual(yield* queue.get(job.id), done)
          const twice = yield* Effect.flip(queue.complete(job.id, w1, null))
          assert.strictEqual(twice._tag, "LeaseLost")
          if (twice._tag === "LeaseLost") {
            assert.strictEqual(twice.reason, "not_leased")
            assert.strictEqual(twice.state, "completed")
          }
          const missing = yield* Effect.flip(queue.complete(JobId.make(`job_${uid()}`), w1, null))
          assert.strictEqual(missing._tag, "JobNotFound")
        })
      )

      it.effect("refuses a result that is not JSON and keeps the job leased", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("badresult")
          const w = worker("w")
          const job = yield* queue.enqueue({ queue: q, payload: {} })
          yield* queue.claim({ workerId: w, queues: [q], leaseMs })
          const error = yield* Effect.flip(queue.complete(job.id, w, { x: Number.NaN } as never))
          assert.strictEqual(error._tag === "InvalidInput" ? error.path : error._tag, "$.result.x")
          assert.strictEqual((yield* queue.get(job.id)).state, "claimed")
          assert.strictEqual((yield* queue.complete(job.id, w)).result, null)
        })
      )

      it.effect("extends a lease with a heartbeat", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("heartbeat")
          const w = worker("w")
          const job = yield* queue.enqueue({ queue: q, payload: {} })
          const [claimed] = yield* queue.claim({ workerId: w, queues: [q], leaseMs })
          yield* advance(Math.floor(leaseMs * 0.6))
          const beat = yield* queue.heartbeat(job.id, w, leaseMs)
          assert.strictEqual(beat.lease?.workerId, w)
          assert.isTrue(beat.lease!.expiresAt > claimed!.lease!.expiresAt)
          assert.strictEqual(beat.lease!.expiresAt, beat.updatedAt + leaseMs)
          yield* advance(Math.floor(leaseMs * 0.6)) // past the first lease, within the extension
          yield* queue.requeueExpired
          assert.strictEqual((yield* queue.complete(job.id, w, 1)).state, "completed")
        })
      )

      it.effect("refuses a bad heartbeat extension with its path", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("badbeat")
          const w = worker("w")
          const job = yield* queue.enqueue({ queue: q, payload: {} })
          yield* queue.claim({ workerId: w, queues: [q], leaseMs })
          const error = yield* Effect.flip(queue.heartbeat(job.id, w, -5))
          assert.strictEqual(error._tag === "InvalidInput" ? error.path : error._tag, "$.extendMs")
        })
      )

      it.effect("requeues a job whose lease expired, and the stale worker cannot complete it", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("expiry")
          const w1 = worker("w1")
          const w2 = worker("w2")
          const job = yield* queue.enqueue({ queue: q, payload: {} })
          yield* queue.claim({ workerId: w1, queues: [q], leaseMs })
          yield* advance(leaseMs)
          // expired is lost, whether or not the requeue has run yet
          assert.strictEqual((yield* Effect.flip(queue.heartbeat(job.id, w1, leaseMs)))._tag, "LeaseLost")
          const requeued = yield* queue.requeueExpired
          for (const r of requeued) assert.isUndefined(r.lease)
          const back = yield* queue.get(job.id)
          assert.strictEqual(back.state, "queued")
          assert.strictEqual(back.attempts, 1)
          assert.strictEqual(back.failures, 1)
          assert.isUndefined(back.lease)
          assert.match(back.lastError ?? "", /lease/)
          const [again] = yield* queue.claim({ workerId: w2, queues: [q], leaseMs })
          assert.strictEqual(again?.id, job.id)
          assert.strictEqual(again?.attempts, 2)
          const stale = yield* Effect.flip(queue.complete(job.id, w1, "late"))
          assert.strictEqual(stale._tag, "LeaseLost")
          if (stale._tag === "LeaseLost") assert.strictEqual(stale.holder, w2)
          assert.strictEqual((yield* queue.complete(job.id, w2, "on time")).result, "on time")
        })
      )

      it.effect("requeues expired leases by itself", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("sweep")
          const w = worker("w")
          const job = yield* queue.enqueue({ queue: q, payload: {} })
          yield* queue.claim({ workerId: w, queues: [q], leaseMs })
          yield* advance(leaseMs + requeueIntervalMs)
          yield* eventually(
            Effect.map(queue.get(job.id), (j) => j.state === "queued"),
            "the layer to requeue the expired job"
          )
        })
      )

      it.effect("dead-letters a job whose last attempt's lease expired", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("expiry-dl")
          const w = worker("w")
          const job = yield* queue.enqueue({ queue: q, payload: {}, maxAttempts: 1 })
          yield* queue.claim({ workerId: w, queues: [q], leaseMs })
          yield* advance(leaseMs)
          yield* queue.requeueExpired
          const dead = yield* queue.get(job.id)
          assert.strictEqual(dead.state, "dead_lettered")
          assert.isDefined(dead.finishedAt)
          assert.deepStrictEqual(yield* queue.claim({ workerId: w, queues: [q] }), [])
        })
      )

      it.effect("starts a claimed job; complete and fail accept claimed or running jobs", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("start")
          const w = worker("w")
          const other = worker("other")
          const [a, b] = yield* queue.enqueueBatch([
            { queue: q, payload: "a" },
            { queue: q, payload: "b" }
          ])
          yield* queue.claim({ workerId: w, queues: [q], max: 2, leaseMs })
          assert.strictEqual((yield* Effect.flip(queue.start(a!.id, other)))._tag, "LeaseLost")
          const running = yield* queue.start(a!.id, w)
          assert.strictEqual(running.state, "running")
          assert.strictEqual((yield* queue.start(a!.id, w)).state, "running")
          assert.strictEqual((yield* queue.complete(a!.id, w, "done")).state, "completed")
          assert.strictEqual((yield* queue.complete(b!.id, w, "done")).state, "completed")
        })
      )

      it.effect("releases a job without spending its attempt", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("release")
          const w = worker("w")
          const job = yield* queue.enqueue({ queue: q, payload: {} })
          yield* queue.claim({ workerId: w, queues: [q], leaseMs })
          assert.strictEqual((yield* Effect.flip(queue.release(job.id, worker("other"))))._tag, "LeaseLost")
          const released = yield* queue.release(job.id, w)
          assert.strictEqual(released.state, "queued")
          assert.strictEqual(released.attempts, 0)
          assert.isUndefined(released.lease)
          const [again] = yield* queue.claim({ workerId: w, queues: [q], leaseMs })
          assert.strictEqual(again?.id, job.id)
          assert.strictEqual(again?.attempts, 1)
        })
      )
    })

    // `enqueueClaimed` is optional: a layer without it enqueues through `enqueue` and is not checked here
    describe("hand-off (enqueueClaimed)", () => {
      it.effect("enqueues a job claimed by the worker: leased to it, hidden from claims, completed by it", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          if (queue.enqueueClaimed === undefined) return
          const q = queueName("handoff")
          const w = worker("w")
          const job = yield* queue.enqueueClaimed({ queue: q, payload: { n: 1 } }, { workerId: w, leaseMs })
          assert.strictEqual(job.state, "claimed")
          assert.strictEqual(job.attempts, 1)
          assert.strictEqual(job.lease?.workerId, w)
          assert.deepStrictEqual(job.payload, { n: 1 })
          const stored = yield* queue.get(job.id)
          assert.strictEqual(stored.state, "claimed")
          assert.strictEqual(stored.lease?.workerId, w)
          assert.strictEqual(stored.attempts, 1)
          assert.deepStrictEqual(yield* queue.claim({ workerId: worker("other"), queues: [q] }), [])
          yield* queue.heartbeat(job.id, w, leaseMs)
          assert.strictEqual((yield* queue.complete(job.id, w, "done")).state, "completed")
        })
      )

      it.effect("a handed job whose worker died is taken over once its lease expires", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          if (queue.enqueueClaimed === undefined) return
          const q = queueName("handoff-expiry")
          const w1 = worker("w1")
          const w2 = worker("w2")
          const job = yield* queue.enqueueClaimed({ queue: q, payload: {} }, { workerId: w1, leaseMs })
          assert.deepStrictEqual(yield* queue.claim({ workerId: w2, queues: [q] }), [])
          yield* advance(leaseMs)
          yield* queue.requeueExpired
          const [again] = yield* queue.claim({ workerId: w2, queues: [q], leaseMs })
          assert.strictEqual(again?.id, job.id)
          assert.strictEqual(again?.attempts, 2)
          assert.strictEqual((yield* Effect.flip(queue.complete(job.id, w1, "late")))._tag, "LeaseLost")
          assert.strictEqual((yield* queue.complete(job.id, w2, "on time")).result, "on time")
        })
      )

      it.effect("never passes a waiting job of a higher priority: then it is enqueued as usual", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          if (queue.enqueueClaimed === undefined) return
          const q = queueName("handoff-priority")
          const w = worker("w")
          const urgent = yield* queue.enqueue({ queue: q, payload: "urgent", priority: "high" })
          const handed = yield* queue.enqueueClaimed({ queue: q, payload: "next" }, { workerId: w, leaseMs })
          assert.strictEqual(handed.state, "queued")
          assert.isUndefined(handed.lease)
          assert.strictEqual(handed.attempts, 0)
          assert.deepStrictEqual(ids(yield* queue.claim({ workerId: w, queues: [q], max: 2 })), [urgent.id, handed.id])
          // A waiting job of the same priority does not stop a hand-off (the handed job is the task's next step)
          yield* queue.enqueue({ queue: q, payload: "peer" })
          const same = yield* queue.enqueueClaimed({ queue: q, payload: "same" }, { workerId: w, leaseMs })
          assert.strictEqual(same.state, "claimed")
        })
      )

      it.effect("returns the stored job for a known idempotency key, and enqueues a delayed job as usual", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          if (queue.enqueueClaimed === undefined) return
          const q = queueName("handoff-key")
          const w = worker("w")
          const first = yield* queue.enqueue({ queue: q, payload: 1, idempotencyKey: "k" })
          const again = yield* queue.enqueueClaimed(
            { queue: q, payload: 2, idempotencyKey: "k" },
            { workerId: w, leaseMs }
          )
          assert.strictEqual(again.id, first.id)
          assert.strictEqual(again.state, "queued")
          const delayed = yield* queue.enqueueClaimed({ queue: q, payload: 3, delayMs }, { workerId: w, leaseMs })
          assert.strictEqual(delayed.state, "queued")
          assert.isUndefined(delayed.lease)
        })
      )

      it.effect("refuses a bad lease or request with the field's path", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          if (queue.enqueueClaimed === undefined) return
          const q = queueName("handoff-bad")
          const w = worker("w")
          const lease = yield* Effect.flip(queue.enqueueClaimed({ queue: q, payload: 1 }, { workerId: w, leaseMs: 0 }))
          assert.strictEqual(lease._tag, "InvalidInput")
          if (lease._tag === "InvalidInput") assert.strictEqual(lease.path, "$.leaseMs")
          const request = yield* Effect.flip(
            queue.enqueueClaimed(bad({ queue: "", payload: 1 }), { workerId: w, leaseMs })
          )
          assert.strictEqual(request._tag, "InvalidInput")
          assert.deepStrictEqual(yield* queue.claim({ workerId: w, queues: [q] }), [])
        })
      )
    })

    describe("failures", () => {
      it.effect("retries with growing backoff, then dead-letters after maxAttempts", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("backoff")
          const w = worker("w")
          const job = yield* queue.enqueue({ queue: q, payload: {}, maxAttempts: 4 })
          let previous = -1
          for (let attempt = 1; attempt <= 3; attempt++) {
            const [claimed] = yield* queue.claim({ workerId: w, queues: [q], leaseMs })
            assert.strictEqual(claimed?.id, job.id, `attempt ${attempt} claims the job`)
            assert.strictEqual(claimed?.attempts, attempt)
            const failed = yield* queue.fail(job.id, w, `boom ${attempt}`)
            assert.strictEqual(failed.state, "failed")
            assert.strictEqual(failed.lastError, `boom ${attempt}`)
            assert.strictEqual(failed.failures, attempt)
            assert.isUndefined(failed.lease)
            const delay = failed.runAt - failed.updatedAt
            const [min, max] = Backoff.bounds(attempt, backoff)
            assert.isTrue(delay >= min && delay <= max, `delay ${delay} within [${min}, ${max}]`)
            assert.isTrue(delay > previous, `delay ${delay} grows past ${previous}`)
            previous = delay
            // not claimable before its retry time (in real time, only checked when there is time to check it)
            if (testClock ? delay > 0 : delay >= 250) {
              assert.deepStrictEqual(yield* queue.claim({ workerId: w, queues: [q] }), [])
            }
            yield* advance(delay)
          }
          yield* queue.claim({ workerId: w, queues: [q], leaseMs })
          const dead = yield* queue.fail(job.id, w, "boom 4")
          assert.strictEqual(dead.state, "dead_lettered")
          assert.strictEqual(dead.attempts, 4)
          assert.strictEqual(dead.failures, 4)
          assert.isDefined(dead.finishedAt)
          assert.deepStrictEqual(yield* queue.get(job.id), dead)
        })
      )

      it.effect("dead-letters a non-retryable failure at once", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("permanent")
          const w = worker("w")
          const job = yield* queue.enqueue({ queue: q, payload: {} })
          yield* queue.claim({ workerId: w, queues: [q], leaseMs })
          const dead = yield* queue.fail(job.id, w, "bad params", { retryable: false })
          assert.strictEqual(dead.state, "dead_lettered")
          assert.strictEqual(dead.attempts, 1)
          assert.strictEqual(dead.lastError, "bad params")
        })
      )

      it.effect("puts a dead-lettered job back with a fresh attempt budget", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("revive")
          const w = worker("w")
          const job = yield* queue.enqueue({ queue: q, payload: {}, maxAttempts: 1 })
          yield* queue.claim({ workerId: w, queues: [q], leaseMs })
          yield* queue.fail(job.id, w, "boom")
          const back = yield* queue.retryDeadLettered(job.id)
          assert.strictEqual(back.state, "queued")
          assert.strictEqual(back.attempts, 0)
          assert.isUndefined(back.finishedAt)
          const [again] = yield* queue.claim({ workerId: w, queues: [q], leaseMs })
          assert.strictEqual(again?.id, job.id)
          const illegal = yield* Effect.flip(queue.retryDeadLettered(job.id))
          assert.strictEqual(illegal._tag, "IllegalTransition")
          assert.strictEqual(
            (yield* Effect.flip(queue.retryDeadLettered(JobId.make(`job_${uid()}`))))._tag,
            "JobNotFound"
          )
        })
      )
    })

    describe("cancel", () => {
      it.effect("cancels pending and leased jobs, and refuses finished ones", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("cancel")
          const w = worker("w")
          const [pending, leased, done] = yield* queue.enqueueBatch([
            { queue: q, payload: "pending", priority: "low" },
            { queue: q, payload: "leased", priority: "critical" },
            { queue: q, payload: "done", priority: "high" }
          ])
          yield* queue.claim({ workerId: w, queues: [q], max: 2, leaseMs })
          yield* queue.complete(done!.id, w, null)
          const cancelled = yield* queue.cancel(pending!.id)
          assert.strictEqual(cancelled.state, "cancelled")
          assert.isDefined(cancelled.finishedAt)
          assert.strictEqual((yield* queue.cancel(pending!.id)).state, "cancelled")
          assert.deepStrictEqual(yield* queue.claim({ workerId: w, queues: [q], max: 5 }), [])
          yield* queue.cancel(leased!.id)
          const refused = yield* Effect.flip(queue.heartbeat(leased!.id, w, leaseMs))
          assert.strictEqual(refused._tag, "LeaseLost")
          if (refused._tag === "LeaseLost") assert.strictEqual(refused.state, "cancelled")
          assert.strictEqual((yield* Effect.flip(queue.complete(leased!.id, w, null)))._tag, "LeaseLost")
          const finished = yield* Effect.flip(queue.cancel(done!.id))
          assert.strictEqual(finished._tag, "IllegalTransition")
          assert.strictEqual((yield* Effect.flip(queue.cancel(JobId.make(`job_${uid()}`))))._tag, "JobNotFound")
        })
      )
    })

    describe("list", () => {
      it.effect("pages through a queue, oldest first, each job once", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("list")
          const w = worker("w")
          const jobs: Array<Job> = []
          for (let i = 0; i < 25; i++) {
            jobs.push(yield* queue.enqueue({ queue: q, payload: i, ...(i % 5 === 0 ? { pool: "gpu" } : {}) }))
            if (i % 7 === 0) yield* advance(1)
          }
          const seen: Array<Job> = []
          const sizes: Array<number> = []
          let cursor: string | undefined
          do {
            const page = yield* queue.list({ queue: q, limit: 10, ...(cursor ? { cursor } : {}) })
            sizes.push(page.jobs.length)
            seen.push(...page.jobs)
            cursor = page.nextCursor
          } while (cursor !== undefined && sizes.length < 10)
          assert.deepStrictEqual(
            sizes.filter((n) => n > 0),
            [10, 10, 5]
          )
          assert.strictEqual(new Set(ids(seen)).size, 25)
          assert.deepStrictEqual(new Set(ids(seen)), new Set(ids(jobs)))
          for (let i = 1; i < seen.length; i++) assert.isTrue(seen[i]!.createdAt >= seen[i - 1]!.createdAt)
          yield* queue.claim({ workerId: w, queues: [q], max: 4, leaseMs })
          assert.strictEqual((yield* queue.list({ queue: q, state: "claimed" })).jobs.length, 4)
          assert.strictEqual((yield* queue.list({ queue: q, state: "queued", limit: 100 })).jobs.length, 21)
          const pooled = yield* queue.list({ queue: q, pool: "gpu" })
          assert.deepStrictEqual(pooled.jobs.map((j) => j.payload).sort(), [0, 10, 15, 20, 5].sort())
          const badLimit = yield* Effect.flip(queue.list({ queue: q, limit: 0 }))
          assert.strictEqual(badLimit._tag === "InvalidInput" ? badLimit.path : badLimit._tag, "$.limit")
          const badCursor = yield* Effect.flip(queue.list({ queue: q, cursor: "not a cursor!" }))
          assert.strictEqual(badCursor._tag === "InvalidInput" ? badCursor.path : badCursor._tag, "$.cursor")
          const badState = yield* Effect.flip(queue.list({ queue: q, state: "done" as never }))
          assert.strictEqual(badState._tag === "InvalidInput" ? badState.path : badState._tag, "$.state")
        })
      )
    })

    describe("stats", () => {
      it.effect("reports depth, ages, waits and failure rate for a known workload", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("stats")
          const w = worker("w")
          const empty = yield* queue.stats(q)
          assert.deepStrictEqual(empty, {
            byState: { queued: 0, claimed: 0, running: 0, completed: 0, failed: 0, dead_lettered: 0, cancelled: 0 },
            pendingByPriority: { critical: 0, high: 0, normal: 0, low: 0 },
            ready: 0,
            oldestReadyAgeMs: null,
            waitP50Ms: null,
            waitP95Ms: null,
            failureRate: null,
            deadLettered: 0
          })
          const critical = yield* queue.enqueueBatch([
            { queue: q, payload: "c1", priority: "critical" },
            { queue: q, payload: "c2", priority: "critical" },
            { queue: q, payload: "c3", priority: "critical" }
          ])
          yield* queue.enqueueBatch([
            { queue: q, payload: "n1" },
            { queue: q, payload: "n2" },
            { queue: q, payload: "l1", priority: "low" },
            { queue: q, payload: "h-later", priority: "high", delayMs: 10 * delayMs }
          ])
          yield* advance(100)
          const [done, retried] = yield* queue.claim({ workerId: w, queues: [q], max: 2, leaseMs })
          assert.strictEqual(done?.priority, "critical")
          assert.strictEqual(retried?.priority, "critical")
          const leftover = critical.find((j) => j.id !== done!.id && j.id !== retried!.id)!
          yield* advance(50)
          yield* queue.complete(done!.id, w, null)
          yield* queue.cancel(leftover.id)
          const [normal] = yield* queue.claim({ workerId: w, queues: [q], max: 1, leaseMs })
          assert.strictEqual(normal?.priority, "normal")
          // failed after the claim above, so that claim cannot have taken its retry however slow the machine
          yield* queue.fail(retried!.id, w, "boom") // its retry is pending
          const stats = yield* queue.stats(q)
          assert.deepStrictEqual(stats.byState, {
            queued: 3, // a normal, the low and the delayed high one
            claimed: 1,
            running: 0,
            completed: 1,
            failed: 1,
            dead_lettered: 0,
            cancelled: 1
          })
          assert.deepStrictEqual(stats.pendingByPriority, { critical: 1, high: 1, normal: 1, low: 1 })
          // the normal and the low one; the rest wait for a retry or a delay. In real time the retry (due within the
          // backoff's first delay) may already count as ready when stats runs: nothing but the clock decides that
          if (testClock) assert.strictEqual(stats.ready, 2)
          else assert.include([2, 3], stats.ready)
          assert.strictEqual(stats.failureRate, 0.5) // one failed attempt, one completed job
          assert.strictEqual(stats.deadLettered, 0)
          // waits: the completed job's claim and the normal one's; the retried job's claim predates its runAt
          const waits = [done!.claimedAt! - done!.runAt, normal!.claimedAt! - normal!.runAt].sort((a, b) => a - b)
          assert.strictEqual(stats.waitP50Ms, waits[0])
          assert.strictEqual(stats.waitP95Ms, waits[1])
          if (testClock) {
            assert.deepStrictEqual(waits, [100, 150])
            assert.strictEqual(stats.oldestReadyAgeMs, 150)
          } else {
            assert.isTrue(stats.oldestReadyAgeMs! >= 150)
          }
          const invalid = yield* Effect.flip(queue.stats("bad name"))
          assert.strictEqual(invalid._tag === "InvalidInput" ? invalid.path : invalid._tag, "$.queue")
          const global = yield* queue.stats()
          assert.isTrue(global.byState.completed >= 1 && global.byState.cancelled >= 1)
        })
      )
    })

    describe("wake-ups", () => {
      it.effect("wakes an idle subscriber on enqueue, and loses no signal between waits", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("wake")
          const next = yield* queue.wakeups({ queues: [q] })
          const waiting = yield* Effect.forkChild(next)
          yield* Effect.yieldNow
          yield* queue.enqueue({ queue: q, payload: 1 })
          // The wait itself is the signal: it ends only when the subscriber wakes (under TestClock no timer can
          // end it instead)
          yield* Fiber.join(waiting)
          // a signal that arrives while nobody waits is kept for the next wait
          yield* queue.enqueue({ queue: q, payload: 2 })
          yield* next
        }).pipe(Effect.scoped)
      )
    })

    describe("concurrency", () => {
      it.effect("answers each of many concurrent calls for its own job", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("answers")
          const w1 = worker("w1")
          const w2 = worker("w2")
          // Enqueues at once: ten without a key, three for each of five keys
          const enqueued = yield* Effect.all(
            [
              ...Array.from({ length: 10 }, (_, i) => queue.enqueue({ queue: q, payload: { plain: i } })),
              ...Array.from({ length: 15 }, (_, i) =>
                queue.enqueue({ queue: q, payload: { keyed: i }, idempotencyKey: `key-${i % 5}` })
              )
            ],
            { concurrency: "unbounded" }
          )
          for (let i = 0; i < 10; i++) assert.deepStrictEqual(enqueued[i]!.payload, { plain: i })
          for (let k = 0; k < 5; k++) {
            const same = new Set([enqueued[10 + k]!.id, enqueued[15 + k]!.id, enqueued[20 + k]!.id])
            assert.strictEqual(same.size, 1, `one job for key-${k}`)
          }
          assert.strictEqual(new Set(ids(enqueued)).size, 15)
          const jobs = yield* queue.claim({ workerId: w1, queues: [q], max: 50, leaseMs })
          assert.strictEqual(jobs.length, 15)
          // Completions at once: the holder's with results of their own, a stranger's, one twice, one unknown
          const outcomes = yield* Effect.all(
            [
              ...jobs.map((job, i) => Effect.result(queue.complete(job.id, i % 2 === 0 ? w1 : w2, { n: i }))),
              Effect.result(queue.complete(jobs[0]!.id, w1, { n: "again" })),
              Effect.result(queue.complete(JobId.make(`job_${uid()}`), w1, null))
            ],
            { concurrency: "unbounded" }
          )
          jobs.forEach((job, i) => {
            const outcome = outcomes[i]!
            if (i === 0) return
            if (i % 2 === 0) {
              assert.isTrue(Result.isSuccess(outcome), `job ${i} completed`)
              if (Result.isSuccess(outcome)) {
                assert.strictEqual(outcome.success.id, job.id)
                assert.deepStrictEqual(outcome.success.result, { n: i })
              }
            } else {
              assert.isTrue(Result.isFailure(outcome) && outcome.failure._tag === "LeaseLost", `job ${i} refused`)
            }
          })
          // The job completed twice at once: exactly one call wins, and the stored result is the winner's
          const first = outcomes[0]!
          const again = outcomes[jobs.length]!
          assert.strictEqual([first, again].filter(Result.isSuccess).length, 1)
          const winner = Result.isSuccess(first) ? { n: 0 } : { n: "again" }
          assert.deepStrictEqual((yield* queue.get(jobs[0]!.id)).result, winner)
          const unknown = outcomes[jobs.length + 1]!
          assert.isTrue(Result.isFailure(unknown) && unknown.failure._tag === "JobNotFound")
          for (let i = 1; i < jobs.length; i += 2) {
            const job = yield* queue.get(jobs[i]!.id)
            assert.strictEqual(job.state, "claimed")
            assert.strictEqual(job.lease?.workerId, w1)
          }
        })
      )

      it.effect("8 workers complete 400 jobs, each exactly once", () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const q = queueName("workers")
          yield* queue.enqueueBatch(Array.from({ length: 400 }, (_, i) => ({ queue: q, payload: i })))
          const completedBy = new Map<string, string>()
          const run = (n: number) =>
            Effect.gen(function* () {
              const w = worker(`worker-${n}`)
              while (true) {
                const jobs = yield* queue.claim({ workerId: w, queues: [q], max: 5, leaseMs })
                if (jobs.length === 0) return
                yield* Effect.forEach(
                  jobs,
                  (job) =>
                    Effect.gen(function* () {
                      yield* Effect.yieldNow
                      const done = yield* queue.complete(job.id, w, job.payload)
                      assert.isFalse(completedBy.has(job.id), "completed twice")
                      completedBy.set(done.id, w)
                    }),
                  { concurrency: "unbounded" }
                )
              }
            })
          yield* Effect.all(
            Array.from({ length: 8 }, (_, n) => run(n)),
            { concurrency: "unbounded" }
          )
          assert.strictEqual(completedBy.size, 400)
          const stats = yield* queue.stats(q)
          assert.strictEqual(stats.byState.completed, 400)
          assert.strictEqual(stats.failureRate, 0)
        })
      )
    })
  })
}
