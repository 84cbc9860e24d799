/**
 * Mandate's MCP tools: every task template and step type is a tool whose input schema is its params schema, and a
 * call starts a governed task as the caller (planned, policy-checked, approval-gated, recorded). The result is
 * the task's outcome, or — when a step waits for a human — a "pending approval" result with the task id and a
 * console link. Beside them: `task_status`, `plan_preview` (a dry run: which steps would be denied or need
 * approval, and why), `execute_plan` (start a previewed or proposed plan), `task_trail` (the task's ledger entries, each verified, only for a caller who may read
 * the task: core's `Access` rule) and, with the LLM planner, `propose_plan`.
 *
 * Failures are tool errors (`isError`) the model can read and adapt to: the policy's reasons for a denial, the
 * JSON path of a bad argument. Nothing here decides anything: every call is a call into the runtime as the
 * caller, whose rules live in core.
 *
 * @since 0.1.0
 */

import type { TaskStore } from "@mandate/core"
import {
  catalogOf,
  fromSchemaError,
  Ledger,
  LlmPlanner,
  Planner,
  type Principal,
  Runtime,
  type StepType,
  type TaskTemplate,
  type TaskView,
  taskEntries
} from "@mandate/core"
import { Context, Duration, Effect, Layer, Option, Schema, Stream } from "effect"
import { LanguageModel, McpSchema, McpServer } from "effect/ai"

/**
 * Who is calling: resolved per call (over HTTP from the request's bearer token; over stdio fixed at start).
 *
 * @category services
 * @since 0.1.0
 */
export class McpCaller extends Context.Service<
  McpCaller,
  {
    /** The caller's principal, or why there is none (the call is then a tool error). */
    readonly principal: Effect.Effect<Principal.Principal, string>
    /** The web console's base URL for this caller, e.g. `http://127.0.0.1:8000`. */
    readonly consoleUrl: Effect.Effect<string>
  }
>()("@mandate/server/McpCaller") {}

/**
 * @category models
 * @since 0.1.0
 */
export interface ToolsOptions {
  /** Templates and step types offered as tools (default: the seed catalog). */
  readonly templates?: ReadonlyArray<TaskTemplate> | undefined
  readonly stepTypes?: ReadonlyArray<StepType> | undefined
  /** How long a call waits for its task to finish or to wait for approval (default 30 s); then it answers `running`. */
  readonly wait?: Duration.Input | undefined
}

// ---- results ------------------------------------------------------------------------------------------------

const result = (text: string, structured: Record<string, unknown>, isError = false) =>
  new McpSchema.CallToolResult({
    content: [{ type: "text", text }],
    structuredContent: structured,
    ...(isError ? { isError: true } : {})
  })

const renamePath = (path: string, root: string) =>
  path === root
    ? "$"
    : path.startsWith(`${root}.`) || path.startsWith(`${root}[`)
      ? `$${path.slice(root.length)}`
      : path

/** A core error as a tool error the model can act on. */
const toolError = (error: { readonly _tag: string; readonly message: string }, argumentsRoot = "$.params") => {
  const e = error as any
  switch (error._tag) {
    case "InvalidInput": {
      const path = renamePath(String(e.path), argumentsRoot)
      const issues = (e.issues as ReadonlyArray<{ path: string; message: string }>).map((i) => ({
        path: renamePath(i.path, argumentsRoot),
        message: i.message
      }))
      return result(`Invalid arguments at ${path}: ${e.message}`, { error: "invalid_arguments", path, issues }, true)
    }
    case "TaskRejected":
      return result(
        `Denied by policy (task ${e.taskId}): ${(e.reasons as ReadonlyArray<string>).join("; ")}`,
        { error: "policy_denied", status: "rejected", task_id: e.taskId, reasons: e.reasons },
        true
      )
    case "ProposalRefused":
      return result(
        `The proposed plan was refused at ${e.path}: ${e.reason}`,
        { error: "plan_refused", path: e.path, reason: e.reason },
        true
      )
    case "Forbidden":
      return result(`Forbidden: ${error.message}`, { error: "forbidden", reason: e.reason }, true)
    case "TaskNotFound":
    case "PlanNotFound":
      return result(error.message, { error: "not_found" }, true)
    case "UnknownStepType":
    case "InvalidPlan":
    case "UnknownTaskKind":
      return result(error.message, { error: "invalid_plan" }, true)
    default:
      return result(`Unavailable: ${error.message}`, { error: "unavailable" }, true)
  }
}

