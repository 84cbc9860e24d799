/**
 * A task's ledger evidence, for a verifier that trusts nothing it cannot recompute: the task's entries as stored,
 * an inclusion proof of each in one signed checkpoint that covers them all, the latest anchored checkpoint with
 * its receipt and proofs of the entries it covers, and the ledger's public key. Nothing here is judged: a
 * tampered entry comes back as stored, for the verifier to catch (`WebVerify.verifyEntry` in a browser,
 * `verifyEntryProof` in Node); `Ledger.verify` is the server's own judgement.
 *
 * `taskEvidence` and `taskEntries` answer for a principal: a task it may not read (`Access`) is `TaskNotFound`,
 * as a missing one; auditors and admins read the evidence of every task the ledger holds.
 *
 * @since 0.1.0
 */
import { Effect, Option, Schema } from "effect"
import * as Access from "./Access.ts"
import { AnchorReceipt } from "./Anchor.ts"
import { TaskId } from "./Ids.ts"
import { decode } from "./InvalidInput.ts"
import { Ledger } from "./Ledger.ts"
import { Checkpoint, LedgerEntry } from "./LedgerEntry.ts"
import * as Merkle from "./Merkle.ts"
import type { Principal } from "./Principal.ts"
import { readRecord } from "./TaskAccess.ts"
import { TaskNotFound } from "./TaskStore.ts"

/**
 * @category models
 * @since 0.1.0
 */
export const TaskEvidence = Schema.Struct({
  taskId: Schema.String,
  /** The task's entries by seq, as stored. */
  entries: Schema.Array(LedgerEntry),
  /** A signed checkpoint covering every entry (the latest, or a new one when the latest does not). */
  checkpoint: Checkpoint,
  /** `proofs[i]` proves `entries[i]` in `checkpoint`. */
  proofs: Schema.Array(Merkle.InclusionProof),
  /**
   * The latest anchored checkpoint (its receipt not dropped) and, for each entry it covers, a proof in it;
   * `null` for entries appended after it (they wait for the next anchoring).
   */
  anchored: Schema.optionalKey(
    Schema.Struct({
      checkpoint: Checkpoint,
      anchor: AnchorReceipt,
      proofs: Schema.Array(Schema.NullOr(Merkle.InclusionProof))
    })
  ),
  /** The checkpoint-signing public key (SPKI PEM) and its id; a verifier should pin the id it expects. */
  publicKey: Schema.String,
  keyId: Schema.String
})
export type TaskEvidence = typeof TaskEvidence.Type

const decodeTaskId = decode(TaskId, "$.taskId")

/**
 * A task's ledger entries by seq, as stored, if `principal` may read the task (`Access`); `TaskNotFound` when it
 * may not, or when the ledger has no entry of the task.
 *
 * @category constructors
 * @since 0.1.0
 */
export const taskEntries = Effect.fn("TaskEvidence.taskEntries")(function* (taskIdInput: string, principal: Principal) {
  const taskId = yield* decodeTaskId(taskIdInput)
  // Auditors read every task the ledger holds; anyone else only a stored task they may read
  if (Access.scopeOf(principal)._tag !== "All") yield* readRecord(taskId, principal)
  const entries = yield* (yield* Ledger).byTask(taskId)
  // Every task starts with task.created: no entry means no such task
  if (entries.length === 0) return yield* new TaskNotFound({ taskId })
  return entries
})

/**
 * The evidence of a task's entries, if `principal` may read the task (`Access`); `TaskNotFound` when it may not, or
 * when the ledger has no entry of the task.
 *
 * @category constructors
 * @since 0.1.0
 */
export const taskEvidence = Effect.fn("TaskEvidence.taskEvidence")(function* (taskId: string, principal: Principal) {
  const ledger = yield* Ledger
  const entries = yield* taskEntries(taskId, principal)
  const last = entries[entries.length - 1]!
  const latest = Option.getOrUndefined(yield* ledger.latestCheckpoint)
  const checkpoint =
    latest !== undefined && latest.checkpoint.size > last.seq ? latest.checkpoint : yield* ledger.checkpoint
  const proofsIn = (size: number) =>
    Effect.forEach(entries, (entry) =>
      entry.seq < size ? ledger.inclusionProof(entry.seq, size) : Effect.succeed(null)
    )
  const proofs = yield* proofsIn(checkpoint.size)
  const anchoredRecord = (yield* ledger.checkpoints).findLast(
    (r) => r.anchor !== undefined && r.anchor.status !== "dropped"
  )
  return {
    taskId,
    entries,
    checkpoint,
    proofs: proofs.filter((p) => p !== null),
    ...(anchoredRecord === undefined
      ? {}
      : {
          anchored: {
            checkpoint: anchoredRecord.checkpoint,
            anchor: anchoredRecord.anchor!,
            proofs: yield* proofsIn(anchoredRecord.checkpoint.size)
          }
        }),
    publicKey: ledger.publicKey,
    keyId: ledger.keyId
  } satisfies TaskEvidence
})
