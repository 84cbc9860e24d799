/**
 * Ledger entries a unit of work staged (`LedgerStore.pending.stage`), held until the unit's next task write or
 * its end instead of sent alone: `TaskStore.save` inserts them in its own statement (a CTE after its
 * compare-and-set, inserted only when the update took), and the unit of work writes what is left before it
 * ends. A transition that writes its entries and its record thus costs one statement, not two; the entries still
 * commit or roll back with the unit (a unit inside a unit holds its own, so a failed inner unit drops only its
 * entries). Outside a Postgres unit of work there is no holder, and `stage` writes at once as before.
 *
 * @internal
 */
import type { PendingEntry } from "@mandate/core"
import { Context, Effect } from "effect"
import type { SqlClient, SqlError, Statement } from "effect/sql"

/**
 * What a unit holds: the entries in staging order, for the pending table of one schema.
 *
 * @internal
 */
export interface StagedEntries {
  schema: string | undefined
  entries: Array<PendingEntry>
}

/**
 * The current unit's holder; `undefined` outside a Postgres unit of work.
 *
 * @internal
 */
export const CurrentStaged = Context.Reference<StagedEntries | undefined>(
  "@mandate/adapters/postgres/internal/StagedEntries",
  { defaultValue: () => undefined }
)

/**
 * A fresh holder, for a unit that starts.
 *
 * @internal
 */
export const emptyStaged = (): StagedEntries => ({ schema: undefined, entries: [] })

const rowsJson = (entries: ReadonlyArray<PendingEntry>): string =>
  JSON.stringify(
    entries.map((e, ord) => ({
      ord,
      kind: e.kind,
      task_id: e.taskId ?? null,
      step_id: e.stepId ?? null,
      principal: e.principal ?? null,
      payload: e.payload,
      payload_hash: e.payloadHash,
      store_payload: e.storePayload
    }))
  )

/**
 * The INSERT of entries into `<schema>.ledger_pending`, one batch number for all of them (staging order is
 * (batch, ord)); `condition` (e.g. `WHERE EXISTS (SELECT 1 FROM updated)`) when it runs inside a CTE.
 *
 * @internal
 */
export const insertPending = (
  sql: SqlClient.SqlClient,
  schema: string,
  entries: ReadonlyArray<PendingEntry>,
  condition?: Statement.Fragment
): Statement.Statement<unknown> =>
  sql`INSERT INTO ${sql(`${schema}.ledger_pending`)}
        (batch, ord, kind, task_id, step_id, principal, payload, payload_hash, store_payload)
      SELECT b.batch, r.ord, r.kind, r.task_id, r.step_id, r.principal, r.payload, r.payload_hash, r.store_payload
      FROM (SELECT nextval(${`${schema}.ledger_pending_batch`}::regclass) AS batch) b,
        json_to_recordset(${rowsJson(entries)}::json) AS r(ord int, kind text, task_id text, step_id text,
          principal text, payload text, payload_hash text, store_payload boolean)
      ${condition ?? sql.literal("")}`

/**
 * Writes what the current unit holds, if anything (before the unit ends, and before anything that reads the
 * pending table inside it).
 *
 * @internal
 */
export const flushStaged = (sql: SqlClient.SqlClient): Effect.Effect<void, SqlError.SqlError> =>
  Effect.flatMap(Effect.service(CurrentStaged), (held) => {
    if (held === undefined || held.entries.length === 0 || held.schema === undefined) return Effect.void
    const entries = held.entries
    held.entries = []
    return Effect.asVoid(insertPending(sql, held.schema, entries))
  })
