import * as NodeCrypto from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import {
  Anchor,
  Canonical,
  entryHashOf,
  Ledger,
  type LedgerEntry,
  LedgerStore,
  Merkle,
  Principal,
  type ProofBundle,
  TaskStore,
  taskBundle,
  WebBundle
} from "@mandate/core"
import { Effect, Layer } from "effect"

const layer = () =>
  Layer.mergeAll(
    Ledger.layer().pipe(Layer.provideMerge(LedgerStore.layerMemory), Layer.provide(Anchor.layerMemory)),
    TaskStore.layerMemory
  )
const carol = Principal.make("carol", ["auditor"])

type Mutable = Omit<ProofBundle, "entries" | "proofs" | "checkpoint" | "anchor"> & {
  entries: Array<Record<string, unknown>>
  proofs: Array<Merkle.InclusionProof>
  checkpoint: ProofBundle["checkpoint"]
  anchor?: ProofBundle["anchor"]
}

const copy = (bundle: ProofBundle): Mutable => structuredClone(bundle) as Mutable

const failed = (report: WebBundle.BundleReport) => report.checks.filter((c) => !c.ok).map((c) => c.name)

// A task of 6 entries interleaved with another task's, anchored after the first 4, then 2 more
const exported = Effect.gen(function* () {
  const ledger = yield* Ledger
  const note = (taskId: string, i: number) =>
    ledger.append({ kind: i === 5 && taskId === "task_a" ? "task.completed" : "note.added", taskId, payload: { i } })
  for (let i = 0; i < 4; i++) {
    yield* note("task_a", i)
    yield* note("task_b", i)
  }
  yield* ledger.anchor
  yield* note("task_a", 4)
  yield* note("task_b", 4)
  yield* note("task_a", 5)
  return { bundle: yield* taskBundle("task_a", carol), ledger }
})

