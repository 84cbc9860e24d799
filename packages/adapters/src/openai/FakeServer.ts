/**
 * A scripted OpenAI-compatible endpoint (`POST /v1/chat/completions`) on a local port, for tests and demos with
 * no network: each request is answered by a script, deterministically. It records every request, so a test can
 * check what the client sent (messages, `response_format`, the bearer token).
 *
 * @since 0.1.0
 */
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { Effect, type Scope } from "effect"

/**
 * One request as the script sees it.
 *
 * @category models
 * @since 0.1.0
 */
export interface FakeRequest {
  /** The parsed request body. */
  readonly body: any
  /** The last user message's text: for the planner, the goal. */
  readonly user: string
  readonly authorization: string | undefined
}

/**
 * A script's answer: the assistant message's content, or an HTTP error.
 *
 * @category models
 * @since 0.1.0
 */
export type FakeReply = string | { readonly status: number; readonly body: unknown }

/**
 * A running fake endpoint.
 *
 * @category models
 * @since 0.1.0
 */
export interface FakeServer {
  /** Base URL including `/v1`, for `ChatCompletions.layer({ url })` or `MANDATE_LLM_URL`. */
  readonly url: string
  readonly requests: ReadonlyArray<FakeRequest>
}

/**
 * Serves `script` on `127.0.0.1` (an ephemeral port unless `port` is given) for the life of the scope.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (
  script: (request: FakeRequest) => FakeReply,
  options?: { readonly port?: number | undefined; readonly model?: string | undefined }
): Effect.Effect<FakeServer, never, Scope.Scope> =>
  Effect.gen(function* () {
    const requests: Array<FakeRequest> = []
    const server = createServer((req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (chunk: Buffer) => chunks.push(chunk))
      req.on("end", () => {
        const send = (status: number, body: unknown) => {
          res.writeHead(status, { "content-type": "application/json" })
          res.end(JSON.stringify(body))
        }
        if (req.method !== "POST" || !req.url?.endsWith("/chat/completions")) {
          return send(404, { error: { message: "not found", type: "invalid_request_error" } })
        }
        let body: any
        try {
          body = JSON.parse(Buffer.concat(chunks).toString("utf8"))
        } catch {
          return send(400, { error: { message: "invalid JSON", type: "invalid_request_error" } })
        }
        const messages: Array<{ role?: string; content?: unknown }> = Array.isArray(body?.messages) ? body.messages : []
        const user = messages.filter((m) => m.role === "user").at(-1)?.content
        const request: FakeRequest = {
          body,
          user: typeof user === "string" ? user : "",
          authorization: req.headers.authorization
        }
        requests.push(request)
        let reply: FakeReply
        try {
          reply = script(request)
        } catch (error) {
          return send(500, { error: { message: String(error), type: "server_error" } })
        }
        if (typeof reply !== "string") return send(reply.status, reply.body)
        send(200, {
          id: `chatcmpl-${requests.length}`,
          object: "chat.completion",
          model: options?.model ?? body?.model ?? "fake",
          choices: [{ index: 0, message: { role: "assistant", content: reply }, finish_reason: "stop" }],
          usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 }
        })
      })
    })
    yield* Effect.callback<void>((resume) => {
      server.listen(options?.port ?? 0, "127.0.0.1", () => resume(Effect.void))
    })
    yield* Effect.addFinalizer(() =>
      Effect.callback<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
    )
    const { port } = server.address() as AddressInfo
    return { url: `http://127.0.0.1:${port}/v1`, requests }
  })

/**
 * A script that plans transfers the way a sensible model would: for a goal mentioning "transfer N QU from A to
 * B" (wallets of 60 capital letters), `check_balance → policy_check → onchain_action`; for anything else, a
 * single `generic_action` noting the goal. For demos (`examples/ai-agent`) and tests.
 *
 * @category constructors
 * @since 0.1.0
 */
export const transferScript = (request: FakeRequest): FakeReply => {
  const match = /transfer\s+([\d_,]+)\s*(?:QU)?\s+from\s+([A-Z]{60})\s+to\s+([A-Z]{60})/i.exec(request.user)
  if (match === null) {
    return JSON.stringify({
      steps: [
        {
          id: "note",
          type: "generic_action",
          params: { action: "note", data: { goal: request.user.slice(0, 200) } },
          dependsOn: []
        }
      ]
    })
  }
  const amount = Number(match[1]!.replace(/[_,]/g, ""))
  const from = match[2]!
  const to = match[3]!
  return JSON.stringify({
    steps: [
      { id: "check_balance", type: "check_balance", params: { wallet: from, minimum: amount }, dependsOn: [] },
      { id: "policy_check", type: "policy_check", params: { from, to, amount }, dependsOn: ["check_balance"] },
      { id: "onchain_action", type: "onchain_action", params: { from, to, amount }, dependsOn: ["policy_check"] }
    ]
  })
}
