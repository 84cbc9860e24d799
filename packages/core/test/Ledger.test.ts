import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import {
  Anchor,
  AnchorError,
  AnchorNotFound,
  type AnchorReceipt,
  Canonical,
  entryHashOf,
  InvalidInput,
  Ledger,
  LedgerKeys,
  LedgerStore,
  type Sha256Hex,
  UnitOfWork,
  verifyCheckpointSignature,
  verifyEntryProof
} from "@mandate/core"
import { LedgerTamper } from "@mandate/core/testing"
import { Clock, Context, Effect, Layer, Logger, Option, Redacted, Ref, References } from "effect"
import { TestClock } from "effect/testing"
import { suite } from "./conformance/ledger.ts"

suite(
  "Ledger.layerMemory (conformance)",
  Ledger.layer().pipe(
    Layer.provideMerge(LedgerStore.layerMemory),
    Layer.provide(Anchor.layerMemory),
    Layer.merge(UnitOfWork.layerMemory)
  )
)

// The memory store never suspends, so its appenders cannot interleave and a missing lock would go unnoticed.
// Behind this wrapper every store call yields to other fibers, as a database round trip does: the suite then
// shows that the ledger reads and writes inside the append lock, and that the memory lock serialises.
const memoryWithLatency = Layer.effectContext(
  Effect.gen(function* () {
    const context = yield* Layer.build(LedgerStore.layerMemory)
    const inner = Context.get(context, LedgerStore)
    const io = <A, E>(effect: Effect.Effect<A, E>) => Effect.andThen(Effect.yieldNow, effect)
    const store = LedgerStore.of({
      durable: inner.durable,
      withAppendLock: (effect) => inner.withAppendLock(Effect.andThen(Effect.yieldNow, effect)),
      head: io(inner.head),
      write: (entries, nodes) => io(inner.write(entries, nodes)),
      nodes: (ids) => io(inner.nodes(ids)),
      entries: (from, to) => io(inner.entries(from, to)),
      findByHash: (hash) => io(inner.findByHash(hash)),
      findByTask: (taskId) => io(inner.findByTask(taskId)),
      putCheckpoint: (checkpoint) => io(inner.putCheckpoint(checkpoint)),
      checkpoints: io(inner.checkpoints),
      latestCheckpoint: io(inner.latestCheckpoint),
      putAnchor: (size, anchor) => io(inner.putAnchor(size, anchor))
    })
    return Context.make(LedgerStore, store).pipe(Context.add(LedgerTamper, Context.get(context, LedgerTamper)))
  })
)

suite(
  "Ledger on LedgerStore.layerMemory behind simulated I/O (conformance)",
  Ledger.layer().pipe(
    Layer.provideMerge(memoryWithLatency),
    Layer.provide(Anchor.layerMemory),
    Layer.merge(UnitOfWork.layerMemory)
  )
)

const entry = (i: number) => ({ kind: "step.succeeded", taskId: "task_1", payload: { i } })

// Lets the anchoring fiber run: it wakes on a queue, so a few scheduler turns are enough
const settle = Effect.gen(function* () {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})

const anchoredSizes = Ledger.use((ledger) =>
  Effect.map(ledger.checkpoints, (records) =>
    records.filter((r) => r.anchor !== undefined).map((r) => r.checkpoint.size)
  )
)

/** An Anchor that fails while `failing` is set, then behaves like Anchor.layerMemory; counts publishes. */
const flakyAnchor = (failing: Ref.Ref<boolean>, publishes: Ref.Ref<number>) =>
  Layer.effect(
    Anchor,
    Effect.gen(function* () {
      const memory = yield* Effect.provide(
        Anchor.use((anchor) => Effect.succeed(anchor)),
        Anchor.layerMemory
      )
      return Anchor.of({
        ...memory,
        publish: (root, size) =>
          Effect.gen(function* () {
            yield* Ref.update(publishes, (n) => n + 1)
            if (yield* Ref.get(failing)) {
              return yield* new AnchorError({ operation: "publish", message: "chain unreachable" })
            }
            return yield* memory.publish(root, size)
          })
      })
    })
  )

