/**
 * Core errors as HTTP errors: each core error class maps to exactly one wire error (`api/Errors.ts`), so a
 * handler is its core call plus `Effect.mapError(toHttp)`. Paths in `InvalidInput` are core's (`$.params.amount`);
 * `renames` turns them into the request's names (`$.parameters.amount`).
 *
 * @since 0.1.0
 */
import type { InvalidInput } from "@mandate/core"
import { Effect } from "effect"
import { BadRequest, Conflict, Forbidden, NotFound, PolicyDenied, Unavailable, Unprocessable } from "../api/Errors.ts"

type Tagged<T extends string> = { readonly _tag: T }

/**
 * The wire error each core error becomes.
 *
 * @category models
 * @since 0.1.0
 */
export type WireError<E> =
  E extends Tagged<"InvalidInput" | "UnknownTaskKind" | "InvalidTreeRange">
    ? BadRequest
    : E extends Tagged<
          | "TaskNotFound"
          | "PlanNotFound"
          | "JobNotFound"
          | "AgentNotFound"
          | "PoolNotFound"
          | "EntryNotFound"
          | "AnchorNotFound"
          | "UnknownPolicyVersion"
          | "WebhookNotFound"
          | "WebhookDeliveryNotFound"
        >
      ? NotFound
      : E extends Tagged<"StepNotFound">
        ? NotFound | Conflict
        : E extends Tagged<
              "IllegalTransition" | "LeaseLost" | "VersionConflict" | "LedgerTampered" | "TaskExists" | "PlanStale"
            >
          ? Conflict
          : E extends Tagged<"Forbidden" | "ApprovalForbidden">
            ? Forbidden
            : E extends Tagged<"TaskRejected">
              ? PolicyDenied
              : E extends Tagged<
                    | "UnknownStepType"
                    | "InvalidPlan"
                    | "PlanRejected"
                    | "CheckpointRejected"
                    | "ReservedEntryKind"
                    | "ProposalRefused"
                  >
                ? Unprocessable
                : Unavailable

/**
 * Renames the leading segments of core paths to the request's field names, e.g. `{ "$.params": "$.parameters" }`.
 *
 * @category models
 * @since 0.1.0
 */
export type PathRenames = Readonly<Record<string, string>>

const renamePath = (path: string, renames: PathRenames | undefined): string => {
  if (renames === undefined) return path
  for (const [from, to] of Object.entries(renames)) {
    if (path === from || path.startsWith(`${from}.`) || path.startsWith(`${from}[`)) return to + path.slice(from.length)
  }
  return path
}

/**
 * `InvalidInput` as a `BadRequest`, every issue's path renamed.
 *
 * @category constructors
 * @since 0.1.0
 */
export const badRequest = (error: InvalidInput, renames?: PathRenames): BadRequest =>
  new BadRequest({
    message: error.message,
    path: renamePath(error.path, renames),
    issues: error.issues.map((issue) => ({ path: renamePath(issue.path, renames), message: issue.message }))
  })

const one = (path: string, message: string) => new BadRequest({ message, path, issues: [{ path, message }] })

const field = (e: object, key: string): string => String((e as Record<string, unknown>)[key] ?? "")

const message = (e: object): string => {
  const m = (e as { readonly message?: unknown }).message
  return typeof m === "string" && m.length > 0 ? m : String((e as { readonly _tag?: unknown })._tag)
}

const unavailableWhat: Readonly<Record<string, string>> = {
  TaskStoreError: "The task store",
  QueueStoreError: "The queue store",
  LedgerStoreError: "The ledger store",
  PolicyStoreError: "The policy store",
  AgentsStoreError: "The agent registry",
  RateLimitStoreError: "The rate limiter",
  UnitOfWorkError: "The database transaction",
  StoreUnavailable: "A backing store",
  AnchorError: "The anchoring chain",
  QubicApiError: "The anchoring chain",
  QubicNetworkError: "The anchoring chain",
  QubicSignerError: "The anchor signer",
  LedgerKeyError: "The ledger signing key",
  WalletError: "The wallet service"
}

/**
 * The fixed message of a 503 for an error class: what was unavailable, never the driver's text.
 *
 * @category constructors
 * @since 0.1.0
 */
export const unavailableMessage = (tag: string): string =>
  `${unavailableWhat[tag] ?? "A backing service"} could not complete the request; retry later (${tag})`

