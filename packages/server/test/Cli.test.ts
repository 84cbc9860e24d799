/**
 * The `mandate` CLI, run as a process (`bin/mandate.js`) against a live server on an ephemeral port: what it
 * prints and how it exits.
 */
import * as NodeChildProcess from "node:child_process"
import * as NodeCrypto from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodeHttp from "node:http"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { assert, layer } from "@effect/vitest"
import { LedgerStore, WebBundle } from "@mandate/core"
import { LedgerTamper } from "@mandate/core/testing"
import { Effect, Layer } from "effect"
import { HttpServer } from "effect/http"
import {
  call,
  memoryServices,
  layer as serverLayer,
  tokens,
  waitForStatus,
  walletA,
  walletB
} from "./utils/TestServer.ts"

const bin = NodePath.join(import.meta.dirname, "..", "bin", "mandate.js")

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs `mandate args…` against the test server, as `token`; never fails: the exit code is the result. */
const mandate = (args: ReadonlyArray<string>, options?: { readonly token?: string; readonly url?: string }) =>
  Effect.gen(function* () {
    const server = yield* HttpServer.HttpServer
    const url = options?.url ?? HttpServer.formatAddress(server.address)
    return yield* Effect.callback<Run>((resume) => {
      const child = NodeChildProcess.execFile(
        process.execPath,
        [bin, ...args],
        {
          // The source, not a possibly stale build
          env: {
            PATH: process.env.PATH ?? "",
            MANDATE_CLI_SOURCE: "1",
            MANDATE_URL: url,
            ...(options?.token === undefined ? {} : { MANDATE_TOKEN: options.token })
          }
        },
        (error, stdout, stderr) => {
          const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1
          resume(Effect.succeed({ code, stdout, stderr }))
        }
      )
      return Effect.sync(() => child.kill())
    })
  })

const json = (run: Run) => {
  assert.strictEqual(run.code, 0, `${run.stdout}\n${run.stderr}`)
  return JSON.parse(run.stdout)
}

const transfer = JSON.stringify({ from: walletA, to: walletB, amount: 1_200 })

// Each run starts Node and compiles the CLI's sources: seconds apiece, up to twenty on a loaded machine (a dozen runs a test)
const slow = { timeout: 900_000 }

const tmp = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "mandate-cli-"))

