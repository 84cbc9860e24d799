import * as NodeCrypto from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { digestHashesInto } from "../../src/internal/sha256.ts"

describe("internal/sha256: digestHashesInto", () => {
  // The ledger's append path hashes Merkle leaves and nodes out of packed arrays of hashes, at any offset,
  // writing the digest into a packed array (possibly over one of its inputs)
  const nodeSha = (...parts: Array<Uint8Array>) => NodeCrypto.createHash("sha256").update(Buffer.concat(parts)).digest()
  it("is SHA-256(prefix ‖ a[32]) and SHA-256(prefix ‖ a[32] ‖ b[32]) at any offsets, output overlapping inputs", () => {
    const packed = NodeCrypto.randomBytes(32 * 40 + 7)
    for (let i = 0; i < 200; i++) {
      const aAt = (i * 13) % (packed.length - 32)
      const bAt = (i * 29 + 5) % (packed.length - 32)
      const a = Buffer.from(packed.subarray(aAt, aAt + 32))
      const b = Buffer.from(packed.subarray(bAt, bAt + 32))
      const out = new Uint8Array(64)
      digestHashesInto(0x00, packed, aAt, undefined, 0, out, i % 32)
      assert.deepStrictEqual(Buffer.from(out.subarray(i % 32, (i % 32) + 32)), nodeSha(Uint8Array.of(0), a))
      digestHashesInto(0x01, packed, aAt, packed, bAt, out, 0)
      assert.deepStrictEqual(Buffer.from(out.subarray(0, 32)), nodeSha(Uint8Array.of(1), a, b))
      // Into its own left input
      const copy = Buffer.from(packed)
      digestHashesInto(0x01, copy, aAt, copy, bAt, copy, aAt)
      assert.deepStrictEqual(copy.subarray(aAt, aAt + 32), nodeSha(Uint8Array.of(1), a, b))
    }
  })
})
