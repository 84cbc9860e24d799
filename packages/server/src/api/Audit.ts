/**
 * Audit and chain: a task's ledger entries, host-defined entries, verification of an entry (inclusion proof,
 * signed checkpoint, anchor), checkpoints and consistency proofs, and the chain itself (write a hash, read a
 * transaction).
 *
 * @since 0.1.0
 */
import { EntryKind, ProofBundle, Sha256Hex, StepId, TamperCheck, TaskId } from "@mandate/core"
import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { Auth, RequiredRoles } from "./Auth.ts"
import { BadRequest, Conflict, NotFound, Unavailable, Unprocessable } from "./Errors.ts"
import { AnchorReceiptWire, CheckpointWire, InclusionProofWire, LedgerEntryWire } from "./Models.ts"

/**
 * `POST /audit/record`: a host entry (`note.*` or `external.*`, see core's `HostEntry`), recorded with the caller
 * as its principal, on a task the caller may read if it names one.
 *
 * @category models
 * @since 0.1.0
 */
export const RecordEntry = Schema.Struct({
  kind: EntryKind,
  task_id: Schema.optionalKey(TaskId),
  step_id: Schema.optionalKey(StepId),
  payload: Schema.Json,
  /** Default true; false records only the payload's hash. */
  store_payload: Schema.optionalKey(Schema.Boolean)
})

/**
 * Where an appended entry landed.
 *
 * @category models
 * @since 0.1.0
 */
export const AppendReceiptWire = Schema.Struct({
  seq: Schema.Int,
  entry_hash: Schema.String,
  prev_hash: Schema.String,
  leaf_index: Schema.Int
})

/**
 * An entry with everything to check it offline: leaf hash, inclusion proof against a signed checkpoint, the
 * checkpoint's anchor receipt if it was anchored (`anchor_tx_id`), otherwise a proof against the latest anchored
 * checkpoint that covers the entry (`anchored`), and the public key that signed each checkpoint.
 *
 * @category models
 * @since 0.1.0
 */
export const VerificationWire = Schema.Struct({
  verified: Schema.Boolean,
  entry: LedgerEntryWire,
  leaf_hash: Schema.String,
  checkpoint: CheckpointWire,
  inclusion_proof: InclusionProofWire,
  anchor_tx_id: Schema.optionalKey(Schema.String),
  anchor: Schema.optionalKey(AnchorReceiptWire),
  anchored: Schema.optionalKey(
    Schema.Struct({
      checkpoint: CheckpointWire,
      inclusion_proof: InclusionProofWire,
      anchor: AnchorReceiptWire,
      /** The public key that signed this checkpoint (an earlier key, after a rotation). */
      public_key: Schema.String
    })
  ),
  /** The public key that signed `checkpoint` (SPKI PEM). */
  public_key: Schema.String
})

/**
 * A task's ledger evidence, unjudged (`@mandate/core`'s `TaskEvidence`): its entries as stored, a proof of each in
 * one signed checkpoint, the latest anchored checkpoint with its receipt and proofs of the entries it covers
 * (`null` for later entries), and the signing key. A verifier recomputes everything (the console does, in the
 * browser); the entries hash under the camelCase names of their fields (see `LedgerEntryWire`).
 *
 * @category models
 * @since 0.1.0
 */
export const TaskEvidenceWire = Schema.Struct({
  task_id: Schema.String,
  entries: Schema.Array(LedgerEntryWire),
  checkpoint: CheckpointWire,
  proofs: Schema.Array(InclusionProofWire),
  anchored: Schema.optionalKey(
    Schema.Struct({
      checkpoint: CheckpointWire,
      anchor: AnchorReceiptWire,
      proofs: Schema.Array(Schema.NullOr(InclusionProofWire))
    })
  ),
  public_key: Schema.String,
  key_id: Schema.String
})

/**
 * `GET /ledger`: the ledger's size, its latest checkpoints with their anchor receipts (newest first), and the key.
 *
 * @category models
 * @since 0.1.0
 */
export const LedgerOverviewWire = Schema.Struct({
  size: Schema.Int,
  checkpoints: Schema.Array(
    Schema.Struct({ checkpoint: CheckpointWire, anchor: Schema.optionalKey(AnchorReceiptWire) })
  ),
  checkpoint_count: Schema.Int,
  anchored_count: Schema.Int,
  public_key: Schema.String,
  key_id: Schema.String
})

