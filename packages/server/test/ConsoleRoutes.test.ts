/**
 * What the console relies on, over HTTP: the all-tasks event feed (each principal sees only the tasks it may), a
 * task's evidence for verification, the ledger overview, the console's page and its development tokens (the
 * server's own machine only), and CORS (off unless configured).
 */
import * as NodeFs from "node:fs"
import * as NodeHttp from "node:http"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { assert, describe, it, layer } from "@effect/vitest"
import { entryLeafHash, Merkle, verifyCheckpointSignature } from "@mandate/core"
import { ConfigProvider, Effect, Ref, Stream } from "effect"
import { HttpClient, HttpClientRequest, HttpServer } from "effect/http"
import { afterAll } from "vitest"
import { ServerConfig } from "../src/Config.ts"
import * as TestServer from "./utils/TestServer.ts"

const { call, tokens, walletA, walletB, waitForStatus, parseSse } = TestServer

const consoleDir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "mandate-console-routes-"))
NodeFs.writeFileSync(NodePath.join(consoleDir, "index.html"), "<!doctype html><title>console</title>")
NodeFs.writeFileSync(NodePath.join(consoleDir, "app.js"), "export {}")
afterAll(() => NodeFs.rmSync(consoleDir, { recursive: true, force: true }))

const transfer = (token: string) =>
  call("POST", "/task/start", {
    token,
    body: { task_type: "transfer_funds", parameters: { from: walletA, to: walletB, amount: 2_500 } }
  }).pipe(Effect.map((r) => r.body.task_id as string))

const monitoring = (token: string) =>
  call("POST", "/task/start", { token, body: { task_type: "monitoring", parameters: { wallet: walletA } } }).pipe(
    Effect.map((r) => r.body.task_id as string)
  )

/** Follows `GET /tasks/events` as `token` for the scope; `until` waits for the events seen to satisfy `done`. */
const feed = (token: string) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    const response = yield* HttpClient.withScope(client).execute(
      HttpClientRequest.get("/tasks/events").pipe(HttpClientRequest.bearerToken(token))
    )
    const text = yield* Ref.make("")
    yield* Stream.runForEach(Stream.decodeText(response.stream), (chunk) => Ref.update(text, (t) => t + chunk)).pipe(
      Effect.forkScoped
    )
    const events = Effect.map(Ref.get(text), (t) => parseSse(t.slice(0, t.lastIndexOf("\n\n") + 2)))
    const until = (done: (events: ReadonlyArray<any>) => boolean) =>
      Effect.gen(function* () {
        while (true) {
          const seen = yield* events
          if (done(seen)) return seen
          yield* Effect.sleep("20 millis")
        }
      }).pipe(Effect.timeout("60 seconds"), Effect.orDie)
    return { status: response.status, contentType: response.headers["content-type"] ?? "", until }
  })

const serverPort = Effect.gen(function* () {
  const address = (yield* HttpServer.HttpServer).address
  return "port" in address ? address.port : 0
})

/** A GET with exactly these headers (node:http sends the Host header it is given). */
const rawGet = (port: number, path: string, headers: Record<string, string>) =>
  Effect.promise(
    () =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const request = NodeHttp.get({ host: "127.0.0.1", port, path, headers }, (response) => {
          let body = ""
          response.setEncoding("utf8")
          response.on("data", (chunk) => {
            body += chunk
          })
          response.on("end", () => resolve({ status: response.statusCode ?? 0, body }))
        })
        request.on("error", reject)
      })
  )

const has = (taskId: string, kind: string) => (events: ReadonlyArray<any>) =>
  events.some((e) => e.task_id === taskId && e.kind === kind)

