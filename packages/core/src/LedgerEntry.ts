/**
 * Ledger entries and checkpoints: the audit log's records.
 *
 * An entry commits to its payload by hash (the payload itself is optional), to its predecessor by
 * `prevHash`, and is a leaf of the ledger's Merkle tree at index `seq`. A checkpoint is a signed tree head.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { EntryHash, Sha256Hex, StepId, TaskId } from "./Ids.ts"
import { Principal } from "./Principal.ts"

/**
 * The entry kinds Mandate itself writes.
 *
 * @category models
 * @since 0.1.0
 */
export const knownKinds = [
  "task.created",
  "plan.created",
  "policy.decided",
  "step.started",
  "step.succeeded",
  "step.failed",
  "approval.granted",
  "approval.rejected",
  "task.completed",
  "task.failed",
  "task.cancelled"
] as const

/**
 * An entry kind: a known kind or a host-defined dotted name such as `invoice.paid`.
 *
 * @category models
 * @since 0.1.0
 */
export const EntryKind = Schema.String.check(
  Schema.isPattern(/^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+$/, {
    message: "Expected an entry kind: dotted lowercase words such as task.created or invoice.paid"
  }),
  Schema.isMaxLength(64)
)
export type EntryKind = typeof EntryKind.Type

/**
 * The hash before the first entry.
 *
 * @category constants
 * @since 0.1.0
 */
export const genesisHash = EntryHash.make("0".repeat(64))

/**
 * @category models
 * @since 0.1.0
 */
export const LedgerEntry = Schema.Struct({
  /** 0-based position; also the entry's leaf index in the Merkle tree. */
  seq: Schema.Int,
  kind: EntryKind,
  taskId: Schema.optionalKey(TaskId),
  stepId: Schema.optionalKey(StepId),
  principal: Schema.optionalKey(Principal),
  /** Epoch milliseconds. */
  at: Schema.Number,
  /** SHA-256 of the canonical JSON of the payload. */
  payloadHash: Sha256Hex,
  payload: Schema.optionalKey(Schema.Json),
  prevHash: EntryHash,
  /** SHA-256(prevHash ‖ canonical entry without entryHash). */
  entryHash: EntryHash
})
export type LedgerEntry = typeof LedgerEntry.Type

/**
 * A signed tree head: the Merkle root over the first `size` entries, signed with Ed25519.
 *
 * @category models
 * @since 0.1.0
 */
export const Checkpoint = Schema.Struct({
  size: Schema.Int,
  root: Sha256Hex,
  timestamp: Schema.Number,
  /** Ed25519 signature (base64) over the checkpoint's canonical `{ size, root, timestamp }`. */
  signature: Schema.String,
  /** Identifies the signing key (e.g. a hash of the public key). */
  keyId: Schema.String
})
export type Checkpoint = typeof Checkpoint.Type
