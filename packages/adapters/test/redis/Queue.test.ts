import { assert, layer } from "@effect/vitest"
import { layerQueue, makeQueue, queueOperations } from "@mandate/adapters/redis"
import { AgentId, type Job, JobId, Queue, Worker } from "@mandate/core"
import { suite } from "@mandate/core/conformance/queue"
import { Cause, Deferred, Effect, Exit, Fiber, Layer, Logger, Option, Result } from "effect"
import { Redis } from "effect/persistence"
import { TestClock } from "effect/testing"
import { describeRedis, keysUnder, TestRedis } from "../utils/TestRedis.ts"

describeRedis("Queue on Redis", () => {
  // Time is the caller's Clock, passed to every script: TestClock drives leases, delays and retries
  suite(
    "Queue conformance (redis)",
    TestRedis.layerWith((options) => layerQueue(options))
  )

  // And in real time, as production runs it
  suite(
    "Queue conformance (redis, real time)",
    TestRedis.layerWith((options) => layerQueue({ ...options, backoff: { baseMs: 200 }, requeueIntervalMs: 200 })),
    { testClock: false, backoff: { baseMs: 200 }, requeueIntervalMs: 200 }
  )
})

const uid = () => crypto.randomUUID().slice(0, 8)

// Kills every connection named `name` (ours: the test config's unique client name), from another connection
const killConnections = (name: string) =>
  Effect.gen(function* () {
    const redis = yield* Redis.Redis
    const list = yield* redis.send<string>("CLIENT", "LIST")
    const ids = list
      .split("\n")
      .filter((line) => line.includes(` name=${name} `))
      .map((line) => /(?:^|\s)id=(\d+)/.exec(line)?.[1])
      .filter((id): id is string => id !== undefined)
    for (const id of ids) yield* redis.send("CLIENT", "KILL", "ID", id).pipe(Effect.ignore)
    return ids.length
  }).pipe(Effect.provide(TestRedis.otherClient()))

/**
 * Waits until `check` holds, however long that takes on a loaded machine: the test's timeout is the only limit
 * (and the log then says what it waited for).
 */
const waitUntil = (check: () => boolean, what: string) =>
  Effect.gen(function* () {
    while (!check()) yield* Effect.sleep(20)
  }).pipe(Effect.onInterrupt(() => Effect.logError(`the test timed out waiting for ${what}`)))

