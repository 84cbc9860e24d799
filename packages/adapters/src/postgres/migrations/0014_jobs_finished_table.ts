/**
 * Finished jobs leave `jobs`: completed and cancelled jobs live in `jobs_done`, idempotency keys in `job_keys`.
 *
 * A job was written three times in `jobs` (insert, claim, completion), each write a new row version and an entry
 * in `jobs_pkey` (the completion's, next to the claim's and the insert's: the unique check visits the older
 * versions, bottom-up deletion passes fight them). Now the completion deletes the row from `jobs` (no version, no
 * index entry) and inserts it into `jobs_done` in the same statement: a fresh key at the right end of
 * `jobs_done_pkey` (ids are UUIDv7). `jobs` holds only live jobs and dead letters, so claims and sweeps read a
 * small table. `jobs_done` is never updated (`fillfactor` 100); `get`, `list` and `stats` read both tables.
 *
 * An idempotency key must stay unique across both tables until the job is pruned. Two unique indexes (one per
 * table) cannot say so under READ COMMITTED: an enqueue could check `jobs_done` before a completion moved the
 * key's job there and insert into `jobs` after. So keys get a table of their own, `job_keys` (queue, key → job),
 * written once by the enqueue that takes the key (in the statement inserting the job) and deleted only by the
 * prune that deletes its job: one unique index holds each key for its whole life. Jobs without a key never touch
 * it. `jobs_idempotency` is dropped (it took an entry on each of a keyed job's three writes).
 *
 * Claims, starts, heartbeats and releases become HOT (a new row version on the same page, no index entry): no index
 * of `jobs` reads a column they write any more. `jobs_ready` is rebuilt partial on `finished_at IS NULL` (live jobs;
 * dead letters, the only finished rows left in `jobs`, stay out) instead of on `state`, so claimed and running
 * jobs keep their entry and the claim tests the state on the row; `jobs_leases` is dropped, `requeueExpired` reads
 * `jobs` sequentially (it holds live jobs only: a cost that grows with the backlog, once per `requeueIntervalMs`);
 * `fillfactor` 50 leaves each page room for its rows' next versions. Measured on a drain of 20,000 jobs: 79 % of
 * the claims HOT, about 10-20 % less Postgres CPU per job (benchmarks/README.md).
 *
 * Existing completed and cancelled rows move to `jobs_done`, existing keys to `job_keys`.
 *
 * Released: never edit this file; add a migration.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  // Same columns in the same order (collations and NOT NULLs included; `seq` a plain bigint), so rows move with
  // `SELECT *` and both tables read as one with `UNION ALL`
  yield* sql`CREATE TABLE jobs_done (LIKE jobs INCLUDING DEFAULTS)`
  yield* sql`ALTER TABLE jobs_done ADD PRIMARY KEY (id)`
  yield* sql`CREATE TABLE job_keys (
    queue text COLLATE "C" NOT NULL,
    idempotency_key text COLLATE "C" NOT NULL,
    id text COLLATE "C" NOT NULL,
    PRIMARY KEY (queue, idempotency_key)
  )`
  yield* sql`INSERT INTO job_keys (queue, idempotency_key, id)
    SELECT queue, idempotency_key, id FROM jobs WHERE idempotency_key IS NOT NULL`
  yield* sql`INSERT INTO jobs_done SELECT * FROM jobs WHERE state IN ('completed', 'cancelled') ORDER BY id`
  yield* sql`DELETE FROM jobs WHERE state IN ('completed', 'cancelled')`
  yield* sql`DROP INDEX jobs_idempotency`
  yield* sql`DROP INDEX jobs_leases`
  yield* sql`ALTER TABLE jobs SET (fillfactor = 50)`
  yield* sql`DROP INDEX jobs_ready`
  yield* sql`CREATE INDEX jobs_ready ON jobs (queue, priority_rank, run_at, seq) WHERE finished_at IS NULL`
})
