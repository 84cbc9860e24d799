/**
 * The transaction boundary. The runtime wraps each state transition (task and step states, the jobs it
 * enqueues, the ledger entries it appends) in `UnitOfWork.run`, so that on one database they commit together.
 *
 * The memory layer is a lock: units run one at a time, so no other unit sees half of one, and the memory stores
 * register how to undo their writes (`onRollback`: task records, enqueued jobs, ledger entries), so a unit that
 * fails leaves none of them behind.
 * The Postgres layer wraps `sql.withTransaction`; stores on the same `SqlClient` are enlisted automatically.
 * With stores on different backends there is no common transaction: steps are at-least-once and handlers get
 * an idempotency key.
 *
 * `afterCommit` defers an effect (publishing events, waking workers) until the outermost unit has committed, so
 * that nobody hears of a change before its data can be read; a unit that fails drops its deferred effects. A
 * backend builds its layer with `UnitOfWork.make`, which keeps these rules once for every backend.
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

// The unit running in this fiber (undefined outside a unit): the effects it deferred and the undo actions of the
// in-process writes it made. A nested unit collects its own and hands them to its parent only if it succeeds, so a
// rolled-back savepoint publishes nothing and undoes only its own writes.
interface Pending {
  readonly deferred: Array<Effect.Effect<void>>
  readonly undo: Array<() => void>
}
const Pending = Context.Reference<Pending | undefined>("@mandate/core/UnitOfWork/Pending", {
  defaultValue: () => undefined
})

// Undoes in reverse order, once (a unit may fail in its body and again at commit)
const undoAll = (pending: Pending): Effect.Effect<void> =>
  Effect.sync(() => {
    const actions = pending.undo.splice(0)
    for (let i = actions.length - 1; i >= 0; i--) actions[i]!()
  })

const runDeferred = (effects: ReadonlyArray<Effect.Effect<void>>): Effect.Effect<void> =>
  effects.length === 0 ? Effect.void : Effect.forEach(effects, (effect) => effect, { discard: true })

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
    /**
     * Runs `effect` once the outermost unit around the caller has committed (at once outside a unit); dropped if
     * that unit fails. Deferred effects run in the order they were deferred, in the committing fiber.
     */
    readonly afterCommit: (effect: Effect.Effect<void>) => Effect.Effect<void>
  }
>()("@mandate/core/UnitOfWork") {
  /**
   * A unit of work over a backend's transaction: `transaction(effect)` runs `effect` in one transaction (joining
   * an enclosing one, e.g. as a savepoint) and commits it. `make` adds re-entrancy bookkeeping and `afterCommit`.
   * `deferredInside` (default false) says that `transaction` is a lock rather than a database transaction, so
   * deferred effects run before the lock is released: units then publish strictly in commit order.
   *
   * @category constructors
   * @since 0.1.0
   */
  static readonly make = (
    transaction: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | UnitOfWorkError, R>,
    options?: { readonly deferredInside?: boolean | undefined }
  ): UnitOfWork["Service"] => {
    const inside = options?.deferredInside ?? false
    return UnitOfWork.of({
      run: <A, E, R>(effect: Effect.Effect<A, E, R>) =>
        Effect.flatMap(Pending, (parent) => {
          const pending: Pending = { deferred: [], undo: [] }
          const undo = undoAll(pending)
          const body = Effect.onError(Effect.provideService(effect, Pending, pending), () => undo)
          if (parent !== undefined) {
            // Joins the enclosing unit: its deferred effects wait for the outermost commit, and its writes are
            // undone with the enclosing unit's if that one fails
            return Effect.tap(
              Effect.onError(transaction(body), () => undo),
              () =>
                Effect.sync(() => {
                  parent.deferred.push(...pending.deferred)
                  parent.undo.push(...pending.undo)
                })
            )
          }
          return inside
            ? transaction(Effect.tap(body, () => runDeferred(pending.deferred)))
            : Effect.tap(
                Effect.onError(transaction(body), () => undo),
                () => runDeferred(pending.deferred)
              )
        }),
      afterCommit: (effect) =>
        Effect.flatMap(Pending, (pending) =>
          pending === undefined ? effect : Effect.sync(() => void pending.deferred.push(effect))
        )
    })
  }

  /**
   * Registers how to undo an in-process write made inside the unit running in this fiber: run (in reverse order
   * of registration) if that unit fails, dropped once the outermost unit commits; nothing outside a unit. The
   * memory stores use it, so a memory unit whose write in the middle fails leaves none of its writes behind, as a
   * database transaction would. Custom in-process stores may use it too.
   *
   * @category constructors
   * @since 0.1.0
   */
  static readonly onRollback = (undo: () => void): Effect.Effect<void> =>
    Effect.flatMap(Pending, (pending) =>
      pending === undefined ? Effect.void : Effect.sync(() => void pending.undo.push(undo))
    )

  /**
   * Runs `effect` once the unit running in this fiber has committed (at once outside a unit), without the
   * service: what `afterCommit` does, for in-process stores built without one. The memory queue wakes its
   * workers this way, so none claims a job whose unit has not committed.
   *
   * @category constructors
   * @since 0.1.0
   */
  static readonly afterCommitUnsafe = (effect: Effect.Effect<void>): Effect.Effect<void> =>
    Effect.flatMap(Pending, (pending) =>
      pending === undefined ? effect : Effect.sync(() => void pending.deferred.push(effect))
    )

  /**
   * A process-wide lock (re-entrant: a unit inside a unit joins it, as a savepoint would).
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layerMemory: Layer.Layer<UnitOfWork> = Layer.effect(
    UnitOfWork,
    Effect.map(Semaphore.make(1), (lock) => {
      // Held by the outermost unit only: a nested unit is already inside the lock
      const transaction = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
        Effect.flatMap(Pending, (parent) => (parent === undefined ? lock.withPermits(1)(effect) : effect))
      return UnitOfWork.make(transaction, { deferredInside: true })
    })
  )
}
