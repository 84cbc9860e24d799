/**
 * Step types and task templates: the vocabulary the template planner plans with.
 *
 * A step type names a kind of work and the schema of its params. A task template turns a task's params into
 * steps with `dependsOn` edges. Step params are written in their encoded (JSON) form; the planner decodes
 * them with the step type's schema, so a template cannot produce a step its type would refuse.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * A kind of step and the schema of its params (decoding from JSON, needing no services).
 *
 * @category models
 * @since 0.1.0
 */
export interface StepType<A = any> {
  readonly type: string
  readonly description?: string | undefined
  readonly params: Schema.Codec<A, any>
}

/**
 * One step a template produces.
 *
 * @category models
 * @since 0.1.0
 */
export interface StepSpec {
  readonly id: string
  readonly type: string
  /** Params in encoded (JSON) form. */
  readonly params: unknown
  readonly dependsOn?: ReadonlyArray<string> | undefined
}

/**
 * A task kind, the schema of its params and the steps it plans into.
 *
 * @category models
 * @since 0.1.0
 */
export interface TaskTemplate<A = any> {
  readonly kind: string
  readonly description?: string | undefined
  readonly params: Schema.Codec<A, any>
  readonly steps: (params: A) => ReadonlyArray<StepSpec>
}

/**
 * Defines a step type (keeps its params type).
 *
 * @category constructors
 * @since 0.1.0
 */
export const stepType = <A>(definition: StepType<A>): StepType<A> => definition

/**
 * Defines a task template; `steps` receives the decoded task params.
 *
 * @category constructors
 * @since 0.1.0
 */
export const taskTemplate = <A>(definition: TaskTemplate<A>): TaskTemplate<A> => definition

/**
 * The task kind that runs one step of `type` alone (`step.<type>`), as `POST /execute` does.
 *
 * @category constructors
 * @since 0.1.0
 */
export const singleStepKind = (type: string): string => `step.${type}`

/**
 * A one-step task: kind `step.<type>`, whose params are the step's own, planned into one step (id: the type)
 * checked against policy like any other.
 *
 * @category constructors
 * @since 0.1.0
 */
export const singleStepTemplate = <A>(step: StepType<A>): TaskTemplate<A> => ({
  kind: singleStepKind(step.type),
  description: `Runs one ${step.type} step${step.description === undefined ? "" : `: ${step.description}`}`,
  params: step.params,
  steps: (params) => [{ id: step.type, type: step.type, params: Schema.encodeSync(step.params)(params) }]
})
