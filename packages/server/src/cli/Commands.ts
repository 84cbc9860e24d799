/**
 * The `mandate` command line: operate a Mandate server from a terminal. Every command but `serve` and the local
 * policy checks talks to a server over HTTP through the client derived from the API definition
 * (`HttpApiClient.make(Api)`), at `--url` / `MANDATE_URL` with `--token` / `MANDATE_TOKEN`.
 *
 * @since 0.1.0
 */
import { loadFile, PolicySet, Principal, Task, WebBundle } from "@mandate/core"
import {
  Clock,
  Config,
  ConfigProvider,
  Console,
  Effect,
  FileSystem,
  Layer,
  Option,
  Redacted,
  Schema,
  Stream
} from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { HttpClient, HttpClientRequest } from "effect/http"
import { HttpApiClient } from "effect/http-api"
import { Api } from "../api/Api.ts"
import { Forbidden } from "../api/Errors.ts"
import { CliFailure, ExitCode, fields, fromError, json, short, table, time } from "./Output.ts"

// ---- the root and its shared flags ------------------------------------------------------------------------

/**
 * The root command: `--url`, `--token` and `--json` are accepted before or after any subcommand.
 *
 * @category commands
 * @since 0.1.0
 */
export const mandate = Command.make("mandate").pipe(
  Command.withSharedFlags({
    url: Flag.String("url").pipe(
      Flag.withDescription("The server's base URL (default: MANDATE_URL, else http://127.0.0.1:8000)"),
      Flag.withFallbackConfig(Config.String("MANDATE_URL")),
      Flag.withDefault("http://127.0.0.1:8000")
    ),
    token: Flag.Redacted("token").pipe(
      Flag.withDescription("The bearer token (default: MANDATE_TOKEN)"),
      Flag.withFallbackConfig(Config.Redacted("MANDATE_TOKEN")),
      Flag.optional
    ),
    json: Flag.Boolean("json").pipe(
      Flag.withDescription("Print JSON (for scripts) instead of tables"),
      Flag.withDefault(false)
    )
  }),
  Command.withDescription(
    "Operate a Mandate server: tasks, plans, policy, the ledger, queues and agents. Exit codes: 0 ok, 1 the answer " +
      "is no (a check failed, policy denied, a task did not complete), 2 usage, 3 invalid request, 4 not " +
      "authenticated or not allowed, 5 not found, 6 conflict (e.g. a stale plan), 7 server unavailable."
  )
)

const client = Effect.gen(function* () {
  const { url, token } = yield* mandate
  return yield* HttpApiClient.make(Api, {
    baseUrl: url,
    ...(Option.isSome(token)
      ? { transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken(Redacted.value(token.value))) }
      : {})
  })
})

const asJson = Effect.map(mandate, (flags) => flags.json)

/** Every failure of a command as a `CliFailure` (message, details, exit code). */
const failures = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, CliFailure, R> =>
  Effect.mapError(self, fromError)

const usage = (message: string) => new CliFailure({ message, code: ExitCode.usage })

const parseJson = (text: string, what: string) =>
  Effect.try({
    try: () => JSON.parse(text) as Schema.Json,
    catch: (e) => usage(`${what} is not JSON: ${(e as Error).message}`)
  })

const csv = (value: Option.Option<string>) =>
  Option.match(value, {
    onNone: () => undefined,
    onSome: (v) =>
      v
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s.length > 0)
  })

// ---- tasks ------------------------------------------------------------------------------------------------

const taskId = Argument.String("task-id").pipe(Argument.withDescription("The task's id (task_…)"))

const statusLine = (s: {
  readonly task_id: string
  readonly status: string
  readonly waiting_approval: ReadonlyArray<string>
  readonly reasons: ReadonlyArray<string>
}) =>
  Console.log(
    `${s.task_id}  ${s.status}${s.waiting_approval.length > 0 ? `  waiting approval: ${s.waiting_approval.join(", ")}` : ""}${s.reasons.length > 0 ? `  (${s.reasons.join("; ")})` : ""}`
  )