const waitingStates = new Set(["completed", "rejected", "cancelled", "failed", "waiting_approval"])

/** What a model needs to know about a task, in text and as structured content. */
const outcome = (view: TaskView, consoleUrl: string) => {
  const task = view.task
  const link = `${consoleUrl}/#/task/${task.id}`
  const steps = view.steps.map((s) => ({
    id: s.id,
    type: s.type,
    state: s.state,
    ...(s.result === undefined ? {} : { result: s.result }),
    ...(s.error === undefined ? {} : { error: s.error.message })
  }))
  const structured = { task_id: task.id, status: task.state, kind: task.kind, steps, console: link }
  switch (task.state) {
    case "completed":
      return result(`Task ${task.id} completed.`, structured)
    case "waiting_approval": {
      const waiting = view.steps.filter((s) => s.state === "waiting_approval").map((s) => s.id)
      return result(
        `Pending approval: task ${task.id} waits for a human to approve step(s) ${waiting.join(", ")}. ` +
          `Approve it in the console (${link}); call task_status with this task id to learn the outcome.`,
        { ...structured, status: "pending_approval", waiting_steps: waiting }
      )
    }
    case "rejected":
    case "cancelled":
    case "failed":
      return result(
        `Task ${task.id} ${task.state}${task.reasons.length > 0 ? `: ${task.reasons.join("; ")}` : ""}.`,
        { ...structured, reasons: task.reasons },
        true
      )
    default:
      return result(`Task ${task.id} is ${task.state}; call task_status later.`, structured)
  }
}

const objectSchema = (schema: Schema.Top): McpSchema.Tool["inputSchema"] => {
  const json = LanguageModel.defaultCodecTransformer(schema as never).jsonSchema as Record<string, unknown>
  return (json.type === "object" ? json : { type: "object", properties: {} }) as McpSchema.Tool["inputSchema"]
}

const TaskIdArgs = Schema.Struct({ task_id: Schema.String.check(Schema.isBetweenLength(1, 128)) })
const PlanIdArgs = Schema.Struct({ plan_id: Schema.String.check(Schema.isBetweenLength(1, 128)) })
const PreviewArgs = Schema.Union([
  Schema.Struct({ task_type: Schema.String, parameters: Schema.Json }),
  Schema.Struct({ goal: Schema.String.check(Schema.isBetweenLength(1, 4000)) })
])
const GoalArgs = Schema.Struct({ goal: Schema.String.check(Schema.isBetweenLength(1, 4000)) })

// ---- registration -------------------------------------------------------------------------------------------

