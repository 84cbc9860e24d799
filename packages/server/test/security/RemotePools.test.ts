/**
 * Remote pools are closed by default: a pool's steps (which may carry secrets or money) go to the agents of the
 * principals it names only, and an agent not named can neither register in it nor claim from it. A pool naming no
 * one is served by admins' agents only; development mode (`npm start` without configuration) names its own `agent`
 * for the configured pools, so the two-command experience stays. A long-polling claim ends when the server drains.
 */
import * as ChildProcess from "node:child_process"
import * as NodeFs from "node:fs"
import * as Net from "node:net"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import type * as Stores from "../../src/Stores.ts"
import * as TestPostgres from "../utils/TestPostgres.ts"
import * as TestRedis from "../utils/TestRedis.ts"
import * as TestServer from "../utils/TestServer.ts"

const { call, tokens } = TestServer

// `signers` names robot; `vaults` names no one
const options = {
  remoteSteps: { onchain_action: "signers", monitor_action: "vaults" },
  poolPrincipals: { signers: ["robot"] }
}

const pools = <E>(name: string, services: Layer.Layer<Stores.Services | Stores.Readiness, E>) =>
  layer(TestServer.layer(services), { excludeTestServices: true, timeout: "60 seconds" })(name, (it) => {
    it.effect("an agent not named for a pool cannot register in it nor claim its steps", () =>
      Effect.gen(function* () {
        const id = crypto.randomUUID().slice(0, 8)
        const register = (token: string, agentId: string, pool: string) =>
          call("POST", "/agents", { token, body: { agent_id: agentId, pool } })
        // robot.eu is an agent too, but not one signers names
        const eu = yield* register(tokens.robotEu, `robot.eu-${id}`, "signers")
        assert.strictEqual(eu.status, 403, eu.text)
        // No one is named for vaults: robot's agents are refused there, with the reason
        const vault = yield* register(tokens.robot, `robot.vault-${id}`, "vaults")
        assert.strictEqual(vault.status, 403, vault.text)
        assert.include(vault.body.message, "names no principals")
        const claimVault = yield* call("POST", "/pools/vaults/claim", {
          token: tokens.robot,
          body: { worker_id: `robot.vault-${id}` }
        })
        assert.notStrictEqual(claimVault.status, 200, claimVault.text)
        // robot is named for signers: it registers and claims
        assert.strictEqual((yield* register(tokens.robot, `robot.s-${id}`, "signers")).status, 200)
        const claim = yield* call("POST", "/pools/signers/claim", {
          token: tokens.robot,
          body: { worker_id: `robot.s-${id}` }
        })
        assert.strictEqual(claim.status, 200, claim.text)
        // A pool no remote step type uses stays a host pool, open to agents
        assert.strictEqual((yield* register(tokens.robot, `robot.h-${id}`, `hosts-${id}`)).status, 200)
        // Admins serve any pool
        assert.strictEqual((yield* register(tokens.root, `root.v-${id}`, "vaults")).status, 200)
      })
    )
  })

describe("security: remote pools are served by the principals they name", () => {
  pools("memory", TestServer.memoryServices(options))
  TestPostgres.describePostgres("postgres", () => {
    pools("postgres", TestPostgres.services(options))
  })
  TestRedis.describeRedis("redis", () => {
    pools("redis", TestRedis.services(options))
  })
})

const root = NodePath.resolve(import.meta.dirname, "../../../..")

const freePort = () =>
  Effect.promise(
    () =>
      new Promise<number>((resolve) => {
        const server = Net.createServer()
        server.listen(0, "127.0.0.1", () => {
          const port = (server.address() as Net.AddressInfo).port
          server.close(() => resolve(port))
        })
      })
  )

describe("security: development mode and the drain", () => {
  it.live(
    "npm start without configuration: the dev agent serves the configured pool; SIGTERM ends its long poll",
    () =>
      Effect.gen(function* () {
        const port = yield* freePort()
        const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "mandate-trust-polish-"))
        const tokensFile = NodePath.join(dir, "dev-tokens.env")
        const env: Record<string, string | undefined> = {
          ...process.env,
          PORT: String(port),
          HOST: "127.0.0.1",
          MANDATE_DEV_TOKENS_FILE: tokensFile,
          MANDATE_REMOTE_STEPS: "onchain_action:signers",
          // Far shorter than the poll: a poll still open when the grace ends is cut off, not answered
          MANDATE_SHUTDOWN_GRACE: "3 seconds",
          MANDATE_ANCHOR: "none",
          NODE_OPTIONS: ""
        }
        for (const key of [
          "MANDATE_API_KEYS",
          "MANDATE_JWT_SECRET",
          "MANDATE_JWT_PUBLIC_KEY",
          "MANDATE_POOL_PRINCIPALS"
        ]) {
          delete env[key]
        }
        const child = ChildProcess.spawn(
          process.execPath,
          ["--conditions=mandate-source", "--import", "tsx", "packages/server/src/main.ts"],
          { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] }
        )
        let output = ""
        child.stdout.on("data", (chunk) => {
          output += chunk
        })
        child.stderr.on("data", (chunk) => {
          output += chunk
        })
        const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            if (child.exitCode === null) child.kill("SIGKILL")
            NodeFs.rmSync(dir, { recursive: true, force: true })
          })
        )
        yield* Effect.promise(async () => {
          while (!output.includes("Mandate server listening")) {
            if (child.exitCode !== null) throw new Error(`server exited: ${output}`)
            await new Promise((r) => setTimeout(r, 50))
          }
        })
        const token = /MANDATE_TOKEN_AGENT=(\S+)/.exec(NodeFs.readFileSync(tokensFile, "utf8"))![1]!
        const base = `http://127.0.0.1:${port}`
        const post = (path: string, body: unknown) =>
          fetch(`${base}${path}`, {
            method: "POST",
            headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
            body: JSON.stringify(body)
          })
        const registered = yield* Effect.promise(() => post("/agents", { agent_id: "agent.s1", pool: "signers" }))
        assert.strictEqual(registered.status, 200, yield* Effect.promise(() => registered.text()))
        // A long poll on an idle pool: it would wait 20 s, past the drain's grace
        const polling = post("/pools/signers/claim", { worker_id: "agent.s1", wait_ms: 20_000 }).catch(
          (error: unknown) => ({
            status: 0,
            clone: () => ({ text: async () => String(error) }),
            json: async () => null
          })
        )
        // The claim is waiting once the agent's heartbeat (a claim counts as one) is recorded: give it a moment
        yield* Effect.sleep("500 millis")
        child.kill("SIGTERM")
        const answered = yield* Effect.promise(() => polling)
        assert.strictEqual(answered.status, 200, yield* Effect.promise(() => answered.clone().text()))
        assert.deepStrictEqual(yield* Effect.promise(() => answered.json()), { steps: [] })
        assert.strictEqual(yield* Effect.promise(() => exited), 0, output)
      }).pipe(Effect.scoped),
    60_000
  )
})
