/**
 * A task's proof bundle: one self-contained JSON document that lets a third party check the task's whole trail
 * offline, with only the ledger's public key pinned (`WebBundle.verifyBundle`, Web Crypto only; `mandate audit
 * verify`). It holds:
 *
 * - the task's entries as stored (the fields their hashes cover: camelCase, as `LedgerEntry`);
 * - `proofs[i]`, the inclusion proof of `entries[i]` in `checkpoint`, one signed checkpoint covering them all, and
 *   its signer's key id and public key (which a verifier uses only if it is the key it pinned);
 * - `anchor`, when a checkpoint was anchored: the latest anchored checkpoint no larger than `checkpoint`, the
 *   consistency proof from it to `checkpoint`, its anchor receipt, and `input`, the bytes the chain transaction
 *   carries (hex: root ‖ tree size as u64 little-endian), to compare with what a chain explorer or node shows;
 * - completeness evidence in the entries themselves: each links to the task's previous entry (`taskPrevHash`).
 *
 * Nothing is judged on export: a tampered entry comes back as stored, for the verifier to catch. Visibility is
 * `TaskEvidence.taskEntries`'s: a task the principal may not read is `TaskNotFound`.
 *
 * @since 0.2.0
 */
import { Effect, Schema } from "effect"
import { AnchorReceipt } from "./Anchor.ts"
import { Ledger } from "./Ledger.ts"
import { Checkpoint, type LedgerEntry } from "./LedgerEntry.ts"
import * as Merkle from "./Merkle.ts"
import type { Principal } from "./Principal.ts"
import { taskEntries } from "./TaskEvidence.ts"
import { anchorInput, bundleFormat } from "./WebBundle.ts"

/**
 * The bundle document. `entries` are typed loosely on the wire: they travel exactly as stored, tampered or not.
 *
 * @category models
 * @since 0.2.0
 */
export const ProofBundle = Schema.Struct({
  format: Schema.Literal(bundleFormat),
  taskId: Schema.String,
  exportedAt: Schema.Number,
  entries: Schema.Array(Schema.Record(Schema.String, Schema.Unknown)),
  checkpoint: Checkpoint,
  proofs: Schema.Array(Merkle.InclusionProof),
  keyId: Schema.String,
  /** The signer's public key (SPKI PEM), for a verifier that pinned its key id. */
  publicKey: Schema.String,
  anchor: Schema.optionalKey(
    Schema.Struct({
      checkpoint: Checkpoint,
      consistency: Merkle.ConsistencyProof,
      receipt: AnchorReceipt,
      /** The anchor transaction's input (hex): the anchored root ‖ its tree size as u64 little-endian. */
      input: Schema.String
    })
  )
})
export type ProofBundle = typeof ProofBundle.Type

/**
 * The proof bundle of a task, if `principal` may read it (`TaskNotFound` otherwise, or when the ledger has no
 * entry of it).
 *
 * @category constructors
 * @since 0.2.0
 */
export const taskBundle = Effect.fn("ProofBundle.taskBundle")(function* (taskId: string, principal: Principal) {
  const ledger = yield* Ledger
  const entries: ReadonlyArray<LedgerEntry> = yield* taskEntries(taskId, principal)
  const last = entries[entries.length - 1]!
  const latest = yield* ledger.latestCheckpoint
  const checkpoint =
    latest._tag === "Some" && latest.value.checkpoint.size > last.seq
      ? latest.value.checkpoint
      : yield* ledger.checkpoint
  const proofs = yield* Effect.forEach(entries, (entry) => ledger.inclusionProof(entry.seq, checkpoint.size))
  // The latest anchoring this checkpoint extends (a checkpoint anchored since is left for the next export)
  const anchored = (yield* ledger.checkpoints).findLast(
    (r) =>
      r.anchor !== undefined &&
      r.anchor.status !== "dropped" &&
      r.checkpoint.size > 0 &&
      r.checkpoint.size <= checkpoint.size
  )
  const exportedAt = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
  return {
    format: bundleFormat,
    taskId,
    exportedAt,
    entries: entries as unknown as ReadonlyArray<Record<string, unknown>>,
    checkpoint,
    proofs,
    keyId: checkpoint.keyId,
    publicKey: ledger.publicKeys.get(checkpoint.keyId) ?? ledger.publicKey,
    ...(anchored?.anchor === undefined
      ? {}
      : {
          anchor: {
            checkpoint: anchored.checkpoint,
            consistency:
              anchored.checkpoint.size === checkpoint.size
                ? { oldSize: checkpoint.size, newSize: checkpoint.size, path: [] }
                : yield* ledger.consistencyProof(anchored.checkpoint.size, checkpoint.size),
            receipt: anchored.anchor,
            input: anchorInput(anchored.checkpoint.root, anchored.checkpoint.size) ?? ""
          }
        })
  } satisfies ProofBundle
})
