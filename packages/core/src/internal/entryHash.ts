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
