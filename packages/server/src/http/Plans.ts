/**
 * Handlers of the `plans` group (`api/Plans.ts`): dry-run plans and their execution, each one call into `Runtime`.
 *
 * @since 0.1.0
 */
import { Plan, Runtime } from "@mandate/core"
import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../api/Api.ts"
import { CurrentPrincipal } from "../api/Auth.ts"
import { mapErrors } from "./Errors.ts"
import * as Models from "./Models.ts"
import { requestNames, started } from "./Tasks.ts"

/**
 * @category handlers
 * @since 0.1.0
 */
export const layer = HttpApiBuilder.group(Api, "plans", (handlers) =>
  Effect.gen(function* () {
    const runtime = yield* Runtime
    return handlers
      .handle("create", ({ payload }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          runtime.plan({ kind: payload.task_type, params: payload.parameters }, principal)
        ).pipe(
          Effect.map((plan) => Models.plan(plan, Plan.denials(plan))),
          mapErrors(requestNames)
        )
      )
      .handle("get", ({ params }) =>
        Effect.flatMap(CurrentPrincipal, (principal) => runtime.getPlan(params.plan_id, principal)).pipe(
          Effect.map((plan) => Models.plan(plan, Plan.denials(plan))),
          mapErrors()
        )
      )
      .handle("execute", ({ payload }) =>
        Effect.flatMap(CurrentPrincipal, (principal) => runtime.execute(payload.plan_id, principal)).pipe(
          Effect.map(started),
          mapErrors(requestNames)
        )
      )
  })
)
