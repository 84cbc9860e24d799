/**
 * Telling a unit's own failure from the database's when it comes out of `sql.withTransaction`.
 *
 * @internal
 */
import { Cause } from "effect"
import { SqlError } from "effect/sql"

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
