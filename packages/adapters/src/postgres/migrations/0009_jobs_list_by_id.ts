/**
 * `list` pages by the primary key: drops the unique index on `seq` (`jobs_seq_key`).
 *
 * Job ids are UUIDv7 (`job_<uuid>`), and since this migration the layer makes the ones one process creates strictly
 * increasing (same millisecond included), so their order is the order of creation, as `seq`'s was: `list` walks
 * `jobs_pkey` instead. None of a job's three writes is HOT (each changes `state`, read by the partial indexes'
 * predicates), so every index takes an entry per write: one index fewer is three index insertions and WAL records
 * fewer per job. `seq` stays, as the claim order's last tie-break inside `jobs_ready`.
 *
 * Released: never edit this file; add a migration.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE jobs DROP CONSTRAINT jobs_seq_key`
})
