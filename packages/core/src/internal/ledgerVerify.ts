/**
 * `Ledger.verifyAll`: a full pass over stored data that reports the first thing no longer matching.
 *
 * In order:
 * 1. every entry in the range, in place, payload, link and hash (`checkEntry`); its per-task link (entry format 2:
 *    `taskPrevHash` must be the hash of the task's previous entry in ledger order, `genesisHash` for its first, so
 *    a task's entry dropped, reordered or moved to another task shows even when every hash was recomputed after
 *    the last checkpoint; format-1 entries carry no link and are skipped, but still count as the task's previous
 *    entry); and every Merkle node the range's entries completed, the leaf against the entry's hash and each
 *    interior node against its stored children;
 * 2. the head record, when the range reaches it: its last hash must be the last entry's, and no entry may be
 *    stored past its size (an entry deleted from the end shows up here, or as `missing`);
 * 3. every checkpoint the range covers: signed by a trusted key, and its root the root of the stored tree at its
 *    size (this catches a rewrite that recomputed every hash, and entries removed from the end);
 * 4. each of those checkpoints' anchoring, against the `Anchor` (the chain): a stored receipt must name a
 *    transaction that carries this root and size, with the status the chain gives it (a receipt may lag behind
 *    the chain — pending while the chain has confirmed — but never run ahead of it); a checkpoint without a
 *    receipt must not be on the chain (a deleted receipt shows up through the chain's lookup by root). When the
 *    chain cannot be reached the receipt is counted as unchecked, not as valid or tampered.
 *
 * @since 0.1.0
 */
import { Effect, Option, Result } from "effect"
import type { Anchor, AnchorReceipt } from "../Anchor.ts"
import * as Canonical from "../Canonical.ts"
import type { LedgerMismatch, LedgerVerification } from "../Ledger.ts"
import { type Checkpoint, genesisHash, type LedgerEntry } from "../LedgerEntry.ts"
import type { CheckpointRecord, LedgerHead, LedgerStore, LedgerStoreError } from "../LedgerStore.ts"
import * as Merkle from "../Merkle.ts"
import { checkEntry, equalBytes, missing } from "./ledgerChecks.ts"

/** What `verifyRange` needs from the ledger. */
export interface VerifyContext {
  readonly store: LedgerStore["Service"]
  readonly anchor: Anchor["Service"]
  /** Whether a trusted key with the checkpoint's key id signed it. */
  readonly trusted: (checkpoint: Checkpoint) => boolean
  /** The current signing key's id, for reports. */
  readonly keyId: string
  /** The root of the stored tree at `size`. */
  readonly rootAt: (size: number) => Effect.Effect<Uint8Array, LedgerStoreError>
}

const CHUNK = 2048

/**
 * Verifies entries `[from, to)` (already validated against `head`) and the checkpoints and anchors they cover.
 */
