/**
 * Handlers of the `remote` group: each lease operation one call into core's `RemoteSteps` (the rules: agents of
 * the pool only, lease holders only, the runtime's one settle path), and `POST /execute` a `Runtime.start` of the
 * one-step task `step.<type>`, waiting (event-driven, at most `wait_ms`) for it to end.
 *
 * @since 0.1.0
 */
import {
  type ClaimedStep,
  defaultLeaseMs,
  type RemoteSettlement,
  RemoteSteps,
  Runtime,
  singleStepKind,
  Task,
  type TaskView
} from "@mandate/core"
import { Effect, Layer, Stream } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../api/Api.ts"
import { CurrentPrincipal } from "../api/Auth.ts"
import type { ClaimedStepWire, ExecutedWire, SettlementWire } from "../api/Remote.ts"
import { mapErrors } from "./Errors.ts"
import * as Models from "./Models.ts"
import { pool } from "./Queue.ts"
import { ShuttingDown } from "./Tasks.ts"

const claimed = (s: ClaimedStep): Models.Wire<typeof ClaimedStepWire> => ({
  lease_id: s.leaseId,
  worker_id: s.workerId,
  lease_expires_at: s.leaseExpiresAt,
  task_id: s.taskId,
  step_id: s.stepId,
  type: s.type,
  attempt: s.attempt,
  idempotency_key: s.idempotencyKey,
  params: s.params
})

const settled = (s: RemoteSettlement): Models.Wire<typeof SettlementWire> => ({
  lease_id: s.leaseId,
  task_id: s.taskId,
  step_id: s.stepId,
  outcome: s.outcome,
  ...(s.error === undefined ? {} : { error: s.error })
})

const executed = (view: TaskView): Models.Wire<typeof ExecutedWire> => {
  const step = view.steps[0]
  return {
    ...Models.taskStatus(view),
    ...(step?.state === "succeeded" && step.result !== undefined ? { result: step.result } : {}),
    ...(step?.error === undefined ? {} : { error: step.error.message })
  }
}

const names = {
  "$.workerId": "$.worker_id",
  "$.leaseMs": "$.lease_ms",
  "$.extendMs": "$.extend_ms",
  "$.waitMs": "$.wait_ms"
}
const executeNames = { "$.kind": "$.step_type", "$.params": "$.parameters", "$.idempotencyKey": "$.idempotency_key" }

/**
 * @category handlers
 * @since 0.1.0
 */
export const RemoteHandlers = HttpApiBuilder.group(Api, "remote", (handlers) =>
  Effect.gen(function* () {
    const remote = yield* RemoteSteps
    const runtime = yield* Runtime
    // A long-polling claim answers when the drain begins, rather than hold the shutdown for up to wait_ms
    const shuttingDown = yield* ShuttingDown
    return handlers
      .handle("claim", ({ params, payload }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          remote.claim(
            params.pool,
            {
              workerId: payload.worker_id,
              ...(payload.max === undefined ? {} : { max: payload.max }),
              ...(payload.lease_ms === undefined ? {} : { leaseMs: payload.lease_ms }),
              ...(payload.wait_ms === undefined ? {} : { waitMs: payload.wait_ms }),
              until: shuttingDown
            },
            principal
          )
        ).pipe(
          Effect.map((steps) => ({ steps: steps.map(claimed) })),
          mapErrors(names)
        )
      )
      .handle("pool", ({ params }) =>
        remote.pool(params.pool).pipe(
          Effect.map((p) => ({
            ...pool(p),
            step_types: p.types.map((t) => ({
              type: t.type,
              ...(t.description === undefined ? {} : { description: t.description }),
              params_schema: t.paramsSchema,
              result_schema: t.resultSchema
            }))
          })),
          mapErrors()
        )
      )
      .handle("heartbeat", ({ params, payload }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          remote.heartbeat(
            { leaseId: params.lease_id, workerId: payload.worker_id },
            payload.extend_ms ?? defaultLeaseMs,
            principal
          )
        ).pipe(
          Effect.map((expiresAt) => ({ lease_id: params.lease_id, lease_expires_at: expiresAt })),
          mapErrors(names)
        )
      )
      .handle("complete", ({ params, payload }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          remote.complete({ leaseId: params.lease_id, workerId: payload.worker_id }, payload.result, principal)
        ).pipe(Effect.map(settled), mapErrors(names))
      )
      .handle("fail", ({ params, payload }) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          remote.fail(
            { leaseId: params.lease_id, workerId: payload.worker_id },
            { message: payload.error, ...(payload.retryable === undefined ? {} : { retryable: payload.retryable }) },
            principal
          )
        ).pipe(Effect.map(settled), mapErrors(names))
      )
      .handle("execute", ({ payload }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const task = yield* runtime.start(
            {
              kind: singleStepKind(payload.step_type),
              params: payload.parameters,
              ...(payload.priority === undefined ? {} : { priority: payload.priority }),
              ...(payload.idempotency_key === undefined ? {} : { idempotencyKey: payload.idempotency_key })
            },
            principal
          )
          const waitMs = payload.wait_ms ?? 0
          if (waitMs > 0) {
            // Wait for the task's end on its events (no polling), at most wait_ms
            yield* Effect.scoped(
              Effect.gen(function* () {
                const { view, events } = yield* runtime.watch(task.id, principal)
                if (Task.isTerminal(view.task.state)) return
                yield* events.pipe(
                  Stream.takeUntil((e) => Task.isTerminal(e.state as Task.TaskState)),
                  Stream.runDrain
                )
              })
            ).pipe(Effect.timeoutOption(waitMs))
          }
          const view = yield* runtime.get(task.id, principal)
          const stalled = yield* remote.stalled(view)
          return { ...executed(view), ...Models.taskStatus(view, stalled) }
        }).pipe(mapErrors(executeNames))
      )
  })
)

/**
 * The `remote` group, over core's `RemoteSteps` rules.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = RemoteHandlers.pipe(Layer.provide(RemoteSteps.layer))
