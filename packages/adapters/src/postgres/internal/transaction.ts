/**
 * Telling a unit's own failure from the database's when it comes out of `sql.withTransaction`.
 *
 * @internal
 */
import { Cause, Effect } from "effect"
import { type SqlClient, SqlError } from "effect/sql"

/**
 * Carries the unit's own failure through withTransaction (which rolls back on it), so that it can be told apart
 * from the SqlError of BEGIN or COMMIT on the way out.
 *
 * @internal
 */
export class Rollback<E> {
  readonly error: E
  constructor(error: E) {
    this.error = error
  }
}

// When ROLLBACK fails too (the connection was lost mid-unit, e.g. its backend terminated), `withTransaction`
// reports the unit's failure and the ROLLBACK's SqlError as defects. Postgres has rolled the transaction back
// with the connection, so both are still ordinary failures: the unit's own error, or a retryable store error.
const valuesOf = (cause: Cause.Cause<unknown>): Array<unknown> =>
  cause.reasons.flatMap((reason) =>
    Cause.isFailReason(reason) ? [reason.error] : Cause.isDieReason(reason) ? [reason.defect] : []
  )

/**
 * The unit's own failure carried through `withTransaction`, whether it came out as a failure or a defect.
 *
 * @internal
 */
export const findRollback = <E>(cause: Cause.Cause<unknown>): Rollback<E> | undefined =>
  valuesOf(cause).find((value): value is Rollback<E> => value instanceof Rollback)

/**
 * The first `SqlError` of BEGIN, COMMIT or ROLLBACK, failure or defect.
 *
 * @internal
 */
export const findSqlError = (cause: Cause.Cause<unknown>): SqlError.SqlError | undefined =>
  valuesOf(cause).find(SqlError.isSqlError)

/**
 * The control statements a transaction owes the database before its next statement (see `Backend.ts`).
 *
 * @internal
 */
export interface Deferred {
  // BEGIN (or the custom statement) not sent yet; `undefined` once sent
  begin: string | undefined
  beginCustom: boolean
  // savepoints taken but not sent yet, oldest first
  savepoints: Array<number>
  // the next statement may run alone (see `runAlone`); set when it did, so COMMIT is skipped
  alone: "no" | "next" | "done"
}
/** @internal */
export const deferredKey: unique symbol = Symbol.for("@mandate/adapters/postgres/DeferredTransaction")

/** @internal */
export const deferredOf = (conn: unknown): Deferred | undefined =>
  (conn as unknown as { readonly [deferredKey]?: Deferred })[deferredKey]

/**
 * Inside a Postgres transaction that has sent nothing yet (no BEGIN, no statement), runs `effect`'s one statement
 * without BEGIN: a single statement is atomic alone, and the transaction then skips COMMIT. Only for the last
 * statement of an outermost unit (a statement after it fails). Elsewhere runs `effect` as it is.
 *
 * @internal
 */
export const runAlone = <A, E, R>(sql: SqlClient.SqlClient, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.serviceOption(sql.transactionService), (current) => {
    if (current._tag === "None" || current.value[1] !== 0) return effect
    const deferred = deferredOf(current.value[0])
    if (deferred === undefined || deferred.begin === undefined || deferred.alone !== "no") return effect
    deferred.alone = "next"
    return Effect.ensuring(
      effect,
      Effect.sync(() => {
        if (deferred.alone === "next") deferred.alone = "no"
      })
    )
  })
