/**
 * `jobs`' text keys compare bytewise: `id`, `queue` and `idempotency_key` take `COLLATE "C"`.
 *
 * Every job is written three times and each write inserts into `jobs_pkey` (`id`), the enqueue also into
 * `jobs_ready` (`queue` first): a profile of a drain's Postgres backends spent about a quarter of their CPU in
 * b-tree insertions, whose key comparisons under the database's collation (any but `C`/`POSIX`, `C.UTF-8`
 * included) go through `strcoll` on copied, NUL-terminated strings. Under `"C"` they are one `memcmp`. It is also
 * the order the layer relies on: job ids are UUIDv7 in lowercase hex, whose bytewise order is their creation order
 * (`list` pages by it; the prune compares ids with the hex prefix of its cutoff), whatever the database's locale.
 *
 * Only the collation changes: the rows are not rewritten, the three indexes holding these columns are rebuilt.
 *
 * Released: never edit this file; add a migration.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`ALTER TABLE jobs
    ALTER COLUMN id TYPE text COLLATE "C",
    ALTER COLUMN queue TYPE text COLLATE "C",
    ALTER COLUMN idempotency_key TYPE text COLLATE "C"`
})
