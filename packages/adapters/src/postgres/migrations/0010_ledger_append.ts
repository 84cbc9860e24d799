/**
 * `ledger_append`: one statement that locks the head row, checks what the appender assumed, and inserts the
 * entries and nodes and moves the head, so an appender holds the ledger's lock for one round trip instead of
 * three (lock and read the head, read the task's last entry, write).
 *
 * The appender computes its entries from a head it did not lock (the one its process last wrote or saw) and the
 * task's last entry as it read it. The function then, under the lock:
 * - status 1: the head is not `(p_size, p_last)`: nothing written, returns the head it locked;
 * - status 2: a task's last entry is not the `taskPrevHash` the batch's first entry of that task carries (given
 *   in `p_tasks`): nothing written;
 * - status 3: the entries end elsewhere than the head says (a tampered store): nothing written;
 * - status 0: written; returns the new head.
 * Every check is its own statement: in a VOLATILE function under READ COMMITTED each statement reads a fresh
 * snapshot, so after waiting for the lock it sees what the previous holder committed (one statement would keep
 * the snapshot from before the wait). It never raises on a lost race, so a caller inside a unit of work can
 * retry in the same transaction.
 *
 * Released: never edit this file; add a migration.
 *
 * @since 0.3.0
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE FUNCTION ledger_append(p_size bigint, p_last text, p_genesis text, p_new_last text, p_tasks text,
      p_entries text, p_nodes text, OUT o_status int, OUT o_size bigint, OUT o_last text)
    LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $$
    DECLARE
      n bigint;
    BEGIN
      SELECT h.size, h.last_hash INTO o_size, o_last FROM ledger_head h FOR UPDATE;
      IF p_size IS NOT NULL
         AND (o_size IS DISTINCT FROM p_size OR coalesce(o_last, p_genesis) IS DISTINCT FROM p_last) THEN
        o_status := 1;
        RETURN;
      END IF;
      IF p_size IS NOT NULL
         AND (SELECT coalesce(max(e.pos) + 1, 0) FROM ledger_entries e) IS DISTINCT FROM p_size THEN
        o_status := 3;
        RETURN;
      END IF;
      IF p_tasks IS NOT NULL AND EXISTS (
        SELECT 1 FROM json_to_recordset(p_tasks::json) AS t(task_id text, prev text)
        WHERE coalesce((SELECT e.entry_hash FROM ledger_entries e WHERE e.task_id = t.task_id
                        ORDER BY e.pos DESC LIMIT 1), p_genesis) IS DISTINCT FROM t.prev) THEN
        o_status := 2;
        RETURN;
      END IF;
      INSERT INTO ledger_entries
        (pos, seq, kind, task_id, task_prev_hash, step_id, principal, at, payload_hash, payload, prev_hash, entry_hash)
      SELECT r.seq, r.seq, r.kind, r.task_id, r.task_prev_hash, r.step_id, r.principal::json, r.at, r.payload_hash,
             r.payload::json, r.prev_hash, r.entry_hash
      FROM json_to_recordset(p_entries::json) AS r(seq bigint, kind text, task_id text, task_prev_hash text,
        step_id text, principal text, at float8, payload_hash text, payload text, prev_hash text, entry_hash text);
      GET DIAGNOSTICS n = ROW_COUNT;
      INSERT INTO ledger_nodes (level, idx, hash)
      SELECT r.level, r.idx, decode(r.hash, 'hex')
      FROM json_to_recordset(p_nodes::json) AS r(level smallint, idx bigint, hash text);
      IF n > 0 THEN
        o_size := p_size + n;
        o_last := p_new_last;
        UPDATE ledger_head SET size = o_size, last_hash = o_last;
      END IF;
      o_status := 0;
    END $$`
})