describe("LedgerStore.layerMemory: entries the ledger writes encoded, and entry objects", () => {
  // The memory store keeps what the ledger appends as canonical text (`writePacked`, or `writeEncoded` with node
  // objects) and what comes through `write` as objects: one store may hold all three, interleaved, and every read
  // gives each entry the same way
  it.effect("ledgers writing packed, encoded and objects share a store; a rolled-back unit leaves nothing", () =>
    Effect.gen(function* () {
      const context = yield* Layer.build(LedgerStore.layerMemory)
      const inner = Context.get(context, LedgerStore)
      assert.isDefined(inner.writeEncoded)
      assert.isDefined(inner.writePacked)
      const { writeEncoded: _, writePacked: __, ...objectsOnly } = inner
      const { writePacked: ___, ...encodedOnly } = inner
      const over = (store: LedgerStore["Service"]) =>
        Effect.provide(
          Ledger.use((ledger) => Effect.succeed(ledger)),
          Ledger.layer().pipe(Layer.provide(Layer.succeed(LedgerStore, store)), Layer.provide(Anchor.layerNone))
        )
      const encoded = yield* over(inner)
      const objects = yield* over(LedgerStore.of(objectsOnly))
      const unpacked = yield* over(LedgerStore.of(encodedOnly))
      const uow = yield* UnitOfWork
      const withStore = { kind: "note.added", taskId: "task_2", stepId: "s", principal: { id: "p", roles: [] } }
      const receipts = []
      for (let round = 0; round < 3; round++) {
        receipts.push(...(yield* encoded.appendBatch([entry(1), { ...withStore, payload: [round] }])))
        receipts.push(yield* objects.append(entry(2)))
        const failed = yield* Effect.exit(
          uow.run(Effect.andThen(encoded.appendBatch([entry(98), entry(99)]), Effect.fail("no")))
        )
        assert.isTrue(failed._tag === "Failure")
        receipts.push(...(yield* objects.appendBatch([entry(3), { ...withStore, payload: null, storePayload: false }])))
        receipts.push(...(yield* unpacked.appendBatch([entry(4), { ...withStore, payload: { round } }])))
        const failedUnpacked = yield* Effect.exit(
          uow.run(Effect.andThen(unpacked.appendBatch([entry(97), entry(96)]), Effect.fail("no")))
        )
        assert.isTrue(failedUnpacked._tag === "Failure")
      }
      const all = yield* encoded.entries()
      assert.deepStrictEqual(
        all.map((e) => e.entryHash),
        receipts.map((r) => r.entryHash)
      )
      for (const receipt of receipts) {
        const viaEncoded = yield* encoded.get(receipt.entryHash)
        const viaObjects = yield* objects.get(receipt.entryHash)
        assert.deepStrictEqual(viaEncoded, viaObjects)
        assert.deepStrictEqual(viaEncoded, yield* unpacked.get(receipt.entryHash))
        assert.deepStrictEqual(viaEncoded, all[receipt.seq])
        assert.strictEqual(entryHashOf(viaEncoded), receipt.entryHash)
        const payload: unknown = viaEncoded.payload
        assert.isTrue(Object.isFrozen(viaEncoded))
        assert.isTrue(typeof payload !== "object" || payload === null || Object.isFrozen(payload))
      }
      // The same members in the same order, whichever way an entry was written
      const keys = (seq: number) => Object.keys(all[seq]!).join(",")
      assert.strictEqual(keys(0), keys(2))
      assert.strictEqual(
        keys(1),
        "seq,kind,taskId,taskPrevHash,stepId,principal,at,payloadHash,payload,prevHash,entryHash"
      )
      assert.strictEqual(keys(4), "seq,kind,taskId,taskPrevHash,stepId,principal,at,payloadHash,prevHash,entryHash")
      for (const taskId of ["task_1", "task_2"]) {
        const byTask = yield* encoded.byTask(taskId)
        assert.deepStrictEqual(byTask, yield* objects.byTask(taskId))
        assert.deepStrictEqual(
          byTask.map((e) => e.seq),
          all.filter((e) => e.taskId === taskId).map((e) => e.seq)
        )
      }
      const report = yield* encoded.verifyAll()
      assert.isTrue(report.valid, JSON.stringify(report.mismatch))
      assert.strictEqual(report.entries, receipts.length)
    }).pipe(Effect.provide(UnitOfWork.layerMemory))
  )
})