// The same memory ledger store as the server's (layers are shared within one build), for its tamper hook
layer(Layer.merge(serverLayer(memoryServices()), LedgerStore.layerMemory), {
  excludeTestServices: true,
  timeout: "120 seconds"
})("the mandate CLI", (it) => {
  it.effect(
    "help everywhere, usage errors exit 2, an unreachable server exits 7",
    () =>
      Effect.gen(function* () {
        const [help, tasksHelp, unknown, unreachable] = yield* Effect.all(
          [
            mandate(["--help"]),
            mandate(["tasks", "--help"]),
            mandate(["tasks", "lst"]),
            mandate(["tasks", "list"], { url: "http://127.0.0.1:1", token: tokens.carol })
          ],
          { concurrency: 2 }
        )
        assert.strictEqual(help.code, 0, help.stderr)
        for (const sub of ["serve", "tasks", "plan", "policy", "ledger", "queue", "agents"]) {
          assert.include(help.stdout, sub)
        }
        assert.include(help.stdout, "Exit codes")
        assert.strictEqual(tasksHelp.code, 0)
        for (const sub of ["list", "show", "watch", "approve", "reject", "cancel", "retry"]) {
          assert.include(tasksHelp.stdout, sub)
        }
        assert.strictEqual(unknown.code, 2)
        assert.include(unknown.stderr + unknown.stdout, "Did you mean")
        assert.strictEqual(unreachable.code, 7, unreachable.stderr)
        assert.include(unreachable.stderr, "Cannot reach the server")
      }),
    slow
  )

  it.effect(
    "plan --execute, tasks list/show, approve by the wrong and the right principal, watch to the end",
    () =>
      Effect.gen(function* () {
        const planned = json(
          yield* mandate(["plan", "transfer_funds", transfer, "--execute", "--json"], { token: tokens.alice })
        )
        assert.deepStrictEqual(
          planned.plan.steps.map((s: any) => s.decision.effect),
          ["allow", "allow", "require_approval"]
        )
        const taskId: string = planned.task.task_id
        yield* waitForStatus(taskId, (s) => s === "waiting_approval")

        const [listed, shown, table, badJson] = yield* Effect.all(
          [
            mandate(["tasks", "list", "--json", "--status", "waiting_approval"], { token: tokens.carol }),
            mandate(["tasks", "show", taskId, "--json"], { token: tokens.carol }),
            mandate(["tasks", "show", taskId], { token: tokens.carol }),
            mandate(["plan", "transfer_funds", "{not json"], { token: tokens.alice })
          ],
          { concurrency: 2 }
        )
        assert.isTrue(json(listed).tasks.some((t: any) => t.task_id === taskId))
        assert.strictEqual(json(shown).plan.hash, planned.plan.hash)
        assert.match(table.stdout, /onchain_action\s+onchain_action\s+require_approval\s+waiting_approval/)
        assert.strictEqual(badJson.code, 2)

        // Four eyes: the requester may not approve (4), nor can anyone see a missing task (5)
        const own = yield* mandate(["tasks", "approve", taskId], { token: tokens.alice })
        assert.strictEqual(own.code, 4, own.stderr)
        const missing = yield* mandate(["tasks", "show", "task_missing"], { token: tokens.carol })
        assert.strictEqual(missing.code, 5, missing.stderr)

        const approved = yield* mandate(["tasks", "approve", taskId, "--comment", "ok"], { token: tokens.bob })
        assert.strictEqual(approved.code, 0, approved.stderr)
        const watched = yield* mandate(["tasks", "watch", taskId], { token: tokens.carol })
        assert.strictEqual(watched.code, 0, watched.stderr)
        // From the snapshot (the task may have ended already) to the final state
        assert.match(watched.stdout, /task\.(snapshot|completed)\s+completed/)
      }),
    slow
  )

  it.effect(
    "policy: validate and test locally, publish and activate, a stale plan exits 6, roll back",
    () =>
      Effect.gen(function* () {
        const active = json(yield* mandate(["policy", "show", "--json"], { token: tokens.carol }))
        const frozen = NodePath.join(tmp, "frozen.json")
        NodeFs.writeFileSync(
          frozen,
          JSON.stringify({
            ...active.policy,
            name: "frozen",
            rules: [...active.policy.rules, { id: "freeze", effect: "deny", match: { task: "transfer_funds" } }]
          })
        )
        const broken = NodePath.join(tmp, "broken.json")
        NodeFs.writeFileSync(
          broken,
          JSON.stringify({ name: "broken", rules: [{ id: "x", effect: "maybe", match: {} }] })
        )

        const [valid, invalid, denies, wrongExpectation] = yield* Effect.all(
          [
            mandate(["policy", "validate", frozen]),
            mandate(["policy", "validate", broken]),
            mandate([
              "policy",
              "test",
              frozen,
              "--action",
              "onchain_action",
              "--task-type",
              "transfer_funds",
              "--expect",
              "deny"
            ]),
            mandate([
              "policy",
              "test",
              frozen,
              "--action",
              "check_balance",
              "--task-type",
              "monitoring",
              "--expect",
              "deny"
            ])
          ],
          { concurrency: 2 }
        )
        assert.strictEqual(valid.code, 0, valid.stderr)
        assert.include(valid.stdout, "valid")
        assert.strictEqual(invalid.code, 1)
        assert.include(invalid.stderr, "$.rules[0].effect")
        assert.strictEqual(denies.code, 0, denies.stderr)
        assert.strictEqual(wrongExpectation.code, 1)

        // A plan reviewed under the active policy
        const reviewed = json(yield* mandate(["plan", "transfer_funds", transfer, "--json"], { token: tokens.alice }))

        const refused = yield* mandate(["policy", "publish", frozen], { token: tokens.alice })
        assert.strictEqual(refused.code, 4, refused.stderr)
        const diff = json(yield* mandate(["policy", "diff", frozen, "--json"], { token: tokens.root }))
        assert.deepStrictEqual(diff.rules, [{ change: "added", rule: "freeze" }])
        assert.isAtLeast(diff.impact.changed, 1)
        const published = json(
          yield* mandate(["policy", "publish", frozen, "--activate", "--json"], { token: tokens.root })
        )
        assert.isTrue(published.activation.changed)

        // New plans are denied (1); the reviewed plan is stale (6), never silently re-planned
        const denied = yield* mandate(["plan", "transfer_funds", transfer], { token: tokens.alice })
        assert.strictEqual(denied.code, 1, denied.stderr)
        assert.include(denied.stdout, "deny")
        const stale = yield* call("POST", "/plan/execute", { token: tokens.alice, body: { plan_id: reviewed.plan_id } })
        assert.strictEqual(stale.status, 409)

        const history = json(yield* mandate(["policy", "history", "--json"], { token: tokens.carol }))
        assert.strictEqual(history.versions.find((v: any) => v.active).version, published.version)
        const rolledBack = json(
          yield* mandate(["policy", "activate", active.version.slice(0, 10), "--json"], { token: tokens.root })
        )
        assert.isTrue(rolledBack.rollback)
        assert.strictEqual(rolledBack.active.version, active.version)
        // Who activated which version when, from the ledger's policy.activated entries, oldest first
        const after = json(yield* mandate(["policy", "history", "--json"], { token: tokens.carol }))
        const [activated, rollback] = after.activations.slice(-2)
        assert.deepInclude(activated, { version: published.version, previous: active.version, rollback: false })
        assert.deepInclude(rollback, { version: active.version, previous: published.version, rollback: true })
        assert.strictEqual(activated.by, rollback.by)
        assert.isBelow(activated.seq, rollback.seq)
        assert.isAtMost(activated.at, rollback.at)
        const table = yield* mandate(["policy", "history"], { token: tokens.carol })
        assert.include(table.stdout, "ACTIVATED")
        assert.include(table.stdout, "(rollback)")
      }),
    slow
  )

  it.effect(
    "audit export writes a task's bundle; audit verify checks it offline against the pinned key, exit 1 on tampering",
    () =>
      Effect.gen(function* () {
        const started = yield* call("POST", "/task/start", {
          token: tokens.alice,
          body: { task_type: "transfer_funds", parameters: JSON.parse(transfer) }
        })
        assert.strictEqual(started.status, 200, started.text)
        const taskId: string = started.body.task_id
        yield* waitForStatus(taskId, (s) => s === "waiting_approval")
        assert.strictEqual((yield* call("POST", "/ledger/anchor", { token: tokens.carol })).status, 200)
        const overview = (yield* call("GET", "/ledger", { token: tokens.carol })).body
        const keyFile = NodePath.join(tmp, "ledger.pem")
        NodeFs.writeFileSync(keyFile, overview.public_key)

        const file = NodePath.join(tmp, "bundle.json")
        const exported = yield* mandate(["audit", "export", taskId, "-o", file], { token: tokens.alice })
        assert.strictEqual(exported.code, 0, exported.stderr)
        assert.include(exported.stderr, `wrote ${file}`)
        const [stdoutExport, hidden] = yield* Effect.all(
          [
            mandate(["audit", "export", taskId], { token: tokens.alice }),
            mandate(["audit", "export", taskId], { token: tokens.dave })
          ],
          { concurrency: "unbounded" }
        )
        assert.strictEqual(JSON.parse(stdoutExport.stdout).taskId, taskId)
        assert.strictEqual(hidden.code, 5, hidden.stderr)

        // Offline: no server, no token; the key pinned as a PEM file or as its id
        const offline = { url: "http://127.0.0.1:1" }
        const bundle = JSON.parse(NodeFs.readFileSync(file, "utf8"))
        const removed = structuredClone(bundle)
        removed.entries.splice(1, 1)
        removed.proofs.splice(1, 1)
        const bad = NodePath.join(tmp, "removed.json")
        NodeFs.writeFileSync(bad, JSON.stringify(removed))
        const otherKey = NodePath.join(tmp, "other.pem")
        NodeFs.writeFileSync(
          otherKey,
          NodeCrypto.generateKeyPairSync("ed25519").publicKey.export({ type: "spki", format: "pem" })
        )
        const [verified, byId, rejected, wrongKey] = yield* Effect.all(
          [
            mandate(["audit", "verify", file, "--key", keyFile], offline),
            mandate(["audit", "verify", file, "--key", overview.key_id, "--json"], offline),
            mandate(["audit", "verify", bad, "--key", keyFile], offline),
            mandate(["audit", "verify", file, "--key", otherKey], offline)
          ],
          { concurrency: "unbounded" }
        )
        assert.strictEqual(verified.code, 0, verified.stdout + verified.stderr)
        for (const check of ["signature", "entries", "inclusion", "completeness", "anchor.receipt"]) {
          assert.match(verified.stdout, new RegExp(`${check.replace(".", "\\.")}\\s+passed`), check)
        }
        assert.isTrue(json(byId).ok)
        assert.strictEqual(rejected.code, 1, rejected.stderr)
        assert.match(rejected.stdout, /completeness\s+FAILED/)
        assert.include(rejected.stderr, "does not verify: completeness")
        assert.strictEqual(wrongKey.code, 1, wrongKey.stderr)
        assert.match(wrongKey.stdout, /key\s+FAILED/)

        // --chain: the anchor transaction as a Qubic archive node reports it, with the right input or another
        const { anchor } = bundle
        const answers = [WebBundle.anchorInput(anchor.checkpoint.root, anchor.checkpoint.size)!, "00".repeat(40)]
        const rpc = NodeHttp.createServer((req, res) => {
          let body = ""
          req.on("data", (chunk) => {
            body += chunk
          })
          req.on("end", () => {
            const hash = JSON.parse(body).hash
            const ok = req.url === "/query/v1/getTransactionByHash" && hash === anchor.receipt.txId
            res.writeHead(ok ? 200 : 404, { "content-type": "application/json" })
            const input = answers[0]!
            res.end(
              JSON.stringify({
                hash,
                tickNumber: anchor.receipt.tick,
                inputData: Buffer.from(input, "hex").toString("base64")
              })
            )
          })
        })
        yield* Effect.acquireRelease(
          Effect.callback<void>((resume) => {
            rpc.listen(0, "127.0.0.1", () => resume(Effect.void))
          }),
          () => Effect.sync(() => rpc.close())
        )
        const rpcUrl = `http://127.0.0.1:${(rpc.address() as { port: number }).port}`
        const onChain = yield* mandate(["audit", "verify", file, "--key", keyFile, "--chain", rpcUrl], offline)
        assert.strictEqual(onChain.code, 0, onChain.stdout + onChain.stderr)
        assert.match(onChain.stdout, /anchor\.chain\s+passed/)
        answers.shift()
        const otherInput = yield* mandate(["audit", "verify", file, "--key", keyFile, "--chain", rpcUrl], offline)
        assert.strictEqual(otherInput.code, 1, otherInput.stdout + otherInput.stderr)
        assert.match(otherInput.stdout, /anchor\.chain\s+FAILED/)
      }).pipe(Effect.scoped),
    slow
  )

  it.effect(
    "ledger verify in ranges, queue and agents",
    () =>
      Effect.gen(function* () {
        // A task's entries, whatever ran before
        const started = yield* call("POST", "/task/start", {
          token: tokens.alice,
          body: { task_type: "monitoring", parameters: { wallet: walletA } }
        })
        yield* waitForStatus(started.body.task_id, (s) => s === "completed")
        const [verified, forbidden, stats, dead, redrive, agents] = yield* Effect.all(
          [
            mandate(["ledger", "verify", "--chunk", "3", "--json"], { token: tokens.carol }),
            mandate(["ledger", "verify"], { token: tokens.alice }),
            mandate(["queue", "stats", "--json"], { token: tokens.carol }),
            mandate(["queue", "dead", "--json"], { token: tokens.carol }),
            mandate(["queue", "redrive", "job_missing"], { token: tokens.root }),
            mandate(["agents", "list", "--json"], { token: tokens.root })
          ],
          { concurrency: 2 }
        )
        const report = json(verified)
        const size = (yield* call("GET", "/ledger?limit=1", { token: tokens.carol })).body.size
        assert.isTrue(report.valid)
        assert.isAtLeast(report.entries, 4)
        assert.isAtMost(report.entries, size)
        assert.strictEqual(forbidden.code, 4, forbidden.stderr)
        assert.isNumber(json(stats).by_state.completed)
        assert.isArray(json(dead).jobs)
        assert.strictEqual(redrive.code, 5, redrive.stderr)
        assert.isTrue(json(agents).some((a: any) => a.status === "online"))

        // Change a stored payload behind the ledger's back: the server's check names the entry, the CLI exits 1
        const [first] = (yield* call("GET", "/ledger/entries?limit=1", { token: tokens.carol })).body.entries
        const tamper = yield* LedgerTamper
        yield* tamper.replaceEntry(first.seq, {
          seq: first.seq,
          kind: first.kind,
          ...(first.task_id === undefined ? {} : { taskId: first.task_id }),
          ...(first.task_prev_hash === undefined ? {} : { taskPrevHash: first.task_prev_hash }),
          ...(first.principal === undefined ? {} : { principal: first.principal }),
          at: first.at,
          payloadHash: first.payload_hash,
          payload: { ...first.payload, tampered: true },
          prevHash: first.prev_hash,
          entryHash: first.entry_hash
        })
        const checked = yield* call("GET", "/ledger/verify", { token: tokens.carol })
        assert.isFalse(checked.body.valid, checked.text)
        assert.strictEqual(checked.body.mismatch.seq, first.seq)
        const tampered = yield* mandate(["ledger", "verify"], { token: tokens.carol })
        assert.strictEqual(tampered.code, 1, tampered.stderr)
        assert.include(tampered.stdout, "TAMPERED")
        assert.include(tampered.stderr, `entry ${first.seq}`)
      }),
    slow
  )
})
