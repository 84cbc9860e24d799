/**
 * Step handlers: the code that executes each step type, registered by host apps.
 *
 * A handler declares its params and result schemas (params decode from the plan's JSON, results encode back
 * to JSON for the ledger and the task record), an optional per-attempt timeout, and `run`. It fails with
 * `StepError`; `retryable: false` skips the queue's retries and fails the step at once. Handlers may require
 * services (an HTTP client, the Anchor…): the `StepHandlers` layer captures them when it is built.
 *
 * A step type can also be declared **remote** (`remoteStep`, `asRemoteStep`): it names a pool instead of running here. The
 * runtime routes its jobs to that pool's reserved queue (`mandate.pool.<pool>`), and the pool's agents claim and
 * settle them through `RemoteSteps`; the declaration's params and result schemas still decode both ends, exactly
 * as for an in-process handler.
 *
 * @since 0.1.0
 */
import { Context, type Duration, Effect, Layer, Option, Schema } from "effect"
import type { PlannedStep } from "./Plan.ts"
import type { Task } from "./Task.ts"

/**
 * A handler's failure. Retryable by default.
 *
 * @category errors
 * @since 0.1.0
 */
export class StepError extends Schema.TaggedError<StepError>()("StepError", {
  message: Schema.String,
  retryable: Schema.Boolean,
  details: Schema.optionalKey(Schema.Json)
}) {
  /**
   * A failure that retrying will not fix (bad data, a refused transfer).
   */
  static permanent(message: string, details?: Schema.Json): StepError {
    return new StepError(details === undefined ? { message, retryable: false } : { message, retryable: false, details })
  }
  /**
   * A failure worth retrying (a timeout, an unavailable service).
   */
  static transient(message: string, details?: Schema.Json): StepError {
    return new StepError(details === undefined ? { message, retryable: true } : { message, retryable: true, details })
  }
}

/**
 * What a handler knows about the step it runs.
 *
 * @category models
 * @since 0.1.0
 */
export interface StepContext {
  readonly task: Task
  readonly step: PlannedStep
  /** 1 for the first attempt. */
  readonly attempt: number
  /** Stable across every attempt and retry of this step: pass it to external systems to deduplicate effects. */
  readonly idempotencyKey: string
  /** Records an artifact or note in the ledger, linked to this task and step (kind e.g. `step.note`). */
  readonly record: (kind: string, payload: Schema.Json) => Effect.Effect<void, StepError>
}

/**
 * @category models
 * @since 0.1.0
 */
export interface StepHandler<P = any, A = any, R = never> {
  readonly type: string
  readonly description?: string | undefined
  readonly params: Schema.Codec<P, any>
  readonly result: Schema.Codec<A, any>
  /** Per-attempt timeout; a timed-out attempt is a retryable failure. */
  readonly timeout?: Duration.Input | undefined
  readonly run: (params: P, ctx: StepContext) => Effect.Effect<A, StepError, R>
  /** Set on a remote step type: the pool whose agents run it (its `run` is never called in process). */
  readonly pool?: string | undefined
  /**
   * On a remote step type: the principals whose agents may serve its pool (with the `agent` role). A remote pool
   * none of whose step types names principals is served by admins' agents only: secure by default.
   */
  readonly principals?: ReadonlyArray<string> | undefined
}

/**
 * A remote step type's declaration: its schemas and the pool that runs it.
 *
 * @category models
 * @since 0.1.0
 */
export interface RemoteStep<P = any, A = any> {
  readonly type: string
  readonly description?: string | undefined
  readonly params: Schema.Codec<P, any>
  readonly result: Schema.Codec<A, any>
  readonly pool: string
  /** The principals whose agents may serve the pool (none named: admins' agents only). */
  readonly principals?: ReadonlyArray<string> | undefined
}

/**
 * Declares a remote step type: the runtime never runs it in process; it routes its jobs to `pool`, whose agents
 * claim them with the params the `params` schema decoded and complete them with a result the `result` schema must
 * decode.
 *
 * @category constructors
 * @since 0.1.0
 */
