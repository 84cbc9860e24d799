/**
 * Checks ledger evidence with nothing but Web Crypto (`globalThis.crypto.subtle`): an entry's payload hash and
 * entry hash, its Merkle leaf and inclusion proof against a checkpoint's root, and the checkpoint's Ed25519
 * signature and key id. It imports nothing, so a browser can run it as it is (the console does, to put a badge
 * on every ledger entry that the browser computed itself); Node ≥ 20, Deno and Bun run it too.
 *
 * The bytes are those of `Ledger` (see there): RFC 8785 canonical JSON, `entryHash = SHA-256(prevHash bytes ‖
 * canonical JSON of the entry without entryHash)`, `leaf = SHA-256(0x00 ‖ entryHash bytes)`, interior nodes
 * `SHA-256(0x01 ‖ left ‖ right)`, RFC 9162 §2.1.3.2 inclusion verification, and the checkpoint signature over the
 * canonical JSON of `{ keyId, root, size, timestamp }`. `Canonical` and `Merkle` hash synchronously with
 * `node:crypto`, which a browser lacks; this module re-states their two small algorithms over the asynchronous
 * Web Crypto API, and the core tests hold both to the same bytes on generated data.
 *
 * Every function answers (never throws) for any input: evidence is hostile until checked.
 *
 * @since 0.1.0
 */

/**
 * One check: whether it passed, and what was compared (or why it could not be).
 *
 * @category models
 * @since 0.1.0
 */
export interface Check {
  readonly ok: boolean
  readonly detail: string
}

/**
 * An inclusion proof as `Merkle.InclusionProof` (hex hashes).
 *
 * @category models
 * @since 0.1.0
 */
export interface InclusionProof {
  readonly leafIndex: number
  readonly treeSize: number
  readonly path: ReadonlyArray<string>
}

/**
 * A signed checkpoint as `Checkpoint`.
 *
 * @category models
 * @since 0.1.0
 */
export interface Checkpoint {
  readonly size: number
  readonly root: string
  readonly timestamp: number
  readonly signature: string
  readonly keyId: string
}

/**
 * An imported Ed25519 public key and its key id (SHA-256 hex of the raw 32 bytes).
 *
 * @category models
 * @since 0.1.0
 */
export interface PublicKey {
  readonly key: unknown
  readonly keyId: string
}

/**
 * The checks of one entry: payload hash (or `undefined` when the payload is not stored), entry hash, inclusion in
 * the checkpoint, and the checkpoint's signature. `ok` when every check passed.
 *
 * @category models
 * @since 0.1.0
 */
export interface EntryReport {
  readonly ok: boolean
  readonly payloadHash: Check | undefined
  readonly entryHash: Check
  readonly inclusion: Check
  readonly signature: Check
}

// ---- canonical JSON (RFC 8785) ----------------------------------------------------------------------------

class NotJson extends Error {}

const isPlainObject = (value: object): boolean => {
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

const write = (value: unknown): string => {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value)
    case "boolean":
      return value ? "true" : "false"
    case "number":
      if (!Number.isFinite(value)) throw new NotJson(`${value} is not a JSON number`)
      // ECMAScript Number::toString, as RFC 8785 §3.2.2.3 requires
      return JSON.stringify(value)
    case "object": {
      if (value === null) return "null"
      if (Array.isArray(value)) return `[${value.map(write).join(",")}]`
      if (!isPlainObject(value)) throw new NotJson("not plain JSON data")
      // The default sort compares UTF-16 code units (RFC 8785 §3.2.3)
      const keys = Object.keys(value).sort()
      return `{${keys.map((key) => `${JSON.stringify(key)}:${write((value as Record<string, unknown>)[key])}`).join(",")}}`
    }
    default:
      throw new NotJson(`${typeof value} is not a JSON value`)
  }
}

/**
 * The RFC 8785 canonical JSON of a value, as `Canonical.encode` of a stored value gives it; `undefined` when the
 * value has no JSON form.
 *
 * @category encoding
 * @since 0.1.0
 */
export const canonicalJson = (value: unknown): string | undefined => {
  try {
    return write(value)
  } catch {
    // NotJson, or a value nested too deep for the stack
    return undefined
  }
}

// ---- bytes ------------------------------------------------------------------------------------------------

const utf8 = new TextEncoder()

const subtle = () => globalThis.crypto.subtle

const toHex = (bytes: Uint8Array): string => {
  let out = ""
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0")
  return out
}