describe("proof bundle", () => {
  it.effect("a task's bundle verifies offline with the pinned key, PEM or key id", () =>
    Effect.gen(function* () {
      const { bundle, ledger } = yield* exported
      assert.strictEqual(bundle.entries.length, 6)
      assert.strictEqual(bundle.anchor?.checkpoint.size, 8)
      assert.strictEqual(bundle.checkpoint.size, 11)
      // JSON round trip: the document is self-contained
      const document = JSON.parse(JSON.stringify(bundle))
      for (const pinned of [ledger.publicKey, ledger.keyId]) {
        const report = yield* Effect.promise(() => WebBundle.verifyBundle(document, pinned))
        assert.isTrue(report.ok, JSON.stringify(report.checks))
        assert.deepStrictEqual(
          report.checks.map((c) => c.name),
          [
            "format",
            "key",
            "signature",
            "entries",
            "inclusion",
            "completeness",
            "anchor.signature",
            "anchor.consistency",
            "anchor.receipt"
          ]
        )
        assert.isTrue(report.checks.every((c) => !c.skipped))
      }
      const report = yield* Effect.promise(() => WebBundle.verifyBundle(document, ledger.publicKey))
      assert.include(report.checks.find((c) => c.name === "completeness")!.detail, "the task ended (task.completed)")
      assert.include(report.checks.find((c) => c.name === "anchor.consistency")!.detail, "4 of 6 entries")
    }).pipe(Effect.provide(layer()))
  )

  it.effect("each single tamper is rejected with its reason", () =>
    Effect.gen(function* () {
      const { bundle, ledger } = yield* exported
      const other = NodeCrypto.generateKeyPairSync("ed25519").publicKey.export({
        type: "spki",
        format: "pem"
      }) as string
      const flip = (hex: string) => (hex[0] === "0" ? `1${hex.slice(1)}` : `0${hex.slice(1)}`)
      const cases: ReadonlyArray<[string, (b: Mutable) => void, ReadonlyArray<string>, string?]> = [
        [
          "an entry removed",
          (b) => {
            b.entries.splice(2, 1)
            b.proofs.splice(2, 1)
          },
          ["completeness"]
        ],
        [
          "the first entry removed",
          (b) => {
            b.entries.shift()
            b.proofs.shift()
          },
          ["completeness"],
          "task's start"
        ],
        [
          "the last two entries reordered",
          (b) => {
            b.entries.push(...b.entries.splice(4, 1))
            b.proofs.push(...b.proofs.splice(4, 1))
          },
          ["entries", "completeness"]
        ],
        [
          "a payload changed",
          (b) => {
            b.entries[1] = { ...b.entries[1], payload: { i: 1_000_000 } }
          },
          ["entries", "inclusion", "completeness"],
          "payload hashes to"
        ],
        [
          "a payload changed, hashes recomputed",
          (b) => {
            const e = { ...b.entries[1], payload: { i: 7 }, payloadHash: Canonical.hash({ i: 7 }) }
            b.entries[1] = { ...e, entryHash: entryHashOf(e as unknown as LedgerEntry) }
          },
          ["inclusion", "completeness"]
        ],
        [
          "one proof byte",
          (b) => {
            const path = [...b.proofs[3]!.path]
            path[0] = flip(path[0]!)
            b.proofs[3] = { ...b.proofs[3]!, path }
          },
          ["inclusion"]
        ],
        [
          "the checkpoint signature",
          (b) => {
            const sig = Buffer.from(b.checkpoint.signature, "base64")
            sig[0] = sig[0]! ^ 1
            b.checkpoint = { ...b.checkpoint, signature: sig.toString("base64") }
          },
          ["signature"]
        ],
        [
          "the checkpoint root",
          (b) => {
            b.checkpoint = { ...b.checkpoint, root: flip(b.checkpoint.root) as typeof b.checkpoint.root }
          },
          ["signature", "inclusion", "anchor.consistency"]
        ],
        [
          "a receipt for another root",
          (b) => {
            b.anchor = { ...b.anchor!, receipt: { ...b.anchor!.receipt, root: Canonical.sha256Hex("another root") } }
          },
          ["anchor.receipt"],
          "not the anchored"
        ],
        [
          "the transaction input",
          (b) => {
            b.anchor = { ...b.anchor!, input: WebBundle.anchorInput(Canonical.sha256Hex("x"), 8)! }
          },
          ["anchor.receipt"]
        ],
        [
          "one consistency proof byte",
          (b) => {
            const path = [...b.anchor!.consistency.path]
            path[0] = flip(path[0]!)
            b.anchor = { ...b.anchor!, consistency: { ...b.anchor!.consistency, path } }
          },
          ["anchor.consistency"]
        ],
        [
          "an entry of another task slipped in",
          (b) => {
            b.entries[2] = { ...b.entries[2], taskId: "task_b" }
          },
          ["entries", "inclusion", "completeness"]
        ]
      ]
      const outcomes: Array<[string, ReadonlyArray<string>]> = []
      for (const [what, change, expected, reason] of cases) {
        const tampered = copy(bundle)
        change(tampered)
        const report = yield* Effect.promise(() => WebBundle.verifyBundle(tampered, ledger.publicKey))
        assert.isFalse(report.ok, what)
        outcomes.push([what, failed(report)])
        if (JSON.stringify(failed(report)) !== JSON.stringify(expected)) continue
        if (reason !== undefined) {
          assert.include(report.checks.find((c) => c.name === expected[0])!.detail, reason, what)
        }
      }
      assert.deepStrictEqual(
        outcomes,
        cases.map(([what, , expected]) => [what, expected])
      )
      // a wrong key, pinned as PEM or as key id; a bundle carrying another key than the pinned id
      const wrong = yield* Effect.promise(() => WebBundle.verifyBundle(bundle, other))
      assert.deepStrictEqual(failed(wrong), ["key", "signature", "anchor.signature"])
      const wrongId = yield* Effect.promise(() =>
        WebBundle.verifyBundle(bundle, Canonical.sha256Hex("someone else's key"))
      )
      assert.deepStrictEqual(failed(wrongId), ["key"])
      const swapped = yield* Effect.promise(() => WebBundle.verifyBundle({ ...bundle, publicKey: other }, ledger.keyId))
      assert.deepStrictEqual(failed(swapped), ["key"])
      // garbage never throws
      for (const garbage of [null, 1, "x", {}, { format: WebBundle.bundleFormat }, [], { ...bundle, entries: [] }]) {
        const report = yield* Effect.promise(() => WebBundle.verifyBundle(garbage, ledger.publicKey))
        assert.isFalse(report.ok)
      }
    }).pipe(Effect.provide(layer()))
  )

  it.effect("entries without taskPrevHash (entry format 1) hash as before but cannot show completeness", () =>
    Effect.gen(function* () {
      const { bundle, ledger } = yield* exported
      const legacy = copy(bundle)
      legacy.entries = bundle.entries.map((e) => {
        const { taskPrevHash: _, entryHash: __, ...body } = e as unknown as LedgerEntry
        return { ...body, entryHash: entryHashOf(body) }
      })
      const report = yield* Effect.promise(() => WebBundle.verifyBundle(legacy, ledger.publicKey))
      assert.isTrue(report.checks.find((c) => c.name === "entries")!.ok)
      const completeness = report.checks.find((c) => c.name === "completeness")!
      assert.isFalse(completeness.ok)
      assert.include(completeness.detail, "entry format 1")
    }).pipe(Effect.provide(layer()))
  )

  it.effect("without an anchor the anchor checks are skipped; an empty consistency proof for the same size", () =>
    Effect.gen(function* () {
      const ledger = yield* Ledger
      yield* ledger.append({ kind: "note.added", taskId: "task_c", payload: { i: 0 } })
      const plain = yield* taskBundle("task_c", carol)
      assert.isUndefined(plain.anchor)
      const report = yield* Effect.promise(() => WebBundle.verifyBundle(plain, ledger.publicKey))
      assert.isTrue(report.ok)
      assert.deepStrictEqual(
        report.checks.filter((c) => c.skipped).map((c) => c.name),
        ["anchor.signature", "anchor.consistency", "anchor.receipt"]
      )
      yield* ledger.anchor
      const anchored = yield* taskBundle("task_c", carol)
      assert.strictEqual(anchored.anchor?.checkpoint.size, anchored.checkpoint.size)
      assert.isTrue((yield* Effect.promise(() => WebBundle.verifyBundle(anchored, ledger.publicKey))).ok)
    }).pipe(Effect.provide(layer()))
  )

  it.effect("the browser's consistency check agrees with Merkle.verifyConsistency", () =>
    Effect.gen(function* () {
      const leaves = Array.from({ length: 40 }, (_, i) => Merkle.leafHash(Canonical.sha256(`leaf ${i}`)))
      const root = (n: number) => Canonical.toHex(Merkle.rootOf(leaves.slice(0, n)))
      const ledger = yield* Ledger
      for (let i = 0; i < 40; i++) yield* ledger.append({ kind: "note.added", payload: { i } })
      for (const [m, n] of [
        [1, 1],
        [1, 2],
        [3, 7],
        [4, 8],
        [5, 40],
        [16, 33],
        [39, 40]
      ] as const) {
        const proof = yield* ledger.consistencyProof(m, n)
        const oldRoot = yield* ledger.root(m)
        const newRoot = yield* ledger.root(n)
        const web = yield* Effect.promise(() => WebBundle.verifyConsistency(proof, oldRoot, newRoot))
        assert.strictEqual(web, Merkle.verifyConsistencyProof(proof, oldRoot, newRoot), `${m}→${n}`)
        assert.isTrue(web, `${m}→${n}`)
        const wrong = yield* Effect.promise(() => WebBundle.verifyConsistency(proof, root(m), newRoot))
        assert.isFalse(wrong && root(m) !== oldRoot)
      }
      // An old size of 0 proves nothing
      assert.isFalse(
        yield* Effect.promise(() =>
          WebBundle.verifyConsistency(
            { oldSize: 0, newSize: 1, path: [] },
            Canonical.sha256Hex(""),
            Canonical.sha256Hex("")
          )
        )
      )
    }).pipe(Effect.provide(layer()))
  )
})
