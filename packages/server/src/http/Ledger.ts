/**
 * Handlers of the `policy` and `audit` groups: each one call into `Policy`, `PolicyStore`, `Ledger` or
 * `Anchor`, mapped to the wire.
 *
 * @since 0.1.0
 */
import {
  Anchor,
  Ledger,
  ledgerOverview,
  Policy,
  PolicyAdmin,
  type PolicyImpact,
  PolicyStore,
  recordHostEntry,
  type StoredPolicySet,
  TaskStore,
  taskBundle,
  taskEntries,
  taskEvidence
} from "@mandate/core"
import { Effect, Layer } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../api/Api.ts"
import { CurrentPrincipal } from "../api/Auth.ts"
import { mapErrors } from "./Errors.ts"
import * as Wire from "./Wire.ts"

const storedPolicy = (stored: StoredPolicySet) => ({
  version: stored.version,
  active: stored.active,
  published_at: stored.publishedAt,
  policy: stored.set
})

const impact = (i: PolicyImpact) => ({
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
export const PolicyHandlers = HttpApiBuilder.group(Api, "policy", (handlers) =>
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
            decision: Wire.decision(explanation.decision),
            trace: explanation.trace
          })),
          mapErrors()
        )
      )
      .handle("versions", () =>
        Effect.flatMap(CurrentPrincipal, admin.versions).pipe(
          Effect.map((all) => ({ versions: all.map(storedPolicy) })),
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

/**
 * @category handlers
 * @since 0.1.0
 */
export const AuditHandlers = HttpApiBuilder.group(Api, "audit", (handlers) =>
  Effect.gen(function* () {
    const ledger = yield* Ledger
    const anchor = yield* Anchor
    const tasks = yield* TaskStore
    // Ledger checkpoints are only returned once verified, so their key id is always a trusted one
    const signerOf = (keyId: string) => ledger.publicKeys.get(keyId) ?? ledger.publicKey
    return handlers
      .handle("byTask", ({ params }) =>
        Effect.flatMap(CurrentPrincipal, (principal) => taskEntries(params.task_id, principal)).pipe(
          Effect.provideService(Ledger, ledger),
          Effect.provideService(TaskStore, tasks),
          Effect.map((entries) => ({ task_id: params.task_id, entries: entries.map(Wire.ledgerEntry) })),
          mapErrors()
        )
      )
      .handle("evidence", ({ params }) =>
        Effect.flatMap(CurrentPrincipal, (principal) => taskEvidence(params.task_id, principal)).pipe(
          Effect.provideService(Ledger, ledger),
          Effect.provideService(TaskStore, tasks),
          Effect.map(Wire.taskEvidence),
          mapErrors()
        )
      )
      .handle("bundle", ({ params }) =>
        Effect.flatMap(CurrentPrincipal, (principal) => taskBundle(params.task_id, principal)).pipe(
          Effect.provideService(Ledger, ledger),
          Effect.provideService(TaskStore, tasks),
          mapErrors()
        )
      )
      .handle("record", ({ payload }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          recordHostEntry(
            {
              kind: payload.kind,
              ...(payload.task_id === undefined ? {} : { taskId: payload.task_id }),
              ...(payload.step_id === undefined ? {} : { stepId: payload.step_id }),
              payload: payload.payload,
              storePayload: payload.store_payload ?? true
            },
            principal
          )
        ).pipe(
          Effect.provideService(Ledger, ledger),
          Effect.provideService(TaskStore, tasks),
          Effect.map((receipt) => ({
            seq: receipt.seq,
            entry_hash: receipt.entryHash,
            prev_hash: receipt.prevHash,
            leaf_index: receipt.leafIndex
          })),
          mapErrors({ "$.taskId": "$.task_id", "$.stepId": "$.step_id", "$.storePayload": "$.store_payload" })
        )
      )
      .handle("verify", ({ params }) =>
        ledger.verify(params.hash).pipe(
          Effect.map((verified) => ({
            // verify fails with LedgerTampered when anything no longer matches: what it returns verified
            verified: true,
            entry: Wire.ledgerEntry(verified.entry),
            leaf_hash: verified.leafHash,
            checkpoint: Wire.checkpoint(verified.checkpoint),
            inclusion_proof: Wire.inclusionProof(verified.proof),
            ...(verified.anchor === undefined
              ? {}
              : { anchor_tx_id: verified.anchor.txId, anchor: Wire.anchorReceipt(verified.anchor) }),
            ...(verified.anchored === undefined
              ? {}
              : {
                  anchored: {
                    checkpoint: Wire.checkpoint(verified.anchored.checkpoint),
                    inclusion_proof: Wire.inclusionProof(verified.anchored.proof),
                    anchor: Wire.anchorReceipt(verified.anchored.anchor),
                    public_key: signerOf(verified.anchored.checkpoint.keyId)
                  }
                }),
            // After a key rotation the checkpoint may be signed by an earlier key: give the one that signed it
            public_key: signerOf(verified.checkpoint.keyId)
          })),
          mapErrors()
        )
      )
      .handle("overview", ({ query }) =>
        ledgerOverview({ limit: query.limit }).pipe(
          Effect.provideService(Ledger, ledger),
          Effect.map(Wire.ledgerOverview),
          mapErrors()
        )
      )
      .handle("keys", () =>
        Effect.succeed({
          keys: [...ledger.publicKeys].map(([keyId, publicKey]) => ({
            key_id: keyId,
            public_key: publicKey,
            signing: keyId === ledger.keyId
          }))
        })
      )
      .handle("entries", ({ query }) =>
        ledger.entries({ from: query.from, limit: query.limit }).pipe(
          Effect.map((entries) => ({ entries: entries.map(Wire.ledgerEntry) })),
          mapErrors({ "$.from": "$query.from", "$.limit": "$query.limit" })
        )
      )
      .handle("verifyAll", ({ query }) =>
        Effect.all([ledger.verifyAll({ from: query.from, to: query.to }), ledger.size]).pipe(
          Effect.map(([result, size]) => ({
            from: result.from,
            to: result.to,
            size: Math.max(size, result.to),
            entries: result.entries,
            checkpoints: result.checkpoints,
            anchors: result.anchors,
            anchors_unchecked: result.anchorsUnchecked,
            valid: result.valid,
            ...(result.mismatch === undefined ? {} : { mismatch: result.mismatch })
          })),
          mapErrors()
        )
      )
      .handle("checkpoint", () =>
        ledger.checkpoint.pipe(
          Effect.map((checkpoint) => ({ ...Wire.checkpoint(checkpoint), public_key: signerOf(checkpoint.keyId) })),
          mapErrors()
        )
      )
      .handle("consistency", ({ query }) =>
        ledger.consistencyProof(query.from, query.to).pipe(
          Effect.map((proof) => ({ old_size: proof.oldSize, new_size: proof.newSize, path: proof.path })),
          mapErrors({ "$.oldSize": "$query.from", "$.newSize": "$query.to" })
        )
      )
      .handle("anchor", () =>
        ledger.anchor.pipe(
          Effect.map((record) => ({
            checkpoint: Wire.checkpoint(record.checkpoint),
            ...(record.anchor === undefined ? {} : { anchor: Wire.anchorReceipt(record.anchor) })
          })),
          mapErrors()
        )
      )
      .handle("write", ({ payload }) =>
        anchor.publish(payload.hash, payload.size ?? 0).pipe(Effect.map(Wire.anchorReceipt), mapErrors())
      )
      .handle("tx", ({ params }) => anchor.getTx(params.txid).pipe(Effect.map(Wire.anchorReceipt), mapErrors()))
  })
)

/**
 * Both groups.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = Layer.mergeAll(PolicyHandlers, AuditHandlers)
