/**
 * The audit ledger's storage (the `LedgerStore`): entries, Merkle nodes, checkpoints and anchor receipts.
 *
 * - `ledger_entries`: one row per entry at its position `pos` (its leaf index). Every field of the entry is a
 *   column (`payload` and `principal` as `json`, exactly as written), so every stored value is part of what the
 *   ledger re-hashes: no column can change unnoticed. `seq` is the entry's own field (equal to `pos` unless
 *   someone rewrote it). Indexed by `entry_hash` and by `(task_id, pos)` for the ledger's lookups.
 * - `ledger_nodes`: every completed perfect Merkle subtree by `(level, idx)` (RFC 9162 node hashes), fewer than
 *   two per entry, so a root or a proof is O(log n) primary-key reads.
 * - `ledger_checkpoints`: one signed checkpoint per tree size; `ledger_anchors`: its anchor receipt, replaced as
 *   the transaction confirms.
 *
 * Entries, nodes and checkpoints are append-only: triggers refuse UPDATE, DELETE and TRUNCATE whoever runs them
 * (only a table owner who disables the triggers, as the tamper tests do, can change them). Anchor receipts may be
 * updated, never deleted.
 *
 * Released: never edit this file; add a migration.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE ledger_entries (
    pos bigint PRIMARY KEY CHECK (pos >= 0),
    seq bigint NOT NULL,
    kind text NOT NULL,
    task_id text,
    step_id text,
    principal json,
    at double precision NOT NULL,
    payload_hash text NOT NULL,
    payload json,
    prev_hash text NOT NULL,
    entry_hash text NOT NULL
  )`
  yield* sql`CREATE INDEX ledger_entries_hash ON ledger_entries (entry_hash)`
  yield* sql`CREATE INDEX ledger_entries_task ON ledger_entries (task_id, pos) WHERE task_id IS NOT NULL`
  yield* sql`CREATE TABLE ledger_nodes (
    level smallint NOT NULL CHECK (level >= 0),
    idx bigint NOT NULL CHECK (idx >= 0),
    hash bytea NOT NULL CHECK (octet_length(hash) = 32),
    PRIMARY KEY (level, idx)
  )`
  yield* sql`CREATE TABLE ledger_checkpoints (
    size bigint PRIMARY KEY CHECK (size >= 0),
    root text NOT NULL,
    "timestamp" double precision NOT NULL,
    signature text NOT NULL,
    key_id text NOT NULL
  )`
  yield* sql`CREATE TABLE ledger_anchors (
    size bigint PRIMARY KEY REFERENCES ledger_checkpoints (size),
    receipt json NOT NULL
  )`
  yield* sql`CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
    BEGIN
      RAISE EXCEPTION 'the ledger is append-only (% on % refused)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
    END $$`
  for (const table of ["ledger_entries", "ledger_nodes", "ledger_checkpoints"]) {
    yield* sql`CREATE TRIGGER ${sql(`${table}_append_only`)} BEFORE UPDATE OR DELETE ON ${sql(table)}
      FOR EACH ROW EXECUTE FUNCTION ledger_append_only()`
    yield* sql`CREATE TRIGGER ${sql(`${table}_no_truncate`)} BEFORE TRUNCATE ON ${sql(table)}
      FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()`
  }
  yield* sql`CREATE TRIGGER ledger_anchors_kept BEFORE DELETE ON ledger_anchors
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only()`
  yield* sql`CREATE TRIGGER ledger_anchors_no_truncate BEFORE TRUNCATE ON ledger_anchors
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()`
})