describeRedis("Queue on Redis: processes, faults, wake-ups, retention", () => {
  layer(
    TestRedis.layerWith((options) => layerQueue({ ...options, backoff: { baseMs: 100 }, requeueIntervalMs: 200 })),
    { excludeTestServices: true, timeout: "120 seconds" }
  )("real time", (it) => {
    it.effect(
      "connections killed mid-workload: workers reconnect, every job completes exactly once, nothing is lost",
      () =>
        Effect.gen(function* () {
          const queue = yield* Queue
          const { config } = yield* TestRedis
          const q = `faults-${uid()}`
          const total = 600
          const runs = new Map<string, number>()
          const completions = new Map<string, number>()
          // Outcomes the worker could not record (a kill swallowed the reply or the write; a write retried after its
          // reply was lost finds the job completed, a lost lease): only such a job may miss its settle, so they bound
          // how many settles may be missing
          let unrecorded = 0
          const counter = Logger.make(({ message }) => {
            const text = String(Array.isArray(message) ? message[0] : message)
            if (text.startsWith("recording the outcome failed") || text.startsWith("lost the lease before recording")) {
              unrecorded++
            }
          })
          const loggers = yield* Effect.service(Logger.CurrentLoggers)
          yield* Worker.run({
            queues: [q],
            concurrency: 10,
            leaseMs: 2_000,
            pollIntervalMs: 200,
            handler: (job) =>
              Effect.sync(() => void runs.set(job.id, (runs.get(job.id) ?? 0) + 1)).pipe(Effect.delay("2 millis")),
            settle: (job, outcome) =>
              Effect.sync(() => {
                if (outcome._tag === "Completed") completions.set(job.id, (completions.get(job.id) ?? 0) + 1)
              })
          }).pipe(Effect.provideService(Logger.CurrentLoggers, new Set([...loggers, counter])))
          for (let i = 0; i < total; i += 100) {
            yield* queue.enqueueBatch(Array.from({ length: 100 }, (_, k) => ({ queue: q, payload: { n: i + k } })))
          }
          // A poll that lands on a killed connection just counts as "not yet"
          const completedInRedis = queue.stats(q).pipe(
            Effect.map((stats) => stats.byState.completed),
            Effect.orElseSucceed(() => -1)
          )
          const waitForCompleted = (count: number, what: string) =>
            Effect.gen(function* () {
              while ((yield* completedInRedis) < count) yield* Effect.sleep(50)
            }).pipe(Effect.onInterrupt(() => Effect.logError(`the test timed out waiting for ${what}`)))
          yield* waitForCompleted(total / 3, "a third of the jobs")
          // the shared connection and the wake-up reader's, while commands are in flight on them
          assert.isAtLeast(yield* killConnections(config.clientName), 2)
          yield* waitForCompleted((2 * total) / 3, "two thirds of the jobs")
          assert.isAtLeast(yield* killConnections(config.clientName), 1)
          yield* waitForCompleted(total, "every job")

          // No job was recorded as completed twice. (A complete whose reply the kill swallowed is applied but never
          // reported, so its job may miss a settle: the queue's state is the record, checked below.) Each missing
          // settle is an outcome the worker logged as unrecorded; how many a kill swallows grows with the load
          assert.isTrue(
            [...completions.values()].every((n) => n === 1),
            "a job completed twice"
          )
          assert.isAtLeast(completions.size, total - unrecorded)
          const { jobs } = yield* queue.list({ queue: q, limit: 1_000 }).pipe(Effect.retry({ times: 5 }))
          assert.strictEqual(jobs.length, total)
          for (const job of jobs) {
            assert.strictEqual(job.state, "completed")
            assert.isAtMost(runs.get(job.id) ?? 0, job.attempts, `job ${job.id} ran more often than it was leased`)
          }
          const stats = yield* queue.stats(q).pipe(Effect.retry({ times: 5 }))
          assert.deepStrictEqual(stats.byState, {
            queued: 0,
            claimed: 0,
            running: 0,
            completed: total,
            failed: 0,
            dead_lettered: 0,
            cancelled: 0
          })
        })
    )

    it.effect("two processes claiming one queue each get distinct jobs", () =>
      Effect.gen(function* () {
        const { prefix } = yield* TestRedis
        const here = yield* Queue
        const otherConnection = yield* Layer.build(TestRedis.otherClient())
        const there = yield* makeQueue({ prefix }).pipe(Effect.provide(otherConnection))
        const q = `two-${uid()}`
        yield* here.enqueueBatch(Array.from({ length: 500 }, (_, n) => ({ queue: q, payload: n })))
        const claimer = (queue: typeof here, n: number) =>
          Effect.gen(function* () {
            const workerId = AgentId.make(`claimer-${n}-${uid()}`)
            const mine: Array<string> = []
            while (true) {
              const jobs = yield* queue.claim({ workerId, queues: [q], max: 9 })
              if (jobs.length === 0) return mine
              mine.push(...jobs.map((j) => j.id))
            }
          })
        const results = yield* Effect.all(
          Array.from({ length: 8 }, (_, n) => claimer(n % 2 === 0 ? here : there, n)),
          { concurrency: "unbounded" }
        )
        const all = results.flat()
        assert.strictEqual(all.length, 500)
        assert.strictEqual(new Set(all).size, 500)
      })
    )

    it.effect("jobs claimed in one batch by a process that died run once more after their lease, never twice", () =>
      Effect.gen(function* () {
        const { prefix } = yield* TestRedis
        const here = yield* Queue
        const otherConnection = yield* Layer.build(TestRedis.otherClient())
        const there = yield* makeQueue({ prefix }).pipe(Effect.provide(otherConnection))
        const q = `died-${uid()}`
        yield* here.enqueueBatch(Array.from({ length: 60 }, (_, n) => ({ queue: q, payload: n })))
        // the dead process took 50 in one claim (a worker's batch and its held jobs) and never ran them
        const dead = yield* there.claim({ workerId: AgentId.make(`dead-${uid()}`), queues: [q], max: 50, leaseMs: 600 })
        assert.strictEqual(dead.length, 50)
        const runs = new Map<string, number>()
        const finished = new Map<string, number>()
        yield* Worker.run({
          queues: [q],
          concurrency: 10,
          pollIntervalMs: 100,
          handler: (job) => Effect.sync(() => void runs.set(job.id, (runs.get(job.id) ?? 0) + 1)),
          settle: (job) => Effect.sync(() => void finished.set(job.id, job.attempts))
        })
        yield* waitUntil(() => finished.size === 60, "every job to complete")
        assert.deepStrictEqual(
          [...runs.values()].filter((n) => n !== 1),
          []
        )
        for (const job of dead) assert.strictEqual(finished.get(job.id), 2) // the dead claim was its first attempt
        const stats = yield* here.stats(q)
        assert.strictEqual(stats.byState.completed, 60)
        assert.strictEqual(stats.failureRate, 50 / 110) // 50 expired leases, 60 completions
      })
    )

    // The workers below poll every ten minutes, far longer than a test may run: a job they take at all was taken on a
    // wake-up, never on a poll. So no latency bound decides the outcome (a loaded machine is slow, not wrong).
    it.effect("an idle worker wakes on another process's enqueue, without polling", () =>
      Effect.gen(function* () {
        const { prefix } = yield* TestRedis
        const q = `wake-${uid()}`
        const started: Array<number> = []
        yield* Worker.run({
          queues: [q],
          pollIntervalMs: 600_000,
          handler: () => Effect.sync(() => void started.push(Date.now()))
        })
        const otherConnection = yield* Layer.build(TestRedis.otherClient())
        const there = yield* makeQueue({ prefix }).pipe(Effect.provide(otherConnection))
        // idle long enough that the worker's next poll is more than a second away
        yield* Effect.sleep(1_600)
        const sent = Date.now()
        yield* there.enqueue({ queue: q, payload: "now" })
        yield* waitUntil(() => started.length === 1, "the worker to take the job")
        assert.isAtLeast(started[0]!, sent)
        // a delayed job: the enqueue wakes the worker, which then sleeps until the job is due
        const delayedSent = Date.now()
        yield* there.enqueue({ queue: q, payload: "later", delayMs: 400 })
        yield* waitUntil(() => started.length === 2, "the delayed job")
        // not before it is due (taken at all, it was taken on the timer the wake-up set, not on a poll)
        assert.isAtLeast(started[1]! - delayedSent, 390)
      })
    )

    it.effect("wake-ups survive a killed reader connection", () =>
      Effect.gen(function* () {
        const { prefix, config } = yield* TestRedis
        const q = `wake-kill-${uid()}`
        const started: Array<number> = []
        yield* Worker.run({
          queues: [q],
          pollIntervalMs: 600_000,
          handler: () => Effect.sync(() => void started.push(Date.now()))
        })
        yield* Effect.sleep(300)
        assert.isAtLeast(yield* killConnections(config.clientName), 1)
        const otherConnection = yield* Layer.build(TestRedis.otherClient())
        const there = yield* makeQueue({ prefix }).pipe(Effect.provide(otherConnection))
        yield* Effect.sleep(1_500)
        const sent = Date.now()
        yield* there.enqueue({ queue: q, payload: 1 })
        yield* waitUntil(() => started.length === 1, "the worker to take the job")
        assert.isAtLeast(started[0]!, sent)
      })
    )
  })

  layer(
    TestRedis.layerWith((options) => layerQueue({ ...options, retainFinishedMs: 0, requeueIntervalMs: 50 })),
    { excludeTestServices: true }
  )("retention", (it) => {
    it.effect("finished jobs are deleted after the retention, with their keys and counts; dead letters stay", () =>
      Effect.gen(function* () {
        const queue = yield* Queue
        const { prefix } = yield* TestRedis
        const q = `retain-${uid()}`
        const w = AgentId.make(`w-${uid()}`)
        const done = yield* queue.enqueue({ queue: q, payload: 1, idempotencyKey: "k", priority: "critical" })
        const dead = yield* queue.enqueue({ queue: q, payload: 2, maxAttempts: 1, priority: "high" })
        const cancelled = yield* queue.enqueue({ queue: q, payload: 3 })
        yield* queue.claim({ workerId: w, queues: [q], max: 2 })
        yield* queue.complete(done.id, w, "ok")
        yield* queue.fail(dead.id, w, "boom")
        yield* queue.cancel(cancelled.id)
        const gone = (id: typeof done.id) =>
          queue.get(id).pipe(
            Effect.as(false),
            Effect.catchTag("JobNotFound", () => Effect.succeed(true))
          )
        for (let i = 0; i < 100 && !((yield* gone(done.id)) && (yield* gone(cancelled.id))); i++) {
          yield* Effect.sleep(50)
        }
        assert.isTrue(yield* gone(done.id))
        assert.isTrue(yield* gone(cancelled.id))
        assert.strictEqual((yield* queue.get(dead.id)).state, "dead_lettered")
        const stats = yield* queue.stats(q)
        assert.strictEqual(stats.byState.completed, 0)
        assert.strictEqual(stats.byState.cancelled, 0)
        assert.strictEqual(stats.byState.dead_lettered, 1)
        assert.strictEqual(stats.failureRate, 1)
        assert.deepStrictEqual(
          (yield* queue.list({ queue: q })).jobs.map((j) => j.id),
          [dead.id]
        )
        const again = yield* queue.enqueue({ queue: q, payload: 4, idempotencyKey: "k" })
        assert.notStrictEqual(again.id, done.id)
        const keys = yield* keysUnder(prefix)
        assert.isFalse(keys.some((key) => key.endsWith(done.id) || key.endsWith(cancelled.id)))
      })
    )
  })
})