const tasksList = Command.make(
  "list",
  {
    status: Flag.String("status").pipe(
      Flag.withDescription(`Only these states, comma-separated (${Task.TaskState.literals.join(", ")})`),
      Flag.optional
    ),
    type: Flag.String("type").pipe(Flag.withDescription("Only this task type"), Flag.optional),
    requestedBy: Flag.String("requested-by").pipe(Flag.withDescription("Only this principal's tasks"), Flag.optional),
    limit: Flag.Int("limit").pipe(Flag.withDescription("At most this many (1-1000)"), Flag.withDefault(20))
  },
  Effect.fn(function* (input) {
    const api = yield* client
    const states = csv(input.status)
    const decoded = states === undefined ? undefined : Schema.decodeUnknownOption(Schema.Array(Task.TaskState))(states)
    if (decoded !== undefined && Option.isNone(decoded)) {
      return yield* usage(`--status takes ${Task.TaskState.literals.join(", ")}`)
    }
    const page = yield* api.tasks.list({
      query: {
        status: decoded === undefined ? undefined : decoded.value,
        task_type: Option.getOrUndefined(input.type),
        requested_by: Option.getOrUndefined(input.requestedBy),
        limit: input.limit
      }
    })
    if (yield* asJson) return yield* json(page)
    yield* table(
      ["TASK", "TYPE", "STATUS", "REQUESTED BY", "PRIORITY", "UPDATED"],
      page.tasks.map((t) => [t.task_id, t.task_type, t.status, t.requested_by.id, t.priority, time(t.updated_at)])
    )
  }, failures)
).pipe(Command.withDescription("Lists tasks, newest first"))

const tasksShow = Command.make(
  "show",
  { taskId },
  Effect.fn(function* ({ taskId }) {
    const api = yield* client
    const detail = yield* api.tasks.get({ params: { id: taskId as Task.Task["id"] } })
    if (yield* asJson) return yield* json(detail)
    yield* fields([
      ["task", detail.task_id],
      ["type", detail.task_type],
      ["status", detail.status],
      ["requested by", detail.requested_by.id],
      ["plan", `${detail.plan.plan_id} (hash ${short(detail.plan.hash)})`],
      ["policy version", short(detail.policy_version)],
      ["parameters", JSON.stringify(detail.parameters)],
      ["created", time(detail.created_at)],
      ["updated", time(detail.updated_at)],
      ...(detail.reasons.length > 0 ? [["reasons", detail.reasons.join("; ")] as const] : [])
    ])
    yield* Console.log("")
    const decisions = new Map(detail.plan.steps.map((s) => [s.step_id, s.decision.effect]))
    yield* table(
      ["STEP", "TYPE", "DECISION", "STATUS", "ATTEMPTS", "ERROR"],
      detail.steps.map((s) => [s.step_id, s.type, decisions.get(s.step_id), s.status, s.attempts, s.error?.message])
    )
    if (detail.approvals.length > 0) {
      yield* Console.log("")
      yield* table(
        ["APPROVAL", "STEP", "BY", "AT", "COMMENT"],
        detail.approvals.map((a) => [a.decision, a.step_id, a.principal.id, time(a.at), a.comment])
      )
    }
  }, failures)
).pipe(Command.withDescription("Shows a task: its plan, steps with decisions and states, approvals"))

const tasksWatch = Command.make(
  "watch",
  { taskId },
  Effect.fn(function* ({ taskId }) {
    const api = yield* client
    const asJsonLines = yield* asJson
    const events = yield* api.tasks.events({ params: { id: taskId as Task.Task["id"] } })
    let last: string | undefined
    yield* events.pipe(
      Stream.runForEach((event) => {
        last = event.status
        if (event.kind === "keepalive") return Effect.void
        if (asJsonLines) return Console.log(JSON.stringify(event))
        return Console.log(
          `${time(event.at)}  ${event.kind.padEnd(22)} ${(event.step_id ?? "").padEnd(16)} ${event.status}`
        )
      })
    )
    if (last !== "completed") {
      return yield* new CliFailure({
        message: `Task ${taskId} ended ${last ?? "without events"}`,
        code: ExitCode.failed
      })
    }
  }, failures)
).pipe(
  Command.withDescription(
    "Follows a task's events until it ends; exits 0 when it completed, 1 when it failed, was rejected or cancelled"
  )
)

const decide = (approved: boolean) =>
  Command.make(
    approved ? "approve" : "reject",
    {
      taskId,
      step: Flag.String("step").pipe(
        Flag.withDescription("The step waiting for approval (default: the only one)"),
        Flag.optional
      ),
      comment: Flag.String("comment").pipe(Flag.withDescription("Recorded with the decision"), Flag.optional)
    },
    Effect.fn(function* (input) {
      const api = yield* client
      const status = yield* api.tasks.approve({
        params: { id: input.taskId as Task.Task["id"] },
        payload: {
          approved,
          ...(Option.isSome(input.step) ? { step_id: input.step.value } : {}),
          ...(Option.isSome(input.comment) ? { comment: input.comment.value } : {})
        }
      })
      if (yield* asJson) return yield* json(status)
      yield* statusLine(status)
    }, failures)
  ).pipe(
    Command.withDescription(
      approved
        ? "Approves the step waiting for approval (approvers; not your own task)"
        : "Rejects the step waiting for approval"
    )
  )

