/**
 * What a new checkpoint may sign: the root computed from the stored entries, never the root the stored Merkle
 * nodes add up to. Whoever can write the store can overwrite a node (one `UPDATE`); if the ledger signed the
 * root of the stored nodes, it would sign a tree holding a leaf no entry has, and an entry fabricated for that
 * leaf would verify offline under a valid signature.
 *
 * So before signing a checkpoint of `size` entries, `seal`
 * 1. takes the latest checkpoint signed by a trusted key (`base`, of `m` entries; none: `m = 0`), which covers
 *    the entries before it;
 * 2. reads the frontier nodes of the tree of `m` entries and checks that they fold to `base`'s signed root, and
 *    that entry `m - 1` (re-hashed) is in that tree, so the first new entry can be checked against its link;
 * 3. re-checks every entry in `[m, size)` (place, payload, link, hash), recomputes the Merkle nodes they complete
 *    from their hashes (`Merkle.append` over the frontier), and checks each stored node against its recomputed
 *    value, so a proof later served from the stored nodes agrees with what is signed;
 * 4. checks the head record: its last hash is the last entry's, and no entry is stored past it;
 * and returns the recomputed root, or the first mismatch (then nothing may be signed). The cost is a pass over the
 * entries since the last checkpoint, at checkpoint time; appends stay as cheap as before.
 *
 * Entries after the last signed checkpoint can still be rewritten consistently (entries, links, nodes and head
 * together) by someone who can write the store: nothing has committed to them yet. Checkpointing (and anchoring)
 * often shortens that window.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import * as Canonical from "../Canonical.ts"
import type { LedgerMismatch } from "../Ledger.ts"
import { type Checkpoint, entryHashOfRecord, genesisHash } from "../LedgerEntry.ts"
import type { CheckpointRecord, LedgerStore, LedgerStoreError } from "../LedgerStore.ts"
import * as Merkle from "../Merkle.ts"
import { attempt, checkEntry, compareNodes, completedBy, equalBytes } from "./ledgerChecks.ts"

/** What `seal` needs from the ledger. */
export interface SealContext {
  readonly store: LedgerStore["Service"]
  /** Whether a trusted key with the checkpoint's key id signed it. */
  readonly trusted: (checkpoint: Checkpoint) => boolean
}

/** The outcome: the record already signed at this size, a root to sign, or why nothing may be signed. */
export type Sealed =
  | { readonly _tag: "Existing"; readonly record: CheckpointRecord }
  | { readonly _tag: "Root"; readonly size: number; readonly root: string }
  | { readonly _tag: "Mismatch"; readonly mismatch: LedgerMismatch }

const CHUNK = 2048

/**
 * The root a checkpoint of the current head may sign (see the module docs).
 */
