/**
 * Versioned policy sets and the pointer to the active one.
 *
 * A set's `version` is the SHA-256 of its canonical JSON (computed in core); `seq` orders the listing newest first
 * even when two sets are published within one millisecond. `policy_active` always holds exactly one row (the
 * `singleton` key can only be `true`), so activating is a single-row update: concurrent activations serialize on
 * that row, and no reader ever sees zero or two active sets. A published set is immutable (tasks stay pinned to the
 * version they were planned under, and stores cache sets by version): a trigger refuses UPDATE, DELETE and TRUNCATE.
 *
 * Released: never edit this file; add a migration.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE policy_sets (
    version text PRIMARY KEY CHECK (version ~ '^[0-9a-f]{64}$'),
    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    policy jsonb NOT NULL,
    published_at timestamptz NOT NULL
  )`
  yield* sql`CREATE TABLE policy_active (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version text REFERENCES policy_sets (version),
    activated_at timestamptz
  )`
  yield* sql`INSERT INTO policy_active (singleton, version) VALUES (true, NULL)`
  yield* sql`CREATE FUNCTION policy_sets_immutable() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
    BEGIN
      RAISE EXCEPTION 'published policy sets are immutable (% refused): publish a new version instead', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
    END $$`
  yield* sql`CREATE TRIGGER policy_sets_immutable BEFORE UPDATE OR DELETE ON policy_sets
    FOR EACH ROW EXECUTE FUNCTION policy_sets_immutable()`
  yield* sql`CREATE TRIGGER policy_sets_no_truncate BEFORE TRUNCATE ON policy_sets
    FOR EACH STATEMENT EXECUTE FUNCTION policy_sets_immutable()`
})