export const verifyRange = (
  ctx: VerifyContext,
  range: { readonly from: number; readonly to: number; readonly head: LedgerHead }
): Effect.Effect<LedgerVerification, LedgerStoreError> =>
  Effect.gen(function* () {
    const { store } = ctx
    const { from, to, head } = range
    const size = head.size
    let checkpoints = 0
    let anchors = 0
    let anchorsUnchecked = 0
    const report = (mismatch: LedgerMismatch, entries: number): LedgerVerification => ({
      from,
      to,
      entries,
      checkpoints,
      anchors,
      anchorsUnchecked,
      valid: false,
      mismatch
    })

    let expectedPrev: string = genesisHash
    if (from > 0) {
      const [previous] = yield* store.entries(from - 1, from)
      if (previous === undefined || previous.seq !== from - 1) return report(missing(from - 1, previous), 0)
      expectedPrev = previous.entryHash
    }
    // Each task's last entry hash so far, in ledger order; a task first met in a range that starts past 0 is looked
    // up once (its last entry before the range)
    const taskLast = new Map<string, string>()
    const lastBefore = (taskId: string): Effect.Effect<string, LedgerStoreError> =>
      from === 0
        ? Effect.succeed(genesisHash)
        : Effect.map(store.findByTask(taskId), (rows) => {
            let last: LedgerEntry | undefined
            for (const row of rows) if (row.seq < from && (last === undefined || row.seq > last.seq)) last = row
            return last === undefined ? genesisHash : last.entryHash
          })

    for (let start = from; start < to; start += CHUNK) {
      const end = Math.min(start + CHUNK, to)
      const rows = yield* store.entries(start, end)
      const ids = nodesCompletedIn(start, end)
      const stored = yield* store.nodes(ids)
      const nodeAt = new Map<string, Uint8Array | undefined>()
      for (let i = 0; i < ids.length; i++) nodeAt.set(`${ids[i]!.level}:${ids[i]!.index}`, stored[i])
      let k = 0
      for (let seq = start; seq < end; seq++) {
        const checked = checkEntry(seq, rows[k], expectedPrev)
        if ("mismatch" in checked) return report(checked.mismatch, seq - from)
        k++
        expectedPrev = checked.ok.entryHash
        const row = rows[k - 1]!
        if (typeof row.taskId === "string") {
          const known = taskLast.get(row.taskId)
          const taskPrev = known ?? (yield* lastBefore(row.taskId))
          taskLast.set(row.taskId, checked.ok.entryHash)
          if ("taskPrevHash" in row && row.taskPrevHash !== taskPrev) {
            return report(
              {
                seq,
                check: "taskPrevHash",
                expected: taskPrev,
                found: String(row.taskPrevHash),
                detail:
                  taskPrev === genesisHash
                    ? `entry ${seq} is the first of task ${row.taskId}, but links to an earlier entry of it`
                    : `entry ${seq} does not link to the previous entry of task ${row.taskId}: ` +
                      "an entry of the task is missing, out of order or moved"
              },
              seq - from
            )
          }
        }
        // The leaf, then every node this entry completed (their children were checked before them)
        const nodeMismatch = (level: number, index: number, expected: Uint8Array): LedgerMismatch | undefined => {
          const found = nodeAt.get(`${level}:${index}`)
          if (found !== undefined && equalBytes(found, expected)) return undefined
          return {
            seq,
            check: "node",
            expected: Canonical.toHex(expected),
            found: found === undefined ? "no node" : Canonical.toHex(found),
            detail:
              level === 0
                ? `the Merkle leaf of entry ${seq} does not match its entryHash`
                : `Merkle node (level ${level}, index ${index}) does not match its children`
          }
        }
        const leafMismatch = nodeMismatch(0, seq, Merkle.leafHash(checked.ok.bytes))
        if (leafMismatch !== undefined) return report(leafMismatch, seq - from)
        for (let level = 1, span = 2; (seq + 1) % span === 0; level++, span *= 2) {
          const index = (seq + 1) / span - 1
          const left = nodeAt.get(`${level - 1}:${2 * index}`)
          const right = nodeAt.get(`${level - 1}:${2 * index + 1}`)
          if (left === undefined || right === undefined) {
            return report(
              {
                seq,
                check: "node",
                expected: `nodes (level ${level - 1}, index ${2 * index}) and (${level - 1}, ${2 * index + 1})`,
                found: "no node",
                detail: `a child of Merkle node (level ${level}, index ${index}) is missing`
              },
              seq - from
            )
          }
          const mismatch = nodeMismatch(level, index, Merkle.nodeHash(left, right))
          if (mismatch !== undefined) return report(mismatch, seq - from)
        }
      }
    }

    // The head record appends continue from: it must end where the entries end
    if (to === size) {
      if (expectedPrev !== head.lastHash) {
        return report(
          {
            seq: Math.max(0, size - 1),
            check: "head",
            expected: expectedPrev,
            found: String(head.lastHash),
            detail: `the head record's last hash is not the hash of entry ${size - 1}`
          },
          to - from
        )
      }
      const [beyond] = yield* store.entries(size, size + 1)
      // An append may have committed since the head was read: only an entry the current head does not count is out
      // of place
      if (beyond !== undefined && (yield* store.head).size <= beyond.seq) {
        return report(
          {
            seq: size,
            check: "head",
            expected: `${size} entries`,
            found: `entry ${String(beyond.seq)} stored past them`,
            detail: `the head record counts ${size} entries, but an entry is stored at position ${size}`
          },
          to - from
        )
      }
    }

    // The entries and nodes agree with each other; the signed checkpoints catch a rewrite that recomputed them
    let verifiedUpTo = from
    for (const record of yield* store.checkpoints) {
      const cp = record.checkpoint
      if (cp.size > size) {
        if (to < size) continue
        return report(
          {
            seq: size,
            check: "checkpoint",
            expected: `at least ${cp.size} entries`,
            found: `${size} entries`,
            detail: `a checkpoint was signed at size ${cp.size}: entries were removed from the end`
          },
          to - from
        )
      }
      if (cp.size <= from || cp.size > to) continue
      if (!ctx.trusted(cp)) {
        return report(
          {
            seq: cp.size - 1,
            check: "checkpoint",
            expected: `a signature by a trusted key (this ledger signs with ${ctx.keyId})`,
            found: String(cp.signature),
            detail: `the stored checkpoint of size ${cp.size} is not signed by a key this ledger trusts`
          },
          to - from
        )
      }
      const root = Canonical.toHex(yield* ctx.rootAt(cp.size))
      if (root !== cp.root) {
        return report(
          {
            seq: verifiedUpTo,
            check: "checkpoint",
            expected: cp.root,
            found: root,
            detail:
              `the tree no longer matches the checkpoint signed at size ${cp.size}: ` +
              `entries in [${verifiedUpTo}, ${cp.size}) were rewritten together with their hashes`
          },
          to - from
        )
      }
      checkpoints++
      verifiedUpTo = cp.size
      const anchoring = yield* checkAnchoring(ctx.anchor, record)
      if (anchoring === "unchecked") anchorsUnchecked++
      else if (anchoring === "receipt") anchors++
      else if (anchoring !== "none") return report(anchoring, to - from)
    }
    return {
      from,
      to,
      entries: to - from,
      checkpoints,
      anchors,
      anchorsUnchecked,
      valid: true
    } satisfies LedgerVerification
  })

