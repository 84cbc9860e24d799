/**
 * The planner: turns a task into a `Plan`, a DAG of typed steps each annotated with its policy decision.
 *
 * The template planner (`Planner.layerTemplates`) maps a task kind to a template; host apps add their own
 * step types and templates through its options, or provide a whole `Planner` layer of their own.
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, Layer, Result, Schema } from "effect"
import type { LanguageModel } from "effect/ai"
import * as Canonical from "./Canonical.ts"
import { makePlanId, PlanId, type PolicyVersion, Sha256Hex, StepId, type TaskId } from "./Ids.ts"
import { decode, InvalidInput } from "./InvalidInput.ts"
import * as LlmPlannerModule from "./LlmPlanner.ts"
import * as PlanModule from "./Plan.ts"
import { Policy } from "./Policy.ts"
import type { PolicyStoreError, UnknownPolicyVersion } from "./PolicyStore.ts"
import type { Principal } from "./Principal.ts"
import * as Seed from "./Seed.ts"
import type { StepType, TaskTemplate } from "./Template.ts"

/**
 * @category errors
 * @since 0.1.0
 */
export class UnknownTaskKind extends Schema.TaggedError<UnknownTaskKind>()("UnknownTaskKind", {
  kind: Schema.String,
  known: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `Unknown task kind "${this.kind}" (known: ${this.known.join(", ")})`
  }
}

/**
 * @category errors
 * @since 0.1.0
 */
export class UnknownStepType extends Schema.TaggedError<UnknownStepType>()("UnknownStepType", {
  step: Schema.String,
  type: Schema.String
}) {
  override get message(): string {
    return `Step "${this.step}" has unknown type "${this.type}"`
  }
}

/**
 * What to plan.
 *
 * @category models
 * @since 0.1.0
 */
export interface PlanRequest {
  readonly kind: string
  readonly params: unknown
  readonly principal: Principal
  readonly taskId?: TaskId | undefined
}

/**
 * @category models
 * @since 0.1.0
 */
export interface PlanOptions {
  /** Plan under this policy version instead of the active one (a task stays pinned to its version). */
  readonly policyVersion?: PolicyVersion | undefined
}

/**
 * A task kind the planner knows.
 *
 * @category models
 * @since 0.1.0
 */
export interface KindInfo {
  readonly kind: string
  readonly description?: string | undefined
}

/**
 * Everything `plan` can fail with.
 *
 * @category errors
 * @since 0.1.0
 */
export type PlanError =
  | UnknownTaskKind
  | UnknownStepType
  | InvalidInput
  | PlanModule.InvalidPlan
  | UnknownPolicyVersion
  | PolicyStoreError
  | LlmPlannerModule.ProposalRefused
  | LlmPlannerModule.PlannerUnavailable

/**
 * @category services
 * @since 0.1.0
 */
export class Planner extends Context.Service<
  Planner,
  {
    /**
     * Plans a task. A plan with denied steps is still a plan (every step carries its decision; `Plan.denials`
     * lists the reasons): whoever runs it decides what a denial means — the runtime records it as a rejected task.
     */
    readonly plan: (request: PlanRequest, options?: PlanOptions) => Effect.Effect<PlanModule.Plan, PlanError>
    readonly kinds: Effect.Effect<ReadonlyArray<KindInfo>>
  }
