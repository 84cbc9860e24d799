/**
 * The Ledger conformance suite: the whole contract of the `Ledger` service, run against any backend.
 *
 * ```ts
 * import { suite } from "@mandate/core/conformance/ledger"
 * suite("Ledger on my store", Ledger.layer().pipe(Layer.provideMerge(myStoreAndTamper), Layer.provideMerge(uow), ...))
 * ```
 *
 * The layer provides the `Ledger` (anchoring through a working `Anchor`: memory, a chain mock or a test chain),
 * a `UnitOfWork` its stores take part in, and `LedgerTamper` (from `@mandate/core/testing`), the backend access the
 * tamper-detection tests need.
 * One layer instance serves the whole suite, and tests isolate themselves by task ids; the suite must be the
 * only writer to its ledger while it runs (tamper tests restore what they change).
 *
 * @since 0.1.0
 */
import * as NodeCrypto from "node:crypto"
import { assert, describe, layer } from "@effect/vitest"
import {
  Canonical,
  type CheckpointRecord,
  CheckpointRejected,
  checkpointMessage,
  type EntryInput,
  EntryNotFound,
  entryHashOf,
  entryLeafHash,
  genesisHash,
  InvalidInput,
  InvalidTreeRange,
  Ledger,
  type LedgerEntry,
  type LedgerHead,
  type LedgerMismatch,
  LedgerTampered,
  Merkle,
  Principal,
  publicKeyId,
  UnitOfWork,
  verifyCheckpointSignature,
  verifyEntryProof
} from "@mandate/core"
import { LedgerTamper } from "@mandate/core/testing"
import { Clock, Effect, type Layer } from "effect"

/**
 * How the suite runs against a backend. No option removes an assertion.
 *
 * @category models
 * @since 0.1.0
 */
export interface SuiteOptions {
  /** Concurrent appenders in the concurrency tests (default 24). */
  readonly fibers?: number | undefined
}

const newTask = () => `task_${NodeCrypto.randomUUID()}`

const entryFor = (taskId: string, i: number, extra: Partial<EntryInput> = {}): EntryInput => ({
  kind: "step.succeeded",
  taskId,
  stepId: `step_${i}`,
  principal: { id: "alice", roles: ["submitter"] },
  payload: { i, amount: 10 * i, memo: `entry ${i}`, tags: ["a", "b"], nested: { ok: true, none: null } },
  ...extra
})

const bytes = (hex: string) => Canonical.fromHex(hex)!

// Tampering lasts until the enclosing scope closes, then the original is put back, even when an assertion failed,
// so one failing test does not break the others
const tamperEntry = (original: LedgerEntry, fields: Readonly<Record<string, unknown>> | undefined) =>
  LedgerTamper.use((tamper) =>
    Effect.acquireRelease(tamper.replaceEntry(original.seq, fields), () =>
      Effect.orDie(tamper.replaceEntry(original.seq, original))
    )
  )
const tamperNode = (node: Merkle.Node, original: Uint8Array) =>
  LedgerTamper.use((tamper) =>
    Effect.acquireRelease(tamper.replaceNode(node), () => Effect.orDie(tamper.replaceNode({ ...node, hash: original })))
  )
const tamperHead = (head: LedgerHead, original: LedgerHead) =>
  LedgerTamper.use((tamper) =>
    Effect.acquireRelease(tamper.replaceHead(head), () => Effect.orDie(tamper.replaceHead(original)))
  )
const tamperAnchor = (record: CheckpointRecord, receipt: Readonly<Record<string, unknown>> | undefined) =>
  LedgerTamper.use((tamper) =>
    Effect.acquireRelease(tamper.replaceAnchor(record.checkpoint.size, receipt), () =>
      Effect.orDie(tamper.replaceAnchor(record.checkpoint.size, record.anchor))
    )
  )

// Every stored entry, by seq
const allEntries = Effect.gen(function* () {
  const ledger = yield* Ledger
  const size = yield* ledger.size
  const all: Array<LedgerEntry> = []
  while (all.length < size) all.push(...(yield* ledger.entries({ from: all.length, limit: 500 })))
  return all
})

// The stored nodes over leaf `seq` in a tree of `size` leaves, recomputed from these leaf hashes: every perfect
// subtree that contains the leaf and ends within the tree, leaf first
const nodesThrough = (seq: number, size: number, leafHashes: ReadonlyArray<Uint8Array>) => {
  const out: Array<Merkle.Node> = []
  for (let level = 0, span = 1; ; level++, span *= 2) {
    const index = Math.floor(seq / span)
    if ((index + 1) * span > size) break
    out.push({ level, index, hash: Merkle.rootOf(leafHashes.slice(index * span, (index + 1) * span)) })
  }
  return out
}

// An entry forged in place of `original`: any fields, with a correct entryHash over them
const forge = (original: LedgerEntry, fields: Readonly<Record<string, unknown>>): LedgerEntry => {
  const { entryHash: _, ...body } = original
  const forgedBody = { ...body, ...fields }
  return { ...forgedBody, entryHash: entryHashOf(forgedBody) } as LedgerEntry
}

// The same entry as entry format 1 wrote it: without taskPrevHash, with a correct entryHash
const forgeWithout = (original: LedgerEntry): LedgerEntry => {
  const { entryHash: _, taskPrevHash: __, ...body } = original
  return { ...body, entryHash: entryHashOf(body) } as LedgerEntry
}

/**
 * Runs the Ledger contract against `layer`.
 *
 * @category conformance
 * @since 0.1.0
 */