describe("Ledger entry bodies", () => {
  // The append path writes an entry body's canonical JSON directly, member by member: it must be what
  // Canonical.encode makes of the stored entry, with and without each optional member
  it.effect("every combination of optional members hashes as entryHashOf recomputes it", () =>
    Effect.gen(function* () {
      const ledger = yield* Ledger
      const inputs = []
      for (let mask = 0; mask < 16; mask++) {
        inputs.push({
          kind: "note.added",
          ...(mask & 1 ? { taskId: `task_${mask % 3}` } : {}),
          ...(mask & 2 ? { stepId: "step-1" } : {}),
          ...(mask & 4 ? { principal: { roles: ["agent" as const], id: `agent:${mask}` } } : {}),
          ...(mask & 8 ? { storePayload: false } : {}),
          payload: { z: [1, -0, 1e21, 0.1], 'é\u0000"': "ünï\ud83d\ude00", a: { y: null, b: true }, n: mask }
        })
      }
      const receipts = [...(yield* ledger.appendBatch(inputs)), yield* ledger.append(inputs[7]!)]
      for (const receipt of receipts) {
        const entry = yield* ledger.get(receipt.entryHash)
        assert.strictEqual(entryHashOf(entry), receipt.entryHash, `entry ${receipt.seq}`)
      }
      assert.isTrue((yield* ledger.verifyAll()).valid)
    }).pipe(Effect.provide(Ledger.layerMemory().pipe(Layer.provide(Anchor.layerNone))))
  )
})

describe("Ledger entry hashes are pinned", () => {
  // Values computed by the ledger of 2026-12-07 (before the append path was rewritten for speed): the same
  // inputs at the same time must give the same entry hashes and root, bit for bit
  it.effect("the same inputs at the same time give the same entry hashes and Merkle root as before", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(1_765_100_000_000)
      const ledger = yield* Ledger
      const inputs = []
      for (let i = 0; i < 24; i++) {
        inputs.push({
          kind: i % 5 === 0 ? "task.started" : "step.succeeded",
          ...(i % 4 !== 3 ? { taskId: `task_${i % 3}` } : {}),
          ...(i % 2 === 0 ? { stepId: `step-${i % 4}` } : {}),
          ...(i % 3 !== 1 ? { principal: { id: `agent:${i % 2}`, roles: ["agent" as const] } } : {}),
          ...(i % 7 === 6 ? { storePayload: false } : {}),
          payload: {
            z: [i, -0, 1e21, 0.1],
            'é\u0000"': "ünï\ud83d\ude00",
            a: { y: null, b: i % 2 === 0 },
            to: "B".repeat(60)
          }
        })
      }
      const receipts = [...(yield* ledger.appendBatch(inputs.slice(0, 16)))]
      for (const input of inputs.slice(16)) receipts.push(yield* ledger.append(input))
      assert.strictEqual(receipts[0]!.entryHash, "6cbff1056029e63a69dad7491a5e961db5953c69a2e97b3a94eefca0aa45d898")
      assert.strictEqual(
        Canonical.sha256Hex(receipts.map((r) => r.entryHash).join(",")),
        "4967197fc56eeff29a53210fb459f16a729c2ece163a0977dac2c07b501b73e6"
      )
      assert.strictEqual(yield* ledger.root(), "89c4ecdbc77eb148e83e79eab177fcfca23335802c52167c633fbcb4a961aae4")
    }).pipe(Effect.provide(Ledger.layerMemory().pipe(Layer.provide(Anchor.layerNone))))
  )
})

