import { assert, describe, it } from "@effect/vitest"
import { UnitOfWork } from "@mandate/core"
import { Effect, Ref } from "effect"

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