export const suite = (
  name: string,
  ledgerLayer: Layer.Layer<Ledger | LedgerTamper | UnitOfWork, unknown>,
  options?: SuiteOptions
): void => {
  const fibers = options?.fibers ?? 24

  layer(ledgerLayer, { timeout: "120 seconds" })(name, (it) => {
    describe("append and read", () => {
      it.effect("appends entries that chain, and reads them back field for field", () =>
        Effect.gen(function* () {
          const ledger = yield* Ledger
          const task = newTask()
          const before = yield* Clock.currentTimeMillis
          const r1 = yield* ledger.append(entryFor(task, 1))
          const r2 = yield* ledger.append(entryFor(task, 2, { principal: { id: "bob", roles: ["approver", "agent"] } }))
          const r3 = yield* ledger.append(entryFor(task, 3, { storePayload: false, stepId: undefined }))
          assert.strictEqual(r2.seq, r1.seq + 1)
          assert.strictEqual(r3.seq, r2.seq + 1)
          assert.strictEqual(r2.prevHash, r1.entryHash)
          assert.strictEqual(r3.prevHash, r2.entryHash)
          for (const r of [r1, r2, r3]) assert.strictEqual(r.leafIndex, r.seq)

          const e1 = yield* ledger.get(r1.entryHash)
          assert.strictEqual(e1.seq, r1.seq)
          assert.strictEqual(e1.kind, "step.succeeded")
          assert.strictEqual(e1.taskId, task)
          assert.strictEqual(e1.stepId, "step_1")
          assert.deepStrictEqual<unknown>(e1.principal, { id: "alice", roles: ["submitter"] })
          assert.deepStrictEqual(e1.payload, entryFor(task, 1).payload)
          assert.strictEqual(e1.payloadHash, Canonical.hash(entryFor(task, 1).payload))
          assert.strictEqual(e1.prevHash, r1.prevHash)
          assert.strictEqual(e1.entryHash, r1.entryHash)
          assert.strictEqual(entryHashOf(e1), e1.entryHash)
          assert.isAtLeast(e1.at, before)

          // the payload's hash is kept even when the payload is not
          const e3 = yield* ledger.get(r3.entryHash)
          assert.isFalse("payload" in e3)
          assert.isFalse("stepId" in e3)
          assert.strictEqual(e3.payloadHash, Canonical.hash(entryFor(task, 3).payload))
          assert.strictEqual(entryHashOf(e3), r3.entryHash)

          const byTask = yield* ledger.byTask(task)
          assert.deepStrictEqual(
            byTask.map((e) => e.entryHash),
            [r1.entryHash, r2.entryHash, r3.entryHash]
          )
          const listed = yield* ledger.entries({ from: r1.seq, limit: 3 })
          assert.deepStrictEqual(listed, byTask)
          assert.deepStrictEqual(yield* ledger.byTask(newTask()), [])
          assert.isAtLeast(yield* ledger.size, r3.seq + 1)
        })
      )

      it.effect("stored entries are out of reach of the objects a caller appended or read back", () =>
        Effect.gen(function* () {
          const ledger = yield* Ledger
          const payload = { amount: 5, to: { wallet: "W" } }
          const principal = { id: "carol", roles: ["approver" as const] }
          const receipt = yield* ledger.append({ kind: "approval.granted", taskId: newTask(), principal, payload })
          payload.amount = 500_000
          payload.to.wallet = "MALLORY"
          principal.roles.push("admin" as never)
          const read = yield* ledger.get(receipt.entryHash)
          assert.deepStrictEqual<unknown>(read.payload, { amount: 5, to: { wallet: "W" } })
          assert.deepStrictEqual<unknown>(read.principal, { id: "carol", roles: ["approver"] })
          try {
            ;(read.payload as { amount: number }).amount = 7
          } catch {
            // a backend may hand out frozen objects
          }
          assert.deepStrictEqual<unknown>((yield* ledger.get(receipt.entryHash)).payload, {
            amount: 5,
            to: { wallet: "W" }
          })
          assert.isTrue((yield* ledger.verifyAll({ from: receipt.seq, to: receipt.seq + 1 })).valid)
        })
      )

      it.effect("accepts host-defined kinds and refuses bad input by JSON path, appending nothing", () =>
        Effect.gen(function* () {
          const ledger = yield* Ledger
          const task = newTask()
          const custom = yield* ledger.append({ kind: "invoice.paid", taskId: task, payload: { invoice: "INV-7" } })
          assert.strictEqual((yield* ledger.get(custom.entryHash)).kind, "invoice.paid")
          const size = yield* ledger.size
          const cases: Array<[unknown, string]> = [
            [{ ...entryFor(task, 1), kind: "Not A Kind" }, "$.kind"],
            [{ ...entryFor(task, 1), payload: { amount: Number.NaN } }, "$.payload.amount"],
            [{ ...entryFor(task, 1), payload: { a: { b: undefined } } }, "$.payload.a.b"],
            [{ ...entryFor(task, 1), payload: { list: [1, Number.POSITIVE_INFINITY] } }, "$.payload.list[1]"],
            [{ ...entryFor(task, 1), payload: { when: new Date(0) } }, "$.payload.when"],
            [{ ...entryFor(task, 1), payload: undefined }, "$.payload"],
            [{ ...entryFor(task, 1), taskId: "no spaces allowed" }, "$.taskId"],
            [{ ...entryFor(task, 1), principal: { id: "x", roles: ["king"] } }, "$.principal.roles[0]"]
          ]
          for (const [input, path] of cases) {
            const error = yield* Effect.flip(ledger.append(input as EntryInput))
            assert.instanceOf(error, InvalidInput)
            assert.strictEqual(error.path, path, JSON.stringify(error.issues))
          }
          assert.strictEqual(yield* ledger.size, size)
          assert.strictEqual((yield* ledger.byTask(task)).length, 1)
          assert.instanceOf(yield* Effect.flip(ledger.get("f".repeat(64))), EntryNotFound)
          assert.instanceOf(yield* Effect.flip(ledger.get("not a hash")), EntryNotFound)
        })
      )

      it.effect("appendBatch is atomic: one invalid entry and nothing is appended", () =>
        Effect.gen(function* () {
          const ledger = yield* Ledger
          const task = newTask()
          const size = yield* ledger.size
          const error = yield* Effect.flip(
            ledger.appendBatch([
              entryFor(task, 1),
              entryFor(task, 2),
              { ...entryFor(task, 3), payload: { x: Number.NaN } },
              { ...entryFor(task, 4), kind: "BAD" }
            ])
          )
          assert.instanceOf(error, InvalidInput)
          assert.strictEqual(error.path, "$[2].payload.x")
          assert.includeMembers(
            error.issues.map((i) => i.path),
            ["$[2].payload.x", "$[3].kind"]
          )
          assert.strictEqual(yield* ledger.size, size)
          assert.deepStrictEqual(yield* ledger.byTask(task), [])

          const receipts = yield* ledger.appendBatch([1, 2, 3, 4, 5].map((i) => entryFor(task, i)))
          assert.strictEqual(receipts.length, 5)
          for (let i = 1; i < receipts.length; i++) {
            assert.strictEqual(receipts[i]!.seq, receipts[i - 1]!.seq + 1)
            assert.strictEqual(receipts[i]!.prevHash, receipts[i - 1]!.entryHash)
          }
          const stored = yield* ledger.byTask(task)
          assert.deepStrictEqual(
            stored.map((e) => e.stepId as string | undefined),
            ["step_1", "step_2", "step_3", "step_4", "step_5"]
          )
          // one batch, one timestamp
          assert.strictEqual(new Set(stored.map((e) => e.at)).size, 1)
          assert.deepStrictEqual(yield* ledger.appendBatch([]), [])
        })
      )

      it.effect("concurrent appenders never fork the chain or the tree", () =>
        Effect.gen(function* () {
          const ledger = yield* Ledger
          const task = newTask()
          const results = yield* Effect.forEach(
            Array.from({ length: fibers }, (_, f) => f),
            (f) =>
              f % 3 === 0
                ? ledger.appendBatch([0, 1, 2].map((i) => entryFor(task, f * 10 + i)))
                : Effect.forEach([0, 1, 2], (i) => ledger.append(entryFor(task, f * 10 + i)), { concurrency: 1 }),
            { concurrency: "unbounded" }
          )
          const receipts = results.flat()
          const seqs = receipts.map((r) => r.seq).sort((a, b) => a - b)
          assert.strictEqual(new Set(seqs).size, receipts.length)
          const first = seqs[0]!
          const last = seqs[seqs.length - 1]!
          assert.strictEqual(last - first + 1, receipts.length, "the appends took consecutive seqs")
          const bySeq = new Map(receipts.map((r) => [r.seq, r]))
          for (const r of receipts) {
            const previous = bySeq.get(r.seq - 1)
            if (previous) assert.strictEqual(r.prevHash, previous.entryHash)
          }
          // a batch lands in one piece
          for (const batch of results.filter((_, f) => f % 3 === 0)) {
            assert.deepStrictEqual(
              batch.map((r) => r.seq),
              [batch[0]!.seq, batch[0]!.seq + 1, batch[0]!.seq + 2]
            )
          }
          const report = yield* ledger.verifyAll({ from: first, to: last + 1 })
          assert.isTrue(report.valid, JSON.stringify(report.mismatch))
          const checkpoint = yield* ledger.checkpoint
          for (const r of receipts.filter((_, i) => i % 7 === 0)) {
            const proof = yield* ledger.inclusionProof(r.entryHash, checkpoint.size)
            assert.isTrue(Merkle.verifyInclusionProof(proof, entryLeafHash(r.entryHash), checkpoint.root))
          }
        })
      )

      it.effect("appendBatch joins a unit of work, alongside concurrent plain appends", () =>
        Effect.gen(function* () {
          const ledger = yield* Ledger
          const uow = yield* UnitOfWork
          const task = newTask()
          const results = yield* Effect.forEach(
            Array.from({ length: fibers }, (_, f) => f),
            (f) =>
              f % 2 === 0
                ? uow.run(ledger.appendBatch([0, 1, 2].map((i) => entryFor(task, f * 10 + i))))
                : Effect.map(ledger.append(entryFor(task, f * 10)), (r) => [r]),
            { concurrency: "unbounded" }
          )
          for (const batch of results.filter((_, f) => f % 2 === 0)) {
            assert.deepStrictEqual(
              batch.map((r) => r.seq - batch[0]!.seq),
              [0, 1, 2]
            )
          }
          const seqs = results.flat().map((r) => r.seq)
          const report = yield* ledger.verifyAll({ from: Math.min(...seqs), to: Math.max(...seqs) + 1 })
          assert.isTrue(report.valid, JSON.stringify(report.mismatch))
          assert.strictEqual((yield* ledger.byTask(task)).length, seqs.length)
        })
      )

      it.effect("each entry of a task links to the task's previous one, across batches, units and appenders", () =>
        Effect.gen(function* () {
          const ledger = yield* Ledger
          const uow = yield* UnitOfWork
          const task = newTask()
          const other = newTask()
          yield* ledger.append(entryFor(task, 0))
          yield* ledger.append(entryFor(other, 0))
          yield* ledger.appendBatch([entryFor(task, 1), entryFor(other, 1), entryFor(task, 2)])
          yield* uow.run(
            Effect.gen(function* () {
              yield* ledger.append(entryFor(task, 3))
              yield* ledger.appendBatch([entryFor(task, 4), entryFor(task, 5)])
            })
          )
          // a unit of work that fails leaves no entry for the next one to link to
          const failed = yield* Effect.exit(
            uow.run(Effect.andThen(ledger.append(entryFor(task, 99)), Effect.fail("no")))
          )
          assert.isTrue(failed._tag === "Failure")
          yield* Effect.forEach([6, 7, 8, 9], (i) => ledger.append(entryFor(task, i)), { concurrency: "unbounded" })
          const loose = yield* ledger.append({ kind: "note.added", payload: { task: false } })
          assert.isFalse("taskPrevHash" in (yield* ledger.get(loose.entryHash)))
          for (const [id, count] of [
            [task, 10],
            [other, 2]
          ] as const) {
            const entries = yield* ledger.byTask(id)
            assert.strictEqual(entries.length, count)
            entries.forEach((e, i) => {
              assert.strictEqual(e.taskPrevHash, i === 0 ? genesisHash : entries[i - 1]!.entryHash, `${id} ${i}`)
              assert.strictEqual(entryHashOf(e), e.entryHash)
            })
          }
        })
      )
    })

    describe("recorded entries (Ledger.record)", () => {
      it.effect(
        "entries recorded in units are read back once each, in order, chained; a failed unit records none",
        () =>
          Effect.gen(function* () {
            const ledger = yield* Ledger
            const uow = yield* UnitOfWork
            const tasks = [newTask(), newTask(), newTask()]
            // Each task's units run one after the other (as the runtime's do), the tasks' units concurrently
            yield* Effect.forEach(
              tasks,
              (task) =>
                Effect.forEach([0, 3, 6], (i) => uow.run(ledger.record([0, 1, 2].map((k) => entryFor(task, i + k)))), {
                  discard: true
                }),
              { concurrency: "unbounded", discard: true }
            )
            const failed = yield* Effect.exit(
              uow.run(Effect.andThen(ledger.record([entryFor(tasks[0]!, 99)]), Effect.fail("no")))
            )
            assert.isTrue(failed._tag === "Failure")
            // Outside a unit too, and nothing for an empty list
            yield* ledger.record([entryFor(tasks[1]!, 9)])
            yield* ledger.record([])
            // Refused like appendBatch: by JSON path, nothing recorded
            const refused = yield* Effect.flip(
              ledger.record([entryFor(tasks[2]!, 9), { kind: "", payload: 1 } as never])
            )
            assert.strictEqual(refused._tag, "InvalidInput")
            for (const [t, task] of tasks.entries()) {
              const entries = yield* ledger.byTask(task)
              assert.deepStrictEqual(
                entries.map((e) => (e.payload as { i: number }).i),
                t === 1 ? [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] : [0, 1, 2, 3, 4, 5, 6, 7, 8]
              )
              entries.forEach((e, i) => {
                assert.strictEqual(e.taskPrevHash, i === 0 ? genesisHash : entries[i - 1]!.entryHash, `${task} ${i}`)
                assert.strictEqual(entryHashOf(e), e.entryHash)
              })
              // Each is integrated once, with its own place in the log and a proof
              const proof = yield* ledger.inclusionProof(entries[0]!.entryHash)
              assert.strictEqual(proof.leafIndex, entries[0]!.seq)
            }
            const report = yield* ledger.verifyAll()
            assert.isTrue(report.valid, JSON.stringify(report.mismatch))
          })
      )
    })

    describe("Merkle tree, proofs and checkpoints", () => {
      it.effect("root(size) of every past size is the RFC 9162 tree head over the stored entries", () =>
        Effect.gen(function* () {
          const ledger = yield* Ledger
          yield* ledger.appendBatch([1, 2, 3].map((i) => entryFor(newTask(), i)))
          const size = yield* ledger.size
          const entries: Array<LedgerEntry> = []
          while (entries.length < size) entries.push(...(yield* ledger.entries({ from: entries.length, limit: 500 })))
          assert.strictEqual(entries.length, size)
          // the roots of every prefix, computed independently from the entries
          const roots: Array<string> = [Canonical.toHex(Merkle.emptyRoot)]
          let frontier: ReadonlyArray<Uint8Array> = []
          for (let i = 0; i < size; i++) {
            assert.strictEqual(entries[i]!.seq, i)
            const appended = Merkle.append(i, frontier, [Merkle.leafHash(bytes(entries[i]!.entryHash))])
            frontier = appended.frontier
            roots.push(Canonical.toHex(Merkle.foldSubtrees(appended.frontier)))
          }
          const step = Math.max(1, Math.floor(size / 40))
          for (let n = 0; n <= size; n += step) assert.strictEqual(yield* ledger.root(n), roots[n], `size ${n}`)
          assert.strictEqual(yield* ledger.root(), roots[size])
          assert.strictEqual(yield* ledger.root(size - 1), roots[size - 1])
        })
      )

      it.effect("inclusion proofs, by index or by hash, verify offline against checkpoints", () =>
        Effect.gen(function* () {
          const ledger = yield* Ledger
          const receipts = yield* ledger.appendBatch([1, 2, 3, 4, 5, 6, 7].map((i) => entryFor(newTask(), i)))
          const checkpoint = yield* ledger.checkpoint
          for (const r of receipts) {
            const byHash = yield* ledger.inclusionProof(r.entryHash, checkpoint.size)
            const byIndex = yield* ledger.inclusionProof(r.leafIndex, checkpoint.size)
            assert.deepStrictEqual(byHash, byIndex)
            assert.strictEqual(byHash.leafIndex, r.seq)
            assert.strictEqual(byHash.treeSize, checkpoint.size)
            assert.isTrue(Merkle.verifyInclusionProof(byHash, entryLeafHash(r.entryHash), checkpoint.root))
            assert.isFalse(Merkle.verifyInclusionProof(byHash, entryLeafHash(r.prevHash), checkpoint.root))
            // against an older tree that already held the entry
            const older = r.seq + 1
            const proof = yield* ledger.inclusionProof(r.entryHash, older)
            assert.isTrue(Merkle.verifyInclusionProof(proof, entryLeafHash(r.entryHash), yield* ledger.root(older)))
          }
          // the default tree size is the whole ledger
          const latest = yield* ledger.inclusionProof(receipts[0]!.entryHash)
          assert.strictEqual(latest.treeSize, yield* ledger.size)
        })
      )

      it.effect("consistency proofs show each checkpoint extends the previous one", () =>
        Effect.gen(function* () {
          const ledger = yield* Ledger
          yield* ledger.append(entryFor(newTask(), 1))
          const first = yield* ledger.checkpoint
          yield* ledger.appendBatch([1, 2, 3, 4, 5].map((i) => entryFor(newTask(), i)))
          const second = yield* ledger.checkpoint
          const proof = yield* ledger.consistencyProof(first.size, second.size)
          assert.deepStrictEqual([proof.oldSize, proof.newSize], [first.size, second.size])
          assert.isTrue(Merkle.verifyConsistencyProof(proof, first.root, second.root))
          assert.isFalse(Merkle.verifyConsistencyProof(proof, second.root, first.root))
          assert.isFalse(
            Merkle.verifyConsistencyProof({ ...proof, path: proof.path.slice(1) }, first.root, second.root)
          )
          assert.deepStrictEqual(yield* ledger.consistencyProof(first.size), proof)
          assert.deepStrictEqual((yield* ledger.consistencyProof(second.size, second.size)).path, [])
        })
      )

      it.effect("refuses sizes and indexes outside the tree", () =>
        Effect.gen(function* () {
          const ledger = yield* Ledger
          yield* ledger.append(entryFor(newTask(), 1))
          const size = yield* ledger.size
          const range = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
            Effect.map(Effect.flip(effect), (error) => {
              assert.instanceOf(error, InvalidTreeRange)
              return (error as InvalidTreeRange).parameter
            })
          assert.strictEqual(yield* range(ledger.root(size + 1)), "size")
          assert.strictEqual(yield* range(ledger.inclusionProof(size)), "leafIndex")
          assert.strictEqual(yield* range(ledger.inclusionProof(0, size + 1)), "treeSize")
          assert.strictEqual(yield* range(ledger.inclusionProof(3, 3)), "leafIndex")
          assert.strictEqual(yield* range(ledger.consistencyProof(3, 2)), "oldSize")
          // no proof exists from the empty tree (transparency-dev/merkle refuses it too)
          assert.strictEqual(yield* range(ledger.consistencyProof(0, size)), "oldSize")
          assert.strictEqual(yield* range(ledger.consistencyProof(0, 0)), "oldSize")
          assert.strictEqual(yield* range(ledger.consistencyProof(1, size + 1)), "newSize")
          assert.strictEqual(yield* range(ledger.verifyAll({ from: 0, to: size + 1 })), "to")
          assert.instanceOf(yield* Effect.flip(ledger.root(-1)), InvalidInput)
          assert.instanceOf(yield* Effect.flip(ledger.inclusionProof(1.5)), InvalidInput)
          assert.instanceOf(yield* Effect.flip(ledger.inclusionProof("e".repeat(64))), EntryNotFound)
        })
      )

      it.effect("checkpoints are signed with Ed25519; altered or foreign checkpoints are rejected", () =>
        Effect.gen(function* () {
          const ledger = yield* Ledger
          yield* ledger.append(entryFor(newTask(), 1))
          const checkpoint = yield* ledger.checkpoint
          assert.strictEqual(checkpoint.size, yield* ledger.size)
          assert.strictEqual(checkpoint.root, yield* ledger.root())
          assert.strictEqual(checkpoint.keyId, ledger.keyId)
          assert.strictEqual(publicKeyId(ledger.publicKey), ledger.keyId)
          assert.isTrue(verifyCheckpointSignature(checkpoint, ledger.publicKey))
          yield* ledger.verifyCheckpoint(checkpoint)
          // a tree size is signed once
          assert.deepStrictEqual(yield* ledger.checkpoint, checkpoint)

          const otherRoot = yield* ledger.root(checkpoint.size - 1)
          const flipped = checkpoint.signature.startsWith("A")
            ? `B${checkpoint.signature.slice(1)}`
            : `A${checkpoint.signature.slice(1)}`
          const altered: Array<[string, typeof checkpoint, CheckpointRejected["reason"]]> = [
            ["root", { ...checkpoint, root: otherRoot }, "signature"],
            ["size", { ...checkpoint, size: checkpoint.size - 1 }, "signature"],
            ["size + 1", { ...checkpoint, size: checkpoint.size + 1 }, "signature"],
            ["timestamp", { ...checkpoint, timestamp: checkpoint.timestamp + 1 }, "signature"],
            ["signature", { ...checkpoint, signature: flipped }, "signature"],
            ["signature padding", { ...checkpoint, signature: `${checkpoint.signature}=` }, "signature"],
            ["keyId", { ...checkpoint, keyId: "0".repeat(64) }, "key"]
          ]
          for (const [what, cp, reason] of altered) {
            assert.isFalse(verifyCheckpointSignature(cp, ledger.publicKey), what)
            const error = yield* Effect.flip(ledger.verifyCheckpoint(cp))
            assert.instanceOf(error, CheckpointRejected, what)
            assert.strictEqual((error as CheckpointRejected).reason, reason, what)
          }

          // correctly signed, by someone else
          const other = NodeCrypto.generateKeyPairSync("ed25519")
          const foreignBody = { size: checkpoint.size, root: checkpoint.root, timestamp: checkpoint.timestamp }
          const foreignKeyId = publicKeyId(other.publicKey)!
          const foreign = {
            ...foreignBody,
            keyId: foreignKeyId,
            signature: NodeCrypto.sign(
              null,
              checkpointMessage({ ...foreignBody, keyId: foreignKeyId }),
              other.privateKey
            ).toString("base64")
          }
          assert.isTrue(verifyCheckpointSignature(foreign, other.publicKey))
          assert.isFalse(verifyCheckpointSignature(foreign, ledger.publicKey))
          assert.strictEqual((yield* Effect.flip(ledger.verifyCheckpoint(foreign)))._tag, "CheckpointRejected")
          assert.isFalse(verifyCheckpointSignature(checkpoint, other.publicKey))

          const latest = yield* ledger.latestCheckpoint
          assert.isTrue(latest._tag === "Some" && latest.value.checkpoint.size >= checkpoint.size)
          const sizes = (yield* ledger.checkpoints).map((r) => r.checkpoint.size)
          assert.deepStrictEqual(
            sizes,
            [...sizes].sort((a, b) => a - b)
          )
          assert.include(sizes, checkpoint.size)
          const invalid = yield* Effect.flip(ledger.verifyCheckpoint({ ...checkpoint, size: "ten" } as never))
          assert.instanceOf(invalid, InvalidInput)
        })
      )

      it.effect("verify(hash) returns the entry with a proof against the latest checkpoint, checkable offline", () =>
        Effect.gen(function* () {
          const ledger = yield* Ledger
          const receipt = yield* ledger.append(entryFor(newTask(), 1))
          const verified = yield* ledger.verify(receipt.entryHash)
          assert.deepStrictEqual(verified.entry, yield* ledger.get(receipt.entryHash))
          assert.strictEqual(verified.leafHash, entryLeafHash(receipt.entryHash))
          assert.isAbove(verified.checkpoint.size, receipt.seq)
          assert.deepStrictEqual(verified.proof, yield* ledger.inclusionProof(receipt.seq, verified.checkpoint.size))
          assert.isTrue(Merkle.verifyInclusionProof(verified.proof, verified.leafHash, verified.checkpoint.root))
          assert.isTrue(verifyEntryProof(verified, ledger.publicKey))
          // the same checks fail for anything else
          const stranger = NodeCrypto.generateKeyPairSync("ed25519").publicKey
          assert.isFalse(verifyEntryProof(verified, stranger))
          assert.isFalse(
            verifyEntryProof({ ...verified, entry: { ...verified.entry, kind: "task.failed" } }, ledger.publicKey)
          )
          assert.isFalse(
            verifyEntryProof({ ...verified, entry: { ...verified.entry, payload: { i: 2 } } }, ledger.publicKey)
          )
          assert.isFalse(
            verifyEntryProof(
              { ...verified, proof: { ...verified.proof, leafIndex: verified.proof.leafIndex + 1 } },
              ledger.publicKey
            )
          )
          assert.instanceOf(yield* Effect.flip(ledger.verify("a".repeat(64))), EntryNotFound)
        })
      )

      it.effect("anchors checkpoints through the Anchor service and returns the receipts with verified entries", () =>
        Effect.gen(function* () {
          const ledger = yield* Ledger
          const first = yield* ledger.append(entryFor(newTask(), 1))
          const anchored = yield* ledger.anchor
          const receipt = anchored.anchor!
          assert.strictEqual(anchored.checkpoint.size, yield* ledger.size)
          assert.strictEqual(receipt.root, anchored.checkpoint.root)
          assert.strictEqual(receipt.size, anchored.checkpoint.size)
          assert.include(["pending", "confirmed"], receipt.status)
          // anchoring the same tree again publishes nothing new
          assert.strictEqual((yield* ledger.anchor).anchor!.txId, receipt.txId)
          const stored = (yield* ledger.checkpoints).find((r) => r.checkpoint.size === anchored.checkpoint.size)
          assert.strictEqual(stored?.anchor?.txId, receipt.txId)

          const v1 = yield* ledger.verify(first.entryHash)
          assert.deepStrictEqual(v1.checkpoint, anchored.checkpoint)
          assert.strictEqual(v1.anchor?.txId, receipt.txId)
          assert.isTrue(verifyEntryProof(v1, ledger.publicKey))

          // a newer, unanchored checkpoint: the proof against the anchored one comes along
          const second = yield* ledger.append(entryFor(newTask(), 2))
          const v2 = yield* ledger.verify(second.entryHash)
          assert.isUndefined(v2.anchor)
          assert.isUndefined(v2.anchored, "no anchored checkpoint covers the new entry yet")
          const v3 = yield* ledger.verify(first.entryHash)
          assert.strictEqual(v3.checkpoint.size, v2.checkpoint.size)
          assert.strictEqual(v3.anchored?.anchor.txId, receipt.txId)
          assert.strictEqual(v3.anchored?.checkpoint.root, anchored.checkpoint.root)
          assert.isTrue(verifyEntryProof(v3, ledger.publicKey))
        })
      )
    })

    describe("tamper detection", () => {
      const seed = (n: number) =>
        Effect.gen(function* () {
          const ledger = yield* Ledger
          const task = newTask()
          const receipts = yield* ledger.appendBatch(Array.from({ length: n }, (_, i) => entryFor(task, i)))
          const entries = yield* ledger.byTask(task)
          return { ledger, task, receipts, entries, from: receipts[0]!.seq, to: receipts[n - 1]!.seq + 1 }
        })
      const leafOf = (e: LedgerEntry) => Merkle.leafHash(bytes(e.entryHash))
      const bogus = Canonical.sha256("bogus")

      it.effect("a clean ledger verifies end to end, checkpoints included", () =>
        Effect.gen(function* () {
          const ledger = yield* Ledger
          yield* ledger.append(entryFor(newTask(), 1))
          yield* ledger.checkpoint
          const size = yield* ledger.size
          const report = yield* ledger.verifyAll()
          assert.deepStrictEqual(report, {
            from: 0,
            to: size,
            entries: size,
            checkpoints: report.checkpoints,
            anchors: report.anchors,
            anchorsUnchecked: report.anchorsUnchecked,
            valid: true
          })
          assert.isAtLeast(report.checkpoints, 1)
          const part = yield* ledger.verifyAll({ from: 1, to: size - 1 })
          assert.isTrue(part.valid)
          assert.strictEqual(part.entries, size - 2)
        })
      )

      it.effect("tampering with any field of any stored entry is reported at its seq", () =>
        Effect.gen(function* () {
          const { entries, from, ledger, to } = yield* seed(6)
          yield* ledger.checkpoint
          const target = entries[3]!
          const original = { ...target } as Record<string, unknown>
          const cases: Array<[string, (e: Record<string, unknown>) => Record<string, unknown>, string]> = [
            ["kind", (e) => ({ ...e, kind: "task.cancelled" }), "entryHash"],
            ["taskId", (e) => ({ ...e, taskId: newTask() }), "entryHash"],
            ["taskId removed", ({ taskId: _, ...e }) => e, "entryHash"],
            ["taskPrevHash", (e) => ({ ...e, taskPrevHash: Canonical.sha256Hex("other") }), "entryHash"],
            ["taskPrevHash removed", ({ taskPrevHash: _, ...e }) => e, "entryHash"],
            ["stepId", (e) => ({ ...e, stepId: "step_other" }), "entryHash"],
            ["principal", (e) => ({ ...e, principal: { id: "mallory", roles: ["admin"] } }), "entryHash"],
            ["at", (e) => ({ ...e, at: (e.at as number) + 1 }), "entryHash"],
            ["payload", (e) => ({ ...e, payload: { i: 3, amount: 1_000_000 } }), "payloadHash"],
            ["payload removed", ({ payload: _, ...e }) => e, "entryHash"],
            ["payloadHash", (e) => ({ ...e, payloadHash: Canonical.sha256Hex("other") }), "payloadHash"],
            ["prevHash", (e) => ({ ...e, prevHash: Canonical.sha256Hex("other") }), "prevHash"],
            ["entryHash", (e) => ({ ...e, entryHash: Canonical.sha256Hex("other") }), "entryHash"],
            ["seq", (e) => ({ ...e, seq: (e.seq as number) + 1_000_000_000 }), "missing"]
          ]
          for (const [what, change, check] of cases) {
            yield* Effect.scoped(
              Effect.gen(function* () {
                yield* tamperEntry(target, change(original))
                for (const report of [yield* ledger.verifyAll({ from, to }), yield* ledger.verifyAll()]) {
                  assert.isFalse(report.valid, what)
                  assert.strictEqual(report.mismatch?.seq, target.seq, what)
                  assert.strictEqual(report.mismatch?.check, check, what)
                  assert.notStrictEqual(report.mismatch?.expected, report.mismatch?.found, what)
                  assert.strictEqual(report.entries, target.seq - report.from, what)
                }
              })
            )
            assert.isTrue((yield* ledger.verifyAll({ from, to })).valid, `restored after ${what}`)
          }

          // verify(hash) refuses the tampered entry
          yield* Effect.scoped(
            Effect.gen(function* () {
              yield* tamperEntry(target, { ...original, kind: "task.cancelled" })
              const refused = yield* Effect.flip(ledger.verify(target.entryHash))
              assert.instanceOf(refused, LedgerTampered)
              assert.strictEqual((refused as LedgerTampered).seq, target.seq)
              assert.strictEqual((refused as LedgerTampered).check, "entryHash")
            })
          )
          assert.isTrue(verifyEntryProof(yield* ledger.verify(target.entryHash), ledger.publicKey))

          // a deleted entry
          yield* Effect.scoped(
            Effect.gen(function* () {
              yield* tamperEntry(target, undefined)
              const gone = yield* ledger.verifyAll({ from, to })
              assert.strictEqual(gone.mismatch?.check, "missing")
              assert.strictEqual(gone.mismatch?.seq, target.seq)
            })
          )
          assert.isTrue((yield* ledger.verifyAll()).valid)
        })
      )

      it.effect("tampering with a Merkle node is reported, and breaks the proofs through it", () =>
        Effect.gen(function* () {
          const { entries, from, ledger, to } = yield* seed(8)
          yield* ledger.checkpoint
          // A node is never on its own leaf's proof: each case checks an entry whose proof passes through it
          const inRange = (seq: number) => entries.find((e) => e.seq === seq)
          const target = entries.find((e) => inRange(e.seq ^ 1) !== undefined)!
          const witness = inRange(target.seq ^ 1)!
          yield* Effect.scoped(
            Effect.gen(function* () {
              yield* tamperNode({ level: 0, index: target.seq, hash: bogus }, leafOf(target))
              const report = yield* ledger.verifyAll({ from, to })
              assert.strictEqual(report.mismatch?.check, "node")
              assert.strictEqual(report.mismatch?.seq, target.seq)
              assert.strictEqual(report.mismatch?.found, Canonical.toHex(bogus))
              const refused = yield* Effect.flip(ledger.verify(witness.entryHash))
              assert.instanceOf(refused, LedgerTampered)
              assert.strictEqual((refused as LedgerTampered).check, "node")
            })
          )
          assert.isTrue((yield* ledger.verifyAll({ from, to })).valid)
          assert.isTrue(verifyEntryProof(yield* ledger.verify(witness.entryHash), ledger.publicKey))

          // An interior node: a level-1 node whose sibling's leaves are in the range too
          const pair = (j: number) => [inRange(2 * j), inRange(2 * j + 1)]
          const j = [...new Set(entries.map((e) => Math.floor(e.seq / 2)))].find((j) =>
            [...pair(j), ...pair(j ^ 1)].every((e) => e !== undefined)
          )!
          const [left, right] = pair(j) as [LedgerEntry, LedgerEntry]
          yield* Effect.scoped(
            Effect.gen(function* () {
              yield* tamperNode({ level: 1, index: j, hash: bogus }, Merkle.nodeHash(leafOf(left), leafOf(right)))
              const interior = yield* ledger.verifyAll({ from, to })
              assert.strictEqual(interior.mismatch?.check, "node")
              assert.strictEqual(interior.mismatch?.seq, right.seq)
              const broken = yield* Effect.flip(ledger.verify(pair(j ^ 1)[0]!.entryHash))
              assert.instanceOf(broken, LedgerTampered)
            })
          )
          assert.isTrue((yield* ledger.verifyAll()).valid)
        })
      )

      it.effect("a rewrite that recomputes every hash is caught by the signed checkpoint", () =>
        Effect.gen(function* () {
          const { ledger, receipts } = yield* seed(3)
          const checkpoint = yield* ledger.checkpoint
          const size = yield* ledger.size
          const last = yield* ledger.get(receipts[2]!.entryHash)
          assert.strictEqual(last.seq, size - 1)
          // every entry, to recompute the nodes the rewritten entry is part of
          const leaves = (yield* allEntries).map(leafOf)
          const nodesOver = (leafHashes: ReadonlyArray<Uint8Array>) => nodesThrough(size - 1, size, leafHashes)
          const forged = forge(last, { kind: "approval.granted" })
          const originals = nodesOver(leaves)
          yield* Effect.scoped(
            Effect.gen(function* () {
              yield* tamperEntry(last, forged)
              yield* tamperHead({ size, lastHash: forged.entryHash }, { size, lastHash: last.entryHash })
              const rewritten = nodesOver([...leaves.slice(0, -1), Merkle.leafHash(bytes(forged.entryHash))])
              for (let i = 0; i < rewritten.length; i++) yield* tamperNode(rewritten[i]!, originals[i]!.hash)
              const report = yield* ledger.verifyAll()
              assert.isFalse(report.valid)
              assert.strictEqual(report.mismatch?.check, "checkpoint")
              assert.strictEqual(report.mismatch?.expected, checkpoint.root)
              assert.isAtMost(report.mismatch!.seq, last.seq)
              assert.strictEqual(report.entries, size, "every entry and node agreed with the others")
              const refused = yield* Effect.flip(ledger.verify(forged.entryHash))
              assert.instanceOf(refused, LedgerTampered)
            })
          )
          assert.isTrue((yield* ledger.verifyAll()).valid)
        })
      )

      it.effect("a rewrite since the last checkpoint that breaks a task's own chain is reported at its seq", () =>
        Effect.gen(function* () {
          const other = (yield* seed(1)).entries[0]!
          const { entries, ledger, task } = yield* seed(4)
          const size = yield* ledger.size
          const last = entries[3]!
          assert.strictEqual(last.seq, size - 1)
          assert.strictEqual(last.taskPrevHash, entries[2]!.entryHash)
          const leaves = (yield* allEntries).map(leafOf)
          const originals = nodesThrough(size - 1, size, leaves)
          // Every hash, node and the head recomputed: only the per-task link can tell
          const rewrite = (fields: Readonly<Record<string, unknown>> | "format 1") =>
            Effect.gen(function* () {
              const forged = fields === "format 1" ? forgeWithout(last) : forge(last, fields)
              yield* tamperEntry(last, forged)
              yield* tamperHead({ size, lastHash: forged.entryHash }, { size, lastHash: last.entryHash })
              const rewritten = nodesThrough(size - 1, size, [
                ...leaves.slice(0, -1),
                Merkle.leafHash(bytes(forged.entryHash))
              ])
              for (let i = 0; i < rewritten.length; i++) yield* tamperNode(rewritten[i]!, originals[i]!.hash)
            })
          const cases: Array<[string, Readonly<Record<string, unknown>>]> = [
            ["the task's earlier entries cut off", { taskPrevHash: genesisHash }],
            ["an entry of the task skipped", { taskPrevHash: entries[1]!.entryHash }],
            ["linked to another task's entry", { taskPrevHash: other.entryHash }],
            ["moved to another task", { taskId: other.taskId }]
          ]
          for (const [what, fields] of cases) {
            yield* Effect.scoped(
              Effect.gen(function* () {
                yield* rewrite(fields)
                // the whole ledger, and a range that starts after the task's earlier entries
                for (const report of [yield* ledger.verifyAll(), yield* ledger.verifyAll({ from: last.seq })]) {
                  assert.isFalse(report.valid, what)
                  assert.strictEqual(report.mismatch?.check, "taskPrevHash", what)
                  assert.strictEqual(report.mismatch?.seq, last.seq, what)
                  assert.strictEqual(
                    report.mismatch?.expected,
                    what === "moved to another task" ? other.entryHash : entries[2]!.entryHash,
                    what
                  )
                  assert.strictEqual(report.mismatch?.found, fields.taskPrevHash ?? last.taskPrevHash, what)
                  assert.strictEqual(report.entries, last.seq - report.from, what)
                  assert.include(report.mismatch?.detail, String(fields.taskId ?? task), what)
                }
              })
            )
          }
          // An entry of format 1 (no taskPrevHash) carries no per-task link: nothing to check, it still verifies
          yield* Effect.scoped(
            Effect.gen(function* () {
              yield* rewrite("format 1")
              assert.isTrue((yield* ledger.verifyAll()).valid)
            })
          )
          assert.isTrue((yield* ledger.verifyAll()).valid)
        })
      )

      it.effect("entries removed from the end, head record and all, are caught by the signed checkpoint", () =>
        Effect.gen(function* () {
          const { entries, ledger } = yield* seed(2)
          yield* ledger.checkpoint
          const last = entries[1]!
          const head = { size: last.seq + 1, lastHash: last.entryHash }
          yield* Effect.scoped(
            Effect.gen(function* () {
              yield* tamperEntry(last, undefined)
              yield* tamperHead({ size: last.seq, lastHash: entries[0]!.entryHash }, head)
              const report = yield* ledger.verifyAll()
              assert.isFalse(report.valid)
              assert.strictEqual(report.mismatch?.seq, last.seq)
              assert.strictEqual(report.mismatch?.check, "checkpoint")
              // and no checkpoint of the shortened ledger is signed
              const refused = yield* Effect.flip(ledger.checkpoint)
              assert.instanceOf(refused, LedgerTampered)
              assert.strictEqual((refused as LedgerTampered).check, "checkpoint")
            })
          )
          assert.isTrue((yield* ledger.verifyAll()).valid)
        })
      )

      it.effect("the last entry deleted (the head record left as it was) is reported, not valid", () =>
        Effect.gen(function* () {
          const { entries, ledger } = yield* seed(2)
          const last = entries[1]!
          yield* Effect.scoped(
            Effect.gen(function* () {
              yield* tamperEntry(last, undefined)
              const report = yield* ledger.verifyAll()
              assert.isFalse(report.valid)
              assert.strictEqual(report.mismatch?.seq, last.seq)
              assert.strictEqual(report.mismatch?.check, "missing")
              const refused = yield* Effect.flip(ledger.checkpoint)
              assert.instanceOf(refused, LedgerTampered)
            })
          )
          assert.isTrue((yield* ledger.verifyAll()).valid)
        })
      )

      it.effect("a head record that disagrees with the last entry is reported", () =>
        Effect.gen(function* () {
          const { entries, ledger } = yield* seed(2)
          const last = entries[1]!
          const head = { size: last.seq + 1, lastHash: last.entryHash }
          const cases: Array<[string, LedgerHead, LedgerMismatch["check"], number]> = [
            ["last hash", { size: head.size, lastHash: entries[0]!.entryHash }, "head", last.seq],
            ["size beyond the entries", { size: head.size + 1, lastHash: last.entryHash }, "missing", head.size],
            ["size short of the entries", { size: head.size - 1, lastHash: entries[0]!.entryHash }, "head", last.seq]
          ]
          for (const [what, tampered, check, seq] of cases) {
            yield* Effect.scoped(
              Effect.gen(function* () {
                yield* tamperHead(tampered, head)
                const report = yield* ledger.verifyAll()
                assert.isFalse(report.valid, what)
                assert.strictEqual(report.mismatch?.check, check, what)
                assert.strictEqual(report.mismatch?.seq, seq, what)
                assert.instanceOf(yield* Effect.flip(ledger.checkpoint), LedgerTampered, what)
              })
            )
          }
          assert.isTrue((yield* ledger.verifyAll()).valid)
        })
      )
    })

    describe("checkpoints sign only what the entries say", () => {
      it.effect(
        "an overwritten leaf after the last checkpoint is never signed: the fabricated entry stays unproven",
        () =>
          Effect.gen(function* () {
            const ledger = yield* Ledger
            yield* ledger.appendBatch([1, 2, 3].map((i) => entryFor(newTask(), i)))
            const earlier = yield* ledger.checkpoint
            yield* ledger.appendBatch([4, 5].map((i) => entryFor(newTask(), i)))
            const size = yield* ledger.size
            const all = yield* allEntries
            const target = all[size - 1]!
            const honestRoot = yield* ledger.root()
            // The attacker's entry: an approval nobody gave, never stored as a row, kept to show an auditor
            const fabricated = forge(target, {
              kind: "approval.granted",
              principal: Principal.make("mallory", ["approver"]),
              payload: { approved: true },
              payloadHash: Canonical.hash({ approved: true })
            })
            const leaves = all.map((e) => Merkle.leafHash(bytes(e.entryHash)))
            const forgedLeaves = [...leaves.slice(0, -1), Merkle.leafHash(bytes(fabricated.entryHash))]
            const originals = nodesThrough(size - 1, size, leaves)
            let forgedProofs: { inclusion: Merkle.InclusionProof; consistency: Merkle.ConsistencyProof } | undefined
            yield* Effect.scoped(
              Effect.gen(function* () {
                // One overwrite per node (one UPDATE each on a database): the leaf and the nodes above it, so the
                // stored tree is consistent with itself and its root is the forged tree's
                const rewritten = nodesThrough(size - 1, size, forgedLeaves)
                for (let i = 0; i < rewritten.length; i++) yield* tamperNode(rewritten[i]!, originals[i]!.hash)
                const forgedRoot = yield* ledger.root()
                assert.notStrictEqual(forgedRoot, honestRoot)
                assert.strictEqual(forgedRoot, Canonical.toHex(Merkle.rootOf(forgedLeaves)))

                // The ledger refuses to sign: the stored leaf is not the stored entry's
                const refused = yield* Effect.flip(ledger.checkpoint)
                assert.instanceOf(refused, LedgerTampered)
                assert.strictEqual((refused as LedgerTampered).check, "node")
                assert.strictEqual((refused as LedgerTampered).seq, size - 1)
                assert.instanceOf(yield* Effect.flip(ledger.anchor), LedgerTampered)
                assert.instanceOf(yield* Effect.flip(ledger.verify(all[size - 2]!.entryHash)), LedgerTampered)
                // No signed checkpoint covers the forged tree
                for (const record of yield* ledger.checkpoints) {
                  assert.isBelow(record.checkpoint.size, size)
                  assert.notStrictEqual(record.checkpoint.root, forgedRoot)
                }
                forgedProofs = {
                  inclusion: yield* ledger.inclusionProof(size - 1, size),
                  consistency: yield* ledger.consistencyProof(earlier.size, size)
                }
                // The proofs served from the forged nodes add up to the forged root, which nobody signed
                assert.isTrue(
                  Merkle.verifyInclusionProof(forgedProofs.inclusion, entryLeafHash(fabricated.entryHash), forgedRoot)
                )
              })
            )
            // Restored: the checkpoint of this size signs the honest root, and the forgery fails against it
            const signed = yield* ledger.checkpoint
            assert.strictEqual(signed.size, size)
            assert.strictEqual(signed.root, honestRoot)
            const forgedVerification = {
              entry: fabricated,
              leafHash: entryLeafHash(fabricated.entryHash),
              checkpoint: signed,
              proof: forgedProofs!.inclusion
            }
            assert.isFalse(verifyEntryProof(forgedVerification, ledger.publicKey))
            assert.isFalse(Merkle.verifyConsistencyProof(forgedProofs!.consistency, earlier.root, signed.root))
            assert.isTrue(
              Merkle.verifyConsistencyProof(
                yield* ledger.consistencyProof(earlier.size, size),
                earlier.root,
                signed.root
              )
            )
            assert.isTrue(verifyEntryProof(yield* ledger.verify(target.entryHash), ledger.publicKey))
          })
      )

      it.effect("an overwritten node of the already signed tree, or a broken link since, is never signed", () =>
        Effect.gen(function* () {
          const ledger = yield* Ledger
          yield* ledger.appendBatch([1, 2, 3, 4, 5].map((i) => entryFor(newTask(), i)))
          const earlier = yield* ledger.checkpoint
          yield* ledger.appendBatch([6, 7, 8].map((i) => entryFor(newTask(), i)))
          const size = yield* ledger.size
          const all = yield* allEntries

          // A frontier node of the signed tree: the new tree would be built on it
          const [frontier] = Merkle.subtreeNodes(0, earlier.size).slice(-1)
          const leaves = all.map((e) => Merkle.leafHash(bytes(e.entryHash)))
          const span = 2 ** frontier!.level
          const original = Merkle.rootOf(leaves.slice(frontier!.index * span, (frontier!.index + 1) * span))
          yield* Effect.scoped(
            Effect.gen(function* () {
              yield* tamperNode({ ...frontier!, hash: Canonical.sha256("bogus") }, original)
              const refused = yield* Effect.flip(ledger.checkpoint)
              assert.instanceOf(refused, LedgerTampered)
              assert.strictEqual((refused as LedgerTampered).check, "checkpoint")
              assert.strictEqual((refused as LedgerTampered).expected, earlier.root)
            })
          )

          // An entry since the checkpoint rewritten with a correct hash (and its nodes), its successor untouched:
          // the successor's link no longer holds
          const victim = all[earlier.size]!
          const rewritten = forge(victim, { kind: "task.cancelled" })
          const forgedLeaves = leaves.map((leaf, i) =>
            i === victim.seq ? Merkle.leafHash(bytes(rewritten.entryHash)) : leaf
          )
          const originals = nodesThrough(victim.seq, size, leaves)
          yield* Effect.scoped(
            Effect.gen(function* () {
              yield* tamperEntry(victim, rewritten)
              const forgedNodes = nodesThrough(victim.seq, size, forgedLeaves)
              for (let i = 0; i < forgedNodes.length; i++) yield* tamperNode(forgedNodes[i]!, originals[i]!.hash)
              const refused = yield* Effect.flip(ledger.checkpoint)
              assert.instanceOf(refused, LedgerTampered)
              assert.strictEqual((refused as LedgerTampered).check, "prevHash")
              assert.strictEqual((refused as LedgerTampered).seq, victim.seq + 1)
            })
          )
          const signed = yield* ledger.checkpoint
          assert.strictEqual(signed.size, size)
          assert.isTrue((yield* ledger.verifyAll()).valid)
        })
      )
    })

    describe("anchor receipts are checked against the chain", () => {
      it.effect("a replaced tx id, a confirmation the chain does not have, or a deleted receipt is reported", () =>
        Effect.gen(function* () {
          const ledger = yield* Ledger
          yield* ledger.append(entryFor(newTask(), 1))
          const first = yield* ledger.anchor
          yield* ledger.append(entryFor(newTask(), 2))
          const second = yield* ledger.anchor
          assert.isDefined(first.anchor)
          assert.isDefined(second.anchor)
          const clean = yield* ledger.verifyAll()
          assert.isTrue(clean.valid, JSON.stringify(clean.mismatch))
          assert.isAtLeast(clean.anchors + clean.anchorsUnchecked, 2)

          const receipt = first.anchor!
          const otherTx = second.anchor!.txId
          const missingTx = `${receipt.txId.slice(0, -1)}${receipt.txId.endsWith("a") ? "b" : "a"}`
          const cases: Array<[string, Readonly<Record<string, unknown>> | undefined]> = [
            ["the tx id of another anchor", { ...receipt, txId: otherTx }],
            ["a tx the chain does not have, marked confirmed", { ...receipt, txId: missingTx, status: "confirmed" }],
            ["another root", { ...receipt, root: second.checkpoint.root, size: second.checkpoint.size }],
            ["the receipt deleted", undefined]
          ]
          for (const [what, tampered] of cases) {
            yield* Effect.scoped(
              Effect.gen(function* () {
                yield* tamperAnchor(first, tampered)
                const report = yield* ledger.verifyAll()
                assert.isFalse(report.valid, what)
                assert.strictEqual(report.mismatch?.check, "anchor", what)
                assert.strictEqual(report.mismatch?.seq, first.checkpoint.size - 1, what)
              })
            )
          }
          assert.isTrue((yield* ledger.verifyAll()).valid)
        })
      )
    })
  })
}
