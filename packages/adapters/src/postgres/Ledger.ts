/**
 * The audit ledger on Postgres: a `LedgerStore` over `ledger_entries`, `ledger_nodes`, `ledger_checkpoints` and
 * `ledger_anchors` (migration 0004; `task_prev_hash` since 0007), for core's `Ledger.layer` to run on.
 *
 * The ledger computes every hash, Merkle node, proof and signature in core; this module stores rows and
 * serialises appenders:
 * - Appends are optimistic, checked under the lock: an appender computes its entries on the head its process last
 *   wrote or locked (no read, no lock) and each task's last entry as this process last wrote it (or read
 *   without the lock), and `write` sends them to `ledger_append` (migration 0010), which in one statement locks
 *   the `ledger_head` row (migration 0005), checks those assumptions against what is committed, and inserts the
 *   entries and the Merkle nodes they complete and moves the head, or writes nothing and reports the head it
 *   found. The lock is held to the end of the transaction: a standalone append holds it for that one statement,
 *   one inside a unit of work (`UnitOfWork`) from its write to COMMIT, instead of from a head read three round
 *   trips earlier. An appender whose assumption was wrong runs again (see `withAppendLock`); inside a unit the
 *   failed statement already locked the row, so the second run is final. Appenders of one process take turns
 *   (inside units: until their transaction holds the row), so each assumes the head the previous one wrote
 *   instead of all but one losing the race. The chain and the tree never fork:
 *   every write is checked against the committed head under the one lock, and the primary keys refuse to
 *   overwrite.
 * - Pending entries (`LedgerStore.pending`, migration 0011): `Ledger.record` inserts a unit's entries into
 *   `ledger_pending` in the unit's transaction, one statement, without the head lock; core's sequencer integrates
 *   them. Its turn is a transaction-scoped advisory lock (`pg_try_advisory_xact_lock`): one sequencer at a time,
 *   and when its session dies its transaction and turn end with it, so the next process's round takes over. A
 *   turn deletes the oldest committed pending rows (staging order) and appends them in the same transaction,
 *   so each entry is integrated exactly once: a crash before COMMIT leaves the rows pending.
 * - Triggers make entries, nodes and checkpoints append-only in the database itself.
 * - `head` is the `ledger_head` row (inside `withAppendLock`, the head the appender runs on), apart from the
 *   entries: the ledger checks one against the other.
 * - Reads return the columns as stored, tampered or not; the ledger re-hashes them.
 *
 * `LedgerTamper` (for the conformance suite's tamper tests only; never provide it in production) rewrites rows
 * in a transaction that switches the append-only trigger off and on again, which only the tables' owner can do.
 *
 * @since 0.1.0
 */
import {
  type Anchor,
  AnchorReceipt,
  Canonical,
  type Checkpoint,
  type CheckpointRecord,
  genesisHash,
  type InvalidInput,
  Ledger,
  type LedgerEntry,
  type LedgerHead,
  type LedgerOptions,
  type LedgerPending,
  LedgerStore,
  LedgerStoreError,
  type Merkle,
  type PendingEntry
} from "@mandate/core"
import { LedgerTamper } from "@mandate/core/testing"
import { type Cause, Context, Effect, Latch, Layer, Option, Schema, Semaphore } from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import { takeFresh } from "./internal/freshTasks.ts"
import { CurrentStaged, flushStaged, insertPending } from "./internal/stagedEntries.ts"
import { findRollback, findSqlError, Rollback } from "./internal/transaction.ts"
import { type PostgresOptions, resolveSchema } from "./Options.ts"

const EntryRow = Schema.Struct({
  pos: Schema.BigInt,
  seq: Schema.BigInt,
  kind: Schema.String,
  task_id: Schema.NullOr(Schema.String),
  task_prev_hash: Schema.NullOr(Schema.String),
  step_id: Schema.NullOr(Schema.String),
  principal: Schema.Unknown,
  no_principal: Schema.Boolean,
  at: Schema.Number,
  payload_hash: Schema.String,
  payload: Schema.Unknown,
  no_payload: Schema.Boolean,
  prev_hash: Schema.String,
  entry_hash: Schema.String
})
type EntryRow = typeof EntryRow.Type
const decodeEntryRows = Schema.decodeUnknownEffect(Schema.Array(EntryRow))

const CheckpointRow = Schema.Struct({
  size: Schema.BigInt,
  root: Schema.String,
  timestamp: Schema.Number,
  signature: Schema.String,
  key_id: Schema.String,
  receipt: Schema.NullOr(AnchorReceipt)
})
type CheckpointRow = typeof CheckpointRow.Type
const decodeCheckpointRows = Schema.decodeUnknownEffect(Schema.Array(CheckpointRow))

const NodeRow = Schema.Struct({ ord: Schema.Int, hash: Schema.NullOr(Schema.String) })
const decodeNodeRows = Schema.decodeUnknownEffect(Schema.Array(NodeRow))

