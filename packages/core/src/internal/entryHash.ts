/**
 * The one implementation of the entry hash, shared by `LedgerEntry.entryHashOf` (auditors, verification) and
 * the ledger's checks (which already hold the previous hash as bytes).
 *
 * @since 0.1.0
 */
import * as Canonical from "../Canonical.ts"

/** `SHA-256(prevHash bytes ‖ UTF-8 canonical JSON of body)`; throws `NotCanonicalJson` for non-JSON bodies. */
export const hashEntryBody = (prevHash: Uint8Array, body: object): Uint8Array =>
  hashEntryText(prevHash, Canonical.encode(body))

/** The same hash from the body's canonical JSON text (verification splices a stored payload in with `Canonical.encodeWith`). */
export const hashEntryText = (prevHash: Uint8Array, canonicalBody: string): Uint8Array =>
  Canonical.sha256Concat([prevHash, canonicalBody])

/**
 * Writes what the entry hash covers, `prevHash bytes ‖ UTF-8 body`, into `into` at `offset` (which must have room
 * for `32 + 3 · body.length` bytes) from `prevHash` as 64 hex digits, and returns where it ends: the append path
 * hashes it in place and keeps the body's bytes (`[offset + 32, end)`).
 */
export const writeEntryPreimage = (into: Buffer, offset: number, prevHash: string, canonicalBody: string): number => {
  if (into.write(prevHash, offset, "hex") !== 32) throw new RangeError(`Not a SHA-256 hex digest: ${prevHash}`)
  return offset + 32 + into.write(canonicalBody, offset + 32, "utf8")
}
