import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { demo, layer } from "../src/app.ts"

describe("examples/embed", () => {
  it.live("approves a gated invoice, and every entry of the audit trail verifies", () =>
    Effect.gen(function* () {
      const lines: Array<string> = []
      const result = yield* demo((line) => lines.push(line)).pipe(Effect.provide(layer))
      assert.strictEqual(result.state, "completed")
      assert.strictEqual(result.verified, result.entries)
      assert.isAtLeast(result.entries, 10)
      assert.isTrue(result.valid)
      assert.strictEqual(result.refused, "TaskRejected")
      assert.isTrue(lines.some((l) => l.includes("four eyes")))
      assert.isTrue(lines.some((l) => l.includes("invoice.sent")))
    })
  )
})