/**
 * A signed checkpoint and the key that signed it.
 *
 * @category models
 * @since 0.1.0
 */
export const SignedCheckpointWire = Schema.Struct({ ...CheckpointWire.fields, public_key: Schema.String })

/**
 * `POST /write`: publish a SHA-256 digest on the chain.
 *
 * @category models
 * @since 0.1.0
 */
export const WriteHash = Schema.Struct({
  hash: Sha256Hex,
  /** The size of the tree the hash is the root of, if it is one (default 0). */
  size: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)))
})

/**
 * `GET /ledger/verify`: the entries, Merkle nodes, checkpoints and anchor receipts of a range re-checked on the
 * server, and the first stored data that no longer matches (`mismatch`, with its sequence number).
 *
 * @category models
 * @since 0.1.0
 */
export const LedgerVerificationWire = Schema.Struct({
  from: Schema.Int,
  to: Schema.Int,
  /** The ledger's size when the check ran. */
  size: Schema.Int,
  entries: Schema.Int,
  checkpoints: Schema.Int,
  anchors: Schema.Int,
  anchors_unchecked: Schema.Int,
  valid: Schema.Boolean,
  mismatch: Schema.optionalKey(
    Schema.Struct({
      seq: Schema.Int,
      check: TamperCheck,
      expected: Schema.String,
      found: Schema.String,
      detail: Schema.String
    })
  )
})

const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const auditors = ["auditor"] as const
// A task's own entries and evidence: whoever may read the task (core's `Access` decides which tasks)
const taskReaders = ["submitter", "approver", "auditor"] as const

/**
 * @category groups
 * @since 0.1.0
 */
