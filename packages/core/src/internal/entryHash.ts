/**
 * The one implementation of the entry hash, shared by `LedgerEntry.entryHashOf` (auditors, verification) and
 * the ledger's append path (which holds the previous hash as hex and wants the new one as hex).
 *
 * @since 0.1.0
 */
import * as Canonical from "../Canonical.ts"

/** `SHA-256(prevHash bytes ‖ UTF-8 canonical JSON of body)`; throws `NotCanonicalJson` for non-JSON bodies. */
export const hashEntryBody = (prevHash: Uint8Array, body: object): Uint8Array =>
  hashEntryText(prevHash, Canonical.encode(body))

/** The same hash from the body's canonical JSON text (the append path builds it with `Canonical.encodeWith`). */
export const hashEntryText = (prevHash: Uint8Array, canonicalBody: string): Uint8Array =>
  Canonical.sha256Concat([prevHash, canonicalBody])

// prevHash ‖ body is written here and hashed in place: hashing is synchronous, so no other caller sees it mid-use
const scratch = Buffer.allocUnsafe(64 * 1024)

/**
 * The same hash, as hex, with `prevHash` as 64 hex digits (the caller checked them): the append path's form, which
 * neither allocates the previous hash's bytes nor the digest's (a "buffer" digest costs more than the hash).
 */
export const hashEntryTextHex = (prevHash: string, canonicalBody: string): string => {
  // A UTF-16 code unit takes at most 3 UTF-8 bytes; past the scratch buffer, take the allocating path
  if (32 + canonicalBody.length * 3 > scratch.length || scratch.write(prevHash, 0, "hex") !== 32) {
    return Canonical.toHex(hashEntryText(Canonical.fromHex(prevHash)!, canonicalBody))
  }
  const n = 32 + scratch.write(canonicalBody, 32, "utf8")
  return Canonical.sha256Hex(scratch.subarray(0, n))
}