const tasksCancel = Command.make(
  "cancel",
  { taskId, reason: Flag.String("reason").pipe(Flag.withDescription("Why"), Flag.optional) },
  Effect.fn(function* (input) {
    const api = yield* client
    const status = yield* api.tasks.cancel({
      params: { id: input.taskId as Task.Task["id"] },
      payload: Option.isSome(input.reason) ? { reason: input.reason.value } : {}
    })
    if (yield* asJson) return yield* json(status)
    yield* statusLine(status)
  }, failures)
).pipe(Command.withDescription("Cancels a task (its requester or an admin)"))

const tasksRetry = Command.make(
  "retry",
  { taskId },
  Effect.fn(function* (input) {
    const api = yield* client
    const status = yield* api.tasks.retry({ params: { id: input.taskId as Task.Task["id"] } })
    if (yield* asJson) return yield* json(status)
    yield* statusLine(status)
  }, failures)
).pipe(Command.withDescription("Retries a failed task's failed steps (its requester or an admin)"))

const tasks = Command.make("tasks").pipe(
  Command.withDescription("List, inspect, follow and decide on tasks"),
  Command.withSubcommands([tasksList, tasksShow, tasksWatch, decide(true), decide(false), tasksCancel, tasksRetry])
)

// ---- plan -------------------------------------------------------------------------------------------------

const plan = Command.make(
  "plan",
  {
    type: Argument.String("task-type").pipe(Argument.withDescription("The task type, e.g. transfer_funds")),
    params: Argument.String("params-json").pipe(Argument.withDescription("The task's parameters as JSON")),
    execute: Flag.Boolean("execute").pipe(
      Flag.withDescription("Then run exactly this plan (refused with exit 6 if the policy or templates changed)"),
      Flag.withDefault(false)
    )
  },
  Effect.fn(function* (input) {
    const api = yield* client
    const parameters = yield* parseJson(input.params, "params-json")
    const planned = yield* api.plans.create({ payload: { task_type: input.type, parameters } })
    const started =
      input.execute && planned.denied.length === 0
        ? yield* api.plans.execute({ payload: { plan_id: planned.plan_id as never } })
        : undefined
    if (yield* asJson) {
      yield* json(started === undefined ? planned : { plan: planned, task: started })
    } else {
      yield* fields([
        ["plan", planned.plan_id],
        ["hash", planned.hash],
        ["policy version", planned.policy_version]
      ])
      yield* Console.log("")
      yield* table(
        ["STEP", "TYPE", "DEPENDS ON", "DECISION", "REASONS"],
        planned.steps.map((s) => [
          s.step_id,
          s.type,
          s.depends_on.join(",") || undefined,
          s.decision.effect +
            (s.decision.approvals === undefined
              ? ""
              : ` (${s.decision.approvals.required} approval${s.decision.approvals.required > 1 ? "s" : ""})`),
          s.decision.reasons.join("; ")
        ])
      )
      if (started !== undefined) yield* Console.log(`\nstarted ${started.task_id} (${started.status})`)
    }
    if (planned.denied.length > 0) {
      return yield* new CliFailure({
        message: "Policy denies this plan",
        code: ExitCode.failed,
        details: planned.denied
      })
    }
  }, failures)
).pipe(
  Command.withDescription(
    "Plans a task without running it (a dry run with every step's policy decision); --execute then runs that very plan. Exits 1 when policy denies a step"
  )
)

// ---- policy -----------------------------------------------------------------------------------------------

const policyFile = Argument.String("file").pipe(
  Argument.withDescription("A policy set file (JSON, or YAML by extension)")
)

const readPolicy = (file: string) =>
  loadFile(file).pipe(
    Effect.mapError(
      (e) =>
        new CliFailure({
          message: `${file}: ${e.message}`,
          code: ExitCode.failed,
          details: e.issues.map((i) => `${i.path}: ${i.message}`)
        })
    )
  )

const rulesTable = (set: PolicySet.PolicySet) =>
  table(
    ["RULE", "EFFECT", "MATCH", "REASON"],
    set.rules.map((r) => [
      r.id,
      r.effect + (r.approvals === undefined ? "" : ` (${r.approvals.required})`),
      JSON.stringify(r.match),
      r.reason
    ])
  )

/** A version given in full or by a unique prefix, as published on the server. */
const resolveVersion = (api: HttpApiClient.ForApi<typeof Api>, given: string) =>
  Effect.gen(function* () {
    if (/^[0-9a-f]{64}$/.test(given)) return given
    const { versions } = yield* api.policy.versions()
    const matches = versions.filter((v) => v.version.startsWith(given.toLowerCase()))
    if (matches.length === 1) return matches[0]!.version
    return yield* new CliFailure({
      message: matches.length === 0 ? `No published policy version starts with ${given}` : `${given} is ambiguous`,
      code: matches.length === 0 ? ExitCode.notFound : ExitCode.usage
    })
  })

