/**
 * Policy sets as data, and their pure evaluation.
 *
 * A rule matches an action (a step type, within a task kind) by glob, by conditions on the action's
 * params, by the principal's roles and by a time window. Its effect is `allow`, `deny` or
 * `require_approval`. Precedence is deny > require_approval > allow; an action no rule matches is denied.
 * A set's version is the SHA-256 of its canonical JSON, so the same rules always have the same version.
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import { parse as parseYaml, YAMLParseError } from "yaml"
import * as Canonical from "./Canonical.ts"
import { PolicyVersion } from "./Ids.ts"
import { decode, InvalidInput } from "./InvalidInput.ts"
import { Principal, Role } from "./Principal.ts"

// ---------------------------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------------------------

/**
 * @category models
 * @since 0.1.0
 */
export const PolicyEffect = Schema.Literals(["allow", "deny", "require_approval"])
export type PolicyEffect = typeof PolicyEffect.Type

/**
 * A glob: `*` matches any run of characters, `?` exactly one; everything else is literal.
 *
 * @category models
 * @since 0.1.0
 */
export const Glob = Schema.String.check(Schema.isBetweenLength(1, 128))

const Globs = Schema.Union([Glob, Schema.Array(Glob).check(Schema.isMinLength(1))])

const ParamPath = Schema.String.check(
  Schema.isPattern(/^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$/, {
    message: "Expected a param path such as `amount` or `to.address`"
  })
)

const validRegex = Schema.makeFilter((source: string) => {
  try {
    new RegExp(source, "u")
    return true
  } catch (error) {
    return `Expected a valid regular expression (${(error as Error).message})`
  }
})

/**
 * A condition on the action's params. Numeric comparisons only match numbers; `matches` is a glob,
 * `regex` a JavaScript regular expression (unicode mode).
 *
 * @category models
 * @since 0.1.0
 */
export const Condition = Schema.Union([
  // One variant per op (a single literal each), so a bad condition is reported against its own op only
  ...(["gt", "gte", "lt", "lte"] as const).map((op) =>
    Schema.Struct({ param: ParamPath, op: Schema.Literal(op), value: Schema.Finite })
  ),
  ...(["eq", "neq"] as const).map((op) =>
    Schema.Struct({ param: ParamPath, op: Schema.Literal(op), value: Schema.Json })
  ),
  ...(["in", "nin"] as const).map((op) =>
    Schema.Struct({ param: ParamPath, op: Schema.Literal(op), value: Schema.Array(Schema.Json) })
  ),
  Schema.Struct({ param: ParamPath, op: Schema.Literal("matches"), value: Glob }),
  Schema.Struct({ param: ParamPath, op: Schema.Literal("regex"), value: Schema.String.check(validRegex) }),
  Schema.Struct({ param: ParamPath, op: Schema.Literal("exists"), value: Schema.optionalKey(Schema.Boolean) })
]).annotate({
  expected: "a condition { param, op, value } with op one of gt, gte, lt, lte, eq, neq, in, nin, matches, regex, exists"
})
export type Condition = typeof Condition.Type

const Day = Schema.Literals(["mon", "tue", "wed", "thu", "fri", "sat", "sun"])
const ClockTime = Schema.String.check(
  Schema.isPattern(/^([01][0-9]|2[0-3]):[0-5][0-9]$/, { message: "Expected a time of day as HH:MM (24 h)" })
)
const validTimeZone = Schema.makeFilter((zone: string) => {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone })
    return true
  } catch {
    return `Expected an IANA time zone such as "UTC" or "Europe/Paris", got "${zone}"`
  }
})

/**
 * When a rule applies: between `from` (inclusive) and `to` (exclusive), on `days`, in `timezone`
 * (default UTC). A window whose `from` is after its `to` spans midnight.
 *
 * @category models
 * @since 0.1.0
 */
