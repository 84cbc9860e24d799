/**
 * MCP over stdio, for clients that launch their servers as subprocesses (desktop assistants, IDEs): a stdio
 * MCP server whose tools are those of a Mandate server's `/mcp` endpoint, each call forwarded there with the
 * caller's bearer token. Governance stays where the tasks are: the server plans, checks policy, waits for
 * approvals (given in its console) and records; this process holds no state of its own.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Redacted } from "effect"
import { McpClient, McpProtocol, McpSchema, McpServer } from "effect/ai"

/**
 * @category models
 * @since 0.1.0
 */
export interface StdioOptions {
  /** The Mandate server's MCP endpoint, e.g. `http://127.0.0.1:8000/mcp`. */
  readonly url: string
  /** The bearer token every call is made with (its principal is the caller). */
  readonly token: Redacted.Redacted<string>
}

/** Registers the remote tools on the local server, each forwarding its calls. */
const forwarded = (options: StdioOptions) =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const server = yield* McpServer.McpServer
      const transport = yield* McpClient.http({
        url: options.url,
        protocol: McpProtocol.v2026_07_28,
        headers: { authorization: `Bearer ${Redacted.value(options.token)}` }
      })
      const client = yield* McpClient.make({ name: "mandate-mcp-stdio", version: "0.1.0" }).pipe(
        Effect.provideService(McpClient.Transport, transport)
      )
      for (const tool of yield* client.listTools()) {
        yield* server.addTool({
          tool,
          annotations: Context.empty(),
          handle: (payload) =>
            client
              .callTool({ tool, arguments: payload ?? {} })
              .pipe(
                Effect.catch((error) =>
                  Effect.fail(new McpSchema.InternalError({ message: `Mandate server: ${error.message}` }))
                )
              )
        })
      }
    })
  )

/**
 * The stdio MCP server forwarding to `options.url` (needs `Stdio` and an `HttpClient`). Fails to build when the
 * Mandate server cannot be reached or refuses the token.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: StdioOptions) =>
  McpServer.layerStdio({
    name: "mandate",
    version: "0.1.0",
    instructions:
      "Mandate runs governed tasks: each tool call starts a task that is planned, checked against policy, may " +
      "wait for a human's approval, and is recorded in a tamper-evident ledger.",
    protocols: [McpProtocol.v2025_11_25, McpProtocol.v2025_06_18],
    registrations: forwarded(options)
  })
