import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { McpClient, McpProtocol } from "effect/ai"
import { FetchHttpClient, HttpServer } from "effect/http"
import * as TestServer from "./utils/TestServer.ts"

const { call, tokens, walletA, walletB } = TestServer

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