export const TimeWindow = Schema.Struct({
  from: ClockTime,
  to: ClockTime,
  days: Schema.optionalKey(Schema.Array(Day).check(Schema.isMinLength(1))),
  timezone: Schema.optionalKey(Schema.String.check(validTimeZone))
})
export type TimeWindow = typeof TimeWindow.Type

/**
 * @category models
 * @since 0.1.0
 */
export const RuleId = Schema.String.check(
  Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, {
    message: "Expected a rule id: letters, digits and _ . -, at most 64"
  })
)

/**
 * What a `require_approval` rule demands: `required` distinct approvers, within `timeoutSeconds` if set
 * (an approval that does not arrive in time rejects the task).
 *
 * @category models
 * @since 0.1.0
 */
export const ApprovalRequirement = Schema.Struct({
  required: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 16 })),
  timeoutSeconds: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThan(0)))
})
export type ApprovalRequirement = typeof ApprovalRequirement.Type

/**
 * A rule. Every `match` field that is present must hold; an empty `match` matches every action.
 *
 * @category models
 * @since 0.1.0
 */
export const Rule = Schema.Struct({
  id: RuleId,
  description: Schema.optionalKey(Schema.String),
  effect: PolicyEffect,
  match: Schema.Struct({
    /** Step type(s), e.g. `onchain_action` or `check_*`. */
    action: Schema.optionalKey(Globs),
    /** Task kind(s), e.g. `transfer_funds`. */
    task: Schema.optionalKey(Globs),
    /** The principal must hold at least one of these roles. */
    roles: Schema.optionalKey(Schema.Array(Role).check(Schema.isMinLength(1))),
    /** Conditions on params; all must hold. */
    when: Schema.optionalKey(Schema.Array(Condition)),
    window: Schema.optionalKey(TimeWindow)
  }),
  /** Human-readable reason shown with decisions this rule makes. */
  reason: Schema.optionalKey(Schema.String),
  approvals: Schema.optionalKey(ApprovalRequirement)
}).check(
  Schema.makeFilter((rule) =>
    rule.approvals !== undefined && rule.effect !== "require_approval"
      ? { path: ["approvals"], issue: "`approvals` is only allowed on require_approval rules" }
      : true
  )
)
export type Rule = typeof Rule.Type

/**
 * A named set of rules. Rule ids are unique within a set.
 *
 * @category models
 * @since 0.1.0
 */
export const PolicySet = Schema.Struct({
  name: Schema.String.check(Schema.isBetweenLength(1, 128)),
  description: Schema.optionalKey(Schema.String),
  rules: Schema.Array(Rule)
}).check(
  Schema.makeFilter((set) => {
    const seen = new Set<string>()
    for (let i = 0; i < set.rules.length; i++) {
      const id = set.rules[i]!.id
      if (seen.has(id)) return { path: ["rules", i, "id"], issue: `Duplicate rule id "${id}"` }
      seen.add(id)
    }
    return true
  })
)
export type PolicySet = typeof PolicySet.Type

/**
 * What is being decided: a step type (`action`) with its params, in a task kind, by a principal, at a time.
 *
 * @category models
 * @since 0.1.0
 */
export const ActionRequest = Schema.Struct({
  action: Schema.String.check(Schema.isBetweenLength(1, 128)),
  task: Schema.optionalKey(Schema.String),
  params: Schema.Json,
  principal: Principal,
  /** Epoch milliseconds; defaults to the current time. */
  at: Schema.optionalKey(Schema.Number)
})
export type ActionRequest = typeof ActionRequest.Type

/**
 * The outcome of evaluating one action.
 *
 * @category models
 * @since 0.1.0
 */
export const PolicyDecision = Schema.Struct({
  effect: PolicyEffect,
  /** Every rule that matched, in set order. */
  matchedRules: Schema.Array(RuleId),
  /** Why: the reasons of the rules that decided, or why nothing matched. */
  reasons: Schema.Array(Schema.String),
  policyVersion: PolicyVersion,
  /** For `require_approval`: the strictest requirement of the matching rules. */
  approvals: Schema.optionalKey(ApprovalRequirement)
})
export type PolicyDecision = typeof PolicyDecision.Type

