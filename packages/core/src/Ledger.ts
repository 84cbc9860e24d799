/**
 * The ledger: an append-only, tamper-evident audit log. Every decision and result of a task is an entry; the
 * entries form a hash chain and the leaves of an RFC 9162 Merkle tree, whose signed heads (checkpoints) can be
 * anchored on a chain. Anyone holding an entry, its inclusion proof and a checkpoint can verify offline that
 * the entry is in the log (`verifyEntryProof`, `Merkle`), and `verifyAll` pinpoints the first stored entry, node,
 * head record, checkpoint or anchor receipt that no longer matches.
 *
 * **What is hashed** (a third party can recompute every value; `Canonical` is RFC 8785 JSON, SHA-256 throughout)
 *
 * 1. `payloadHash = SHA-256(UTF-8 canonical JSON of the payload)`.
 * 2. The entry body is the JSON object of the stored entry without `entryHash`:
 *    `{ seq, kind, taskId?, taskPrevHash?, stepId?, principal?, at, payloadHash, payload?, prevHash }` (`payload`
 *    only when the payload is stored; absent optional fields are absent, never `null`). `taskPrevHash` (entry
 *    format 2) is on every entry of a task: the `entryHash` of the task's previous entry, `genesisHash` for its
 *    first, read from the store under the append lock, so a task's entries form a chain of their own that shows
 *    one missing or out of order (entries of format 1, written before it, lack the field).
 *    `entryHash = SHA-256(prevHash as 32 raw bytes ‖ UTF-8 canonical JSON of the body)`, where `prevHash` is the
 *    previous entry's `entryHash`, and `genesisHash` (64 zeros) for entry 0.
 * 3. Merkle leaf `seq` has as data the 32 raw bytes of `entryHash`: `leaf = SHA-256(0x00 ‖ entryHash)`; interior
 *    nodes are `SHA-256(0x01 ‖ left ‖ right)`, and the tree over entries `[0, size)` is RFC 9162's `MTH`.
 * 4. A checkpoint `{ size, root, timestamp, keyId, signature }` signs, with Ed25519, the UTF-8 canonical JSON of
 *    `{ keyId, root, size, timestamp }`; `keyId` is the SHA-256 (hex) of the raw 32-byte public key, which
 *    `Ledger.publicKey` exposes as PEM (`publicKeys`: every trusted key by id, for checkpoints of earlier keys).
 *
 * **What a checkpoint signs** is the root recomputed from the entries since the last signed checkpoint, never
 * the root the stored Merkle nodes add up to: a node overwritten in the store makes `checkpoint` fail with
 * `LedgerTampered` instead of signing a tree no entry supports (see `internal/ledgerSeal.ts`). Keys come from
 * `LedgerKeys` (a key per process when none is given, logged as such, with a warning over a durable store).
 *
 * **Appends** are serialised by the store's append lock, so concurrent appenders (fibers or processes) never
 * fork the chain or the tree; `appendBatch` is atomic (one invalid entry and nothing is appended) and joins an
 * enclosing `UnitOfWork` on stores that share its transaction. `at` comes from `Clock`. Each append costs a few
 * SHA-256 calls and O(log n) node reads and writes (`Merkle.append`), never a pass over the tree.
 *
 * **Anchoring** publishes a checkpoint's root through the `Anchor` service: on demand (`anchor`) and, with the
 * `anchorEvery` option, from a background fiber every N entries and/or every T (`Clock`-driven). Receipts are
 * stored with their checkpoints. A failed publication never fails an append: it is logged and retried at the
 * next trigger.
 *
 * @since 0.1.0
 */
import * as NodeCrypto from "node:crypto"
import { Clock, Context, Duration, Effect, Layer, Option, Result, Schema, Semaphore } from "effect"
import * as EffectQueue from "effect/Queue"
import { Anchor, type AnchorError, AnchorReceipt } from "./Anchor.ts"
import * as Canonical from "./Canonical.ts"
import { EntryHash, Sha256Hex, StepId, TaskId } from "./Ids.ts"
import { decode, InvalidInput } from "./InvalidInput.ts"
import { hashEntryText } from "./internal/entryHash.ts"
import { attempt, isIndex } from "./internal/ledgerChecks.ts"
import { seal } from "./internal/ledgerSeal.ts"
import { verifyRange } from "./internal/ledgerVerify.ts"
import {
  Checkpoint,
  checkpointMessage,
  EntryKind,
  entryHashOfRecord,
  entryLeafHash,
  genesisHash,
  LedgerEntry,
  type PublicKeyInput,
  publicKeyId,
  verifyCheckpointSignature
} from "./LedgerEntry.ts"
import * as LedgerKeys from "./LedgerKeys.ts"
import { type CheckpointRecord, type LedgerHead, LedgerStore, LedgerStoreError } from "./LedgerStore.ts"
import * as Merkle from "./Merkle.ts"
import { Principal } from "./Principal.ts"

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
 * Where an appended entry landed.
 *
 * @category models
 * @since 0.1.0
 */
export const AppendReceipt = Schema.Struct({
  seq: Schema.Int,
  entryHash: EntryHash,
  prevHash: EntryHash,
  /** The entry's leaf index in the Merkle tree (equal to `seq`). */
  leafIndex: Schema.Int
})
export type AppendReceipt = typeof AppendReceipt.Type

/**
 * Which check found stored data that no longer matches: `missing` (no entry at this seq), `seq` (an entry out
 * of place), `payloadHash` (payload vs its hash), `prevHash` (chain link), `entryHash` (entry vs its hash),
 * `node` (a Merkle node vs its children, its leaf or the entries it covers), `head` (the head record vs the last
 * entry), `checkpoint` (a signed checkpoint vs the tree, or its signature), `anchor` (a checkpoint's anchor
 * receipt vs the chain).
 *
 * @category models
 * @since 0.1.0
 */
