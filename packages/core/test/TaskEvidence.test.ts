import { assert, describe, it } from "@effect/vitest"
import {
  Anchor,
  entryLeafHash,
  taskEvidence as evidenceAs,
  Ledger,
  LedgerStore,
  Merkle,
  Principal,
  TaskStore,
  taskEntries,
  verifyCheckpointSignature
} from "@mandate/core"
import { makeRecord } from "@mandate/core/conformance/taskStore"
import { LedgerTamper } from "@mandate/core/testing"
import { Effect, Layer } from "effect"

const layer = Layer.mergeAll(
  Ledger.layer().pipe(Layer.provideMerge(LedgerStore.layerMemory), Layer.provide(Anchor.layerMemory)),
  TaskStore.layerMemory
)
const carol = Principal.make("carol", ["auditor"])
const taskEvidence = (taskId: string) => evidenceAs(taskId, carol)

const proves = (proof: Merkle.InclusionProof, entryHash: string, root: string) =>
  Merkle.verifyInclusionProof(proof, entryLeafHash(entryHash), root)

describe("taskEvidence", () => {
  it.effect("proves each of a task's entries in one signed checkpoint, and those the last anchor covers in it", () =>
    Effect.gen(function* () {
      const ledger = yield* Ledger
      const append = (taskId: string, n: number) =>
        Effect.forEach(
          Array.from({ length: n }, (_, i) => i),
          (i) => ledger.append({ kind: "note.added", taskId, payload: { i } })
        )
      yield* append("task_a", 3)
      yield* append("task_b", 2)
      const anchored = yield* ledger.anchor
      yield* append("task_a", 2)

      const evidence = yield* taskEvidence("task_a")
      assert.deepStrictEqual(
        evidence.entries.map((e) => e.seq),
        [0, 1, 2, 5, 6]
      )
      assert.strictEqual(evidence.checkpoint.size, 7)
      assert.isTrue(verifyCheckpointSignature(evidence.checkpoint, evidence.publicKey))
      assert.strictEqual(evidence.keyId, ledger.keyId)
      for (const [i, entry] of evidence.entries.entries()) {
        assert.isTrue(proves(evidence.proofs[i]!, entry.entryHash, evidence.checkpoint.root))
      }
      assert.strictEqual(evidence.anchored?.checkpoint.size, 5)
      assert.strictEqual(evidence.anchored?.anchor.txId, anchored.anchor?.txId)
      assert.strictEqual(evidence.anchored?.anchor.root, evidence.anchored?.checkpoint.root)
      const anchoredProofs = evidence.anchored!.proofs
      for (const [i, entry] of evidence.entries.entries()) {
        const proof = anchoredProofs[i]
        if (entry.seq < 5) assert.isTrue(proves(proof!, entry.entryHash, evidence.anchored!.checkpoint.root))
        else assert.isNull(proof)
      }
      // The latest checkpoint is reused while it covers the task
      assert.strictEqual((yield* taskEvidence("task_a")).checkpoint.timestamp, evidence.checkpoint.timestamp)
    }).pipe(Effect.provide(layer))
  )

  it.effect(
    "returns a tampered signed entry as stored, for the verifier to catch; refuses to sign over unsigned tampering; an unknown task is TaskNotFound",
    () =>
      Effect.gen(function* () {
        const ledger = yield* Ledger
        const tamper = yield* LedgerTamper
        yield* ledger.append({ kind: "note.added", taskId: "task_t", payload: { amount: 10 } })
        const [original] = yield* ledger.entries()
        // Tampering with what no checkpoint covers yet: the ledger refuses to sign over it
        yield* tamper.replaceEntry(0, { ...original!, payload: { amount: 10_000 } })
        const refused = yield* Effect.flip(taskEvidence("task_t"))
        assert.strictEqual(refused._tag, "LedgerTampered")
        // Tampering with a signed entry: the evidence shows it as stored, and the proof is of the signed tree
        yield* tamper.replaceEntry(0, original!)
        yield* ledger.checkpoint
        yield* tamper.replaceEntry(0, { ...original!, payload: { amount: 10_000 } })
        const evidence = yield* taskEvidence("task_t")
        assert.deepStrictEqual(evidence.entries[0]!.payload, { amount: 10_000 })
        // The proof is of what the tree holds: the original entry hash
        assert.isTrue(proves(evidence.proofs[0]!, original!.entryHash, evidence.checkpoint.root))
        const missing = yield* Effect.flip(taskEvidence("task_none"))
        assert.strictEqual(missing._tag, "TaskNotFound")
      }).pipe(Effect.provide(layer))
  )

  it.effect("answers for a principal: its own task's evidence, someone else's task as if it did not exist", () =>
    Effect.gen(function* () {
      const ledger = yield* Ledger
      const store = yield* TaskStore
      const alices = makeRecord({ requester: "alice" })
      const gated = makeRecord({ requester: "alice" })
      yield* store.create(alices)
      yield* store.create({ ...gated, task: { ...gated.task, gated: true } })
      for (const r of [alices, gated]) yield* ledger.append({ kind: "task.created", taskId: r.task.id, payload: {} })
      const alice = Principal.make("alice", ["submitter"])
      const dave = Principal.make("dave", ["submitter"])
      const bob = Principal.make("bob", ["approver"])
      const robot = Principal.make("robot", ["agent"])
      assert.strictEqual((yield* evidenceAs(alices.task.id, alice)).entries.length, 1)
      assert.strictEqual((yield* taskEntries(alices.task.id, alice)).length, 1)
      for (const [who, taskId] of [
        [dave, alices.task.id],
        [bob, alices.task.id],
        [robot, gated.task.id],
        [alice, "task_none"]
      ] as const) {
        assert.strictEqual((yield* Effect.flip(evidenceAs(taskId, who)))._tag, "TaskNotFound")
        assert.strictEqual((yield* Effect.flip(taskEntries(taskId, who)))._tag, "TaskNotFound")
      }
      // An approver reads the gated task it may decide on
      assert.strictEqual((yield* taskEntries(gated.task.id, bob)).length, 1)
      assert.strictEqual((yield* Effect.flip(taskEntries("not an id", carol)))._tag, "InvalidInput")
    }).pipe(Effect.provide(layer))
  )
})
