/**
 * Plans: plan a task without running it (every step's policy decision, a dry run), read a plan, execute one.
 *
 * @since 0.1.0
 */
import { PlanId } from "@mandate/core"
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { Auth, RequiredRoles } from "./Auth.ts"
import { BadRequest, Conflict, Forbidden, NotFound, PolicyDenied, Unavailable, Unprocessable } from "./Errors.ts"
import { PlanWire } from "./Models.ts"
import { CreatePlan, ExecutePlan, TaskStarted } from "./Tasks.ts"

/**
 * @category groups
 * @since 0.1.0
 */
export class PlansApi extends HttpApiGroup.make("plans")
  .add(
    HttpApiEndpoint.post("create", "/plan/create", {
      payload: CreatePlan,
      success: PlanWire,
      error: [BadRequest, Forbidden, NotFound, Unprocessable, Conflict, Unavailable]
    })
      .annotate(RequiredRoles, ["submitter"])
      .annotate(OpenApi.Description, "Plans without executing; a denied plan is returned with its reasons in denied"),
    HttpApiEndpoint.get("get", "/plan/:plan_id", {
      params: { plan_id: PlanId },
      success: PlanWire,
      error: [NotFound, BadRequest, Conflict, Unavailable]
    }).annotate(RequiredRoles, ["submitter", "approver", "auditor"]),
    HttpApiEndpoint.post("execute", "/plan/execute", {
      payload: ExecutePlan,
      success: TaskStarted,
      error: [NotFound, BadRequest, Forbidden, PolicyDenied, Unprocessable, Conflict, Unavailable]
    })
      .annotate(RequiredRoles, ["submitter"])
      .annotate(
        OpenApi.Description,
        "Starts a task that runs exactly the stored plan (same policy version, hash and decisions); 409 when the " +
          "policy, the templates or a decision changed since (reason policy_changed, plan_changed, decisions_changed)"
      )
  )
  .middleware(Auth) {}
