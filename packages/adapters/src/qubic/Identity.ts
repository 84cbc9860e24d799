/**
 * Qubic identities and transaction ids, in the network's real format.
 *
 * An identity is a 32-byte public key written as 60 uppercase letters: the key as four little-endian
 * 64-bit limbs, each in 14 base-26 digits (least significant first), then a 4-letter checksum made from the
 * first 3 bytes of the key's KangarooTwelve (K12) digest (`& 0x3FFFF`, base 26). A transaction id is the same
 * encoding in lowercase letters, applied to the K12 digest of the signed transaction bytes (see
 * `Transaction.ts`). This follows qubic/go-node-connector `types/identity.go` and Qubic.Net; the tests check
 * known answers from both.
 *
 * @since 0.1.0
 */
import { kt128 } from "@noble/hashes/sha3-addons.js"
import { Option, Schema } from "effect"

/**
 * KangarooTwelve (the draft-10 K12 that Qubic calls `KangarooTwelve`, empty customization), `length` bytes.
 *
 * @category hashing
 * @since 0.1.0
 */
export const k12 = (data: Uint8Array, length = 32): Uint8Array => kt128(data, { dkLen: length })

const LIMB_LETTERS = 14
const BODY_LETTERS = 4 * LIMB_LETTERS
const IDENTITY_LENGTH = BODY_LETTERS + 4
const TWO_64 = 1n << 64n

const encode = (bytes: Uint8Array, lowercase: boolean): string => {
  if (bytes.length !== 32) throw new RangeError(`Expected 32 bytes, got ${bytes.length}`)
  const base = lowercase ? 97 : 65
  const view = new DataView(bytes.buffer, bytes.byteOffset, 32)
  let out = ""
  for (let limb = 0; limb < 4; limb++) {
    let value = view.getBigUint64(limb * 8, true)
    for (let i = 0; i < LIMB_LETTERS; i++) {
      out += String.fromCharCode(base + Number(value % 26n))
      value /= 26n
    }
  }
  const digest = k12(bytes)
  let checksum = (digest[0]! | (digest[1]! << 8) | (digest[2]! << 16)) & 0x3ffff
  for (let i = 0; i < 4; i++) {
    out += String.fromCharCode(base + (checksum % 26))
    checksum = Math.floor(checksum / 26)
  }
  return out
}

/**
 * The 60-letter identity of a 32-byte public key (uppercase), or, with `lowercase`, the 60-letter form
 * Qubic uses for digests such as transaction ids.
 *
 * @category encoding
 * @since 0.1.0
 */
export const identityFromPublicKey = (publicKey: Uint8Array, options?: { readonly lowercase?: boolean }): string =>
  encode(publicKey, options?.lowercase ?? false)

/**
 * Why a string is not a valid identity (or transaction id, with `lowercase`), or `undefined` if it is.
 *
 * @category validation
 * @since 0.1.0
 */
export const identityProblem = (text: string, options?: { readonly lowercase?: boolean }): string | undefined => {
  const lowercase = options?.lowercase ?? false
  const what = lowercase ? "transaction id" : "identity"
  if (text.length !== IDENTITY_LENGTH) return `a ${what} has ${IDENTITY_LENGTH} letters, got ${text.length}`
  if (!(lowercase ? /^[a-z]{60}$/ : /^[A-Z]{60}$/).test(text)) {
    return `a ${what} consists of ${lowercase ? "lowercase" : "uppercase"} letters A-Z only`
  }
  const publicKey = decodeBody(text, lowercase)
  if (publicKey === undefined) return `the ${what} does not encode 32 bytes (a 14-letter group exceeds 64 bits)`
  if (encode(publicKey, lowercase) !== text) return `the ${what}'s checksum does not match`
  return undefined
}

/**
 * Whether a string is a valid identity (checksum included).
 *
 * @category validation
 * @since 0.1.0
 */
export const isIdentity = (text: string): boolean => identityProblem(text) === undefined

/**
 * Whether a string is a valid transaction id (60 lowercase letters, checksum included).
 *
 * @category validation
 * @since 0.1.0
 */
export const isTxId = (text: string): boolean => identityProblem(text, { lowercase: true }) === undefined

const decodeBody = (text: string, lowercase: boolean): Uint8Array | undefined => {
  const base = lowercase ? 97 : 65
  const out = new Uint8Array(32)
  const view = new DataView(out.buffer)
  for (let limb = 0; limb < 4; limb++) {
    let value = 0n
    for (let i = LIMB_LETTERS - 1; i >= 0; i--) {
      value = value * 26n + BigInt(text.charCodeAt(limb * LIMB_LETTERS + i) - base)
    }
    // 26^14 > 2^64: a group can name a value no limb holds; such a string is not an identity
    if (value >= TWO_64) return undefined
    view.setBigUint64(limb * 8, value, true)
  }
  return out
}

/**
 * The public key of a valid identity (uppercase) or the digest of a valid transaction id (lowercase);
 * `None` when the checksum or format is wrong.
 *
 * @category decoding
 * @since 0.1.0
 */
export const publicKeyFromIdentity = (text: string): Option.Option<Uint8Array> => {
  const lowercase = /^[a-z]/.test(text)
  if (identityProblem(text, { lowercase }) !== undefined) return Option.none()
  return Option.fromNullishOr(decodeBody(text, lowercase))
}

/**
 * The transaction id of signed transaction bytes: the K12 digest of the bytes, as 60 lowercase letters.
 *
 * @category encoding
 * @since 0.1.0
 */
export const txIdFromSignedBytes = (signed: Uint8Array): string => encode(k12(signed), true)

/**
 * A valid Qubic identity: 60 uppercase letters with a matching checksum.
 *
 * @category models
 * @since 0.1.0
 */
export const QubicIdentity = Schema.String.check(
  Schema.makeFilter((s: string) => identityProblem(s) ?? true, {
    description: "a Qubic identity (60 uppercase letters with a K12 checksum)"
  })
).pipe(Schema.brand("QubicIdentity"))
export type QubicIdentity = typeof QubicIdentity.Type

/**
 * A valid Qubic transaction id: 60 lowercase letters with a matching checksum.
 *
 * @category models
 * @since 0.1.0
 */
export const QubicTxId = Schema.String.check(
  Schema.makeFilter((s: string) => identityProblem(s, { lowercase: true }) ?? true, {
    description: "a Qubic transaction id (60 lowercase letters with a K12 checksum)"
  })
).pipe(Schema.brand("QubicTxId"))
export type QubicTxId = typeof QubicTxId.Type

/**
 * A Qubic seed: 55 lowercase letters. It is the private secret of an identity.
 *
 * @category models
 * @since 0.1.0
 */
export const QubicSeed = Schema.String.check(
  Schema.isPattern(/^[a-z]{55}$/, { message: "Expected a Qubic seed: 55 lowercase letters" })
)

/**
 * The subseed and private key of a seed, as Qubic derives them: subseed = K12(seed letters as 0..25),
 * private key = K12(subseed). The public key needs FourQ, which lives in a real signer.
 *
 * @category encoding
 * @since 0.1.0
 */
export const seedKeys = (seed: string): { readonly subseed: Uint8Array; readonly privateKey: Uint8Array } => {
  const letters = Uint8Array.from(seed, (c) => c.charCodeAt(0) - 97)
  const subseed = k12(letters)
  return { subseed, privateKey: k12(subseed) }
}