const fromHex32 = (hex: unknown): Uint8Array | undefined => {
  if (typeof hex !== "string" || !/^[0-9a-f]{64}$/.test(hex)) return undefined
  const bytes = new Uint8Array(32)
  for (let i = 0; i < 32; i++) bytes[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16)
  return bytes
}

const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

const digest = async (data: Uint8Array): Promise<Uint8Array> =>
  new Uint8Array(await subtle().digest("SHA-256", data as Uint8Array<ArrayBuffer>))

/**
 * SHA-256 (hex) of a UTF-8 string or of bytes.
 *
 * @category hashing
 * @since 0.1.0
 */
export const sha256Hex = async (data: string | Uint8Array): Promise<string> =>
  toHex(await digest(typeof data === "string" ? utf8.encode(data) : data))

const base64Decode = (text: string): Uint8Array | undefined => {
  try {
    const binary = atob(text)
    const bytes = new Uint8Array(binary.length)
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
    // Only the canonical encoding of the bytes counts (as `verifyCheckpointSignature` requires)
    let again = ""
    for (const byte of bytes) again += String.fromCharCode(byte)
    return btoa(again) === text ? bytes : undefined
  } catch {
    return undefined
  }
}

// ---- entries ----------------------------------------------------------------------------------------------

/**
 * The entry hash of a stored entry record (camelCase fields, as `LedgerEntry`), whatever its fields hold:
 * `SHA-256(prevHash bytes ‖ canonical JSON of the record without entryHash)`. `undefined` when `prevHash` is
 * not a hex digest or a field has no JSON form.
 *
 * @category hashing
 * @since 0.1.0
 */
export const entryHash = async (record: Readonly<Record<string, unknown>>): Promise<string | undefined> => {
  const { entryHash: _ignored, ...body } = record
  const prev = fromHex32(body.prevHash)
  const text = canonicalJson(body)
  if (prev === undefined || text === undefined) return undefined
  return toHex(await digest(concat([prev, utf8.encode(text)])))
}

/**
 * The Merkle leaf hash of an entry hash: `SHA-256(0x00 ‖ entryHash bytes)`.
 *
 * @category hashing
 * @since 0.1.0
 */
export const leafHash = async (entryHashHex: string): Promise<string | undefined> => {
  const bytes = fromHex32(entryHashHex)
  return bytes === undefined ? undefined : toHex(await digest(concat([Uint8Array.of(0), bytes])))
}

/**
 * The root an inclusion proof leads to from a leaf hash (RFC 9162 §2.1.3.2, as `Merkle.rootFromInclusion`), or
 * `undefined` when it cannot be a proof of leaf `leafIndex` in a tree of `treeSize` leaves.
 *
 * @category verification
 * @since 0.1.0
 */
export const rootFromInclusion = async (proof: InclusionProof, leafHex: string): Promise<string | undefined> => {
  const { leafIndex: index, treeSize: size } = proof
  const isSize = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0
  if (!isSize(index) || !isSize(size) || index >= size || !Array.isArray(proof.path)) return undefined
  let r = fromHex32(leafHex)
  if (r === undefined) return undefined
  const node = Uint8Array.of(1)
  let fn = index
  let sn = size - 1
  for (const hex of proof.path) {
    const p = fromHex32(hex)
    if (sn === 0 || p === undefined) return undefined
    if (fn % 2 === 1 || fn === sn) {
      r = await digest(concat([node, p, r]))
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn /= 2
          sn = Math.floor(sn / 2)
        }
      }
    } else {
      r = await digest(concat([node, r, p]))
    }
    fn = Math.floor(fn / 2)
    sn = Math.floor(sn / 2)
  }
  return sn === 0 ? toHex(r) : undefined
}

// ---- checkpoints ------------------------------------------------------------------------------------------

/**
 * Imports an Ed25519 public key from SPKI PEM (as `Ledger.publicKey` exposes it); `undefined` if it is not one.
 *
 * @category signing
 * @since 0.1.0
 */
export const importPublicKey = async (pem: string): Promise<PublicKey | undefined> => {
  try {
    const body = pem
      .replace(/-----BEGIN PUBLIC KEY-----/, "")
      .replace(/-----END PUBLIC KEY-----/, "")
      .replace(/\s+/g, "")
    const der = base64Decode(body)
    if (der === undefined) return undefined
    const key = await subtle().importKey("spki", der as Uint8Array<ArrayBuffer>, { name: "Ed25519" }, true, ["verify"])
    const raw = new Uint8Array(await subtle().exportKey("raw", key))
    return { key, keyId: toHex(await digest(raw)) }
  } catch {
    return undefined
  }
}

