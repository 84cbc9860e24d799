import { assert, describe, it } from "@effect/vitest"
import { Canonical, EntryInput } from "@mandate/core"
import { Schema } from "effect"
import { prepareValid } from "../../src/internal/ledgerInput.ts"

// The reference: what the fast path stands for, the full schema check plus a canonical payload
const reference = (input: unknown): boolean => {
  if (!Schema.is(EntryInput)(input)) return false
  try {
    Canonical.encode((input as EntryInput).payload, Canonical.maxDepth)
    return true
  } catch {
    return false
  }
}

describe("internal/ledgerInput: prepareValid accepts exactly what EntryInput and Canonical accept", () => {
  it("on every combination of valid, invalid and absent members, and odd containers", () => {
    const kinds = [undefined, "step.succeeded", "Step.succeeded", "x", 7, "a.b".padEnd(65, "c")]
    const ids = [undefined, "task_1", "", "-bad", "ok:id@x.y", 12, null, "a".repeat(129)]
    const principals = [undefined, { id: "p", roles: ["agent"] }, { id: "p" }, { id: 1, roles: [] }, "p"]
    const stores = [undefined, true, false, "no", null]
    const payloads = [1, { a: [1, 2] }, undefined, Number.NaN, new Date(0), null]
    let checked = 0
    for (const kind of kinds)
      for (const taskId of ids)
        for (const stepId of [undefined, "s-1", "", 3])
          for (const principal of principals)
            for (const storePayload of stores)
              for (const payload of payloads) {
                const input: Record<string, unknown> = { payload }
                if (kind !== undefined) input.kind = kind
                if (taskId !== undefined) input.taskId = taskId
                if (stepId !== undefined) input.stepId = stepId
                if (principal !== undefined) input.principal = principal
                if (storePayload !== undefined) input.storePayload = storePayload
                assert.strictEqual(prepareValid(input) !== undefined, reference(input), JSON.stringify(input))
                checked++
              }
    assert.isAbove(checked, 10_000)
    const valid = { kind: "a.b", taskId: "task_1", payload: { x: 1 } }
    const odd: Array<unknown> = [
      null,
      undefined,
      "a.b",
      [valid],
      Object.assign([], valid),
      Object.assign(() => 1, valid),
      Object.assign(Object.create(null), valid),
      Object.assign(Object.create({ payload: 1 }), { kind: "a.b" }),
      Object.assign(Object.create({ kind: "a.b" }), { payload: 1 }),
      { kind: "a.b" },
      { kind: "a.b", payload: 1, taskId: undefined, stepId: undefined, storePayload: undefined },
      { ...valid, extra: Symbol("x") }
    ]
    odd.forEach((input, i) => {
      assert.strictEqual(prepareValid(input) !== undefined, reference(input), `odd input ${i}`)
    })
  })
})
