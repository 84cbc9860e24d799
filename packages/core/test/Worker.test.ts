import { assert, describe, it } from "@effect/vitest"
import {
  Agents,
  type ClaimRequest,
  type Job,
  JobFailure,
  Queue,
  UnitOfWork,
  UnitOfWorkError,
  Worker
} from "@mandate/core"
import { Deferred, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { TestClock } from "effect/testing"

/** Lets forked fibers run (TestClock time does not move). */
const yields = (n = 50) =>
  Effect.gen(function* () {
    for (let i = 0; i < n; i++) yield* Effect.yieldNow
  })

/** Moves TestClock in steps until `check` holds. */
const drive = <E, R>(check: Effect.Effect<boolean, E, R>, stepMs: number, maxSteps = 2_000) =>
  Effect.gen(function* () {
    for (let i = 0; i < maxSteps; i++) {
      yield* yields()
      if (yield* check) return i * stepMs
      yield* TestClock.adjust(stepMs)
    }
    return assert.fail("condition never held")
  })

/** Runs a worker in a scope of its own, so a test can stop it. */
const start = <E = never, R = never, RS = never>(options: Worker.RunOptions<E, R, RS>) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const handle = yield* Worker.run(options).pipe(Scope.provide(scope))
    return { handle, stop: Scope.close(scope, Exit.void) }
  })

const stateOf = (jobId: Job["id"]) => Queue.use((q) => Effect.map(q.get(jobId), (j) => j.state))
const allIn = (jobs: ReadonlyArray<Job>, state: Job["state"]) =>
  Effect.map(
    Effect.forEach(jobs, (j) => stateOf(j.id)),
    (states) => states.every((s) => s === state)
  )

/**
 * A second worker (2 slots, long jobs) starts two of what `first` left at once; `check` runs while both work;
 * then both stop and nothing stays claimed (a claim may be under way, uninterruptible: the clock moves until both
 * have stopped).
 */
const secondWorkerGetsTheRest = (
  first: { readonly stop: Effect.Effect<void> },
  jobs: ReadonlyArray<Job>,
  check: Effect.Effect<void> = Effect.void
) =>
  Effect.gen(function* () {
    const second = yield* start({
      queues: ["q"],
      concurrency: 2,
      shutdownGraceMs: 0,
      handler: () => Effect.sleep(10_000)
    })
    yield* drive(
      Effect.map(second.handle.stats, (s) => s.running === 2),
      1,
      10
    )
    yield* check
    const stopping = yield* Effect.forkChild(Effect.andThen(first.stop, second.stop))
    for (let i = 0; i < 10; i++) {
      yield* yields()
      yield* TestClock.adjust(5)
    }
    yield* Fiber.join(stopping)
    const states = yield* Effect.forEach(jobs, (j) => stateOf(j.id))
    assert.isFalse(states.includes("claimed"), "held and running jobs given back")
  })

/** A Queue that counts claims and remembers their size. */
const countingQueue = (log: { claims: number; maxes: Array<number> }) =>
  Layer.effect(
    Queue,
    Effect.gen(function* () {
      const queue = yield* Queue
      return Queue.of({
        ...queue,
        claim: (request: ClaimRequest) => {
          log.claims++
          log.maxes.push(request.max ?? 1)
          return queue.claim(request)
        }
      })
    })
  ).pipe(Layer.provide(Queue.layerMemory()))

/** A Queue whose claims take 5 ms (a round trip), counting them with their `max` and the jobs they returned. */
const slowClaimQueue = (log: { claims: number; maxes: Array<number>; sizes: Array<number> }) =>
  Layer.effect(
    Queue,
    Effect.gen(function* () {
      const queue = yield* Queue
      return Queue.of({
        ...queue,
        claim: (request: ClaimRequest) => {
          log.claims++
          log.maxes.push(request.max ?? 1)
          return Effect.andThen(
            Effect.sleep(5),
            Effect.tap(queue.claim(request), (jobs) => Effect.sync(() => log.sizes.push(jobs.length)))
          )
        }
      })
    })
  ).pipe(Layer.provide(Queue.layerMemory()))

/** A Queue with `completeMany` (each completion through `complete`), remembering each call's size. */
const batchingQueue = (sizes: Array<number>) =>
  Layer.effect(
    Queue,
    Effect.gen(function* () {
      const queue = yield* Queue
      return Queue.of({
        ...queue,
        completeMany: (completions) => {
          sizes.push(completions.length)
          return Effect.forEach(completions, (c) => Effect.exit(queue.complete(c.jobId, c.workerId, c.result)))
        }
      })
    })
  ).pipe(Layer.provide(Queue.layerMemory()))

