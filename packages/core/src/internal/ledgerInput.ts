/**
 * The first half of an append, before the append lock: each `EntryInput` checked against its schema and its
 * payload and principal encoded as canonical JSON once. The locked half (`ledgerAppend.ts`) only chains what
 * this prepares, so the lock covers hashing the entry bodies and nothing else.
 *
 * @since 0.1.0
 */
import { Effect, Result, Schema, Struct } from "effect"
import * as Canonical from "../Canonical.ts"
import { type Sha256Hex, StepId, TaskId } from "../Ids.ts"
import { decode, InvalidInput } from "../InvalidInput.ts"
import { EntryInput, EntryKind } from "../LedgerEntry.ts"
import { Principal } from "../Principal.ts"

/** An input ready to chain: valid, with its payload's hash and canonical text. */
export interface Prepared {
  readonly kind: EntryKind
  readonly taskId?: TaskId | undefined
  readonly stepId?: StepId | undefined
  readonly principal?: Principal | undefined
  readonly payloadHash: Sha256Hex
  /** Whether the entry stores its payload (or only its hash). */
  readonly storePayload: boolean
  /** The payload's canonical JSON, spliced into the entry body rather than encoded a second time. */
  readonly payloadText: string
  readonly principalText: string | undefined
}

const decodeInput = decode(EntryInput)
// `EntryInput` checked in two parts, the principal apart (a struct ignores members it does not name, so both
// accept exactly what `Schema.is(EntryInput)` accepts)
const isEntryInputButPrincipal = Schema.is(EntryInput.mapFields(Struct.omit(["principal"])))
const isPrincipal = Schema.is(Principal)

// The same check, cheaper for the inputs the runtime makes: an object with its own `kind` and `payload`, and
// ids and kinds that repeat, each distinct string checked by its schema once (bounded: cleared when full).
// Anything else goes to the full schema check, so this never accepts what the schema refuses.
const memoized = (is: (value: unknown) => boolean) => {
  const known = new Map<string, boolean>()
  return (value: string): boolean => {
    let ok = known.get(value)
    if (ok === undefined) {
      ok = is(value)
      if (known.size >= 4096) known.clear()
      known.set(value, ok)
    }
    return ok
  }
}
const isKind = memoized(Schema.is(EntryKind))
const isTaskId = memoized(Schema.is(TaskId))
const isStepId = memoized(Schema.is(StepId))

const isCommonEntryInput = (input: unknown): boolean => {
  if (typeof input !== "object" || input === null || Array.isArray(input)) return false
  if (!Object.hasOwn(input, "kind") || !Object.hasOwn(input, "payload")) return false
  const { kind, taskId, stepId, storePayload } = input as Record<string, unknown>
  return (
    typeof kind === "string" &&
    isKind(kind) &&
    (taskId === undefined || (typeof taskId === "string" && isTaskId(taskId))) &&
    (stepId === undefined || (typeof stepId === "string" && isStepId(stepId))) &&
    (storePayload === undefined || typeof storePayload === "boolean")
  )
}

// Principals repeat (every entry of a task names the same one): each distinct canonical text is checked and
// parsed once, and its frozen copy shared by the entries that name it. Bounded: cleared when full.
const principals = new Map<string, Principal>()
const PRINCIPALS_KEPT = 1024

const principalOf = (text: string): Principal | undefined => {
  const known = principals.get(text)
  if (known !== undefined) return known
  const parsed = fromCanonical<Principal>(text)
  if (!isPrincipal(parsed)) return undefined
  if (principals.size >= PRINCIPALS_KEPT) principals.clear()
  principals.set(text, deepFreeze(parsed))
  return parsed
}

const deepFreeze = <A>(value: A): A => {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const member of Object.values(value)) deepFreeze(member)
  }
  return value
}

// The stored payload and principal are copies parsed back from their canonical text: exactly what was hashed,
// and out of reach of a caller who mutates its own objects after appending.
const fromCanonical = <A>(text: string): A => JSON.parse(text) as A

