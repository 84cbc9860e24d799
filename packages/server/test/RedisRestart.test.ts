import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { assert, it } from "@effect/vitest"
import { LedgerKeys } from "@mandate/core"
import { ConfigProvider, Effect, Layer } from "effect"
import { ServerConfig } from "../src/Config.ts"
import * as Stores from "../src/Stores.ts"
import { deleteKeysNow, describeRedis, freshPrefix, url } from "./utils/TestRedis.ts"
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

interface Trail {
  readonly taskId: string
  readonly hashes: ReadonlyArray<string>
}

const trailOf = (taskId: string) =>
  Effect.gen(function* () {
    const audit = yield* call("GET", `/audit/${taskId}`, { token: tokens.carol })
    assert.strictEqual(audit.status, 200, audit.text)
    return (audit.body.entries as ReadonlyArray<{ readonly entry_hash: string }>).map((e) => e.entry_hash)
  })

const runTask = Effect.gen(function* () {
  const started = yield* call("POST", "/task/start", {
    token: tokens.alice,
    body: { task_type: "monitoring", parameters: { wallet: walletA } }
  })
  assert.strictEqual(started.status, 200, started.text)
  const taskId: string = started.body.task_id
  yield* waitForStatus(taskId, (s) => s === "completed")
  return { taskId, hashes: yield* trailOf(taskId) } satisfies Trail
})

const verify = (hash: string) =>
  Effect.map(call("GET", `/verify/${hash}`, { token: tokens.carol }), (reply) => {
    assert.strictEqual(reply.status, 200, `${hash}: ${reply.text}`)
    return reply.body
  })

describeRedis("the server restarted on Redis", () => {
  it.live(
    "every earlier audit trail is there, every entry verifies, receipts are found, and the chain goes on",
    () =>
      Effect.gen(function* () {
        const dataDir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "mandate-redis-restart-"))
        const prefix = freshPrefix()
        yield* Effect.addFinalizer(() =>
          deleteKeysNow(prefix).pipe(
            Effect.andThen(Effect.sync(() => NodeFs.rmSync(dataDir, { recursive: true, force: true })))
          )
        )
        const env = {
          MANDATE_STORE: "redis",
          REDIS_URL: url,
          MANDATE_REDIS_PREFIX: prefix,
          MANDATE_REDIS_RESERVED_CONNECTIONS: "4",
          MANDATE_DATA_DIR: dataDir,
          MANDATE_QUBIC_TICK: "40 millis",
          MANDATE_ANCHOR: "qubic-mock"
        }

        const first = yield* serve(
          env,
          Effect.gen(function* () {
            // /ready says every store is on Redis and persists
            const ready = yield* call("GET", "/ready")
            assert.strictEqual(ready.status, 200, ready.text)
            for (const name of ["task_store", "queue", "agents", "ledger", "policy_store"]) {
              const check = ready.body.checks.find((c: { name: string }) => c.name === name)
              assert.deepInclude(check, { ok: true, backend: "redis", persistent: true }, name)
            }
            const trails: Array<Trail> = []
            for (let i = 0; i < 3; i++) trails.push(yield* runTask)
            const anchored = yield* call("POST", "/ledger/anchor", { token: tokens.carol })
            assert.strictEqual(anchored.status, 200, anchored.text)
            const verified = yield* verify(trails[0]!.hashes[0]!)
            assert.strictEqual(verified.anchor_tx_id, anchored.body.anchor.tx_id)
            const size = (yield* call("GET", "/ledger", { token: tokens.carol })).body.size as number
            return {
              trails,
              size,
              keyId: verified.checkpoint.key_id as string,
              txId: anchored.body.anchor.tx_id as string
            }
          })
        )
        assert.isTrue(first.trails.every((t) => t.hashes.length > 0))
        assert.isTrue(NodeFs.existsSync(NodePath.join(dataDir, LedgerKeys.keyFileName)))

        yield* serve(
          env,
          Effect.gen(function* () {
            // every earlier trail, entry for entry
            for (const trail of first.trails) {
              assert.deepStrictEqual(yield* trailOf(trail.taskId), trail.hashes)
              const task = yield* call("GET", `/task/${trail.taskId}`, { token: tokens.alice })
              assert.strictEqual(task.status, 200, task.text)
            }
            // every entry verifies against the same key, with the anchor receipt found
            for (const trail of first.trails) {
              for (const hash of trail.hashes) {
                const verified = yield* verify(hash)
                assert.strictEqual(verified.checkpoint.key_id, first.keyId)
              }
            }
            const tx = yield* call("GET", `/tx/${first.txId}`, { token: tokens.carol })
            assert.strictEqual(tx.status, 200, tx.text)
            const receipt = (yield* verify(first.trails[0]!.hashes[0]!)).anchor_tx_id
            assert.strictEqual(receipt, first.txId)
            // the chain (kept beside the store) goes on ticking: the transaction confirms, and the ledger's receipt
            // follows it (waiting on the chain's progress, not on a deadline)
            let status = tx.body.status as string
            while (status === "pending") {
              yield* Effect.sleep("50 millis")
              status = (yield* call("GET", `/tx/${first.txId}`, { token: tokens.carol })).body.status
            }
            assert.strictEqual(status, "confirmed")
            assert.strictEqual((yield* verify(first.trails[0]!.hashes[0]!)).anchor.status, "confirmed")
            // the chain goes on from where it stopped: a new task's entries come after, and the old tree is a
            // prefix of the new one
            const later = yield* runTask
            const checkpoint = yield* call("GET", "/ledger/checkpoint", { token: tokens.carol })
            assert.strictEqual(checkpoint.status, 200, checkpoint.text)
            assert.isAbove(checkpoint.body.size, first.size)
            const fresh = yield* verify(later.hashes[0]!)
            assert.isAtLeast(fresh.entry.seq, first.size)
            const consistency = yield* call("GET", `/ledger/consistency?from=${first.size}`, { token: tokens.carol })
            assert.strictEqual(consistency.status, 200, consistency.text)
          })
        )
      }).pipe(Effect.scoped),
    120_000
  )
})