describe("Ledger anchoring", () => {
  it.effect("anchors automatically every N entries from a background fiber", () =>
    Effect.gen(function* () {
      const ledger = yield* Ledger
      yield* ledger.appendBatch([1, 2, 3, 4].map(entry))
      yield* settle
      assert.deepStrictEqual(yield* anchoredSizes, [])
      yield* ledger.append(entry(5))
      yield* settle
      assert.deepStrictEqual(yield* anchoredSizes, [5])
      yield* ledger.appendBatch([6, 7, 8, 9, 10, 11, 12].map(entry))
      yield* settle
      assert.deepStrictEqual(yield* anchoredSizes, [5, 12])
      const latest = Option.getOrThrow(yield* ledger.latestCheckpoint)
      assert.strictEqual(latest.anchor?.root, latest.checkpoint.root)
      assert.strictEqual(latest.anchor?.chain, "memory")
    }).pipe(Effect.provide(Ledger.layerMemory({ anchorEvery: { entries: 5 } }).pipe(Layer.provide(Anchor.layerMemory))))
  )

  it.effect("anchors every interval when there are new entries, driven by the Clock", () =>
    Effect.gen(function* () {
      const ledger = yield* Ledger
      yield* ledger.appendBatch([1, 2, 3].map(entry))
      yield* TestClock.adjust("59 seconds")
      yield* settle
      assert.deepStrictEqual(yield* anchoredSizes, [])
      yield* TestClock.adjust("1 second")
      yield* settle
      assert.deepStrictEqual(yield* anchoredSizes, [3])
      // nothing new: nothing published
      yield* TestClock.adjust("5 minutes")
      yield* settle
      assert.deepStrictEqual(yield* anchoredSizes, [3])
      yield* ledger.append(entry(4))
      yield* TestClock.adjust("1 minute")
      yield* settle
      assert.deepStrictEqual(yield* anchoredSizes, [3, 4])
      const records = yield* ledger.checkpoints
      assert.strictEqual(records[1]!.checkpoint.timestamp, yield* Clock.currentTimeMillis)
    }).pipe(
      Effect.provide(
        Ledger.layerMemory({ anchorEvery: { interval: "1 minute" } }).pipe(Layer.provide(Anchor.layerMemory))
      )
    )
  )

  it.effect("an anchoring failure never fails appends; it is logged and retried at the next trigger", () =>
    Effect.gen(function* () {
      const failing = yield* Ref.make(true)
      const publishes = yield* Ref.make(0)
      const warnings: Array<string> = []
      const collector = Logger.make(({ logLevel, message }) => {
        if (logLevel === "Warn") warnings.push(String(Array.isArray(message) ? message[0] : message))
      })
      yield* Effect.gen(function* () {
        const ledger = yield* Ledger
        assert.strictEqual((yield* ledger.appendBatch([1, 2, 3].map(entry))).length, 3)
        yield* settle
        assert.strictEqual(yield* Ref.get(publishes), 1)
        assert.deepStrictEqual(yield* anchoredSizes, [])
        assert.deepStrictEqual(warnings, ["Ledger anchoring failed; retrying at the next trigger"])
        // still three or more entries behind: the next append triggers a retry
        yield* ledger.append(entry(4))
        yield* settle
        assert.strictEqual(yield* Ref.get(publishes), 2)
        assert.deepStrictEqual(yield* anchoredSizes, [])
        yield* Ref.set(failing, false)
        yield* ledger.append(entry(5))
        yield* settle
        assert.strictEqual(yield* Ref.get(publishes), 3)
        assert.deepStrictEqual(yield* anchoredSizes, [5])
        assert.strictEqual(warnings.length, 2)
        assert.isTrue((yield* ledger.verifyAll()).valid)
      }).pipe(
        Effect.provide(
          Ledger.layerMemory({ anchorEvery: { entries: 3 } }).pipe(
            Layer.provide(flakyAnchor(failing, publishes)),
            Layer.provide(Logger.layer([collector]))
          )
        )
      )
    })
  )

  it.effect("anchor() fails with the Anchor's error when anchoring is off, and appends go on", () =>
    Effect.gen(function* () {
      const ledger = yield* Ledger
      yield* ledger.append(entry(1))
      const error = yield* Effect.flip(ledger.anchor)
      assert.instanceOf(error, AnchorError)
      yield* ledger.append(entry(2))
      const verified = yield* ledger.verify((yield* ledger.entries())[1]!.entryHash)
      assert.isUndefined(verified.anchor)
      assert.isTrue(verifyEntryProof(verified, ledger.publicKey))
    }).pipe(Effect.provide(Ledger.layerMemory().pipe(Layer.provide(Anchor.layerNone))))
  )

  it.effect("a pending receipt is refreshed from the chain when the entry is verified", () =>
    Effect.gen(function* () {
      const confirmed = yield* Ref.make(false)
      const published = new Map<string, { root: Sha256Hex; size: number }>()
      const pendingAnchor = Layer.succeed(
        Anchor,
        Anchor.of({
          publish: (root, size) =>
            Effect.sync(() => published.set(`tx_${root.slice(0, 8)}`, { root, size })).pipe(
              Effect.as<AnchorReceipt>({
                chain: "test",
                txId: `tx_${root.slice(0, 8)}`,
                tick: 10,
                root,
                size,
                status: "pending",
                publishedAt: 0
              })
            ),
          lookup: () => Effect.succeed(Option.none()),
          getTx: (txId) =>
            Effect.map(Ref.get(confirmed), (done) => ({
              chain: "test",
              txId,
              tick: 10,
              root: published.get(txId)!.root,
              size: published.get(txId)!.size,
              status: done ? ("confirmed" as const) : ("pending" as const),
              publishedAt: 0,
              ...(done ? { confirmedAt: 42 } : {})
            }))
        })
      )
      yield* Effect.gen(function* () {
        const ledger = yield* Ledger
        const receipt = yield* ledger.append(entry(1))
        const anchored = yield* ledger.anchor
        assert.strictEqual(anchored.anchor?.status, "pending")
        assert.strictEqual((yield* ledger.verify(receipt.entryHash)).anchor?.status, "pending")
        yield* Ref.set(confirmed, true)
        const verified = yield* ledger.verify(receipt.entryHash)
        assert.strictEqual(verified.anchor?.status, "confirmed")
        assert.strictEqual(verified.anchor?.confirmedAt, 42)
        // stored, so the next read sees it without asking the chain
        const stored = Option.getOrThrow(yield* ledger.latestCheckpoint)
        assert.strictEqual(stored.anchor?.status, "confirmed")
      }).pipe(Effect.provide(Ledger.layerMemory().pipe(Layer.provide(pendingAnchor))))
    })
  )
})

