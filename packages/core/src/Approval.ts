/**
 * Approvals: a principal's decision on a gated step, bound to exactly what was approved.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { PolicyVersion, Sha256Hex, StepId, TaskId } from "./Ids.ts"
import { Principal } from "./Principal.ts"

/**
 * @category models
 * @since 0.1.0
 */
export const ApprovalDecision = Schema.Literals(["granted", "rejected"])
export type ApprovalDecision = typeof ApprovalDecision.Type

/**
 * One approver's decision. It binds to the step's params hash, the plan's hash and the policy version: if any
 * of them changes, the approval no longer applies.
 *
 * @category models
 * @since 0.1.0
 */
export const Approval = Schema.Struct({
  taskId: TaskId,
  stepId: StepId,
  /** The step's round it applies to: an approval is consumed by the run it allowed. */
  round: Schema.Int,
  principal: Principal,
  decision: ApprovalDecision,
  comment: Schema.optionalKey(Schema.String.check(Schema.isMaxLength(2000))),
  at: Schema.Number,
  paramsHash: Sha256Hex,
  planHash: Sha256Hex,
  policyVersion: PolicyVersion
})
export type Approval = typeof Approval.Type
