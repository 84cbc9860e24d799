import * as NodePath from "node:path"
import * as NodeUrl from "node:url"
import { NodeServices } from "@effect/platform-node"
import { assert, describe, it, layer } from "@effect/vitest"
import { ChatCompletions, FakeServer } from "@mandate/adapters/openai"
import { type PolicySet, Seed } from "@mandate/core"
import { ConfigProvider, Effect, Layer } from "effect"
import { McpClient, McpProtocol } from "effect/ai"
import { FetchHttpClient, HttpServer } from "effect/http"
import { ChildProcess } from "effect/process"
import { ServerConfig } from "../src/Config.ts"
import * as Stores from "../src/Stores.ts"
import * as TestServer from "./utils/TestServer.ts"

const { call, tokens, walletA, walletB } = TestServer
const repoRoot = NodePath.resolve(NodePath.dirname(NodeUrl.fileURLToPath(import.meta.url)), "../../..")

/** An MCP client of the test server's `/mcp`, with `token` (the same bearer tokens as the API). */
const connect = (
  token: string,
  protocol: McpProtocol.ProtocolAdapter<McpClient.ProtocolVersion> = McpProtocol.v2025_11_25
) =>
  Effect.gen(function* () {
    const server = yield* HttpServer.HttpServer
    const url = `${HttpServer.formatAddress(server.address)}/mcp`
    const transport = yield* McpClient.http({ url, protocol, headers: { authorization: `Bearer ${token}` } })
    return yield* McpClient.make({ name: "mandate-test", version: "1.0.0" }).pipe(
      Effect.provideService(McpClient.Transport, transport)
    )
  }).pipe(Effect.provide(FetchHttpClient.layer))

const callTool = (client: McpClient.McpClient, name: string, args: Record<string, unknown>) =>
  Effect.gen(function* () {
    const tools = yield* client.listTools()
    const tool = tools.find((t) => t.name === name)
    assert.isDefined(tool, `tool ${name}`)
    return yield* client.callTool({ tool: tool!, arguments: args })
  })

const text = (result: { readonly content: ReadonlyArray<unknown> }) =>
  result.content.map((c) => (c as { text?: string }).text ?? "").join("\n")

