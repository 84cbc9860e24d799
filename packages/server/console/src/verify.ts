/**
 * Verification in the browser: every ledger entry of a task checked with Web Crypto by `@mandate/core/WebVerify`
 * (payload hash, entry hash, inclusion proof, checkpoint signature), against the server's evidence but never its
 * verdict; anchored entries checked again against the anchored checkpoint and its receipt. The signing key's id is
 * pinned in this browser the first time it is seen, and a different key later is reported.
 */
import * as WebVerify from "@mandate/core/WebVerify"
import type { AnchorReceipt, Checkpoint, InclusionProof, LedgerEntry, TaskEvidence } from "./wire.ts"

/** An entry as it was hashed: the camelCase names of the wire's fields (see `LedgerEntryWire`). */
export const hashedEntry = (e: LedgerEntry): Record<string, unknown> => ({
  seq: e.seq,
  kind: e.kind,
  ...(e.task_id === undefined ? {} : { taskId: e.task_id }),
  ...(e.task_prev_hash === undefined ? {} : { taskPrevHash: e.task_prev_hash }),
  ...(e.step_id === undefined ? {} : { stepId: e.step_id }),
  ...(e.principal === undefined ? {} : { principal: e.principal }),
  at: e.at,
  payloadHash: e.payload_hash,
  ...("payload" in e ? { payload: e.payload } : {}),
  prevHash: e.prev_hash,
  entryHash: e.entry_hash
})

const checkpointOf = (c: Checkpoint): WebVerify.Checkpoint => ({
  size: c.size,
  root: c.root,
  timestamp: c.timestamp,
  signature: c.signature,
  keyId: c.key_id
})

const proofOf = (p: InclusionProof): WebVerify.InclusionProof => ({
  leafIndex: p.leaf_index,
  treeSize: p.tree_size,
  path: p.path
})

/** Whether an entry is anchored: proven in the anchored checkpoint, whose root the receipt carries. */
export type AnchorCheck =
  | { readonly state: "anchored"; readonly receipt: AnchorReceipt; readonly detail: string }
  | { readonly state: "awaiting"; readonly detail: string }
  | { readonly state: "failed"; readonly receipt: AnchorReceipt; readonly detail: string }

export interface EntryVerdict {
  readonly entry: LedgerEntry
  readonly report: WebVerify.EntryReport
  readonly anchor: AnchorCheck
}

export type KeyPin = "pinned now" | "same key" | "changed"

export interface Verification {
  readonly keyId: string | undefined
  readonly pin: KeyPin
  /** The key id pinned before, when it changed. */
  readonly pinnedKeyId: string | undefined
  readonly entries: ReadonlyArray<EntryVerdict>
}

const pinKey = "mandate.console.ledgerKeyId"

const pin = (keyId: string): { readonly pin: KeyPin; readonly before: string | undefined } => {
  const before = localStorage.getItem(pinKey) ?? undefined
  if (before === undefined) {
    localStorage.setItem(pinKey, keyId)
    return { pin: "pinned now", before }
  }
  return { pin: before === keyId ? "same key" : "changed", before }
}

const unverifiable = (detail: string): WebVerify.EntryReport => ({
  ok: false,
  payloadHash: undefined,
  entryHash: { ok: false, detail },
  inclusion: { ok: false, detail },
  signature: { ok: false, detail }
})

/** Checks every entry of the evidence. Never rejects: what cannot be checked fails its checks. */
export const verifyEvidence = async (evidence: TaskEvidence): Promise<Verification> => {
  const key = await WebVerify.importPublicKey(evidence.public_key)
  const pinned = key === undefined ? { pin: "changed" as const, before: undefined } : pin(key.keyId)
  const checkpoint = checkpointOf(evidence.checkpoint)
  const anchored = evidence.anchored
  const entries = await Promise.all(
    evidence.entries.map(async (entry, i): Promise<EntryVerdict> => {
      const proof = evidence.proofs[i]
      if (key === undefined || proof === undefined) {
        return {
          entry,
          report: unverifiable(key === undefined ? "the ledger's public key is not an Ed25519 key" : "no proof given"),
          anchor: { state: "awaiting", detail: "not checked" }
        }
      }
      const record = hashedEntry(entry)
      const report = await WebVerify.verifyEntry({ entry: record, proof: proofOf(proof), checkpoint, publicKey: key })
      const anchoredProof = anchored?.proofs[i]
      let anchor: AnchorCheck
      if (anchored === undefined || anchoredProof === null || anchoredProof === undefined) {
        anchor = { state: "awaiting", detail: "appended after the last anchored checkpoint" }
      } else {
        const again = await WebVerify.verifyEntry({
          entry: record,
          proof: proofOf(anchoredProof),
          checkpoint: checkpointOf(anchored.checkpoint),
          publicKey: key
        })
        const receiptMatches =
          anchored.anchor.root === anchored.checkpoint.root && anchored.anchor.size === anchored.checkpoint.size
        anchor =
          again.ok && receiptMatches
            ? {
                state: "anchored",
                receipt: anchored.anchor,
                detail: `in checkpoint ${anchored.checkpoint.size}, whose root transaction ${anchored.anchor.tx_id} carries`
              }
            : {
                state: "failed",
                receipt: anchored.anchor,
                detail: receiptMatches
                  ? "the entry is not proven in the anchored checkpoint"
                  : "the receipt does not carry the anchored checkpoint's root and size"
              }
      }
      return { entry, report, anchor }
    })
  )
  return { keyId: key?.keyId, pin: pinned.pin, pinnedKeyId: pinned.before, entries }
}

/** The checks of a report that failed, by name. */
export const failedChecks = (report: WebVerify.EntryReport): ReadonlyArray<string> =>
  [
    report.payloadHash?.ok === false ? "payload hash" : undefined,
    report.entryHash.ok ? undefined : "entry hash",
    report.inclusion.ok ? undefined : "inclusion proof",
    report.signature.ok ? undefined : "checkpoint signature"
  ].filter((c): c is string => c !== undefined)

/** A checkpoint's signature, checked in the browser. */
export const verifyCheckpointIn = async (c: Checkpoint, publicKeyPem: string): Promise<WebVerify.Check> => {
  const key = await WebVerify.importPublicKey(publicKeyPem)
  if (key === undefined) return { ok: false, detail: "the ledger's public key is not an Ed25519 key" }
  return WebVerify.verifyCheckpoint(checkpointOf(c), key)
}