describeRedis("Queue on Redis: large batches", () => {
  layer(TestRedis.layerWith((options) => layerQueue(options)))("chunks", (it) => {
    it.effect("a batch larger than one script's share is stored whole, in order", () =>
      Effect.gen(function* () {
        const queue = yield* Queue
        const q = `big-${uid()}`
        const jobs = yield* queue.enqueueBatch(
          Array.from({ length: 4_500 }, (_, n) => ({
            queue: q,
            payload: n,
            ...(n === 4_499 ? { idempotencyKey: "last" } : {})
          }))
        )
        assert.strictEqual(jobs.length, 4_500)
        assert.deepStrictEqual(
          jobs.map((j) => j.payload),
          Array.from({ length: 4_500 }, (_, n) => n)
        )
        assert.strictEqual((yield* queue.stats(q)).byState.queued, 4_500)
        const page = yield* queue.list({ queue: q, limit: 1_000 })
        assert.deepStrictEqual(
          page.jobs.map((j) => j.payload),
          Array.from({ length: 1_000 }, (_, n) => n)
        )
        const [first] = yield* queue.claim({ workerId: AgentId.make(`w-${uid()}`), queues: [q] })
        assert.strictEqual(first?.payload, 0)
      })
    )
  })
})

describeRedis("Queue on Redis: merged single enqueues", () => {
  layer(TestRedis.layerWith((options) => layerQueue(options)))("pipelined", (it) => {
    // Single enqueues are merged into script calls, two of them in flight at once: every caller still gets its own
    // job, and a key given in two calls in flight at once still makes one job
    it.effect("2,000 enqueues, 64 at a time, 1 in 4 keyed by one of 100 keys: one answer each, one job per key", () =>
      Effect.gen(function* () {
        const queue = yield* Queue
        const q = `merged-${uid()}`
        const n = 2_000
        const jobs = yield* Effect.forEach(
          Array.from({ length: n }, (_, i) => i),
          (i) =>
            queue.enqueue({
              queue: q,
              payload: { i },
              ...(i % 4 === 0 ? { idempotencyKey: `key-${(i / 4) % 100}` } : {})
            }),
          { concurrency: 64 }
        )
        const byKey = new Map<string, string>()
        jobs.forEach((job, i) => {
          if (i % 4 !== 0) {
            assert.deepStrictEqual(job.payload, { i })
            return
          }
          const key = `key-${(i / 4) % 100}`
          assert.strictEqual(job.idempotencyKey, key)
          const seen = byKey.get(key)
          if (seen === undefined) byKey.set(key, job.id)
          else assert.strictEqual(job.id, seen, `one job for ${key}`)
        })
        const distinct = (n * 3) / 4 + 100
        assert.strictEqual(new Set(jobs.map((job) => job.id)).size, distinct)
        assert.strictEqual((yield* queue.stats(q)).byState.queued, distinct)
        // the queue's list holds every job once
        const listed = new Set<string>()
        let cursor: string | undefined
        do {
          const page = yield* queue.list({ queue: q, limit: 1_000, ...(cursor === undefined ? {} : { cursor }) })
          for (const job of page.jobs) listed.add(job.id)
          cursor = page.nextCursor
        } while (cursor !== undefined)
        assert.strictEqual(listed.size, distinct)
      })
    )
  })
})

