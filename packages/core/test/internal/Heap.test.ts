import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import { Heap } from "../../src/internal/Heap.ts"

describe("internal/Heap", () => {
  it.prop(
    "pops in ascending order whatever the insertion order",
    { values: Schema.Array(Schema.Int) },
    ({ values }) => {
      const heap = new Heap<number>((a, b) => a < b)
      for (const v of values) heap.push(v)
      assert.strictEqual(heap.size, values.length)
      const out: Array<number> = []
      while (heap.size > 0) out.push(heap.pop()!)
      assert.deepStrictEqual(
        out,
        [...values].sort((a, b) => a - b)
      )
      assert.isUndefined(heap.pop())
    }
  )

  it.prop(
    "keeps the minimum on top under interleaved pushes and pops",
    { ops: Schema.Array(Schema.NullOr(Schema.Int)) },
    ({ ops }) => {
      const heap = new Heap<number>((a, b) => a < b)
      const model: Array<number> = []
      for (const op of ops) {
        if (op === null) {
          model.sort((a, b) => a - b)
          assert.strictEqual(heap.pop(), model.shift())
        } else {
          heap.push(op)
          model.push(op)
        }
        assert.strictEqual(heap.peek(), model.length === 0 ? undefined : Math.min(...model))
      }
    }
  )
})