describe("Ledger options: signing keys and anchoring triggers", () => {
  it.effect("signs with the configured Ed25519 key (PEM, Redacted or KeyObject)", () =>
    Effect.gen(function* () {
      const { privateKey, publicKey } = NodeCrypto.generateKeyPairSync("ed25519")
      const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString()
      for (const signingKey of [pem, Redacted.make(pem), privateKey]) {
        const checkpoint = yield* Effect.gen(function* () {
          const ledger = yield* Ledger
          assert.strictEqual(ledger.publicKey, publicKey.export({ type: "spki", format: "pem" }).toString())
          yield* ledger.append(entry(1))
          return yield* ledger.checkpoint
        }).pipe(Effect.provide(Ledger.layerMemory({ signingKey }).pipe(Layer.provide(Anchor.layerNone))))
        assert.isTrue(verifyCheckpointSignature(checkpoint, publicKey))
      }
    })
  )

  it.effect("after a key rotation, checkpoints of a trusted earlier key still verify; of an unknown key, never", () =>
    Effect.gen(function* () {
      // One persistent store, a ledger process per signing key
      const store = yield* Layer.build(LedgerStore.layerMemory)
      const on = (options: Parameters<typeof Ledger.layer>[0]) =>
        Ledger.layer(options).pipe(Layer.provide(Layer.succeedContext(store)), Layer.provide(Anchor.layerNone))
      const old = NodeCrypto.generateKeyPairSync("ed25519")
      const next = NodeCrypto.generateKeyPairSync("ed25519")
      const signedBefore = yield* Effect.provide(
        Ledger.use((ledger) => Effect.andThen(ledger.appendBatch([1, 2, 3].map(entry)), ledger.checkpoint)),
        on({ signingKey: old.privateKey })
      )
      yield* Effect.gen(function* () {
        const ledger = yield* Ledger
        yield* ledger.append(entry(4))
        yield* ledger.checkpoint
        assert.isTrue((yield* ledger.verifyAll()).valid)
        yield* ledger.verifyCheckpoint(signedBefore)
        const first = (yield* ledger.entries())[0]!
        assert.isTrue(verifyEntryProof(yield* ledger.verify(first.entryHash), ledger.publicKey))
      }).pipe(Effect.provide(on({ signingKey: next.privateKey, trustedKeys: [old.publicKey] })))

      yield* Effect.gen(function* () {
        const ledger = yield* Ledger
        const report = yield* ledger.verifyAll()
        assert.strictEqual(report.mismatch?.check, "checkpoint")
        assert.strictEqual(report.mismatch?.seq, signedBefore.size - 1)
        const rejected = yield* Effect.flip(ledger.verifyCheckpoint(signedBefore))
        assert.strictEqual(rejected._tag === "CheckpointRejected" && rejected.reason, "key")
      }).pipe(Effect.provide(on({ signingKey: next.privateKey })))

      const error = yield* Effect.flip(
        Effect.provide(
          Ledger.use(() => Effect.void),
          on({ trustedKeys: ["not a key"] })
        )
      )
      assert.strictEqual(error._tag === "InvalidInput" && error.path, "$.trustedKeys[0]")
    })
  )

  it.effect("refuses anchoring triggers that are not positive", () =>
    Effect.gen(function* () {
      const cases: Array<[Parameters<typeof Ledger.layerMemory>[0], string]> = [
        [{ anchorEvery: { entries: 0 } }, "$.anchorEvery.entries"],
        [{ anchorEvery: { entries: 2.5 } }, "$.anchorEvery.entries"],
        [{ anchorEvery: { interval: "0 seconds" } }, "$.anchorEvery.interval"],
        [{ anchorEvery: { interval: "soon" as never } }, "$.anchorEvery.interval"]
      ]
      for (const [options, path] of cases) {
        const error = yield* Effect.flip(
          Effect.provide(
            Ledger.use(() => Effect.void),
            Ledger.layerMemory(options).pipe(Layer.provide(Anchor.layerNone))
          )
        )
        assert.instanceOf(error, InvalidInput)
        assert.strictEqual((error as InvalidInput).path, path)
      }
    })
  )

  it.effect("refuses a signing key that is not an Ed25519 private key", () =>
    Effect.gen(function* () {
      const rsa = NodeCrypto.generateKeyPairSync("rsa", { modulusLength: 1024 })
      const ed = NodeCrypto.generateKeyPairSync("ed25519")
      for (const signingKey of ["not a key", rsa.privateKey, ed.publicKey]) {
        const error = yield* Effect.flip(
          Effect.provide(
            Ledger.use(() => Effect.void),
            Ledger.layerMemory({ signingKey }).pipe(Layer.provide(Anchor.layerNone))
          )
        )
        assert.instanceOf(error, InvalidInput)
        assert.strictEqual((error as InvalidInput).path, "$.signingKey")
      }
    })
  )
})

