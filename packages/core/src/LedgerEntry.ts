/**
 * Ledger entries and checkpoints: the audit log's records, and the pure functions that hash and sign them.
 *
 * An entry commits to its payload by hash (the payload itself is optional), to its predecessor by
 * `prevHash`, and is a leaf of the ledger's Merkle tree at index `seq`. A checkpoint is a signed tree head.
 * The exact bytes (see `Ledger` for the whole picture):
 *
 * - `payloadHash = SHA-256(canonical JSON of the payload)` (RFC 8785, `Canonical.hash`);
 * - an entry of a task carries `taskPrevHash`, the hash of the task's previous entry (`genesisHash` for its
 *   first; entry format 2: entries appended before it lack the field), covered by `entryHash` like every field;
 * - `entryHash = SHA-256(prevHash ‖ canonical JSON of the entry without its entryHash field)`, where
 *   `prevHash` is the 32 raw bytes of the previous entry's hash (`genesisHash` for entry 0) and the JSON is
 *   UTF-8; the JSON includes `prevHash` (hex) again and, when it is stored, the payload (`entryHashOf`);
 * - the entry's Merkle leaf data is the 32 raw bytes of `entryHash`, so its leaf hash is
 *   `SHA-256(0x00 ‖ entryHash)` (`entryLeafHash`);
 * - a checkpoint's signature is Ed25519 over the UTF-8 canonical JSON of `{ keyId, root, size, timestamp }`
 *   (`checkpointMessage`), and `keyId` is the SHA-256 (hex) of the raw 32-byte Ed25519 public key.
 *
 * @since 0.1.0
 */
import * as NodeCrypto from "node:crypto"
import { Schema } from "effect"
import * as Canonical from "./Canonical.ts"
import { EntryHash, Sha256Hex, StepId, TaskId } from "./Ids.ts"
import { hashEntryBody, hashEntryText } from "./internal/entryHash.ts"
import * as Merkle from "./Merkle.ts"
import { Principal } from "./Principal.ts"

/**
 * The entry kinds Mandate itself writes.
 *
 * @category models
 * @since 0.1.0
 */
export const knownKinds = [
  "task.created",
  "plan.proposed",
  "plan.created",
  "policy.decided",
  "step.started",
  "step.succeeded",
  "step.failed",
  "approval.granted",
  "approval.rejected",
  "task.completed",
  "task.failed",
  "task.cancelled",
  "task.rejected",
  "task.retried"
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
 * What to append. `payload` is any JSON value (NaN, Infinity, `undefined` and non-plain objects are refused with
 * their path); its hash is always recorded, the payload itself only when `storePayload` is not `false`.
 *
 * @category models
 * @since 0.1.0
 */
export const EntryInput = Schema.Struct({
  kind: EntryKind,
  taskId: Schema.optional(TaskId),
  stepId: Schema.optional(StepId),
  principal: Schema.optional(Principal),
  payload: Schema.Unknown,
  storePayload: Schema.optional(Schema.Boolean)
})
/**
 * The input as callers write it (plain strings for ids).
 *
 * @category models
 * @since 0.1.0
 */
export type EntryInput = typeof EntryInput.Encoded

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
  /**
   * Entry format 2 (every entry of a task appended since 0.2): the `entryHash` of the task's previous entry, or
   * `genesisHash` for its first. The per-task chain that shows a task's entries are all there and in order
   * (`WebBundle.verifyBundle`); entries written before it lack the field and still verify.
   */
  taskPrevHash: Schema.optionalKey(EntryHash),
  prevHash: EntryHash,
  /** SHA-256(prevHash bytes ‖ canonical JSON of the entry without entryHash): see `entryHashOf`. */
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
  /** Ed25519 signature (base64) over the canonical JSON of `{ keyId, root, size, timestamp }`. */
  signature: Schema.String,
  /** The SHA-256 (hex) of the signer's raw 32-byte Ed25519 public key. */
  keyId: Schema.String
})
export type Checkpoint = typeof Checkpoint.Type

/**
 * An entry before its hash is known: everything `entryHashOf` hashes.
 *
 * @category models
 * @since 0.1.0
 */
export type EntryBody = Omit<LedgerEntry, "entryHash">

const utf8 = new TextEncoder()

/**
 * Hashes a stored record exactly as `entryHashOf` does, whatever its fields hold (tampered data included).
 * Throws `Canonical.NotCanonicalJson` when a field has no JSON form or `prevHash` is not a SHA-256 hex digest.
 *
 * @category hashing
 * @since 0.1.0
 */
