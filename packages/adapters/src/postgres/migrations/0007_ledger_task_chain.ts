/**
 * Entry format 2: `ledger_entries.task_prev_hash`, the `taskPrevHash` of an entry of a task (the hash of the task's
 * previous entry, see core's `LedgerEntry`). Null for entries of no task and for entries written before it, which
 * hash without the field. The appender finds the task's last entry through `ledger_entries_task`.
 *
 * Released: never edit this file; add a migration.
 *
 * @since 0.2.0
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE ledger_entries ADD COLUMN task_prev_hash text`
})
