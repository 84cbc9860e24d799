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
import { type Cause, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { findRollback, findSqlError, Rollback } from "./internal/transaction.ts"

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
        Effect.catchCause((cause): Effect.Effect<never, E | UnitOfWorkError> => {
          const own = findRollback<E>(cause)
          if (own !== undefined) return Effect.fail(own.error)
          const failure = findSqlError(cause)
          return failure === undefined
            ? Effect.failCause(cause as Cause.Cause<never>)
            : Effect.fail(
                new UnitOfWorkError({
                  message: `The transaction failed: ${failure.message}`,
                  retryable: failure.isRetryable,
                  cause: failure
                })
              )
        }),
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
