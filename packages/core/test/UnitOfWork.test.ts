import { assert, describe, it } from "@effect/vitest"
import { LedgerStore, Queue, TaskStore, UnitOfWork } from "@mandate/core"
import { suite } from "@mandate/core/conformance/unitOfWork"
import { Effect, Layer, Ref } from "effect"

suite(
  "memory",
  Layer.mergeAll(UnitOfWork.layerMemory, TaskStore.layerMemory, Queue.layerMemory(), LedgerStore.layerMemory)
)

describe("UnitOfWork.layerMemory", () => {
  it.effect("runs units one at a time, and a nested unit joins its parent", () =>
    Effect.gen(function* () {
      const uow = yield* UnitOfWork
      const inside = yield* Ref.make(0)
      const maxInside = yield* Ref.make(0)
      const unit = uow.run(
        Effect.gen(function* () {
          const n = yield* Ref.updateAndGet(inside, (x) => x + 1)
          yield* Ref.update(maxInside, (m) => Math.max(m, n))
          yield* Effect.yieldNow
          yield* uow.run(Effect.yieldNow) // would deadlock if not re-entrant
          yield* Ref.update(inside, (x) => x - 1)
        })
      )
      yield* Effect.all(
        Array.from({ length: 50 }, () => unit),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(yield* Ref.get(maxInside), 1)
    }).pipe(Effect.provide(UnitOfWork.layerMemory))
  )
})

describe("UnitOfWork.afterCommit", () => {
  it.effect("runs deferred effects after the outermost unit, in order, and drops those of a failed unit", () =>
    Effect.gen(function* () {
      const uow = yield* UnitOfWork
      const log: Array<string> = []
      const note = (s: string) => Effect.sync(() => void log.push(s))
      yield* uow.run(
        Effect.gen(function* () {
          yield* uow.afterCommit(note("outer deferred"))
          yield* uow.run(uow.afterCommit(note("nested deferred")))
          // A nested unit that fails drops its own deferred effects; the outer one goes on
          yield* uow
            .run(Effect.andThen(uow.afterCommit(note("failed nested deferred")), Effect.fail("boom")))
            .pipe(Effect.ignore)
          yield* note("body done")
        })
      )
      assert.deepStrictEqual(log, ["body done", "outer deferred", "nested deferred"])

      log.length = 0
      const failed = yield* Effect.flip(
        uow.run(Effect.andThen(uow.afterCommit(note("never")), Effect.fail("rolled back" as const)))
      )
      assert.strictEqual(failed, "rolled back")
      assert.deepStrictEqual(log, [])

      // Outside a unit it runs at once
      yield* uow.afterCommit(note("now"))
      assert.deepStrictEqual(log, ["now"])
    }).pipe(Effect.provide(UnitOfWork.layerMemory))
  )

  it.effect("memory: deferred effects run before the next unit starts, so units publish in commit order", () =>
    Effect.gen(function* () {
      const uow = yield* UnitOfWork
      const log: Array<string> = []
      const unit = (i: number) =>
        uow.run(
          Effect.gen(function* () {
            log.push(`commit ${i}`)
            yield* Effect.yieldNow
            yield* uow.afterCommit(
              Effect.andThen(
                Effect.yieldNow,
                Effect.sync(() => void log.push(`publish ${i}`))
              )
            )
          })
        )
      yield* Effect.all(
        Array.from({ length: 20 }, (_, i) => unit(i)),
        { concurrency: "unbounded" }
      )
      for (let i = 0; i < log.length; i += 2) {
        assert.strictEqual(log[i]!.replace("commit", "publish"), log[i + 1])
      }
      assert.strictEqual(log.length, 40)
    }).pipe(Effect.provide(UnitOfWork.layerMemory))
  )
})