/**
 * A chain whose transactions the test moves: each publish is pending until `settle` sets its status; `reachable`
 * false makes every query fail as an unreachable chain does.
 */
const controlledChain = Effect.gen(function* () {
  const txs = new Map<string, AnchorReceipt>()
  const reachable = yield* Ref.make(true)
  const unreachable = (operation: string) => new AnchorError({ operation, message: "chain unreachable" })
  const layer = Layer.succeed(
    Anchor,
    Anchor.of({
      publish: (root, size) =>
        Effect.sync(() => {
          const receipt: AnchorReceipt = {
            chain: "test",
            txId: `tx_${txs.size}_${root.slice(0, 8)}`,
            tick: 100 + txs.size,
            root,
            size,
            status: "pending",
            publishedAt: 1
          }
          txs.set(receipt.txId, receipt)
          return receipt
        }),
      lookup: (root) =>
        Effect.flatMap(Ref.get(reachable), (up) =>
          up
            ? Effect.succeed(Option.fromNullishOr([...txs.values()].findLast((r) => r.root === root)))
            : Effect.fail(unreachable("lookup"))
        ),
      getTx: (txId) =>
        Effect.flatMap(Ref.get(reachable), (up): Effect.Effect<AnchorReceipt, AnchorError | AnchorNotFound> => {
          if (!up) return Effect.fail(unreachable("getTx"))
          const receipt = txs.get(txId)
          return receipt === undefined ? Effect.fail(new AnchorNotFound({ id: txId })) : Effect.succeed(receipt)
        })
    })
  )
  const settle = (txId: string, status: AnchorReceipt["status"]) =>
    Effect.sync(() => {
      const receipt = txs.get(txId)!
      const { confirmedAt: _, ...rest } = receipt
      txs.set(txId, status === "confirmed" ? { ...rest, status, confirmedAt: 2 } : { ...rest, status })
    })
  return { layer, reachable, settle }
})

