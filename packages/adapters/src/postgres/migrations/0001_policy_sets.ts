/**
 * Versioned policy sets and the pointer to the active one.
 *
 * A set's `version` is the SHA-256 of its canonical JSON (computed in core); `seq` orders the listing newest first
 * even when two sets are published within one millisecond. `policy_active` always holds exactly one row (the
 * `singleton` key can only be `true`), so activating is a single-row update: concurrent activations serialize on
 * that row, and no reader ever sees zero or two active sets.
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
})
