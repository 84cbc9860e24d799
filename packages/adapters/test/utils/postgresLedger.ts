/**
 * The Postgres ledger as the ledger tests run it: one signing key for every "process" of a test (as a deployment
 * keeps one), the ledger with its unit of work in a fresh schema (`layer`), and another process on the same schema
 * with its own pool, ledger (and sequencer loop) and unit of work (`otherProcess`).
 */
import * as NodeCrypto from "node:crypto"
import { layerLedger, layerLedgerStoreWithTamper, layerUnitOfWork } from "@mandate/adapters/postgres"
import { Anchor, Ledger, UnitOfWork } from "@mandate/core"
import { Context, Effect, Layer } from "effect"
import { TestPostgres } from "./TestPostgres.ts"

export const signingKey = NodeCrypto.generateKeyPairSync("ed25519")
  .privateKey.export({ type: "pkcs8", format: "pem" })
  .toString()

/** `Ledger`, `UnitOfWork` and the tamper-capable `LedgerStore` over a fresh schema. */
export const layer = TestPostgres.layerWith((options) =>
  Layer.mergeAll(layerLedger({ ...options, signingKey }), layerUnitOfWork).pipe(
    Layer.provideMerge(layerLedgerStoreWithTamper(options)),
    Layer.provide(Anchor.layerMemory)
  )
)

/** Another process on `schema`: its own pool, ledger and unit of work, the same key. */
export const otherProcess = (schema: string) =>
  Effect.gen(function* () {
    const client = yield* Layer.build(TestPostgres.otherClient())
    const context = yield* Layer.build(
      Layer.mergeAll(layerLedger({ schema, signingKey }), layerUnitOfWork).pipe(
        Layer.provide(Anchor.layerMemory),
        Layer.provide(Layer.succeedContext(client))
      )
    )
    return { ledger: Context.get(context, Ledger), uow: Context.get(context, UnitOfWork) }
  })