describe("Ledger.verifyAll checks anchor receipts against the chain's status", () => {
  it.effect("a receipt may lag behind the chain, never run ahead of it or contradict it", () =>
    Effect.gen(function* () {
      const chain = yield* controlledChain
      yield* Effect.gen(function* () {
        const ledger = yield* Ledger
        const tamper = yield* LedgerTamper
        yield* ledger.append(entry(1))
        const record = yield* ledger.anchor
        const receipt = record.anchor!
        assert.strictEqual(receipt.status, "pending")
        const size = record.checkpoint.size
        const clean = yield* ledger.verifyAll()
        assert.isTrue(clean.valid)
        assert.deepStrictEqual([clean.anchors, clean.anchorsUnchecked], [1, 0])

        // Marked confirmed in the store while the chain still has it pending
        yield* tamper.replaceAnchor(size, { ...receipt, status: "confirmed", confirmedAt: 5 })
        const ahead = yield* ledger.verifyAll()
        assert.strictEqual(ahead.mismatch?.check, "anchor")
        assert.strictEqual(ahead.mismatch?.seq, size - 1)
        assert.include(ahead.mismatch!.detail, "the chain says pending")

        // The chain confirms: the stored receipt now agrees
        yield* chain.settle(receipt.txId, "confirmed")
        assert.isTrue((yield* ledger.verifyAll()).valid)
        // A stored pending receipt lags behind the confirmed transaction: not tampering
        yield* tamper.replaceAnchor(size, receipt)
        assert.isTrue((yield* ledger.verifyAll()).valid)
        // Marked dropped while the chain confirmed it: contradicts the chain
        yield* tamper.replaceAnchor(size, { ...receipt, status: "dropped" })
        assert.strictEqual((yield* ledger.verifyAll()).mismatch?.check, "anchor")
        // Confirmed at another tick than the chain's
        yield* tamper.replaceAnchor(size, { ...receipt, status: "confirmed", confirmedAt: 2, tick: 7 })
        assert.strictEqual((yield* ledger.verifyAll()).mismatch?.check, "anchor")

        // The chain unreachable: counted as unchecked, neither valid evidence nor tampering
        yield* tamper.replaceAnchor(size, receipt)
        yield* Ref.set(chain.reachable, false)
        const unreachable = yield* ledger.verifyAll()
        assert.isTrue(unreachable.valid)
        assert.deepStrictEqual([unreachable.anchors, unreachable.anchorsUnchecked], [0, 1])
      }).pipe(
        Effect.provide(Ledger.layer().pipe(Layer.provideMerge(LedgerStore.layerMemory), Layer.provide(chain.layer)))
      )
    })
  )

  it.effect("a pending receipt naming a transaction the chain lacks, while the chain holds the root elsewhere", () =>
    Effect.gen(function* () {
      const chain = yield* controlledChain
      yield* Effect.gen(function* () {
        const ledger = yield* Ledger
        const tamper = yield* LedgerTamper
        yield* ledger.append(entry(1))
        const record = yield* ledger.anchor
        const receipt = record.anchor!
        // Not on the chain yet (a pending transaction the archive has not processed): no verdict either way
        yield* tamper.replaceAnchor(record.checkpoint.size, { ...receipt, txId: "tx_not_yet_archived" })
        yield* chain.settle(receipt.txId, "confirmed")
        const report = yield* ledger.verifyAll()
        assert.strictEqual(report.mismatch?.check, "anchor")
        assert.include(report.mismatch!.detail, receipt.txId)
      }).pipe(
        Effect.provide(Ledger.layer().pipe(Layer.provideMerge(LedgerStore.layerMemory), Layer.provide(chain.layer)))
      )
    })
  )
})