/**
 * The Redis service with each call of the queue's enqueue script handed to `around` as it is sent (its params, and
 * the call to run), to count or hold it; every other script as is.
 */
const aroundEnqueues = (
  redis: Redis.Redis["Service"],
  around: <A, E>(params: ReadonlyArray<unknown>, run: Effect.Effect<A, E>) => Effect.Effect<A, E>
): Redis.Redis["Service"] => {
  const enqueueLua = queueOperations().enqueue
  return Redis.Redis.of({
    ...redis,
    eval: (script) => {
      const run = redis.eval(script)
      if (script.lua !== enqueueLua) return run
      return (...params) => Effect.suspend(() => around(params, run(...params)))
    }
  })
}

describeRedis("Queue on Redis: merged single enqueues, written apart", () => {
  // node-redis writes the commands sent during an event-loop turn in one write, at the end of the turn (a
  // setImmediate). Two merged enqueue calls in one write are read and answered together by Redis, and their callers,
  // resumed together, would send the next two in one write again: Node and Redis would take turns for good instead
  // of working at once. The Redis service below counts the enqueue calls each such write would carry
  layer(TestRedis.layer)("pipelined", (it) => {
    it.effect("2,000 enqueues, 50 at a time: no write carries two enqueue calls", () =>
      Effect.gen(function* () {
        const { prefix } = yield* TestRedis
        const writes: Array<number> = []
        let unwritten = 0
        const counting = aroundEnqueues(yield* Redis.Redis, (_, run) => {
          // as node-redis schedules its write when a command is sent
          if (unwritten++ === 0) {
            setImmediate(() => {
              writes.push(unwritten)
              unwritten = 0
            })
          }
          return run
        })
        const queue = yield* makeQueue({ prefix }).pipe(Effect.provideService(Redis.Redis, counting))
        const q = `apart-${uid()}`
        const jobs = yield* Effect.forEach(
          Array.from({ length: 2_000 }, (_, i) => i),
          (i) => queue.enqueue({ queue: q, payload: { i } }),
          { concurrency: 50 }
        )
        assert.deepStrictEqual(
          jobs.map((job) => job.payload),
          Array.from({ length: 2_000 }, (_, i) => ({ i }))
        )
        assert.strictEqual((yield* queue.stats(q)).byState.queued, 2_000)
        assert.deepStrictEqual(
          writes.filter((calls) => calls > 1),
          []
        )
        // and they were not merged into fewer calls to get there
        assert.isAbove(writes.length, 2_000 / 50)
      })
    )
  })
})