/**
 * One rule's part in a decision, for `explain`.
 *
 * @category models
 * @since 0.1.0
 */
export const RuleTrace = Schema.Struct({
  rule: RuleId,
  effect: PolicyEffect,
  matched: Schema.Boolean,
  /** Why the rule did or did not match. */
  detail: Schema.String
})
export type RuleTrace = typeof RuleTrace.Type

/**
 * A decision with the trace of every rule.
 *
 * @category models
 * @since 0.1.0
 */
export const PolicyExplanation = Schema.Struct({
  decision: PolicyDecision,
  trace: Schema.Array(RuleTrace)
})
export type PolicyExplanation = typeof PolicyExplanation.Type

// ---------------------------------------------------------------------------------------------------------
// Versions and loading
// ---------------------------------------------------------------------------------------------------------

/**
 * The version of a policy set: SHA-256 of its canonical JSON (key order does not matter).
 *
 * @category versions
 * @since 0.1.0
 */
export const version = (set: PolicySet): PolicyVersion =>
  PolicyVersion.make(Canonical.hash(Schema.encodeSync(PolicySet)(set)))

/**
 * Decodes a policy set from unknown data, reporting every bad field with its JSON path.
 *
 * @category loading
 * @since 0.1.0
 */
export const decodePolicySet: (input: unknown) => Effect.Effect<PolicySet, InvalidInput> = decode(PolicySet)

/**
 * Parses and decodes a policy set from JSON text.
 *
 * @category loading
 * @since 0.1.0
 */
export const fromJson = (text: string): Effect.Effect<PolicySet, InvalidInput> =>
  Effect.try({
    try: () => JSON.parse(text) as unknown,
    catch: (error) => InvalidInput.at("$", `Invalid JSON: ${(error as Error).message}`)
  }).pipe(Effect.flatMap(decodePolicySet))

/**
 * Parses and decodes a policy set from YAML text.
 *
 * @category loading
 * @since 0.1.0
 */
export const fromYaml = (text: string): Effect.Effect<PolicySet, InvalidInput> =>
  Effect.try({
    try: () => parseYaml(text) as unknown,
    catch: (error) =>
      InvalidInput.at(
        "$",
        error instanceof YAMLParseError
          ? `Invalid YAML: ${error.message.split("\n")[0]}`
          : `Invalid YAML: ${String(error)}`
      )
  }).pipe(Effect.flatMap(decodePolicySet))

/**
 * Parses policy text by file name: `.yaml`/`.yml` as YAML, anything else as JSON.
 *
 * @category loading
 * @since 0.1.0
 */
export const fromText = (fileName: string, text: string): Effect.Effect<PolicySet, InvalidInput> =>
  /\.ya?ml$/i.test(fileName) ? fromYaml(text) : fromJson(text)

// ---------------------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------------------

const globCache = new Map<string, RegExp>()
/**
 * Whether `value` matches a glob (`*` any run, `?` one character).
 *
 * @category matching
 * @since 0.1.0
 */
export const globMatches = (glob: string, value: string): boolean => {
  let re = globCache.get(glob)
  if (re === undefined) {
    const source = glob
      .replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*/g, ".*")
      .replace(/\?/g, ".")
    re = new RegExp(`^${source}$`, "s")
    if (globCache.size > 10_000) globCache.clear()
    globCache.set(glob, re)
  }
  return re.test(value)
}

const anyGlob = (globs: string | ReadonlyArray<string>, value: string): boolean =>
  typeof globs === "string" ? globMatches(globs, value) : globs.some((g) => globMatches(g, value))