const policyShow = Command.make(
  "show",
  {
    version: Flag.String("version").pipe(
      Flag.withDescription("A published version (or a prefix); default the active one"),
      Flag.optional
    )
  },
  Effect.fn(function* (input) {
    const api = yield* client
    const given = Option.getOrUndefined(input.version)
    const stored =
      given === undefined
        ? yield* api.policy.active()
        : yield* Effect.gen(function* () {
            const version = yield* resolveVersion(api, given)
            const { policies } = yield* api.policy.list()
            return policies.find((p) => p.version === version)!
          })
    if (yield* asJson) return yield* json(stored)
    yield* fields([
      ["name", stored.policy.name],
      ["version", stored.version],
      ["active", stored.active],
      ["published", time(stored.published_at)],
      ...(stored.policy.description === undefined ? [] : [["description", stored.policy.description] as const])
    ])
    yield* Console.log("")
    yield* rulesTable(stored.policy)
  }, failures)
).pipe(Command.withDescription("Shows the active policy set (or a published version) and its rules"))

const policyValidate = Command.make(
  "validate",
  { file: policyFile },
  Effect.fn(function* ({ file }) {
    const set = yield* readPolicy(file)
    const version = PolicySet.version(set)
    if (yield* asJson) return yield* json({ valid: true, name: set.name, version, rules: set.rules.length })
    yield* Console.log(`${file}: valid, "${set.name}", ${set.rules.length} rules, version ${version}`)
  }, failures)
).pipe(
  Command.withDescription(
    "Checks a policy file locally (no server): every bad field with its JSON path; exits 1 when it is invalid"
  )
)

const policyTest = Command.make(
  "test",
  {
    file: policyFile,
    action: Flag.String("action").pipe(Flag.withDescription("The step type, e.g. onchain_action")),
    taskType: Flag.String("task-type").pipe(Flag.withDescription("The task type"), Flag.optional),
    params: Flag.String("params").pipe(Flag.withDescription("The step's params as JSON"), Flag.withDefault("{}")),
    roles: Flag.String("roles").pipe(
      Flag.withDescription("The principal's roles, comma-separated"),
      Flag.withDefault("submitter")
    ),
    expect: Flag.Literals("expect", PolicySet.PolicyEffect.literals).pipe(
      Flag.withDescription("Exit 1 unless the decision is this"),
      Flag.optional
    )
  },
  Effect.fn(function* (input) {
    const set = yield* readPolicy(input.file)
    const params = yield* parseJson(input.params, "--params")
    const roles = yield* Schema.decodeUnknownEffect(Schema.Array(Principal.Role))(csv(Option.some(input.roles))).pipe(
      Effect.mapError(() => usage(`--roles takes ${Principal.Role.literals.join(", ")}`))
    )
    const now = yield* Clock.currentTimeMillis
    const explanation = PolicySet.explain(
      set,
      PolicySet.version(set),
      {
        action: input.action,
        ...(Option.isSome(input.taskType) ? { task: input.taskType.value } : {}),
        params,
        principal: Principal.make("cli", roles)
      },
      now
    )
    if (yield* asJson) {
      yield* json(explanation)
    } else {
      yield* Console.log(`decision: ${explanation.decision.effect}  (${explanation.decision.reasons.join("; ")})\n`)
      yield* table(
        ["RULE", "EFFECT", "MATCHED", "DETAIL"],
        explanation.trace.map((t) => [t.rule, t.effect, t.matched ? "yes" : "no", t.detail])
      )
    }
    if (Option.isSome(input.expect) && input.expect.value !== explanation.decision.effect) {
      return yield* new CliFailure({
        message: `Expected ${input.expect.value}, the policy decides ${explanation.decision.effect}`,
        code: ExitCode.failed
      })
    }
  }, failures)
).pipe(Command.withDescription("Evaluates a hypothetical action against a policy file locally, with every rule's part"))

const impactTable = (impact: {
  readonly examined: number
  readonly changed: number
  readonly tasks: ReadonlyArray<{
    readonly task_id: string
    readonly task_type: string
    readonly status: string
    readonly steps: ReadonlyArray<{ readonly step_id: string; readonly before: string; readonly after: string }>
  }>
}) =>
  Effect.gen(function* () {
    yield* Console.log(
      `impact on the ${impact.examined} most recent tasks: ${impact.changed} would be decided differently`
    )
    if (impact.tasks.length === 0) return
    yield* table(
      ["TASK", "TYPE", "STATUS", "STEP", "NOW", "WOULD BE"],
      impact.tasks.flatMap((t) => t.steps.map((s) => [t.task_id, t.task_type, t.status, s.step_id, s.before, s.after]))
    )
  })

