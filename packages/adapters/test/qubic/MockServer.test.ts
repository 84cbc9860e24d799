import { assert, layer } from "@effect/vitest"
import { Chain, layerChain, layerMockServer, mockServerUrl } from "@mandate/adapters/qubic"
import { Effect, Layer } from "effect"
import { mockSigner, seedA, signedTx } from "../utils/qubic.ts"

const network = layerChain({ tickDuration: "50 millis", archiveLag: 2 })
const server = layerMockServer().pipe(Layer.provideMerge(network))

// A raw HTTP call, so the test checks the wire format and not our client's reading of it
const call = (path: string, init?: { readonly method?: string; readonly body?: string }) =>
  Effect.gen(function* () {
    const url = yield* mockServerUrl
    const response = yield* Effect.promise(() =>
      fetch(`${url}${path}`, {
        method: init?.method ?? "GET",
        ...(init?.body === undefined ? {} : { body: init.body, headers: { "content-type": "application/json" } })
      })
    )
    const text = yield* Effect.promise(() => response.text())
    return { status: response.status, json: JSON.parse(text) as any, type: response.headers.get("content-type") }
  })

const post = (path: string, body: unknown) =>
  call(path, { method: "POST", body: typeof body === "string" ? body : JSON.stringify(body) })

const waitUntil = <A, R>(check: Effect.Effect<A | undefined, never, R>) =>
  Effect.gen(function* () {
    for (let i = 0; i < 200; i++) {
      const value = yield* check
      if (value !== undefined) return value
      yield* Effect.sleep("25 millis")
    }
    return yield* Effect.die(new Error("timed out"))
  })

layer(server, { excludeTestServices: true })("Qubic mock server (gateway paths and shapes)", (it) => {
  it.effect("serves the Live API: tick info, broadcast, balances", () =>
    Effect.gen(function* () {
      const info = yield* call("/live/v1/tick-info")
      assert.strictEqual(info.status, 200)
      assert.match(info.type ?? "", /application\/json/)
      assert.deepStrictEqual(Object.keys(info.json), ["tickInfo"])
      assert.deepStrictEqual(Object.keys(info.json.tickInfo).sort(), ["duration", "epoch", "initialTick", "tick"])
      assert.isNumber(info.json.tickInfo.tick)
      const signer = mockSigner(seedA)
      const tx = yield* signedTx(signer, { tick: info.json.tickInfo.tick + 5, input: Uint8Array.from([9]) })
      const sent = yield* post("/live/v1/broadcast-transaction", { encodedTransaction: tx.encoded, extra: "ignored" })
      assert.deepStrictEqual(sent, {
        status: 200,
        type: sent.type,
        json: { peersBroadcasted: 3, encodedTransaction: tx.encoded, transactionId: tx.txId }
      })
      const balance = yield* call(`/live/v1/balances/${tx.source}`)
      assert.strictEqual(balance.status, 200)
      assert.strictEqual(balance.json.balance.id, tx.source)
      assert.strictEqual(balance.json.balance.balance, "0")
      assert.strictEqual(balance.json.balance.incomingAmount, "0")
      // the archive answers with the transaction object itself once it has processed the tick
      const found = yield* waitUntil(
        Effect.map(post("/query/v1/getTransactionByHash", { hash: tx.txId }), (r) => (r.status === 200 ? r : undefined))
      )
      assert.strictEqual(found.json.hash, tx.txId)
      assert.strictEqual(found.json.amount, "0")
      assert.match(found.json.timestamp, /^\d+$/)
      assert.strictEqual(found.json.inputData, "CQ==")
      assert.strictEqual(found.json.tickNumber, info.json.tickInfo.tick + 5)
      const forTick = yield* post("/query/v1/getTransactionsForTick", { tickNumber: String(found.json.tickNumber) })
      assert.deepStrictEqual(forTick.json, [found.json])
      const tickData = yield* post("/query/v1/getTickData", { tickNumber: found.json.tickNumber })
      assert.deepStrictEqual(tickData.json.tickData.transactionHashes, [tx.txId])
    })
  )

  it.effect("serves the Query API: last processed tick and processed intervals", () =>
    Effect.gen(function* () {
      const last = yield* call("/query/v1/getLastProcessedTick")
      assert.deepStrictEqual(Object.keys(last.json).sort(), ["epoch", "intervalInitialTick", "tickNumber"])
      const intervals = yield* call("/query/v1/getProcessedTickIntervals")
      assert.isArray(intervals.json)
      assert.deepStrictEqual(intervals.json[0], {
        epoch: last.json.epoch,
        firstTick: last.json.intervalInitialTick,
        lastTick: intervals.json[0].lastTick
      })
      assert.isAtLeast(intervals.json[0].lastTick, last.json.tickNumber)
    })
  )

  it.effect("answers errors as grpc-gateway does: the code's HTTP status and { code, message, details }", () =>
    Effect.gen(function* () {
      const chain = yield* Chain
      const unknownTx = (yield* signedTx(mockSigner(seedA), { tick: 1 })).txId
      const cases = [
        [yield* post("/query/v1/getTransactionByHash", { hash: unknownTx }), 404, 5],
        [yield* post("/query/v1/getTransactionByHash", {}), 400, 3],
        [yield* post("/query/v1/getTransactionByHash", "{not json"), 400, 3],
        [yield* post("/live/v1/broadcast-transaction", { encodedTransaction: "AAAA" }), 500, 13],
        [yield* post("/live/v1/broadcast-transaction", { encodedTransaction: 42 }), 400, 3],
        [yield* post("/query/v1/getTickData", { tickNumber: 4_000_000_000 }), 400, 9],
        [yield* post("/query/v1/getTickData", { tickNumber: 5 }), 400, 11],
        [yield* post("/query/v1/getTickData", { tickNumber: "x" }), 400, 3],
        [yield* call("/live/v1/balances/abc"), 400, 3],
        [yield* call("/live/v2/nothing"), 404, 5]
      ] as const
      for (const [response, status, code] of cases) {
        assert.strictEqual(response.status, status, JSON.stringify(response.json))
        assert.deepStrictEqual(Object.keys(response.json), ["code", "message", "details"])
        assert.strictEqual(response.json.code, code)
        assert.isString(response.json.message)
        assert.deepStrictEqual(response.json.details, [])
      }
      yield* chain.faults.epochTransition("200 millis")
      const outage = yield* post("/live/v1/broadcast-transaction", {
        encodedTransaction: (yield* signedTx(mockSigner(seedA), { tick: (yield* chain.tickInfo).tick + 5 })).encoded
      })
      assert.deepStrictEqual([outage.status, outage.json.code], [503, 14])
    })
  )
})
