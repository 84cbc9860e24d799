import { assert, describe, it } from "@effect/vitest"
import { Approval, decode, EntryHash, genesisHash, Job, LedgerEntry, TaskId } from "@mandate/core"
import { Effect } from "effect"
import { bob } from "./utils/fixtures.ts"

describe("Domain model schemas", () => {
  it.effect("ids are branded and validated", () =>
    Effect.gen(function* () {
      assert.strictEqual(yield* decode(TaskId)("task_1"), "task_1")
      const bad = yield* Effect.flip(decode(TaskId)("has space"))
      assert.strictEqual(bad.path, "$")
      const hash = yield* Effect.flip(decode(EntryHash)("ABC"))
      assert.match(hash.message, /64 lowercase hex/)
      assert.strictEqual(genesisHash, "0".repeat(64))
    })
  )

  it.effect("jobs, ledger entries and approvals decode, and report bad fields by path", () =>
    Effect.gen(function* () {
      const job = {
        id: "job_1",
        queue: "steps",
        payload: { n: 1 },
        priority: "high",
        state: "queued",
        runAt: 0,
        attempts: 0,
        maxAttempts: 5,
        createdAt: 0,
        updatedAt: 0
      }
      assert.deepStrictEqual(yield* decode(Job)(job), job as unknown as Job)
      const badJob = yield* Effect.flip(decode(Job)({ ...job, queue: "no spaces", priority: "urgent", state: "done" }))
      assert.deepStrictEqual(
        badJob.issues.map((i) => i.path),
        ["$.queue", "$.priority", "$.state"]
      )
      const entry = {
        seq: 0,
        kind: "invoice.paid",
        at: 1,
        payloadHash: "a".repeat(64),
        prevHash: genesisHash,
        entryHash: "b".repeat(64)
      }
      assert.strictEqual((yield* decode(LedgerEntry)(entry)).kind, "invoice.paid")
      const badKind = yield* Effect.flip(decode(LedgerEntry)({ ...entry, kind: "Paid" }))
      assert.deepStrictEqual(
        badKind.issues.map((i) => i.path),
        ["$.kind"]
      )
      const approval = {
        taskId: "task_1",
        stepId: "onchain_action",
        round: 0,
        principal: bob,
        decision: "granted",
        at: 5,
        paramsHash: "c".repeat(64),
        planHash: "d".repeat(64),
        policyVersion: "e".repeat(64)
      }
      assert.strictEqual((yield* decode(Approval)(approval)).decision, "granted")
      const badApproval = yield* Effect.flip(
        decode(Approval)({ ...approval, decision: "maybe", principal: { id: "" } })
      )
      assert.deepStrictEqual(
        badApproval.issues.map((i) => i.path),
        ["$.principal.id", "$.principal.roles", "$.decision"]
      )
    })
  )
})