describe("Ledger keys kept in a directory", () => {
  it.effect(
    "a restart over the same store signs with the same key; a rotation keeps earlier checkpoints verifiable",
    () =>
      Effect.gen(function* () {
        const directory = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "mandate-keys-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => NodeFs.rmSync(directory, { recursive: true, force: true })))
        // One persistent store; each "process" loads its keys from the directory
        const store = yield* Layer.build(LedgerStore.layerMemory)
        const start = Layer.unwrap(
          Effect.map(LedgerKeys.inDirectory(directory), (keys) =>
            Ledger.layer({ keys }).pipe(Layer.provide(Layer.succeedContext(store)), Layer.provide(Anchor.layerNone))
          )
        )
        const first = yield* Effect.provide(
          Ledger.use((ledger) =>
            Effect.gen(function* () {
              const receipts = yield* ledger.appendBatch([1, 2, 3].map(entry))
              return { receipts, checkpoint: yield* ledger.checkpoint, keyId: ledger.keyId }
            })
          ),
          start
        )
        // Restarted: same key, the earlier entries verify as they did
        yield* Effect.gen(function* () {
          const ledger = yield* Ledger
          assert.strictEqual(ledger.keyId, first.keyId)
          const verified = yield* ledger.verify(first.receipts[0]!.entryHash)
          assert.deepStrictEqual(verified.checkpoint, first.checkpoint)
          assert.isTrue(verifyEntryProof(verified, ledger.publicKey))
        }).pipe(Effect.provide(start))

        // Rotated: the key file moved away, a new key is generated at the next start
        NodeFs.renameSync(
          NodePath.join(directory, LedgerKeys.keyFileName),
          NodePath.join(directory, "retired-ledger-signing-key.pem")
        )
        yield* Effect.gen(function* () {
          const ledger = yield* Ledger
          assert.notStrictEqual(ledger.keyId, first.keyId)
          assert.deepStrictEqual([...ledger.publicKeys.keys()].sort(), [first.keyId, ledger.keyId].sort())
          yield* ledger.verifyCheckpoint(first.checkpoint)
          yield* ledger.append(entry(4))
          const next = yield* ledger.checkpoint
          assert.strictEqual(next.keyId, ledger.keyId)
          assert.isTrue((yield* ledger.verifyAll()).valid)
          // Offline: each checkpoint with the key its keyId names
          const old = yield* ledger.verify(first.receipts[0]!.entryHash)
          assert.strictEqual(old.checkpoint.keyId, ledger.keyId)
          assert.isTrue(verifyEntryProof(old, [...ledger.publicKeys.values()]))
          assert.isFalse(verifyEntryProof({ ...old, checkpoint: first.checkpoint }, ledger.publicKey))
        }).pipe(Effect.provide(start))
      })
  )
})

describe("Ledger without a signing key", () => {
  it.effect("says so: a warning over a durable store, nothing louder than debug over memory", () =>
    Effect.gen(function* () {
      const logged: Array<[string, string]> = []
      const collector = Logger.make(({ logLevel, message }) => {
        logged.push([logLevel, String(Array.isArray(message) ? message[0] : message)])
      })
      const durableMemory = Layer.effect(
        LedgerStore,
        LedgerStore.use((store) => Effect.succeed(LedgerStore.of({ ...store, durable: true })))
      ).pipe(Layer.provide(LedgerStore.layerMemory))
      const build = (store: Layer.Layer<LedgerStore>) =>
        Effect.provide(
          Ledger.use(() => Effect.void),
          Ledger.layer().pipe(
            Layer.provide(store),
            Layer.provide(Anchor.layerNone),
            Layer.provide(Logger.layer([collector])),
            Layer.provide(Layer.succeed(References.MinimumLogLevel, "All"))
          )
        )
      yield* build(LedgerStore.layerMemory)
      assert.deepStrictEqual(
        logged.map(([level]) => level),
        ["Debug"]
      )
      assert.include(logged[0]![1], "ephemeral")
      logged.length = 0
      yield* build(durableMemory)
      assert.deepStrictEqual(
        logged.map(([level]) => level),
        ["Warn"]
      )
      assert.include(logged[0]![1], "durable")
    })
  )
})
