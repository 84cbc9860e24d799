import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { FetchHttpClient, HttpServer } from "effect/http"
import { run } from "../src/Agent.ts"
import * as Demo from "../src/Demo.ts"

const approve = (base: string, taskId: string) =>
  Effect.promise(async () => {
    const response = await fetch(`${base}/task/${taskId}/approve`, {
      method: "POST",
      headers: { authorization: `Bearer ${Demo.tokens.approver}`, "content-type": "application/json" },
      body: JSON.stringify({ approved: true })
    })
    return response.status
  })

describe("examples/ai-agent", () => {
  it.live(
    "asks for a transfer in plain words, gets 'pending approval', reports completion after a human approves",
    () =>
      Effect.gen(function* () {
        const base = HttpServer.formatAddress((yield* HttpServer.HttpServer).address)
        const lines: Array<string> = []
        const pending = yield* Deferred.make<{ readonly taskId: string; readonly console: string }>()
        const agent = yield* Effect.forkChild(
          run({
            mcpUrl: `${base}/mcp`,
            token: Demo.tokens.agent,
            goal: `Please transfer 250 QU from ${Demo.walletA} to ${Demo.walletB} for the invoice`,
            report: (line) => Effect.sync(() => lines.push(line)),
            onPending: (p) => Deferred.succeed(pending, p),
            pollInterval: "50 millis"
          })
        )
        // The agent waits for a human: the approver approves over HTTP
        const { taskId, console: link } = yield* Deferred.await(pending)
        assert.include(link, `/#/task/${taskId}`)
        assert.isTrue(lines.some((l) => l.startsWith("Pending approval")))
        assert.strictEqual(yield* approve(base, taskId), 200)

        const outcome = yield* Fiber.join(agent)
        assert.strictEqual(outcome.status, "completed")
        assert.deepStrictEqual(
          outcome.steps.map((s) => [s.id, s.state]),
          [
            ["check_balance", "succeeded"],
            ["policy_check", "succeeded"],
            ["onchain_action", "succeeded"]
          ]
        )
        assert.isTrue(lines.some((l) => l.includes("onchain_action (onchain_action): require_approval")))
      }).pipe(Effect.provide(Demo.layer({ console: false })), Effect.provide(FetchHttpClient.layer))
  )

  it.live("a goal policy would deny is refused before anything runs, with the reasons", () =>
    Effect.gen(function* () {
      const base = HttpServer.formatAddress((yield* HttpServer.HttpServer).address)
      const outcome = yield* run({
        mcpUrl: `${base}/mcp`,
        token: Demo.tokens.agent,
        goal: "Note that the quarterly report is due",
        report: () => Effect.void
      })
      // The scripted model proposes a generic_action, which no rule allows for a goal task
      assert.strictEqual(outcome.status, "refused")
      assert.isTrue(
        outcome.reasons.some((r) => r.includes("no rule")),
        outcome.reasons.join("; ")
      )
    }).pipe(Effect.provide(Demo.layer({ console: false })), Effect.provide(FetchHttpClient.layer))
  )
})