export const entryHashOfRecord = (record: Readonly<Record<string, unknown>>, payloadText?: string): EntryHash => {
  const { entryHash: _ignored, ...body } = record
  const prev =
    typeof body.prevHash === "string" && body.prevHash.length === 64 ? Canonical.fromHex(body.prevHash) : undefined
  if (prev === undefined) throw new Canonical.NotCanonicalJson("$.prevHash", "prevHash is not a SHA-256 hex digest")
  // `payloadText`: the canonical JSON of `record.payload`, already encoded by the caller, spliced in verbatim
  return Canonical.toHex(
    payloadText === undefined || !("payload" in body)
      ? hashEntryBody(prev, body)
      : hashEntryText(prev, Canonical.encodeWith(body, { payload: payloadText }))
  ) as EntryHash
}

/**
 * `entryHash = SHA-256(prevHash ‖ canonical JSON of the entry without entryHash)`, with `prevHash` as its 32
 * raw bytes and the JSON (which includes the hex `prevHash` and, if stored, the payload) as UTF-8. An
 * `entryHash` field on the argument is ignored.
 *
 * @category hashing
 * @since 0.1.0
 */
export const entryHashOf = (entry: EntryBody | LedgerEntry): EntryHash => entryHashOfRecord(entry)

/**
 * The entry's Merkle leaf hash, `SHA-256(0x00 ‖ entryHash)` (the leaf data is the 32 raw bytes of the entry
 * hash), in hex.
 *
 * @category hashing
 * @since 0.1.0
 */
export const entryLeafHash = (entryHash: string): Sha256Hex => {
  const bytes = Canonical.fromHex(entryHash)
  if (bytes === undefined || bytes.length !== 32) throw new RangeError(`Not a SHA-256 hex digest: ${entryHash}`)
  return Canonical.toHex(Merkle.leafHash(bytes))
}

/**
 * The bytes a checkpoint's signature covers: the UTF-8 canonical JSON of `{ keyId, root, size, timestamp }`.
 *
 * @category signing
 * @since 0.1.0
 */
export const checkpointMessage = (checkpoint: Omit<Checkpoint, "signature">): Uint8Array =>
  utf8.encode(
    Canonical.encode({
      keyId: checkpoint.keyId,
      root: checkpoint.root,
      size: checkpoint.size,
      timestamp: checkpoint.timestamp
    })
  )

/**
 * An Ed25519 public key: a `KeyObject`, or PEM (SPKI) text as `Ledger.publicKey` exposes it.
 *
 * @category signing
 * @since 0.1.0
 */
export type PublicKeyInput = string | NodeCrypto.KeyObject

const toPublicKey = (key: PublicKeyInput): NodeCrypto.KeyObject | undefined => {
  try {
    const object = typeof key === "string" ? NodeCrypto.createPublicKey(key) : key
    return object.asymmetricKeyType === "ed25519" ? object : undefined
  } catch {
    return undefined
  }
}

/**
 * The key id of an Ed25519 public key: SHA-256 (hex) of its raw 32 bytes. `undefined` for anything else.
 *
 * @category signing
 * @since 0.1.0
 */
export const publicKeyId = (key: PublicKeyInput): string | undefined => {
  const object = toPublicKey(key)
  if (object === undefined) return undefined
  const jwk = object.export({ format: "jwk" })
  return typeof jwk.x === "string" ? Canonical.sha256Hex(Buffer.from(jwk.x, "base64url")) : undefined
}

/**
 * Checks a checkpoint offline: signed by this Ed25519 public key over `checkpointMessage`, and naming the key
 * by its id. Says nothing about whether the root matches any ledger (`Ledger.verifyCheckpoint` does that).
 *
 * @category signing
 * @since 0.1.0
 */
export const verifyCheckpointSignature = (checkpoint: Checkpoint, publicKey: PublicKeyInput): boolean => {
  const key = toPublicKey(publicKey)
  if (key === undefined || typeof checkpoint?.signature !== "string") return false
  try {
    const signature = Buffer.from(checkpoint.signature, "base64")
    // Node's base64 decoder skips stray characters: only the canonical encoding of the bytes counts as signed
    if (signature.toString("base64") !== checkpoint.signature) return false
    return (
      publicKeyId(key) === checkpoint.keyId && NodeCrypto.verify(null, checkpointMessage(checkpoint), key, signature)
    )
  } catch {
    return false
  }
}