const policyDiff = Command.make(
  "diff",
  { file: policyFile },
  Effect.fn(function* ({ file }) {
    const set = yield* readPolicy(file)
    const api = yield* client
    const active = yield* api.policy.active()
    const before = new Map(active.policy.rules.map((r) => [r.id, JSON.stringify(r)]))
    const after = new Map(set.rules.map((r) => [r.id, JSON.stringify(r)]))
    const changes = [
      ...[...after.keys()].filter((id) => !before.has(id)).map((id) => ["+", id] as const),
      ...[...before.keys()].filter((id) => !after.has(id)).map((id) => ["-", id] as const),
      ...[...after.keys()]
        .filter((id) => before.has(id) && before.get(id) !== after.get(id))
        .map((id) => ["~", id] as const)
    ]
    // The impact needs the admin role (a dry run over recent tasks); without it the rule diff is still shown
    const dryRun = yield* api.policy
      .publish({ payload: { policy: Schema.encodeSync(PolicySet.PolicySet)(set) as Schema.Json, dry_run: true } })
      .pipe(
        Effect.map(Option.some),
        Effect.catchIf(
          (e): e is Forbidden => e instanceof Forbidden,
          () => Effect.succeed(Option.none())
        )
      )
    if (yield* asJson) {
      return yield* json({
        active_version: active.version,
        version: PolicySet.version(set),
        rules: changes.map(([change, id]) => ({
          change: change === "+" ? "added" : change === "-" ? "removed" : "changed",
          rule: id
        })),
        ...(Option.isSome(dryRun) ? { impact: dryRun.value.impact } : {})
      })
    }
    yield* Console.log(`active ${short(active.version)} → ${file} ${short(PolicySet.version(set))}`)
    yield* table(
      ["", "RULE", "NOW", "IN FILE"],
      changes.map(([change, id]) => [
        change,
        id,
        active.policy.rules.find((r) => r.id === id)?.effect,
        set.rules.find((r) => r.id === id)?.effect
      ])
    )
    yield* Console.log("")
    if (Option.isSome(dryRun)) yield* impactTable(dryRun.value.impact)
    else yield* Console.log("impact on recent tasks: needs the admin role")
  }, failures)
).pipe(
  Command.withDescription(
    "Compares a policy file with the active set: rules added, removed, changed, and (admins) which recent tasks would be decided differently"
  )
)

const policyPublish = Command.make(
  "publish",
  {
    file: policyFile,
    activate: Flag.Boolean("activate").pipe(Flag.withDescription("Also activate it"), Flag.withDefault(false))
  },
  Effect.fn(function* (input) {
    const set = yield* readPolicy(input.file)
    const api = yield* client
    const proposal = yield* api.policy.publish({
      payload: { policy: Schema.encodeSync(PolicySet.PolicySet)(set) as Schema.Json }
    })
    const activation = input.activate
      ? yield* api.policy.activate({ params: { version: proposal.version } })
      : undefined
    if (yield* asJson) return yield* json(activation === undefined ? proposal : { ...proposal, activation })
    yield* Console.log(
      `${proposal.new ? "published" : "already published"} "${proposal.name}" ${proposal.version}` +
        (activation === undefined
          ? " (not active: mandate policy activate <version>)"
          : activation.changed
            ? ", now active"
            : ", already active")
    )
    yield* impactTable(proposal.impact)
  }, failures)
).pipe(Command.withDescription("Publishes a policy file as a new version (admins), showing its impact on recent tasks"))

const policyActivate = Command.make(
  "activate",
  { version: Argument.String("version").pipe(Argument.withDescription("A published version or a unique prefix")) },
  Effect.fn(function* (input) {
    const api = yield* client
    const version = yield* resolveVersion(api, input.version)
    const activation = yield* api.policy.activate({ params: { version } })
    if (yield* asJson) return yield* json(activation)
    yield* Console.log(
      activation.changed
        ? `activated "${activation.active.policy.name}" ${activation.active.version}${activation.rollback ? " (rollback)" : ""}, replacing ${activation.previous}`
        : `${activation.active.version} already is the active version`
    )
  }, failures)
).pipe(
  Command.withDescription(
    "Activates a published version, or rolls back to an earlier one (admins); running tasks keep their version"
  )
)

const policyHistory = Command.make(
  "history",
  {},
  Effect.fn(function* () {
    const api = yield* client
    const { versions } = yield* api.policy.versions()
    if (yield* asJson) return yield* json(versions)
    yield* table(
      ["VERSION", "NAME", "RULES", "PUBLISHED", "ACTIVE"],
      versions.map((v) => [v.version, v.policy.name, v.policy.rules.length, time(v.published_at), v.active ? "*" : ""])
    )
  }, failures)
).pipe(Command.withDescription("Lists every published policy version, newest first (admins and auditors)"))

const policy = Command.make("policy").pipe(
  Command.withDescription("Show, check, compare, publish and activate policy sets"),
  Command.withSubcommands([
    policyShow,
    policyValidate,
    policyTest,
    policyDiff,
    policyPublish,
    policyActivate,
    policyHistory
  ])
)

// ---- ledger -----------------------------------------------------------------------------------------------

