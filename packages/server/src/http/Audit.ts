/**
 * Handlers of the `audit` group (`api/Audit.ts`): each one call into `Ledger` or `Anchor`, with the group's own
 * wire shapes (a task's evidence, the ledger's overview).
 *
 * @since 0.1.0
 */
import {
  Anchor,
  Ledger,
  type LedgerOverview,
  ledgerOverview,
  recordHostEntry,
  type TaskEvidence,
  TaskStore,
  taskBundle,
  taskEntries,
  taskEvidence
} from "@mandate/core"
import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../api/Api.ts"
import type { LedgerOverviewWire, TaskEvidenceWire } from "../api/Audit.ts"
import { CurrentPrincipal } from "../api/Auth.ts"
import { mapErrors } from "./Errors.ts"
import * as Models from "./Models.ts"

/**
 * @category mapping
 * @since 0.1.0
 */
export const evidence = (e: TaskEvidence): Models.Wire<typeof TaskEvidenceWire> => ({
  task_id: e.taskId,
  entries: e.entries.map(Models.ledgerEntry),
  checkpoint: Models.checkpoint(e.checkpoint),
  proofs: e.proofs.map(Models.inclusionProof),
  ...Models.optional(
    "anchored",
    e.anchored === undefined
      ? undefined
      : {
          checkpoint: Models.checkpoint(e.anchored.checkpoint),
          anchor: Models.anchorReceipt(e.anchored.anchor),
          proofs: e.anchored.proofs.map((p) => (p === null ? null : Models.inclusionProof(p)))
        }
  ),
  public_key: e.publicKey,
  key_id: e.keyId
})

/**
 * @category mapping
 * @since 0.1.0
 */
export const overview = (o: LedgerOverview): Models.Wire<typeof LedgerOverviewWire> => ({
  size: o.size,
  checkpoints: o.checkpoints.map((r) => ({
    checkpoint: Models.checkpoint(r.checkpoint),
    ...Models.optional("anchor", r.anchor === undefined ? undefined : Models.anchorReceipt(r.anchor))
  })),
  checkpoint_count: o.checkpointCount,
  anchored_count: o.anchoredCount,
  public_key: o.publicKey,
  key_id: o.keyId
})

/**
 * @category handlers
 * @since 0.1.0
 */
export const layer = HttpApiBuilder.group(Api, "audit", (handlers) =>
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
          Effect.map((entries) => ({ task_id: params.task_id, entries: entries.map(Models.ledgerEntry) })),
          mapErrors()
        )
      )
      .handle("evidence", ({ params }) =>
        Effect.flatMap(CurrentPrincipal, (principal) => taskEvidence(params.task_id, principal)).pipe(
          Effect.provideService(Ledger, ledger),
          Effect.provideService(TaskStore, tasks),
          Effect.map(evidence),
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
            entry: Models.ledgerEntry(verified.entry),
            leaf_hash: verified.leafHash,
            checkpoint: Models.checkpoint(verified.checkpoint),
            inclusion_proof: Models.inclusionProof(verified.proof),
            ...(verified.anchor === undefined
              ? {}
              : { anchor_tx_id: verified.anchor.txId, anchor: Models.anchorReceipt(verified.anchor) }),
            ...(verified.anchored === undefined
              ? {}
              : {
                  anchored: {
                    checkpoint: Models.checkpoint(verified.anchored.checkpoint),
                    inclusion_proof: Models.inclusionProof(verified.anchored.proof),
                    anchor: Models.anchorReceipt(verified.anchored.anchor),
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
          Effect.map(overview),
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
          Effect.map((entries) => ({ entries: entries.map(Models.ledgerEntry) })),
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
          Effect.map((checkpoint) => ({ ...Models.checkpoint(checkpoint), public_key: signerOf(checkpoint.keyId) })),
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
            checkpoint: Models.checkpoint(record.checkpoint),
            ...(record.anchor === undefined ? {} : { anchor: Models.anchorReceipt(record.anchor) })
          })),
          mapErrors()
        )
      )
      .handle("write", ({ payload }) =>
        anchor.publish(payload.hash, payload.size ?? 0).pipe(Effect.map(Models.anchorReceipt), mapErrors())
      )
      .handle("tx", ({ params }) => anchor.getTx(params.txid).pipe(Effect.map(Models.anchorReceipt), mapErrors()))
  })
)