layer(TestServer.layer(TestServer.memoryServices()), { excludeTestServices: true, timeout: "60 seconds" })(
  "MCP over Streamable HTTP (/mcp)",
  (it) => {
    it.effect("needs a valid bearer token", () =>
      Effect.gen(function* () {
        const none = yield* call("POST", "/mcp", { body: { jsonrpc: "2.0", id: 1, method: "tools/list" } })
        assert.strictEqual(none.status, 401)
        assert.match(none.headers["www-authenticate"] ?? "", /Bearer/)
        const bad = yield* call("POST", "/mcp", {
          token: "nobody.token",
          body: { jsonrpc: "2.0", id: 1, method: "tools/list" }
        })
        assert.strictEqual(bad.status, 401)
      })
    )

    it.effect("without the LLM planner, POST /task/start {goal} is a bad request naming the kind", () =>
      Effect.gen(function* () {
        const reply = yield* call("POST", "/task/start", { token: tokens.alice, body: { goal: "pay bob" } })
        assert.strictEqual(reply.status, 400, reply.text)
        assert.include(reply.text, "goal")
      })
    )

    it.effect("lists the templates as tools with their params as input schema, and the task tools", () =>
      Effect.gen(function* () {
        const client = yield* connect(tokens.alice)
        const tools = yield* client.listTools()
        const names = tools.map((t) => t.name).sort()
        for (const name of [
          "monitoring",
          "plan_preview",
          "task_status",
          "task_trail",
          "transaction",
          "transfer_funds"
        ]) {
          assert.include(names, name)
        }
        assert.notInclude(names, "propose_plan")
        const transfer = tools.find((t) => t.name === "transfer_funds")!
        const schema = transfer.inputSchema as any
        assert.deepStrictEqual(Object.keys(schema.properties).sort(), ["amount", "from", "to"])
      }).pipe(Effect.scoped)
    )

    it.effect("a call that completes answers the task's outcome", () =>
      Effect.gen(function* () {
        const client = yield* connect(tokens.alice)
        const result = yield* callTool(client, "monitoring", { wallet: walletA })
        assert.notStrictEqual(result.isError, true, text(result))
        const structured = result.structuredContent as any
        assert.strictEqual(structured.status, "completed")
        assert.deepStrictEqual(
          structured.steps.map((s: any) => [s.id, s.state]),
          [
            ["check_balance", "succeeded"],
            ["monitor_action", "succeeded"]
          ]
        )
        // The caller is the token's principal: the task is alice's
        const status = yield* call("GET", `/task/${structured.task_id}`, { token: tokens.alice })
        assert.strictEqual(status.status, 200)
        const other = yield* call("GET", `/task/${structured.task_id}`, { token: tokens.dave })
        assert.strictEqual(other.status, 404)

        // The trail: the task's entries, each verified; only for a principal who may read the task
        const trail = yield* callTool(client, "task_trail", { task_id: structured.task_id })
        assert.notStrictEqual(trail.isError, true, text(trail))
        const entries = (trail.structuredContent as any).entries as ReadonlyArray<any>
        assert.strictEqual(entries[0].kind, "task.created")
        assert.strictEqual(entries.at(-1).kind, "task.completed")
        assert.isTrue(entries.every((e) => e.verified === true))
        const dave = yield* connect(tokens.dave)
        const hidden = yield* callTool(dave, "task_trail", { task_id: structured.task_id })
        assert.isTrue(hidden.isError)
        assert.strictEqual((hidden.structuredContent as any).error, "not_found")
      }).pipe(Effect.scoped)
    )

    it.effect("a call that needs approval answers pending, and completes after a human approves over HTTP", () =>
      Effect.gen(function* () {
        const client = yield* connect(tokens.alice, McpProtocol.v2026_07_28)
        const result = yield* callTool(client, "transfer_funds", { from: walletA, to: walletB, amount: 2_500 })
        assert.notStrictEqual(result.isError, true, text(result))
        const pending = result.structuredContent as any
        assert.strictEqual(pending.status, "pending_approval")
        assert.deepStrictEqual(pending.waiting_steps, ["onchain_action"])
        assert.match(pending.console, new RegExp(`/#/task/${pending.task_id}$`))
        assert.include(text(result), "Pending approval")

        const approved = yield* call("POST", `/task/${pending.task_id}/approve`, {
          token: tokens.bob,
          body: { approved: true }
        })
        assert.strictEqual(approved.status, 200, approved.text)
        yield* TestServer.waitForStatus(pending.task_id, (s) => s === "completed")
        const status = yield* callTool(client, "task_status", { task_id: pending.task_id })
        assert.strictEqual((status.structuredContent as any).status, "completed")
        const onchain = (status.structuredContent as any).steps.find((s: any) => s.id === "onchain_action")
        assert.match(onchain.result.txId ?? JSON.stringify(onchain.result), /[a-z]{60}/)
      }).pipe(Effect.scoped)
    )

    it.effect("a denied call is a tool error with the policy's reasons; plan_preview says so beforehand", () =>
      Effect.gen(function* () {
        const client = yield* connect(tokens.alice)
        const args = { from: walletA, to: walletB, amount: 2_000_000 }
        const preview = yield* callTool(client, "plan_preview", { task_type: "transfer_funds", parameters: args })
        assert.notStrictEqual(preview.isError, true, text(preview))
        assert.isFalse((preview.structuredContent as any).would_run)
        assert.include((preview.structuredContent as any).denied, "onchain_action")
        assert.include(text(preview), "transfers above 1,000,000 QU are denied")

        const denied = yield* callTool(client, "transfer_funds", args)
        assert.isTrue(denied.isError)
        assert.strictEqual((denied.structuredContent as any).error, "policy_denied")
        assert.include(text(denied), "transfers above 1,000,000 QU are denied")
      }).pipe(Effect.scoped)
    )

    it.effect("bad arguments are a schema error naming the field; a principal without the role is refused", () =>
      Effect.gen(function* () {
        const client = yield* connect(tokens.alice)
        const bad = yield* callTool(client, "transfer_funds", { from: walletA, to: "nope", amount: 5 })
        assert.isTrue(bad.isError)
        assert.strictEqual((bad.structuredContent as any).error, "invalid_arguments")
        assert.strictEqual((bad.structuredContent as any).path, "$.to")
        assert.include(text(bad), "$.to")
        const missing = yield* callTool(client, "task_status", {})
        assert.isTrue(missing.isError)
        assert.strictEqual((missing.structuredContent as any).path, "$.task_id")

        const auditor = yield* connect(tokens.carol)
        const forbidden = yield* callTool(auditor, "monitoring", { wallet: walletA })
        assert.isTrue(forbidden.isError)
        assert.strictEqual((forbidden.structuredContent as any).error, "forbidden")
      }).pipe(Effect.scoped)
    )
  }
)

/** An MCP client of `npm run mcp` (the stdio server) launched as a subprocess, forwarding to the test server. */
const connectStdio = (token: string) =>
  Effect.gen(function* () {
    const server = yield* HttpServer.HttpServer
    const command = ChildProcess.make(
      process.execPath,
      ["--conditions=mandate-source", "--import", "tsx", "packages/server/src/mcp.ts"],
      {
        cwd: repoRoot,
        env: { MANDATE_URL: HttpServer.formatAddress(server.address), MANDATE_TOKEN: token },
        extendEnv: true
      }
    )
    const transport = yield* McpClient.stdio({ command, protocol: McpProtocol.v2025_11_25 })
    return yield* McpClient.make({ name: "mandate-test", version: "1.0.0" }).pipe(
      Effect.provideService(McpClient.Transport, transport)
    )
  }).pipe(Effect.provide(NodeServices.layer))

