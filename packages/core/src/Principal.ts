/**
 * Who acts: a principal (a person, an AI agent or a service) and its roles.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * `submitter` starts tasks, `approver` approves or rejects gated steps, `auditor` reads the ledger,
 * `agent` claims and runs jobs, `admin` manages policy and everything else.
 *
 * @category models
 * @since 0.1.0
 */
export const Role = Schema.Literals(["submitter", "approver", "auditor", "agent", "admin"])
export type Role = typeof Role.Type

/**
 * @category models
 * @since 0.1.0
 */
export const PrincipalId = Schema.String.check(
  Schema.isPattern(/^[^\s]{1,128}$/, { message: "Expected a principal id: 1-128 characters, no whitespace" })
).pipe(Schema.brand("PrincipalId"))
export type PrincipalId = typeof PrincipalId.Type

/**
 * The namespace of principal ids the runtime keeps for itself (see `system`): no authenticator may issue one.
 *
 * @category constants
 * @since 0.1.0
 */
export const reservedIdPrefix = "mandate."

/**
 * Whether a principal id is in the runtime's own namespace.
 *
 * @category predicates
 * @since 0.1.0
 */
export const isReservedId = (id: string): boolean => id.startsWith(reservedIdPrefix)

/**
 * A principal id an authenticator may issue (from a token's subject): a `PrincipalId` outside the `mandate.`
 * namespace, so no token can speak as the runtime.
 *
 * @category models
 * @since 0.1.0
 */
export const ExternalPrincipalId = PrincipalId.check(
  Schema.makeFilter((id: string) => !isReservedId(id), {
    message: `Expected a principal id outside the reserved ${reservedIdPrefix} namespace`
  })
)

/**
 * @category models
 * @since 0.1.0
 */
export const Principal = Schema.Struct({
  id: PrincipalId,
  roles: Schema.Array(Role)
})
export type Principal = typeof Principal.Type

/**
 * Builds a principal from trusted code (ids are checked).
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (id: string, roles: ReadonlyArray<Role>): Principal => ({ id: PrincipalId.make(id), roles })

/**
 * @category predicates
 * @since 0.1.0
 */
export const hasRole = (principal: Principal, role: Role): boolean =>
  principal.roles.includes(role) || principal.roles.includes("admin")

/**
 * The runtime itself, as the actor of what no person decided (an approval window that closed). Its id is in the
 * reserved namespace, so no authenticated principal can be mistaken for it.
 *
 * @category constructors
 * @since 0.1.0
 */
export const system: Principal = make("mandate.runtime", [])