export const TamperCheck = Schema.Literals([
  "missing",
  "seq",
  "payloadHash",
  "prevHash",
  "entryHash",
  "node",
  "head",
  "checkpoint",
  "anchor"
])
export type TamperCheck = typeof TamperCheck.Type

/**
 * The first stored data that no longer matches: the entry's seq, what was expected and what was found.
 *
 * @category models
 * @since 0.1.0
 */
export const LedgerMismatch = Schema.Struct({
  seq: Schema.Int,
  check: TamperCheck,
  expected: Schema.String,
  found: Schema.String,
  detail: Schema.String
})
export type LedgerMismatch = typeof LedgerMismatch.Type

/**
 * The result of `verifyAll`: which entries, checkpoints and anchor receipts were checked, and the first mismatch
 * if any.
 *
 * @category models
 * @since 0.1.0
 */
export const LedgerVerification = Schema.Struct({
  from: Schema.Int,
  to: Schema.Int,
  /** Entries checked (`to - from` when valid). */
  entries: Schema.Int,
  /** Checkpoints checked against the tree. */
  checkpoints: Schema.Int,
  /** Anchor receipts of those checkpoints checked against the chain. */
  anchors: Schema.Int,
  /** Checkpoints whose anchoring could not be checked: the chain did not answer. */
  anchorsUnchecked: Schema.Int,
  valid: Schema.Boolean,
  mismatch: Schema.optionalKey(LedgerMismatch)
})
export type LedgerVerification = typeof LedgerVerification.Type

/**
 * An inclusion proof against an anchored checkpoint, with the anchor receipt.
 *
 * @category models
 * @since 0.1.0
 */
export const AnchoredProof = Schema.Struct({
  checkpoint: Checkpoint,
  proof: Merkle.InclusionProof,
  anchor: AnchorReceipt
})
export type AnchoredProof = typeof AnchoredProof.Type

/**
 * An entry with everything needed to check it offline: its leaf hash, its inclusion proof against the latest
 * checkpoint, that checkpoint's anchor receipt if it was anchored, and otherwise (`anchored`) a proof against
 * the latest anchored checkpoint that covers the entry, if any.
 *
 * @category models
 * @since 0.1.0
 */
export const VerifiedEntry = Schema.Struct({
  entry: LedgerEntry,
  leafHash: Sha256Hex,
  checkpoint: Checkpoint,
  proof: Merkle.InclusionProof,
  anchor: Schema.optionalKey(AnchorReceipt),
  anchored: Schema.optionalKey(AnchoredProof)
})
export type VerifiedEntry = typeof VerifiedEntry.Type

/**
 * No entry with this hash.
 *
 * @category errors
 * @since 0.1.0
 */
export class EntryNotFound extends Schema.TaggedError<EntryNotFound>()("EntryNotFound", {
  entryHash: Schema.String
}) {
  override get message(): string {
    return `No ledger entry with hash ${this.entryHash}`
  }
}

/**
 * A leaf index or tree size outside the ledger (`parameter` names the argument; `limit` is the bound it broke).
 *
 * @category errors
 * @since 0.1.0
 */