layer(
  TestServer.layer(TestServer.memoryServices(), {
    console: { dir: consoleDir, devTokens: TestServer.keys },
    sseKeepAlive: "200 millis"
  }),
  { excludeTestServices: true }
)("console routes", (it) => {
  it.effect("the task feed streams every task to an auditor, and to others only the tasks they may see", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const auditor = yield* feed(tokens.carol)
        const dave = yield* feed(tokens.dave)
        const bob = yield* feed(tokens.bob)
        assert.strictEqual(auditor.status, 200)
        assert.strictEqual(auditor.contentType, "text/event-stream")
        // Opens at once with a keepalive, and keeps sending them
        yield* dave.until((events) => events.filter((e) => e.kind === "keepalive").length >= 2)

        const alicesTransfer = yield* transfer(tokens.alice)
        const alicesMonitoring = yield* monitoring(tokens.alice)
        const davesTransfer = yield* transfer(tokens.dave)
        yield* auditor.until(has(davesTransfer, "task.created"))
        const auditorSaw = yield* auditor.until(has(alicesMonitoring, "task.completed"))
        assert.isTrue(has(alicesTransfer, "task.created")(auditorSaw))

        // Events reach a subscriber in publish order: by the time dave sees his own task, alice's came and went
        const daveSaw = yield* dave.until(has(davesTransfer, "task.created"))
        assert.deepStrictEqual([...new Set(daveSaw.flatMap((e) => (e.task_id ? [e.task_id] : [])))], [davesTransfer])
        // An approver sees the gated transfers it may decide, not alice's ungated monitoring
        const bobSaw = yield* bob.until(has(davesTransfer, "task.created"))
        const bobTasks = new Set(bobSaw.flatMap((e) => (e.task_id ? [e.task_id] : [])))
        assert.isTrue(bobTasks.has(alicesTransfer) && bobTasks.has(davesTransfer))
        assert.isFalse(bobTasks.has(alicesMonitoring))

        const agent = yield* call("GET", "/tasks/events", { token: tokens.robot })
        assert.strictEqual(agent.status, 403)
      })
    )
  )

  it.effect("a task's evidence proves each entry in a signed checkpoint and in the anchored one", () =>
    Effect.gen(function* () {
      const taskId = yield* transfer(tokens.alice)
      yield* waitForStatus(taskId, (s) => s === "waiting_approval")
      const anchored = yield* call("POST", "/ledger/anchor", { token: tokens.carol })
      assert.strictEqual(anchored.status, 200, anchored.text)
      yield* call("POST", `/task/${taskId}/approve`, { token: tokens.bob, body: { approved: true } })
      yield* waitForStatus(taskId, (s) => s === "completed")

      const reply = yield* call("GET", `/audit/${taskId}/evidence`, { token: tokens.carol })
      assert.strictEqual(reply.status, 200, reply.text)
      const evidence = reply.body
      const audit = yield* call("GET", `/audit/${taskId}`, { token: tokens.carol })
      assert.deepStrictEqual(evidence.entries, audit.body.entries)
      const checkpoint = {
        size: evidence.checkpoint.size,
        root: evidence.checkpoint.root,
        timestamp: evidence.checkpoint.timestamp,
        signature: evidence.checkpoint.signature,
        keyId: evidence.checkpoint.key_id
      }
      assert.isTrue(verifyCheckpointSignature(checkpoint, evidence.public_key))
      assert.strictEqual(evidence.key_id, checkpoint.keyId)
      const proves = (proof: any, entry: any, root: string) =>
        Merkle.verifyInclusionProof(
          { leafIndex: proof.leaf_index, treeSize: proof.tree_size, path: proof.path },
          entryLeafHash(entry.entry_hash),
          root
        )
      evidence.entries.forEach((entry: any, i: number) => {
        assert.isTrue(proves(evidence.proofs[i], entry, checkpoint.root), `entry ${entry.seq}`)
      })
      // Anchored before the approval: the entries until then are in the anchored tree, the later ones wait
      const anchor = evidence.anchored
      assert.strictEqual(anchor.anchor.tx_id, anchored.body.anchor.tx_id)
      assert.strictEqual(anchor.anchor.root, anchor.checkpoint.root)
      evidence.entries.forEach((entry: any, i: number) => {
        const proof = anchor.proofs[i]
        if (entry.seq < anchor.checkpoint.size) assert.isTrue(proves(proof, entry, anchor.checkpoint.root))
        else assert.isNull(proof)
      })
      assert.isTrue(evidence.entries.some((e: any) => e.seq >= anchor.checkpoint.size))

      // The requester verifies its own task; another submitter does not see it at all
      const own = yield* call("GET", `/audit/${taskId}/evidence`, { token: tokens.alice })
      assert.strictEqual(own.status, 200, own.text)
      assert.deepStrictEqual(own.body.entries, evidence.entries)
      assert.strictEqual((yield* call("GET", `/audit/${taskId}/evidence`, { token: tokens.dave })).status, 404)
      const missing = yield* call("GET", "/audit/task_nope/evidence", { token: tokens.carol })
      assert.strictEqual(missing.status, 404, missing.text)
    })
  )

  it.effect("the ledger overview: size, latest checkpoints first with their receipts, the key", () =>
    Effect.gen(function* () {
      yield* call("POST", "/ledger/anchor", { token: tokens.carol })
      const reply = yield* call("GET", "/ledger?limit=1", { token: tokens.carol })
      assert.strictEqual(reply.status, 200, reply.text)
      const size = (yield* call("GET", "/ledger/checkpoint", { token: tokens.carol })).body.size
      assert.isAtLeast(reply.body.size, size)
      assert.strictEqual(reply.body.checkpoints.length, 1)
      assert.isAtLeast(reply.body.checkpoint_count, 1)
      assert.isAtLeast(reply.body.anchored_count, 1)
      assert.match(reply.body.public_key, /BEGIN PUBLIC KEY/)
      const all = (yield* call("GET", "/ledger", { token: tokens.carol })).body.checkpoints
      assert.deepStrictEqual(
        all.map((r: any) => r.checkpoint.size),
        [...all.map((r: any) => r.checkpoint.size)].sort((a: number, b: number) => b - a)
      )
      assert.strictEqual((yield* call("GET", "/ledger", { token: tokens.alice })).status, 403)
      assert.strictEqual((yield* call("GET", "/ledger?limit=0", { token: tokens.carol })).status, 400)
    })
  )

  it.effect("serves the console page with a strict content policy, and its assets", () =>
    Effect.gen(function* () {
      const page = yield* call("GET", "/")
      assert.strictEqual(page.status, 200)
      assert.include(page.text, "<title>console</title>")
      assert.match(page.headers["content-type"] ?? "", /^text\/html/)
      assert.include(page.headers["content-security-policy"] ?? "", "default-src 'none'")
      assert.include(page.headers["content-security-policy"] ?? "", "frame-ancestors 'none'")
      assert.strictEqual(page.headers["x-content-type-options"], "nosniff")
      const script = yield* call("GET", "/console/app.js")
      assert.strictEqual(script.status, 200)
      assert.match(script.headers["content-type"] ?? "", /^text\/javascript/)
      assert.strictEqual((yield* call("GET", "/console/missing.js")).status, 404)
      assert.strictEqual((yield* call("GET", "/console/..%2f..%2fpackage.json")).status, 404)
    })
  )

  it.effect("hands development tokens only to the server's own machine, never to another origin", () =>
    Effect.gen(function* () {
      const local = yield* call("GET", "/console/dev-tokens")
      assert.strictEqual(local.status, 200, local.text)
      assert.strictEqual(local.headers["cache-control"], "no-store")
      const alice = local.body.principals.find((p: any) => p.id === "alice")
      assert.strictEqual(alice.token, tokens.alice)
      assert.deepStrictEqual(alice.roles, ["submitter"])
      // A page of another origin, a DNS-rebinding name for this address, a Host the browser was not pointed at
      // (sent with node:http: fetch does not let a caller choose the Host header)
      const port = yield* serverPort
      for (const headers of [
        { origin: "http://evil.example" },
        { host: "rebind.evil.example" },
        { host: `rebind.evil.example:${port}` },
        { host: "10.0.0.7:8000" },
        { origin: "null" },
        { host: `localhost:${port}`, origin: "http://localhost:1" }
      ]) {
        const refused = yield* rawGet(port, "/console/dev-tokens", headers)
        assert.strictEqual(refused.status, 403, JSON.stringify(headers))
        assert.notInclude(refused.body, tokens.alice)
      }
      const same = yield* rawGet(port, "/console/dev-tokens", {
        host: `localhost:${port}`,
        origin: `http://localhost:${port}`
      })
      assert.strictEqual(same.status, 200)
    })
  )

  it.effect("CORS stays off unless configured", () =>
    Effect.gen(function* () {
      const reply = yield* call("GET", "/health", { headers: { origin: "https://ops.example.com" } })
      assert.strictEqual(reply.status, 200)
      assert.isUndefined(reply.headers["access-control-allow-origin"])
    })
  )
})

