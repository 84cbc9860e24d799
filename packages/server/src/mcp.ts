/**
 * `npm run mcp`: Mandate as an MCP server over stdio, forwarding to a running Mandate server's `/mcp`
 * (`MANDATE_URL`, default `http://127.0.0.1:8000`) as the principal of `MANDATE_TOKEN`. Stdout carries the
 * protocol, so logs go to stderr.
 *
 * @since 0.1.0
 */
import { NodeRuntime, NodeStdio } from "@effect/platform-node"
import { Config, Effect, Layer, Logger } from "effect"
import { FetchHttpClient } from "effect/http"
import * as Stdio from "./mcp/Stdio.ts"

const main = Layer.unwrap(
  Effect.gen(function* () {
    const url = yield* Config.String("MANDATE_URL").pipe(Config.withDefault("http://127.0.0.1:8000"))
    const token = yield* Config.Redacted("MANDATE_TOKEN")
    return Stdio.layer({ url: `${url.replace(/\/+$/, "")}/mcp`, token })
  })
).pipe(
  Layer.provide([NodeStdio.layer, FetchHttpClient.layer]),
  Layer.provide(Logger.layer([Logger.withConsoleError(Logger.formatJson)]))
)

Layer.launch(main).pipe(NodeRuntime.runMain)
