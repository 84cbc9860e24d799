/**
 * `ledger_pending`: entries a unit of work recorded (core's `Ledger.record`) that the sequencer has not integrated
 * yet. A unit inserts its entries here in its own transaction, without reading or locking the head; the
 * sequencer (one at a time, see the Postgres `LedgerStore`) moves them into `ledger_entries` in staging order,
 * in a transaction that deletes them, so each is integrated exactly once, also across crashes.
 *
 * - `batch` comes from `ledger_pending_batch`, once per staging statement, and `ord` is the entry's place in it:
 *   a unit that commits before another stages gets a smaller `batch`, so a task's entries keep their order.
 * - `principal` and `payload` are canonical JSON text, exactly as the ledger hashed `payloadHash` from it.
 *
 * Released: never edit this file; add a migration.
 *
 * @since 0.4.0
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE SEQUENCE ledger_pending_batch`
  yield* sql`CREATE TABLE ledger_pending (
    batch bigint NOT NULL,
    ord int NOT NULL CHECK (ord >= 0),
    kind text NOT NULL,
    task_id text,
    step_id text,
    principal text,
    payload text NOT NULL,
    payload_hash text NOT NULL,
    store_payload boolean NOT NULL,
    PRIMARY KEY (batch, ord)
  )`
})
