import * as NodeCrypto from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import {
  Anchor,
  Canonical,
  type Checkpoint,
  entryHashOf,
  entryLeafHash,
  Ledger,
  type LedgerEntry,
  Merkle,
  verifyEntryProof
} from "@mandate/core"
import * as WebVerify from "@mandate/core/WebVerify"
import { Effect, Schema } from "effect"

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex")

/** A memory ledger with varied entries, checkpointed: every entry with its proof, the checkpoint and the key. */
const ledgerEvidence = Effect.gen(function* () {
  const ledger = yield* Ledger
  const payloads: ReadonlyArray<unknown> = [
    { amount: 2500, from: "A".repeat(60), to: "B".repeat(60) },
    { text: '€ \u2028 \ud83d\ude00 "quoted" \\ back', n: [1e21, 1e-7, -0, 0.1, 333333333.3333333] },
    [],
    null,
    { nested: { z: 1, a: [true, false, null, { "\r": 1, "1": 2, "\u0080": 3 }] } }
  ]
  for (const [i, payload] of payloads.entries()) {
    yield* ledger.append({
      kind: i % 2 === 0 ? "task.created" : "note.added",
      taskId: "task_1",
      ...(i === 1 ? { stepId: "check_balance", principal: { id: "alice", roles: ["submitter"] } } : {}),
      payload,
      storePayload: i !== 3
    })
  }
  const checkpoint = yield* ledger.checkpoint
  const entries = yield* ledger.byTask("task_1")
  const proofs = yield* Effect.forEach(entries, (e) => ledger.inclusionProof(e.seq, checkpoint.size))
  return { entries, proofs, checkpoint, publicKey: ledger.publicKey }
})

const withLedger = <A, E>(effect: Effect.Effect<A, E, Ledger>) =>
  effect.pipe(Effect.provide(Ledger.layerMemory()), Effect.provide(Anchor.layerNone))

const check = (
  entry: Readonly<Record<string, unknown>>,
  proof: WebVerify.InclusionProof,
  checkpoint: Checkpoint,
  key: WebVerify.PublicKey
) => Effect.promise(() => WebVerify.verifyEntry({ entry, proof, checkpoint, publicKey: key }))

