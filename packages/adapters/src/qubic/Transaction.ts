/**
 * The Qubic transaction and its byte layout.
 *
 * `sourcePublicKey[32] ‖ destinationPublicKey[32] ‖ amount i64 LE ‖ tick u32 LE ‖ inputType u16 LE ‖
 * inputSize u16 LE ‖ input[inputSize] ‖ signature[64]` — 144 + inputSize bytes, sent base64-encoded (qubic/
 * go-node-connector `types/transaction.go`, Qubic.Net `GetSignedTransactionBytes`). The signature signs the
 * K12 digest of everything before it; the transaction id is the K12 digest of all of it.
 *
 * @since 0.1.0
 */
import { Result } from "effect"
import { k12, txIdFromSignedBytes } from "./Identity.ts"

/**
 * The largest `input` a Qubic node accepts (`MAX_INPUT_SIZE` in qubic/core).
 *
 * @category constants
 * @since 0.1.0
 */
export const MAX_INPUT_SIZE = 1024

/**
 * The largest amount of QU a transaction may move (`MAX_AMOUNT` in qubic/core: 1000 trillion).
 *
 * @category constants
 * @since 0.1.0
 */
export const MAX_AMOUNT = 1_000_000_000_000_000n

const HEADER = 32 + 32 + 8 + 4 + 2 + 2
const SIGNATURE = 64

/**
 * A transaction before signing.
 *
 * @category models
 * @since 0.1.0
 */
export interface UnsignedTransaction {
  readonly sourcePublicKey: Uint8Array
  readonly destinationPublicKey: Uint8Array
  /** Integer QU (no decimals, no fees). */
  readonly amount: bigint
  /** The target tick: the tick in which the network should include the transaction. */
  readonly tick: number
  readonly inputType: number
  readonly input: Uint8Array
}

/**
 * A signed transaction.
 *
 * @category models
 * @since 0.1.0
 */
export interface SignedTransaction extends UnsignedTransaction {
  readonly signature: Uint8Array
}

const problem = (tx: UnsignedTransaction): string | undefined => {
  if (tx.sourcePublicKey.length !== 32) return "the source public key must be 32 bytes"
  if (tx.destinationPublicKey.length !== 32) return "the destination public key must be 32 bytes"
  if (tx.amount < 0n || tx.amount > MAX_AMOUNT) return `the amount must be between 0 and ${MAX_AMOUNT}`
  if (!Number.isInteger(tx.tick) || tx.tick < 0 || tx.tick > 0xffffffff) return "the tick must be a u32"
  if (!Number.isInteger(tx.inputType) || tx.inputType < 0 || tx.inputType > 0xffff) {
    return "the input type must be a u16"
  }
  if (tx.input.length > MAX_INPUT_SIZE) return `the input must be at most ${MAX_INPUT_SIZE} bytes`
  return undefined
}

const writeUnsigned = (tx: UnsignedTransaction, out: Uint8Array): void => {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
  out.set(tx.sourcePublicKey, 0)
  out.set(tx.destinationPublicKey, 32)
  view.setBigInt64(64, tx.amount, true)
  view.setUint32(72, tx.tick, true)
  view.setUint16(76, tx.inputType, true)
  view.setUint16(78, tx.input.length, true)
  out.set(tx.input, HEADER)
}

/**
 * The bytes a signer signs (everything but the signature). Throws `RangeError` for a malformed transaction.
 *
 * @category encoding
 * @since 0.1.0
 */
export const unsignedBytes = (tx: UnsignedTransaction): Uint8Array => {
  const reason = problem(tx)
  if (reason !== undefined) throw new RangeError(reason)
  const out = new Uint8Array(HEADER + tx.input.length)
  writeUnsigned(tx, out)
  return out
}

/**
 * The K12 digest of the unsigned bytes: what SchnorrQ signs.
 *
 * @category encoding
 * @since 0.1.0
 */
export const signingDigest = (tx: UnsignedTransaction): Uint8Array => k12(unsignedBytes(tx))

/**
 * The wire bytes of a signed transaction. Throws `RangeError` for a malformed transaction.
 *
 * @category encoding
 * @since 0.1.0
 */
export const encodeTransaction = (tx: SignedTransaction): Uint8Array => {
  const reason = problem(tx) ?? (tx.signature.length === SIGNATURE ? undefined : "the signature must be 64 bytes")
  if (reason !== undefined) throw new RangeError(reason)
  const out = new Uint8Array(HEADER + tx.input.length + SIGNATURE)
  writeUnsigned(tx, out)
  out.set(tx.signature, HEADER + tx.input.length)
  return out
}

/**
 * Reads a signed transaction from wire bytes; fails with the reason when the bytes are not exactly one
 * well-formed transaction.
 *
 * @category decoding
 * @since 0.1.0
 */
export const decodeTransaction = (bytes: Uint8Array): Result.Result<SignedTransaction, string> => {
  if (bytes.length < HEADER + SIGNATURE) {
    return Result.fail(`a transaction has at least ${HEADER + SIGNATURE} bytes, got ${bytes.length}`)
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const inputSize = view.getUint16(78, true)
  if (bytes.length !== HEADER + inputSize + SIGNATURE) {
    return Result.fail(`inputSize ${inputSize} means ${HEADER + inputSize + SIGNATURE} bytes, got ${bytes.length}`)
  }
  const tx: SignedTransaction = {
    sourcePublicKey: bytes.slice(0, 32),
    destinationPublicKey: bytes.slice(32, 64),
    amount: view.getBigInt64(64, true),
    tick: view.getUint32(72, true),
    inputType: view.getUint16(76, true),
    input: bytes.slice(HEADER, HEADER + inputSize),
    signature: bytes.slice(HEADER + inputSize)
  }
  const reason = problem(tx)
  return reason === undefined ? Result.succeed(tx) : Result.fail(reason)
}

/**
 * The transaction id of a signed transaction.
 *
 * @category encoding
 * @since 0.1.0
 */
export const transactionId = (tx: SignedTransaction): string => txIdFromSignedBytes(encodeTransaction(tx))

/**
 * Standard base64 of bytes (how broadcast bodies and archive fields carry binary data).
 *
 * @category encoding
 * @since 0.1.0
 */
export const toBase64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64")

/**
 * Strict standard base64 to bytes; `undefined` when the text is not canonical base64.
 *
 * @category decoding
 * @since 0.1.0
 */
export const fromBase64 = (text: string): Uint8Array | undefined => {
  // Node's decoder skips invalid characters silently; Go's (the gateway's) refuses them, and so do we
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined
  const bytes = new Uint8Array(Buffer.from(text, "base64"))
  return toBase64(bytes) === text ? bytes : undefined
}
