/**
 * The wire shapes of the API: snake_case JSON, times as epoch milliseconds (`*_at`), every one a Schema so the
 * OpenAPI document, the server's encoder and a typed client agree. Documents whose bytes are hashed keep the
 * shape they are hashed in: a policy set (its version is the SHA-256 of its canonical JSON) and the params of a
 * task or step (`parameters`, hashed into the plan).
 *
 * @since 0.1.0
 */
import { AgentStatus, AnchorStatus, ApprovalDecision, JobState, PolicySet, Principal, Step, Task } from "@mandate/core"
import { Schema } from "effect"

const Millis = Schema.Finite.annotate({ description: "Epoch milliseconds" })
const Hex = Schema.String.annotate({ description: "SHA-256, 64 lowercase hex digits" })

/**
 * @category models
 * @since 0.1.0
 */
export const PrincipalWire = Schema.Struct({ id: Schema.String, roles: Schema.Array(Principal.Role) })

/**
 * A policy decision: the effect, the rules that matched, why, under which policy version.
 *
 * @category models
 * @since 0.1.0
 */
export const DecisionWire = Schema.Struct({
  effect: PolicySet.PolicyEffect,
  matched_rules: Schema.Array(Schema.String),
  reasons: Schema.Array(Schema.String),
  policy_version: Hex,
  approvals: Schema.optionalKey(
    Schema.Struct({ required: Schema.Int, timeout_seconds: Schema.optionalKey(Schema.Int) })
  )
})

/**
 * @category models
 * @since 0.1.0
 */
export const PlannedStepWire = Schema.Struct({
  step_id: Schema.String,
  type: Schema.String,
  parameters: Schema.Json,
  depends_on: Schema.Array(Schema.String),
  decision: DecisionWire,
  params_hash: Hex
})

/**
 * A plan: the DAG of steps, each with its policy decision; `hash` is what approvals bind to.
 *
 * @category models
 * @since 0.1.0
 */
export const PlanWire = Schema.Struct({
  plan_id: Schema.String,
  task_id: Schema.optionalKey(Schema.String),
  task_type: Schema.String,
  parameters: Schema.Json,
  steps: Schema.Array(PlannedStepWire),
  policy_version: Hex,
  hash: Hex,
  created_at: Millis,
  /** Reasons of the steps policy denies (empty when the plan may run). */
  denied: Schema.Array(Schema.String)
})

/**
 * A task as listed: what was asked, by whom, where it stands.
 *
 * @category models
 * @since 0.1.0
 */
export const TaskWire = Schema.Struct({
  task_id: Schema.String,
  task_type: Schema.String,
  parameters: Schema.Json,
  priority: Task.Priority,
  status: Task.TaskState,
  plan_id: Schema.optionalKey(Schema.String),
  policy_version: Schema.optionalKey(Hex),
  idempotency_key: Schema.optionalKey(Schema.String),
  requested_by: PrincipalWire,
  reasons: Schema.Array(Schema.String),
  created_at: Millis,
  updated_at: Millis
})

/**
 * A step at run time.
 *
 * @category models
 * @since 0.1.0
 */
export const StepWire = Schema.Struct({
  step_id: Schema.String,
  type: Schema.String,
  status: Step.StepState,
  attempts: Schema.Int,
  round: Schema.Int,
  job_id: Schema.optionalKey(Schema.String),
  deadline_at: Schema.optionalKey(Millis),
  result: Schema.optionalKey(Schema.Json),
  error: Schema.optionalKey(
    Schema.Struct({ message: Schema.String, retryable: Schema.Boolean, details: Schema.optionalKey(Schema.Json) })
  ),
  updated_at: Millis
})

/**
 * One approver's decision, bound to the plan hash, the step's params hash and the policy version.
 *
 * @category models
 * @since 0.1.0
 */
export const ApprovalWire = Schema.Struct({
  step_id: Schema.String,
  round: Schema.Int,
  principal: PrincipalWire,
  decision: ApprovalDecision,
  comment: Schema.optionalKey(Schema.String),
  at: Millis,
  params_hash: Hex,
  plan_hash: Hex,
  policy_version: Hex
})

/**
 * A task with everything about it: plan, steps with states and results, approvals.
 *
 * @category models
 * @since 0.1.0
 */
export const TaskDetailWire = Schema.Struct({
  ...TaskWire.fields,
  plan: PlanWire,
  steps: Schema.Array(StepWire),
  approvals: Schema.Array(ApprovalWire)
})

/**
 * Where a task stands, in brief.
 *
 * @category models
 * @since 0.1.0
 */
export const TaskStatusWire = Schema.Struct({
  task_id: Schema.String,
  status: Task.TaskState,
  plan_id: Schema.optionalKey(Schema.String),
  steps: Schema.Array(Schema.Struct({ step_id: Schema.String, type: Schema.String, status: Step.StepState })),
  /** Steps waiting for an approver. */
  waiting_approval: Schema.Array(Schema.String),
  /** Queued remote steps whose pool has no online agent (absent when none). */
  waiting_for_agents: Schema.optionalKey(Schema.Array(Schema.Struct({ step_id: Schema.String, pool: Schema.String }))),
  reasons: Schema.Array(Schema.String),
  updated_at: Millis
})