describeRedis("Queue on Redis: light load", () => {
  // At light load a job's latency is the client work before its enqueue and its claim are written, and what is
  // handled before their answers: no turn of the event loop spent waiting, nothing handled ahead that can wait
  layer(TestRedis.layer)("one job at a time", (it) => {
    it.effect("a lone enqueue is sent at once; calls made in its turn wait for its answer, merged into one", () =>
      Effect.gen(function* () {
        const { prefix } = yield* TestRedis
        // jobs per enqueue call sent, in order
        const calls: Array<number> = []
        const counting = aroundEnqueues(yield* Redis.Redis, (params, run) => {
          calls.push(Number(params[3]))
          return run
        })
        const queue = yield* makeQueue({ prefix }).pipe(Effect.provideService(Redis.Redis, counting))
        const q = `lone-${uid()}`
        const fork = Effect.runForkWith(yield* Effect.context<never>())
        // sent before the caller's fiber gave the event loop back (no microtask, no turn waited for)
        const first = fork(queue.enqueue({ queue: q, payload: 0 }))
        assert.deepStrictEqual(calls, [1])
        // in the same turn, nine more calls: not written with it, but merged into one call once it is answered
        const more = Array.from({ length: 9 }, (_, i) => fork(queue.enqueue({ queue: q, payload: i + 1 })))
        assert.deepStrictEqual(calls, [1])
        const jobs = yield* Fiber.joinAll([first, ...more])
        assert.deepStrictEqual(
          jobs.map((job) => job.payload),
          Array.from({ length: 10 }, (_, i) => i)
        )
        assert.deepStrictEqual(calls, [1, 9])
        // nothing out again: the next lone call is sent at once too
        const last = fork(queue.enqueue({ queue: q, payload: 10 }))
        assert.deepStrictEqual(calls, [1, 9, 1])
        yield* Fiber.join(last)
        assert.strictEqual((yield* queue.stats(q)).byState.queued, 11)
      })
    )

    it.effect("a call made a turn after a lone one, while that one is out, is sent at once", () =>
      Effect.gen(function* () {
        const { prefix } = yield* TestRedis
        const calls: Array<number> = []
        const gate = yield* Deferred.make<void>()
        const gated = aroundEnqueues(yield* Redis.Redis, (params, run) => {
          calls.push(Number(params[3]))
          // the first call stays out (unanswered) until the gate opens
          return calls.length === 1 ? Effect.andThen(Deferred.await(gate), run) : run
        })
        const queue = yield* makeQueue({ prefix }).pipe(Effect.provideService(Redis.Redis, gated))
        const q = `later-${uid()}`
        const fork = Effect.runForkWith(yield* Effect.context<never>())
        const first = fork(queue.enqueue({ queue: q, payload: 0 }))
        assert.deepStrictEqual(calls, [1])
        yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
        const second = fork(queue.enqueue({ queue: q, payload: 1 }))
        // its flush (a microtask) has run: sent as a second call, without waiting for the first's answer
        yield* Effect.promise(() => Promise.resolve())
        assert.deepStrictEqual(calls, [1, 1])
        yield* Deferred.succeed(gate, undefined)
        const jobs = yield* Fiber.joinAll([first, second])
        assert.deepStrictEqual(
          jobs.map((job) => job.payload),
          [0, 1]
        )
      })
    )

    it.effect("a signal is handled in the turn after its answer, not ahead of the answers read with it", () =>
      Effect.gen(function* () {
        const { prefix } = yield* TestRedis
        const redis = yield* Redis.Redis
        // set a turn after the wake-up reader got an answer carrying entries
        let turnAfterAnswer = false
        const watching = Redis.Redis.of({
          ...redis,
          reserve: Effect.map(redis.reserve, (connection) => ({
            ...connection,
            send: <A>(command: string, ...args: ReadonlyArray<string>) =>
              command !== "XREAD"
                ? connection.send<A>(command, ...args)
                : Effect.tap(connection.send<A>(command, ...args), (reply) =>
                    Effect.sync(() => {
                      if (reply !== null && reply !== undefined) setImmediate(() => (turnAfterAnswer = true))
                    })
                  )
          }))
        })
        const here = yield* makeQueue({ prefix }).pipe(Effect.provideService(Redis.Redis, watching))
        const there = yield* makeQueue({ prefix }).pipe(Effect.provide(yield* Layer.build(TestRedis.otherClient())))
        const q = `signal-${uid()}`
        const wait = yield* here.wakeups({ queues: [q] })
        // an empty claim first: the wait then needs no due-time read, and parks on its latch at once
        assert.deepStrictEqual(yield* here.claim({ workerId: AgentId.make(`w-${uid()}`), queues: [q] }), [])
        const woken = yield* Effect.forkChild(
          Effect.andThen(
            wait,
            Effect.sync(() => turnAfterAnswer)
          ),
          {
            startImmediately: true
          }
        )
        // another process's enqueue: its signal reaches this layer through the reader only
        yield* there.enqueue({ queue: q, payload: 1 })
        assert.isTrue(yield* Fiber.join(woken))
      })
    )
  })
})

