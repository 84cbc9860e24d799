/**
 * Policy administration: validate a new policy set with a dry run over recent tasks, publish it, activate a
 * version (or roll back to an earlier one). Admins only, and every change leaves a ledger entry naming the set's
 * version (the SHA-256 of its canonical JSON): `policy.published`, `policy.activated`. A configured policy adopted
 * at start (`adoptConfigured`) writes the same `policy.activated` entry through the same function.
 *
 * A change and its entry are one `UnitOfWork`: either both are written or neither (a failed append leaves no
 * published or activated version), on every store that enlists in the unit (memory, Postgres and Redis do).
 * `activations` lists every activation from the `policy.activated` entries.
 *
 * Tasks stay pinned to the version they were planned under: their plans hold every decision with its version,
 * and approvals bind to it, so activating another version changes only tasks planned afterwards.
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, Layer, Option, Schema, Semaphore } from "effect"
import { PolicyVersion } from "./Ids.ts"
import type { InvalidInput } from "./InvalidInput.ts"
import { Ledger } from "./Ledger.ts"
import type { LedgerStoreError } from "./LedgerStore.ts"
import * as PolicySet from "./PolicySet.ts"
import { PolicyStore, type PolicyStoreError, type StoredPolicySet, UnknownPolicyVersion } from "./PolicyStore.ts"
import { hasRole, type Principal } from "./Principal.ts"
import { Forbidden } from "./Runtime.ts"
import { TaskStore, type TaskStoreError } from "./TaskStore.ts"
import { UnitOfWork, type UnitOfWorkError } from "./UnitOfWork.ts"

/**
 * A step of a recent task whose decision would differ under the proposed set.
 *
 * @category models
 * @since 0.1.0
 */
export const ChangedDecision = Schema.Struct({
  stepId: Schema.String,
  type: Schema.String,
  before: PolicySet.PolicyEffect,
  after: PolicySet.PolicyEffect,
  reasons: Schema.Array(Schema.String)
})
export type ChangedDecision = typeof ChangedDecision.Type

/**
 * What a proposed set would change for recent tasks: each task's recorded steps (type, params, principal, time)
 * evaluated again under the proposed set, compared with the decisions recorded in its plan.
 *
 * @category models
 * @since 0.1.0
 */
export const PolicyImpact = Schema.Struct({
  /** Tasks whose plans were evaluated again (the most recent ones). */
  examined: Schema.Int,
  /** Tasks with at least one changed decision. */
  changed: Schema.Int,
  tasks: Schema.Array(
    Schema.Struct({
      taskId: Schema.String,
      kind: Schema.String,
      state: Schema.String,
      requestedBy: Schema.String,
      /** The version the task is pinned to (it keeps running under it). */
      policyVersion: Schema.String,
      steps: Schema.Array(ChangedDecision)
    })
  )
})
export type PolicyImpact = typeof PolicyImpact.Type

/**
 * A proposed set: its version, whether it is new, whether it was stored, and its impact on recent tasks.
 *
 * @category models
 * @since 0.1.0
 */
export interface PolicyProposal {
  readonly version: PolicyVersion
  readonly set: PolicySet.PolicySet
  /** The version was not published before. */
  readonly new: boolean
  /** The stored set, when it was published (absent on a dry run). */
  readonly stored?: StoredPolicySet | undefined
  /** The version that was active when it was proposed. */
  readonly activeVersion: PolicyVersion
  readonly impact: PolicyImpact
}

/**
 * The outcome of an activation.
 *
 * @category models
 * @since 0.1.0
 */
export interface PolicyActivation {
  readonly active: StoredPolicySet
  /** The version active before (absent when the version already was active: nothing changed). */
  readonly previous?: PolicyVersion | undefined
  /** The activated version was published before the one it replaces. */
  readonly rollback: boolean
}

