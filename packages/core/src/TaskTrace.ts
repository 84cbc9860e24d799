/**
 * A task's trace: the span a task was started in, kept on the task and carried by its step jobs, so that the
 * spans of its steps (run later by a worker fiber, perhaps in another process) and of its completion join the
 * trace of the request that started it: HTTP request → `Runtime.start` → `Planner.plan` → `Ledger.append` →
 * `Runtime.step` … → `Runtime.complete`.
 *
 * Spans made here are coarse (one per transition or step, never per entry) and cost nothing when no tracer is
 * installed: with Effect's native tracer, whose spans nobody can observe, `span` runs the effect as it is and
 * `capture` gives `undefined`, so task records stay as they were.
 *
 * @since 0.1.0
 */
import { Effect, Schema, Tracer } from "effect"

/**
 * A W3C trace context: 32 and 16 lowercase hex digits.
 *
 * @category models
 * @since 0.1.0
 */
export const TaskTrace = Schema.Struct({
  traceId: Schema.String.check(Schema.isPattern(/^[0-9a-f]{32}$/)),
  spanId: Schema.String.check(Schema.isPattern(/^[0-9a-f]{16}$/))
})
export type TaskTrace = typeof TaskTrace.Type

const exporting = (tracer: Tracer.Tracer) => tracer !== Tracer.nativeTracer

/**
 * The current span as a `TaskTrace`, when a tracer that exports spans is installed and a span is open.
 *
 * @category constructors
 * @since 0.1.0
 */
export const capture: Effect.Effect<TaskTrace | undefined> = Effect.withFiber((fiber) => {
  if (!exporting(fiber.getRef(Tracer.Tracer))) return Effect.succeed(undefined)
  return Effect.map(Effect.option(Effect.currentSpan), (span) =>
    span._tag === "Some" && span.value.sampled ? { traceId: span.value.traceId, spanId: span.value.spanId } : undefined
  )
})

/**
 * The `trace` a job payload carries, if it carries a well-formed one (anything else is ignored: tracing never
 * fails a job).
 *
 * @category constructors
 * @since 0.1.0
 */
export const fromPayload = (payload: unknown): TaskTrace | undefined => {
  if (typeof payload !== "object" || payload === null || !("trace" in payload)) return undefined
  const trace = (payload as { readonly trace: unknown }).trace
  return isTaskTrace(trace) ? trace : undefined
}

const isTaskTrace = Schema.is(TaskTrace)

/**
 * Runs `self` in a span named `name` (a child of `parent` when given, else of the current span), only when a
 * tracer that exports spans is installed.
 *
 * @category combinators
 * @since 0.1.0
 */
export const span =
  (
    name: string,
    options?: {
      readonly parent?: TaskTrace | undefined
      readonly attributes?: Record<string, unknown> | undefined
      readonly kind?: Tracer.SpanKind | undefined
    }
  ) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.withFiber((fiber) =>
      exporting(fiber.getRef(Tracer.Tracer))
        ? Effect.withSpan(self, name, {
            ...(options?.attributes === undefined ? {} : { attributes: options.attributes }),
            ...(options?.kind === undefined ? {} : { kind: options.kind }),
            ...(options?.parent === undefined
              ? {}
              : { parent: Tracer.externalSpan({ traceId: options.parent.traceId, spanId: options.parent.spanId }) })
          })
        : self
    )