const ledgerVerify = Command.make(
  "verify",
  {
    chunk: Flag.Int("chunk").pipe(
      Flag.withDescription("Entries checked per request (progress is shown between requests)"),
      Flag.withDefault(50_000)
    )
  },
  Effect.fn(function* (input) {
    if (input.chunk < 1) return yield* usage("--chunk must be at least 1")
    const api = yield* client
    const asJsonOut = yield* asJson
    const { size } = yield* api.audit.overview({ query: { limit: 1 } })
    const totals = { entries: 0, checkpoints: 0, anchors: 0, anchors_unchecked: 0 }
    let from = 0
    let mismatch: Schema.Json | undefined
    let last: { readonly to: number; readonly valid: boolean } = { to: 0, valid: true }
    // The last range runs to the head as it is then, so the head record is checked too
    do {
      const to = from + input.chunk >= size ? undefined : from + input.chunk
      const result = yield* api.audit.verifyAll({ query: { from, to } })
      totals.entries += result.entries
      totals.checkpoints += result.checkpoints
      totals.anchors += result.anchors
      totals.anchors_unchecked += result.anchors_unchecked
      last = result
      if (!result.valid) {
        mismatch = result.mismatch as Schema.Json | undefined
        break
      }
      if (!asJsonOut && size > input.chunk)
        yield* Console.error(`verified ${result.to} of ${Math.max(size, result.to)} entries`)
      from = result.to
    } while (from < size)
    const report = {
      valid: last.valid,
      size: Math.max(size, last.to),
      ...totals,
      ...(mismatch === undefined ? {} : { mismatch })
    }
    if (asJsonOut) yield* json(report)
    else {
      yield* fields([
        ["ledger", last.valid ? "valid" : "TAMPERED"],
        ["entries checked", totals.entries],
        ["checkpoints checked", totals.checkpoints],
        ["anchors checked", totals.anchors],
        ["anchors unchecked", totals.anchors_unchecked]
      ])
    }
    if (!last.valid) {
      const m = mismatch as { seq: number; check: string; detail: string } | undefined
      return yield* new CliFailure({
        message:
          m === undefined
            ? "The ledger does not verify"
            : `The ledger does not verify at entry ${m.seq}: ${m.check} (${m.detail})`,
        code: ExitCode.failed
      })
    }
  }, failures)
).pipe(
  Command.withDescription(
    "Re-checks every entry, Merkle node, checkpoint and anchor receipt on the server (auditors); exits 1 on any mismatch, naming the first tampered entry"
  )
)

const ledger = Command.make("ledger").pipe(
  Command.withDescription("The audit ledger"),
  Command.withSubcommands([ledgerVerify])
)

// ---- audit: proof bundles ---------------------------------------------------------------------------------

const auditExport = Command.make(
  "export",
  {
    taskId,
    output: Flag.String("output").pipe(
      Flag.withAlias("o"),
      Flag.withDescription("Write the bundle to this file (default: standard output)"),
      Flag.optional
    )
  },
  Effect.fn(function* (input) {
    const api = yield* client
    const bundle = yield* api.audit.bundle({ params: { task_id: input.taskId as never } })
    const text = `${JSON.stringify(bundle, null, 2)}\n`
    if (Option.isNone(input.output)) return yield* Console.log(text.trimEnd())
    const fs = yield* FileSystem.FileSystem
    yield* fs
      .writeFileString(input.output.value, text)
      .pipe(
        Effect.mapError((e) => usage(`cannot write ${input.output.pipe(Option.getOrElse(() => ""))}: ${e.message}`))
      )
    yield* Console.error(
      `wrote ${input.output.value}: ${bundle.entries.length} entries of ${bundle.taskId}, checkpoint ${bundle.checkpoint.size}${bundle.anchor === undefined ? ", not anchored yet" : `, anchored at ${bundle.anchor.checkpoint.size}`}`
    )
  }, failures)
).pipe(
  Command.withDescription(
    "Exports a task's proof bundle (entries, inclusion proofs, signed checkpoint, anchor evidence, per-task links): one JSON document anyone can verify offline"
  )
)

const readText = (path: string, what: string) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    return yield* fs
      .readFileString(path)
      .pipe(Effect.mapError((e) => usage(`cannot read ${what} ${path}: ${e.message}`)))
  })

// The pinned key: a key id (64 hex digits), PEM text, or a PEM file
const pinnedKey = (value: string) =>
  /^[0-9a-f]{64}$/.test(value.trim()) || value.includes("BEGIN PUBLIC KEY")
    ? Effect.succeed(value.trim())
    : readText(value, "the key file")

