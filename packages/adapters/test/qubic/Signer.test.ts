import { assert, describe, it } from "@effect/vitest"
import { identityFromPublicKey, layerMockSigner, makeMockSigner, Signer, signerIdentity } from "@mandate/adapters/qubic"
import { Effect, Redacted } from "effect"
import { seedA, seedB } from "../utils/qubic.ts"

describe("mock signer", () => {
  it.effect("is deterministic per seed and signs 64 bytes that depend on the digest", () =>
    Effect.gen(function* () {
      const a = yield* makeMockSigner(seedA)
      const again = yield* makeMockSigner(Redacted.make(seedA))
      const b = yield* makeMockSigner(seedB)
      assert.deepStrictEqual(a.publicKey, again.publicKey)
      assert.notDeepEqual(a.publicKey, b.publicKey)
      const digest = new Uint8Array(32).fill(7)
      const signature = yield* a.sign(digest)
      assert.strictEqual(signature.length, 64)
      assert.deepStrictEqual(yield* again.sign(digest), signature)
      assert.notDeepEqual(yield* a.sign(new Uint8Array(32)), signature)
      assert.notDeepEqual(yield* b.sign(digest), signature)
    })
  )

  it.effect("refuses a seed that is not 55 lowercase letters", () =>
    Effect.gen(function* () {
      for (const seed of ["short", "A".repeat(55), `${"a".repeat(54)}1`]) {
        const error = yield* Effect.flip(makeMockSigner(seed))
        assert.strictEqual(error._tag, "QubicSignerError")
      }
    })
  )

  it.effect("provides the Signer service and its identity", () =>
    Effect.gen(function* () {
      const signer = yield* Signer
      assert.strictEqual(yield* signerIdentity, identityFromPublicKey(signer.publicKey))
    }).pipe(Effect.provide(layerMockSigner(seedA)))
  )
})
