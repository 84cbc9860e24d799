/**
 * Handlers of the `system` and `ops` groups: liveness, readiness, Prometheus metrics, the caller's identity.
 *
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../api/Api.ts"
import { CurrentPrincipal } from "../api/Auth.ts"
import * as Metrics from "../Metrics.ts"
import { Readiness } from "../Stores.ts"
import { mapErrors } from "./Errors.ts"

/**
 * @category handlers
 * @since 0.1.0
 */
export const SystemHandlers = HttpApiBuilder.group(Api, "system", (handlers) =>
  Effect.gen(function* () {
    const readiness = yield* Readiness
    return handlers
      .handle("health", () => Effect.succeed({ status: "ok" as const }))
      .handle("ready", () =>
        Effect.flatMap(readiness.check, (report) =>
          report.status === "ready" ? Effect.succeed(report) : Effect.fail(report)
        )
      )
  })
)

/**
 * @category handlers
 * @since 0.1.0
 */
export const OpsHandlers = HttpApiBuilder.group(Api, "ops", (handlers) =>
  Effect.gen(function* () {
    const context = yield* Effect.context<Effect.Services<typeof Metrics.render>>()
    return handlers
      .handle("metrics", () => Metrics.render.pipe(Effect.provideContext(context), mapErrors()))
      .handle("whoami", () => Effect.map(CurrentPrincipal, (principal) => principal))
  })
)

/**
 * Both groups.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = Layer.mergeAll(SystemHandlers, OpsHandlers)
