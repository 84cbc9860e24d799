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
import { BadRequest, Forbidden, NotFound, Unavailable } from "./Errors.ts"
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
 * An activation, from its `policy.activated` ledger entry: `by` is the principal's id (`configuration` for a set
 * adopted at start), `at` the entry's time, `seq` and `entry_hash` the entry (check it with `/verify`).
 *
 * @category models
 * @since 0.1.0
 */
export const PolicyActivationRecordWire = Schema.Struct({
  version: Schema.String,
  previous: Schema.String,
  name: Schema.String,
  by: Schema.String,
  rollback: Schema.Boolean,
  at: Schema.Finite,
  seq: Schema.Int,
  entry_hash: Schema.String
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

/**
 * `POST /policy/versions`: a new policy set. `dry_run` only evaluates it; `recent_tasks` says how many recent
 * tasks to evaluate again (default 50).
 *
 * @category models
 * @since 0.1.0
 */
export const ProposePolicy = Schema.Struct({
  policy: Schema.Json,
  dry_run: Schema.optionalKey(Schema.Boolean),
  recent_tasks: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 500 })))
})

/**
 * What a proposed set would change: for each recent task with a different decision under it, the steps whose
 * decision changes (the task itself keeps running under `policy_version`, the version it is pinned to).
 *
 * @category models
 * @since 0.1.0
 */
export const PolicyImpactWire = Schema.Struct({
  examined: Schema.Int,
  changed: Schema.Int,
  tasks: Schema.Array(
    Schema.Struct({
      task_id: Schema.String,
      task_type: Schema.String,
      status: Schema.String,
      requested_by: Schema.String,
      policy_version: Schema.String,
      steps: Schema.Array(
        Schema.Struct({
          step_id: Schema.String,
          action: Schema.String,
          before: PolicySet.PolicyEffect,
          after: PolicySet.PolicyEffect,
          reasons: Schema.Array(Schema.String)
        })
      )
    })
  )
})

/**
 * The answer to `POST /policy/versions`: the set's version, whether it is new, whether it was stored (`published`;
 * false on a dry run), the active version, and the impact on recent tasks.
 *
 * @category models
 * @since 0.1.0
 */
export const PolicyProposalWire = Schema.Struct({
  version: Schema.String,
  name: Schema.String,
  new: Schema.Boolean,
  published: Schema.Boolean,
  active_version: Schema.String,
  impact: PolicyImpactWire
})

/**
 * The answer to `POST /policy/versions/{version}/activate`. `previous` is absent when the version already was
 * active (nothing changed, nothing recorded); `rollback` when it was published before the one it replaces.
 *
 * @category models
 * @since 0.1.0
 */
export const PolicyActivationWire = Schema.Struct({
  active: StoredPolicyWire,
  previous: Schema.optionalKey(Schema.String),
  changed: Schema.Boolean,
  rollback: Schema.Boolean
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
      .annotate(OpenApi.Description, "Explains the decision for a hypothetical action under the active policy"),
    HttpApiEndpoint.get("versions", "/policy/versions", {
      success: Schema.Struct({
        versions: Schema.Array(StoredPolicyWire),
        activations: Schema.Array(PolicyActivationRecordWire)
      }),
      error: [Forbidden, NotFound, Unavailable]
    })
      .annotate(RequiredRoles, ["auditor"])
      .annotate(
        OpenApi.Description,
        "Every published policy version, newest first, and every activation (who activated which version when), " +
          "oldest first, from the ledger's policy.activated entries (admins and auditors)"
      ),
    HttpApiEndpoint.post("publish", "/policy/versions", {
      payload: ProposePolicy,
      success: PolicyProposalWire,
      error: [BadRequest, Forbidden, NotFound, Unavailable]
    })
      .annotate(RequiredRoles, ["admin"])
      .annotate(
        OpenApi.Description,
        "Validates a policy set and stores it (not active yet; dry_run only evaluates), answering with the " +
          "decisions it would change for recent tasks; recorded in the ledger as policy.published (admins)"
      ),
    HttpApiEndpoint.post("activate", "/policy/versions/:version/activate", {
      params: { version: Schema.String.check(Schema.isBetweenLength(1, 128)) },
      success: PolicyActivationWire,
      error: [NotFound, Forbidden, Unavailable]
    })
      .annotate(RequiredRoles, ["admin"])
      .annotate(
        OpenApi.Description,
        "Activates a published version, or rolls back to an earlier one; new tasks are planned under it, running " +
          "tasks keep theirs; recorded in the ledger as policy.activated (admins)"
      )
  )
  .middleware(Auth) {}
