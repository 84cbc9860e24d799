import * as NodeCrypto from "node:crypto"
import { createServer } from "node:http"
import { NodeHttpServer } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Principal } from "@mandate/core"
import { Authenticator } from "@mandate/server/http/Auth"
import * as Server from "@mandate/server/Server"
import * as Stores from "@mandate/server/Stores"
import { Effect, Fiber, Layer, Redacted } from "effect"
import { FetchHttpClient, HttpServer } from "effect/http"
import { run, type Signature, verify } from "../src/Agent.ts"

const submitter = "alice.remote-agent-test"
const agentToken = "robot.remote-agent-test"
const auditor = "carol.remote-agent-test"

const server = Server.layerApp().pipe(
  Layer.provide(
    Layer.mergeAll(
      Authenticator.layer({
        apiKeys: [
          { token: Redacted.make(submitter), principal: Principal.make("alice", ["submitter"]) },
          { token: Redacted.make(agentToken), principal: Principal.make("robot", ["agent"]) },
          { token: Redacted.make(auditor), principal: Principal.make("carol", ["auditor"]) }
        ]
      }),
      Stores.Readiness.layer({ store: "memory", anchor: "none" }).pipe(
        Layer.provideMerge(Stores.layerMemory({ anchor: Stores.layerAnchor("none") }))
      )
    )
  ),
  Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" }))
)

const http = (base: string, token: string, method: string, path: string, body?: unknown) =>
  Effect.promise(async () => {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
    return { status: response.status, body: (await response.json()) as any }
  })

describe("examples/remote-agent", () => {
  it.live(
    "registers, claims, heartbeats and completes signing jobs over HTTP; its private key never leaves it",
    () =>
      Effect.gen(function* () {
        const address = yield* HttpServer.HttpServer
        const base = HttpServer.formatAddress(address.address)
        const queue = `signing-${crypto.randomUUID().slice(0, 8)}`
        const documents = ["invoice INV-7: 120 QU", "contract v2", "release notes 1.4"]
        const jobs: Array<string> = []
        for (const document of documents) {
          const reply = yield* http(base, submitter, "POST", "/queue/jobs", { queue, payload: { document } })
          assert.strictEqual(reply.status, 200)
          jobs.push(reply.body.job_id)
        }
        const bad = yield* http(base, submitter, "POST", "/queue/jobs", { queue, payload: { nope: true } })

        // Record every request the agent sends
        const sent: Array<string> = []
        const recordingFetch: typeof fetch = (input, init) => {
          sent.push(`${String(input)} ${JSON.stringify(init?.headers ?? {})} ${String(init?.body ?? "")}`)
          return fetch(input, init)
        }
        const { privateKey } = NodeCrypto.generateKeyPairSync("ed25519")
        const lines: Array<string> = []
        const agent = yield* Effect.forkChild(
          run({
            baseUrl: base,
            token: agentToken,
            agentId: "robot.signer-1",
            pool: "eu",
            queues: [queue],
            privateKey,
            leaseMs: 600,
            paceMs: 450,
            heartbeatMs: 100,
            idleMs: 50,
            log: (line) => lines.push(line)
          }).pipe(Effect.provide(FetchHttpClient.layer), Effect.provideService(FetchHttpClient.Fetch, recordingFetch))
        )

        const results = yield* Effect.gen(function* () {
          while (true) {
            const replies = yield* Effect.forEach(jobs, (id) => http(base, auditor, "GET", `/queue/jobs/${id}`))
            if (replies.every((r) => r.body.status === "completed")) return replies.map((r) => r.body)
            yield* Effect.sleep("50 millis")
          }
        }).pipe(Effect.timeout("30 seconds"))
        const refused = yield* Effect.gen(function* () {
          while (true) {
            const reply = yield* http(base, auditor, "GET", `/queue/jobs/${bad.body.job_id}`)
            if (reply.body.status === "dead_lettered") return reply.body
            yield* Effect.sleep("50 millis")
          }
        }).pipe(Effect.timeout("30 seconds"))

        const online = yield* http(base, auditor, "GET", "/agents/robot.signer-1")
        assert.strictEqual(online.body.status, "online")
        assert.isNumber(online.body.load)
        assert.strictEqual(online.body.pool, "eu")

        for (const [i, job] of results.entries()) {
          const signature = job.result as Signature
          assert.isTrue(verify(documents[i]!, signature), `job ${i}`)
          assert.isFalse(verify(`${documents[i]} (altered)`, signature))
          assert.strictEqual(job.lease, undefined)
          assert.strictEqual(job.attempts, 1)
        }
        assert.strictEqual(refused.last_error, "payload is not { document: string }")

        yield* Fiber.interrupt(agent)
        assert.strictEqual((yield* http(base, auditor, "GET", "/agents/robot.signer-1")).status, 404)
        assert.isTrue(lines.some((l) => l.startsWith("registered robot.signer-1")))
        assert.isTrue(lines.includes("deregistered robot.signer-1"))

        // The secret never left the agent: no request carried the private key in any encoding
        const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString()
        const der = privateKey.export({ type: "pkcs8", format: "der" })
        const raw = privateKey.export({ format: "jwk" }).d!
        assert.isAbove(sent.length, 8)
        for (const request of sent) {
          assert.notInclude(request, pem.split("\n")[1]!)
          assert.notInclude(request, der.toString("base64"))
          assert.notInclude(request, raw)
        }
        // Jobs kept their leases with heartbeats (a third of the lease apart), and the agent reported its load
        assert.isTrue(sent.some((r) => /\/queue\/jobs\/[^/]+\/heartbeat/.test(r)))
        assert.isTrue(sent.some((r) => /\/agents\/robot\.signer-1\/heartbeat/.test(r)))
      }).pipe(Effect.provide(server)),
    60_000
  )
})
