/**
 * The models several groups share (`api/Models.ts`) as wire shapes: renames to snake_case, nothing computed. Each
 * group's own resources are mapped in its module (`Audit.ts`, `Queue.ts`, …).
 *
 * @since 0.1.0
 */
import type {
  Agent,
  AnchorReceipt,
  Approval,
  Checkpoint,
  Job,
  LedgerEntry,
  Merkle,
  Plan,
  PolicySet,
  Principal,
  StalledStep,
  Step,
  Task,
  TaskEvent,
  TaskView
} from "@mandate/core"
import type { Schema } from "effect"
import { HttpServerResponse } from "effect/http"
import type * as Models from "../api/Models.ts"

/**
 * A schema's wire (encoded) form.
 *
 * @category models
 * @since 0.1.0
 */
export type Wire<S extends Schema.Top> = S["Encoded"]
type Mutable<T> = { -readonly [K in keyof T]: T[K] }

/**
 * The 200 JSON response of a value the server built itself in its schema's wire form, serialised as it is. A
 * handler that returns the value instead has HttpApi encode it against the schema again, which costs as much as
 * building it (~50 µs for a task's detail) and can change nothing: `Wire<S>` is the encoded type, and the
 * mappers leave optional fields out rather than set them to `undefined` (the tests check the two agree).
 *
 * @category mapping
 * @since 0.1.0
 */
export const respond =
  <S extends Schema.Top>(_schema: S) =>
  (wire: Wire<S>): HttpServerResponse.HttpServerResponse =>
    HttpServerResponse.jsonUnsafe(wire)

/**
 * `{ [key]: value }`, or `{}` when `value` is `undefined` (an optional wire field left out).
 *
 * @category mapping
 * @since 0.1.0
 */
export const optional = <K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } =>
  (value === undefined ? {} : { [key]: value }) as { [P in K]?: V }

/**
 * @category mapping
 * @since 0.1.0
 */
export const principal = (p: Principal.Principal): Wire<typeof Models.PrincipalWire> => ({ id: p.id, roles: p.roles })

/**
 * @category mapping
 * @since 0.1.0
 */
export const decision = (d: PolicySet.PolicyDecision): Wire<typeof Models.DecisionWire> => ({
  effect: d.effect,
  matched_rules: d.matchedRules,
  reasons: d.reasons,
  policy_version: d.policyVersion,
  ...optional(
    "approvals",
    d.approvals === undefined
      ? undefined
      : {
          required: d.approvals.required,
          ...optional("timeout_seconds", d.approvals.timeoutSeconds)
        }
  )
})

/**
 * @category mapping
 * @since 0.1.0
 */
export const plan = (p: Plan.Plan, denied: ReadonlyArray<string>): Wire<typeof Models.PlanWire> => ({
  plan_id: p.id,
  ...optional("task_id", p.taskId),
  task_type: p.kind,
  parameters: p.params,
  steps: p.steps.map((s) => ({
    step_id: s.id,
    type: s.type,
    parameters: s.params,
    depends_on: s.dependsOn,
    decision: decision(s.decision),
    params_hash: s.paramsHash
  })),
  policy_version: p.policyVersion,
  hash: p.hash,
  created_at: p.createdAt,
  denied
})

/**
 * @category mapping
 * @since 0.1.0
 */
export const task = (t: Task.Task): Wire<typeof Models.TaskWire> => ({
  task_id: t.id,
  task_type: t.kind,
  parameters: t.params,
  priority: t.priority,
  status: t.state,
  ...optional("plan_id", t.planId),
  ...optional("policy_version", t.policyVersion),
  ...optional("idempotency_key", t.idempotencyKey),
  requested_by: principal(t.requestedBy),
  reasons: t.reasons,
  created_at: t.createdAt,
  updated_at: t.updatedAt
})

/**
 * @category mapping
 * @since 0.1.0
 */
export const step = (s: Step.Step): Wire<typeof Models.StepWire> => ({
  step_id: s.id,
  type: s.type,
  status: s.state,
  attempts: s.attempts,
  round: s.round,
  ...optional("job_id", s.jobId),
  ...optional("deadline_at", s.deadlineAt),
  ...optional("result", s.result),
  ...optional(
    "error",
    s.error === undefined
      ? undefined
      : { message: s.error.message, retryable: s.error.retryable, ...optional("details", s.error.details) }
  ),
  updated_at: s.updatedAt
})

/**
 * @category mapping
 * @since 0.1.0
 */
export const approval = (a: Approval): Wire<typeof Models.ApprovalWire> => ({
  step_id: a.stepId,
  round: a.round,
  principal: principal(a.principal),
  decision: a.decision,
  ...optional("comment", a.comment),
  at: a.at,
  params_hash: a.paramsHash,
  plan_hash: a.planHash,
  policy_version: a.policyVersion
})