export class InvalidTreeRange extends Schema.TaggedError<InvalidTreeRange>()("InvalidTreeRange", {
  parameter: Schema.String,
  value: Schema.Number,
  limit: Schema.Number,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.parameter} ${this.value} is out of range: ${this.reason}`
  }
}

/**
 * A checkpoint that this ledger did not sign, or whose root is not this ledger's tree at its size.
 *
 * @category errors
 * @since 0.1.0
 */
export class CheckpointRejected extends Schema.TaggedError<CheckpointRejected>()("CheckpointRejected", {
  size: Schema.Number,
  reason: Schema.Literals(["key", "signature", "size", "root"]),
  detail: Schema.String
}) {
  override get message(): string {
    return `Checkpoint of size ${this.size} rejected (${this.reason}): ${this.detail}`
  }
}

/**
 * `verify` found that the stored entry, its Merkle nodes or the checkpoint no longer match their hashes.
 *
 * @category errors
 * @since 0.1.0
 */
export class LedgerTampered extends Schema.TaggedError<LedgerTampered>()("LedgerTampered", {
  seq: Schema.Int,
  check: TamperCheck,
  expected: Schema.String,
  found: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `Ledger entry ${this.seq} failed the ${this.check} check: ${this.detail}`
  }
}

/**
 * Ledger layer options.
 *
 * @category models
 * @since 0.1.0
 */
export interface LedgerOptions {
  /**
   * The signing key and trusted keys, loaded with `LedgerKeys` (e.g. `LedgerKeys.inDirectory`); takes
   * precedence over `signingKey` and `trustedKeys`.
   */
  readonly keys?: LedgerKeys.LedgerKeys | undefined
  /**
   * The Ed25519 private key that signs checkpoints: PKCS#8 PEM (plain or `Redacted`, e.g. from `Config`) or a
   * `KeyObject`. Without it (and without `keys`) a key is generated when the layer is built: that suits a memory
   * ledger only, since on a durable store a process started with another key cannot verify the checkpoints
   * signed before, so over a durable store (`LedgerStore.durable`) a warning says so.
   */
  readonly signingKey?: LedgerKeys.PrivateKeyInput | undefined
  /**
   * Public keys of earlier signing keys (key rotation): checkpoints they signed still verify. Checkpoints
   * signed by any other key count as tampering.
   */
  readonly trustedKeys?: ReadonlyArray<PublicKeyInput> | undefined
  /** Anchor automatically: after every `entries` new entries and/or every `interval` with new entries. */
  readonly anchorEvery?:
    | {
        readonly entries?: number | undefined
        readonly interval?: Duration.Input | undefined
      }
    | undefined
}

/**
 * A range of entries, `from` (inclusive) to `to` (exclusive); defaults to the whole ledger.
 *
 * @category models
 * @since 0.1.0
 */
export interface EntryRange {
  readonly from?: number | undefined
  readonly to?: number | undefined
}

/**
 * The audit ledger.
 *
 * @category services
 * @since 0.1.0
 */
export class Ledger extends Context.Service<
  Ledger,
  {
    /** The checkpoint-signing public key (SPKI PEM): give it to auditors. */
    readonly publicKey: string
    /** SHA-256 (hex) of the raw public key; every checkpoint names it. */
    readonly keyId: string
    /** Every public key (SPKI PEM) checkpoints may be signed with, by key id: the signing key's and earlier ones. */
    readonly publicKeys: ReadonlyMap<string, string>
    readonly append: (entry: EntryInput) => Effect.Effect<AppendReceipt, InvalidInput | LedgerStoreError>
    /** Appends all entries, consecutively, or none of them. */
    readonly appendBatch: (
      entries: ReadonlyArray<EntryInput>
    ) => Effect.Effect<ReadonlyArray<AppendReceipt>, InvalidInput | LedgerStoreError>
    /** The number of entries. */
    readonly size: Effect.Effect<number, LedgerStoreError>
    /** The Merkle root (hex) over the first `size` entries (default: all). */
    readonly root: (size?: number) => Effect.Effect<Sha256Hex, InvalidInput | InvalidTreeRange | LedgerStoreError>
    /** Inclusion proof of an entry (by leaf index or entry hash) in the tree of `treeSize` entries (default: all). */
    readonly inclusionProof: (
      entry: number | string,
      treeSize?: number
    ) => Effect.Effect<Merkle.InclusionProof, EntryNotFound | InvalidInput | InvalidTreeRange | LedgerStoreError>
    /**
     * Consistency proof between the trees of `oldSize` and `newSize` entries (default: all); `oldSize` must be at
     * least 1 (no proof exists from the empty tree).
     */
    readonly consistencyProof: (
      oldSize: number,
      newSize?: number
    ) => Effect.Effect<Merkle.ConsistencyProof, InvalidInput | InvalidTreeRange | LedgerStoreError>
    /**
     * Signs and stores a checkpoint of the current tree (the stored one, if this size was already signed). Its
     * root is recomputed from the entries since the last signed checkpoint; `LedgerTampered` when the stored
     * entries, nodes or head disagree with it (nothing is signed then).
     */
    readonly checkpoint: Effect.Effect<Checkpoint, LedgerTampered | LedgerStoreError>
    readonly latestCheckpoint: Effect.Effect<Option.Option<CheckpointRecord>, LedgerStoreError>
    /** Every checkpoint with its anchor receipt, by ascending size. */
    readonly checkpoints: Effect.Effect<ReadonlyArray<CheckpointRecord>, LedgerStoreError>
    /** Succeeds when this ledger signed the checkpoint and its root is this ledger's tree at its size. */
    readonly verifyCheckpoint: (
      checkpoint: Checkpoint
    ) => Effect.Effect<void, CheckpointRejected | InvalidInput | LedgerStoreError>
    /** Checkpoints the current tree and publishes its root through `Anchor` (once per checkpoint). */
    readonly anchor: Effect.Effect<CheckpointRecord, AnchorError | LedgerTampered | LedgerStoreError>
    readonly get: (entryHash: string) => Effect.Effect<LedgerEntry, EntryNotFound | LedgerStoreError>
    /** A task's entries, by seq. */
    readonly byTask: (taskId: string) => Effect.Effect<ReadonlyArray<LedgerEntry>, LedgerStoreError>
    /** Entries by seq, from `from` (default 0), at most `limit` (default 1000). */
    readonly entries: (options?: {
      readonly from?: number | undefined
      readonly limit?: number | undefined
    }) => Effect.Effect<ReadonlyArray<LedgerEntry>, InvalidInput | LedgerStoreError>
    /**
     * The entry with its inclusion proof against the latest checkpoint (taking a new one if the latest does not
     * cover the entry) and anchor receipts; fails with `LedgerTampered` if any of it no longer verifies.
     */
    readonly verify: (
      entryHash: string
    ) => Effect.Effect<VerifiedEntry, EntryNotFound | LedgerTampered | LedgerStoreError>
    /**
     * Re-hashes every stored entry and Merkle node in the range, checks the head record when the range reaches
     * it, and every checkpoint the range covers with its anchor receipt against the `Anchor`; reports the first
     * mismatch.
     */
    readonly verifyAll: (
      range?: EntryRange
    ) => Effect.Effect<LedgerVerification, InvalidInput | InvalidTreeRange | LedgerStoreError>
  }
>()("@mandate/core/Ledger") {
  /**
   * The ledger over any `LedgerStore`, anchoring through `Anchor`.
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layer = (
    options?: LedgerOptions
  ): Layer.Layer<Ledger, InvalidInput | LedgerStoreError, LedgerStore | Anchor> => Layer.effect(Ledger, make(options))

  /**
   * The ledger on `LedgerStore.layerMemory`: the embedded default. Provide an `Anchor` (`Anchor.layerNone` to
   * switch anchoring off).
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layerMemory = (
    options?: LedgerOptions
  ): Layer.Layer<Ledger, InvalidInput | LedgerStoreError, Anchor> =>
    Ledger.layer(options).pipe(Layer.provide(LedgerStore.layerMemory))
}

/**
 * Checks a `verify` result offline, with nothing but the ledger's public key (or its public keys, after a key
 * rotation: each checkpoint is checked with the one its `keyId` names): the entry's hash, its leaf hash, the
 * inclusion proof against the checkpoint's root, the checkpoint's signature, and the same for `anchored`.
 * (Whether the anchored root is really on the chain is for the chain's own API: look up `anchor.txId`.)
 *
 * @category verification
 * @since 0.1.0
 */
export const verifyEntryProof = (
  verified: VerifiedEntry,
  publicKey: PublicKeyInput | ReadonlyArray<PublicKeyInput>
): boolean => {
  try {
    const keys: ReadonlyArray<PublicKeyInput> = Array.isArray(publicKey) ? publicKey : [publicKey as PublicKeyInput]
    const signed = (checkpoint: Checkpoint) => {
      const key = keys.find((k) => publicKeyId(k) === checkpoint.keyId)
      return key !== undefined && verifyCheckpointSignature(checkpoint, key)
    }
    const { entry } = verified
    if (entryHashOfRecord(entry) !== entry.entryHash) return false
    if ("payload" in entry && Canonical.hash(entry.payload) !== entry.payloadHash) return false
    const leaf = entryLeafHash(entry.entryHash)
    if (leaf !== verified.leafHash) return false
    const proves = (checkpoint: Checkpoint, proof: Merkle.InclusionProof) =>
      proof.leafIndex === entry.seq &&
      proof.treeSize === checkpoint.size &&
      signed(checkpoint) &&
      Merkle.verifyInclusionProof(proof, leaf, checkpoint.root)
    if (!proves(verified.checkpoint, verified.proof)) return false
    if (verified.anchor !== undefined && verified.anchor.root !== verified.checkpoint.root) return false
    if (verified.anchored !== undefined) {
      const { anchor, checkpoint, proof } = verified.anchored
      if (!proves(checkpoint, proof) || anchor.root !== checkpoint.root) return false
    }
    return true
  } catch {
    return false
  }
}

// The keys a ledger signs and verifies with: those given, else a key for this process, never silently: a
// warning over a durable store (its checkpoints would not verify after a restart), a debug line over memory
const loadKeys = (
  options: LedgerOptions | undefined,
  durable: boolean
): Effect.Effect<LedgerKeys.LedgerKeys, InvalidInput> => {
  if (options?.keys !== undefined) return Effect.succeed(options.keys)
  if (options?.signingKey !== undefined) {
    return LedgerKeys.make({ signingKey: options.signingKey, trustedKeys: options.trustedKeys })
  }
  return Effect.gen(function* () {
    const ephemeral = yield* LedgerKeys.ephemeral
    const keys = yield* LedgerKeys.make({ signingKey: ephemeral.signingKey, trustedKeys: options?.trustedKeys })
    const log = durable ? Effect.logWarning : Effect.logDebug
    yield* log(
      `Ledger signing key ${keys.keyId} is ephemeral: generated for this process and kept nowhere` +
        (durable
          ? ", but the store is durable: checkpoints signed now cannot be verified after a restart. Give the " +
            "ledger a kept key (signingKey, or LedgerKeys.inDirectory)"
          : " (the memory store ends with the process too)")
    ).pipe(Effect.annotateLogs({ service: "Ledger" }))
    return keys
  })
}

interface Prepared {
  readonly kind: EntryKind
  readonly taskId?: TaskId | undefined
  readonly stepId?: StepId | undefined
  readonly principal?: Principal | undefined
  readonly payloadHash: Sha256Hex
  readonly payload?: Schema.Json | undefined
  /** The payload's canonical JSON, spliced into the entry body rather than encoded a second time. */
  readonly payloadText: string
  readonly principalText: string | undefined
}

const isEntryInput = Schema.is(EntryInput)
const decodeInput = decode(EntryInput)

// The stored payload and principal are copies parsed back from their canonical text: exactly what was hashed,
// and out of reach of a caller who mutates its own objects after appending.
const fromCanonical = <A>(text: string): A => JSON.parse(text) as A

/**
 * The fast path, synchronous: valid input (the same schema as `decodeInput`, checked without building a
 * decoded copy) whose payload has a canonical form. `undefined` sends the input to `explain`.
 */
const prepareValid = (input: unknown): Prepared | undefined => {
  // The payload's canonical form first: it refuses values nested too deep for the schema check to walk
  let text: string
  try {
    text = Canonical.encode(
      typeof input === "object" && input !== null ? (input as EntryInput).payload : undefined,
      Canonical.maxDepth
    )
  } catch {
    return undefined
  }
  if (!isEntryInput(input)) return undefined
  const principalText = input.principal === undefined ? undefined : Canonical.encode(input.principal)
  return {
    kind: input.kind,
    taskId: input.taskId,
    stepId: input.stepId,
    principal: principalText === undefined ? undefined : fromCanonical<Principal>(principalText),
    payloadHash: Canonical.sha256Hex(text),
    payload: input.storePayload === false ? undefined : fromCanonical<Schema.Json>(text),
    payloadText: text,
    principalText
  }
}

/** Why an input was refused: every schema issue (by JSON path under `root`), else the payload's. */
const explain = (input: unknown, root: string): Effect.Effect<never, InvalidInput> =>
  Effect.flatMap(
    // A payload nested too deep is named before the schema walks it
    typeof input === "object" && input !== null && "payload" in input
      ? Canonical.checkDepth(input.payload, `${root}.payload`)
      : Effect.void,
    () =>
      Effect.flatMap(decodeInput(input).pipe(Effect.mapError((e) => reroot(e, root))), (decoded) =>
        Effect.flatMap(Canonical.encodeEffect(decoded.payload, `${root}.payload`), () =>
          Effect.fail(InvalidInput.at(root, "Expected a ledger entry"))
        )
      )
  )

// Decoding and payload hashing happen before the append lock is taken: the lock only covers chaining.
const prepare = (input: unknown, root: string): Effect.Effect<Prepared, InvalidInput> =>
  Effect.suspend(() => {
    const prepared = prepareValid(input)
    return prepared === undefined ? explain(input, root) : Effect.succeed(prepared)
  })

const reroot = (error: InvalidInput, root: string): InvalidInput =>
  root === "$"
    ? error
    : new InvalidInput({
        message: error.message,
        path: root + error.path.slice(1),
        issues: error.issues.map((issue) => ({ path: root + issue.path.slice(1), message: issue.message }))
      })

const prepareAll = (inputs: ReadonlyArray<unknown>): Effect.Effect<ReadonlyArray<Prepared>, InvalidInput> =>
  Effect.gen(function* () {
    if (!Array.isArray(inputs)) return yield* InvalidInput.at("$", "Expected an array of entries")
    const prepared: Array<Prepared> = []
    const refused: Array<number> = []
    for (let i = 0; i < inputs.length; i++) {
      const p = prepareValid(inputs[i])
      if (p === undefined) refused.push(i)
      else prepared.push(p)
    }
    if (refused.length === 0) return prepared
    // Every bad entry is reported, not just the first
    const issues: Array<InvalidInput["issues"][number]> = []
    for (const i of refused) {
      const result = yield* Effect.result(explain(inputs[i], `$[${i}]`))
      if (Result.isFailure(result)) issues.push(...result.failure.issues)
    }
    return yield* new InvalidInput({ message: issues[0]!.message, path: issues[0]!.path, issues })
  })

const requireIndex = (parameter: string, value: unknown): Effect.Effect<number, InvalidInput> =>
  isIndex(value)
    ? Effect.succeed(value)
    : Effect.fail(InvalidInput.at(`$.${parameter}`, `Expected a non-negative integer, got ${String(value)}`))

const outOfRange = (parameter: string, value: number, limit: number, reason: string) =>
  new InvalidTreeRange({ parameter, value, limit, reason })

const hex = Canonical.toHex

const anchorTriggers = (every: LedgerOptions["anchorEvery"]) =>
  Effect.gen(function* () {
    const entries = every?.entries
    if (entries !== undefined && !(Number.isSafeInteger(entries) && entries >= 1)) {
      return yield* InvalidInput.at("$.anchorEvery.entries", `Expected a positive integer, got ${String(entries)}`)
    }
    let interval: Duration.Duration | undefined
    if (every?.interval !== undefined) {
      const decoded = Duration.fromInput(every.interval)
      if (Option.isNone(decoded) || !Duration.isPositive(decoded.value) || !Duration.isFinite(decoded.value)) {
        return yield* InvalidInput.at(
          "$.anchorEvery.interval",
          `Expected a positive duration, got ${String(every.interval)}`
        )
      }
      interval = decoded.value
    }
    return { anchorEntries: entries, anchorInterval: interval }
  })

const make = Effect.fnUntraced(function* (options?: LedgerOptions) {
  const store = yield* LedgerStore
  const anchorService = yield* Anchor
  const keys = yield* loadKeys(options, store.durable)
  // A checkpoint verifies when a trusted key with its key id signed it
  const signedByTrustedKey = (cp: Checkpoint): boolean => {
    const key = keys.trusted.get(cp.keyId)
    return key !== undefined && verifyCheckpointSignature(cp, key)
  }
  const anchorLock = yield* Semaphore.make(1)

  // The frontier of the tree the last append in this process left, keyed by (size, lastHash): the chain
  // commits to every earlier entry, so an equal head means an equal tree (also after a rolled-back unit).
  let cache: { size: number; lastHash: string; frontier: ReadonlyArray<Uint8Array> } = {
    size: 0,
    lastHash: genesisHash,
    frontier: []
  }

  const readNodes = (operation: string, ids: ReadonlyArray<Merkle.NodeId>) =>
    Effect.flatMap(store.nodes(ids), (hashes) => {
      const byId = new Map<string, Uint8Array>()
      for (let i = 0; i < ids.length; i++) {
        const hash = hashes[i]
        if (hash === undefined) {
          return Effect.fail(missingNode(operation, ids[i]!))
        }
        byId.set(`${ids[i]!.level}:${ids[i]!.index}`, hash)
      }
      const read: Merkle.NodeReader = (level, index) => byId.get(`${level}:${index}`)!
      return Effect.succeed(read)
    })

  const frontierOf = (head: LedgerHead) =>
    cache.size === head.size && cache.lastHash === head.lastHash
      ? Effect.succeed(cache.frontier)
      : Effect.map(readNodes("append", Merkle.subtreeNodes(0, head.size)), (read) =>
          Merkle.subtreeNodes(0, head.size).map((id) => read(id.level, id.index))
        )

  const rootAt = (size: number) =>
    Effect.map(readNodes("root", Merkle.subtreeNodes(0, size)), (read) => Merkle.rootAt(size, read))

  // ---- anchoring state -------------------------------------------------------------------------------------
  const { anchorEntries, anchorInterval } = yield* anchorTriggers(options?.anchorEvery)
  const wake = yield* EffectQueue.sliding<void>(1)
  let lastAnchored = 0
  const unknownKeys = new Map<string, number>()
  for (const record of yield* store.checkpoints) {
    if (record.anchor !== undefined && record.anchor.status !== "dropped") {
      lastAnchored = Math.max(lastAnchored, record.checkpoint.size)
    }
    const keyId = record.checkpoint.keyId
    if (!keys.trusted.has(keyId)) unknownKeys.set(keyId, (unknownKeys.get(keyId) ?? 0) + 1)
  }
  // Said once at start: otherwise the first sign is a tamper report on an intact entry
  if (unknownKeys.size > 0) {
    const list = [...unknownKeys].map(([keyId, n]) => `${keyId} (${n})`).join(", ")
    yield* Effect.logWarning(
      `Ledger: stored checkpoints are signed by keys this ledger does not trust: ${list}. They will be reported ` +
        "as tampering; if they are your earlier keys, add their public keys to the trusted keys"
    ).pipe(Effect.annotateLogs({ service: "Ledger" }))
  }

  const lastOfTask = (taskId: string): Effect.Effect<Option.Option<EntryHash>, LedgerStoreError> =>
    store.lastOfTask !== undefined
      ? store.lastOfTask(taskId)
      : Effect.map(store.findByTask(taskId), (all) => Option.fromNullishOr(all[all.length - 1]?.entryHash))

  const appendPrepared = (prepared: ReadonlyArray<Prepared>) =>
    store.withAppendLock(
      Effect.gen(function* () {
        const head = yield* store.head
        const frontier = yield* frontierOf(head)
        const at = yield* Clock.currentTimeMillis
        const entries: Array<LedgerEntry> = []
        const leaves: Array<Uint8Array> = []
        const receipts: Array<AppendReceipt> = []
        let prevHash: EntryHash = head.lastHash
        let prevBytes = Canonical.fromHex(prevHash)
        if (prevBytes === undefined || prevBytes.length !== 32) {
          return yield* new LedgerStoreError({
            operation: "append",
            cause: new Error(`the last stored entry's hash is not a SHA-256 digest: ${String(prevHash)}`)
          })
        }
        // Each task's previous entry, for the per-task chain (taskPrevHash), read under the append lock
        const taskLast = new Map<string, EntryHash>()
        for (const p of prepared) {
          if (p.taskId === undefined || taskLast.has(p.taskId)) continue
          taskLast.set(
            p.taskId,
            Option.getOrElse(yield* lastOfTask(p.taskId), () => genesisHash)
          )
        }
        for (let i = 0; i < prepared.length; i++) {
          const p = prepared[i]!
          const seq = head.size + i
          // The stored entry; its canonical JSON is built from the scalar members plus the canonical text the
          // principal and payload already have: exactly Canonical.encode(entry without entryHash)
          const entry: Record<string, unknown> = { seq, kind: p.kind }
          const spliced: Record<string, string> = {}
          if (p.taskId !== undefined) {
            entry.taskId = p.taskId
            entry.taskPrevHash = taskLast.get(p.taskId)
          }
          if (p.stepId !== undefined) entry.stepId = p.stepId
          if (p.principal !== undefined) {
            entry.principal = p.principal
            spliced.principal = p.principalText!
          }
          entry.at = at
          entry.payloadHash = p.payloadHash
          if (p.payload !== undefined) {
            entry.payload = p.payload
            spliced.payload = p.payloadText
          }
          entry.prevHash = prevHash
          const hashBytes = hashEntryText(prevBytes, Canonical.encodeWith(entry, spliced))
          const entryHash = hex(hashBytes) as EntryHash
          entry.entryHash = entryHash
          entries.push(entry as LedgerEntry)
          leaves.push(Merkle.leafHash(hashBytes))
          receipts.push({ seq, entryHash, prevHash, leafIndex: seq })
          if (p.taskId !== undefined) taskLast.set(p.taskId, entryHash)
          prevHash = entryHash
          prevBytes = hashBytes
        }
        const appended = Merkle.append(head.size, frontier, leaves)
        yield* store.write(entries, appended.nodes)
        const size = head.size + prepared.length
        cache = { size, lastHash: prevHash, frontier: appended.frontier }
        if (anchorEntries !== undefined && size - lastAnchored >= anchorEntries) {
          EffectQueue.offerUnsafe(wake, undefined)
        }
        return receipts
      })
    )

  // Signs only the root recomputed from the entries (internal/ledgerSeal.ts), never the stored nodes' root
  const checkpointRecord = Effect.gen(function* () {
    const sealed = yield* seal({ store, trusted: signedByTrustedKey })
    if (sealed._tag === "Existing") return sealed.record
    if (sealed._tag === "Mismatch") return yield* new LedgerTampered(sealed.mismatch)
    const timestamp = yield* Clock.currentTimeMillis
    const body = { size: sealed.size, root: sealed.root as Sha256Hex, timestamp, keyId: keys.keyId }
    const signature = NodeCrypto.sign(null, checkpointMessage(body), keys.signingKey).toString("base64")
    return yield* store.putCheckpoint({ ...body, signature })
  })

  // A pending receipt may have confirmed (or been dropped) since: ask the chain, keep what we have on failure.
  // Only a transaction carrying this checkpoint's root and size updates the receipt (verifyAll reports others)
  const refresh = (record: CheckpointRecord): Effect.Effect<CheckpointRecord, LedgerStoreError> => {
    const anchor = record.anchor
    if (anchor === undefined || anchor.status !== "pending") return Effect.succeed(record)
    return anchorService.getTx(anchor.txId).pipe(
      Effect.flatMap((latest) =>
        (latest.status === anchor.status && latest.confirmedAt === anchor.confirmedAt) ||
        latest.root !== record.checkpoint.root ||
        latest.size !== record.checkpoint.size
          ? Effect.succeed(record)
          : Effect.as(store.putAnchor(record.checkpoint.size, latest), {
              checkpoint: record.checkpoint,
              anchor: latest
            })
      ),
      Effect.catchTag(["AnchorError", "AnchorNotFound"], () => Effect.succeed(record))
    )
  }

  const anchorNow = anchorLock.withPermits(1)(
    Effect.gen(function* () {
      const record = yield* checkpointRecord
      if (record.anchor !== undefined && record.anchor.status !== "dropped") return yield* refresh(record)
      const { root, size } = record.checkpoint
      const receipt = yield* anchorService.publish(root, size)
      yield* store.putAnchor(size, receipt)
      lastAnchored = Math.max(lastAnchored, size)
      return { checkpoint: record.checkpoint, anchor: receipt }
    })
  )

  if (anchorEntries !== undefined || anchorInterval !== undefined) {
    const trigger =
      anchorInterval === undefined
        ? EffectQueue.take(wake)
        : Effect.race(EffectQueue.take(wake), Effect.sleep(anchorInterval))
    yield* trigger.pipe(
      Effect.andThen(
        Effect.gen(function* () {
          const { size } = yield* store.head
          if (size > lastAnchored) yield* anchorNow
        })
      ),
      Effect.catchCause((cause) =>
        Effect.logWarning("Ledger anchoring failed; retrying at the next trigger", cause).pipe(
          Effect.annotateLogs({ service: "Ledger" })
        )
      ),
      Effect.forever,
      Effect.forkScoped
    )
  }

  // ---- reads -----------------------------------------------------------------------------------------------
  const get = (entryHash: string) =>
    Effect.flatMap(store.findByHash(entryHash), (found) =>
      Option.isSome(found) ? Effect.succeed(found.value) : Effect.fail(new EntryNotFound({ entryHash }))
    )

  const inclusion = (index: number, treeSize: number) =>
    Effect.map(readNodes("inclusionProof", Merkle.inclusionNodes(index, treeSize)), (read) => ({
      leafIndex: index,
      treeSize,
      path: Merkle.inclusionPath(index, treeSize, read).map(hex)
    }))

  // Re-checks one stored entry on its own: its payload against payloadHash, its body against entryHash
  const checkEntry = (entry: LedgerEntry): LedgerMismatch | undefined => {
    const record = entry as unknown as Record<string, unknown>
    if ("payload" in record) {
      const found = attempt(() => Canonical.hash(record.payload))
      if (found !== record.payloadHash) {
        return {
          seq: entry.seq,
          check: "payloadHash",
          expected: String(record.payloadHash),
          found,
          detail: "the stored payload does not hash to the stored payloadHash"
        }
      }
    }
    const recomputed = attempt(() => entryHashOfRecord(record))
    if (recomputed !== record.entryHash) {
      return {
        seq: entry.seq,
        check: "entryHash",
        expected: recomputed,
        found: String(record.entryHash),
        detail: "the stored entry does not hash to its entryHash"
      }
    }
    return undefined
  }

  const tampered = (m: LedgerMismatch) => new LedgerTampered(m)

  const verify = Effect.fn("Ledger.verify")(function* (entryHash: string) {
    const entry = yield* get(entryHash)
    const local = checkEntry(entry)
    if (local !== undefined) return yield* tampered(local)
    let record = Option.getOrUndefined(yield* store.latestCheckpoint)
    if (record === undefined || record.checkpoint.size <= entry.seq) record = yield* checkpointRecord
    const leafHash = entryLeafHash(entry.entryHash)
    const prove = Effect.fnUntraced(function* (cp: Checkpoint) {
      if (!signedByTrustedKey(cp)) {
        return yield* tampered({
          seq: cp.size - 1,
          check: "checkpoint",
          expected: `a signature by a trusted key (this ledger signs with ${keys.keyId})`,
          found: cp.signature,
          detail: `the stored checkpoint of size ${cp.size} is not signed by this ledger`
        })
      }
      const proof = yield* inclusion(entry.seq, cp.size)
      if (!Merkle.verifyInclusionProof(proof, leafHash, cp.root)) {
        const path = proof.path.map((h) => Canonical.fromHex(h)!)
        const reached = Merkle.rootFromInclusion(entry.seq, cp.size, Canonical.fromHex(leafHash)!, path)
        return yield* tampered({
          seq: entry.seq,
          check: "node",
          expected: cp.root,
          found: reached === undefined ? "no root" : hex(reached),
          detail: `the stored Merkle nodes no longer prove entry ${entry.seq} in the checkpoint of size ${cp.size}`
        })
      }
      return proof
    })
    const proof = yield* prove(record.checkpoint)
    record = yield* refresh(record)
    let anchored: AnchoredProof | undefined
    if (record.anchor === undefined) {
      const candidates = (yield* store.checkpoints).filter(
        (r) => r.anchor !== undefined && r.anchor.status !== "dropped" && r.checkpoint.size > entry.seq
      )
      const latest = candidates[candidates.length - 1]
      if (latest !== undefined) {
        const fresh = yield* refresh(latest)
        anchored = {
          checkpoint: fresh.checkpoint,
          proof: yield* prove(fresh.checkpoint),
          anchor: fresh.anchor!
        }
      }
    }
    return {
      entry,
      leafHash,
      checkpoint: record.checkpoint,
      proof,
      ...(record.anchor !== undefined ? { anchor: record.anchor } : {}),
      ...(anchored !== undefined ? { anchored } : {})
    } satisfies VerifiedEntry
  })

  const verifyAll = Effect.fn("Ledger.verifyAll")(function* (range?: EntryRange) {
    const head = yield* store.head
    const from = yield* requireIndex("from", range?.from ?? 0)
    const to = yield* requireIndex("to", range?.to ?? head.size)
    if (to > head.size) return yield* outOfRange("to", to, head.size, `the ledger has ${head.size} entries`)
    if (from > to) return yield* outOfRange("from", from, to, `from must not exceed to (${to})`)
    return yield* verifyRange(
      { store, anchor: anchorService, trusted: signedByTrustedKey, keyId: keys.keyId, rootAt },
      { from, to, head }
    )
  })

  return Ledger.of({
    publicKey: keys.publicKey,
    keyId: keys.keyId,
    publicKeys: keys.trusted,
    // Appends are on every transition's path: untraced, a span would cost as much as the append
    append: Effect.fnUntraced(function* (entry: EntryInput) {
      const prepared = yield* prepare(entry, "$")
      const [receipt] = yield* appendPrepared([prepared])
      return receipt!
    }),
    appendBatch: Effect.fnUntraced(function* (entries: ReadonlyArray<EntryInput>) {
      const prepared = yield* prepareAll(entries)
      return prepared.length === 0 ? [] : yield* appendPrepared(prepared)
    }),
    size: Effect.map(store.head, (head) => head.size),
    root: Effect.fn("Ledger.root")(function* (size?: number) {
      const current = (yield* store.head).size
      const n = yield* requireIndex("size", size ?? current)
      if (n > current) return yield* outOfRange("size", n, current, `the ledger has ${current} entries`)
      return hex(yield* rootAt(n))
    }),
    inclusionProof: Effect.fn("Ledger.inclusionProof")(function* (target: number | string, treeSize?: number) {
      const current = (yield* store.head).size
      const index = typeof target === "string" ? (yield* get(target)).seq : yield* requireIndex("leafIndex", target)
      const n = yield* requireIndex("treeSize", treeSize ?? current)
      if (n > current) return yield* outOfRange("treeSize", n, current, `the ledger has ${current} entries`)
      if (index >= n) return yield* outOfRange("leafIndex", index, n, `the tree has ${n} leaves`)
      return yield* inclusion(index, n)
    }),
    consistencyProof: Effect.fn("Ledger.consistencyProof")(function* (oldSize: number, newSize?: number) {
      const current = (yield* store.head).size
      const m = yield* requireIndex("oldSize", oldSize)
      const n = yield* requireIndex("newSize", newSize ?? current)
      if (n > current) return yield* outOfRange("newSize", n, current, `the ledger has ${current} entries`)
      if (m > n) return yield* outOfRange("oldSize", m, n, `oldSize must not exceed newSize (${n})`)
      // As transparency-dev/merkle: a proof from the empty tree proves nothing, and verifiers refuse it
      if (m === 0) return yield* outOfRange("oldSize", m, 1, "no consistency proof exists from the empty tree")
      const read = yield* readNodes("consistencyProof", Merkle.consistencyNodes(m, n))
      return { oldSize: m, newSize: n, path: Merkle.consistencyPath(m, n, read).map(hex) }
    }),
    checkpoint: Effect.map(checkpointRecord, (record) => record.checkpoint).pipe(Effect.withSpan("Ledger.checkpoint")),
    latestCheckpoint: store.latestCheckpoint,
    checkpoints: store.checkpoints,
    verifyCheckpoint: Effect.fn("Ledger.verifyCheckpoint")(function* (input: Checkpoint) {
      const checkpoint = yield* decode(Checkpoint)(input)
      const reject = (reason: CheckpointRejected["reason"], detail: string) =>
        new CheckpointRejected({ size: checkpoint.size, reason, detail })
      if (!keys.trusted.has(checkpoint.keyId)) {
        return yield* reject("key", `signed by key ${checkpoint.keyId}, which this ledger does not trust`)
      }
      if (!signedByTrustedKey(checkpoint)) {
        return yield* reject("signature", "the signature does not match the checkpoint's size, root and timestamp")
      }
      const { size } = yield* store.head
      if (checkpoint.size < 0 || checkpoint.size > size) {
        return yield* reject("size", `the ledger has ${size} entries`)
      }
      const root = hex(yield* rootAt(checkpoint.size))
      if (root !== checkpoint.root) {
        return yield* reject("root", `the ledger's root at size ${checkpoint.size} is ${root}`)
      }
    }),
    anchor: anchorNow.pipe(Effect.withSpan("Ledger.anchor")),
    get: (entryHash) => get(entryHash).pipe(Effect.withSpan("Ledger.get")),
    byTask: (taskId) => store.findByTask(taskId).pipe(Effect.withSpan("Ledger.byTask")),
    entries: Effect.fn("Ledger.entries")(function* (options?: {
      readonly from?: number | undefined
      readonly limit?: number | undefined
    }) {
      const from = yield* requireIndex("from", options?.from ?? 0)
      const limit = yield* requireIndex("limit", options?.limit ?? 1000)
      return yield* store.entries(from, from + limit)
    }),
    verify,
    verifyAll
  })
})

const missingNode = (operation: string, id: Merkle.NodeId): LedgerStoreError =>
  new LedgerStoreError({
    operation,
    cause: new Error(`Merkle node (level ${id.level}, index ${id.index}) is missing from the store`)
  })