/**
 * One activation as its `policy.activated` ledger entry records it: which version replaced which, who did it
 * (`by`: a principal's id, or `configuration` for a set adopted at start), when, and the entry that proves it.
 *
 * @category models
 * @since 0.1.0
 */
export const PolicyActivationRecord = Schema.Struct({
  version: Schema.String,
  previous: Schema.String,
  name: Schema.String,
  by: Schema.String,
  rollback: Schema.Boolean,
  at: Schema.Number,
  seq: Schema.Int,
  entryHash: Schema.String
})
export type PolicyActivationRecord = typeof PolicyActivationRecord.Type

// The payload `activateVersion` writes; an entry whose payload is not one (or is not stored) is left out
const ActivatedPayload = Schema.Struct({
  version: Schema.String,
  previous: Schema.String,
  name: Schema.String,
  by: Schema.String,
  rollback: Schema.optional(Schema.Boolean)
})
const decodeActivated = Schema.decodeUnknownOption(ActivatedPayload)

/**
 * @category models
 * @since 0.1.0
 */
export interface ProposeOptions {
  /** Only evaluate: nothing is stored and no entry is written. */
  readonly dryRun?: boolean | undefined
  /** How many recent tasks to evaluate again (default 50, at most 500). */
  readonly recentTasks?: number | undefined
}

/**
 * Every failure of an administration call.
 *
 * @category errors
 * @since 0.1.0
 */
export type PolicyAdminError =
  | Forbidden
  | InvalidInput
  | UnknownPolicyVersion
  | PolicyStoreError
  | LedgerStoreError
  | TaskStoreError
  | UnitOfWorkError

/**
 * @category services
 * @since 0.1.0
 */
export class PolicyAdmin extends Context.Service<
  PolicyAdmin,
  {
    /** Every published version, newest first (admins and auditors). */
    readonly versions: (principal: Principal) => Effect.Effect<ReadonlyArray<StoredPolicySet>, PolicyAdminError>
    /**
     * Every activation, oldest first, read from the ledger's `policy.activated` entries (admins and auditors).
     * The first call reads the whole ledger; later calls read only the entries appended since.
     */
    readonly activations: (
      principal: Principal
    ) => Effect.Effect<ReadonlyArray<PolicyActivationRecord>, PolicyAdminError>
    /**
     * Decodes `input` as a policy set (every bad field reported with its JSON path), evaluates recent tasks under
     * it, and unless `dryRun` publishes it with a `policy.published` entry (publishing a known version again
     * writes nothing). Publishing does not activate.
     */
    readonly propose: (
      input: unknown,
      principal: Principal,
      options?: ProposeOptions
    ) => Effect.Effect<PolicyProposal, PolicyAdminError>
    /** Makes a published version the active one (also a rollback to an earlier one) with a `policy.activated` entry. */
    readonly activate: (version: string, principal: Principal) => Effect.Effect<PolicyActivation, PolicyAdminError>
  }
