/**
 * `UnitOfWork` on Postgres: a unit is one database transaction (`sql.withTransaction`).
 *
 * Every Postgres store runs its statements through the same `SqlClient`, and `withTransaction` hands the
 * transaction's connection to everything run inside it, so stores enlist without knowing: a runtime transition
 * (task and step states, the jobs it enqueues, its ledger entries) commits or rolls back as a whole. A unit
 * inside a unit becomes a savepoint: its failure rolls back only its own writes, and the outer unit decides.
 * Effects deferred with `afterCommit` run after the outermost transaction's COMMIT returned.
 *
 * @since 0.1.0
 */
import { UnitOfWork, UnitOfWorkError } from "@mandate/core"
import { Effect, Layer } from "effect"
import { SqlClient, type SqlError } from "effect/sql"

// Carries the unit's own failure through withTransaction (which rolls back on it), so that it can be told apart
// from the SqlError of BEGIN or COMMIT on the way out
class Rollback<E> {
  readonly error: E
  constructor(error: E) {
    this.error = error
  }
}

/**
 * Builds the unit of work over the `SqlClient` in context.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeUnitOfWork: Effect.Effect<UnitOfWork["Service"], never, SqlClient.SqlClient> = Effect.map(
  SqlClient.SqlClient,
  (sql) =>
    UnitOfWork.make(<A, E, R>(effect: Effect.Effect<A, E, R>) =>
      sql.withTransaction(Effect.mapError(effect, (error) => new Rollback(error))).pipe(
        Effect.catch((failure: Rollback<E> | SqlError.SqlError) =>
          failure instanceof Rollback
            ? Effect.fail<E | UnitOfWorkError>(failure.error)
            : Effect.fail(
                new UnitOfWorkError({
                  message: `The transaction failed: ${failure.message}`,
                  retryable: failure.isRetryable,
                  cause: failure
                })
              )
        ),
        Effect.withSpan("UnitOfWork.run")
      )
    )
)

/**
 * The transactional unit of work over the shared `SqlClient`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerUnitOfWork: Layer.Layer<UnitOfWork, never, SqlClient.SqlClient> = Layer.effect(
  UnitOfWork,
  makeUnitOfWork
)
