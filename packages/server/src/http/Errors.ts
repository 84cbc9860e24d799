/**
 * Core errors as HTTP errors: `errorTable` maps each error class, by tag, to exactly one wire error
 * (`api/Errors.ts`), reading the class's own fields, so a renamed field or a new class without an entry fails to
 * compile. A handler is its core call plus `mapErrors(renames)`. Paths in `InvalidInput` are core's
 * (`$.params.amount`); `renames` turns them into the request's names (`$.parameters.amount`).
 *
 * @since 0.1.0
 */
import type * as Qubic from "@mandate/adapters/qubic"
import type * as Core from "@mandate/core"
import { Effect } from "effect"
import { BadRequest, Conflict, Forbidden, NotFound, PolicyDenied, Unavailable, Unprocessable } from "../api/Errors.ts"
import type { StoreUnavailable } from "../Stores.ts"

// The error classes a module exports (classes whose instances are `Error`s with a `_tag`)
type ErrorsOf<M> = {
  [K in keyof M]: M[K] extends abstract new (
    ...args: Array<never>
  ) => infer I
    ? I extends Error & { readonly _tag: string }
      ? I
      : never
    : never
}[keyof M]

/**
 * Every error class core exports (at its root and in its namespaces), the Qubic adapter's and the server's own
 * `StoreUnavailable`: each has exactly one entry in `errorTable`, which the compiler checks.
 *
 * @category models
 * @since 0.1.0
 */
export type MappedError =
  | ErrorsOf<typeof Core>
  | ErrorsOf<typeof Core.LedgerKeys>
  | ErrorsOf<typeof Core.LlmPlanner>
  | ErrorsOf<typeof Core.Plan>
  | ErrorsOf<typeof Core.Task>
  | ErrorsOf<typeof Core.Worker>
  | ErrorsOf<typeof Qubic>
  | ErrorsOf<typeof Qubic.StateFile>
  | StoreUnavailable

/**
 * The tags of `MappedError`.
 *
 * @category models
 * @since 0.1.0
 */
export type MappedTag = MappedError["_tag"]

/**
 * The error class with tag `T`.
 *
 * @category models
 * @since 0.1.0
 */
export type MappedErrorOf<T extends MappedTag> = Extract<MappedError, { readonly _tag: T }>

/**
 * An error of the API as it goes over the wire (`api/Errors.ts`), as a handler may fail with it.
 *
 * @category models
 * @since 0.1.0
 */
export type HttpError = BadRequest | NotFound | Conflict | Forbidden | PolicyDenied | Unprocessable | Unavailable

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
export const badRequest = (error: Core.InvalidInput, renames?: PathRenames): BadRequest =>
  new BadRequest({
    message: error.message,
    path: renamePath(error.path, renames),
    issues: error.issues.map((issue) => ({ path: renamePath(issue.path, renames), message: issue.message }))
  })

const one = (path: string, message: string) => new BadRequest({ message, path, issues: [{ path, message }] })

const message = (e: Error & { readonly _tag: string }): string => (e.message.length > 0 ? e.message : e._tag)

/**
 * The fixed message of a 503 for an error class: what was unavailable, never the driver's text.
 *
 * @category constructors
 * @since 0.1.0
 */
export const unavailableMessage = (tag: string, what = "A backing service"): string =>
  `${what} could not complete the request; retry later (${tag})`

// Stores, the unit of work and the chain: infrastructure that may come back. The message is fixed per error
// class: a driver's text (SQL, connection details) never reaches a client; the log has it.
const unavailable =
  (what?: string) =>
  (e: { readonly _tag: string }): Unavailable =>
    new Unavailable({ message: unavailableMessage(e._tag, what) })

const notFound =
  <E extends Error & { readonly _tag: string }>(resource: string, id: (e: E) => string) =>
  (e: E): NotFound =>
    new NotFound({ message: message(e), resource, id: id(e) })

const conflict =
  <E extends Error & { readonly _tag: string }>(reason: (e: E) => string) =>
  (e: E): Conflict =>
    new Conflict({ message: message(e), reason: reason(e) })

const unprocessable = (e: Error & { readonly _tag: string }): Unprocessable =>
  new Unprocessable({ message: message(e) })

type Mapper<T extends MappedTag> = (e: MappedErrorOf<T>, renames: PathRenames | undefined) => HttpError

/**
 * The wire error of each error class, by tag. Each mapper reads its class's own fields, so a renamed field is a
 * compile error, and a new error class without an entry is one too.
 *
 * @category constants
 * @since 0.1.0
 */