// What a Qubic archive node says about the anchor transaction: its input must be the anchored root and size
const chainCheck = (rpc: string, bundle: unknown) =>
  Effect.gen(function* () {
    const name = "anchor.chain"
    const anchor = (
      bundle as { anchor?: { checkpoint: { root: string; size: number }; receipt: { txId: string; tick: number } } }
    ).anchor
    if (anchor === undefined) {
      return { name, ok: true, skipped: true, detail: "nothing was anchored when the bundle was exported" }
    }
    const expected = WebBundle.anchorInput(anchor.checkpoint.root, anchor.checkpoint.size)
    const http = yield* HttpClient.HttpClient
    const request = yield* HttpClientRequest.bodyJson(
      HttpClientRequest.post(`${rpc.replace(/\/+$/, "")}/query/v1/getTransactionByHash`),
      { hash: anchor.receipt.txId }
    )
    const response = yield* http.execute(request)
    if (response.status === 404) {
      return { name, ok: false, skipped: false, detail: `the chain has no transaction ${anchor.receipt.txId}` }
    }
    if (response.status !== 200) {
      return yield* new CliFailure({
        message: `the chain node answered ${response.status} for transaction ${anchor.receipt.txId}`,
        code: ExitCode.unavailable
      })
    }
    const tx = (yield* response.json) as { inputData?: unknown; tickNumber?: unknown }
    const input = typeof tx.inputData === "string" ? Buffer.from(tx.inputData, "base64").toString("hex") : undefined
    if (input !== expected) {
      return { name, ok: false, skipped: false, detail: `transaction ${anchor.receipt.txId} carries another input` }
    }
    if (tx.tickNumber !== anchor.receipt.tick) {
      return {
        name,
        ok: false,
        skipped: false,
        detail: `transaction ${anchor.receipt.txId} is in tick ${String(tx.tickNumber)}, the receipt says ${anchor.receipt.tick}`
      }
    }
    return {
      name,
      ok: true,
      skipped: false,
      detail: `the chain's transaction ${anchor.receipt.txId} (tick ${anchor.receipt.tick}) carries root ${anchor.checkpoint.root.slice(0, 12)}… and size ${anchor.checkpoint.size}`
    }
  }).pipe(
    Effect.mapError((e) =>
      e instanceof CliFailure
        ? e
        : new CliFailure({ message: `the chain node could not be asked: ${e.message}`, code: ExitCode.unavailable })
    )
  )

const auditVerify = Command.make(
  "verify",
  {
    file: Argument.String("bundle").pipe(Argument.withDescription("A proof bundle (from mandate audit export)")),
    key: Flag.String("key").pipe(
      Flag.withDescription(
        "The ledger's public key you trust: a PEM file, PEM text, or its key id (64 hex digits; GET /ledger shows both)"
      )
    ),
    chain: Flag.String("chain").pipe(
      Flag.withDescription("Also ask this Qubic RPC (e.g. https://rpc.qubic.org) for the anchor transaction"),
      Flag.optional
    )
  },
  Effect.fn(function* (input) {
    const text = yield* readText(input.file, "the bundle")
    const bundle = yield* parseJson(text, "the bundle")
    const key = yield* pinnedKey(input.key)
    const report = yield* Effect.promise(() => WebBundle.verifyBundle(bundle, key))
    const checks: Array<WebBundle.BundleCheck> = [...report.checks]
    if (Option.isSome(input.chain) && report.checks.some((c) => c.name === "anchor.receipt")) {
      checks.push(yield* chainCheck(input.chain.value, bundle))
    }
    const ok = checks.every((c) => c.ok)
    if (yield* asJson) yield* json({ ok, task_id: report.taskId, entries: report.entries, checks })
    else {
      yield* table(
        ["CHECK", "RESULT", "DETAIL"],
        checks.map((c) => [c.name, c.skipped ? "skipped" : c.ok ? "passed" : "FAILED", c.detail])
      )
    }
    if (!ok) {
      return yield* new CliFailure({
        message: `The bundle does not verify: ${checks
          .filter((c) => !c.ok)
          .map((c) => c.name)
          .join(", ")}`,
        code: ExitCode.failed
      })
    }
  }, failures)
).pipe(
  Command.withDescription(
    "Verifies a proof bundle offline against the key you pin (never the bundle's own): entries, inclusion, signature, completeness, anchor; exits 1 on any failure"
  )
)

const audit = Command.make("audit").pipe(
  Command.withDescription("Proof bundles: export a task's evidence, verify it offline"),
  Command.withSubcommands([auditExport, auditVerify])
)

// ---- queue and agents -------------------------------------------------------------------------------------

const queueFlag = Flag.String("queue").pipe(Flag.withDescription("Only this queue"), Flag.optional)

