/**
 * `UnitOfWork` on Redis: a unit's writes through the Redis stores (the task's compare-and-set, the jobs it
 * enqueues, completes, fails or cancels, its ledger entries, plans, policy sets published or activated) take effect
 * together or not at all.
 *
 * While a unit runs, the stores on the same `Redis` gather their writes instead of making them, each checked at
 * once against what Redis holds (a stale version fails the unit with `VersionConflict` right there) and guarded on
 * what the check read. The commit is one Lua script: it checks every guard and then runs every gathered write, so
 * other clients see none of the unit before it and all of it after, and a process killed mid-unit leaves nothing.
 * When a guard no longer holds (another process wrote first), nothing was written and the unit runs again from the
 * start, a few dozen times at most before it fails with a retryable `UnitOfWorkError`. A unit inside a unit joins
 * it, and its failure drops only what it gathered (a savepoint). Effects deferred with `afterCommit` run after the
 * commit script returned.
 *
 * Inside a unit, reads see the unit's own task records, plans, ledger head and policy sets (`get`, `active`); queue
 * reads (`get`, `list`) and the policy list see Redis as committed. Gathered writes are the task store's `create`,
 * `save` and `putPlan`, the queue's `enqueue`, `enqueueBatch`, `complete`, `fail` and `cancel`, ledger appends, and
 * the policy store's `publish` and `activate`; the other queue writes (`claim`, `start`, `heartbeat`, `release`,
 * `retryDeadLettered`), the agent registry, checkpoints and anchor receipts write at once, each atomic alone. Stores on another backend, or on another Redis, write at once as usual.
 *
 * @since 0.1.0
 */
import { UnitOfWork, UnitOfWorkError } from "@mandate/core"
import { Effect, Layer } from "effect"
import { Redis } from "effect/persistence"
import { ledgerOperations } from "./Ledger.ts"
import { policyStoreOperations } from "./PolicyStore.ts"
import { queueOperations } from "./Queue.ts"
import { taskStoreOperations } from "./TaskStore.ts"
import { CommitConflict, makeCommitter, runUnit, savepoint, unitOf } from "./Unit.ts"

// A unit that keeps losing to other writers fails after this many runs (each one saw the others' commits)
const conflictRetries = 50

const isConflict = (error: unknown): boolean =>
  error instanceof UnitOfWorkError && error.cause instanceof CommitConflict

/**
 * Builds the unit of work over the `Redis` service in context.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeUnitOfWork: Effect.Effect<UnitOfWork["Service"], never, Redis.Redis> = Effect.map(
  Redis.Redis,
  (redis) => {
    const committer = makeCommitter(redis, {
      ...taskStoreOperations,
      ...queueOperations(),
      ...ledgerOperations,
      ...policyStoreOperations
    })
    const transaction = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | UnitOfWorkError, R> =>
      Effect.flatMap(unitOf(redis), (unit) => {
        if (unit !== undefined) {
          const restore = savepoint(unit)
          return Effect.onError(effect, () => Effect.sync(restore))
        }
        return runUnit(redis, committer, effect).pipe(
          Effect.catch(
            (error): Effect.Effect<never, E | UnitOfWorkError> =>
              error instanceof CommitConflict
                ? Effect.fail(
                    new UnitOfWorkError({
                      message: `Another writer changed ${error.key} (${error.field}) first; nothing was written`,
                      retryable: true,
                      cause: error
                    })
                  )
                : error instanceof Redis.RedisError
                  ? Effect.fail(
                      new UnitOfWorkError({
                        // the reply was lost: the script may or may not have run
                        message: `The commit failed: ${error.message}`,
                        retryable: false,
                        cause: error
                      })
                    )
                  : Effect.fail(error as E)
          ),
          Effect.withSpan("UnitOfWork.run")
        )
      })
    const base = UnitOfWork.make(transaction)
    return UnitOfWork.of({
      run: (effect) =>
        Effect.flatMap(unitOf(redis), (unit) =>
          unit !== undefined
            ? base.run(effect)
            : base.run(effect).pipe(
                Effect.retry({
                  while: isConflict,
                  times: conflictRetries
                })
              )
        ),
      afterCommit: base.afterCommit
    })
  }
)

/**
 * The unit of work over the shared `Redis`: provide it with the Redis task store, queue and ledger store.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerUnitOfWork: Layer.Layer<UnitOfWork, never, Redis.Redis> = Layer.effect(UnitOfWork, makeUnitOfWork)
