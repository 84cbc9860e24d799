/**
 * The ledger's head in one row (`ledger_head`: size and last entry hash), which appenders lock.
 *
 * An appender used to take an advisory lock, then read the head from `ledger_entries`: two round trips while
 * every other appender waits. Locking this row (`SELECT … FOR UPDATE`) does both at once: under READ COMMITTED
 * a row lock that had to wait returns the row as the previous holder committed it. `write` moves the head in the
 * statement that inserts the entries. The head is bookkeeping, not evidence: the ledger still re-hashes entries
 * and nodes, and a head that disagreed with the entries would only make appends fail (each insert checks that
 * its first entry is the next position).
 *
 * Released: never edit this file; add a migration.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE ledger_head (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    size bigint NOT NULL CHECK (size >= 0),
    last_hash text
  )`
  yield* sql`INSERT INTO ledger_head (size, last_hash)
    SELECT coalesce(max(pos) + 1, 0), (SELECT entry_hash FROM ledger_entries ORDER BY pos DESC LIMIT 1)
    FROM ledger_entries`
})
