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
import { Context, type Duration, Effect, Layer, Option, Schema } from "effect"
import { Anchor, type AnchorError, AnchorReceipt } from "./Anchor.ts"
import * as Canonical from "./Canonical.ts"
import { EntryHash, Sha256Hex } from "./Ids.ts"
import { InvalidInput } from "./InvalidInput.ts"
import * as Anchoring from "./internal/ledgerAnchoring.ts"
import * as Append from "./internal/ledgerAppend.ts"
import * as Checkpoints from "./internal/ledgerCheckpoint.ts"
import { isIndex } from "./internal/ledgerChecks.ts"
import { prepare, prepareAll, prepareValid } from "./internal/ledgerInput.ts"
import * as KeyLoading from "./internal/ledgerKeyLoading.ts"
import * as LedgerTree from "./internal/ledgerTree.ts"
import { verifyRange } from "./internal/ledgerVerify.ts"
import * as VerifyEntry from "./internal/ledgerVerifyEntry.ts"
import {
  Checkpoint,
  type EntryInput,
  entryHashOfRecord,
  entryLeafHash,
  LedgerEntry,
  type PublicKeyInput,
  publicKeyId,
  verifyCheckpointSignature
} from "./LedgerEntry.ts"
import type * as LedgerKeys from "./LedgerKeys.ts"
import { type CheckpointRecord, LedgerStore, type LedgerStoreError } from "./LedgerStore.ts"
import * as Merkle from "./Merkle.ts"

export {
  /**
   * What to append (defined with the entry format in `LedgerEntry`).
   *
   * @category models
   * @since 0.1.0
   */
  EntryInput
} from "./LedgerEntry.ts"

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
 * `taskPrevHash` (an entry's per-task link, entry format 2, vs the hash of the task's previous entry), `node` (a
 * Merkle node vs its children, its leaf or the entries it covers), `head` (the head record vs the last entry),
 * `checkpoint` (a signed checkpoint vs the tree, or its signature), `anchor` (a checkpoint's anchor
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
  "taskPrevHash",
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

const requireIndex = (parameter: string, value: unknown): Effect.Effect<number, InvalidInput> =>
  isIndex(value)
    ? Effect.succeed(value)
    : Effect.fail(InvalidInput.at(`$.${parameter}`, `Expected a non-negative integer, got ${String(value)}`))

const outOfRange = (parameter: string, value: number, limit: number, reason: string) =>
  new InvalidTreeRange({ parameter, value, limit, reason })

// The ledger is assembled from modules named for what they do: key loading, the append path (input, then the
// locked chaining), the tree reads proofs come from, checkpoint signing, anchoring, and verification
const make = Effect.fnUntraced(function* (options?: LedgerOptions) {
  const store = yield* LedgerStore
  const anchorService = yield* Anchor
  const keys = yield* KeyLoading.load(options, store.durable)
  const trusted = KeyLoading.signedByTrustedKey(keys)
  const tree = LedgerTree.make(store)
  const checkpoints = Checkpoints.make({ store, tree, keys, trusted })
  const triggers = yield* Anchoring.triggers(options?.anchorEvery)
  const records = yield* store.checkpoints
  yield* KeyLoading.warnUntrusted(keys, records)
  const anchoring = yield* Anchoring.make({
    store,
    anchor: anchorService,
    checkpoint: checkpoints.current,
    records,
    triggers
  })
  const appendPrepared = Append.make({ store, tree, appended: anchoring.appended })

  const get = (entryHash: string) =>
    Effect.flatMap(store.findByHash(entryHash), (found) =>
      Option.isSome(found) ? Effect.succeed(found.value) : Effect.fail(new EntryNotFound({ entryHash }))
    )

  const verify = VerifyEntry.make({
    store,
    tree,
    keyId: keys.keyId,
    trusted,
    get,
    checkpoint: checkpoints.current,
    refresh: anchoring.refresh
  })

  const verifyAll = Effect.fn("Ledger.verifyAll")(function* (range?: EntryRange) {
    const head = yield* store.head
    const from = yield* requireIndex("from", range?.from ?? 0)
    const to = yield* requireIndex("to", range?.to ?? head.size)
    if (to > head.size) return yield* outOfRange("to", to, head.size, `the ledger has ${head.size} entries`)
    if (from > to) return yield* outOfRange("from", from, to, `from must not exceed to (${to})`)
    return yield* verifyRange(
      { store, anchor: anchorService, trusted, keyId: keys.keyId, rootAt: tree.rootAt },
      { from, to, head }
    )
  })

  return Ledger.of({
    publicKey: keys.publicKey,
    keyId: keys.keyId,
    publicKeys: keys.trusted,
    // Appends are on every transition's path: untraced, a span would cost as much as the append
    append: (entry: EntryInput) =>
      Effect.suspend(() => {
        // Valid input (the usual case) goes straight to the locked half; `prepare` explains a refusal
        const prepared = prepareValid(entry)
        return prepared === undefined
          ? prepare(entry, "$").pipe(Effect.flatMap((p) => Effect.map(appendPrepared([p]), (r) => r[0]!)))
          : Effect.map(appendPrepared([prepared]), (receipts) => receipts[0]!)
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
      return Canonical.toHex(yield* tree.rootAt(n))
    }),
    inclusionProof: Effect.fn("Ledger.inclusionProof")(function* (target: number | string, treeSize?: number) {
      const current = (yield* store.head).size
      const index = typeof target === "string" ? (yield* get(target)).seq : yield* requireIndex("leafIndex", target)
      const n = yield* requireIndex("treeSize", treeSize ?? current)
      if (n > current) return yield* outOfRange("treeSize", n, current, `the ledger has ${current} entries`)
      if (index >= n) return yield* outOfRange("leafIndex", index, n, `the tree has ${n} leaves`)
      return yield* tree.inclusion(index, n)
    }),
    consistencyProof: Effect.fn("Ledger.consistencyProof")(function* (oldSize: number, newSize?: number) {
      const current = (yield* store.head).size
      const m = yield* requireIndex("oldSize", oldSize)
      const n = yield* requireIndex("newSize", newSize ?? current)
      if (n > current) return yield* outOfRange("newSize", n, current, `the ledger has ${current} entries`)
      if (m > n) return yield* outOfRange("oldSize", m, n, `oldSize must not exceed newSize (${n})`)
      // As transparency-dev/merkle: a proof from the empty tree proves nothing, and verifiers refuse it
      if (m === 0) return yield* outOfRange("oldSize", m, 1, "no consistency proof exists from the empty tree")
      return yield* tree.consistency(m, n)
    }),
    checkpoint: Effect.map(checkpoints.current, (record) => record.checkpoint).pipe(
      Effect.withSpan("Ledger.checkpoint")
    ),
    latestCheckpoint: store.latestCheckpoint,
    checkpoints: store.checkpoints,
    verifyCheckpoint: (checkpoint) => checkpoints.verify(checkpoint).pipe(Effect.withSpan("Ledger.verifyCheckpoint")),
    anchor: anchoring.anchorNow.pipe(Effect.withSpan("Ledger.anchor")),
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
    verify: (entryHash) => verify(entryHash).pipe(Effect.withSpan("Ledger.verify")),
    verifyAll
  })
})
