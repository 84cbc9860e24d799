import { Queue, Worker } from "@mandate/core"
import { Deferred, Effect, Layer } from "effect"
import { layerClient, layerQueue, makeConfig } from "./packages/adapters/src/redis/index.ts"

const prefix = `scratch:${crypto.randomUUID()}:`
const jobs = 20000
const p = Effect.gen(function* () {
  const queue = yield* Queue
  yield* Effect.forEach(
    Array.from({ length: jobs / 1000 }),
    (_, b) =>
      queue.enqueueBatch(Array.from({ length: 1000 }, (_, k) => ({ queue: "q", payload: { i: b * 1000 + k } }))),
    { discard: true }
  )
  const done = yield* Deferred.make<void>()
  let n = 0
  const t1 = performance.now()
  yield* Effect.scoped(
    Effect.gen(function* () {
      yield* Worker.run({
        queues: ["q"],
        concurrency: 10,
        handler: () => Effect.void,
        settle: () =>
          Effect.sync(() => {
            if (++n === jobs) Deferred.doneUnsafe(done, Effect.void)
          })
      })
      yield* Deferred.await(done)
    })
  )
  console.log("drain", Math.round(jobs / ((performance.now() - t1) / 1000)))
}).pipe(Effect.provide(layerQueue({ prefix }).pipe(Layer.provideMerge(layerClient(makeConfig(undefined, { prefix }))))))
await Effect.runPromise(p)