layer(TestServer.layer(TestServer.memoryServices()), { excludeTestServices: true, timeout: "60 seconds" })(
  "MCP over stdio (npm run mcp)",
  (it) => {
    it.effect("lists, completes, waits for approval, is denied with reasons, and names a bad field", () =>
      Effect.gen(function* () {
        const client = yield* connectStdio(tokens.alice)
        const names = (yield* client.listTools()).map((t) => t.name)
        for (const name of ["transfer_funds", "monitoring", "task_status", "plan_preview", "task_trail"]) {
          assert.include(names, name)
        }

        const done = yield* callTool(client, "monitoring", { wallet: walletA })
        assert.strictEqual((done.structuredContent as any).status, "completed", text(done))

        const pending = yield* callTool(client, "transfer_funds", { from: walletA, to: walletB, amount: 700 })
        const taskId = (pending.structuredContent as any).task_id
        assert.strictEqual((pending.structuredContent as any).status, "pending_approval", text(pending))
        const approved = yield* call("POST", `/task/${taskId}/approve`, { token: tokens.bob, body: { approved: true } })
        assert.strictEqual(approved.status, 200, approved.text)
        yield* TestServer.waitForStatus(taskId, (s) => s === "completed")
        const status = yield* callTool(client, "task_status", { task_id: taskId })
        assert.strictEqual((status.structuredContent as any).status, "completed")

        const denied = yield* callTool(client, "transfer_funds", { from: walletA, to: walletB, amount: 5_000_000 })
        assert.isTrue(denied.isError)
        assert.include(text(denied), "transfers above 1,000,000 QU are denied")

        const bad = yield* callTool(client, "monitoring", { wallet: 42 })
        assert.isTrue(bad.isError)
        assert.strictEqual((bad.structuredContent as any).path, "$.wallet")
      }).pipe(Effect.scoped)
    )
  }
)

/** The seed policy plus: model-planned on-chain steps need one approval. */
const goalPolicy: PolicySet.PolicySet = {
  ...Seed.defaultPolicySet,
  rules: [
    ...Seed.defaultPolicySet.rules,
    {
      id: "goal-onchain",
      effect: "require_approval",
      match: { task: "goal", action: "onchain_action" },
      reason: "model-planned transfers need an approver",
      approvals: { required: 1 }
    }
  ]
}

/** The server with the LLM planner, its model a scripted OpenAI-compatible endpoint. */
const withLlm = Layer.unwrap(
  // A model that answers garbage when asked to, and plans transfers otherwise
  Effect.map(
    FakeServer.make((r) => (r.user.includes("garbage") ? "Sure! {steps:" : FakeServer.transferScript(r))),
    (fake) =>
      TestServer.layer(
        TestServer.memoryServices({
          policy: goalPolicy,
          llm: {
            model: "fake-planner",
            languageModel: ChatCompletions.layer({ url: fake.url, model: "fake-planner" }).pipe(
              Layer.provide(FetchHttpClient.layer)
            )
          }
        })
      )
  )
)