const PendingRow = Schema.Struct({
  batch: Schema.BigInt,
  ord: Schema.Int,
  kind: Schema.String,
  task_id: Schema.NullOr(Schema.String),
  step_id: Schema.NullOr(Schema.String),
  principal: Schema.NullOr(Schema.String),
  payload: Schema.String,
  payload_hash: Schema.String,
  store_payload: Schema.Boolean
})
const decodePendingRows = Schema.decodeUnknownEffect(Schema.Array(PendingRow))

const BacklogRow = Schema.Struct({ oldest: Schema.NullOr(Schema.BigInt), newest: Schema.NullOr(Schema.BigInt) })
const decodeBacklogRows = Schema.decodeUnknownEffect(Schema.Array(BacklogRow))

// The sequencer's turn: a transaction-scoped advisory lock ("MNSQ", hashtext(schema)), released when the
// holder's transaction ends, also when its session dies, so another process takes over at its next round
const sequencerLockClass = 0x4d4e5351

const HeadRow = Schema.Struct({ size: Schema.BigInt, last_hash: Schema.NullOr(Schema.String) })
const decodeHeadRows = Schema.decodeUnknownEffect(Schema.Array(HeadRow))

// Why `write` refused an optimistic append: the head (or a task's last entry) moved since the appender read it.
// `head` is the head the database had under the lock, and `locked` whether this transaction still holds it
class HeadMoved {
  readonly head: LedgerHead | undefined
  readonly locked: boolean
  constructor(head: LedgerHead | undefined, locked: boolean) {
    this.head = head
    this.locked = locked
  }
}

const isMoved = (error: unknown): boolean => error instanceof LedgerStoreError && error.cause instanceof HeadMoved

// How the current appender runs (see withAppendLock): `head` is the head it was given (or will be), `locked`
// whether its transaction holds the head row, so that what it reads is final; `guess` whether it may take a
// task's last entry from what this process remembers, and `guessed` whether it did
interface AppendState {
  head: LedgerHead | undefined
  readonly locked: boolean
  readonly guess: boolean
  guessed: boolean
}
class AppendMode extends Context.Service<AppendMode, AppendState>()("@mandate/adapters/postgres/AppendMode") {}

// Optimistic appends a standalone appender makes before it takes the lock in a transaction
const optimisticAttempts = 4
// Tasks whose last entry this process remembers (a miss costs one read; a stale one, one retry)
const taskCacheSize = 10_000

// The entry as stored, field for field: absent optional fields stay absent, tampered values stay as they are
const toEntry = (row: EntryRow): LedgerEntry => {
  const entry: Record<string, unknown> = { seq: Number(row.seq), kind: row.kind }
  if (row.task_id !== null) entry.taskId = row.task_id
  if (row.task_prev_hash !== null) entry.taskPrevHash = row.task_prev_hash
  if (row.step_id !== null) entry.stepId = row.step_id
  if (!row.no_principal) entry.principal = row.principal
  entry.at = row.at
  entry.payloadHash = row.payload_hash
  if (!row.no_payload) entry.payload = row.payload
  entry.prevHash = row.prev_hash
  entry.entryHash = row.entry_hash
  return entry as LedgerEntry
}

const toRecord = (row: CheckpointRow): CheckpointRecord => {
  const checkpoint: Checkpoint = {
    size: Number(row.size),
    root: row.root,
    timestamp: row.timestamp,
    signature: row.signature,
    keyId: row.key_id
  } as Checkpoint
  return row.receipt === null ? { checkpoint } : { checkpoint, anchor: row.receipt }
}

// The columns of an entry (as JSON for json_to_recordset). JSON values travel as text: Postgres' JSON functions
// refuse some strings (a lone surrogate) inside nested values that a json column keeps
interface EntryColumns {
  readonly seq: unknown
  readonly kind: unknown
  readonly task_id: unknown
  readonly task_prev_hash: unknown
  readonly step_id: unknown
  readonly principal: string | null
  readonly at: unknown
  readonly payload_hash: unknown
  readonly payload: string | null
  readonly prev_hash: unknown
  readonly entry_hash: unknown
}

const fieldColumns: Readonly<Record<string, keyof EntryColumns>> = {
  seq: "seq",
  kind: "kind",
  taskId: "task_id",
  taskPrevHash: "task_prev_hash",
  stepId: "step_id",
  principal: "principal",
  at: "at",
  payloadHash: "payload_hash",
  payload: "payload",
  prevHash: "prev_hash",
  entryHash: "entry_hash"
}

// Any record of entry fields as columns; a field the table has no column for is refused, not dropped
const columnsOf = (fields: Readonly<Record<string, unknown>>): EntryColumns | string => {
  const unknown = Object.keys(fields).filter((key) => !(key in fieldColumns))
  if (unknown.length > 0) return `no column for ${unknown.join(", ")}`
  const json = (value: unknown) => (value === undefined ? null : JSON.stringify(value))
  const plain = (value: unknown) => (value === undefined ? null : value)
  return {
    seq: plain(fields.seq),
    kind: plain(fields.kind),
    task_id: plain(fields.taskId),
    task_prev_hash: plain(fields.taskPrevHash),
    step_id: plain(fields.stepId),
    principal: json(fields.principal),
    at: plain(fields.at),
    payload_hash: plain(fields.payloadHash),
    payload: json(fields.payload),
    prev_hash: plain(fields.prevHash),
    entry_hash: plain(fields.entryHash)
  }
}