/**
 * The fast path, synchronous: valid input (the same schema as `decodeInput`, checked without building a
 * decoded copy) whose payload has a canonical form. `undefined` sends the input to `explain`.
 */
export const prepareValid = (input: unknown): Prepared | undefined => {
  // The payload's canonical form first: it refuses values nested too deep for the schema check to walk
  let text: string
  try {
    text = Canonical.encode(
      typeof input === "object" && input !== null ? (input as EntryInput).payload : undefined,
      Canonical.maxDepth
    )
  } catch {
    return undefined
  }
  if (!isCommonEntryInput(input) && !isEntryInputButPrincipal(input)) return undefined
  const valid = input as EntryInput
  const given = valid.principal
  let principalText: string | undefined
  let principal: Principal | undefined
  if (given !== undefined) {
    try {
      principalText = Canonical.encode(given)
    } catch {
      return undefined
    }
    principal = principalOf(principalText)
    if (principal === undefined) return undefined
  }
  return {
    kind: valid.kind as EntryKind,
    taskId: valid.taskId as TaskId | undefined,
    stepId: valid.stepId as StepId | undefined,
    principal,
    payloadHash: Canonical.sha256Hex(text),
    storePayload: valid.storePayload !== false,
    payloadText: text,
    principalText
  }
}

/** Why an input was refused: every schema issue (by JSON path under `root`), else the payload's. */
const explain = (input: unknown, root: string): Effect.Effect<never, InvalidInput> =>
  Effect.flatMap(
    // A payload nested too deep is named before the schema walks it
    typeof input === "object" && input !== null && "payload" in input
      ? Canonical.checkDepth(input.payload, `${root}.payload`)
      : Effect.void,
    () =>
      Effect.flatMap(decodeInput(input).pipe(Effect.mapError((e) => reroot(e, root))), (decoded) =>
        Effect.flatMap(Canonical.encodeEffect(decoded.payload, `${root}.payload`), () =>
          Effect.fail(InvalidInput.at(root, "Expected a ledger entry"))
        )
      )
  )

const reroot = (error: InvalidInput, root: string): InvalidInput =>
  root === "$"
    ? error
    : new InvalidInput({
        message: error.message,
        path: root + error.path.slice(1),
        issues: error.issues.map((issue) => ({ path: root + issue.path.slice(1), message: issue.message }))
      })

/** One input, prepared or refused with every issue by JSON path. */
export const prepare = (input: unknown, root: string): Effect.Effect<Prepared, InvalidInput> =>
  Effect.suspend(() => {
    const prepared = prepareValid(input)
    return prepared === undefined ? explain(input, root) : Effect.succeed(prepared)
  })

/** A batch, all prepared, or refused with the issues of every bad entry (`$[i]...`), not just the first. */
export const prepareAll = (inputs: ReadonlyArray<unknown>): Effect.Effect<ReadonlyArray<Prepared>, InvalidInput> =>
  // Valid input (the usual case) is prepared synchronously: no generator per call (the runtime records a
  // transition's few entries per call, so what a call costs counts as much as what an entry costs)
  Effect.suspend(() => {
    if (!Array.isArray(inputs)) return Effect.fail(InvalidInput.at("$", "Expected an array of entries"))
    const prepared: Array<Prepared> = []
    const refused: Array<number> = []
    for (let i = 0; i < inputs.length; i++) {
      const p = prepareValid(inputs[i])
      if (p === undefined) refused.push(i)
      else prepared.push(p)
    }
    return refused.length === 0 ? Effect.succeed(prepared) : refuse(inputs, refused)
  })

const refuse = (inputs: ReadonlyArray<unknown>, refused: ReadonlyArray<number>): Effect.Effect<never, InvalidInput> =>
  Effect.gen(function* () {
    const issues: Array<InvalidInput["issues"][number]> = []
    for (const i of refused) {
      const result = yield* Effect.result(explain(inputs[i], `$[${i}]`))
      if (Result.isFailure(result)) issues.push(...result.failure.issues)
    }
    return yield* new InvalidInput({ message: issues[0]!.message, path: issues[0]!.path, issues })
  })
