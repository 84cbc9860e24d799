/**
 * The transaction boundary. The runtime wraps each state transition (task and step states, the jobs it
 * enqueues, the ledger entries it appends) in `UnitOfWork.run`, so that on one database they commit together.
 *
 * The memory layer is a lock: transitions run one at a time, so no reader sees half of one. (The runtime
 * computes and validates a transition before it writes, so memory writes inside a unit do not fail halfway.)
 * The Postgres layer wraps `sql.withTransaction`; stores on the same `SqlClient` are enlisted automatically.
 * With stores on different backends there is no common transaction: steps are at-least-once and handlers get
 * an idempotency key.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Schema, Semaphore } from "effect"

/**
 * The unit itself could not be carried out: the backend failed to begin or commit it (connection lost,
 * serialization failure, deadlock). None of the unit's writes took effect. `retryable` says whether running the
 * same unit again may succeed (e.g. a serialization failure or deadlock); the memory layer never fails this way.
 *
 * @category errors
 * @since 0.1.0
 */
export class UnitOfWorkError extends Schema.TaggedError<UnitOfWorkError>()("UnitOfWorkError", {
  message: Schema.String,
  retryable: Schema.Boolean,
  cause: Schema.Defect()
}) {}

// Set inside a memory unit, so a nested unit joins the outer one instead of waiting on its own lock
const InsideUnit = Context.Reference<boolean>("@mandate/core/UnitOfWork/InsideUnit", { defaultValue: () => false })

/**
 * @category services
 * @since 0.1.0
 */
export class UnitOfWork extends Context.Service<
  UnitOfWork,
  {
    /**
     * Runs `effect` as one unit: all its store writes take effect together, or (where the backend can) none.
     * Fails with the effect's own error (after rolling back), or with `UnitOfWorkError` when the backend could
     * not begin or commit the unit.
     */
    readonly run: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | UnitOfWorkError, R>
  }
>()("@mandate/core/UnitOfWork") {
  /**
   * A process-wide lock (re-entrant: a unit inside a unit joins it, as a savepoint would).
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layerMemory: Layer.Layer<UnitOfWork> = Layer.effect(
    UnitOfWork,
    Effect.map(Semaphore.make(1), (lock) =>
      UnitOfWork.of({
        run: (effect) =>
          Effect.gen(function* () {
            const inside = yield* InsideUnit
            return yield* inside ? effect : lock.withPermits(1)(Effect.provideService(effect, InsideUnit, true))
          })
      })
    )
  )
}