const ENTRY_COLUMNS =
  "pos, seq, kind, task_id, task_prev_hash, step_id, principal, (principal IS NULL) AS no_principal, at, payload_hash, payload, " +
  "(payload IS NULL) AS no_payload, prev_hash, entry_hash"

const RECORDSET =
  "AS r(seq bigint, kind text, task_id text, task_prev_hash text, step_id text, principal text, at float8, payload_hash text, " +
  "payload text, prev_hash text, entry_hash text)"

/**
 * Builds the Postgres ledger store and its tamper hook over the `SqlClient` in context.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeLedgerStore = Effect.fnUntraced(function* (options?: PostgresOptions) {
  const sql = yield* SqlClient.SqlClient
  const schema = yield* resolveSchema(options)
  const entriesTable = sql(`${schema}.ledger_entries`)
  const nodesTable = sql(`${schema}.ledger_nodes`)
  const checkpointsTable = sql(`${schema}.ledger_checkpoints`)
  const anchorsTable = sql(`${schema}.ledger_anchors`)
  const entryColumns = sql.literal(ENTRY_COLUMNS)
  const recordset = sql.literal(RECORDSET)

  const storeError = (operation: string) => (cause: unknown) => new LedgerStoreError({ operation, cause })
  const failure = (operation: string, message: string) => storeError(operation)(new Error(message))
  const query = <A>(
    operation: string,
    statement: Effect.Effect<ReadonlyArray<unknown>, SqlError.SqlError>,
    decode: (rows: ReadonlyArray<unknown>) => Effect.Effect<A, Schema.SchemaError>
  ) => statement.pipe(Effect.flatMap(decode), Effect.mapError(storeError(operation)))

  const headTable = sql(`${schema}.ledger_head`)
  const appendFunction = sql(`${schema}.ledger_append`)
  const toHead = (size: bigint, lastHash: string | null): LedgerHead => ({
    size: Number(size),
    lastHash: (lastHash ?? genesisHash) as LedgerEntry["entryHash"]
  })
  // The appender's head: the row it locks
  const lockHead = query(
    "withAppendLock",
    sql`SELECT size, last_hash FROM ${headTable} FOR UPDATE`,
    decodeHeadRows
  ).pipe(
    Effect.flatMap(([row]) =>
      row === undefined
        ? Effect.fail(failure("withAppendLock", "ledger_head has no row"))
        : Effect.succeed(toHead(row.size, row.last_hash))
    )
  )
  // Everyone else's head: the row as stored (a reader must see what is there, tampered or not)
  const storedHead = query("head", sql`SELECT size, last_hash FROM ${headTable}`, decodeHeadRows).pipe(
    Effect.flatMap(([row]) =>
      row === undefined
        ? Effect.fail(failure("head", "ledger_head has no row"))
        : Effect.succeed(toHead(row.size, row.last_hash))
    )
  )

  // What this process last wrote or locked (possibly not committed yet): the head an optimistic appender
  // assumes. The database checks the assumption under the lock (`ledger_append`), so a stale one costs a retry,
  // never a wrong entry
  let latest: LedgerHead | undefined
  const taskLast = new Map<string, LedgerEntry["entryHash"]>()
  const rememberTask = (taskId: string, entryHash: LedgerEntry["entryHash"]) => {
    taskLast.delete(taskId)
    taskLast.set(taskId, entryHash)
    if (taskLast.size > taskCacheSize) taskLast.delete(taskLast.keys().next().value!)
  }

  // Standalone appenders of this process take turns: they would otherwise all assume the same head and all but
  // one lose the race (the database lock is held for one statement only, so a turn is one or two round trips).
  // Appenders inside a unit never wait here: one may hold the database lock while another waits for it
  const standalone = yield* Semaphore.make(1)
  // Appenders inside units take turns too, until their transaction holds the head row: each then assumes the head
  // the previous one wrote, where all but one of many concurrent units would otherwise assume the same head, lose
  // the race and compute and send their entries twice. A unit that holds the row (its transaction called
  // `ledger_append`, which locks it first) never waits here: the next in turn may be waiting for its COMMIT
  const inUnit = yield* Semaphore.make(1)
  const holdsHead = new WeakSet<object>()

  const withTransaction = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.mapError(effect, (error) => new Rollback<E | LedgerStoreError>(error)).pipe(
      sql.withTransaction,
      // A lost connection makes withTransaction report the failures as defects (see UnitOfWork): still failures
      Effect.catchCause((cause): Effect.Effect<never, E | LedgerStoreError> => {
        const own = findRollback<E | LedgerStoreError>(cause)
        if (own !== undefined) return Effect.fail(own.error)
        const failed = findSqlError(cause)
        return failed === undefined
          ? Effect.failCause(cause as Cause.Cause<never>)
          : Effect.fail(storeError("withAppendLock")(failed))
      })
    )

  // An appender first runs on the head it assumes (no lock, no head read); `write` sends its entries with that
  // assumption, and the database takes the lock, checks and writes in one statement. When the head moved:
  // - inside a transaction (a unit of work), `ledger_append` has locked the head row for it, so the appender runs
  //   again on the locked head, as a pessimistic appender would have from the start;
  // - alone (after its turn among this process' standalone appenders), it runs again on the head the database
  //   reported, a few times, then in a transaction that locks the head first (so a busy ledger cannot starve it).
  // A standalone append thus holds the lock for the statement only; one in a unit from its write to COMMIT.
  const withAppendLock = <A, E, R>(effect: Effect.Effect<A, E, R>) => {
    const run = (head: LedgerHead | undefined, locked: boolean, guess: boolean) =>
      Effect.provideService(effect, AppendMode, { head, locked, guess, guessed: false })
    const movedOf = (error: E | LedgerStoreError) => (error as LedgerStoreError).cause as HeadMoved
    // Under the lock the head is final; a remembered task entry may still be stale: then once more, reading it
    const runLocked = (head: LedgerHead) =>
      Effect.catchIf(run(head, true, true), isMoved, (error) => run(movedOf(error).head ?? head, true, false))
    const lockAndRun = Effect.flatMap(lockHead, (head) => {
      latest = head
      return runLocked(head)
    })
    return Effect.flatMap(Effect.serviceOption(sql.transactionService), (enclosing) => {
      if (Option.isSome(enclosing)) {
        const optimistic = Effect.catchIf(run(undefined, false, true), isMoved, (error) => {
          const moved = movedOf(error)
          return moved.locked && moved.head !== undefined ? runLocked(moved.head) : lockAndRun
        })
        return holdsHead.has(enclosing.value[0]) ? optimistic : inUnit.withPermits(1)(optimistic)
      }
      const attempt = (head: LedgerHead | undefined, n: number): Effect.Effect<A, E | LedgerStoreError, R> =>
        Effect.catchIf(run(head, false, true), isMoved, (error) =>
          n + 1 < optimisticAttempts ? attempt(movedOf(error).head, n + 1) : withTransaction(lockAndRun)
        )
      return standalone.withPermits(1)(attempt(undefined, 0))
    }).pipe(Effect.withSpan("LedgerStore.withAppendLock"))
  }

  const head = Effect.flatMap(Effect.serviceOption(AppendMode), (mode) => {
    if (Option.isNone(mode)) return storedHead
    const given = mode.value.head ?? latest
    if (given !== undefined) {
      mode.value.head = given
      return Effect.succeed(given)
    }
    return Effect.map(storedHead, (stored) => {
      mode.value.head = stored
      return stored
    })
  })

  const write = (entries: ReadonlyArray<LedgerEntry>, nodes: ReadonlyArray<Merkle.Node>) =>
    Effect.gen(function* () {
      if (entries.length === 0 && nodes.length === 0) return
      const rows: Array<EntryColumns> = []
      for (const entry of entries) {
        const columns = columnsOf(entry)
        if (typeof columns === "string") return yield* failure("write", columns)
        rows.push(columns)
      }
      const mode = yield* Effect.serviceOption(AppendMode)
      const locked = Option.isNone(mode) || mode.value.locked
      const guessed = Option.isSome(mode) && mode.value.guessed
      const first = entries[0]
      const last = entries.at(-1)
      // What the appender assumed about each task's last entry (read without the lock, or remembered), checked
      // under the lock
      const tasks: Array<{ readonly task_id: string; readonly prev: string }> = []
      if (!locked || guessed) {
        const seen = new Set<string>()
        for (const entry of entries) {
          if (entry.taskId === undefined || seen.has(entry.taskId)) continue
          seen.add(entry.taskId)
          if (entry.taskPrevHash !== undefined) tasks.push({ task_id: entry.taskId, prev: entry.taskPrevHash })
        }
      }
      const nodeRows = nodes.map((node) => ({ level: node.level, idx: node.index, hash: Canonical.toHex(node.hash) }))
      const [result] = yield* sql<{
        readonly o_status: number
        readonly o_size: string | number | bigint | null
        readonly o_last: string | null
      }>`SELECT o_status, o_size, o_last FROM ${appendFunction}(
          ${first === undefined ? null : first.seq}::bigint, ${first === undefined ? null : first.prevHash}::text,
          ${genesisHash}::text, ${last === undefined ? null : last.entryHash}::text,
          ${tasks.length === 0 ? null : JSON.stringify(tasks)}::text, ${JSON.stringify(rows)}::text,
          ${JSON.stringify(nodeRows)}::text)`.pipe(Effect.mapError(storeError("write")))
      if (result === undefined) return yield* failure("write", "ledger_append returned nothing")
      // Whatever it answered, `ledger_append` locked the head row first: this transaction holds it to COMMIT
      const transaction = yield* Effect.serviceOption(sql.transactionService)
      if (Option.isSome(transaction)) holdsHead.add(transaction.value[0])
      const current =
        result.o_size === null ? undefined : toHead(BigInt(result.o_size as string | number | bigint), result.o_last)
      if (result.o_status === 0) {
        if (current !== undefined) {
          latest = current
          if (Option.isSome(mode)) mode.value.head = current
        }
        for (const entry of entries) if (entry.taskId !== undefined) rememberTask(entry.taskId, entry.entryHash)
        return
      }
      if (result.o_status === 2) for (const task of tasks) taskLast.delete(task.task_id)
      else if (current !== undefined) latest = current
      const given = Option.isSome(mode) ? mode.value.head : undefined
      // A head that did not move since the appender was given it was not a lost race: the write is wrong
      const raced =
        result.o_status === 2
          ? !locked || guessed
          : result.o_status === 1 &&
            !locked &&
            (given === undefined || given.size !== current?.size || given.lastHash !== current.lastHash)
      if (raced) {
        return yield* storeError("write")(new HeadMoved(current, Option.isSome(transaction)))
      }
      return yield* failure(
        "write",
        result.o_status === 2
          ? `a task's last entry is not the one entry ${first?.seq} follows: nothing was written`
          : `entry ${first?.seq ?? -1} is not the next entry: nothing was written`
      )
    }).pipe(Effect.withSpan("LedgerStore.write"))

  const nodes = (ids: ReadonlyArray<Merkle.NodeId>) =>
    Effect.gen(function* () {
      if (ids.length === 0) return []
      const keys = ids.map((id, ord) => ({ ord, level: id.level, idx: id.index }))
      const found = yield* query(
        "nodes",
        sql`SELECT k.ord, encode(n.hash, 'hex') AS hash
            FROM json_to_recordset(${JSON.stringify(keys)}::json) AS k(ord int, level smallint, idx bigint)
            LEFT JOIN ${nodesTable} n ON n.level = k.level AND n.idx = k.idx`,
        decodeNodeRows
      )
      const out: Array<Uint8Array | undefined> = new Array(ids.length).fill(undefined)
      for (const row of found) if (row.hash !== null) out[row.ord] = Canonical.fromHex(row.hash)
      // An optimistic appender assumed a head whose nodes are not committed (another fiber's unit): a race
      if (out.includes(undefined)) {
        const mode = yield* Effect.serviceOption(AppendMode)
        if (Option.isSome(mode) && !mode.value.locked)
          return yield* storeError("nodes")(new HeadMoved(undefined, false))
      }
      return out
    }).pipe(Effect.withSpan("LedgerStore.nodes"))

  const entries = (from: number, to: number) =>
    query(
      "entries",
      sql`SELECT ${entryColumns} FROM ${entriesTable} WHERE pos >= ${Math.max(0, from)} AND pos < ${to} ORDER BY pos`,
      decodeEntryRows
    ).pipe(
      Effect.map((rows) => rows.map(toEntry)),
      Effect.withSpan("LedgerStore.entries")
    )

  const findByHash = (entryHash: string) =>
    query(
      "findByHash",
      sql`SELECT ${entryColumns} FROM ${entriesTable} WHERE entry_hash = ${entryHash} ORDER BY pos LIMIT 1`,
      decodeEntryRows
    ).pipe(Effect.map(([row]) => (row === undefined ? Option.none() : Option.some(toEntry(row)))))

  const findByTask = (taskId: string) =>
    query(
      "findByTask",
      sql`SELECT ${entryColumns} FROM ${entriesTable} WHERE task_id = ${taskId} ORDER BY seq, pos`,
      decodeEntryRows
    ).pipe(Effect.map((rows) => rows.map(toEntry)))

  // The task's last entry (the same transaction sees the unit's own appends). Under the lock it is final; an
  // optimistic appender may take the one this process last wrote, or none for a task this process just created
  // (the task store tells, see internal/freshTasks.ts), which `ledger_append` checks
  const readLastOfTask = (taskId: string) =>
    sql<{ readonly entry_hash: string }>`SELECT entry_hash FROM ${entriesTable}
        WHERE task_id = ${taskId} ORDER BY pos DESC LIMIT 1`.pipe(
      Effect.map(([row]) => Option.fromNullishOr(row?.entry_hash as LedgerEntry["entryHash"] | undefined)),
      Effect.mapError(storeError("lastOfTask"))
    )
  const lastOfTask = (taskId: string) =>
    Effect.flatMap(Effect.serviceOption(AppendMode), (mode) => {
      if (Option.isSome(mode) && mode.value.guess) {
        const remembered = taskLast.get(taskId)
        if (remembered !== undefined) {
          mode.value.guessed = true
          return Effect.succeed(Option.some(remembered))
        }
        // A task this process just created has no entries yet (checked under the lock like any guess)
        if (takeFresh(sql, taskId)) {
          mode.value.guessed = true
          return Effect.succeed(Option.none())
        }
      }
      return readLastOfTask(taskId)
    })

  // Several tasks' last entries in one query (the sequencer's batches name many tasks); remembered ones and
  // tasks this process just created are guessed as `lastOfTask` does
  const lastOfTasks = (taskIds: ReadonlyArray<string>) =>
    Effect.gen(function* () {
      const mode = yield* Effect.serviceOption(AppendMode)
      const out: Array<Option.Option<LedgerEntry["entryHash"]>> = new Array(taskIds.length)
      const unknown: Array<number> = []
      for (let i = 0; i < taskIds.length; i++) {
        const taskId = taskIds[i]!
        if (Option.isSome(mode) && mode.value.guess) {
          const remembered = taskLast.get(taskId)
          if (remembered !== undefined) {
            mode.value.guessed = true
            out[i] = Option.some(remembered)
            continue
          }
          if (takeFresh(sql, taskId)) {
            mode.value.guessed = true
            out[i] = Option.none()
            continue
          }
        }
        unknown.push(i)
      }
      if (unknown.length === 1) out[unknown[0]!] = yield* readLastOfTask(taskIds[unknown[0]!]!)
      else if (unknown.length > 1) {
        const rows = yield* sql<{ readonly ord: number; readonly entry_hash: string | null }>`
            SELECT t.ord::int AS ord, (SELECT e.entry_hash FROM ${entriesTable} e WHERE e.task_id = t.task_id
                                       ORDER BY e.pos DESC LIMIT 1) AS entry_hash
            FROM json_array_elements_text(${JSON.stringify(unknown.map((i) => taskIds[i]))}::json)
              WITH ORDINALITY AS t(task_id, ord)`.pipe(Effect.mapError(storeError("lastOfTasks")))
        for (const i of unknown) out[i] = Option.none()
        for (const row of rows) {
          const i = unknown[Number(row.ord) - 1]!
          out[i] = Option.fromNullishOr(row.entry_hash as LedgerEntry["entryHash"] | null)
        }
      }
      return out
    })

  // ---- pending entries and the sequencer's turn (migration 0011) --------------------------------------------

  const pendingTable = sql(`${schema}.ledger_pending`)
  const stagedHere = Latch.makeUnsafe(false)
  const wakeSequencer = Effect.sync(() => void stagedHere.openUnsafe())

  // One statement, in the caller's transaction: no head read, no lock. The batch number is taken once per call.
  // Inside a Postgres unit of work the entries are held instead, for the unit's next task write to insert in its
  // own statement, or for the unit's end (see `internal/stagedEntries.ts`)
  const stage = (entries: ReadonlyArray<PendingEntry>) => {
    if (entries.length === 0) return Effect.void
    return Effect.flatMap(Effect.service(CurrentStaged), (held) => {
      if (held !== undefined && (held.schema === undefined || held.schema === schema)) {
        held.schema = schema
        for (const e of entries) held.entries.push(e)
        return sql.afterCommit(wakeSequencer)
      }
      return Effect.andThen(flushStaged(sql), insertPending(sql, schema, entries)).pipe(
        Effect.andThen(sql.afterCommit(wakeSequencer))
      )
    }).pipe(Effect.mapError(storeError("stage")))
  }

  const toPending = (row: typeof PendingRow.Type): PendingEntry => {
    const entry: { -readonly [K in keyof PendingEntry]: PendingEntry[K] } = {
      kind: row.kind,
      payload: row.payload,
      payloadHash: row.payload_hash,
      storePayload: row.store_payload
    }
    if (row.task_id !== null) entry.taskId = row.task_id
    if (row.step_id !== null) entry.stepId = row.step_id
    if (row.principal !== null) entry.principal = row.principal
    return entry
  }

  // The turn, then the oldest committed rows, deleted as they are taken: if the integration fails, the
  // transaction's rollback puts them back. Without waiting, the turn and the rows are one statement: the lock is
  // a one-time filter evaluated before the scan, and rows another sequencer deleted after this statement's
  // snapshot are skipped by the DELETE's recheck (each is taken once), so a turn costs BEGIN, this, the append
  // and COMMIT. Rows committed after the snapshot wait for the next round (a wake-up or a poll brings it)
  const takeColumns = sql.literal("batch, ord, kind, task_id, step_id, principal, payload, payload_hash, store_payload")
  const integrate = <A, E, R>(
    limit: number,
    wait: boolean,
    run: (entries: ReadonlyArray<PendingEntry>) => Effect.Effect<A, E, R>
  ) =>
    withTransaction(
      Effect.gen(function* () {
        yield* flushStaged(sql).pipe(Effect.mapError(storeError("integrate")))
        const lockKey = sql`${sequencerLockClass}::int, hashtext(${schema})`
        let rows: ReadonlyArray<typeof PendingRow.Type>
        if (wait) {
          yield* sql`SELECT pg_advisory_xact_lock(${lockKey})`.pipe(Effect.mapError(storeError("integrate")))
          rows = yield* query(
            "integrate",
            sql`DELETE FROM ${pendingTable} WHERE (batch, ord) IN (
                  SELECT batch, ord FROM ${pendingTable} ORDER BY batch, ord LIMIT ${limit})
                RETURNING ${takeColumns}`,
            decodePendingRows
          )
        } else {
          const taken = yield* sql<{ readonly ok: boolean; readonly batch: unknown }>`
              WITH turn AS MATERIALIZED (SELECT pg_try_advisory_xact_lock(${lockKey}) AS ok),
              taken AS (
                DELETE FROM ${pendingTable} WHERE (SELECT ok FROM turn) AND (batch, ord) IN (
                  SELECT batch, ord FROM ${pendingTable} ORDER BY batch, ord LIMIT ${limit})
                RETURNING ${takeColumns})
              SELECT turn.ok, taken.* FROM turn LEFT JOIN taken ON true`.pipe(Effect.mapError(storeError("integrate")))
          if (taken[0]?.ok !== true) return Option.none<A>()
          rows = taken[0].batch === null ? [] : yield* query("integrate", Effect.succeed(taken), decodePendingRows)
        }
        const sorted = rows.slice().sort((a, b) => (a.batch === b.batch ? a.ord - b.ord : a.batch < b.batch ? -1 : 1))
        return Option.some(yield* run(sorted.map(toPending)))
      })
    ).pipe(Effect.withSpan("LedgerStore.integrate"))

  const backlog = Effect.andThen(
    flushStaged(sql).pipe(Effect.mapError(storeError("backlog"))),
    query(
      "backlog",
      sql`SELECT min(batch) AS oldest, max(batch) AS newest FROM ${pendingTable}`,
      decodeBacklogRows
    ).pipe(
      Effect.map(([row]) =>
        row === undefined || row.oldest === null || row.newest === null
          ? Option.none()
          : Option.some({ oldest: Number(row.oldest), newest: Number(row.newest) })
      )
    )
  )

  const pending: LedgerPending = {
    stage,
    staged: Effect.andThen(
      stagedHere.await,
      Effect.sync(() => void stagedHere.closeUnsafe())
    ),
    integrate,
    backlog
  }

  const checkpointColumns = sql.literal(`c.size, c.root, c."timestamp", c.signature, c.key_id, a.receipt`)
  const checkpointFrom = sql`${checkpointsTable} c LEFT JOIN ${anchorsTable} a ON a.size = c.size`

  const findCheckpoint = (operation: string, size: number) =>
    query(
      operation,
      sql`SELECT ${checkpointColumns} FROM ${checkpointFrom} WHERE c.size = ${size}`,
      decodeCheckpointRows
    )

  // Two statements: under READ COMMITTED the SELECT sees a checkpoint a concurrent writer committed while this
  // INSERT waited on it (a CTE would return nothing)
  const putCheckpoint = (checkpoint: Checkpoint) =>
    Effect.gen(function* () {
      yield* sql`INSERT INTO ${checkpointsTable} (size, root, "timestamp", signature, key_id)
                 VALUES (${checkpoint.size}, ${checkpoint.root}, ${checkpoint.timestamp}, ${checkpoint.signature},
                         ${checkpoint.keyId})
                 ON CONFLICT (size) DO NOTHING`.pipe(Effect.mapError(storeError("putCheckpoint")))
      const [stored] = yield* findCheckpoint("putCheckpoint", checkpoint.size)
      if (stored === undefined) return yield* failure("putCheckpoint", `checkpoint ${checkpoint.size} not stored`)
      return toRecord(stored)
    }).pipe(Effect.withSpan("LedgerStore.putCheckpoint"))

  const checkpoints = query(
    "checkpoints",
    sql`SELECT ${checkpointColumns} FROM ${checkpointFrom} ORDER BY c.size`,
    decodeCheckpointRows
  ).pipe(Effect.map((rows) => rows.map(toRecord)))

  const latestCheckpoint = query(
    "latestCheckpoint",
    sql`SELECT ${checkpointColumns} FROM ${checkpointFrom} ORDER BY c.size DESC LIMIT 1`,
    decodeCheckpointRows
  ).pipe(Effect.map(([row]) => (row === undefined ? Option.none() : Option.some(toRecord(row)))))

  const encodeReceipt = Schema.encodeEffect(AnchorReceipt)
  const putAnchor = (size: number, anchor: AnchorReceipt) =>
    Effect.gen(function* () {
      const receipt = yield* encodeReceipt(anchor).pipe(Effect.mapError(storeError("putAnchor")))
      const stored = yield* sql`INSERT INTO ${anchorsTable} (size, receipt)
          SELECT size, ${JSON.stringify(receipt)}::json FROM ${checkpointsTable} WHERE size = ${size}
          ON CONFLICT (size) DO UPDATE SET receipt = excluded.receipt
          RETURNING size`.pipe(Effect.mapError(storeError("putAnchor")))
      if (stored.length === 0) return yield* failure("putAnchor", `no checkpoint of size ${size}`)
    }).pipe(Effect.withSpan("LedgerStore.putAnchor"))

  const store = LedgerStore.of({
    durable: true,
    withAppendLock,
    head,
    write,
    nodes,
    entries,
    findByHash,
    findByTask,
    lastOfTask,
    lastOfTasks,
    pending,
    putCheckpoint,
    checkpoints,
    latestCheckpoint,
    putAnchor
  })

  // ---- tamper hook (tests only) ---------------------------------------------------------------------------

  // Runs `change` with the table's append-only trigger off, in one transaction: other sessions never see the
  // trigger disabled, and a failed change leaves everything as it was
  const unguarded = (
    operation: string,
    table: string,
    change: Effect.Effect<void, SqlError.SqlError | LedgerStoreError>,
    triggerName = `${table}_append_only`
  ) =>
    Effect.gen(function* () {
      const name = sql(`${schema}.${table}`)
      const trigger = sql(triggerName)
      yield* sql`ALTER TABLE ${name} DISABLE TRIGGER ${trigger}`
      yield* change
      yield* sql`ALTER TABLE ${name} ENABLE TRIGGER ${trigger}`
    }).pipe(
      sql.withTransaction,
      Effect.mapError((error) => (error instanceof LedgerStoreError ? error : storeError(operation)(error)))
    )

  const tamper = LedgerTamper.of({
    replaceEntry: (seq, fields) =>
      Effect.gen(function* () {
        if (!Number.isSafeInteger(seq) || seq < 0) return yield* failure("replaceEntry", `no entry ${seq}`)
        const columns = fields === undefined ? undefined : columnsOf(fields)
        if (typeof columns === "string") return yield* failure("replaceEntry", columns)
        yield* unguarded(
          "replaceEntry",
          "ledger_entries",
          Effect.gen(function* () {
            yield* sql`DELETE FROM ${entriesTable} WHERE pos = ${seq}`
            if (columns === undefined) return
            yield* sql`INSERT INTO ${entriesTable}
                (pos, seq, kind, task_id, task_prev_hash, step_id, principal, at, payload_hash, payload, prev_hash,
             entry_hash)
              SELECT ${seq}, r.seq, r.kind, r.task_id, r.task_prev_hash, r.step_id, r.principal::json, r.at, r.payload_hash,
                     r.payload::json, r.prev_hash, r.entry_hash
              FROM json_to_recordset(${JSON.stringify([columns])}::json) ${recordset}`
          })
        )
      }),
    replaceNode: (node) =>
      unguarded(
        "replaceNode",
        "ledger_nodes",
        Effect.gen(function* () {
          const changed = yield* sql`UPDATE ${nodesTable} SET hash = decode(${Canonical.toHex(node.hash)}, 'hex')
                                     WHERE level = ${node.level} AND idx = ${node.index} RETURNING idx`
          if (changed.length === 0) {
            return yield* failure("replaceNode", `no node (${node.level}, ${node.index})`)
          }
        })
      ),
    // The head row has no trigger: appenders move it. One UPDATE, as anyone who can write the table could
    replaceHead: (next) =>
      sql`UPDATE ${headTable} SET size = ${next.size}, last_hash = ${next.lastHash}`.pipe(
        Effect.asVoid,
        Effect.mapError(storeError("replaceHead"))
      ),
    replaceAnchor: (size, receipt) =>
      unguarded(
        "replaceAnchor",
        "ledger_anchors",
        Effect.gen(function* () {
          yield* sql`DELETE FROM ${anchorsTable} WHERE size = ${size}`
          if (receipt === undefined) return
          const stored = yield* sql`INSERT INTO ${anchorsTable} (size, receipt)
              SELECT size, ${JSON.stringify(receipt)}::json FROM ${checkpointsTable} WHERE size = ${size}
              RETURNING size`
          if (stored.length === 0) return yield* failure("replaceAnchor", `no checkpoint of size ${size}`)
        }),
        "ledger_anchors_kept"
      )
  })

  return { store, tamper }
})

/**
 * The Postgres ledger store as a layer over the shared `SqlClient`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerLedgerStore = (
  options?: PostgresOptions
): Layer.Layer<LedgerStore, InvalidInput, SqlClient.SqlClient> =>
  Layer.effect(
    LedgerStore,
    Effect.map(makeLedgerStore(options), ({ store }) => store)
  )

/**
 * The Postgres ledger store with its tamper hook, for tests that prove tampering is detected (the ledger
 * conformance suite). Never provide `LedgerTamper` in production.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerLedgerStoreWithTamper = (
  options?: PostgresOptions
): Layer.Layer<LedgerStore | LedgerTamper, InvalidInput, SqlClient.SqlClient> =>
  Layer.effectContext(
    Effect.map(makeLedgerStore(options), ({ store, tamper }) =>
      Context.make(LedgerStore, store).pipe(Context.add(LedgerTamper, tamper))
    )
  )

/**
 * Core's `Ledger` on the Postgres store: give it kept keys (`keys` from `LedgerKeys.inDirectory`, or a
 * `signingKey`; a key generated per start cannot verify the checkpoints an earlier start signed, and the ledger
 * warns when it has to make one) and an `Anchor`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerLedger = (
  options?: LedgerOptions & PostgresOptions
): Layer.Layer<Ledger, InvalidInput | LedgerStoreError, SqlClient.SqlClient | Anchor> =>
  Ledger.layer(options).pipe(Layer.provide(layerLedgerStore(options)))