const showGlobs = (globs: string | ReadonlyArray<string>): string =>
  typeof globs === "string" ? `"${globs}"` : globs.map((g) => `"${g}"`).join(" | ")

/**
 * Reads a dotted path (`to.address`, `items.0`) from a JSON value.
 *
 * @category matching
 * @since 0.1.0
 */
export const readParam = (params: Schema.Json, path: string): Schema.Json | undefined => {
  let current: Schema.Json | undefined = params
  for (const segment of path.split(".")) {
    if (current === null || typeof current !== "object") return undefined
    current = Array.isArray(current)
      ? /^\d+$/.test(segment)
        ? (current as ReadonlyArray<Schema.Json>)[Number(segment)]
        : undefined
      : Object.hasOwn(current, segment)
        ? (current as { readonly [k: string]: Schema.Json })[segment]
        : undefined
  }
  return current
}

const jsonEquals = (a: Schema.Json | undefined, b: Schema.Json): boolean =>
  a !== undefined && Canonical.encode(a) === Canonical.encode(b)

const conditionHolds = (condition: Condition, params: Schema.Json): boolean => {
  const actual = readParam(params, condition.param)
  switch (condition.op) {
    case "gt":
      return typeof actual === "number" && actual > condition.value
    case "gte":
      return typeof actual === "number" && actual >= condition.value
    case "lt":
      return typeof actual === "number" && actual < condition.value
    case "lte":
      return typeof actual === "number" && actual <= condition.value
    case "eq":
      return jsonEquals(actual, condition.value)
    case "neq":
      return !jsonEquals(actual, condition.value)
    case "in":
      return condition.value.some((v) => jsonEquals(actual, v))
    case "nin":
      return !condition.value.some((v) => jsonEquals(actual, v))
    case "matches":
      return typeof actual === "string" && globMatches(condition.value, actual)
    case "regex":
      return typeof actual === "string" && new RegExp(condition.value, "u").test(actual)
    case "exists":
      return (actual !== undefined) === (condition.value ?? true)
  }
}

const showCondition = (condition: Condition): string =>
  `${condition.param} ${condition.op}${condition.value === undefined ? "" : ` ${JSON.stringify(condition.value)}`}`

const dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] as const
const formatters = new Map<string, Intl.DateTimeFormat>()
const localTime = (at: number, timeZone: string): { readonly day: string; readonly minutes: number } => {
  let format = formatters.get(timeZone)
  if (format === undefined) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone,
      weekday: "short",
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23"
    })
    formatters.set(timeZone, format)
  }
  let day = ""
  let hour = 0
  let minute = 0
  for (const part of format.formatToParts(at)) {
    if (part.type === "weekday") day = part.value.toLowerCase().slice(0, 3)
    else if (part.type === "hour") hour = Number(part.value)
    else if (part.type === "minute") minute = Number(part.value)
  }
  return { day, minutes: hour * 60 + minute }
}

const toMinutes = (hhmm: string): number => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5))

/**
 * Whether `at` (epoch ms) falls inside a time window.
 *
 * @category matching
 * @since 0.1.0
 */
export const inWindow = (window: TimeWindow, at: number): boolean => {
  const { day, minutes } = localTime(at, window.timezone ?? "UTC")
  const from = toMinutes(window.from)
  const to = toMinutes(window.to)
  // A window that spans midnight belongs to the day it started on
  const startDay =
    from > to && minutes < to ? dayNames[(dayNames.indexOf(day as (typeof dayNames)[number]) + 6) % 7]! : day
  if (window.days !== undefined && !window.days.includes(startDay as (typeof window.days)[number])) return false
  return from <= to ? minutes >= from && minutes < to : minutes >= from || minutes < to
}

