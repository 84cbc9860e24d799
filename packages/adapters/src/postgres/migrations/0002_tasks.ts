/**
 * Task records and plans (the `TaskStore`).
 *
 * `tasks` holds one row per task: the record itself (`task`, `steps`, `approvals` as `json`, decoded with Schema on
 * read) and, beside it, the columns the store filters and orders by. `json` rather than `jsonb` on purpose: the
 * store never queries inside a record, and `json` keeps the text exactly as written, including strings `jsonb`
 * refuses (`\u0000`, lone surrogates) that a task's params or a step's result may legitimately hold.
 *
 * - `version` is the compare-and-set column of `save`.
 * - `seq` orders listings newest first and is the pagination cursor (creation order, stable under updates).
 * - `(requested_by, idempotency_key)` is unique where a key is given, so concurrent creates store one task. Both
 *   hold the body of the string's JSON literal (see `TaskStore.ts`): text cannot hold every string they may be.
 * - Each listing filter has an index ending in `seq`, so a filtered page is an index range walked backwards;
 *   `(state, seq)` also serves `unfinished` (the five unfinished states).
 * - `fillfactor` leaves room on each page so that a save that changes no indexed column (most step progress)
 *   can be a HOT update, touching no index.
 *
 * `task_counts` keeps the number of tasks per state, so `countByState` reads a few dozen rows instead of
 * counting the whole table. Triggers maintain it from every INSERT, UPDATE, DELETE and TRUNCATE on `tasks`,
 * whoever runs them, inside the writing transaction: a rollback takes its deltas with it. Each state has up to 16
 * rows (shards, by connection) whose sum is the count, so concurrent writers seldom wait on one counter row.
 *
 * `plans` holds each plan once by id; plans are immutable, so a trigger refuses UPDATE.
 *
 * Released: never edit this file; add a migration.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE tasks (
    id text PRIMARY KEY,
    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    kind text NOT NULL,
    state text NOT NULL,
    requested_by text NOT NULL,
    idempotency_key text,
    version bigint NOT NULL,
    task json NOT NULL,
    steps json NOT NULL,
    approvals json NOT NULL
  ) WITH (fillfactor = 80)`
  yield* sql`CREATE UNIQUE INDEX tasks_idempotency ON tasks (requested_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL`
  yield* sql`CREATE INDEX tasks_requester_seq ON tasks (requested_by, seq)`
  yield* sql`CREATE INDEX tasks_state_seq ON tasks (state, seq)`
  yield* sql`CREATE INDEX tasks_kind_seq ON tasks (kind, seq)`
  yield* sql`CREATE TABLE task_counts (
    state text NOT NULL,
    shard smallint NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (state, shard)
  )`
  // Statement-level, over transition tables: a statement writing many rows adds one delta per state, and a save
  // that leaves the state alone adds none. Shards are per connection, so concurrent writers rarely share a row;
  // deltas are applied in state order, so two transactions on one shard never lock rows in opposite orders.
  yield* sql`CREATE FUNCTION tasks_count_update() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
    BEGIN
      INSERT INTO task_counts AS c (state, shard, n)
        SELECT d.state, pg_backend_pid() % 16, sum(d.delta) FROM (
          SELECT state, -1 AS delta FROM removed UNION ALL SELECT state, 1 FROM added
        ) AS d
        GROUP BY d.state HAVING sum(d.delta) <> 0 ORDER BY d.state
        ON CONFLICT (state, shard) DO UPDATE SET n = c.n + excluded.n;
      RETURN NULL;
    END $$`
  yield* sql`CREATE FUNCTION tasks_count_insert() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
    BEGIN
      INSERT INTO task_counts AS c (state, shard, n)
        SELECT state, pg_backend_pid() % 16, count(*) FROM added GROUP BY state ORDER BY state
        ON CONFLICT (state, shard) DO UPDATE SET n = c.n + excluded.n;
      RETURN NULL;
    END $$`
  yield* sql`CREATE FUNCTION tasks_count_delete() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
    BEGIN
      INSERT INTO task_counts AS c (state, shard, n)
        SELECT state, pg_backend_pid() % 16, -count(*) FROM removed GROUP BY state ORDER BY state
        ON CONFLICT (state, shard) DO UPDATE SET n = c.n + excluded.n;
      RETURN NULL;
    END $$`
  yield* sql`CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION tasks_count_insert()`
  yield* sql`CREATE TRIGGER tasks_count_update AFTER UPDATE ON tasks REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION tasks_count_update()`
  yield* sql`CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION tasks_count_delete()`
  yield* sql`CREATE FUNCTION tasks_truncate_counts() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
    BEGIN
      DELETE FROM task_counts;
      RETURN NULL;
    END $$`
  yield* sql`CREATE TRIGGER tasks_truncate_counts AFTER TRUNCATE ON tasks
    FOR EACH STATEMENT EXECUTE FUNCTION tasks_truncate_counts()`
  yield* sql`CREATE TABLE plans (
    id text PRIMARY KEY,
    task_id text,
    plan json NOT NULL
  )`
  yield* sql`CREATE FUNCTION plans_immutable() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
    BEGIN
      RAISE EXCEPTION 'plans are immutable (UPDATE refused): store a new plan instead'
        USING ERRCODE = 'integrity_constraint_violation';
    END $$`
  yield* sql`CREATE TRIGGER plans_immutable BEFORE UPDATE ON plans
    FOR EACH ROW EXECUTE FUNCTION plans_immutable()`
})
