import { assert, describe, it } from "@effect/vitest"
import { Anchor } from "@mandate/core"
import { suite } from "@mandate/core/conformance/anchor"
import { Effect, Option } from "effect"

suite("memory", Anchor.layerMemory)

describe("Anchor.layerNone", () => {
  it.effect("refuses to publish and finds nothing", () =>
    Effect.gen(function* () {
      const anchor = yield* Anchor
      const error = yield* Effect.flip(anchor.publish("a".repeat(64), 1))
      assert.strictEqual(error._tag, "AnchorError")
      assert.isTrue(Option.isNone(yield* anchor.lookup("a".repeat(64))))
      const missing = yield* Effect.flip(anchor.getTx("tx"))
      assert.isTrue(missing._tag === "AnchorNotFound" && missing.id === "tx")
    }).pipe(Effect.provide(Anchor.layerNone))
  )
})
