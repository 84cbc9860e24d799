/**
 * Plans: a DAG of typed steps, each annotated with its policy decision, and the pure rules over it
 * (validation, topological order, which steps are ready, the plan's hash).
 *
 * @since 0.1.0
 */
import { Result, Schema } from "effect"
import * as Canonical from "./Canonical.ts"
import { PlanId, PolicyVersion, Sha256Hex, StepId, TaskId } from "./Ids.ts"
import { PolicyDecision } from "./PolicySet.ts"
import { TaskKind } from "./Task.ts"

/**
 * A step in a plan: its type, its params (already decoded and re-encoded by the step type's schema), the
 * steps it depends on, the policy decision for it and the hash of its params (what an approval binds to).
 *
 * @category models
 * @since 0.1.0
 */
export const PlannedStep = Schema.Struct({
  id: StepId,
  type: Schema.String,
  params: Schema.Json,
  dependsOn: Schema.Array(StepId),
  decision: PolicyDecision,
  paramsHash: Sha256Hex
})
export type PlannedStep = typeof PlannedStep.Type

/**
 * Where a plan came from when a language model proposed it: the model, and SHA-256 hashes of the prompt and of
 * the raw response (recorded as the `plan.proposed` ledger entry).
 *
 * @category models
 * @since 0.1.0
 */
export const ProposalOrigin = Schema.Struct({ model: Schema.String, promptHash: Sha256Hex, responseHash: Sha256Hex })
export type ProposalOrigin = typeof ProposalOrigin.Type

/**
 * @category models
 * @since 0.1.0
 */
export const Plan = Schema.Struct({
  id: PlanId,
  taskId: Schema.optionalKey(TaskId),
  kind: TaskKind,
  params: Schema.Json,
  steps: Schema.Array(PlannedStep),
  policyVersion: PolicyVersion,
  /** SHA-256 of the plan's content (kind, params, steps, policy version): approvals bind to it. */
  hash: Sha256Hex,
  createdAt: Schema.Number,
  /** For a dry run's plan (no task): the principal who asked for it, the only one besides auditors who may read it. */
  requestedBy: Schema.optionalKey(Schema.String),
  /** Set when a language model proposed the plan (`Planner.layerLlm`). */
  proposedBy: Schema.optionalKey(ProposalOrigin)
})
export type Plan = typeof Plan.Type

/**
 * A plan whose structure is wrong: a cycle, a duplicate step id, a dependency on a missing step.
 *
 * @category errors
 * @since 0.1.0
 */
export class InvalidPlan extends Schema.TaggedError<InvalidPlan>()("InvalidPlan", {
  message: Schema.String,
  /** The steps involved (for a cycle: the cycle, in order). */
  steps: Schema.Array(Schema.String)
}) {}

/**
 * The shape the DAG rules need.
 *
 * @category models
 * @since 0.1.0
 */
export interface Node {
  readonly id: string
  readonly dependsOn: ReadonlyArray<string>
}

/**
 * Checks ids are unique, dependencies exist and the graph is acyclic; returns the steps in a topological
 * order (stable: among ready steps, plan order).
 *
 * @category validation
 * @since 0.1.0
 */
export const topologicalOrder = <N extends Node>(
  steps: ReadonlyArray<N>
): Result.Result<ReadonlyArray<N>, InvalidPlan> => {
  const byId = new Map<string, N>()
  for (const step of steps) {
    if (byId.has(step.id)) {
      return Result.fail(new InvalidPlan({ message: `Duplicate step id "${step.id}"`, steps: [step.id] }))
    }
    byId.set(step.id, step)
  }
  for (const step of steps) {
    for (const dep of step.dependsOn) {
      if (!byId.has(dep)) {
        return Result.fail(
          new InvalidPlan({ message: `Step "${step.id}" depends on unknown step "${dep}"`, steps: [step.id, dep] })
        )
      }
      if (dep === step.id) {
        return Result.fail(new InvalidPlan({ message: `Step "${step.id}" depends on itself`, steps: [step.id] }))
      }
    }
  }
  // Depth-first search with colours; a grey node reached again closes a cycle
  const colour = new Map<string, 1 | 2>()
  const order: Array<N> = []
  const stack: Array<string> = []
  const visit = (id: string): ReadonlyArray<string> | undefined => {
    const c = colour.get(id)
    if (c === 2) return undefined
    if (c === 1) return [...stack.slice(stack.indexOf(id)), id]
    colour.set(id, 1)
    stack.push(id)
    for (const dep of byId.get(id)!.dependsOn) {
      const cycle = visit(dep)
      if (cycle) return cycle
    }
    stack.pop()
    colour.set(id, 2)
    order.push(byId.get(id)!)
    return undefined
  }
  for (const step of steps) {
    const cycle = visit(step.id)
    if (cycle) {
      return Result.fail(
        new InvalidPlan({
          message: `Steps form a cycle: ${[...cycle].reverse().join(" → ")}`,
          steps: [...cycle].reverse()
        })
      )
    }
  }
  return Result.succeed(order)
}

/**
 * The steps whose dependencies are all done and that are not done or started themselves.
 *
 * @category scheduling
 * @since 0.1.0
 */
export const readySteps = <N extends Node>(
  steps: ReadonlyArray<N>,
  isDone: (id: string) => boolean,
  isStarted: (id: string) => boolean
): ReadonlyArray<N> => steps.filter((s) => !isStarted(s.id) && s.dependsOn.every(isDone))

/**
 * The hash a plan commits to: kind, params, each step's id, type, params and dependencies, and the policy
 * version. Decisions are derived from these and are not hashed.
 *
 * @category hashing
 * @since 0.1.0
 */
export const hashOf = (plan: Pick<Plan, "kind" | "params" | "steps" | "policyVersion">): string =>
  Canonical.hash({
    kind: plan.kind,
    params: plan.params,
    policyVersion: plan.policyVersion,
    steps: plan.steps.map((s) => ({ id: s.id, type: s.type, params: s.params, dependsOn: s.dependsOn }))
  })

/**
 * Whether any step of the plan is denied, with the reasons.
 *
 * @category validation
 * @since 0.1.0
 */
export const denials = (plan: Pick<Plan, "steps">): ReadonlyArray<string> =>
  plan.steps.flatMap((s) =>
    s.decision.effect === "deny" ? s.decision.reasons.map((r) => `step ${s.id} (${s.type}): ${r}`) : []
  )
