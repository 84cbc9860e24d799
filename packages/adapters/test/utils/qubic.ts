import {
  encodeTransaction,
  identityFromPublicKey,
  makeMockSigner,
  Signer,
  signTransaction,
  toBase64,
  txIdFromSignedBytes
} from "@mandate/adapters/qubic"
import { Effect } from "effect"

/** Seeds of test identities (55 lowercase letters). */
export const seedA = "a".repeat(55)
export const seedB = "b".repeat(55)

/** A mock signer, built synchronously for test setup. */
export const mockSigner = (seed: string): Signer["Service"] => Effect.runSync(makeMockSigner(seed))

/** A signed transaction from `signer`, ready to broadcast. */
export const signedTx = (
  signer: Signer["Service"],
  options: {
    readonly tick: number
    readonly amount?: bigint
    readonly input?: Uint8Array
    readonly to?: Signer["Service"]
    readonly inputType?: number
  }
) =>
  Effect.gen(function* () {
    const tx = yield* signTransaction({
      sourcePublicKey: signer.publicKey,
      destinationPublicKey: (options.to ?? signer).publicKey,
      amount: options.amount ?? 0n,
      tick: options.tick,
      inputType: options.inputType ?? 0,
      input: options.input ?? new Uint8Array(0)
    }).pipe(Effect.provideService(Signer, signer))
    const bytes = encodeTransaction(tx)
    return {
      tx,
      bytes,
      encoded: toBase64(bytes),
      txId: txIdFromSignedBytes(bytes),
      source: identityFromPublicKey(signer.publicKey)
    }
  })
