/**
 * The checks `Ledger` runs on stored rows, shared by checkpoint sealing (`ledgerSeal.ts`) and full verification
 * (`ledgerVerify.ts`): one stored entry against its place, its payload, its link and its hash; one batch of
 * stored Merkle nodes against the nodes recomputed from the entries.
 *
 * @since 0.1.0
 */
import * as Canonical from "../Canonical.ts"
import type { LedgerMismatch } from "../Ledger.ts"
import { entryHashOfRecord, type LedgerEntry } from "../LedgerEntry.ts"
import type * as Merkle from "../Merkle.ts"

/** An entry that passed `checkEntry`: its recomputed hash, hex and raw. */
export interface CheckedEntry {
  readonly entryHash: string
  readonly bytes: Uint8Array
}

/** Runs `f`, turning what it throws into a description (a tampered row may hold anything). */
export const attempt = (f: () => string): string => {
  try {
    return f()
  } catch (error) {
    return `not hashable: ${error instanceof Error ? error.message : String(error)}`
  }
}

export const equalBytes = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

export const isIndex = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n) && n >= 0

/** No stored entry at `seq` (`found` is the row that came instead, if any). */
export const missing = (seq: number, found: LedgerEntry | undefined): LedgerMismatch => ({
  seq,
  check: "missing",
  expected: `entry ${seq}`,
  found: found === undefined ? "no entry" : `entry ${String(found.seq)}`,
  detail: `no stored entry has seq ${seq}`
})

/**
 * Checks the row read for position `seq`: it exists and is in its place, its payload (if stored) hashes to its
 * payloadHash, it links to `expectedPrev`, and it hashes to its entryHash. Returns the recomputed hash, or the
 * first check that failed. `consumed` says whether the row belongs to this position (a row for a later position
 * stays for the next one).
 */
export const checkEntry = (
  seq: number,
  row: LedgerEntry | undefined,
  expectedPrev: string
): { readonly ok: CheckedEntry } | { readonly mismatch: LedgerMismatch } => {
  const record = row as (LedgerEntry & Record<string, unknown>) | undefined
  if (record === undefined || !isIndex(record.seq) || record.seq > seq) return { mismatch: missing(seq, record) }
  if (record.seq < seq) {
    return {
      mismatch: {
        seq,
        check: "seq",
        expected: String(seq),
        found: String(record.seq),
        detail: `a second entry claims seq ${record.seq}`
      }
    }
  }
  // The payload's canonical text is hashed on its own and spliced into the entry body: encoded once, not twice
  let payloadText: string | undefined
  if ("payload" in record) {
    const found = attempt(() => {
      payloadText = Canonical.encode(record.payload)
      return Canonical.sha256Hex(payloadText)
    })
    if (found !== record.payloadHash) {
      return {
        mismatch: {
          seq,
          check: "payloadHash",
          expected: String(record.payloadHash),
          found,
          detail: "the stored payload does not hash to the stored payloadHash"
        }
      }
    }
  }
  if (record.prevHash !== expectedPrev) {
    return {
      mismatch: {
        seq,
        check: "prevHash",
        expected: expectedPrev,
        found: String(record.prevHash),
        detail: seq === 0 ? "the first entry must link to genesisHash" : `the link to entry ${seq - 1} is broken`
      }
    }
  }
  const recomputed = attempt(() => entryHashOfRecord(record, payloadText))
  if (recomputed !== record.entryHash) {
    return {
      mismatch: {
        seq,
        check: "entryHash",
        expected: recomputed,
        found: String(record.entryHash),
        detail: "the stored entry does not hash to its entryHash"
      }
    }
  }
  return { ok: { entryHash: recomputed, bytes: Canonical.fromHex(recomputed)! } }
}

/**
 * Compares stored nodes with the nodes recomputed from the entries (`Merkle.append`'s output, children before
 * parents). `seqOf` names the entry that completed a node, for the report.
 */
export const compareNodes = (
  recomputed: ReadonlyArray<Merkle.Node>,
  stored: ReadonlyArray<Uint8Array | undefined>,
  seqOf: (node: Merkle.NodeId) => number
): LedgerMismatch | undefined => {
  for (let i = 0; i < recomputed.length; i++) {
    const node = recomputed[i]!
    const found = stored[i]
    if (found !== undefined && equalBytes(found, node.hash)) continue
    const seq = seqOf(node)
    return {
      seq,
      check: "node",
      expected: Canonical.toHex(node.hash),
      found: found === undefined ? "no node" : Canonical.toHex(found),
      detail:
        node.level === 0
          ? `the Merkle leaf of entry ${seq} does not match its entryHash`
          : `Merkle node (level ${node.level}, index ${node.index}) does not match the entries it covers`
    }
  }
  return undefined
}

/** The entry whose append completed this node: the last leaf it covers. */
export const completedBy = (node: Merkle.NodeId): number => (node.index + 1) * 2 ** node.level - 1
