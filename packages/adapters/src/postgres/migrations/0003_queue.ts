/**
 * The job queue (`jobs`) and the agent registry (`agents`).
 *
 * `jobs` holds one row per job, its times as epoch milliseconds in `double precision` (a JS number exactly,
 * fractions included), read from the database's clock by the statements that write them, so every process
 * agrees on when a lease expires. `payload`, `result` and `last_error` are `json` (the text as written: JSON
 * strings may hold what `text` cannot); `result IS NULL` means no result, a stored JSON `null` is a result.
 *
 * - `jobs_ready` is the claim order itself: per queue, pending jobs (`queued`, or `failed` waiting for a retry)
 *   by priority rank, then `run_at`, then `seq`. A claim walks it and stops after `max` ready rows.
 * - `jobs_leases` holds leased jobs by expiry: `requeueExpired` reads only the expired ones.
 * - `jobs_idempotency` makes an idempotency key unique per queue (key stored as the body of its JSON literal).
 * - `jobs_queue_seq` serves `list` (oldest first) and `stats` per queue; `jobs_finished` the pruning of completed
 *   and cancelled jobs past their retention.
 *
 * `agents` holds one row per registered agent; its status is derived on read from `last_heartbeat_at` and the
 * database's clock, never stored.
 *
 * Released: never edit this file; add a migration.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE jobs (
    id text PRIMARY KEY,
    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    queue text NOT NULL,
    pool text,
    priority text NOT NULL,
    priority_rank smallint NOT NULL,
    state text NOT NULL,
    payload json NOT NULL,
    run_at double precision NOT NULL,
    attempts integer NOT NULL,
    max_attempts integer NOT NULL,
    failures integer NOT NULL,
    idempotency_key text,
    lease_worker text,
    lease_expires_at double precision,
    last_error json,
    result json,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    claimed_at double precision,
    finished_at double precision
  ) WITH (fillfactor = 80)`
  yield* sql`CREATE INDEX jobs_ready ON jobs (queue, priority_rank, run_at, seq)
    WHERE state IN ('queued', 'failed')`
  yield* sql`CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state IN ('claimed', 'running')`
  yield* sql`CREATE UNIQUE INDEX jobs_idempotency ON jobs (queue, idempotency_key)
    WHERE idempotency_key IS NOT NULL`
  yield* sql`CREATE INDEX jobs_queue_seq ON jobs (queue, seq)`
  yield* sql`CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state IN ('completed', 'cancelled')`
  yield* sql`CREATE TABLE agents (
    id text PRIMARY KEY,
    pool text NOT NULL,
    capabilities json NOT NULL,
    labels json NOT NULL,
    registered_at double precision NOT NULL,
    last_heartbeat_at double precision NOT NULL,
    load double precision
  )`
  yield* sql`CREATE INDEX agents_pool ON agents (pool)`
})
