/**
 * A scripted AI agent that speaks MCP to Mandate: it asks for a goal in plain words (`propose_plan`, planned by
 * Mandate's LLM planner; without one, it fills the `transfer_funds` template itself and asks `plan_preview`),
 * reads what policy says of each step, executes the plan (`execute_plan`), and — when a step waits for a human —
 * reports "pending approval" with the console link and polls `task_status` until the task ends.
 *
 * The agent holds no authority of its own: everything it does is a governed task of its principal.
 */
import { Duration, Effect } from "effect"
import { McpClient, type McpClientError, McpProtocol } from "effect/ai"
import type { HttpClient } from "effect/http"

export interface AgentOptions {
  /** Mandate's MCP endpoint, e.g. `http://127.0.0.1:8000/mcp`. */
  readonly mcpUrl: string
  /** The agent's bearer token (a submitter). */
  readonly token: string
  /** What to do, in plain words. */
  readonly goal: string
  /** Each line the agent reports (default: `Effect.log`). */
  readonly report?: ((line: string) => Effect.Effect<void>) | undefined
  /** Called once when the task waits for a human's approval. */
  readonly onPending?:
    | ((pending: { readonly taskId: string; readonly console: string }) => Effect.Effect<void>)
    | undefined
  /** How often to ask for the task's status while it waits (default 1 s). */
  readonly pollInterval?: Duration.Input | undefined
}

export interface Outcome {
  readonly status: string
  readonly taskId?: string | undefined
  readonly reasons: ReadonlyArray<string>
  readonly steps: ReadonlyArray<{ readonly id: string; readonly state: string; readonly result?: unknown }>
}

const transferOf = (goal: string) => {
  const m = /transfer\s+([\d_,]+)\s*(?:QU)?\s+from\s+([A-Z]{60})\s+to\s+([A-Z]{60})/i.exec(goal)
  return m === null ? undefined : { from: m[2]!, to: m[3]!, amount: Number(m[1]!.replace(/[_,]/g, "")) }
}

const textOf = (result: { readonly content: ReadonlyArray<unknown> }) =>
  result.content.map((c) => (c as { readonly text?: string }).text ?? "").join(" ")

/** Runs the agent to the task's end (or a refusal). */
export const run = (
  options: AgentOptions
): Effect.Effect<Outcome, McpClientError.McpClientError | Error, HttpClient.HttpClient> =>
  Effect.gen(function* () {
    const report = options.report ?? ((line: string) => Effect.log(line))
    const transport = yield* McpClient.http({
      url: options.mcpUrl,
      protocol: McpProtocol.v2026_07_28,
      headers: { authorization: `Bearer ${options.token}` }
    })
    const client = yield* McpClient.make({ name: "mandate-example-ai-agent", version: "0.1.0" }).pipe(
      Effect.provideService(McpClient.Transport, transport)
    )
    const tools = yield* client.listTools()
    yield* report(`Connected. Tools: ${tools.map((t) => t.name).join(", ")}`)
    const call = (name: string, args: Record<string, unknown>) =>
      Effect.gen(function* () {
        const tool = tools.find((t) => t.name === name)
        if (tool === undefined) return yield* Effect.fail(new Error(`Mandate offers no ${name} tool`))
        const result = yield* client.callTool({ tool, arguments: args })
        return { ok: result.isError !== true, text: textOf(result), data: (result.structuredContent ?? {}) as any }
      })

    // 1. Plan: by Mandate's LLM planner when it has one, else the transfer template filled in by us
    let preview: { ok: boolean; text: string; data: any }
    if (tools.some((t) => t.name === "propose_plan")) {
      yield* report(`Asking Mandate to plan: "${options.goal}"`)
      preview = yield* call("propose_plan", { goal: options.goal })
    } else {
      const transfer = transferOf(options.goal)
      if (transfer === undefined) return yield* Effect.fail(new Error("No LLM planner, and the goal is no transfer"))
      preview = yield* call("plan_preview", { task_type: "transfer_funds", parameters: transfer })
    }
    if (!preview.ok) {
      yield* report(`Refused: ${preview.text}`)
      return { status: "refused", reasons: [preview.text], steps: [] }
    }
    for (const step of preview.data.steps as ReadonlyArray<any>) {
      yield* report(`  step ${step.id} (${step.type}): ${step.decision} — ${step.reasons.join("; ")}`)
    }
    const denied = (preview.data.steps as ReadonlyArray<any>).filter((s) => s.decision === "deny")
    if (denied.length > 0) {
      const reasons = denied.flatMap((s) => s.reasons as ReadonlyArray<string>)
      yield* report(`Policy would deny this plan: ${reasons.join("; ")}`)
      return { status: "refused", reasons, steps: [] }
    }

    // 2. Execute; a step may wait for a human
    let state = yield* call("execute_plan", { plan_id: preview.data.plan_id })
    yield* report(state.text)
    if (state.data.status === "pending_approval") {
      yield* options.onPending?.({ taskId: state.data.task_id, console: state.data.console }) ?? Effect.void
      while (["pending_approval", "running", "pending", "planning"].includes(state.data.status)) {
        yield* Effect.sleep(options.pollInterval ?? Duration.seconds(1))
        state = yield* call("task_status", { task_id: state.data.task_id })
      }
      yield* report(state.text)
    }
    return {
      status: state.data.status ?? "unknown",
      taskId: state.data.task_id,
      reasons: state.data.reasons ?? [],
      steps: (state.data.steps ?? []).map((s: any) => ({ id: s.id, state: s.state, result: s.result }))
    }
  }).pipe(Effect.scoped)