export const remoteStep = <P, A>(declaration: RemoteStep<P, A>): StepHandler<P, A, never> => ({
  ...declaration,
  // Only reachable if the handler is run outside the runtime (the runtime's workers never claim a pool's queue)
  run: () => Effect.fail(StepError.permanent(`step type ${declaration.type} runs on remote pool ${declaration.pool}`))
})

/**
 * The same step type (same schemas), run remotely by `pool` instead: how a configuration moves a known step type,
 * e.g. the seed's `onchain_action`, to agents holding the keys.
 *
 * @category constructors
 * @since 0.1.0
 */
export const asRemoteStep = <P, A>(
  handler: StepHandler<P, A, any>,
  pool: string,
  principals?: ReadonlyArray<string>
): StepHandler<P, A, never> =>
  remoteStep({
    type: handler.type,
    ...(handler.description === undefined ? {} : { description: handler.description }),
    params: handler.params,
    result: handler.result,
    pool,
    ...(principals === undefined ? {} : { principals })
  })

/**
 * Whether a handler is a remote step type's declaration.
 *
 * @category predicates
 * @since 0.1.0
 */
export const isRemoteStep = (handler: StepHandler<any, any, any>): boolean => handler.pool !== undefined

/**
 * Defines a handler (keeps its types).
 *
 * @category constructors
 * @since 0.1.0
 */
export const handler = <P, A, R = never>(definition: StepHandler<P, A, R>): StepHandler<P, A, R> => definition

type Requirements<H> = H extends StepHandler<any, any, infer R> ? R : never

/**
 * The registry of handlers by step type.
 *
 * @category services
 * @since 0.1.0
 */
export class StepHandlers extends Context.Service<
  StepHandlers,
  {
    readonly get: (type: string) => Option.Option<StepHandler<any, any, never>>
    readonly all: ReadonlyArray<StepHandler<any, any, never>>
  }
>()("@mandate/core/StepHandlers") {
  /**
   * Registers handlers (a later handler of the same type replaces an earlier one). The services the handlers
   * require are captured from the layer's context.
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layer = <const Hs extends ReadonlyArray<StepHandler<any, any, any>>>(
    handlers: Hs
  ): Layer.Layer<StepHandlers, never, Requirements<Hs[number]>> =>
    Layer.effect(
      StepHandlers,
      Effect.map(Effect.context<Requirements<Hs[number]>>(), (context) => {
        const byType = new Map<string, StepHandler<any, any, never>>()
        for (const h of handlers) {
          const run = (params: unknown, ctx: StepContext) =>
            Effect.provideContext(
              h.run(params, ctx) as Effect.Effect<unknown, StepError, Requirements<Hs[number]>>,
              context
            )
          byType.set(h.type, { ...h, run })
        }
        return StepHandlers.of({ get: (type) => Option.fromNullishOr(byType.get(type)), all: [...byType.values()] })
      })
    )
}

/**
 * Every remote pool with the principals whose agents may serve it (the union over its step types' `principals`;
 * empty: only admins' agents).
 *
 * @category computations
 * @since 0.1.0
 */
export const poolServers = (
  handlers: ReadonlyArray<StepHandler<any, any, any>>
): ReadonlyMap<string, ReadonlySet<string>> => {
  const out = new Map<string, Set<string>>()
  for (const h of handlers) {
    if (h.pool === undefined) continue
    const set = out.get(h.pool) ?? new Set<string>()
    for (const p of h.principals ?? []) set.add(p)
    out.set(h.pool, set)
  }
  return out
}

/**
 * Why a principal may not serve a remote pool, for `Forbidden`.
 *
 * @category computations
 * @since 0.1.0
 */
export const notServing = (pool: string, allowed: ReadonlySet<string>): string =>
  allowed.size === 0
    ? `pool ${pool} names no principals to serve it (MANDATE_POOL_PRINCIPALS, or principals in its declaration)`
    : `pool ${pool} is served by the agents of ${[...allowed].sort().join(", ")} only`
