import * as NodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import * as Qubic from "@mandate/adapters/qubic"
import { Anchor, Canonical } from "@mandate/core"
import { Effect, Layer, Redacted } from "effect"
import * as Stores from "../src/Stores.ts"
import { signatures } from "./fixtures/countingSigner.ts"

const seed = Redacted.make("c".repeat(55))

// The mock network served over HTTP, as a gateway for qubic-rpc
const gateway = Qubic.layerMockServer().pipe(Layer.provideMerge(Qubic.layerChain({ tickDuration: "40 millis" })))

describe("qubic-rpc: seed and signer from the configuration", () => {
  it.live("signs with the module MANDATE_QUBIC_SIGNER names, from the configured seed's identity", () =>
    Effect.gen(function* () {
      const url = yield* Qubic.mockServerUrl
      const chain = yield* Qubic.Chain
      const before = signatures.count
      const receipt = yield* Effect.provide(
        Anchor.use((anchor) => anchor.publish(Canonical.sha256Hex("signed by a plugged-in signer"), 1)),
        Stores.layerAnchor("qubic-rpc", {
          rpcUrl: url,
          seed,
          signer: NodePath.join(import.meta.dirname, "fixtures/countingSigner.ts")
        })
      )
      assert.strictEqual(signatures.count, before + 1)
      const identity = Qubic.identityFromPublicKey((yield* Qubic.makeMockSigner(Redacted.value(seed))).publicKey)
      const pending = yield* chain.pending(identity)
      assert.strictEqual(pending._tag === "Some" && pending.value, receipt.txId)
    }).pipe(Effect.provide(gateway))
  )

  it.effect("refuses to start without a seed, or with a signer module that makes no Signer layer", () =>
    Effect.gen(function* () {
      const publish = Anchor.use((anchor) => anchor.publish(Canonical.sha256Hex("never"), 1))
      const noSeed = yield* Effect.flip(
        Effect.provide(publish, Stores.layerAnchor("qubic-rpc", { rpcUrl: "http://127.0.0.1:9" }))
      )
      assert.include(String((noSeed as { message?: unknown }).message), "MANDATE_QUBIC_SEED")
      const notASigner = yield* Effect.flip(
        Effect.provide(
          publish,
          Stores.layerAnchor("qubic-rpc", {
            rpcUrl: "http://127.0.0.1:9",
            seed,
            signer: NodePath.join(import.meta.dirname, "utils/TestServer.ts")
          })
        )
      )
      assert.include(String((notASigner as { message?: unknown }).message), "no default export")
    })
  )
})
