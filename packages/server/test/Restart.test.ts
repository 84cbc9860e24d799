import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { assert, it } from "@effect/vitest"
import { LedgerKeys } from "@mandate/core"
import { ConfigProvider, Effect, Layer } from "effect"
import { ServerConfig } from "../src/Config.ts"
import * as Stores from "../src/Stores.ts"
import { describePostgres, dropSchemaNow, freshSchema, url } from "./utils/TestPostgres.ts"
import { call, fastRuntime, layer, tokens, waitForStatus, walletA } from "./utils/TestServer.ts"

/** The server as `npm start` wires it from this environment, on an ephemeral port, for the scope of `use`. */
const serve = <A, E>(env: Record<string, string>, use: Effect.Effect<A, E, any>) =>
  Effect.gen(function* () {
    const provider = ConfigProvider.fromEnvRecord(env)
    const config = yield* ServerConfig.parse(provider)
    const services = Stores.layerFromConfig(config, { runtime: fastRuntime }).pipe(
      Layer.provide(ConfigProvider.layer(provider))
    )
    return yield* Effect.scoped(Effect.provide(use, layer(services)))
  })

const startTask = Effect.gen(function* () {
  const started = yield* call("POST", "/task/start", {
    token: tokens.alice,
    body: { task_type: "monitoring", parameters: { wallet: walletA } }
  })
  assert.strictEqual(started.status, 200, started.text)
  const taskId: string = started.body.task_id
  yield* waitForStatus(taskId, (s) => s === "completed")
  const audit = yield* call("GET", `/audit/${taskId}`, { token: tokens.carol })
  assert.strictEqual(audit.status, 200, audit.text)
  return (audit.body.entries as ReadonlyArray<{ readonly entry_hash: string }>).map((e) => e.entry_hash)
})

const verify = (hash: string) =>
  Effect.map(call("GET", `/verify/${hash}`, { token: tokens.carol }), (reply) => {
    assert.strictEqual(reply.status, 200, `${hash}: ${reply.text}`)
    return reply.body
  })

const txStatus = (txId: string) =>
  Effect.map(call("GET", `/tx/${txId}`, { token: tokens.carol }), (reply) => {
    assert.strictEqual(reply.status, 200, `${txId}: ${reply.text}`)
    return reply.body.status as string
  })

describePostgres("the server restarted on Postgres", () => {
  it.live(
    "every earlier entry still verifies, the anchor is found and confirms, and a rotated key keeps old checkpoints valid",
    () =>
      Effect.gen(function* () {
        const dataDir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "mandate-restart-"))
        const schema = freshSchema()
        yield* Effect.addFinalizer(() =>
          dropSchemaNow(schema).pipe(
            Effect.andThen(Effect.sync(() => NodeFs.rmSync(dataDir, { recursive: true, force: true })))
          )
        )
        const env = {
          MANDATE_STORE: "postgres",
          DATABASE_URL: url,
          MANDATE_PG_SCHEMA: schema,
          MANDATE_PG_POOL_SIZE: "4",
          MANDATE_DATA_DIR: dataDir,
          MANDATE_QUBIC_TICK: "40 millis",
          MANDATE_ANCHOR: "qubic-mock"
        }

        // First run: entries, a checkpoint, an anchor (pending when published; whether it confirms before the server
        // stops depends on the machine's speed: the adapters' restart test covers a pending one under TestClock)
        const first = yield* serve(
          env,
          Effect.gen(function* () {
            const hashes = yield* startTask
            const anchored = yield* call("POST", "/ledger/anchor", { token: tokens.carol })
            assert.strictEqual(anchored.status, 200, anchored.text)
            const verified = yield* verify(hashes[0]!)
            assert.strictEqual(verified.anchor_tx_id, anchored.body.anchor.tx_id)
            return {
              hashes,
              keyId: verified.checkpoint.key_id as string,
              publicKey: verified.public_key as string,
              txId: anchored.body.anchor.tx_id as string,
              status: yield* txStatus(anchored.body.anchor.tx_id)
            }
          })
        )
        assert.include(["pending", "confirmed"], first.status)
        const keyFile = NodePath.join(dataDir, LedgerKeys.keyFileName)
        assert.strictEqual(NodeFs.statSync(keyFile).mode & 0o777, 0o600)

        // Restarted: the same key; every earlier entry verifies; the transaction is found and confirms
        yield* serve(
          env,
          Effect.gen(function* () {
            for (const hash of first.hashes) {
              const verified = yield* verify(hash)
              assert.strictEqual(verified.checkpoint.key_id, first.keyId)
              assert.strictEqual(verified.public_key, first.publicKey)
            }
            let status = yield* txStatus(first.txId)
            assert.include(first.status === "confirmed" ? ["confirmed"] : ["pending", "confirmed"], status)
            while (status === "pending") {
              yield* Effect.sleep("50 millis")
              status = yield* txStatus(first.txId)
            }
            assert.strictEqual(status, "confirmed")
            // and the ledger's receipt follows the chain
            const verified = yield* verify(first.hashes[0]!)
            assert.strictEqual(verified.anchor.status, "confirmed")
          }).pipe(Effect.timeout("60 seconds"))
        )

        // Rotated: a new key from the configuration; the older checkpoints still verify, new ones use the new key
        const rotated = NodeCrypto.generateKeyPairSync("ed25519")
        const newKeyId = LedgerKeys.make({ signingKey: rotated.privateKey }).pipe(
          Effect.map((keys) => keys.keyId),
          Effect.runSync
        )
        yield* serve(
          {
            ...env,
            MANDATE_LEDGER_KEY: rotated.privateKey.export({ type: "pkcs8", format: "pem" }).toString()
          },
          Effect.gen(function* () {
            const old = yield* verify(first.hashes[0]!)
            assert.strictEqual(old.checkpoint.key_id, first.keyId)
            assert.strictEqual(old.public_key, first.publicKey, "the key that signed it, not the current one")
            const later = yield* startTask
            const checkpoint = yield* call("GET", "/ledger/checkpoint", { token: tokens.carol })
            assert.strictEqual(checkpoint.status, 200, checkpoint.text)
            assert.strictEqual(checkpoint.body.key_id, newKeyId)
            const fresh = yield* verify(later[0]!)
            assert.strictEqual(fresh.checkpoint.key_id, newKeyId)
            for (const hash of first.hashes) yield* verify(hash)
          })
        )
      }).pipe(Effect.scoped),
    120_000
  )
})
