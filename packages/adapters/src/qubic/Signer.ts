/**
 * The signer of anchor transactions: a pluggable service.
 *
 * Qubic signs with SchnorrQ over the FourQ curve (K12 digests). No well-known JavaScript crypto library
 * implements FourQ, and the Qubic team's `@qubic-lib/qubic-ts-library` is published under a licence that is
 * not OSI-approved, so Mandate does not depend on it. It ships `layerMockSigner`, a deterministic stand-in
 * for the simulated chain, and leaves the real signature to a layer the user provides.
 *
 * **Plugging in a real signer**
 *
 * Implement the two members with any SchnorrQ implementation you accept, for example:
 *
 * ```ts
 * import { Signer } from "@mandate/adapters/qubic"
 * const SeedSigner = Layer.effect(Signer, Effect.gen(function*() {
 *   const keys = yield* Effect.promise(() => helper.createIdPackage(seed)) // your library
 *   return Signer.of({
 *     publicKey: keys.publicKey,                       // 32 bytes (the FourQ point)
 *     sign: (digest) => Effect.promise(() => schnorrq.sign(subseed, keys.publicKey, digest)) // 64 bytes
 *   })
 * }))
 * ```
 *
 * and pass it to `layerRpc({ url, signer: SeedSigner })`. Keep the seed in a secret store (`Config.Redacted`).
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Redacted, Schema } from "effect"
import { identityFromPublicKey, k12, QubicSeed, seedKeys } from "./Identity.ts"
import { encodeTransaction, type SignedTransaction, signingDigest, type UnsignedTransaction } from "./Transaction.ts"

/**
 * The signer failed (its key store or library refused).
 *
 * @category errors
 * @since 0.1.0
 */
export class QubicSignerError extends Schema.TaggedError<QubicSignerError>()("QubicSignerError", {
  message: Schema.String,
  cause: Schema.optionalKey(Schema.Defect())
}) {}

/**
 * The key that anchor transactions are sent from.
 *
 * @category services
 * @since 0.1.0
 */
export class Signer extends Context.Service<
  Signer,
  {
    /** The 32-byte public key; its identity is the transaction source. */
    readonly publicKey: Uint8Array
    /** A 64-byte signature of the 32-byte K12 digest of the unsigned transaction bytes. */
    readonly sign: (digest: Uint8Array) => Effect.Effect<Uint8Array, QubicSignerError>
  }
>()("@mandate/adapters/qubic/Signer") {}

/**
 * Signs a transaction with the `Signer` in context, returning it with its signature.
 *
 * @category constructors
 * @since 0.1.0
 */
export const signTransaction = (tx: UnsignedTransaction): Effect.Effect<SignedTransaction, QubicSignerError, Signer> =>
  Effect.gen(function* () {
    const signer = yield* Signer
    const signature = yield* signer.sign(signingDigest(tx))
    if (signature.length !== 64) {
      return yield* new QubicSignerError({
        message: `a signature has 64 bytes, the signer returned ${signature.length}`
      })
    }
    const signed: SignedTransaction = { ...tx, signature }
    encodeTransaction(signed) // throws on a malformed transaction: a bug of the caller, not a signer failure
    return signed
  })

/**
 * The identity (60 uppercase letters) of a signer's public key.
 *
 * @category accessors
 * @since 0.1.0
 */
export const signerIdentity: Effect.Effect<string, never, Signer> = Signer.use((s) =>
  Effect.succeed(identityFromPublicKey(s.publicKey))
)

const MOCK_DOMAIN = new TextEncoder().encode("mandate/qubic-mock-signer/v1")

const concat = (...parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

/**
 * A deterministic MOCK signer for the simulated chain. It derives the subseed and private key from the
 * 55-letter seed exactly as Qubic does (K12), but its "public key" is a K12 digest of the private key, not
 * a FourQ point, and its "signature" is a K12 MAC, not SchnorrQ. The real network rejects both: use it
 * only with `layerMock` or the mock server.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeMockSigner = (
  seed: string | Redacted.Redacted<string>
): Effect.Effect<Signer["Service"], QubicSignerError> =>
  Effect.gen(function* () {
    const value = Redacted.isRedacted(seed) ? Redacted.value(seed) : seed
    if (!Schema.is(QubicSeed)(value)) {
      return yield* new QubicSignerError({ message: "Expected a Qubic seed: 55 lowercase letters" })
    }
    const { privateKey } = seedKeys(value)
    const publicKey = k12(concat(MOCK_DOMAIN, privateKey))
    return Signer.of({
      publicKey,
      sign: (digest) => Effect.sync(() => k12(concat(MOCK_DOMAIN, privateKey, digest), 64))
    })
  })

/**
 * `makeMockSigner` as a layer.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerMockSigner = (seed: string | Redacted.Redacted<string>): Layer.Layer<Signer, QubicSignerError> =>
  Layer.effect(Signer, makeMockSigner(seed))