describe("Worker.run", () => {
  it.effect("runs jobs with bounded concurrency and records their results", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const jobs = yield* queue.enqueueBatch(Array.from({ length: 30 }, (_, i) => ({ queue: "q", payload: i })))
      let running = 0
      let peak = 0
      const { handle } = yield* start({
        queues: ["q"],
        concurrency: 4,
        handler: (job) =>
          Effect.gen(function* () {
            running++
            peak = Math.max(peak, running)
            yield* Effect.sleep(100)
            running--
            return { doubled: (job.payload as number) * 2 }
          })
      })
      yield* drive(allIn(jobs, "completed"), 100)
      assert.strictEqual(peak, 4)
      for (const job of jobs) {
        assert.deepStrictEqual((yield* queue.get(job.id)).result, { doubled: (job.payload as number) * 2 })
      }
      const stats = yield* handle.stats
      assert.strictEqual(stats.completed, 30)
      assert.strictEqual(stats.claimed, 30)
      assert.strictEqual(stats.inFlight, 0)
    }).pipe(Effect.provide(Queue.layerMemory()))
  )

  it.effect("records completions through the queue's completeMany, refusals job by job", () => {
    const sizes: Array<number> = []
    return Effect.gen(function* () {
      const queue = yield* Queue
      const jobs = yield* queue.enqueueBatch(Array.from({ length: 30 }, (_, i) => ({ queue: "q", payload: i })))
      const go = yield* Deferred.make<void>()
      const { handle, stop } = yield* start({
        queues: ["q"],
        concurrency: 10,
        // job 7's result is not JSON: refused by its completion alone, then dead-lettered (retrying cannot help)
        handler: (job) =>
          Effect.as(
            Deferred.await(go),
            job.payload === 7 ? ({ big: 1n } as never) : { doubled: (job.payload as number) * 2 }
          )
      })
      // the first ten handlers finish together
      yield* drive(
        Effect.map(handle.stats, (s) => s.running === 10),
        10
      )
      yield* Deferred.succeed(go, undefined)
      yield* drive(
        Effect.map(handle.stats, (s) => s.completed + s.deadLettered === 30 && s.inFlight === 0),
        10
      )
      for (const job of jobs) {
        const stored = yield* queue.get(job.id)
        if (job.payload === 7) assert.strictEqual(stored.state, "dead_lettered")
        else assert.deepStrictEqual(stored.result, { doubled: (job.payload as number) * 2 })
      }
      const stats = yield* handle.stats
      assert.strictEqual(stats.completed, 29)
      assert.strictEqual(stats.deadLettered, 1)
      assert.strictEqual(
        sizes.reduce((a, b) => a + b, 0),
        30
      )
      // handlers finishing together share a call
      assert.isTrue(sizes.some((n) => n > 1))
      yield* stop
    }).pipe(Effect.provide(batchingQueue(sizes)))
  })

  it.effect("claims at most batchSize", () => {
    const log = { claims: 0, maxes: [] as Array<number> }
    return Effect.gen(function* () {
      const queue = yield* Queue
      const jobs = yield* queue.enqueueBatch(Array.from({ length: 40 }, (_, i) => ({ queue: "q", payload: i })))
      yield* start({ queues: ["q"], concurrency: 8, batchSize: 3, handler: () => Effect.sleep(10) })
      yield* drive(allIn(jobs, "completed"), 10)
      assert.isTrue(log.maxes.every((max) => max >= 1 && max <= 3))
      assert.isTrue(log.maxes.some((max) => max === 3))
    }).pipe(Effect.provide(countingQueue(log)))
  })

  it.effect("holds up to prefetch claimed jobs beyond the running ones, and starts them as slots free", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const jobs = yield* queue.enqueueBatch(Array.from({ length: 10 }, (_, i) => ({ queue: "q", payload: i })))
      const gate = yield* Deferred.make<void>()
      const order: Array<number> = []
      const { handle } = yield* start({
        queues: ["q"],
        concurrency: 2,
        prefetch: 3,
        handler: (job) =>
          Effect.andThen(
            Effect.sync(() => order.push(job.payload as number)),
            Deferred.await(gate)
          )
      })
      yield* yields()
      const stats = yield* handle.stats
      assert.strictEqual(stats.running, 2)
      assert.strictEqual(stats.inFlight, 5, "2 running and 3 held")
      const states = yield* Effect.forEach(jobs, (j) => stateOf(j.id))
      assert.strictEqual(states.filter((s) => s === "claimed").length, 5)
      assert.strictEqual(states.filter((s) => s === "queued").length, 5)
      yield* Deferred.succeed(gate, undefined)
      yield* drive(allIn(jobs, "completed"), 10)
      assert.deepStrictEqual(order, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "held jobs start in claim order")
    }).pipe(Effect.provide(Queue.layerMemory()))
  )

  it.effect("without a prefetch option, claims in large batches when jobs are short next to a claim", () => {
    const log = { claims: 0, maxes: [] as Array<number>, sizes: [] as Array<number> }
    return Effect.gen(function* () {
      const queue = yield* Queue
      const jobs = yield* queue.enqueueBatch(Array.from({ length: 400 }, (_, i) => ({ queue: "q", payload: i })))
      // a claim takes 5 ms, a job 1 ms: 4 slots start 40 jobs in two claims' time
      const { handle } = yield* start({ queues: ["q"], concurrency: 4, handler: () => Effect.sleep(1) })
      yield* drive(allIn(jobs, "completed"), 1, 5_000)
      assert.strictEqual((yield* handle.stats).completed, 400)
      // the first claims take 8 (4 slots + 4 held), until a job and a claim are measured; then up to 44
      assert.strictEqual(log.maxes[0], 8)
      assert.isTrue(
        log.sizes.some((n) => n >= 20),
        `claim sizes ${log.sizes.join(",")}`
      )
      assert.isTrue(log.claims < 400 / 8, `${log.claims} claims`)
    }).pipe(Effect.provide(slowClaimQueue(log)))
  })

  it.effect("without a prefetch option, holds no more than a job per slot when jobs are long", () => {
    const log = { claims: 0, maxes: [] as Array<number>, sizes: [] as Array<number> }
    return Effect.gen(function* () {
      const queue = yield* Queue
      const jobs = yield* queue.enqueueBatch(Array.from({ length: 40 }, (_, i) => ({ queue: "q", payload: i })))
      const first = yield* start({
        queues: ["q"],
        concurrency: 2,
        shutdownGraceMs: 0,
        handler: () => Effect.sleep(10_000)
      })
      let peak = 0
      for (let i = 0; i < 100; i++) {
        yield* yields()
        peak = Math.max(peak, (yield* first.handle.stats).inFlight)
        yield* TestClock.adjust(500)
      }
      assert.isTrue((yield* first.handle.stats).completed >= 8, "jobs were measured")
      assert.strictEqual(peak, 4, "2 running, 2 held")
      yield* secondWorkerGetsTheRest(
        first,
        jobs,
        Effect.map(first.handle.stats, (stats) => assert.isTrue(stats.inFlight <= 4))
      )
    }).pipe(Effect.provide(slowClaimQueue(log)))
  })

  it.effect("without a prefetch option, gives back what it held for short jobs once jobs turn long", () => {
    const log = { claims: 0, maxes: [] as Array<number>, sizes: [] as Array<number> }
    return Effect.gen(function* () {
      const queue = yield* Queue
      // 150 instant jobs first, then 250 long ones (10 s), with claims of 5 ms: the prefetch grows to its most
      // (100 held at concurrency 2) on the short ones, so the long ones are claimed by the dozen
      const jobs = yield* queue.enqueueBatch(Array.from({ length: 400 }, (_, i) => ({ queue: "q", payload: i })))
      const first = yield* start({
        queues: ["q"],
        concurrency: 2,
        shutdownGraceMs: 0,
        handler: (job) => ((job.payload as number) < 150 ? Effect.void : Effect.sleep(10_000))
      })
      let peak = 0
      yield* drive(
        Effect.map(first.handle.stats, (s) => {
          peak = Math.max(peak, s.inFlight)
          return s.completed >= 152
        }),
        5,
        10_000
      )
      assert.isAbove(peak, 50, "long jobs were held by the dozen")
      // Once a long job was timed, the prefetch is 2 again: what is held beyond it went back, attempts and all
      yield* drive(
        Effect.map(first.handle.stats, (s) => s.inFlight <= 2 + 2 + 2),
        1
      )
      assert.isAbove((yield* first.handle.stats).released, 50)
      const ready = yield* queue.list({ queue: "q", state: "queued", limit: 1_000 })
      assert.isAbove(ready.jobs.length, 50)
      assert.isTrue(ready.jobs.every((j) => j.attempts === 0))
      yield* secondWorkerGetsTheRest(first, jobs)
    }).pipe(Effect.provide(slowClaimQueue(log)))
  })

  it.effect("drops a held job whose lease was lost without starting it", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const [first, held] = yield* queue.enqueueBatch([
        { queue: "q", payload: "first" },
        { queue: "q", payload: "held" }
      ])
      const gate = yield* Deferred.make<void>()
      const ran: Array<unknown> = []
      const { handle } = yield* start({
        queues: ["q"],
        concurrency: 1,
        prefetch: 1,
        leaseMs: 3_000,
        handler: (job) =>
          Effect.andThen(
            Effect.sync(() => ran.push(job.payload)),
            Deferred.await(gate)
          )
      })
      yield* yields()
      assert.strictEqual(yield* stateOf(held!.id), "claimed")
      yield* queue.cancel(held!.id)
      yield* TestClock.adjust(1_000) // the heartbeat round: refused for the held job
      yield* yields()
      yield* Deferred.succeed(gate, undefined)
      yield* drive(
        Effect.map(stateOf(first!.id), (s) => s === "completed"),
        10
      )
      yield* yields()
      assert.deepStrictEqual(ran, ["first"])
      assert.strictEqual(yield* stateOf(held!.id), "cancelled")
      const stats = yield* handle.stats
      assert.strictEqual(stats.lost, 1)
      assert.strictEqual(stats.inFlight, 0)
    }).pipe(Effect.provide(Queue.layerMemory()))
  )

  it.effect("gives held jobs back at once when it stops, attempt included", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const jobs = yield* queue.enqueueBatch(Array.from({ length: 4 }, (_, i) => ({ queue: "q", payload: i })))
      const started = yield* Deferred.make<void>()
      const { handle, stop } = yield* start({
        queues: ["q"],
        concurrency: 1,
        prefetch: 3,
        shutdownGraceMs: 1_000,
        handler: () => Deferred.succeed(started, undefined).pipe(Effect.andThen(Effect.sleep(500)))
      })
      yield* Deferred.await(started)
      yield* yields()
      assert.strictEqual((yield* handle.stats).inFlight, 4)
      const stopping = yield* Effect.forkChild(stop)
      yield* yields()
      // the held ones are back before the running one ends
      for (const job of jobs.slice(1)) {
        const back = yield* queue.get(job.id)
        assert.strictEqual(back.state, "queued")
        assert.strictEqual(back.attempts, 0)
      }
      yield* TestClock.adjust(500)
      yield* Fiber.join(stopping)
      assert.strictEqual(yield* stateOf(jobs[0]!.id), "completed")
      assert.strictEqual((yield* handle.stats).released, 3)
    }).pipe(Effect.provide(Queue.layerMemory()))
  )

  it.effect("wakes on enqueue instead of waiting for the poll interval", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      yield* start({ queues: ["q"], pollIntervalMs: 3_600_000, handler: () => Effect.succeed("done") })
      yield* yields()
      yield* TestClock.adjust(10_000) // the worker is idle: its poll wait is long by now
      yield* yields()
      const job = yield* queue.enqueue({ queue: "q", payload: {} })
      yield* yields()
      assert.strictEqual(yield* stateOf(job.id), "completed", "processed without the clock moving")
    }).pipe(Effect.provide(Queue.layerMemory()))
  )

  it.effect("backs off when idle instead of spinning", () => {
    const idle = { claims: 0, maxes: [] as Array<number> }
    return Effect.gen(function* () {
      yield* start({ queues: ["q"], pollIntervalMs: 1_000, handler: () => Effect.void })
      for (let i = 0; i < 60; i++) {
        yield* yields(10)
        yield* TestClock.adjust(1_000)
      }
      // 50, 100, 200, 400, 800 ms, then once a second: about 65 claims in a minute
      assert.isTrue(idle.claims >= 55 && idle.claims <= 70, `${idle.claims} claims in 60 s`)
    }).pipe(Effect.provide(countingQueue(idle)))
  })

  it.effect("keeps a long job's lease alive with heartbeats", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const job = yield* queue.enqueue({ queue: "q", payload: {} })
      const { handle } = yield* start({
        queues: ["q"],
        leaseMs: 3_000,
        handler: () => Effect.as(Effect.sleep(20_000), "slow but done")
      })
      yield* drive(
        Effect.map(stateOf(job.id), (s) => s === "completed"),
        500
      )
      const done = yield* queue.get(job.id)
      assert.strictEqual(done.attempts, 1, "the lease never expired")
      assert.strictEqual(done.failures, 0)
      assert.strictEqual(done.result, "slow but done")
      assert.strictEqual((yield* handle.stats).lost, 0)
    }).pipe(Effect.provide(Queue.layerMemory()))
  )

  it.effect("fails a timed-out attempt as retryable", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const job = yield* queue.enqueue({ queue: "q", payload: {}, maxAttempts: 2 })
      const { handle } = yield* start({ queues: ["q"], timeoutMs: 1_000, handler: () => Effect.never })
      yield* drive(
        Effect.map(stateOf(job.id), (s) => s === "failed"),
        250
      )
      const failed = yield* queue.get(job.id)
      assert.match(failed.lastError ?? "", /timed out after 1000 ms/)
      assert.strictEqual(failed.attempts, 1)
      yield* drive(
        Effect.map(stateOf(job.id), (s) => s === "dead_lettered"),
        250
      )
      assert.strictEqual((yield* queue.get(job.id)).attempts, 2)
      const stats = yield* handle.stats
      assert.strictEqual(stats.retried, 1)
      assert.strictEqual(stats.deadLettered, 1)
    }).pipe(Effect.provide(Queue.layerMemory()))
  )

  it.effect("dead-letters a non-retryable JobFailure at once and retries a retryable one", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const [permanent, transient] = yield* queue.enqueueBatch([
        { queue: "q", payload: "permanent" },
        { queue: "q", payload: "transient" }
      ])
      yield* start({
        queues: ["q"],
        concurrency: 2,
        handler: (job) =>
          Effect.fail(job.payload === "permanent" ? JobFailure.permanent("bad params") : JobFailure.transient("busy"))
      })
      yield* yields()
      const dead = yield* queue.get(permanent!.id)
      assert.strictEqual(dead.state, "dead_lettered")
      assert.strictEqual(dead.attempts, 1)
      assert.strictEqual(dead.lastError, "bad params")
      const retrying = yield* queue.get(transient!.id)
      assert.strictEqual(retrying.state, "failed")
      assert.strictEqual(retrying.lastError, "busy")
    }).pipe(Effect.provide(Queue.layerMemory()))
  )

  it.effect("treats other errors, defects and throws as retryable failures, and keeps running", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const jobs = yield* queue.enqueueBatch(
        ["error", "defect", "throw", "ok"].map((payload) => ({ queue: "q", payload, maxAttempts: 3 }))
      )
      yield* start({
        queues: ["q"],
        handler: (job): Effect.Effect<string, string> => {
          if (job.payload === "throw") throw new Error("thrown outside the effect")
          if (job.payload === "error") return Effect.fail("plain failure")
          if (job.payload === "defect") return Effect.die(new Error("kaboom"))
          return Effect.succeed("fine")
        }
      })
      yield* yields(200)
      const after = yield* Effect.forEach(jobs, (j) => queue.get(j.id))
      assert.deepStrictEqual(
        after.map((j) => j.state),
        ["failed", "failed", "failed", "completed"]
      )
      assert.match(after[0]!.lastError ?? "", /plain failure/)
      // A defect's message stays in the log: clients read lastError back
      assert.strictEqual(after[1]!.lastError, "defect: Error; see the worker's log")
      assert.strictEqual(after[2]!.lastError, "defect: Error; see the worker's log")
    }).pipe(Effect.provide(Queue.layerMemory()))
  )

  it.effect("dead-letters a job whose handler returns something that is not JSON", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const job = yield* queue.enqueue({ queue: "q", payload: {} })
      yield* start({ queues: ["q"], handler: () => Effect.succeed({ ratio: Number.NaN }) })
      yield* yields()
      const dead = yield* queue.get(job.id)
      assert.strictEqual(dead.state, "dead_lettered")
      assert.match(dead.lastError ?? "", /not JSON.*\$\.result\.ratio/)
    }).pipe(Effect.provide(Queue.layerMemory()))
  )

  it.effect("interrupts the handler when its heartbeat is refused (the job was cancelled)", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const started = yield* Deferred.make<void>()
      const interrupted = yield* Deferred.make<void>()
      const job = yield* queue.enqueue({ queue: "q", payload: "long" })
      const { handle } = yield* start({
        queues: ["q"],
        leaseMs: 3_000,
        handler: (j) =>
          j.payload === "long"
            ? Deferred.succeed(started, undefined).pipe(
                Effect.andThen(Effect.never),
                Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined))
              )
            : Effect.succeed("next one")
      })
      yield* Deferred.await(started)
      yield* queue.cancel(job.id)
      yield* TestClock.adjust(1_000) // the next heartbeat round
      yield* Deferred.await(interrupted)
      yield* yields()
      assert.strictEqual(yield* stateOf(job.id), "cancelled")
      assert.strictEqual((yield* handle.stats).lost, 1)
      const next = yield* queue.enqueue({ queue: "q", payload: "short" })
      yield* drive(
        Effect.map(stateOf(next.id), (s) => s === "completed"),
        100
      )
    }).pipe(Effect.provide(Queue.layerMemory()))
  )

  it.effect("stops gracefully: stops claiming and lets in-flight jobs finish", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const started = yield* Deferred.make<void>()
      const job = yield* queue.enqueue({ queue: "q", payload: {} })
      const { stop } = yield* start({
        queues: ["q"],
        handler: () => Deferred.succeed(started, undefined).pipe(Effect.andThen(Effect.sleep(2_000)), Effect.as("ok"))
      })
      yield* Deferred.await(started)
      const stopping = yield* Effect.forkChild(stop)
      yield* yields()
      const late = yield* queue.enqueue({ queue: "q", payload: "after stop" })
      assert.isUndefined(stopping.pollUnsafe(), "waits for the in-flight job")
      yield* TestClock.adjust(2_000)
      yield* Fiber.join(stopping)
      assert.strictEqual(yield* stateOf(job.id), "completed")
      yield* TestClock.adjust(10_000)
      assert.strictEqual(yield* stateOf(late.id), "queued", "a stopped worker claims nothing")
    }).pipe(Effect.provide(Queue.layerMemory()))
  )

  it.effect("releases the leases of jobs still running after the grace period", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const started = yield* Deferred.make<void>()
      const job = yield* queue.enqueue({ queue: "q", payload: {} })
      const { handle, stop } = yield* start({
        queues: ["q"],
        shutdownGraceMs: 1_000,
        handler: () => Deferred.succeed(started, undefined).pipe(Effect.andThen(Effect.never))
      })
      yield* Deferred.await(started)
      const stopping = yield* Effect.forkChild(stop)
      yield* yields()
      yield* TestClock.adjust(1_000)
      yield* Fiber.join(stopping)
      const released = yield* queue.get(job.id)
      assert.strictEqual(released.state, "queued")
      assert.strictEqual(released.attempts, 0)
      assert.isUndefined(released.lease)
      assert.strictEqual((yield* handle.stats).released, 1)
    }).pipe(Effect.provide(Queue.layerMemory()))
  )

  it.effect("settles each outcome in the same unit of work as the complete or fail", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const uow = yield* UnitOfWork
      const jobs = yield* queue.enqueueBatch(
        Array.from({ length: 20 }, (_, i) => ({ queue: "q", payload: i, maxAttempts: 1 }))
      )
      const settled = new Map<string, { state: Job["state"]; outcome: Worker.Outcome }>()
      let violations = 0
      let observations = 0
      // Another unit that reads the job and the settled state together must never see one without the other
      const observer = yield* Effect.forkChild(
        Effect.forever(
          Effect.andThen(
            uow.run(
              Effect.gen(function* () {
                for (const job of jobs) {
                  const state = (yield* queue.get(job.id)).state
                  const finished = state === "completed" || state === "dead_lettered"
                  if (finished !== settled.has(job.id)) violations++
                  observations++
                }
              })
            ),
            Effect.yieldNow
          )
        )
      )
      yield* start({
        queues: ["q"],
        concurrency: 4,
        handler: (job) =>
          (job.payload as number) % 5 === 0
            ? Effect.fail(new JobFailure({ message: "no", retryable: false, details: { code: 42 } }))
            : Effect.succeed(job.payload),
        settle: (job, outcome) =>
          Effect.gen(function* () {
            yield* yields(5) // a slow write: another unit would see the gap if there were one
            settled.set(job.id, { state: job.state, outcome })
          })
      })
      yield* drive(
        Effect.sync(() => settled.size === 20),
        10
      )
      yield* Fiber.interrupt(observer)
      assert.strictEqual(violations, 0)
      assert.isTrue(observations > 20)
      for (const job of jobs) {
        const record = settled.get(job.id)!
        if ((job.payload as number) % 5 === 0) {
          assert.strictEqual(record.state, "dead_lettered")
          assert.deepStrictEqual(record.outcome, {
            _tag: "Failed",
            error: "no",
            retryable: false,
            details: { code: 42 }
          })
        } else {
          assert.strictEqual(record.state, "completed")
          assert.deepStrictEqual(record.outcome, { _tag: "Completed", result: job.payload })
        }
      }
    }).pipe(Effect.provide(Layer.mergeAll(Queue.layerMemory(), UnitOfWork.layerMemory)))
  )

  it.effect("runs next, in the same slot and without a claim, a job its settle enqueued claimed for it", () => {
    return Effect.gen(function* () {
      const queue = yield* Queue
      const ran: Array<unknown> = []
      const first = yield* queue.enqueue({ queue: "q", payload: 0 })
      const { handle } = yield* start({
        queues: ["q"],
        leaseMs: 3_000,
        pollIntervalMs: 3_600_000,
        handler: (job) => Effect.sync(() => ran.push(job.payload)),
        // Each job's settle hands the worker the next one, until 3
        settle: (job, _outcome, { workerId, leaseMs, runNext }) =>
          (job.payload as number) >= 3
            ? Effect.void
            : Effect.flatMap(
                Effect.orDie(
                  queue.enqueueClaimed!({ queue: "q", payload: (job.payload as number) + 1 }, { workerId, leaseMs })
                ),
                runNext
              )
      })
      yield* drive(
        Effect.sync(() => ran.length === 4),
        10
      )
      assert.deepStrictEqual(ran, [0, 1, 2, 3])
      const done = (yield* queue.list({ queue: "q" })).jobs
      assert.strictEqual(done.length, 4)
      for (const job of done) {
        assert.strictEqual(job.state, "completed")
        assert.strictEqual(job.attempts, 1)
      }
      assert.strictEqual(done[0]!.id, first.id)
      // A claim brought the first job; the handed ones were held at once (a job claimed again would show 2
      // attempts: they are leased to this worker from the start, so no claim can return them before their lease
      // expires)
      assert.strictEqual((yield* handle.stats).claimed, 4)
    }).pipe(Effect.provide(Layer.mergeAll(Queue.layerMemory(), UnitOfWork.layerMemory)))
  })

  it.effect("runs a unit again when the backend could not commit it and says a retry may succeed", () => {
    let calls = 0
    const flaky = Layer.succeed(
      UnitOfWork,
      UnitOfWork.make(<A, E, R>(effect: Effect.Effect<A, E, R>) =>
        Effect.suspend((): Effect.Effect<A, E | UnitOfWorkError, R> => {
          calls++
          return calls === 1
            ? Effect.fail(new UnitOfWorkError({ message: "serialization failure", retryable: true, cause: null }))
            : effect
        })
      )
    )
    return Effect.gen(function* () {
      const queue = yield* Queue
      const job = yield* queue.enqueue({ queue: "q", payload: {} })
      const settled: Array<string> = []
      yield* start({
        queues: ["q"],
        handler: () => Effect.succeed("ok"),
        settle: (after) => Effect.sync(() => settled.push(after.state))
      })
      yield* yields()
      assert.strictEqual(calls, 2)
      assert.deepStrictEqual(settled, ["completed"])
      assert.strictEqual((yield* queue.get(job.id)).attempts, 1)
    }).pipe(Effect.provide(Layer.mergeAll(Queue.layerMemory(), flaky)))
  })

  it.effect("fails the job for a retry when its unit cannot be committed", () => {
    const broken = Layer.succeed(
      UnitOfWork,
      UnitOfWork.make(() =>
        Effect.fail(new UnitOfWorkError({ message: "connection lost", retryable: false, cause: null }))
      )
    )
    return Effect.gen(function* () {
      const queue = yield* Queue
      const job = yield* queue.enqueue({ queue: "q", payload: {} })
      yield* start({ queues: ["q"], handler: () => Effect.succeed("ok"), settle: () => Effect.void })
      yield* yields()
      const failed = yield* queue.get(job.id)
      assert.strictEqual(failed.state, "failed")
      // Named by its error class; the driver's text stays in the log
      assert.strictEqual(failed.lastError, "recording the outcome failed (UnitOfWorkError); see the worker's log")
    }).pipe(Effect.provide(Layer.mergeAll(Queue.layerMemory(), broken)))
  })

  it.effect("keeps running when a settle hook fails", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const jobs = yield* queue.enqueueBatch([
        { queue: "q", payload: "bad" },
        { queue: "q", payload: "good" }
      ])
      const settledIds: Array<string> = []
      yield* start({
        queues: ["q"],
        handler: (job) => Effect.succeed(job.payload),
        settle: (job) =>
          job.payload === "bad" ? Effect.fail("settle broke") : Effect.sync(() => settledIds.push(job.id))
      })
      yield* yields(100)
      assert.deepStrictEqual(settledIds, [jobs[1]!.id])
      assert.strictEqual(yield* stateOf(jobs[1]!.id), "completed")
    }).pipe(Effect.provide(Queue.layerMemory()))
  )

  it.effect("marks jobs running while their handler runs, when asked", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const job = yield* queue.enqueue({ queue: "q", payload: {} })
      const seen: Array<string> = []
      yield* start({
        queues: ["q"],
        markRunning: true,
        handler: (j) => Effect.map(queue.get(j.id), (current) => void seen.push(current.state))
      })
      yield* yields()
      assert.deepStrictEqual(seen, ["running"])
      assert.strictEqual((yield* queue.get(job.id)).result, null)
    }).pipe(Effect.provide(Queue.layerMemory()))
  )

  it.effect("takes its pool's jobs and pool-less ones, not other pools'", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const [gpu, cpu, open] = yield* queue.enqueueBatch([
        { queue: "q", payload: "gpu", pool: "gpu" },
        { queue: "q", payload: "cpu", pool: "cpu" },
        { queue: "q", payload: "open" }
      ])
      yield* start({ queues: ["q"], pool: "gpu", concurrency: 3, handler: () => Effect.void })
      yield* yields()
      assert.strictEqual(yield* stateOf(gpu!.id), "completed")
      assert.strictEqual(yield* stateOf(open!.id), "completed")
      assert.strictEqual(yield* stateOf(cpu!.id), "queued")
    }).pipe(Effect.provide(Queue.layerMemory()))
  )

  it.effect("registers with Agents, reports its load, and deregisters when stopped", () =>
    Effect.gen(function* () {
      const queue = yield* Queue
      const agents = yield* Agents
      const started = yield* Deferred.make<void>()
      yield* queue.enqueue({ queue: "q", payload: {} })
      const { handle, stop } = yield* start({
        queues: ["q", "r"],
        pool: "gpu",
        concurrency: 4,
        leaseMs: 3_000,
        labels: { host: "test" },
        handler: () => Deferred.succeed(started, undefined).pipe(Effect.andThen(Effect.sleep(5_000)))
      })
      const registered = yield* agents.get(handle.workerId)
      assert.strictEqual(registered.pool, "gpu")
      assert.deepStrictEqual(registered.capabilities, ["q", "r"])
      assert.deepStrictEqual(registered.labels, { host: "test" })
      yield* Deferred.await(started)
      yield* TestClock.adjust(1_000)
      yield* yields()
      assert.strictEqual((yield* agents.get(handle.workerId)).load, 0.25)
      const stopping = yield* Effect.forkChild(stop)
      yield* TestClock.adjust(5_000)
      yield* Fiber.join(stopping)
      assert.strictEqual((yield* Effect.flip(agents.get(handle.workerId)))._tag, "AgentNotFound")
    }).pipe(Effect.provide(Layer.mergeAll(Queue.layerMemory(), Agents.layerMemory())))
  )

  it.effect("refuses bad options with their paths", () =>
    Effect.gen(function* () {
      const pathOf = (options: Partial<Worker.RunOptions<never, never, never>>) =>
        Effect.map(Effect.flip(Worker.run({ queues: ["q"], handler: () => Effect.void, ...options })), (e) => e.path)
      assert.strictEqual(yield* pathOf({ concurrency: 0 }), "$.concurrency")
      assert.strictEqual(yield* pathOf({ queues: ["bad name"] }), "$.queues[0]")
      assert.strictEqual(yield* pathOf({ leaseMs: 1_000, heartbeatIntervalMs: 1_000 }), "$.heartbeatIntervalMs")
      assert.strictEqual(yield* pathOf({ workerId: "bad id!" }), "$.workerId")
      assert.strictEqual(yield* pathOf({ timeoutMs: -1 }), "$.timeoutMs")
    }).pipe(Effect.scoped, Effect.provide(Queue.layerMemory()))
  )
})
