import { assert, describe, it } from "@effect/vitest"
import {
  decodeTransaction,
  encodeTransaction,
  fromBase64,
  k12,
  MAX_INPUT_SIZE,
  type SignedTransaction,
  signingDigest,
  toBase64,
  transactionId,
  txIdFromSignedBytes,
  unsignedBytes
} from "@mandate/adapters/qubic"
import { Result, Schema } from "effect"

const key = (first: number) => Uint8Array.from({ length: 32 }, (_, i) => (i < 10 ? first + i : 0))

// The transaction of qubic/go-node-connector's marshalling test
const goTx: SignedTransaction = {
  sourcePublicKey: key(1),
  destinationPublicKey: key(11),
  amount: 100n,
  tick: 200,
  inputType: 300,
  input: Uint8Array.from({ length: 10 }, (_, i) => i + 1),
  signature: Uint8Array.from({ length: 64 }, (_, i) => (i < 10 ? 21 + i : 0))
}

describe("Qubic transaction bytes", () => {
  it("lays out source, destination, amount, tick, input type and size, input, signature (little-endian)", () => {
    const bytes = encodeTransaction(goTx)
    assert.strictEqual(bytes.length, 144 + 10)
    const view = new DataView(bytes.buffer)
    assert.deepStrictEqual(bytes.slice(0, 32), goTx.sourcePublicKey)
    assert.deepStrictEqual(bytes.slice(32, 64), goTx.destinationPublicKey)
    assert.strictEqual(view.getBigInt64(64, true), 100n)
    assert.strictEqual(view.getUint32(72, true), 200)
    assert.strictEqual(view.getUint16(76, true), 300)
    assert.strictEqual(view.getUint16(78, true), 10)
    assert.deepStrictEqual(bytes.slice(80, 90), goTx.input)
    assert.deepStrictEqual(bytes.slice(90), goTx.signature)
    assert.deepStrictEqual(unsignedBytes(goTx), bytes.slice(0, 90))
    assert.deepStrictEqual(signingDigest(goTx), k12(bytes.slice(0, 90)))
  })

  it("round-trips through the wire form", () => {
    const decoded = decodeTransaction(encodeTransaction(goTx))
    assert.isTrue(Result.isSuccess(decoded))
    assert.deepStrictEqual(Result.getOrThrow(decoded), goTx)
  })

  it("names a transaction by the K12 digest of its signed bytes, in lowercase letters", () => {
    const id = transactionId(goTx)
    assert.match(id, /^[a-z]{60}$/)
    assert.strictEqual(id, txIdFromSignedBytes(encodeTransaction(goTx)))
    assert.notStrictEqual(id, transactionId({ ...goTx, signature: new Uint8Array(64) }))
  })

  it("refuses truncated, padded and oversized transactions", () => {
    const bytes = encodeTransaction(goTx)
    const failure = (result: Result.Result<SignedTransaction, string>) =>
      Result.isFailure(result) ? result.failure : ""
    assert.match(failure(decodeTransaction(bytes.slice(0, 150))), /inputSize 10 means 154 bytes, got 150/)
    assert.match(failure(decodeTransaction(bytes.slice(0, 143))), /at least 144 bytes/)
    assert.match(failure(decodeTransaction(new Uint8Array([...bytes, 0]))), /got 155/)
    const big = { ...goTx, input: new Uint8Array(MAX_INPUT_SIZE + 1) }
    assert.throws(() => encodeTransaction(big), /at most 1024/)
    assert.throws(() => encodeTransaction({ ...goTx, amount: -1n }), /amount/)
    assert.throws(() => encodeTransaction({ ...goTx, signature: new Uint8Array(63) }), /64 bytes/)
  })

  it.prop("base64 is strict: only canonical text decodes", [Schema.String], ([text]) => {
    const bytes = new TextEncoder().encode(text)
    assert.deepStrictEqual(fromBase64(toBase64(bytes)), bytes)
    assert.isUndefined(fromBase64(`${toBase64(bytes)}*`))
  })
})