const queueStats = Command.make(
  "stats",
  { queue: queueFlag },
  Effect.fn(function* (input) {
    const api = yield* client
    const stats = yield* api.queue.stats({ query: { queue: Option.getOrUndefined(input.queue) as never } })
    if (yield* asJson) return yield* json(stats)
    yield* table(
      ["STATE", "JOBS"],
      Object.entries(stats.by_state).map(([state, n]) => [state, n])
    )
    yield* Console.log("")
    const ms = (v: number | null) => (v === null ? undefined : `${Math.round(v)} ms`)
    yield* fields([
      ["ready", stats.ready],
      ["oldest ready", ms(stats.oldest_ready_age_ms)],
      ["wait p50", ms(stats.wait_p50_ms)],
      ["wait p95", ms(stats.wait_p95_ms)],
      ["failure rate", stats.failure_rate === null ? undefined : `${(stats.failure_rate * 100).toFixed(1)}%`],
      ["dead-lettered", stats.dead_lettered]
    ])
  }, failures)
).pipe(Command.withDescription("Queue depth by state, readiness, wait percentiles and failure rate"))

const queueDead = Command.make(
  "dead",
  { queue: queueFlag, limit: Flag.Int("limit").pipe(Flag.withDescription("At most this many"), Flag.withDefault(50)) },
  Effect.fn(function* (input) {
    const api = yield* client
    const page = yield* api.queue.list({
      query: { status: "dead_lettered", queue: Option.getOrUndefined(input.queue) as never, limit: input.limit }
    })
    if (yield* asJson) return yield* json(page)
    yield* table(
      ["JOB", "QUEUE", "ATTEMPTS", "LAST ERROR", "SINCE"],
      page.jobs.map((j) => [j.job_id, j.queue, `${j.attempts}/${j.max_attempts}`, j.last_error, time(j.updated_at)])
    )
  }, failures)
).pipe(Command.withDescription("Lists dead-lettered jobs"))

const queueRedrive = Command.make(
  "redrive",
  {
    jobIds: Argument.String("job-id").pipe(
      Argument.withDescription("Dead-lettered jobs"),
      Argument.variadic({ min: 1 })
    )
  },
  Effect.fn(function* (input) {
    const api = yield* client
    const out = yield* asJson
    const jobs = []
    for (const id of input.jobIds) {
      const job = yield* api.queue.redrive({ params: { id: id as never } })
      jobs.push(job)
      if (!out) yield* Console.log(`${job.job_id}  ${job.queue}  ${job.status}`)
    }
    if (out) yield* json(jobs)
  }, failures)
).pipe(
  Command.withDescription(
    "Returns dead-lettered jobs to their queue with a fresh attempt budget (admins; the runtime's mandate.* jobs are retried through their task)"
  )
)

const queue = Command.make("queue").pipe(
  Command.withDescription("Queue health and dead letters"),
  Command.withSubcommands([queueStats, queueDead, queueRedrive])
)

const agentsList = Command.make(
  "list",
  {
    pool: Flag.String("pool").pipe(Flag.withDescription("Only this pool"), Flag.optional),
    status: Flag.Literals("status", ["online", "degraded", "offline"]).pipe(
      Flag.withDescription("Only agents in this state"),
      Flag.optional
    )
  },
  Effect.fn(function* (input) {
    const api = yield* client
    const { agents } = yield* api.agents.list({
      query: { pool: Option.getOrUndefined(input.pool) as never, status: Option.getOrUndefined(input.status) }
    })
    if (yield* asJson) return yield* json(agents)
    yield* table(
      ["AGENT", "POOL", "STATUS", "LOAD", "LAST HEARTBEAT", "CAPABILITIES"],
      agents.map((a) => [a.agent_id, a.pool, a.status, a.load, time(a.last_heartbeat_at), a.capabilities.join(",")])
    )
  }, failures)
).pipe(Command.withDescription("Lists registered agents with their status"))

const agents = Command.make("agents").pipe(
  Command.withDescription("Remote agents"),
  Command.withSubcommands([agentsList])
)

// ---- serve ------------------------------------------------------------------------------------------------

const serve = Command.make(
  "serve",
  {
    port: Flag.Int("port").pipe(Flag.withDescription("Port (default: PORT, else 8000)"), Flag.optional),
    host: Flag.String("host").pipe(Flag.withDescription("Address (default: HOST, else 127.0.0.1)"), Flag.optional)
  },
  Effect.fn(function* (input) {
    // Loaded only here: every other command is a small HTTP client
    const Server = yield* Effect.promise(() => import("../Server.ts"))
    const env: Record<string, string> = {}
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v
    if (Option.isSome(input.port)) env.PORT = String(input.port.value)
    if (Option.isSome(input.host)) env.HOST = input.host.value
    return yield* Layer.launch(Server.layerConfig).pipe(
      Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(env)))
    )
  }, failures)
).pipe(Command.withDescription("Runs the server (the same as npm start; configured by the environment)"))

// ---- the tree ---------------------------------------------------------------------------------------------

/**
 * The whole command tree.
 *
 * @category commands
 * @since 0.1.0
 */
export const command = mandate.pipe(Command.withSubcommands([serve, tasks, plan, policy, audit, ledger, queue, agents]))