export const seal = (ctx: SealContext): Effect.Effect<Sealed, LedgerStoreError> =>
  Effect.gen(function* () {
    const { store } = ctx
    // Checkpoints first, then the head: every checkpoint read was stored before the head was read, so none can
    // legitimately be larger than it
    const records = yield* store.checkpoints
    const head = yield* store.head
    const size = head.size
    const fail = (mismatch: LedgerMismatch): Sealed => ({ _tag: "Mismatch", mismatch })

    let base: CheckpointRecord | undefined
    for (const record of records) {
      const cp = record.checkpoint
      if (cp.size > size && !ctx.trusted(cp)) {
        return fail({
          seq: size,
          check: "checkpoint",
          expected: "a signature by a trusted key",
          found: String(cp.signature),
          detail: `a checkpoint of size ${cp.size}, beyond the ledger's ${size} entries, is not signed by this ledger`
        })
      }
      if (cp.size > size) {
        return fail({
          seq: size,
          check: "checkpoint",
          expected: `at least ${cp.size} entries`,
          found: `${size} entries`,
          detail: `a checkpoint was signed at size ${cp.size}: entries were removed from the end`
        })
      }
      if (cp.size === size && !ctx.trusted(cp)) {
        return fail({
          seq: Math.max(0, size - 1),
          check: "checkpoint",
          expected: "a signature by a trusted key",
          found: String(cp.signature),
          detail: `the stored checkpoint of size ${size} is not signed by this ledger`
        })
      }
      if (ctx.trusted(cp) && (base === undefined || cp.size > base.checkpoint.size)) base = record
    }
    if (base !== undefined && base.checkpoint.size === size) return { _tag: "Existing", record: base }

    const m = base?.checkpoint.size ?? 0
    let frontier: ReadonlyArray<Uint8Array> = []
    let expectedPrev: string = genesisHash
    if (base !== undefined && m > 0) {
      const baseRoot = base.checkpoint.root
      const ids = Merkle.subtreeNodes(0, m)
      const [entryBefore] = yield* store.entries(m - 1, m)
      const proofIds = Merkle.inclusionNodes(m - 1, m)
      const stored = yield* store.nodes([...ids, ...proofIds])
      const mismatchWithBase = (detail: string, found: string): Sealed =>
        fail({ seq: m - 1, check: "checkpoint", expected: baseRoot, found, detail })
      if (stored.some((hash) => hash === undefined)) {
        return mismatchWithBase(
          `Merkle nodes of the tree signed at size ${m} are missing from the store`,
          "missing nodes"
        )
      }
      frontier = stored.slice(0, ids.length) as Array<Uint8Array>
      const folded = Canonical.toHex(Merkle.foldSubtrees(frontier))
      if (folded !== baseRoot) {
        return mismatchWithBase(`the stored nodes no longer add up to the checkpoint signed at size ${m}`, folded)
      }
      // The entry before the new ones, re-hashed, must be the last leaf of the signed tree: then the first new
      // entry's link is checked against a hash the checkpoint commits to
      const previous = entryBefore === undefined ? undefined : attempt(() => entryHashOfRecord(entryBefore))
      const bytes = previous === undefined ? undefined : Canonical.fromHex(previous)
      const byId = new Map<string, Uint8Array>()
      for (let i = 0; i < proofIds.length; i++) {
        byId.set(`${proofIds[i]!.level}:${proofIds[i]!.index}`, stored[ids.length + i]!)
      }
      const path =
        bytes === undefined || bytes.length !== 32
          ? undefined
          : Merkle.inclusionPath(m - 1, m, (level, index) => byId.get(`${level}:${index}`)!)
      const reached =
        bytes === undefined || path === undefined
          ? undefined
          : Merkle.rootFromInclusion(m - 1, m, Merkle.leafHash(bytes), path)
      if (reached === undefined || !equalBytes(reached, Canonical.fromHex(baseRoot)!)) {
        return fail({
          seq: m - 1,
          check: "checkpoint",
          expected: baseRoot,
          found: entryBefore === undefined ? "no entry" : String(previous),
          detail: `entry ${m - 1} is no longer the last entry of the checkpoint signed at size ${m}`
        })
      }
      expectedPrev = previous!
    }

    let current = m
    while (current < size) {
      const end = Math.min(current + CHUNK, size)
      const rows = yield* store.entries(current, end)
      const leaves: Array<Uint8Array> = []
      let k = 0
      for (let seq = current; seq < end; seq++) {
        const checked = checkEntry(seq, rows[k], expectedPrev)
        if ("mismatch" in checked) return fail(checked.mismatch)
        k++
        expectedPrev = checked.ok.entryHash
        leaves.push(Merkle.leafHash(checked.ok.bytes))
      }
      const appended = Merkle.append(current, frontier, leaves)
      const stored = yield* store.nodes(appended.nodes)
      const nodeMismatch = compareNodes(appended.nodes, stored, completedBy)
      if (nodeMismatch !== undefined) return fail(nodeMismatch)
      frontier = appended.frontier
      current = end
    }
    if (expectedPrev !== head.lastHash) {
      return fail({
        seq: Math.max(0, size - 1),
        check: "head",
        expected: expectedPrev,
        found: String(head.lastHash),
        detail: `the head record's last hash is not the hash of entry ${size - 1}`
      })
    }
    // An entry past the head (that an append committed since the head was read would not be) means the head was
    // moved back: signing the shorter tree would hide the entries after it
    const [beyond] = yield* store.entries(size, size + 1)
    if (beyond !== undefined && (yield* store.head).size <= beyond.seq) {
      return fail({
        seq: size,
        check: "head",
        expected: `${size} entries`,
        found: `entry ${String(beyond.seq)} stored past them`,
        detail: `the head record counts ${size} entries, but an entry is stored at position ${size}`
      })
    }
    return { _tag: "Root", size, root: Canonical.toHex(Merkle.foldSubtrees(frontier)) }
  })
