/**
 * Object-level read access (OWASP API1): which tasks, plans and ledger evidence a principal may see. The rules are
 * pure and live here once; the runtime, the task feed, task evidence, host ledger records and every store's
 * listing apply them, so an HTTP route, the console and an embedding host all see the same thing.
 *
 * - Auditors and admins see every task.
 * - A submitter sees the tasks it requested.
 * - An approver sees the tasks it requested and every *gated* task: one whose plan has a step that policy said
 *   needs approval. Those are the tasks an approver may decide on, whether the gate is still ahead, open now or
 *   already decided (the plan never changes, so neither does the answer). Four eyes is a rule of deciding, not of
 *   reading: an approver reads its own gated tasks too.
 * - Agents read no tasks: they see only the jobs they claim, through the queue.
 *
 * A task a principal may not see is reported exactly as a missing one (`TaskNotFound`, see `TaskAccess`), so its id
 * tells nothing.
 *
 * @since 0.1.0
 */
import type { Plan } from "./Plan.ts"
import { hasRole, type Principal } from "./Principal.ts"
import type { Task } from "./Task.ts"

/**
 * The tasks a principal may read, as data a store can filter on: `all`, or the tasks `requester` requested
 * (none when absent) plus, when `gated`, every gated task.
 *
 * @category models
 * @since 0.1.0
 */
export type ReadScope =
  | { readonly _tag: "All" }
  | { readonly _tag: "Some"; readonly requester?: string | undefined; readonly gated: boolean }

/**
 * The part of a task the rules look at.
 *
 * @category models
 * @since 0.1.0
 */
export type Readable = Pick<Task, "requestedBy" | "gated">

/**
 * Whether a plan has a step that policy said needs approval.
 *
 * @category predicates
 * @since 0.1.0
 */
export const isGated = (plan: Pick<Plan, "steps">): boolean =>
  plan.steps.some((s) => s.decision.effect === "require_approval")

/**
 * The tasks `principal` may read.
 *
 * @category constructors
 * @since 0.1.0
 */
export const scopeOf = (principal: Principal): ReadScope => {
  if (hasRole(principal, "auditor")) return { _tag: "All" }
  const submitter = principal.roles.includes("submitter")
  const approver = principal.roles.includes("approver")
  return {
    _tag: "Some",
    ...(submitter || approver ? { requester: principal.id } : {}),
    gated: approver
  }
}

/**
 * Whether a task falls in a scope. A task stored before tasks carried `gated` counts as not gated.
 *
 * @category predicates
 * @since 0.1.0
 */
export const inScope = (scope: ReadScope, task: Readable): boolean =>
  scope._tag === "All" ||
  (scope.requester !== undefined && task.requestedBy.id === scope.requester) ||
  (scope.gated && task.gated === true)

/**
 * Whether `principal` may read `task` (its view, status, plan, events and ledger evidence).
 *
 * @category predicates
 * @since 0.1.0
 */
export const canRead = (principal: Principal, task: Readable): boolean => inScope(scopeOf(principal), task)

/**
 * Whether `principal` may read a stored plan: a task's plan as the task, a dry run's plan by whoever asked for it.
 * `task` is the plan's task, when it has one.
 *
 * @category predicates
 * @since 0.1.0
 */
export const canReadPlan = (principal: Principal, plan: Pick<Plan, "requestedBy">, task?: Readable): boolean => {
  if (hasRole(principal, "auditor")) return true
  if (task !== undefined) return canRead(principal, task)
  return plan.requestedBy !== undefined && plan.requestedBy === principal.id && principal.roles.includes("submitter")
}
