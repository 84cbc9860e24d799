import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Chain, layerChain, layerMock, QubicApiError, StateFile } from "@mandate/adapters/qubic"
import { Anchor, type AnchorReceipt, Canonical } from "@mandate/core"
import { Context, Effect, Fiber, Layer, Option } from "effect"
import { TestClock } from "effect/testing"
import { mockSigner, seedA, signedTx } from "../utils/qubic.ts"

const tempDirectory = Effect.acquireRelease(
  Effect.sync(() => NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "mandate-qubic-state-"))),
  (directory) => Effect.sync(() => NodeFs.rmSync(directory, { recursive: true, force: true }))
)

// Runs `self` while TestClock moves forward a second at a time
const drive = <A, E, R>(self: Effect.Effect<A, E, R>, limit = 600) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(self)
    for (let i = 0; fiber.pollUnsafe() === undefined; i++) {
      if (i > limit) return yield* Effect.die(new Error("still running"))
      yield* TestClock.adjust(1000)
    }
    return yield* Fiber.join(fiber)
  })

// One "process": the layer built in a scope of its own, closed when `use` is done (a clean shutdown)
const run = <I, E, A, E2>(layer: Layer.Layer<I, E>, use: (context: Context.Context<I>) => Effect.Effect<A, E2>) =>
  Effect.scoped(Effect.flatMap(Layer.build(layer), use))

describe("the Qubic mock across restarts", () => {
  it.effect("the network keeps its ticks, pending and archived transactions, and resumes where it stopped", () =>
    Effect.gen(function* () {
      const directory = yield* tempDirectory
      const stateFile = NodePath.join(directory, "network.json")
      const network = layerChain({ stateFile })
      const signer = mockSigner(seedA)

      const first = yield* run(network, (context) =>
        Effect.gen(function* () {
          const chain = Context.get(context, Chain)
          const start = (yield* chain.tickInfo).tick
          const archived = yield* signedTx(signer, { tick: start + 2, input: Uint8Array.of(1) })
          yield* chain.broadcastTransaction(archived.encoded)
          yield* TestClock.adjust(10_000)
          assert.strictEqual((yield* chain.transactionByHash(archived.txId)).tickNumber, start + 2)
          // A transaction still pending when the process stops
          const now = (yield* chain.tickInfo).tick
          const pending = yield* signedTx(signer, { tick: now + 5, input: Uint8Array.of(2) })
          yield* chain.broadcastTransaction(pending.encoded)
          assert.deepStrictEqual(yield* chain.pending(pending.source), Option.some(pending.txId))
          return { archived, pending, tick: now }
        })
      )
      assert.strictEqual(NodeFs.statSync(stateFile).mode & 0o777, 0o600)
      assert.isFalse(NodeFs.existsSync(`${stateFile}.lock`), "the lock is released at shutdown")

      yield* run(network, (context) =>
        Effect.gen(function* () {
          const chain = Context.get(context, Chain)
          assert.strictEqual((yield* chain.tickInfo).tick, first.tick, "resumes at the saved tick")
          assert.strictEqual((yield* chain.transactionByHash(first.archived.txId)).tickNumber, first.archived.tx.tick)
          assert.deepStrictEqual(yield* chain.pending(first.pending.source), Option.some(first.pending.txId))
          yield* TestClock.adjust(10_000)
          const included = yield* chain.transactionByHash(first.pending.txId)
          assert.strictEqual(included.tickNumber, first.pending.tx.tick)
          assert.include((yield* chain.tickData(first.pending.tx.tick)).transactionHashes, first.pending.txId)
        })
      )
    })
  )

  it.effect("a second process on the same state file runs in memory and leaves the owner's file alone", () =>
    Effect.gen(function* () {
      const directory = yield* tempDirectory
      const stateFile = NodePath.join(directory, "network.json")
      yield* Effect.scoped(
        Effect.gen(function* () {
          const owner = yield* StateFile.acquire(stateFile)
          assert.isTrue(Option.isSome(owner))
          assert.strictEqual(NodeFs.readFileSync(`${stateFile}.lock`, "utf8"), String(process.pid))
          const second = yield* StateFile.acquire(stateFile)
          assert.isTrue(Option.isNone(second), "the running owner keeps it")
        })
      )
      // A lock left by a process that is gone (SIGKILL) is taken over
      NodeFs.writeFileSync(`${stateFile}.lock`, "2147483646")
      yield* Effect.scoped(
        Effect.gen(function* () {
          assert.isTrue(Option.isSome(yield* StateFile.acquire(stateFile)))
        })
      )
      // A state file that is not one is an error, not a fresh network
      NodeFs.writeFileSync(stateFile, JSON.stringify({ version: 7 }))
      const error = yield* Effect.flip(run(layerChain({ stateFile }), () => Effect.void))
      assert.strictEqual(error._tag, "StateFileError")
    })
  )

  it.effect("receipts, lookups and confirmations survive a restart of the anchor", () =>
    Effect.gen(function* () {
      const directory = yield* tempDirectory
      const mock = layerMock({
        network: { stateFile: NodePath.join(directory, "network.json") },
        stateFile: NodePath.join(directory, "anchor.json")
      })
      const confirmedRoot = Canonical.sha256Hex("confirmed before the restart")
      const pendingRoot = Canonical.sha256Hex("pending at the restart")

      const before = yield* run(mock, (context) =>
        Effect.gen(function* () {
          const anchor = Context.get(context, Anchor)
          const published = yield* anchor.publish(confirmedRoot, 3)
          const confirmed = yield* drive(
            Effect.gen(function* () {
              for (;;) {
                const receipt = yield* anchor.getTx(published.txId)
                if (receipt.status === "confirmed") return receipt
                yield* Effect.sleep("1 second")
              }
            })
          )
          const pending = yield* anchor.publish(pendingRoot, 4)
          assert.strictEqual(pending.status, "pending")
          return { confirmed, pending }
        })
      )

      yield* run(mock, (context) =>
        Effect.gen(function* () {
          const anchor = Context.get(context, Anchor)
          // Known again, by transaction and by root
          assert.deepStrictEqual(yield* anchor.getTx(before.confirmed.txId), before.confirmed)
          assert.deepStrictEqual(Option.getOrThrow(yield* anchor.lookup(confirmedRoot)), before.confirmed)
          const stillPending = Option.getOrThrow(yield* anchor.lookup(pendingRoot))
          assert.strictEqual(stillPending.txId, before.pending.txId)
          assert.strictEqual(stillPending.status, "pending")
          // The restarted layer watches it again, and it confirms
          const final: AnchorReceipt = yield* drive(
            Effect.gen(function* () {
              for (;;) {
                const receipt = yield* anchor.getTx(before.pending.txId)
                if (receipt.status !== "pending") return receipt
                yield* Effect.sleep("1 second")
              }
            })
          )
          assert.strictEqual(final.status, "confirmed")
          assert.strictEqual(final.root, pendingRoot)
          assert.strictEqual(final.tick, before.pending.tick)
          const chain = Context.get(context, Chain)
          assert.strictEqual((yield* chain.transactionByHash(final.txId)).tickNumber, before.pending.tick)
          // A transaction that never existed is still unknown
          const unknown = yield* Effect.flip(chain.transactionByHash("a".repeat(60)))
          assert.instanceOf(unknown, QubicApiError)
        })
      )
    })
  )
})