describeRedis("Queue on Redis: completing claimed jobs", () => {
  // A job this process claimed is completed without reading it back (its claimed copy stands in while its attempts
  // are unchanged); what `complete` answers must be the job as stored either way
  layer(TestRedis.layerWith((options) => layerQueue(options)))("claimed copies", (it) => {
    it.effect("answers with the stored job: claimed here, claimed by another process, or re-claimed since", () =>
      Effect.gen(function* () {
        const { prefix } = yield* TestRedis
        const here = yield* Queue
        const otherConnection = yield* Layer.build(TestRedis.otherClient())
        const there = yield* makeQueue({ prefix }).pipe(Effect.provide(otherConnection))
        const q = `copies-${uid()}`
        const w = AgentId.make(`w-${uid()}`)
        yield* here.enqueueBatch([
          { queue: q, payload: { n: 1, nested: [1, "x"] }, priority: "high", idempotencyKey: "one", pool: "gpu" },
          { queue: q, payload: 2 },
          { queue: q, payload: 3 }
        ])

        // claimed here, started and heartbeaten before completing: every field as stored
        const [first] = yield* here.claim({ workerId: w, queues: [q], pool: "gpu", leaseMs: 1_000 })
        yield* here.start(first!.id, w)
        yield* TestClock.adjust(10)
        yield* here.heartbeat(first!.id, w, 5_000)
        yield* TestClock.adjust(10)
        const completed = yield* here.complete(first!.id, w, { ok: true })
        assert.deepStrictEqual(completed, yield* here.get(first!.id))
        assert.strictEqual(completed.state, "completed")
        assert.deepStrictEqual(completed.result, { ok: true })
        assert.strictEqual(completed.lease, undefined)
        assert.strictEqual(completed.idempotencyKey, "one")
        // a second completion is refused, not answered from the copy
        const again = yield* Effect.flip(here.complete(first!.id, w, null))
        assert.strictEqual(again._tag, "LeaseLost")

        // claimed by another process: read back
        const [second] = yield* there.claim({ workerId: w, queues: [q] })
        const fromThere = yield* here.complete(second!.id, w, "done")
        assert.deepStrictEqual(fromThere, yield* here.get(second!.id))

        // claimed here, its lease expired and the job re-claimed elsewhere under the same worker id: the copy is
        // stale (one attempt behind), so the job is read back
        const [third] = yield* here.claim({ workerId: w, queues: [q], leaseMs: 1_000 })
        yield* TestClock.adjust(1_001)
        yield* there.requeueExpired
        const [reclaimed] = yield* there.claim({ workerId: w, queues: [q] })
        assert.strictEqual(reclaimed?.id, third!.id)
        assert.strictEqual(reclaimed?.attempts, 2)
        const latest = yield* here.complete(third!.id, w, null)
        assert.strictEqual(latest.attempts, 2)
        assert.strictEqual(latest.failures, 1)
        assert.deepStrictEqual(latest, yield* here.get(third!.id))

        // claimed here, then released and claimed again elsewhere under the same worker id: the attempt was given
        // back, so the attempts match the copy's again, but the claim time does not: read back
        yield* here.enqueue({ queue: q, payload: 4 })
        const [fourth] = yield* here.claim({ workerId: w, queues: [q] })
        yield* there.release(fourth!.id, w)
        yield* TestClock.adjust(10)
        const [again4] = yield* there.claim({ workerId: w, queues: [q] })
        assert.strictEqual(again4?.attempts, fourth!.attempts)
        const released = yield* here.complete(fourth!.id, w, null)
        assert.strictEqual(released.claimedAt, again4!.claimedAt)
        assert.deepStrictEqual(released, yield* here.get(fourth!.id))
        assert.deepStrictEqual((yield* here.stats(q)).byState, {
          queued: 0,
          claimed: 0,
          running: 0,
          completed: 4,
          failed: 0,
          dead_lettered: 0,
          cancelled: 0
        })
      })
    )

    it.effect("a job hash that does not read as a job is a store error, in a read and in a claim", () =>
      Effect.gen(function* () {
        const { prefix } = yield* TestRedis
        const queue = yield* Queue
        const redis = yield* Redis.Redis
        const q = `corrupt-${uid()}`
        const w = AgentId.make(`w-${uid()}`)
        const [a, b, c] = yield* queue.enqueueBatch([
          { queue: q, payload: 1 },
          { queue: q, payload: 2 },
          { queue: q, payload: 3 }
        ])
        // what the layer wrote reads back whole
        assert.deepStrictEqual(yield* queue.get(a!.id), a)
        yield* redis.send("HSET", `${prefix}job:${a!.id}`, "attempts", "1.5")
        yield* redis.send("HSET", `${prefix}job:${b!.id}`, "state", "lost")
        yield* redis.send("HSET", `${prefix}job:${c!.id}`, "payload", "{not json")
        for (const job of [a!, b!, c!]) {
          const error = yield* Effect.flip(queue.get(job.id))
          assert.strictEqual(error._tag, "QueueStoreError")
        }
        const claimed = yield* Effect.flip(queue.claim({ workerId: w, queues: [q], max: 3 }))
        assert.strictEqual(claimed._tag, "QueueStoreError")
      })
    )

    it.effect("heartbeats made at once each answer their job as stored, or their own refusal", () =>
      Effect.gen(function* () {
        const { prefix } = yield* TestRedis
        const here = yield* Queue
        const otherConnection = yield* Layer.build(TestRedis.otherClient())
        const there = yield* makeQueue({ prefix }).pipe(Effect.provide(otherConnection))
        const q = `beats-${uid()}`
        const w = AgentId.make(`w-${uid()}`)
        const other = AgentId.make(`other-${uid()}`)
        yield* here.enqueueBatch(Array.from({ length: 5 }, (_, n) => ({ queue: q, payload: n })))
        const mine = yield* here.claim({ workerId: w, queues: [q], max: 3, leaseMs: 1_000 })
        const [elsewhere] = yield* there.claim({ workerId: w, queues: [q] })
        const [theirs] = yield* there.claim({ workerId: other, queues: [q] })
        yield* here.start(mine[0]!.id, w)
        yield* here.cancel(mine[2]!.id)
        yield* TestClock.adjust(10)
        const beats = yield* Effect.all(
          [mine[0]!, mine[1]!, mine[2]!, elsewhere!, theirs!].map((job) =>
            Effect.result(here.heartbeat(job.id, w, 5_000))
          ),
          { concurrency: "unbounded" }
        )
        for (const [i, job] of [mine[0]!, mine[1]!, elsewhere!].entries()) {
          const beat = beats[i === 2 ? 3 : i]!
          assert.isTrue(Result.isSuccess(beat))
          const stored = yield* here.get(job.id)
          assert.deepStrictEqual(Result.getOrThrow(beat), stored)
          assert.strictEqual(stored.lease?.expiresAt, stored.updatedAt + 5_000)
        }
        assert.strictEqual(Result.getOrThrow(beats[0]!).state, "running")
        const cancelled = beats[2]!
        assert.isTrue(Result.isFailure(cancelled) && cancelled.failure._tag === "LeaseLost")
        const held = beats[4]!
        assert.isTrue(
          Result.isFailure(held) && held.failure._tag === "LeaseLost" && held.failure.reason === "held_by_other"
        )
        // the extended leases hold past the first expiry; the others' lease did not move
        yield* TestClock.adjust(1_000)
        const requeued = yield* here.requeueExpired
        assert.deepStrictEqual(requeued, [])
        yield* here.complete(mine[1]!.id, w, null)
      })
    )

    it.effect("completeMany: one exit per completion, in order, each as `complete` would answer it", () =>
      Effect.gen(function* () {
        const { prefix } = yield* TestRedis
        const here = yield* Queue
        const otherConnection = yield* Layer.build(TestRedis.otherClient())
        const there = yield* makeQueue({ prefix }).pipe(Effect.provide(otherConnection))
        const completeMany = here.completeMany
        assert.isDefined(completeMany)
        const q = `many-${uid()}`
        const w = AgentId.make(`w-${uid()}`)
        const other = AgentId.make(`other-${uid()}`)
        yield* here.enqueueBatch(Array.from({ length: 6 }, (_, n) => ({ queue: q, payload: n })))
        const mine = yield* here.claim({ workerId: w, queues: [q], max: 4 })
        const [elsewhere] = yield* there.claim({ workerId: w, queues: [q] })
        const [theirs] = yield* there.claim({ workerId: other, queues: [q] })
        yield* TestClock.adjust(10)
        const exits = yield* completeMany!([
          { jobId: mine[0]!.id, workerId: w },
          { jobId: mine[1]!.id, workerId: w, result: { ok: [1, "x"] } },
          // not JSON: refused alone, the job stays leased
          { jobId: mine[2]!.id, workerId: w, result: { bad: Number.NaN } },
          // claimed by the other process: read back
          { jobId: elsewhere!.id, workerId: w, result: "there" },
          { jobId: theirs!.id, workerId: w },
          { jobId: JobId.make("missing-job"), workerId: w },
          // given twice: the second is refused
          { jobId: mine[0]!.id, workerId: w }
        ])
        assert.strictEqual(exits.length, 7)
        for (const i of [0, 1, 3]) {
          const exit = exits[i]!
          assert.isTrue(Exit.isSuccess(exit))
          const job = (exit as Exit.Success<Job>).value
          assert.strictEqual(job.state, "completed")
          assert.deepStrictEqual(job, yield* here.get(job.id))
        }
        assert.deepStrictEqual((exits[1] as Exit.Success<Job>).value.result, { ok: [1, "x"] })
        assert.strictEqual((exits[0] as Exit.Success<Job>).value.result, null)
        const failure = (i: number) => {
          const exit = exits[i]!
          assert.isTrue(Exit.isFailure(exit))
          const error = Cause.findErrorOption((exit as Exit.Failure<Job, { readonly _tag: string }>).cause)
          assert.isTrue(Option.isSome(error))
          return Option.getOrThrow(error) as { readonly _tag: string; readonly reason?: string }
        }
        assert.strictEqual(failure(2)._tag, "InvalidInput")
        assert.strictEqual((yield* here.get(mine[2]!.id)).state, "claimed")
        assert.strictEqual(failure(4)._tag, "LeaseLost")
        assert.strictEqual(failure(4).reason, "held_by_other")
        assert.strictEqual(failure(5)._tag, "JobNotFound")
        assert.strictEqual(failure(6)._tag, "LeaseLost")
        yield* here.complete(mine[2]!.id, w, null)
        assert.deepStrictEqual((yield* here.stats(q)).byState, {
          queued: 0,
          claimed: 2,
          running: 0,
          completed: 4,
          failed: 0,
          dead_lettered: 0,
          cancelled: 0
        })
      })
    )
  })
})