/**
 * @category mapping
 * @since 0.1.0
 */
export const taskDetail = (v: TaskView): Wire<typeof Models.TaskDetailWire> => ({
  ...task(v.task),
  plan: plan(v.plan, []),
  steps: v.steps.map(step),
  approvals: v.approvals.map(approval)
})

/**
 * @category mapping
 * @since 0.1.0
 */
export const taskStatus = (
  v: Pick<TaskView, "task" | "steps">,
  stalled?: ReadonlyArray<StalledStep>
): Wire<typeof Models.TaskStatusWire> => ({
  task_id: v.task.id,
  status: v.task.state,
  ...optional("plan_id", v.task.planId),
  steps: v.steps.map((s) => ({ step_id: s.id, type: s.type, status: s.state })),
  waiting_approval: v.steps.filter((s) => s.state === "waiting_approval").map((s) => s.id),
  ...(stalled === undefined || stalled.length === 0
    ? {}
    : { waiting_for_agents: stalled.map((s) => ({ step_id: s.stepId, pool: s.pool })) }),
  reasons: v.task.reasons,
  updated_at: v.task.updatedAt
})

/**
 * @category mapping
 * @since 0.1.0
 */
export const taskEvent = (e: TaskEvent): Wire<typeof Models.TaskEventWire> => ({
  seq: e.seq,
  task_id: e.taskId,
  kind: e.kind,
  ...optional("step_id", e.stepId),
  status: e.state as Task.TaskState,
  at: e.at,
  ...optional("data", e.data)
})

/**
 * @category mapping
 * @since 0.1.0
 */
export const job = (j: Job): Wire<typeof Models.JobWire> => ({
  job_id: j.id,
  queue: j.queue,
  payload: j.payload,
  priority: j.priority,
  status: j.state,
  run_at: j.runAt,
  attempts: j.attempts,
  max_attempts: j.maxAttempts,
  ...optional("idempotency_key", j.idempotencyKey),
  ...optional("pool", j.pool),
  ...optional(
    "lease",
    j.lease === undefined ? undefined : { worker_id: j.lease.workerId, expires_at: j.lease.expiresAt }
  ),
  ...optional("last_error", j.lastError),
  ...optional("result", j.result),
  failures: j.failures ?? 0,
  created_at: j.createdAt,
  updated_at: j.updatedAt,
  ...optional("claimed_at", j.claimedAt),
  ...optional("finished_at", j.finishedAt)
})

/**
 * @category mapping
 * @since 0.1.0
 */
export const agent = (a: Agent): Wire<typeof Models.AgentWire> => ({
  agent_id: a.id,
  pool: a.pool,
  capabilities: a.capabilities,
  labels: a.labels,
  status: a.status,
  registered_at: a.registeredAt,
  last_heartbeat_at: a.lastHeartbeatAt,
  ...optional("load", a.load)
})

/**
 * @category mapping
 * @since 0.1.0
 */
export const ledgerEntry = (e: LedgerEntry): Wire<typeof Models.LedgerEntryWire> => {
  const out: Mutable<Wire<typeof Models.LedgerEntryWire>> = {
    seq: e.seq,
    kind: e.kind,
    at: e.at,
    payload_hash: e.payloadHash,
    prev_hash: e.prevHash,
    entry_hash: e.entryHash
  }
  if (e.taskId !== undefined) out.task_id = e.taskId
  if (e.taskPrevHash !== undefined) out.task_prev_hash = e.taskPrevHash
  if (e.stepId !== undefined) out.step_id = e.stepId
  if (e.principal !== undefined) out.principal = principal(e.principal)
  if ("payload" in e && e.payload !== undefined) out.payload = e.payload
  return out
}

/**
 * @category mapping
 * @since 0.1.0
 */
export const checkpoint = (c: Checkpoint): Wire<typeof Models.CheckpointWire> => ({
  size: c.size,
  root: c.root,
  timestamp: c.timestamp,
  signature: c.signature,
  key_id: c.keyId
})

/**
 * @category mapping
 * @since 0.1.0
 */
export const inclusionProof = (p: Merkle.InclusionProof): Wire<typeof Models.InclusionProofWire> => ({
  leaf_index: p.leafIndex,
  tree_size: p.treeSize,
  path: p.path
})

/**
 * @category mapping
 * @since 0.1.0
 */
export const anchorReceipt = (r: AnchorReceipt): Wire<typeof Models.AnchorReceiptWire> => ({
  chain: r.chain,
  tx_id: r.txId,
  tick: r.tick,
  root: r.root,
  size: r.size,
  status: r.status,
  published_at: r.publishedAt,
  ...optional("confirmed_at", r.confirmedAt)
})
