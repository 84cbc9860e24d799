/**
 * Who is calling and what each route demands: the bearer-token security middleware (`Auth`), the roles an
 * endpoint requires (`requireRoles`, read by `Auth` on every request), and the middleware that turns request
 * decoding failures into `BadRequest` with JSON paths (`RequestErrors`).
 *
 * @since 0.1.0
 */
import type { Principal, Principal as PrincipalModule } from "@mandate/core"
import { Context } from "effect"
import { HttpApiMiddleware, HttpApiSecurity } from "effect/http-api"
import { BadRequest, Forbidden, PayloadTooLarge, TooManyRequestsResponse, Unauthorized } from "./Errors.ts"

/**
 * The authenticated principal of the current request (provided by `Auth`).
 *
 * @category services
 * @since 0.1.0
 */
export class CurrentPrincipal extends Context.Service<CurrentPrincipal, Principal.Principal>()(
  "@mandate/server/CurrentPrincipal"
) {}

/**
 * The roles an endpoint admits (any one suffices; `admin` always does). An endpoint of an authenticated group
 * without this annotation admits nobody but admins: routes fail closed.
 *
 * @category annotations
 * @since 0.1.0
 */
export const RequiredRoles = Context.Reference<ReadonlyArray<PrincipalModule.Role>>("@mandate/server/RequiredRoles", {
  defaultValue: () => []
})

/**
 * Bearer-token authentication with role checks and the per-token rate limit.
 *
 * @category middleware
 * @since 0.1.0
 */
export class Auth extends HttpApiMiddleware.Service<Auth, { provides: CurrentPrincipal }>()("@mandate/server/Auth", {
  security: { bearer: HttpApiSecurity.bearer },
  error: [Unauthorized, Forbidden, TooManyRequestsResponse]
}) {}

/**
 * Request decoding failures (path, query, body) as `BadRequest` with every issue's path; bodies over the size
 * limit as `PayloadTooLarge`.
 *
 * @category middleware
 * @since 0.1.0
 */
export class RequestErrors extends HttpApiMiddleware.Service<RequestErrors>()("@mandate/server/RequestErrors", {
  error: [BadRequest, PayloadTooLarge]
}) {}