export const errorTable = {
  // 400
  InvalidInput: (e, renames) => badRequest(e, renames),
  UnknownTaskKind: (e, renames) => one(renamePath("$.kind", renames), message(e)),
  InvalidTreeRange: (e) =>
    one(`$query.${e.parameter === "oldSize" || e.parameter === "from" ? "from" : "to"}`, message(e)),
  // 403
  Forbidden: (e) => new Forbidden({ message: message(e), principal: e.principal }),
  ApprovalForbidden: (e) => new Forbidden({ message: message(e), principal: e.principal }),
  // 404
  TaskNotFound: notFound("task", (e) => e.taskId),
  PlanNotFound: notFound("plan", (e) => e.planId),
  JobNotFound: notFound("job", (e) => e.jobId),
  AgentNotFound: notFound("agent", (e) => e.agentId),
  PoolNotFound: notFound("pool", (e) => e.pool),
  EntryNotFound: notFound("ledger_entry", (e) => e.entryHash),
  AnchorNotFound: notFound("transaction", (e) => e.id),
  UnknownPolicyVersion: notFound("policy_version", (e) => e.version),
  WebhookNotFound: notFound("webhook", (e) => e.webhookId),
  WebhookDeliveryNotFound: notFound("webhook_delivery", (e) => e.deliveryId),
  // 404 for a step the task does not have, 409 for one not waiting for a decision
  StepNotFound: (e) =>
    e.problem === "missing"
      ? new NotFound({ message: message(e), resource: "step", id: e.stepId })
      : new Conflict({ message: message(e), reason: e.problem }),
  // 409
  IllegalTransition: conflict(() => "illegal_transition"),
  LeaseLost: conflict((e) => `lease_${e.reason}`),
  VersionConflict: conflict(() => "concurrent_update"),
  TaskExists: conflict(() => "task_exists"),
  PlanStale: conflict((e) => e.reason),
  LedgerTampered: conflict(() => "ledger_tampered"),
  // 422
  TaskRejected: (e) =>
    new PolicyDenied({ message: message(e), task_id: e.taskId, plan_id: e.planId, reasons: e.reasons }),
  UnknownStepType: unprocessable,
  InvalidPlan: unprocessable,
  CheckpointRejected: unprocessable,
  ReservedEntryKind: unprocessable,
  ProposalRefused: unprocessable,
  // 503
  TaskStoreError: unavailable("The task store"),
  QueueStoreError: unavailable("The queue store"),
  LedgerStoreError: unavailable("The ledger store"),
  PolicyStoreError: unavailable("The policy store"),
  AgentsStoreError: unavailable("The agent registry"),
  RateLimitStoreError: unavailable("The rate limiter"),
  WebhookStoreError: unavailable(),
  UnitOfWorkError: unavailable("The database transaction"),
  StoreUnavailable: unavailable("A backing store"),
  AnchorError: unavailable("The anchoring chain"),
  QubicApiError: unavailable("The anchoring chain"),
  QubicNetworkError: unavailable("The anchoring chain"),
  QubicSignerError: unavailable("The anchor signer"),
  StateFileError: unavailable(),
  MissingPeerDependency: unavailable(),
  LedgerKeyError: unavailable("The ledger signing key"),
  WalletError: unavailable("The wallet service"),
  PlannerUnavailable: unavailable(),
  // Failures of step handlers and rate limits, settled before they reach a route: a 503 if one ever does
  StepError: unavailable(),
  JobFailure: unavailable(),
  RateLimited: unavailable()
} satisfies { readonly [T in MappedTag]: Mapper<T> }

type Table = typeof errorTable

/**
 * The wire error each error becomes: its `errorTable` entry's, and `Unavailable` for an error class the table
 * does not know (a host's own store).
 *
 * @category models
 * @since 0.1.0
 */
export type WireError<E> = E extends { readonly _tag: infer T }
  ? T extends keyof Table
    ? ReturnType<Table[T]>
    : Unavailable
  : Unavailable

/**
 * Maps an error to its wire error (`errorTable`).
 *
 * @category constructors
 * @since 0.1.0
 */
export const toHttp =
  (renames?: PathRenames) =>
  <E extends { readonly _tag: string }>(e: E): WireError<E> => {
    const mapper = Object.hasOwn(errorTable, e._tag)
      ? (errorTable[e._tag as MappedTag] as (e: E, renames: PathRenames | undefined) => HttpError)
      : unavailable()
    return mapper(e, renames) as WireError<E>
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
