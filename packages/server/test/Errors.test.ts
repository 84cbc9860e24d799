import { assert, describe, it } from "@effect/vitest"
import * as Qubic from "@mandate/adapters/qubic"
import * as Core from "@mandate/core"
import { OpenApi } from "effect/http-api"
import { Api } from "../src/api/Api.ts"
import * as WireErrors from "../src/api/Errors.ts"
import { errorTable, type MappedErrorOf, type MappedTag, toHttp } from "../src/http/Errors.ts"
import * as Stores from "../src/Stores.ts"

const spec = OpenApi.fromApi(Api) as any

// A driver's text that must never reach a client
const secret = "password=hunter2 host=db.internal"
const cause = new Error(secret)
const hash = Core.Sha256Hex.make("0".repeat(64))

// One instance of every mapped error class; the type makes it exhaustive, as it does the table
const samples: { readonly [T in MappedTag]: MappedErrorOf<T> } = {
  InvalidInput: Core.InvalidInput.at("$.params.amount", "Expected a number"),
  UnknownTaskKind: new Core.UnknownTaskKind({ kind: "nope", known: ["payment"] }),
  InvalidTreeRange: new Core.InvalidTreeRange({ parameter: "oldSize", value: 9, limit: 3, reason: "past the end" }),
  Forbidden: new Core.Forbidden({ principal: "mallory", action: "approve", reason: "not an approver" }),
  ApprovalForbidden: new Core.ApprovalForbidden({ taskId: "task_1", principal: "alice", reason: "four eyes" }),
  TaskNotFound: new Core.TaskNotFound({ taskId: "task_1" }),
  PlanNotFound: new Core.PlanNotFound({ planId: "plan_1" }),
  JobNotFound: new Core.JobNotFound({ jobId: "job_1" }),
  AgentNotFound: new Core.AgentNotFound({ agentId: "agent_1" }),
  PoolNotFound: new Core.PoolNotFound({ pool: "gpu" }),
  EntryNotFound: new Core.EntryNotFound({ entryHash: hash }),
  AnchorNotFound: new Core.AnchorNotFound({ id: "tx_1" }),
  UnknownPolicyVersion: new Core.UnknownPolicyVersion({ version: "v9" }),
  WebhookNotFound: new Core.WebhookNotFound({ webhookId: "wh_1" }),
  WebhookDeliveryNotFound: new Core.WebhookDeliveryNotFound({ deliveryId: "whd_1" }),
  StepNotFound: new Core.StepNotFound({ taskId: "task_1", stepId: "pay", problem: "missing", reason: "no step pay" }),
  IllegalTransition: new Core.IllegalTransition({ entity: "task", id: "task_1", from: "succeeded", to: "running" }),
  LeaseLost: new Core.LeaseLost({ jobId: "job_1", workerId: "w1", reason: "expired", state: "queued" }),
  VersionConflict: new Core.VersionConflict({ taskId: "task_1", expected: 1, found: 2 }),
  TaskExists: new Core.TaskExists({ taskId: "task_1", existing: "task_0" }),
  PlanStale: new Core.PlanStale({ planId: "plan_1", reason: "policy_changed", expected: "a", found: "b" }),
  LedgerTampered: new Core.LedgerTampered({ seq: 1, check: "seq", expected: "1", found: "2", detail: "gap" }),
  TaskRejected: new Core.TaskRejected({ taskId: "task_1", planId: "plan_1", reasons: ["over the limit"] }),
  UnknownStepType: new Core.UnknownStepType({ step: "pay", type: "teleport" }),
  InvalidPlan: new Core.Plan.InvalidPlan({ message: "cycle a -> b -> a", steps: ["a", "b"] }),
  CheckpointRejected: new Core.CheckpointRejected({ size: 3, reason: "signature", detail: "bad signature" }),
  ReservedEntryKind: new Core.ReservedEntryKind({ kind: "task.created" }),
  ProposalRefused: new Core.LlmPlanner.ProposalRefused({ model: "m", reason: "not a plan", path: "$" }),
  TaskStoreError: new Core.TaskStoreError({ operation: "get", cause }),
  QueueStoreError: new Core.QueueStoreError({ operation: "claim", cause }),
  LedgerStoreError: new Core.LedgerStoreError({ operation: "append", cause }),
  PolicyStoreError: new Core.PolicyStoreError({ operation: "active", cause }),
  AgentsStoreError: new Core.AgentsStoreError({ operation: "pools", cause }),
  RateLimitStoreError: new Core.RateLimitStoreError({ operation: "take", cause }),
  WebhookStoreError: new Core.WebhookStoreError({ operation: "list", cause }),
  UnitOfWorkError: new Core.UnitOfWorkError({ message: secret, retryable: true, cause }),
  StoreUnavailable: new Stores.StoreUnavailable({ store: "postgres", message: secret }),
  AnchorError: new Core.AnchorError({ operation: "publish", message: secret }),
  QubicApiError: new Qubic.QubicApiError({ operation: "broadcast", status: 500, code: 2, message: secret }),
  QubicNetworkError: new Qubic.QubicNetworkError({ operation: "tick", message: secret }),
  QubicSignerError: new Qubic.QubicSignerError({ message: secret }),
  StateFileError: new Qubic.StateFile.StateFileError({ path: "/var/state", message: secret }),
  MissingPeerDependency: new Qubic.MissingPeerDependency({ dependency: "@effect/platform-node", needed: "x" }),
  LedgerKeyError: new Core.LedgerKeys.LedgerKeyError({ path: "/keys/ledger", message: secret }),
  WalletError: new Core.WalletError({ wallet: "main", message: secret }),
  PlannerUnavailable: new Core.LlmPlanner.PlannerUnavailable({ model: "m", reason: secret }),
  StepError: new Core.StepError({ message: secret, retryable: false }),
  JobFailure: new Core.JobFailure({ message: secret, retryable: false }),
  RateLimited: new Core.RateLimited({ bucket: "alice", limit: 10, retryAfterMillis: 1000 })
}