>()("@mandate/core/PolicyAdmin") {
  /**
   * Administration over the `PolicyStore`, recording in the `Ledger` and reading recent tasks from the `TaskStore`.
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layer: Layer.Layer<PolicyAdmin, never, PolicyStore | Ledger | TaskStore | UnitOfWork> = Layer.effect(
    PolicyAdmin,
    Effect.gen(function* () {
      const store = yield* PolicyStore
      const ledger = yield* Ledger
      const tasks = yield* TaskStore
      const uow = yield* UnitOfWork

      const requireRole = (principal: Principal, roles: ReadonlyArray<"admin" | "auditor">, action: string) =>
        roles.some((role) => hasRole(principal, role))
          ? Effect.void
          : Effect.fail(
              new Forbidden({ principal: principal.id, action, reason: `the ${roles.join(" or ")} role is required` })
            )

      const impactOf = Effect.fnUntraced(function* (set: PolicySet.PolicySet, version: PolicyVersion, recent: number) {
        const page = yield* tasks.list({ limit: recent })
        const now = yield* Clock.currentTimeMillis
        const changedTasks: Array<PolicyImpact["tasks"][number]> = []
        let examined = 0
        for (const task of page.tasks) {
          if (task.planId === undefined) continue
          const plan = yield* tasks.getPlan(task.planId).pipe(Effect.option)
          if (Option.isNone(plan)) continue
          examined++
          const steps: Array<ChangedDecision> = []
          for (const step of plan.value.steps) {
            // The recorded inputs: the step as planned, by the task's requester, at the time it was planned
            const after = PolicySet.evaluate(
              set,
              version,
              {
                action: step.type,
                task: plan.value.kind,
                params: step.params,
                principal: task.requestedBy,
                at: plan.value.createdAt
              },
              now
            )
            if (after.effect !== step.decision.effect) {
              steps.push({
                stepId: step.id,
                type: step.type,
                before: step.decision.effect,
                after: after.effect,
                reasons: after.reasons
              })
            }
          }
          if (steps.length > 0) {
            changedTasks.push({
              taskId: task.id,
              kind: task.kind,
              state: task.state,
              requestedBy: task.requestedBy.id,
              policyVersion: task.policyVersion ?? plan.value.policyVersion,
              steps
            })
          }
        }
        return { examined, changed: changedTasks.length, tasks: changedTasks } satisfies PolicyImpact
      })

      // The activations read so far and where the scan stopped: entries never change, so only new ones are read
      const seen: { next: number; readonly activations: Array<PolicyActivationRecord> } = { next: 0, activations: [] }
      const scanLock = yield* Semaphore.make(1)
      const scan = scanLock.withPermits(1)(
        Effect.gen(function* () {
          for (;;) {
            const page = yield* ledger.entries({ from: seen.next, limit: 1000 })
            for (const entry of page) {
              if (entry.kind !== "policy.activated") continue
              const payload = decodeActivated(entry.payload)
              if (Option.isNone(payload)) continue
              seen.activations.push({
                version: payload.value.version,
                previous: payload.value.previous,
                name: payload.value.name,
                by: payload.value.by,
                rollback: payload.value.rollback === true,
                at: entry.at,
                seq: entry.seq,
                entryHash: entry.entryHash
              })
            }
            if (page.length === 0) return seen.activations.slice()
            seen.next = page[page.length - 1]!.seq + 1
          }
        })
      )

      return PolicyAdmin.of({
        versions: Effect.fn("PolicyAdmin.versions")(function* (principal: Principal) {
          yield* requireRole(principal, ["admin", "auditor"], "read policy versions")
          return yield* store.list
        }),
        activations: Effect.fn("PolicyAdmin.activations")(function* (principal: Principal) {
          yield* requireRole(principal, ["admin", "auditor"], "read policy activations")
          // In a unit: on memory, no unit's entries are read half-way (they could still be rolled back)
          return yield* uow.run(scan)
        }),
        propose: Effect.fn("PolicyAdmin.propose")(function* (
          input: unknown,
          principal: Principal,
          options?: ProposeOptions
        ) {
          yield* requireRole(principal, ["admin"], options?.dryRun ? "dry-run policy sets" : "publish policy sets")
          const set = yield* PolicySet.decodePolicySet(input)
          const version = PolicySet.version(set)
          const known = yield* store.get(version).pipe(
            Effect.map(Option.some),
            Effect.catchTag("UnknownPolicyVersion", () => Effect.succeed(Option.none<StoredPolicySet>()))
          )
          const active = yield* store.active
          const recent = Math.min(500, Math.max(0, Math.floor(options?.recentTasks ?? 50)))
          const impact = yield* impactOf(set, version, recent)
          const base = { version, set, new: Option.isNone(known), activeVersion: active.version, impact }
          if (options?.dryRun) return base
          if (Option.isSome(known)) return { ...base, stored: known.value }
          // The set and its entry together, or neither
          const stored = yield* uow.run(
            Effect.tap(store.publish(set), (stored) =>
              ledger.append({
                kind: "policy.published",
                principal,
                payload: { version: stored.version, name: set.name, rules: set.rules.length, by: principal.id }
              })
            )
          )
          return { ...base, stored }
        }),
        activate: Effect.fn("PolicyAdmin.activate")(function* (versionInput: string, principal: Principal) {
          yield* requireRole(principal, ["admin"], "activate policy sets")
          const version = yield* Schema.decodeUnknownEffect(PolicyVersion)(versionInput).pipe(
            Effect.mapError(() => new UnknownPolicyVersion({ version: versionInput }))
          )
          return yield* activateVersion(version, { by: principal.id, principal }).pipe(
            Effect.provideService(PolicyStore, store),
            Effect.provideService(Ledger, ledger),
            Effect.provideService(UnitOfWork, uow)
          )
        })
      })
    })
  )
}

/**
 * Activates a published version and records the change: the one path for an admin's activation and a configured
 * policy adopted at start. Nothing is written when the version already is active. The pointer and its
 * `policy.activated` entry are one unit of work: when the entry cannot be appended, the version is not active.
 *
 * @category constructors
 * @since 0.1.0
 */
export const activateVersion = (
  version: PolicyVersion,
  who: { readonly by: string; readonly principal?: Principal | undefined }
): Effect.Effect<
  PolicyActivation,
  UnknownPolicyVersion | PolicyStoreError | LedgerStoreError | InvalidInput | UnitOfWorkError,
  PolicyStore | Ledger | UnitOfWork
> => UnitOfWork.use((uow) => uow.run(activateInUnit(version, who)))

const activateInUnit = (
  version: PolicyVersion,
  who: { readonly by: string; readonly principal?: Principal | undefined }
) =>
  Effect.gen(function* () {
    const store = yield* PolicyStore
    const ledger = yield* Ledger
    const current = yield* store.active
    const target = yield* store.get(version)
    if (current.version === version) return { active: current, rollback: false }
    // Published before the version it replaces (the store lists newest first; timestamps may tie)
    const order = (yield* store.list).map((stored) => stored.version)
    const rollback = order.indexOf(target.version) > order.indexOf(current.version)
    const active = yield* store.activate(version)
    yield* ledger.append({
      kind: "policy.activated",
      ...(who.principal === undefined ? {} : { principal: who.principal }),
      payload: {
        version: active.version,
        previous: current.version,
        name: active.set.name,
        by: who.by,
        ...(rollback ? { rollback: true } : {})
      }
    })
    yield* Effect.logInfo(
      `policy "${active.set.name}" (${version.slice(0, 12)}…) activated by ${who.by}, replacing ${current.version.slice(0, 12)}…`
    )
    return { active, previous: current.version, rollback } satisfies PolicyActivation
  })

/**
 * Makes a configured set the active policy at start: published if new, then activated through `activateVersion`
 * (one `policy.activated` entry, `by: "configuration"`). Nothing happens when it already is active.
 *
 * @category constructors
 * @since 0.1.0
 */
export const adoptConfigured = (
  set: PolicySet.PolicySet
): Effect.Effect<
  PolicyActivation,
  UnknownPolicyVersion | PolicyStoreError | LedgerStoreError | InvalidInput | UnitOfWorkError,
  PolicyStore | Ledger | UnitOfWork
> =>
  Effect.gen(function* () {
    const store = yield* PolicyStore
    const current = yield* store.active
    if (current.version === PolicySet.version(set)) return { active: current, rollback: false }
    // Published in the same unit as its activation: a failed entry leaves neither behind
    return yield* UnitOfWork.use((uow) =>
      uow.run(
        Effect.flatMap(store.publish(set), (published) => activateInUnit(published.version, { by: "configuration" }))
      )
    )
  })