/**
 * A live task event (Server-Sent Events): the ledger entries the runtime writes and scheduling news. The first
 * event of a stream is `task.snapshot` with the task's status when the stream opened; `keepalive` events (seq 0,
 * the task's latest status) come at a fixed interval so that a quiet stream stays open.
 *
 * @category models
 * @since 0.1.0
 */
export const TaskEventWire = Schema.Struct({
  seq: Schema.Int,
  task_id: Schema.String,
  kind: Schema.String,
  step_id: Schema.optionalKey(Schema.String),
  status: Task.TaskState,
  at: Millis,
  data: Schema.optionalKey(Schema.Json)
})

/**
 * An event of the all-tasks feed (`GET /tasks/events`): a task event as on a task's own stream, or a `keepalive`
 * (seq 0, no task) that keeps a quiet stream open; the first event is a `keepalive` too, so the response starts
 * at once.
 *
 * @category models
 * @since 0.1.0
 */
export const FeedEventWire = Schema.Struct({
  seq: Schema.Int,
  kind: Schema.String,
  task_id: Schema.optionalKey(Schema.String),
  step_id: Schema.optionalKey(Schema.String),
  status: Schema.optionalKey(Task.TaskState),
  at: Millis,
  data: Schema.optionalKey(Schema.Json)
})

/**
 * A queue job, with its lease and retry bookkeeping.
 *
 * @category models
 * @since 0.1.0
 */
export const JobWire = Schema.Struct({
  job_id: Schema.String,
  queue: Schema.String,
  payload: Schema.Json,
  priority: Task.Priority,
  status: JobState,
  run_at: Millis,
  attempts: Schema.Int,
  max_attempts: Schema.Int,
  idempotency_key: Schema.optionalKey(Schema.String),
  pool: Schema.optionalKey(Schema.String),
  lease: Schema.optionalKey(Schema.Struct({ worker_id: Schema.String, expires_at: Millis })),
  last_error: Schema.optionalKey(Schema.String),
  result: Schema.optionalKey(Schema.Json),
  failures: Schema.Int,
  created_at: Millis,
  updated_at: Millis,
  claimed_at: Schema.optionalKey(Millis),
  finished_at: Schema.optionalKey(Millis)
})

/**
 * A registered agent; its status follows from the age of its last heartbeat.
 *
 * @category models
 * @since 0.1.0
 */
export const AgentWire = Schema.Struct({
  agent_id: Schema.String,
  pool: Schema.String,
  capabilities: Schema.Array(Schema.String),
  labels: Schema.Record(Schema.String, Schema.String),
  status: AgentStatus,
  registered_at: Millis,
  last_heartbeat_at: Millis,
  load: Schema.optionalKey(Schema.Finite)
})

/**
 * A ledger entry. Its `entry_hash` is SHA-256(prev_hash bytes ‖ canonical JSON of the entry without its hash),
 * computed over the camelCase names of the same fields (`payloadHash`, `prevHash`, `taskId`, `taskPrevHash`,
 * `stepId`): see `@mandate/core`'s `Ledger`.
 *
 * @category models
 * @since 0.1.0
 */
export const LedgerEntryWire = Schema.Struct({
  seq: Schema.Int,
  kind: Schema.String,
  task_id: Schema.optionalKey(Schema.String),
  /** The hash of the task's previous entry (`taskPrevHash`, entry format 2): the per-task chain. */
  task_prev_hash: Schema.optionalKey(Hex),
  step_id: Schema.optionalKey(Schema.String),
  principal: Schema.optionalKey(PrincipalWire),
  at: Millis,
  payload_hash: Hex,
  payload: Schema.optionalKey(Schema.Json),
  prev_hash: Hex,
  entry_hash: Hex
})

/**
 * A signed tree head: the Merkle root over the first `size` entries, signed with Ed25519.
 *
 * @category models
 * @since 0.1.0
 */
export const CheckpointWire = Schema.Struct({
  size: Schema.Int,
  root: Hex,
  timestamp: Millis,
  signature: Schema.String,
  key_id: Hex
})

/**
 * @category models
 * @since 0.1.0
 */
export const InclusionProofWire = Schema.Struct({
  leaf_index: Schema.Int,
  tree_size: Schema.Int,
  path: Schema.Array(Hex)
})

/**
 * Where and when a root was anchored on the chain.
 *
 * @category models
 * @since 0.1.0
 */
export const AnchorReceiptWire = Schema.Struct({
  chain: Schema.String,
  tx_id: Schema.String,
  tick: Schema.Int,
  root: Hex,
  size: Schema.Int,
  status: AnchorStatus,
  published_at: Millis,
  confirmed_at: Schema.optionalKey(Millis)
})