layer(withLlm, { excludeTestServices: true, timeout: "60 seconds" })("LLM planner over HTTP and MCP", (it) => {
  it.effect("POST /task/start {goal}: planned by the model, gated by policy, completed after approval", () =>
    Effect.gen(function* () {
      const started = yield* call("POST", "/task/start", {
        token: tokens.alice,
        body: { goal: `Please transfer 300 QU from ${walletA} to ${walletB}` }
      })
      assert.strictEqual(started.status, 200, started.text)
      const taskId = started.body.task_id
      yield* TestServer.waitForStatus(taskId, (s) => s === "waiting_approval")
      const approved = yield* call("POST", `/task/${taskId}/approve`, { token: tokens.bob, body: { approved: true } })
      assert.strictEqual(approved.status, 200, approved.text)
      yield* TestServer.waitForStatus(taskId, (s) => s === "completed")

      const client = yield* connect(tokens.alice)
      const trail = yield* callTool(client, "task_trail", { task_id: taskId })
      const proposed = (trail.structuredContent as any).entries.find((e: any) => e.kind === "plan.proposed")
      assert.strictEqual(proposed.payload.model, "fake-planner")
      assert.match(proposed.payload.responseHash, /^[0-9a-f]{64}$/)
    }).pipe(Effect.scoped)
  )

  it.effect("a refused proposal is 422 with the reason; nothing starts", () =>
    Effect.gen(function* () {
      const reply = yield* call("POST", "/task/start", { token: tokens.alice, body: { goal: "answer garbage" } })
      assert.strictEqual(reply.status, 422, reply.text)
      assert.include(reply.body.message, "not JSON")
      const client = yield* connect(tokens.alice)
      const proposal = yield* callTool(client, "propose_plan", { goal: "answer garbage" })
      assert.isTrue(proposal.isError)
      assert.strictEqual((proposal.structuredContent as any).error, "plan_refused")
      assert.strictEqual((proposal.structuredContent as any).path, "$")
    }).pipe(Effect.scoped)
  )

  it.effect("propose_plan and the step-type tools are offered; a step-type call is a governed task", () =>
    Effect.gen(function* () {
      const client = yield* connect(tokens.alice)
      const names = (yield* client.listTools()).map((t) => t.name)
      assert.include(names, "propose_plan")
      assert.include(names, "check_balance")
      const proposal = yield* callTool(client, "propose_plan", {
        goal: `transfer 5 QU from ${walletA} to ${walletB}`
      })
      assert.notStrictEqual(proposal.isError, true, text(proposal))
      assert.deepStrictEqual(
        (proposal.structuredContent as any).steps.map((s: any) => [s.id, s.decision]),
        [
          ["check_balance", "allow"],
          ["policy_check", "allow"],
          ["onchain_action", "require_approval"]
        ]
      )
      // Executing the proposal: the same plan, re-checked, with its provenance in the ledger
      const executed = yield* callTool(client, "execute_plan", { plan_id: (proposal.structuredContent as any).plan_id })
      assert.strictEqual((executed.structuredContent as any).status, "pending_approval", text(executed))
      const trail = yield* callTool(client, "task_trail", { task_id: (executed.structuredContent as any).task_id })
      assert.include(
        (trail.structuredContent as any).entries.map((e: any) => e.kind),
        "plan.proposed"
      )
      const balance = yield* callTool(client, "check_balance", { wallet: walletA })
      assert.strictEqual((balance.structuredContent as any).status, "completed", text(balance))
      // A step type policy does not allow is denied, with the reason
      const generic = yield* callTool(client, "generic_action", { action: "wipe" })
      assert.isTrue(generic.isError)
      assert.strictEqual((generic.structuredContent as any).error, "policy_denied")
      const bad = yield* callTool(client, "check_balance", { wallet: "x" })
      assert.strictEqual((bad.structuredContent as any).path, "$.wallet")
    }).pipe(Effect.scoped)
  )
})

layer(TestServer.layer(TestServer.memoryServices(), { rateLimit: 2 }), { excludeTestServices: true })(
  "MCP request budget",
  (it) => {
    it.effect("each /mcp request spends the principal's budget: past it, 429 with Retry-After", () =>
      Effect.gen(function* () {
        const body = { jsonrpc: "2.0", id: 1, method: "tools/list" }
        const statuses: Array<number> = []
        for (let i = 0; i < 3; i++) statuses.push((yield* call("POST", "/mcp", { token: tokens.alice, body })).status)
        assert.notStrictEqual(statuses[0], 429)
        assert.strictEqual(statuses[2], 429)
        const limited = yield* call("POST", "/mcp", { token: tokens.alice, body })
        assert.match(limited.headers["retry-after"] ?? "", /^\d+$/)
        // Another principal has its own budget
        assert.notStrictEqual((yield* call("POST", "/mcp", { token: tokens.dave, body })).status, 429)
      })
    )
  }
)

describe("MANDATE_PLANNER / MANDATE_LLM_*", () => {
  const llmOf = (env: Record<string, string>) =>
    Effect.gen(function* () {
      const provider = ConfigProvider.fromEnvRecord(env)
      const config = yield* ServerConfig.parse(provider)
      return yield* Stores.llmFromConfig(config).pipe(Effect.provideService(ConfigProvider.ConfigProvider, provider))
    })

  it.effect("templates by default; llm needs the endpoint and the model, and names what is missing", () =>
    Effect.gen(function* () {
      assert.isUndefined(yield* llmOf({}))
      assert.isUndefined(yield* llmOf({ MANDATE_PLANNER: "templates" }))
      const missing = yield* Effect.flip(llmOf({ MANDATE_PLANNER: "llm", MANDATE_LLM_MODEL: "m" }))
      assert.include(String(missing), "MANDATE_LLM_URL")
      const configured = yield* llmOf({
        MANDATE_PLANNER: "llm",
        MANDATE_LLM_URL: "http://127.0.0.1:11434/v1",
        MANDATE_LLM_MODEL: "llama3.1"
      })
      assert.strictEqual(configured?.model, "llama3.1")
      const bad = yield* Effect.flip(ServerConfig.parse(ConfigProvider.fromEnvRecord({ MANDATE_PLANNER: "gpt" })))
      assert.include(String(bad), "MANDATE_PLANNER")
    })
  )
})
