/**
 * Run: `npm start -w @mandate/example-ai-agent -- "Transfer 250 QU from AAAA… to BBBB…"`.
 *
 * With no `MANDATE_URL`, it starts a demo Mandate in-process (memory; the LLM planner on a scripted model, or on
 * `MANDATE_LLM_URL` / `MANDATE_LLM_MODEL` / `MANDATE_LLM_API_KEY` when set) and prints how to approve. With
 * `MANDATE_URL` and `MANDATE_TOKEN`, it talks to that server's `/mcp` instead.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Config, Effect, Layer, Option } from "effect"
import { FetchHttpClient, HttpServer } from "effect/http"
import { run } from "./Agent.ts"
import * as Demo from "./Demo.ts"

const goal = process.argv[2] ?? `Transfer 250 QU from ${Demo.walletA} to ${Demo.walletB} to pay the March invoice`

const agent = (mcpUrl: string, token: string) =>
  run({
    mcpUrl,
    token,
    goal,
    report: (line) => Effect.sync(() => console.log(`[agent] ${line}`))
  }).pipe(Effect.tap((outcome) => Effect.sync(() => console.log(`[agent] outcome: ${JSON.stringify(outcome)}`))))

const program = Effect.gen(function* () {
  const remote = yield* Config.String("MANDATE_URL").pipe(Config.option)
  if (Option.isSome(remote)) {
    const token = yield* Config.String("MANDATE_TOKEN")
    return yield* agent(`${remote.value.replace(/\/+$/, "")}/mcp`, token)
  }
  const llmUrl = yield* Config.String("MANDATE_LLM_URL").pipe(Config.option)
  const llm = Option.isSome(llmUrl)
    ? {
        url: llmUrl.value,
        model: yield* Config.String("MANDATE_LLM_MODEL"),
        apiKey: Option.getOrUndefined(yield* Config.Redacted("MANDATE_LLM_API_KEY").pipe(Config.option))
      }
    : undefined
  return yield* Effect.gen(function* () {
    const base = HttpServer.formatAddress((yield* HttpServer.HttpServer).address)
    console.log(`Demo Mandate at ${base} (console: ${base}/, approver token: ${Demo.tokens.approver})`)
    console.log(
      `Approve with: curl -X POST -H 'authorization: Bearer ${Demo.tokens.approver}' ` +
        `-H 'content-type: application/json' -d '{"approved":true}' ${base}/task/<task id>/approve`
    )
    return yield* agent(`${base}/mcp`, Demo.tokens.agent)
  }).pipe(Effect.provide(Layer.fresh(Demo.layer({ llm, port: Number(process.env.PORT ?? 8090) }))))
})

program.pipe(Effect.provide(FetchHttpClient.layer), NodeRuntime.runMain)