>()("@mandate/core/Planner") {
  /**
   * The template planner. The seed step types and templates are included unless `seed: false`; templates
   * and step types given here are added (and replace seed ones of the same name).
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layerTemplates = (options?: TemplateOptions): Layer.Layer<Planner, never, Policy> =>
    Layer.effect(Planner, makeTemplatePlanner(options))

  /**
   * The LLM planner: a task of kind `goal` (`{ goal }`) is planned from a language model's proposal, validated
   * and policy-checked like any plan; every other kind is planned by its template. See `LlmPlanner`.
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layerLlm = (
    options: LlmPlannerModule.LlmPlannerOptions
  ): Layer.Layer<Planner, never, Policy | LanguageModel.LanguageModel> =>
    // Deferred: LlmPlanner builds on this module
    LlmPlannerModule.layer(options)
}

/**
 * What the template planner plans with: templates and step types added to (or replacing) the seed ones.
 *
 * @category models
 * @since 0.1.0
 */
export interface TemplateOptions {
  readonly templates?: ReadonlyArray<TaskTemplate> | undefined
  readonly stepTypes?: ReadonlyArray<StepType> | undefined
  readonly seed?: boolean | undefined
}

/**
 * The template catalog: every task template and step type by name (seed ones unless `seed: false`).
 *
 * @category constructors
 * @since 0.1.0
 */
export const catalogOf = (
  options?: TemplateOptions
): { readonly templates: ReadonlyMap<string, TaskTemplate>; readonly stepTypes: ReadonlyMap<string, StepType> } => {
  const seed = options?.seed ?? true
  const templates = new Map<string, TaskTemplate>()
  const stepTypes = new Map<string, StepType>()
  for (const t of [...(seed ? Seed.templates : []), ...(options?.templates ?? [])]) templates.set(t.kind, t)
  for (const s of [...(seed ? Seed.stepTypes : []), ...(options?.stepTypes ?? [])]) stepTypes.set(s.type, s)
  return { templates, stepTypes }
}

/**
 * The template planner's service (what `Planner.layerTemplates` provides).
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeTemplatePlanner = (options?: TemplateOptions): Effect.Effect<Planner["Service"], never, Policy> =>
  Effect.gen(function* () {
    const policy = yield* Policy
    const { templates, stepTypes } = catalogOf(options)
    return Planner.of({
      plan: (request, planOptions) => makePlan(policy, templates, stepTypes, request, planOptions),
      kinds: Effect.succeed([...templates.values()].map((t) => ({ kind: t.kind, description: t.description })))
    })
  })

// Untraced: Runtime.start, its caller, carries the span
const makePlan = Effect.fnUntraced(function* (
  policy: Policy["Service"],
  templates: ReadonlyMap<string, TaskTemplate>,
  stepTypes: ReadonlyMap<string, StepType>,
  request: PlanRequest,
  options: PlanOptions | undefined
) {
  const template = templates.get(request.kind)
  if (template === undefined) return yield* new UnknownTaskKind({ kind: request.kind, known: [...templates.keys()] })
  // Refused before the schema walks them (recursively): parameters nested deeper than any store may keep
  yield* Canonical.checkDepth(request.params, "$.params")
  const taskParams = yield* decode(template.params, "$.params")(request.params)
  const specs = template.steps(taskParams)

  const steps: Array<{
    id: StepId
    type: string
    params: Schema.Json
    dependsOn: Array<StepId>
    paramsHash: Sha256Hex
  }> = []
  // Each step's canonical text as `Plan.hashOf` writes it, its params spliced in from the text already made for
  // the params hash (not encoded a second time)
  const stepTexts: Array<string> = []
  for (const spec of specs) {
    const idResult = Schema.decodeUnknownResult(StepId)(spec.id)
    if (Result.isFailure(idResult))
      return yield* InvalidInput.at(`$.steps`, `Invalid step id ${JSON.stringify(spec.id)}`)
    const stepType = stepTypes.get(spec.type)
    if (stepType === undefined) return yield* new UnknownStepType({ step: spec.id, type: spec.type })
    const root = `$.steps[${JSON.stringify(spec.id)}].params`
    const decoded = yield* decode(stepType.params, root)(spec.params)
    // Store the encoded form: plans are JSON, and re-encoding drops keys the schema does not know
    // Encoded canonically once: the check that it is JSON and the params hash come from the same text
    const [params, canonical] = yield* Schema.encodeEffect(stepType.params)(decoded).pipe(
      Effect.flatMap((encoded) =>
        Effect.map(Canonical.encodeEffect(encoded, root), (text) => [encoded as Schema.Json, text] as const)
      ),
      Effect.mapError((e) => (e instanceof InvalidInput ? e : InvalidInput.at(root, e.message)))
    )
    const dependsOn = (spec.dependsOn ?? []).map((d) => StepId.make(d))
    steps.push({
      id: idResult.success,
      type: spec.type,
      params,
      dependsOn,
      paramsHash: Sha256Hex.make(Canonical.sha256Hex(canonical))
    })
    stepTexts.push(Canonical.encodeWith({ id: idResult.success, type: spec.type, dependsOn }, { params: canonical }))
  }
  const ordered = PlanModule.topologicalOrder(steps)
  if (Result.isFailure(ordered)) return yield* ordered.failure

  const active = options?.policyVersion === undefined ? yield* policy.active : undefined
  const policyVersion = options?.policyVersion ?? active!.version
  const at = yield* Clock.currentTimeMillis
  const planned: Array<PlanModule.PlannedStep> = []
  for (const step of steps) {
    const decision = yield* policy.evaluate(
      { action: step.type, task: request.kind, params: step.params, principal: request.principal, at },
      { version: policyVersion }
    )
    planned.push({ ...step, decision })
  }
  const params = yield* Schema.encodeEffect(template.params)(taskParams).pipe(
    Effect.mapError((e) => InvalidInput.at("$.params", e.message))
  )
  const content = { kind: request.kind, params: params as Schema.Json, steps: planned, policyVersion }
  // Built field by field (a literal with a conditional spread in the middle is ~10× slower in V8)
  const plan: { -readonly [K in keyof PlanModule.Plan]?: PlanModule.Plan[K] } = { id: PlanId.make(yield* makePlanId) }
  if (request.taskId !== undefined) plan.taskId = request.taskId
  plan.kind = content.kind
  plan.params = content.params
  plan.steps = content.steps
  plan.policyVersion = content.policyVersion
  // = PlanModule.hashOf(content), the steps spliced in as text (the Planner tests check the two agree)
  plan.hash = Sha256Hex.make(
    Canonical.sha256Hex(
      Canonical.encodeWith(
        { kind: content.kind, params: content.params, policyVersion },
        { steps: `[${stepTexts.join(",")}]` }
      )
    )
  )
  plan.createdAt = at
  return plan as PlanModule.Plan
})