// Every error class a module (and its namespaces) exports, by tag
const errorTags = (module: object, depth = 0): Array<string> =>
  Object.values(module).flatMap((value): Array<string> => {
    if (typeof value === "function" && value.prototype instanceof Error) {
      const tag = (value as { fields?: { _tag?: { ast?: { literal?: unknown } } } }).fields?._tag?.ast?.literal
      return typeof tag === "string" ? [tag] : []
    }
    return depth === 0 && Object.prototype.toString.call(value) === "[object Module]" ? errorTags(value, 1) : []
  })

const wireClasses = [
  WireErrors.BadRequest,
  WireErrors.NotFound,
  WireErrors.Conflict,
  WireErrors.Forbidden,
  WireErrors.PolicyDenied,
  WireErrors.Unprocessable,
  WireErrors.Unavailable
]

// The `error` kinds each status of each route may answer with, from the OpenAPI document
const documented = new Map<string, Set<string>>()
const component = (ref: string) => spec.components.schemas[ref.replace("#/components/schemas/", "")]
const kindsOf = (schema: any): Array<string> =>
  schema === undefined
    ? []
    : schema.$ref !== undefined
      ? kindsOf(component(schema.$ref))
      : [...(schema.anyOf ?? schema.oneOf ?? [])].length > 0
        ? (schema.anyOf ?? schema.oneOf).flatMap(kindsOf)
        : [schema.properties?.error?.enum ?? [], schema.properties?.error?.const ?? []].flat()
for (const operations of Object.values<any>(spec.paths)) {
  for (const operation of Object.values<any>(operations)) {
    for (const [status, response] of Object.entries<any>(operation.responses)) {
      if (Number(status) < 400) continue
      const kinds = documented.get(status) ?? new Set<string>()
      for (const kind of kindsOf(response.content?.["application/json"]?.schema)) kinds.add(kind)
      documented.set(status, kinds)
    }
  }
}

describe("the error table", () => {
  it("has one entry for every error class of core, the Qubic adapter and the server's stores", () => {
    const exported = new Set([...errorTags(Core), ...errorTags(Qubic), ...errorTags(Stores)])
    assert.deepStrictEqual([...exported].sort(), Object.keys(errorTable).sort())
    assert.deepStrictEqual(Object.keys(samples).sort(), Object.keys(errorTable).sort())
  })

  it("maps every error to a wire error the OpenAPI document lists, with no empty field", () => {
    const produced = new Set<string>()
    for (const [tag, error] of Object.entries(samples)) {
      const wire = toHttp()(error as { readonly _tag: string }) as any
      assert.isTrue(
        wireClasses.some((c) => wire instanceof c),
        `${tag}: a wire error class`
      )
      const status = String(wire.constructor.ast?.annotations?.httpApiStatus ?? "")
      assert.isTrue(documented.get(status)?.has(wire.error), `${tag}: ${status} ${wire.error} is documented`)
      produced.add(`${status} ${wire.error}`)
      for (const [key, value] of Object.entries(wire)) {
        if (typeof value === "string") assert.isAbove(value.length, 0, `${tag}: ${key} is empty`)
      }
      // The client sees what failed, never the driver's text
      assert.notInclude(wire.message, "hunter2", tag)
    }
    // Conversely, every error kind the document lists is one a route can answer with: from the table, or from
    // the middleware (authentication, body size, rate limit)
    const middleware = ["401 unauthorized", "413 payload_too_large", "429 rate_limited"]
    for (const [status, kinds] of documented) {
      for (const kind of kinds) {
        const entry = `${status} ${kind}`
        assert.isTrue(produced.has(entry) || middleware.includes(entry), `${entry} is documented but never produced`)
      }
    }
  })

  it("reads each class's own fields", () => {
    const notFound = toHttp()(samples.TaskNotFound)
    assert.deepStrictEqual([notFound.resource, notFound.id], ["task", "task_1"])
    const step = toHttp()(new Core.StepNotFound({ taskId: "t", stepId: "s", problem: "not_waiting", reason: "r" }))
    assert.instanceOf(step, WireErrors.Conflict)
    assert.strictEqual((step as WireErrors.Conflict).reason, "not_waiting")
    const denied = toHttp()(samples.TaskRejected)
    assert.deepStrictEqual([denied.task_id, denied.plan_id, denied.reasons], ["task_1", "plan_1", ["over the limit"]])
    const lease = toHttp()(samples.LeaseLost)
    assert.strictEqual(lease.reason, "lease_expired")
    const range = toHttp()(samples.InvalidTreeRange)
    assert.strictEqual(range.path, "$query.from")
    const renamed = toHttp({ "$.params": "$.parameters" })(samples.InvalidInput)
    assert.deepStrictEqual([renamed.path, renamed.issues[0]?.path], ["$.parameters.amount", "$.parameters.amount"])
    assert.strictEqual(
      toHttp()(samples.TaskStoreError).message,
      "The task store could not complete the request; retry later (TaskStoreError)"
    )
  })
})