layer(
  TestServer.layer(TestServer.memoryServices(), { corsOrigins: ["https://ops.example.com", "http://localhost:3000"] }),
  {
    excludeTestServices: true
  }
)("console routes with CORS and without development mode", (it) => {
  it.effect("answers the configured origins' preflights and requests, and no other origin", () =>
    Effect.gen(function* () {
      const preflight = yield* call("OPTIONS" as "GET", "/tasks", {
        headers: {
          origin: "https://ops.example.com",
          "access-control-request-method": "GET",
          "access-control-request-headers": "authorization"
        }
      })
      assert.isBelow(preflight.status, 300)
      assert.strictEqual(preflight.headers["access-control-allow-origin"], "https://ops.example.com")
      assert.include(preflight.headers["access-control-allow-headers"] ?? "", "authorization")
      assert.isUndefined(preflight.headers["access-control-allow-credentials"])
      const list = yield* call("GET", "/tasks", { token: tokens.carol, headers: { origin: "http://localhost:3000" } })
      assert.strictEqual(list.headers["access-control-allow-origin"], "http://localhost:3000")
      assert.include(list.headers["access-control-expose-headers"] ?? "", "x-request-id")
      const other = yield* call("GET", "/tasks", { token: tokens.carol, headers: { origin: "https://evil.example" } })
      assert.isUndefined(other.headers["access-control-allow-origin"])
    })
  )

  it.effect("serves no development tokens and no console when told so", () =>
    Effect.gen(function* () {
      assert.strictEqual((yield* call("GET", "/console/dev-tokens")).status, 404)
      assert.strictEqual((yield* call("GET", "/")).status, 404)
    })
  )
})

describe("MANDATE_CORS_ORIGINS", () => {
  const parse = (value: string | undefined) =>
    ServerConfig.parse(ConfigProvider.fromEnvRecord(value === undefined ? {} : { MANDATE_CORS_ORIGINS: value }))

  it.effect("is a comma-separated list of origins or *, empty by default; anything else is refused", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual((yield* parse(undefined)).corsOrigins, [])
      assert.deepStrictEqual((yield* parse(" https://a.example , http://localhost:3000,")).corsOrigins, [
        "https://a.example",
        "http://localhost:3000"
      ])
      assert.deepStrictEqual((yield* parse("*")).corsOrigins, ["*"])
      for (const bad of ["https://a.example/", "a.example", "https://a.example/path", "ftp://a.example"]) {
        const error = yield* Effect.flip(parse(bad))
        assert.include(String(error), "Expected an origin", bad)
      }
    })
  )
})