/**
 * Checks a checkpoint's Ed25519 signature over the canonical JSON of `{ keyId, root, size, timestamp }`, and that
 * it names this key.
 *
 * @category signing
 * @since 0.1.0
 */
export const verifyCheckpoint = async (checkpoint: Checkpoint, publicKey: PublicKey): Promise<Check> => {
  if (checkpoint.keyId !== publicKey.keyId) {
    return {
      ok: false,
      detail: `signed by key ${String(checkpoint.keyId).slice(0, 12)}…, not ${publicKey.keyId.slice(0, 12)}…`
    }
  }
  const signature = typeof checkpoint.signature === "string" ? base64Decode(checkpoint.signature) : undefined
  const message = canonicalJson({
    keyId: checkpoint.keyId,
    root: checkpoint.root,
    size: checkpoint.size,
    timestamp: checkpoint.timestamp
  })
  if (signature === undefined || message === undefined) return { ok: false, detail: "malformed signature" }
  try {
    const valid = await subtle().verify(
      { name: "Ed25519" },
      publicKey.key as Parameters<ReturnType<typeof subtle>["verify"]>[1],
      signature as Uint8Array<ArrayBuffer>,
      utf8.encode(message)
    )
    return valid
      ? {
          ok: true,
          detail: `Ed25519 signature of checkpoint ${checkpoint.size} by key ${publicKey.keyId.slice(0, 12)}…`
        }
      : { ok: false, detail: `the signature of checkpoint ${checkpoint.size} does not verify` }
  } catch {
    return { ok: false, detail: "the signature could not be checked" }
  }
}

/**
 * Every check of one entry: its payload against `payloadHash` (when stored), its fields against `entryHash`,
 * its leaf through `proof` to the checkpoint's root, and the checkpoint's signature.
 *
 * @category verification
 * @since 0.1.0
 */
export const verifyEntry = async (evidence: {
  readonly entry: Readonly<Record<string, unknown>>
  readonly proof: InclusionProof
  readonly checkpoint: Checkpoint
  readonly publicKey: PublicKey
}): Promise<EntryReport> => {
  const { checkpoint, entry, proof, publicKey } = evidence
  let payloadHash: Check | undefined
  if ("payload" in entry) {
    const text = canonicalJson(entry.payload)
    const computed = text === undefined ? undefined : await sha256Hex(text)
    payloadHash =
      computed !== undefined && computed === entry.payloadHash
        ? { ok: true, detail: `payload hashes to ${computed.slice(0, 12)}…` }
        : {
            ok: false,
            detail: `payload hashes to ${computed?.slice(0, 12) ?? "nothing"}…, entry says ${String(entry.payloadHash).slice(0, 12)}…`
          }
  }
  const computedEntry = await entryHash(entry)
  const entryCheck: Check =
    computedEntry !== undefined && computedEntry === entry.entryHash
      ? { ok: true, detail: `fields hash to ${computedEntry.slice(0, 12)}…` }
      : {
          ok: false,
          detail: `fields hash to ${computedEntry?.slice(0, 12) ?? "nothing"}…, entry says ${String(entry.entryHash).slice(0, 12)}…`
        }
  // The leaf is the entry hash the tree committed to: computed from the fields, so a changed field cannot hide
  // behind an unchanged entryHash
  const leaf = computedEntry === undefined ? undefined : await leafHash(computedEntry)
  const root = leaf === undefined ? undefined : await rootFromInclusion(proof, leaf)
  const inclusion: Check =
    root !== undefined &&
    proof.leafIndex === entry.seq &&
    proof.treeSize === checkpoint.size &&
    root === checkpoint.root
      ? { ok: true, detail: `leaf ${proof.leafIndex} of ${checkpoint.size} leads to the checkpoint's root` }
      : { ok: false, detail: `the proof does not lead from this entry to the root of checkpoint ${checkpoint.size}` }
  const signature = await verifyCheckpoint(checkpoint, publicKey)
  return {
    ok: (payloadHash?.ok ?? true) && entryCheck.ok && inclusion.ok && signature.ok,
    payloadHash,
    entryHash: entryCheck,
    inclusion,
    signature
  }
}
