/**
 * Handlers of the `policy` group (`api/Policy.ts`): each one call into `Policy`, `PolicyStore` or `PolicyAdmin`,
 * with the group's own wire shapes (stored policy sets, a publication's impact).
 *
 * @since 0.1.0
 */
import { Policy, PolicyAdmin, type PolicyImpact, PolicyStore, type StoredPolicySet } from "@mandate/core"
import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../api/Api.ts"
import { CurrentPrincipal } from "../api/Auth.ts"
import type { PolicyImpactWire, StoredPolicyWire } from "../api/Policy.ts"
import { mapErrors } from "./Errors.ts"
import * as Models from "./Models.ts"

const storedPolicy = (stored: StoredPolicySet): Models.Wire<typeof StoredPolicyWire> => ({
  version: stored.version,
  active: stored.active,
  published_at: stored.publishedAt,
  policy: stored.set
})

const impact = (i: PolicyImpact): Models.Wire<typeof PolicyImpactWire> => ({
  examined: i.examined,
  changed: i.changed,
  tasks: i.tasks.map((t) => ({
    task_id: t.taskId,
    task_type: t.kind,
    status: t.state,
    requested_by: t.requestedBy,
    policy_version: t.policyVersion,
    steps: t.steps.map((s) => ({
      step_id: s.stepId,
      action: s.type,
      before: s.before,
      after: s.after,
      reasons: s.reasons
    }))
  }))
})

/**
 * @category handlers
 * @since 0.1.0
 */
export const layer = HttpApiBuilder.group(Api, "policy", (handlers) =>
  Effect.gen(function* () {
    const policy = yield* Policy
    const store = yield* PolicyStore
    const admin = yield* PolicyAdmin
    return handlers
      .handle("active", () => policy.active.pipe(Effect.map(storedPolicy), mapErrors()))
      .handle("list", () =>
        store.list.pipe(
          Effect.map((all) => ({ policies: all.map(storedPolicy) })),
          mapErrors()
        )
      )
      .handle("evaluate", ({ payload }) =>
        Effect.flatMap(CurrentPrincipal, (caller) =>
          policy.explain({
            action: payload.action,
            ...(payload.task_type === undefined ? {} : { task: payload.task_type }),
            params: payload.parameters,
            principal: payload.principal ?? caller,
            ...(payload.at === undefined ? {} : { at: payload.at })
          })
        ).pipe(
          Effect.map((explanation) => ({
            decision: Models.decision(explanation.decision),
            trace: explanation.trace
          })),
          mapErrors()
        )
      )
      .handle("versions", () =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          Effect.all([admin.versions(principal), admin.activations(principal)])
        ).pipe(
          Effect.map(([all, activations]) => ({
            versions: all.map(storedPolicy),
            activations: activations.map(({ entryHash, ...a }) => ({ ...a, entry_hash: entryHash }))
          })),
          mapErrors()
        )
      )
      .handle("publish", ({ payload }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          admin.propose(payload.policy, principal, { dryRun: payload.dry_run, recentTasks: payload.recent_tasks })
        ).pipe(
          Effect.map((proposal) => ({
            version: proposal.version,
            name: proposal.set.name,
            new: proposal.new,
            published: proposal.stored !== undefined,
            active_version: proposal.activeVersion,
            impact: impact(proposal.impact)
          })),
          mapErrors({ $: "$.policy" })
        )
      )
      .handle("activate", ({ params }) =>
        Effect.flatMap(CurrentPrincipal, (principal) => admin.activate(params.version, principal)).pipe(
          Effect.map((activation) => ({
            active: storedPolicy(activation.active),
            ...(activation.previous === undefined ? {} : { previous: activation.previous }),
            changed: activation.previous !== undefined,
            rollback: activation.rollback
          })),
          mapErrors()
        )
      )
  })
)
