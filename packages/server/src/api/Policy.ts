/**
 * Policy: the active policy set and its version, every published version, and a dry run of a hypothetical
 * action with every rule's part in the decision.
 *
 * @since 0.1.0
 */
import { PolicySet, Principal, Task } from "@mandate/core"
import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { Auth, RequiredRoles } from "./Auth.ts"
import { NotFound, Unavailable } from "./Errors.ts"
import { DecisionWire } from "./Models.ts"

/**
 * A published policy set. `policy` is the set exactly as it is hashed: `version` is the SHA-256 of its
 * canonical JSON, so a client can recompute it.
 *
 * @category models
 * @since 0.1.0
 */
export const StoredPolicyWire = Schema.Struct({
  version: Schema.String,
  active: Schema.Boolean,
  published_at: Schema.Finite,
  policy: PolicySet.PolicySet
})

/**
 * `POST /policy/evaluate`: a hypothetical action. `principal` defaults to the caller.
 *
 * @category models
 * @since 0.1.0
 */
export const EvaluateAction = Schema.Struct({
  action: Schema.String.check(Schema.isBetweenLength(1, 128)),
  task_type: Schema.optionalKey(Task.TaskKind),
  parameters: Schema.Json,
  principal: Schema.optionalKey(Principal.Principal),
  at: Schema.optionalKey(Schema.Finite)
})

/**
 * The decision and every rule's part in it.
 *
 * @category models
 * @since 0.1.0
 */
export const ExplanationWire = Schema.Struct({
  decision: DecisionWire,
  trace: Schema.Array(
    Schema.Struct({
      rule: Schema.String,
      effect: PolicySet.PolicyEffect,
      matched: Schema.Boolean,
      detail: Schema.String
    })
  )
})

const readers = ["submitter", "approver", "auditor"] as const

/**
 * @category groups
 * @since 0.1.0
 */
export class PolicyApi extends HttpApiGroup.make("policy")
  .add(
    HttpApiEndpoint.get("active", "/policy", { success: StoredPolicyWire, error: Unavailable })
      .annotate(RequiredRoles, readers)
      .annotate(OpenApi.Description, "The active policy set and its version"),
    HttpApiEndpoint.get("list", "/policies", {
      success: Schema.Struct({ policies: Schema.Array(StoredPolicyWire) }),
      error: Unavailable
    })
      .annotate(RequiredRoles, readers)
      .annotate(OpenApi.Description, "Every published policy set with its rules, newest first"),
    HttpApiEndpoint.post("evaluate", "/policy/evaluate", {
      payload: EvaluateAction,
      success: ExplanationWire,
      error: [NotFound, Unavailable]
    })
      .annotate(RequiredRoles, readers)
      .annotate(OpenApi.Description, "Explains the decision for a hypothetical action under the active policy")
  )
  .middleware(Auth) {}
