/**
 * Pruning walks the primary key: drops `jobs_finished` (finished_at of completed and cancelled jobs).
 *
 * A job's completion is the write that put it into `jobs_finished`: an index insertion and a WAL record on every
 * drained job, for a read made once a minute. Job ids are UUIDv7 (`job_<uuid>`) whose first 48 bits are the
 * millisecond the job was made, so a job finished before the retention's cutoff was made before it too: pruning
 * reads `jobs_pkey` up to the id prefix of the cutoff and deletes the completed and cancelled rows it finds there
 * that finished before it. It also reads the kept rows made before the cutoff (dead letters, jobs delayed or
 * still running since then), which stay on every round. Ids made on a host whose clock runs ahead are pruned late
 * by that much, never early. Rows stored before this migration carry the same ids: nothing is rewritten.
 *
 * Released: never edit this file; add a migration.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`DROP INDEX IF EXISTS jobs_finished`
})