/**
 * Maps a core error to its wire error.
 *
 * @category constructors
 * @since 0.1.0
 */
export const toHttp =
  (renames?: PathRenames) =>
  <E extends { readonly _tag: string }>(e: E): WireError<E> => {
    const wire = (): object => {
      switch (e._tag) {
        case "InvalidInput":
          return badRequest(e as unknown as InvalidInput, renames)
        case "UnknownTaskKind":
          return one(renamePath("$.kind", renames), message(e))
        case "InvalidTreeRange": {
          const parameter = field(e, "parameter")
          const name = parameter === "oldSize" || parameter === "from" ? "from" : "to"
          return one(`$query.${name}`, message(e))
        }
        case "TaskNotFound":
          return new NotFound({ message: message(e), resource: "task", id: field(e, "taskId") })
        case "PlanNotFound":
          return new NotFound({ message: message(e), resource: "plan", id: field(e, "planId") })
        case "JobNotFound":
          return new NotFound({ message: message(e), resource: "job", id: field(e, "jobId") })
        case "AgentNotFound":
          return new NotFound({ message: message(e), resource: "agent", id: field(e, "agentId") })
        case "PoolNotFound":
          return new NotFound({ message: message(e), resource: "pool", id: field(e, "pool") })
        case "EntryNotFound":
          return new NotFound({ message: message(e), resource: "ledger_entry", id: field(e, "entryHash") })
        case "AnchorNotFound":
          return new NotFound({ message: message(e), resource: "transaction", id: field(e, "id") })
        case "UnknownPolicyVersion":
          return new NotFound({ message: message(e), resource: "policy_version", id: field(e, "version") })
        case "WebhookNotFound":
          return new NotFound({ message: message(e), resource: "webhook", id: field(e, "webhookId") })
        case "WebhookDeliveryNotFound":
          return new NotFound({ message: message(e), resource: "webhook_delivery", id: field(e, "deliveryId") })
        case "StepNotFound":
          return field(e, "problem") === "missing"
            ? new NotFound({ message: message(e), resource: "step", id: field(e, "stepId") })
            : new Conflict({ message: message(e), reason: field(e, "problem") || "step_not_waiting" })
        case "IllegalTransition":
          return new Conflict({ message: message(e), reason: "illegal_transition" })
        case "LeaseLost":
          return new Conflict({ message: message(e), reason: `lease_${field(e, "reason")}` })
        case "VersionConflict":
          return new Conflict({ message: message(e), reason: "concurrent_update" })
        case "TaskExists":
          return new Conflict({ message: message(e), reason: "task_exists" })
        case "PlanStale":
          return new Conflict({ message: message(e), reason: field(e, "reason") })
        case "LedgerTampered":
          return new Conflict({ message: message(e), reason: "ledger_tampered" })
        case "Forbidden":
        case "ApprovalForbidden":
          return new Forbidden({ message: message(e), principal: field(e, "principal") })
        case "TaskRejected":
          return new PolicyDenied({
            message: message(e),
            task_id: field(e, "taskId"),
            plan_id: field(e, "planId"),
            reasons: (e as unknown as { readonly reasons: ReadonlyArray<string> }).reasons
          })
        case "UnknownStepType":
        case "InvalidPlan":
        case "PlanRejected":
        case "CheckpointRejected":
        case "ReservedEntryKind":
        case "ProposalRefused":
          return new Unprocessable({ message: message(e) })
        default:
          // Stores, the unit of work and the chain: infrastructure that may come back. The message is fixed per
          // error class: a driver's text (SQL, connection details) never reaches a client; the log has it.
          return new Unavailable({ message: unavailableMessage(e._tag) })
      }
    }
    return wire() as WireError<E>
  }

/**
 * `Effect.mapError(toHttp(renames))` as a pipeable.
 *
 * @category combinators
 * @since 0.1.0
 */
export const mapErrors =
  (renames?: PathRenames) =>
  <A, E extends { readonly _tag: string }, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, WireError<E>, R> =>
    Effect.catch(self, (e) => {
      const wire = toHttp(renames)(e)
      // The client gets a fixed message; the operator's log gets the store's own error
      return wire instanceof Unavailable
        ? Effect.andThen(Effect.logWarning("store unavailable", e), Effect.fail(wire))
        : Effect.fail(wire)
    })
