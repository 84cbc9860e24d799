/**
 * `Ledger.verify`: one entry with everything needed to check it offline. The entry is re-hashed on its own
 * (payload against `payloadHash`, body against `entryHash`), proven against the latest checkpoint (a new one is
 * taken when the latest does not cover it), and, when that checkpoint is not anchored, against the latest
 * anchored checkpoint that covers it. Each checkpoint must be signed by a trusted key and each proof must reach
 * its root from the stored nodes; the first thing that fails is `LedgerTampered`.
 *
 * @since 0.1.0
 */
import { Effect, Option } from "effect"
import * as Canonical from "../Canonical.ts"
import type { AnchoredProof, EntryNotFound, LedgerMismatch, VerifiedEntry } from "../Ledger.ts"
import { LedgerTampered } from "../Ledger.ts"
import { type Checkpoint, entryHashOfRecord, entryLeafHash, type LedgerEntry } from "../LedgerEntry.ts"
import type { CheckpointRecord, LedgerStore, LedgerStoreError } from "../LedgerStore.ts"
import * as Merkle from "../Merkle.ts"
import { attempt } from "./ledgerChecks.ts"
import type { LedgerTree } from "./ledgerTree.ts"

/** What `verify` needs from the ledger. */
export interface VerifyEntryContext {
  readonly store: LedgerStore["Service"]
  readonly tree: LedgerTree
  readonly keyId: string
  readonly trusted: (checkpoint: Checkpoint) => boolean
  readonly get: (entryHash: string) => Effect.Effect<LedgerEntry, EntryNotFound | LedgerStoreError>
  /** The checkpoint of the current tree (signed if new). */
  readonly checkpoint: Effect.Effect<CheckpointRecord, LedgerTampered | LedgerStoreError>
  readonly refresh: (record: CheckpointRecord) => Effect.Effect<CheckpointRecord, LedgerStoreError>
}

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

export const make =
  (ctx: VerifyEntryContext) =>
  (entryHash: string): Effect.Effect<VerifiedEntry, EntryNotFound | LedgerTampered | LedgerStoreError> =>
    Effect.gen(function* () {
      const { store } = ctx
      const entry = yield* ctx.get(entryHash)
      const local = checkEntry(entry)
      if (local !== undefined) return yield* tampered(local)
      let record = Option.getOrUndefined(yield* store.latestCheckpoint)
      if (record === undefined || record.checkpoint.size <= entry.seq) record = yield* ctx.checkpoint
      const leafHash = entryLeafHash(entry.entryHash)
      const prove = Effect.fnUntraced(function* (cp: Checkpoint) {
        if (!ctx.trusted(cp)) {
          return yield* tampered({
            seq: cp.size - 1,
            check: "checkpoint",
            expected: `a signature by a trusted key (this ledger signs with ${ctx.keyId})`,
            found: cp.signature,
            detail: `the stored checkpoint of size ${cp.size} is not signed by this ledger`
          })
        }
        const proof = yield* ctx.tree.inclusion(entry.seq, cp.size)
        if (!Merkle.verifyInclusionProof(proof, leafHash, cp.root)) {
          const path = proof.path.map((h) => Canonical.fromHex(h)!)
          const reached = Merkle.rootFromInclusion(entry.seq, cp.size, Canonical.fromHex(leafHash)!, path)
          return yield* tampered({
            seq: entry.seq,
            check: "node",
            expected: cp.root,
            found: reached === undefined ? "no root" : Canonical.toHex(reached),
            detail: `the stored Merkle nodes no longer prove entry ${entry.seq} in the checkpoint of size ${cp.size}`
          })
        }
        return proof
      })
      const proof = yield* prove(record.checkpoint)
      record = yield* ctx.refresh(record)
      let anchored: AnchoredProof | undefined
      if (record.anchor === undefined) {
        const candidates = (yield* store.checkpoints).filter(
          (r) => r.anchor !== undefined && r.anchor.status !== "dropped" && r.checkpoint.size > entry.seq
        )
        const latest = candidates[candidates.length - 1]
        if (latest !== undefined) {
          const fresh = yield* ctx.refresh(latest)
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