describeRedis("Queue on Redis: listings across queues, and stores written by earlier layouts", () => {
  // Each build has a prefix of its own: a listing across queues sees exactly this test's jobs
  layer(TestRedis.layerWith((options) => layerQueue(options)))("across queues", (it) => {
    // No index of every job is kept: a listing without a queue merges the queues' indexes by creation order
    it.effect("a listing without a queue pages through every queue's jobs, oldest first, each once, filtered", () =>
      Effect.gen(function* () {
        const queue = yield* Queue
        const names = [`a-${uid()}`, `b-${uid()}`, `c-${uid()}`]
        const made: Array<Job> = []
        for (let i = 0; i < 60; i++) {
          const q = names[(i * 7) % 3]!
          made.push(
            i % 4 === 0
              ? (yield* queue.enqueueBatch([{ queue: q, payload: i, ...(i % 8 === 0 ? { pool: "gpu" } : {}) }]))[0]!
              : yield* queue.enqueue({ queue: q, payload: i, priority: i % 5 === 0 ? "high" : "normal" })
          )
        }
        const seen: Array<JobId> = []
        let cursor: string | undefined
        do {
          const page = yield* queue.list({ limit: 7, ...(cursor ? { cursor } : {}) })
          seen.push(...page.jobs.map((j) => j.id))
          cursor = page.nextCursor
        } while (cursor !== undefined)
        assert.deepStrictEqual(
          seen,
          made.map((j) => j.id)
        )
        const claimed = yield* queue.claim({ workerId: AgentId.make(`w-${uid()}`), queues: [names[1]!], max: 5 })
        assert.deepStrictEqual(
          (yield* queue.list({ state: "claimed", limit: 100 })).jobs.map((j) => j.id).sort(),
          claimed.map((j) => j.id).sort()
        )
        assert.deepStrictEqual(
          (yield* queue.list({ pool: "gpu", limit: 100 })).jobs.map((j) => j.id),
          made.filter((j) => j.pool === "gpu").map((j) => j.id)
        )
        assert.deepStrictEqual(
          (yield* queue.list({ queue: names[2]!, limit: 100 })).jobs.map((j) => j.id),
          made.filter((j) => j.queue === names[2]).map((j) => j.id)
        )
      })
    )
  })

  layer(
    TestRedis.layerWith((options) => layerQueue(options)),
    { excludeTestServices: true }
  )("scores", (it) => {
    // The scripts write whole-number scores as text themselves ('%d'); a fraction must still reach Redis exactly
    it.effect("a wait and a ready score with a fraction of a millisecond are stored exactly", () =>
      Effect.gen(function* () {
        const queue = yield* Queue
        const q = `frac-${uid()}`
        const w = AgentId.make(`w-${uid()}`)
        const runAt = Date.now() - 1_000.25
        const early = yield* queue.enqueue({ queue: q, payload: 1, runAt: runAt + 0.5 })
        const late = yield* queue.enqueue({ queue: q, payload: 2, runAt })
        const [first, second] = yield* queue.claim({ workerId: w, queues: [q], max: 2 })
        // ready order is by runAt: the later-enqueued job is a quarter of a millisecond earlier
        assert.deepStrictEqual([first!.id, second!.id], [late.id, early.id])
        const stats = yield* queue.stats(q)
        // nearest rank of two waits: p50 the shorter (the early job's), p95 the longer
        assert.strictEqual(stats.waitP50Ms, second!.claimedAt! - (runAt + 0.5))
        assert.strictEqual(stats.waitP95Ms, first!.claimedAt! - runAt)
      })
    )
  })

  layer(TestRedis.layerWith((options) => layerQueue(options)))("earlier layouts", (it) => {
    // Jobs written before: an index of every job (`jobs:all`), and a new job's hash with 'leaseWorker' and 'pool'
    // stored as empty strings and its numbers as Lua formatted them. They read, list, claim, complete, count and
    // prune as jobs written now do
    it.effect("jobs stored by the previous layout read, list, claim and complete as before", () =>
      Effect.gen(function* () {
        const { prefix } = yield* TestRedis
        const queue = yield* Queue
        const redis = yield* Redis.Redis
        const q = `old-${uid()}`
        const w = AgentId.make(`w-${uid()}`)
        const jobs = yield* queue.enqueueBatch([
          { queue: q, payload: 1 },
          { queue: q, payload: 2, idempotencyKey: "k" },
          { queue: q, payload: 3, priority: "high" }
        ])
        for (const job of jobs) {
          const seq = yield* redis.send<string>("HGET", `${prefix}job:${job.id}`, "seq")
          yield* redis.send("HSET", `${prefix}job:${job.id}`, "leaseWorker", "", "pool", "")
          yield* redis.send("ZADD", `${prefix}jobs:all`, seq, job.id)
        }
        for (const job of jobs) assert.deepStrictEqual(yield* queue.get(job.id), job)
        assert.deepStrictEqual(
          (yield* queue.list({ limit: 2 })).jobs.map((j) => j.id),
          [jobs[0]!.id, jobs[1]!.id]
        )
        const claimed = yield* queue.claim({ workerId: w, queues: [q], max: 3 })
        assert.deepStrictEqual(
          claimed.map((j) => j.payload),
          [3, 1, 2]
        )
        for (const job of claimed) {
          assert.strictEqual(job.attempts, 1)
          assert.strictEqual(job.failures, 0)
          assert.isUndefined(job.pool)
        }
        const done = yield* queue.complete(jobs[0]!.id, w, "ok")
        assert.strictEqual(done.state, "completed")
        assert.isUndefined(done.lease)
        yield* queue.fail(jobs[1]!.id, w, "boom")
        assert.strictEqual((yield* queue.get(jobs[1]!.id)).failures, 1)
        assert.deepStrictEqual((yield* queue.stats(q)).byState, {
          queued: 0,
          claimed: 1,
          running: 0,
          completed: 1,
          failed: 1,
          dead_lettered: 0,
          cancelled: 0
        })
        const again = yield* queue.enqueue({ queue: q, payload: 4, idempotencyKey: "k" })
        assert.strictEqual(again.id, jobs[1]!.id)
      })
    )
  })
})