/** Every node completed by entries `[start, end)`, and the children of the interior ones. */
const nodesCompletedIn = (start: number, end: number): Array<Merkle.NodeId> => {
  const ids: Array<Merkle.NodeId> = []
  for (let seq = start; seq < end; seq++) {
    ids.push({ level: 0, index: seq })
    for (let level = 1, span = 2; (seq + 1) % span === 0; level++, span *= 2) {
      const index = (seq + 1) / span - 1
      ids.push({ level, index })
      // The left child may predate the chunk; the right child was completed at `seq` (already listed)
      ids.push({ level: level - 1, index: 2 * index })
    }
  }
  return ids
}

// How far a stored status may be from the chain's: a receipt may lag behind the chain, never run ahead of it
const statusRank = { pending: 0, confirmed: 1, dropped: 1 } as const

/**
 * A checkpoint's anchoring against the chain: `receipt` (its receipt agrees with the chain), `none` (no receipt,
 * and the chain holds no anchor of it), `unchecked` (the chain could not be asked), or what disagrees.
 */
const checkAnchoring = (
  anchor: Anchor["Service"],
  record: CheckpointRecord
): Effect.Effect<"receipt" | "none" | "unchecked" | LedgerMismatch> =>
  Effect.gen(function* () {
    const cp = record.checkpoint
    const stored = record.anchor
    const seq = cp.size - 1
    const mismatch = (expected: string, found: string, detail: string): LedgerMismatch => ({
      seq,
      check: "anchor",
      expected,
      found,
      detail
    })
    // An anchor of this checkpoint the chain holds, if any (dropped attempts do not count)
    const onChain = Effect.map(anchor.lookup(cp.root), (found) =>
      Option.filter(found, (r) => r.root === cp.root && r.size === cp.size && r.status !== "dropped")
    )

    if (stored === undefined) {
      const found = yield* Effect.result(onChain)
      if (Result.isFailure(found)) return "unchecked"
      if (Option.isNone(found.success)) return "none"
      const tx = found.success.value
      return mismatch(
        `the receipt of transaction ${tx.txId}`,
        "no receipt",
        `the chain holds the root of the checkpoint of size ${cp.size} in transaction ${tx.txId}, ` +
          "but its anchor receipt is missing from the store"
      )
    }
    if (stored.root !== cp.root || stored.size !== cp.size) {
      return mismatch(
        `${cp.root} (size ${cp.size})`,
        `${String(stored.root)} (size ${String(stored.size)})`,
        `the anchor receipt stored with the checkpoint of size ${cp.size} is for another root`
      )
    }
    const fromChain = yield* Effect.result(anchor.getTx(stored.txId))
    if (Result.isFailure(fromChain)) {
      if (fromChain.failure._tag === "AnchorError") return "unchecked"
      // Not on the chain: a pending transaction may not be archived yet, a dropped one never will be; a
      // confirmed one must be there
      if (stored.status === "confirmed") {
        return mismatch(
          `transaction ${stored.txId} on the chain`,
          "no such transaction",
          `the receipt of the checkpoint of size ${cp.size} says transaction ${stored.txId} confirmed it, ` +
            "but the chain has no such transaction"
        )
      }
      const elsewhere = yield* Effect.result(onChain)
      if (Result.isFailure(elsewhere)) return "unchecked"
      if (Option.isSome(elsewhere.success) && elsewhere.success.value.txId !== stored.txId) {
        const tx = elsewhere.success.value
        return mismatch(
          `transaction ${tx.txId}`,
          `transaction ${stored.txId}`,
          `the chain holds the root of the checkpoint of size ${cp.size} in transaction ${tx.txId}, ` +
            `but its receipt names ${stored.txId}, which the chain does not have`
        )
      }
      return "receipt"
    }
    const tx: AnchorReceipt = fromChain.success
    if (tx.root !== cp.root || tx.size !== cp.size) {
      return mismatch(
        `${cp.root} (size ${cp.size})`,
        `${tx.root} (size ${tx.size})`,
        `transaction ${stored.txId}, named by the receipt of the checkpoint of size ${cp.size}, anchors another root`
      )
    }
    const ahead = statusRank[stored.status] > statusRank[tx.status]
    const contradicts = statusRank[stored.status] === statusRank[tx.status] && stored.status !== tx.status
    if (ahead || contradicts) {
      return mismatch(
        `status ${tx.status}`,
        `status ${stored.status}`,
        `the receipt of the checkpoint of size ${cp.size} says transaction ${stored.txId} is ${stored.status}, ` +
          `the chain says ${tx.status}`
      )
    }
    if (stored.status === "confirmed" && (stored.tick !== tx.tick || stored.chain !== tx.chain)) {
      return mismatch(
        `${tx.chain} tick ${tx.tick}`,
        `${String(stored.chain)} tick ${String(stored.tick)}`,
        `the receipt of the checkpoint of size ${cp.size} places transaction ${stored.txId} elsewhere than the chain does`
      )
    }
    return "receipt"
  })
