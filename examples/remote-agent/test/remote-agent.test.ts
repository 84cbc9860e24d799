import * as NodeCrypto from "node:crypto"
import { createServer } from "node:http"
import { NodeHttpServer } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { assert, describe, it } from "@effect/vitest"
import * as Postgres from "@mandate/adapters/postgres"
import { Principal } from "@mandate/core"
import { Authenticator } from "@mandate/server/http/Auth"
import * as Server from "@mandate/server/Server"
import * as Stores from "@mandate/server/Stores"
import { Effect, Fiber, Layer, Redacted } from "effect"
import { FetchHttpClient, HttpServer } from "effect/http"
import { SqlClient } from "effect/sql"
import { run, type SignedTransfer, verifyTransfer } from "../src/Agent.ts"

const submitter = "alice.remote-agent-test"
const approver = "bob.remote-agent-test"
const agentToken = "robot.remote-agent-test"
const auditor = "carol.remote-agent-test"
const walletA = "A".repeat(60)
const walletB = "B".repeat(60)

// The seed's onchain_action runs on the agents of pool `signers`, not in the server
const options: Stores.StoresOptions = {
  remoteSteps: { onchain_action: "signers" },
  poolPrincipals: { signers: ["robot"] },
  anchor: Stores.layerAnchor("none"),
  runtime: { pollIntervalMs: 20 }
}

const server = (services: Layer.Layer<Stores.Services, unknown>, store: "memory" | "postgres") =>
  Server.layerApp({ console: false }).pipe(
    Layer.provide(
      Layer.mergeAll(
        Authenticator.layer({
          apiKeys: [
            { token: Redacted.make(submitter), principal: Principal.make("alice", ["submitter"]) },
            { token: Redacted.make(approver), principal: Principal.make("bob", ["approver"]) },
            { token: Redacted.make(agentToken), principal: Principal.make("robot", ["agent"]) },
            { token: Redacted.make(auditor), principal: Principal.make("carol", ["auditor"]) }
          ]
        }),
        Stores.Readiness.layer({ store, anchor: "none" }).pipe(Layer.provideMerge(services))
      )
    ),
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" }))
  )

const url = process.env.DATABASE_URL ?? "postgres://root@127.0.0.1:5432/test"
const pgClient = PgClient.layer({ url: Redacted.make(url), maxConnections: 1, connectTimeout: "3 seconds" })
const pgUnreachable: string | undefined = await Effect.runPromise(
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`).pipe(
    Effect.provide(pgClient),
    Effect.timeout("5 seconds"),
    Effect.as(undefined),
    Effect.catchCause((cause) => Effect.succeed(String(cause).split("\n")[0]))
  )
)

/** Postgres in a fresh schema, dropped when the server stops. */
const postgres = Layer.unwrap(
  Effect.sync(() => {
    const schema = `mandate_remote_steps_example_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`
    const drop = Layer.effectDiscard(
      Effect.addFinalizer(() =>
        Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`).pipe(
          Effect.provide(pgClient),
          Effect.ignore
        )
      )
    )
    return Stores.layerPg(Postgres.makeConfig(url, { schema, poolSize: 3 }), options).pipe(Layer.provideMerge(drop))
  })
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

const statusUntil = (base: string, taskId: string, until: (status: string) => boolean) =>
  Effect.gen(function* () {
    while (true) {
      const reply = yield* http(base, auditor, "GET", `/task/${taskId}/status`)
      if (until(reply.body.status)) return reply.body
      yield* Effect.sleep("25 millis")
    }
  })