describe("WebVerify (Web Crypto only)", () => {
  it.prop("canonicalJson is Canonical.encode, byte for byte", [Schema.Json], ([value]) => {
    assert.strictEqual(WebVerify.canonicalJson(value), Canonical.encode(value))
  })

  it("canonicalJson refuses what JSON cannot represent, without throwing", () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, undefined, 1n, () => 1, new Date(0), { a: [Symbol()] }]) {
      assert.isUndefined(WebVerify.canonicalJson(bad))
    }
  })

  it.effect("rootFromInclusion agrees with Merkle for every leaf of trees up to 40 leaves", () =>
    Effect.gen(function* () {
      const leaves = Array.from({ length: 40 }, (_, i) => Merkle.leafHash(Canonical.sha256(`leaf ${i}`)))
      const { nodes } = Merkle.append(0, [], leaves)
      const byId = new Map(nodes.map((n) => [`${n.level}:${n.index}`, n.hash]))
      const read: Merkle.NodeReader = (level, index) => byId.get(`${level}:${index}`)!
      for (let size = 1; size <= leaves.length; size++) {
        const root = hex(Merkle.rootAt(size, read))
        for (let index = 0; index < size; index++) {
          const path = Merkle.inclusionPath(index, size, read).map(hex)
          const proof = { leafIndex: index, treeSize: size, path }
          const computed = yield* Effect.promise(() => WebVerify.rootFromInclusion(proof, hex(leaves[index]!)))
          assert.strictEqual(computed, root, `(${index}, ${size})`)
          // The proof of another leaf, or for another size, leads elsewhere
          if (size > 1) {
            const other = { ...proof, leafIndex: (index + 1) % size }
            const wrong = yield* Effect.promise(() => WebVerify.rootFromInclusion(other, hex(leaves[index]!)))
            assert.notStrictEqual(wrong, root, `swapped index (${index}, ${size})`)
          }
        }
      }
      for (const bad of [
        { leafIndex: 3, treeSize: 3, path: [] },
        { leafIndex: -1, treeSize: 3, path: [] },
        { leafIndex: 0, treeSize: 1, path: ["00".repeat(32)] },
        { leafIndex: 0, treeSize: 2, path: ["zz".repeat(32)] },
        { leafIndex: 0, treeSize: 2, path: "nope" as unknown as ReadonlyArray<string> }
      ]) {
        assert.isUndefined(yield* Effect.promise(() => WebVerify.rootFromInclusion(bad, hex(leaves[0]!))))
      }
    })
  )

  it.effect("verifies every entry of a real ledger exactly when the Node verifier does", () =>
    withLedger(
      Effect.gen(function* () {
        const ledger = yield* Ledger
        const { entries, proofs, checkpoint, publicKey } = yield* ledgerEvidence
        const key = yield* Effect.promise(() => WebVerify.importPublicKey(publicKey))
        assert.isDefined(key)
        assert.strictEqual(key!.keyId, ledger.keyId)
        for (const [i, entry] of entries.entries()) {
          assert.strictEqual(yield* Effect.promise(() => WebVerify.entryHash(entry)), entryHashOf(entry))
          assert.strictEqual(
            yield* Effect.promise(() => WebVerify.leafHash(entry.entryHash)),
            entryLeafHash(entry.entryHash)
          )
          const report = yield* check(entry, proofs[i]!, checkpoint, key!)
          assert.isTrue(report.ok, JSON.stringify(report))
          assert.strictEqual(report.payloadHash === undefined, !("payload" in entry))
          const verified = { entry, leafHash: entryLeafHash(entry.entryHash), checkpoint, proof: proofs[i]! }
          assert.isTrue(verifyEntryProof(verified as never, publicKey))
        }
      })
    )
  )

  it.effect("fails the check that a tampering breaks", () =>
    withLedger(
      Effect.gen(function* () {
        const { entries, proofs, checkpoint, publicKey } = yield* ledgerEvidence
        const key = (yield* Effect.promise(() => WebVerify.importPublicKey(publicKey)))!
        const entry: LedgerEntry = entries[0]!
        const proof = proofs[0]!
        const failed = (report: WebVerify.EntryReport) =>
          Object.entries(report)
            .filter(([name, c]) => name !== "ok" && c !== undefined && !(c as WebVerify.Check).ok)
            .map(([name]) => name)

        // A changed payload: its hash no longer matches, and neither does the entry's
        const payload = { ...(entry.payload as object), amount: 1 }
        let report = yield* check({ ...entry, payload }, proof, checkpoint, key)
        assert.isFalse(report.ok)
        assert.deepStrictEqual(failed(report), ["payloadHash", "entryHash", "inclusion"])

        // A consistent rewrite (payload, payloadHash and entryHash recomputed): the tree never saw that entry
        const rewritten = { ...entry, payload, payloadHash: Canonical.hash(payload) }
        const forged = { ...rewritten, entryHash: entryHashOf(rewritten as never) }
        report = yield* check(forged, proof, checkpoint, key)
        assert.deepStrictEqual(failed(report), ["inclusion"])

        // Another field changed under an unchanged entryHash
        report = yield* check({ ...entry, at: entry.at + 1 }, proof, checkpoint, key)
        assert.deepStrictEqual(failed(report), ["entryHash", "inclusion"])

        // One byte of the proof, the proof of another leaf
        if (proof.path.length > 0) {
          const path = [
            `${proof.path[0]!.slice(0, -1)}${proof.path[0]!.endsWith("0") ? "1" : "0"}`,
            ...proof.path.slice(1)
          ]
          report = yield* check(entry, { ...proof, path }, checkpoint, key)
          assert.deepStrictEqual(failed(report), ["inclusion"])
        }
        report = yield* check(entry, proofs[1]!, checkpoint, key)
        assert.deepStrictEqual(failed(report), ["inclusion"])

        // The checkpoint: another root, a flipped signature byte, a non-canonical signature, another key
        report = yield* check(entry, proof, { ...checkpoint, root: "0".repeat(64) }, key)
        assert.deepStrictEqual(failed(report), ["inclusion", "signature"])
        const signature = Buffer.from(checkpoint.signature, "base64")
        signature[0] = signature[0]! ^ 1
        report = yield* check(entry, proof, { ...checkpoint, signature: signature.toString("base64") }, key)
        assert.deepStrictEqual(failed(report), ["signature"])
        report = yield* check(entry, proof, { ...checkpoint, signature: ` ${checkpoint.signature}` }, key)
        assert.deepStrictEqual(failed(report), ["signature"])
        const other = NodeCrypto.generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "pem" })
        const otherKey = (yield* Effect.promise(() => WebVerify.importPublicKey(other.toString())))!
        report = yield* check(entry, proof, checkpoint, otherKey)
        assert.deepStrictEqual(failed(report), ["signature"])
        assert.match(report.signature.detail, /signed by key/)

        // Not a key at all
        assert.isUndefined(yield* Effect.promise(() => WebVerify.importPublicKey("-----BEGIN PUBLIC KEY-----\nAAAA\n")))
        const rsa = NodeCrypto.generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey
        assert.isUndefined(
          yield* Effect.promise(() => WebVerify.importPublicKey(rsa.export({ type: "spki", format: "pem" }).toString()))
        )
      })
    )
  )
})