export class AuditApi extends HttpApiGroup.make("audit")
  .add(
    HttpApiEndpoint.get("byTask", "/audit/:task_id", {
      params: { task_id: TaskId },
      success: Schema.Struct({ task_id: Schema.String, entries: Schema.Array(LedgerEntryWire) }),
      error: [NotFound, BadRequest, Unavailable]
    })
      .annotate(RequiredRoles, taskReaders)
      .annotate(
        OpenApi.Description,
        "A task's ledger entries with their hashes, by sequence number (a task the caller may not read is 404)"
      ),
    HttpApiEndpoint.get("evidence", "/audit/:task_id/evidence", {
      params: { task_id: TaskId },
      success: TaskEvidenceWire,
      error: [NotFound, BadRequest, Conflict, Unavailable]
    })
      .annotate(RequiredRoles, taskReaders)
      .annotate(
        OpenApi.Description,
        "A task's entries with inclusion proofs in a signed checkpoint and in the latest anchored one, unjudged, for verification by the caller"
      ),
    HttpApiEndpoint.get("bundle", "/audit/:task_id/bundle", {
      params: { task_id: TaskId },
      success: ProofBundle,
      error: [NotFound, BadRequest, Conflict, Unavailable]
    })
      .annotate(RequiredRoles, taskReaders)
      .annotate(
        OpenApi.Description,
        "A task's proof bundle (core's ProofBundle): its entries as stored, with inclusion proofs in one signed checkpoint, the consistency proof to the anchored checkpoint, the anchor receipt and transaction input, and the per-task links that show the trail is complete; verify it offline with a pinned key (`mandate audit verify`)"
      ),
    HttpApiEndpoint.post("record", "/audit/record", {
      payload: RecordEntry,
      success: AppendReceiptWire,
      error: [BadRequest, NotFound, Unprocessable, Unavailable]
    })
      .annotate(RequiredRoles, ["submitter", "approver", "auditor", "agent"])
      .annotate(
        OpenApi.Description,
        "Appends a host entry (kind note.* or external.*; any other kind is reserved: 422) with the caller as its principal, on a task the caller may read (else 404)"
      ),
    HttpApiEndpoint.get("verify", "/verify/:hash", {
      params: { hash: Sha256Hex },
      success: VerificationWire,
      error: [NotFound, Conflict, Unavailable]
    })
      .annotate(RequiredRoles, auditors)
      .annotate(OpenApi.Description, "Verifies an entry: inclusion proof, signed checkpoint and anchor transaction"),
    HttpApiEndpoint.get("overview", "/ledger", {
      query: { limit: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1000 }))) },
      success: LedgerOverviewWire,
      error: [BadRequest, Unavailable]
    })
      .annotate(RequiredRoles, auditors)
      .annotate(OpenApi.Description, "The ledger's size, its latest checkpoints (newest first) with anchor receipts"),
    HttpApiEndpoint.get("keys", "/ledger/keys", {
      success: Schema.Struct({
        keys: Schema.Array(
          Schema.Struct({
            key_id: Schema.String,
            /** SPKI PEM. */
            public_key: Schema.String,
            /** Whether this key signs new checkpoints (the others are earlier keys, still trusted). */
            signing: Schema.Boolean
          })
        )
      }),
      error: [Unavailable]
    })
      .annotate(RequiredRoles, taskReaders)
      .annotate(
        OpenApi.Description,
        "Every public key checkpoints may be signed with (the signing key and earlier ones), by key id: for verifiers to pin"
      ),
    HttpApiEndpoint.get("entries", "/ledger/entries", {
      query: {
        from: Schema.optional(NonNegativeInt),
        limit: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1000 })))
      },
      success: Schema.Struct({ entries: Schema.Array(LedgerEntryWire) }),
      error: [BadRequest, Unavailable]
    })
      .annotate(RequiredRoles, auditors)
      .annotate(OpenApi.Description, "Ledger entries by sequence number, from `from` (default 0), at most `limit`"),
    HttpApiEndpoint.get("verifyAll", "/ledger/verify", {
      query: { from: Schema.optional(NonNegativeInt), to: Schema.optional(NonNegativeInt) },
      success: LedgerVerificationWire,
      error: [BadRequest, Unavailable]
    })
      .annotate(RequiredRoles, auditors)
      .annotate(
        OpenApi.Description,
        "Re-checks every entry, Merkle node, checkpoint and anchor receipt of the range (default: the whole ledger) " +
          "and reports the first mismatch; large ledgers can be checked in ranges"
      ),
    HttpApiEndpoint.get("checkpoint", "/ledger/checkpoint", {
      success: SignedCheckpointWire,
      error: [Conflict, Unavailable]
    })
      .annotate(RequiredRoles, auditors)
      .annotate(
        OpenApi.Description,
        "Signs (or returns) the checkpoint of the current tree, its root recomputed from the entries since the last " +
          "checkpoint (409 ledger_tampered when the stored data disagrees: nothing is signed)"
      ),
    HttpApiEndpoint.get("consistency", "/ledger/consistency", {
      query: { from: NonNegativeInt, to: Schema.optional(NonNegativeInt) },
      success: Schema.Struct({ old_size: Schema.Int, new_size: Schema.Int, path: Schema.Array(Schema.String) }),
      error: [BadRequest, Unavailable]
    })
      .annotate(RequiredRoles, auditors)
      .annotate(OpenApi.Description, "Proof that the tree of `from` entries is a prefix of the tree of `to` entries"),
    HttpApiEndpoint.post("anchor", "/ledger/anchor", {
      success: Schema.Struct({ checkpoint: CheckpointWire, anchor: Schema.optionalKey(AnchorReceiptWire) }),
      error: [Conflict, Unavailable]
    })
      .annotate(RequiredRoles, auditors)
      .annotate(OpenApi.Description, "Checkpoints the ledger and publishes its root on the chain"),
    HttpApiEndpoint.post("write", "/write", { payload: WriteHash, success: AnchorReceiptWire, error: Unavailable })
      .annotate(RequiredRoles, ["admin"])
      .annotate(OpenApi.Description, "Publishes a hash on the chain (Qubic)"),
    HttpApiEndpoint.get("tx", "/tx/:txid", {
      params: { txid: Schema.String.check(Schema.isBetweenLength(1, 128)) },
      success: AnchorReceiptWire,
      error: [NotFound, Unavailable]
    })
      .annotate(RequiredRoles, auditors)
      .annotate(OpenApi.Description, "An anchor transaction by id, with its status")
  )
  .middleware(Auth) {}