const scenario = Effect.gen(function* () {
  const address = yield* HttpServer.HttpServer
  const base = HttpServer.formatAddress(address.address)

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
      privateKey,
      leaseMs: 600,
      paceMs: 300,
      heartbeatMs: 100,
      waitMs: 2_000,
      idleMs: 30,
      log: (line) => lines.push(line)
    }).pipe(Effect.provide(FetchHttpClient.layer), Effect.provideService(FetchHttpClient.Fetch, recordingFetch))
  )

  // start → waits for approval: the agent, polling all along, is offered nothing
  const transfer = { from: walletA, to: walletB, amount: 2_500 }
  const started = yield* http(base, submitter, "POST", "/task/start", {
    task_type: "transfer_funds",
    parameters: transfer
  })
  assert.strictEqual(started.status, 200, JSON.stringify(started.body))
  const taskId: string = started.body.task_id
  yield* statusUntil(base, taskId, (s) => s === "waiting_approval")
  const online = yield* Effect.gen(function* () {
    while (true) {
      const reply = yield* http(base, auditor, "GET", "/agents/robot.signer-1")
      if (reply.status === 200) return reply.body
      yield* Effect.sleep("25 millis")
    }
  })
  assert.strictEqual(online.pool, "signers")
  assert.isFalse(lines.some((l) => l.includes("signed")))

  // approve → signed by the agent → completed
  const approved = yield* http(base, approver, "POST", `/task/${taskId}/approve`, { approved: true })
  assert.strictEqual(approved.status, 200, JSON.stringify(approved.body))
  const done = yield* statusUntil(base, taskId, (s) => s === "completed" || s === "failed")
  assert.strictEqual(done.status, "completed", JSON.stringify(done))

  // audit: the agent is named on the step's entries, and its signature checks with the ledger alone
  const audit = yield* http(base, auditor, "GET", `/audit/${taskId}`)
  const entries: ReadonlyArray<any> = audit.body.entries
  const startedEntry = entries.find((e) => e.kind === "step.started" && e.step_id === "onchain_action")
  const succeeded = entries.find((e) => e.kind === "step.succeeded" && e.step_id === "onchain_action")
  assert.strictEqual(startedEntry.principal.id, "robot")
  assert.strictEqual(startedEntry.payload.worker, "robot.signer-1")
  assert.strictEqual(succeeded.payload.worker, "robot.signer-1")
  const approval = entries.findIndex((e) => e.kind === "approval.granted")
  assert.isAbove(entries.indexOf(startedEntry), approval, "the step started only after its approval")
  const result = succeeded.payload.result as SignedTransfer
  assert.isTrue(verifyTransfer(transfer, `${taskId}/onchain_action`, result))
  assert.isFalse(verifyTransfer({ ...transfer, amount: 2_501 }, `${taskId}/onchain_action`, result))
  assert.strictEqual(
    result.publicKey,
    NodeCrypto.createPublicKey(privateKey).export({ type: "spki", format: "pem" }).toString()
  )

  yield* Fiber.interrupt(agent)
  assert.strictEqual((yield* http(base, auditor, "GET", "/agents/robot.signer-1")).status, 404)
  assert.isTrue(lines.some((l) => l.startsWith("registered robot.signer-1 in pool signers")))
  assert.isTrue(lines.includes("deregistered robot.signer-1"))

  // The secret never left the agent: no request carried the private key in any encoding
  const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString()
  const der = privateKey.export({ type: "pkcs8", format: "der" })
  const raw = privateKey.export({ format: "jwk" }).d!
  assert.isAbove(sent.length, 4)
  for (const request of sent) {
    assert.notInclude(request, pem.split("\n")[1]!)
    assert.notInclude(request, der.toString("base64"))
    assert.notInclude(request, raw)
  }
  // The step's lease was kept with heartbeats (a third of the lease apart), and the agent reported its load
  assert.isTrue(sent.some((r) => /\/steps\/[^/]+\/heartbeat/.test(r)))
  assert.isTrue(sent.some((r) => /\/agents\/robot\.signer-1\/heartbeat/.test(r)))
})

describe("examples/remote-agent", () => {
  it.live(
    "memory: start → approve → signed by the agent → audit; its private key never leaves it",
    () => scenario.pipe(Effect.provide(server(Stores.layerMemory(options), "memory"))),
    60_000
  )
  if (pgUnreachable === undefined || process.env.CI === "true") {
    it.live(
      "postgres: start → approve → signed by the agent → audit",
      () => scenario.pipe(Effect.provide(server(postgres, "postgres"))),
      60_000
    )
  } else {
    console.warn(`[mandate] Skipping the remote agent's PostgreSQL run: cannot reach ${url} (${pgUnreachable})`)
  }
})
