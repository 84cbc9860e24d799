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
import { CurrentStaged, emptyStaged, flushStaged } from "./internal/stagedEntries.ts"
import { findRollback, findSqlError, Rollback, runAlone } from "./internal/transaction.ts"

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
      Effect.flatMap(Effect.service(CurrentStaged), (parent) =>
        // The unit holds the ledger entries it stages (see `internal/stagedEntries.ts`). An outermost unit writes
        // what no task write took as its last statement (alone, without BEGIN and COMMIT, when it is the only
        // one); an inner unit hands what it holds to its parent when it succeeds and drops it when it fails. What
        // the parent held is written before the inner unit starts, so entries reach the table in recording order
        Effect.andThen(
          parent !== undefined && parent.entries.length > 0 ? flushStaged(sql) : Effect.void,
          sql.withTransaction(
            Effect.suspend(() => {
              const held = emptyStaged()
              const end =
                parent === undefined
                  ? runAlone(sql, flushStaged(sql))
                  : Effect.sync(() => {
                      if (held.entries.length === 0) return
                      parent.schema = held.schema
                      for (const e of held.entries) parent.entries.push(e)
                    })
              return Effect.mapError(effect, (error) => new Rollback(error)).pipe(
                Effect.tap(end),
                Effect.provideService(CurrentStaged, held)
              )
            })
          )
        )
      ).pipe(
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