/**
 * Registers the tools on the `McpServer` (pass it as `registrations` to `McpServer.layerHttp` / `layerStdio`).
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options?: ToolsOptions
): Layer.Layer<never, never, McpServer.McpServer | McpCaller | Runtime | Ledger | Planner | TaskStore> =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const server = yield* McpServer.McpServer
      const caller = yield* McpCaller
      const runtime = yield* Runtime
      const planner = yield* Planner
      const services = yield* Effect.context<Ledger | TaskStore>()
      const wait = Duration.fromInputUnsafe(options?.wait ?? Duration.seconds(30))
      const { templates, stepTypes } = catalogOf({ templates: options?.templates, stepTypes: options?.stepTypes })
      const kinds = new Set((yield* planner.kinds).map((k) => k.kind))
      const llm = kinds.has(LlmPlanner.goalKind)

      /** Runs `f` as the caller; every failure becomes a tool error. */
      const asCaller = <E extends { readonly _tag: string; readonly message: string }>(
        f: (principal: Principal.Principal, consoleUrl: string) => Effect.Effect<McpSchema.CallToolResult, E>,
        argumentsRoot?: string
      ) =>
        Effect.gen(function* () {
          const principal = yield* Effect.result(caller.principal)
          if (principal._tag === "Failure") return result(principal.failure, { error: "unauthenticated" }, true)
          const consoleUrl = yield* caller.consoleUrl
          return yield* f(principal.success, consoleUrl).pipe(
            Effect.catch((e: E) => Effect.succeed(toolError(e, argumentsRoot)))
          )
        })

      /** Decodes tool arguments; a bad one is a tool error naming its JSON path. */
      const args = <S extends Schema.Decoder<unknown>>(schema: S, input: unknown) =>
        Schema.decodeUnknownEffect(schema)(input ?? {}, { errors: "all", onExcessProperty: "error" }).pipe(
          Effect.mapError((e) => fromSchemaError(e))
        )

      /** Starts a task as the caller and waits until it ends or waits for a human. */
      const startAndWait = (request: unknown, principal: Principal.Principal, consoleUrl: string) =>
        Effect.flatMap(runtime.start(request, principal), (task) => settled(task.id, principal, consoleUrl))

      /** The task's outcome once it ends or waits for a human (or `wait` passes). */
      const settled = (taskId: string, principal: Principal.Principal, consoleUrl: string) =>
        Effect.gen(function* () {
          yield* runtime.events(taskId, principal).pipe(
            Effect.flatMap((events) => Stream.runHead(Stream.filter(events, (e) => waitingStates.has(e.state)))),
            Effect.scoped,
            Effect.timeoutOrElse({ duration: wait, orElse: () => Effect.succeed(Option.none()) })
          )
          return outcome(yield* runtime.get(taskId, principal), consoleUrl)
        })

      // One tool per template: its params are the tool's arguments
      for (const template of templates.values()) {
        if (!kinds.has(template.kind)) continue
        yield* server.addTool({
          tool: new McpSchema.Tool({
            name: template.kind,
            description:
              `${template.description ?? template.kind}. Starts a governed task: every step is checked against ` +
              "policy; a step may wait for a human's approval (the result then says so, with the task id).",
            inputSchema: objectSchema(template.params)
          }),
          annotations: Context.empty(),
          handle: (payload) =>
            asCaller((principal, consoleUrl) =>
              startAndWait({ kind: template.kind, params: payload ?? {} }, principal, consoleUrl)
            )
        })
      }

      // One tool per step type, when a single-step plan can be planned (a `goal` task with its proposal)
      if (llm) {
        for (const stepType of stepTypes.values()) {
          if (templates.has(stepType.type)) continue
          yield* server.addTool({
            tool: new McpSchema.Tool({
              name: stepType.type,
              description:
                `${stepType.description ?? stepType.type}. Runs this one step as a governed task (policy-checked, ` +
                "approval-gated, recorded).",
              inputSchema: objectSchema(stepType.params)
            }),
            annotations: Context.empty(),
            handle: (payload) =>
              asCaller(
                (principal, consoleUrl) =>
                  startAndWait(
                    {
                      kind: LlmPlanner.goalKind,
                      params: {
                        goal: `Run ${stepType.type}`,
                        proposal: { steps: [{ id: stepType.type, type: stepType.type, params: payload ?? {} }] }
                      }
                    },
                    principal,
                    consoleUrl
                  ),
                `$.steps[${JSON.stringify(stepType.type)}].params`
              )
          })
        }
      }

      yield* server.addTool({
        tool: new McpSchema.Tool({
          name: "task_status",
          description: "A task's status, its steps and their results, and what it waits for.",
          inputSchema: objectSchema(TaskIdArgs)
        }),
        annotations: Context.empty(),
        handle: (payload) =>
          asCaller((principal, consoleUrl) =>
            Effect.gen(function* () {
              const { task_id } = yield* args(TaskIdArgs, payload)
              return outcome(yield* runtime.get(task_id, principal), consoleUrl)
            })
          )
      })

      yield* server.addTool({
        tool: new McpSchema.Tool({
          name: "plan_preview",
          description:
            "Dry run: plans a task ({task_type, parameters}" +
            (llm ? " or {goal}" : "") +
            ") without running it, and answers which steps would be allowed, denied or need approval, and why.",
          inputSchema: objectSchema(
            llm ? PreviewArgs : Schema.Struct({ task_type: Schema.String, parameters: Schema.Json })
          )
        }),
        annotations: Context.empty(),
        handle: (payload) =>
          asCaller((principal) =>
            Effect.gen(function* () {
              const input = yield* args(PreviewArgs, payload)
              const request =
                "goal" in input
                  ? { kind: LlmPlanner.goalKind, params: { goal: input.goal } }
                  : { kind: input.task_type, params: input.parameters }
              const plan = yield* runtime.plan(request, principal)
              const steps = plan.steps.map((s) => ({
                id: s.id,
                type: s.type,
                params: s.params,
                dependsOn: s.dependsOn,
                decision: s.decision.effect,
                reasons: s.decision.reasons
              }))
              const denied = steps.filter((s) => s.decision === "deny")
              const gated = steps.filter((s) => s.decision === "require_approval")
              const text = [
                `Plan ${plan.id} (${plan.steps.length} steps, policy ${plan.policyVersion.slice(0, 12)}).`,
                denied.length === 0
                  ? "No step would be denied."
                  : `Denied: ${denied.map((s) => `${s.id} (${s.reasons.join("; ")})`).join(", ")}.`,
                gated.length === 0
                  ? "No step needs approval."
                  : `Needs approval: ${gated.map((s) => `${s.id} (${s.reasons.join("; ")})`).join(", ")}.`
              ].join(" ")
              return result(text, {
                plan_id: plan.id,
                steps,
                would_run: denied.length === 0,
                denied: denied.map((s) => s.id),
                needs_approval: gated.map((s) => s.id)
              })
            })
          )
      })

      yield* server.addTool({
        tool: new McpSchema.Tool({
          name: "execute_plan",
          description:
            "Starts a task from a plan of plan_preview or propose_plan (by plan_id), re-checked against the active " +
            "policy; answers like the template tools (outcome, or pending approval).",
          inputSchema: objectSchema(PlanIdArgs)
        }),
        annotations: Context.empty(),
        handle: (payload) =>
          asCaller((principal, consoleUrl) =>
            Effect.gen(function* () {
              const { plan_id } = yield* args(PlanIdArgs, payload)
              const task = yield* runtime.execute(plan_id, principal)
              return yield* settled(task.id, principal, consoleUrl)
            })
          )
      })

      yield* server.addTool({
        tool: new McpSchema.Tool({
          name: "task_trail",
          description:
            "The task's ledger entries (tamper-evident audit trail), each verified against a signed checkpoint.",
          inputSchema: objectSchema(TaskIdArgs)
        }),
        annotations: Context.empty(),
        handle: (payload) =>
          asCaller((principal) =>
            Effect.gen(function* () {
              const { task_id } = yield* args(TaskIdArgs, payload)
              const ledger = yield* Ledger
              // Only a task the caller may read (core's Access rule): anything else is "not found"
              const entries = yield* taskEntries(task_id, principal)
              const trail = yield* Effect.forEach(entries, (entry) =>
                ledger.verify(entry.entryHash).pipe(
                  Effect.as(true),
                  Effect.catchTag("LedgerTampered", () => Effect.succeed(false)),
                  Effect.map((verified) => ({
                    seq: entry.seq,
                    kind: entry.kind,
                    ...(entry.stepId === undefined ? {} : { step_id: entry.stepId }),
                    entry_hash: entry.entryHash,
                    ...("payload" in entry && entry.payload !== undefined ? { payload: entry.payload } : {}),
                    verified
                  }))
                )
              )
              const bad = trail.filter((e) => !e.verified)
              return result(
                `${trail.length} ledger entries for task ${task_id}; ${
                  bad.length === 0 ? "all verified" : `${bad.length} FAILED verification`
                }.`,
                { task_id, entries: trail, verified: bad.length === 0 },
                bad.length > 0
              )
            }).pipe(Effect.provide(services))
          )
      })

      if (llm) {
        yield* server.addTool({
          tool: new McpSchema.Tool({
            name: "propose_plan",
            description:
              "Asks Mandate's planner to turn a goal in natural language into a plan (validated against the " +
              "catalog, every step decided by policy); a dry run: nothing runs. Start it with the template tools.",
            inputSchema: objectSchema(GoalArgs)
          }),
          annotations: Context.empty(),
          handle: (payload) =>
            asCaller((principal) =>
              Effect.gen(function* () {
                const { goal } = yield* args(GoalArgs, payload)
                const plan = yield* runtime.plan({ kind: LlmPlanner.goalKind, params: { goal } }, principal)
                const steps = plan.steps.map((s) => ({
                  id: s.id,
                  type: s.type,
                  params: s.params,
                  dependsOn: s.dependsOn,
                  decision: s.decision.effect,
                  reasons: s.decision.reasons
                }))
                return result(`Proposed plan ${plan.id}: ${steps.map((s) => `${s.id}=${s.decision}`).join(", ")}.`, {
                  plan_id: plan.id,
                  steps,
                  ...(plan.proposedBy === undefined ? {} : { proposed_by: plan.proposedBy })
                })
              })
            )
        })
      }
    })
  )