/** Why a rule does not match the request, or `undefined` when it matches. */
const missReason = (rule: Rule, request: ActionRequest, at: number, withDetail: boolean): string | undefined => {
  const { match } = rule
  if (match.action !== undefined && !anyGlob(match.action, request.action)) {
    return withDetail ? `action "${request.action}" does not match ${showGlobs(match.action)}` : ""
  }
  if (match.task !== undefined && (request.task === undefined || !anyGlob(match.task, request.task))) {
    return withDetail
      ? `task kind ${request.task === undefined ? "(none)" : `"${request.task}"`} does not match ${showGlobs(match.task)}`
      : ""
  }
  if (match.roles !== undefined && !match.roles.some((role) => request.principal.roles.includes(role))) {
    return withDetail ? `principal has none of the roles ${match.roles.join(", ")}` : ""
  }
  for (const condition of match.when ?? []) {
    if (!conditionHolds(condition, request.params)) {
      return withDetail ? `condition ${showCondition(condition)} does not hold` : ""
    }
  }
  if (match.window !== undefined && !inWindow(match.window, at)) {
    return withDetail
      ? `outside the time window ${match.window.from}-${match.window.to} ${match.window.timezone ?? "UTC"}`
      : ""
  }
  return undefined
}

const reasonOf = (rule: Rule) => rule.reason ?? rule.description ?? `rule ${rule.id} matched`

const strictest = (rules: ReadonlyArray<Rule>): ApprovalRequirement => {
  let required = 1
  let timeoutSeconds: number | undefined
  for (const rule of rules) {
    required = Math.max(required, rule.approvals?.required ?? 1)
    const timeout = rule.approvals?.timeoutSeconds
    if (timeout !== undefined)
      timeoutSeconds = timeoutSeconds === undefined ? timeout : Math.min(timeoutSeconds, timeout)
  }
  return timeoutSeconds === undefined ? { required } : { required, timeoutSeconds }
}

/**
 * Evaluates an action against a set and explains every rule's part. `at` is used when the request has
 * no time of its own.
 *
 * @category evaluation
 * @since 0.1.0
 */
export const explain = (
  set: PolicySet,
  policyVersion: PolicyVersion,
  request: ActionRequest,
  at: number
): PolicyExplanation => {
  const when = request.at ?? at
  const trace = set.rules.map((rule): RuleTrace => {
    const miss = missReason(rule, request, when, true)
    return { rule: rule.id, effect: rule.effect, matched: miss === undefined, detail: miss ?? reasonOf(rule) }
  })
  return {
    decision: decide(
      set.rules.filter((_, i) => trace[i]!.matched),
      policyVersion,
      request
    ),
    trace
  }
}

const decide = (matched: ReadonlyArray<Rule>, policyVersion: PolicyVersion, request: ActionRequest): PolicyDecision => {
  const matchedRules = matched.map((rule) => rule.id)
  const deciding: PolicyEffect | undefined = matched.some((r) => r.effect === "deny")
    ? "deny"
    : matched.some((r) => r.effect === "require_approval")
      ? "require_approval"
      : matched.some((r) => r.effect === "allow")
        ? "allow"
        : undefined
  if (deciding === undefined) {
    return {
      effect: "deny",
      matchedRules,
      reasons: [`no rule matches action "${request.action}" (default deny)`],
      policyVersion
    }
  }
  const deciders = matched.filter((rule) => rule.effect === deciding)
  const reasons = deciders.map(reasonOf)
  return deciding === "require_approval"
    ? { effect: deciding, matchedRules, reasons, policyVersion, approvals: strictest(deciders) }
    : { effect: deciding, matchedRules, reasons, policyVersion }
}

/**
 * Evaluates an action against a set: deny > require_approval > allow, default deny.
 *
 * @category evaluation
 * @since 0.1.0
 */
export const evaluate = (
  set: PolicySet,
  policyVersion: PolicyVersion,
  request: ActionRequest,
  at: number
): PolicyDecision => {
  const when = request.at ?? at
  return decide(
    set.rules.filter((rule) => missReason(rule, request, when, false) === undefined),
    policyVersion,
    request
  )
}
