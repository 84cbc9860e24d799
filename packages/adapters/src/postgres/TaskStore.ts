/**
 * `TaskStore` on Postgres: task records in `tasks`, plans in `plans` (migration 0002).
 *
 * Each write is one statement, so it needs no transaction of its own and, inside `UnitOfWork.run`, simply joins
 * the unit's (every statement goes through the shared `SqlClient`):
 * - `create` inserts the task (and its plan, in the same statement) with `ON CONFLICT DO NOTHING`; when nothing
 *   was inserted, a second read names the task holding the id or the idempotency key. No unique violation is
 *   ever raised, so a refused create does not abort the caller's transaction. Concurrent creates with one key
 *   serialize on the unique index: one inserts, the others wait for it to commit and then see it.
 * - `save` is a compare-and-set: `UPDATE … WHERE id = $id AND version = $expected`. Only when it updates nothing
 *   does a second read tell `TaskNotFound` from `VersionConflict`.
 *
 * Listings walk an index newest first (`seq`), one row past the page to know whether another follows;
 * `countByState` sums the trigger-maintained `task_counts` rows, so neither grows with the table.
 *
 * Plans never change once stored (a trigger refuses UPDATE), so each store keeps the plans it stored or read, by
 * id, and `getPlan` (read at every step a worker runs) costs no round trip and no decode after the first. A plan
 * enters that cache only once the transaction that wrote or read it has committed, so a unit that stored a plan
 * and then rolled back leaves nothing behind; a plan whose id was already taken (nothing inserted) is not cached.
 *
 * What is stored is first encoded with the core schemas (so a record that could not be read back, e.g. holding a
 * `NaN` timestamp, is refused with `TaskStoreError` and nothing is written), and every row read is decoded with
 * them: a row that does not decode, or whose columns disagree with its record, fails the call with
 * `TaskStoreError`, never a defect. A task's requester and idempotency key are fixed when it is created; `save`
 * updates its state, kind, version and record.
 *
 * @since 0.1.0
 */
import {
  Approval,
  emptyCounts,
  type InvalidInput,
  Plan,
  PlanId,
  PlanNotFound,
  pageSize,
  Step,
  Task,
  TaskExists,
  type TaskFilter,
  TaskId,
  TaskNotFound,
  TaskRecord,
  TaskStore,
  TaskStoreError,
  VersionConflict
} from "@mandate/core"
import { Effect, Layer, Option, Schema, SchemaGetter } from "effect"
import { SqlClient, SqlSchema } from "effect/sql"
import { addFresh } from "./internal/freshTasks.ts"
import { CurrentStaged, insertPending } from "./internal/stagedEntries.ts"
import { type PostgresOptions, resolveSchema } from "./Options.ts"

// `version` is a bigint column (the model's versions are safe integers, which int4 would not hold)
const Version = Schema.BigInt.pipe(
  Schema.decodeTo(Schema.Int, {
    decode: SchemaGetter.transform((n: bigint) => Number(n)),
    encode: SchemaGetter.transform((n: number) => BigInt(n))
  })
)

// A task row: the record's three parts plus the columns it must agree with
const RecordRow = Schema.Struct({
  id: TaskId,
  version: Version,
  task: Task.Task,
  steps: Schema.Array(Step.Step),
  approvals: Schema.Array(Approval)
})

const ListRow = Schema.Struct({ seq: Schema.BigInt, task: Task.Task })
const IdRow = Schema.Struct({ id: TaskId })
const VersionRow = Schema.Struct({ version: Version })
const PlanRow = Schema.Struct({ plan: Plan.Plan })
const CountRow = Schema.Struct({ state: Task.TaskState, n: Schema.Int })

// The states `unfinished` reports, from core's own definition of terminal
const unfinishedStates = (Object.keys(emptyCounts()) as Array<Task.TaskState>).filter((s) => !Task.isTerminal(s))

// JSON text of an encoded value; a non-finite number (which JSON would silently turn into null) is refused
const finiteOnly = (_key: string, value: unknown) => {
  if (typeof value === "number" && !Number.isFinite(value)) throw new Error(`Not storable as JSON: ${value}`)
  return value
}

// A principal id or idempotency key as stored in its text column. Postgres text cannot hold NUL, and UTF-8 cannot
// hold a lone surrogate (the driver would turn it into U+FFFD, so two keys could collide): both are legal in these
// strings. The body of the string's JSON literal is valid text, identical to the string for ordinary ids, and
// injective, so equal columns still mean equal strings and the unique index still means one task per key.
const textKey = (value: string): string => JSON.stringify(value).slice(1, -1)

// Plans this process keeps (a miss costs one read)
const planCacheSize = 10_000

// Cursors are the `seq` of the last task on a page, in base 36 (as the memory store's positions are)
const cursorOf = (seq: bigint): string => seq.toString(36)
const parseCursor = (cursor: string): number | undefined => {
  if (!/^[0-9a-z]{1,11}$/.test(cursor)) return undefined
  const seq = Number.parseInt(cursor, 36)
  return Number.isSafeInteger(seq) ? seq : undefined
}

/**
 * Builds the Postgres task store over the `SqlClient` in context.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeTaskStore = Effect.fnUntraced(function* (options?: PostgresOptions) {
  const sql = yield* SqlClient.SqlClient
  const schema = yield* resolveSchema(options)
  const tasks = sql(`${schema}.tasks`)
  const plans = sql(`${schema}.plans`)
  const taskCounts = sql(`${schema}.task_counts`)

  const storeError = (operation: string) => (cause: unknown) => new TaskStoreError({ operation, cause })

  const encodeRecord = Schema.encodeEffect(TaskRecord)
  const encodePlan = Schema.encodeEffect(Plan.Plan)
  const json = (operation: string, value: unknown) =>
    Effect.try({ try: () => JSON.stringify(value, finiteOnly), catch: storeError(operation) })

  // The record as the three JSON texts stored, or TaskStoreError if it could not be read back
  const stored = (operation: string, record: TaskRecord) =>
    Effect.gen(function* () {
      const encoded = yield* encodeRecord(record).pipe(Effect.mapError(storeError(operation)))
      return {
        task: yield* json(operation, encoded.task),
        steps: yield* json(operation, encoded.steps),
        approvals: yield* json(operation, encoded.approvals)
      }
    })

  // Immutable plans by id, least recently used first (see the module's documentation)
  const planCache = new Map<PlanId, Plan.Plan>()
  const rememberPlan = (plan: Plan.Plan) =>
    sql.afterCommit(
      Effect.sync(() => {
        planCache.delete(plan.id)
        planCache.set(plan.id, plan)
        if (planCache.size > planCacheSize) planCache.delete(planCache.keys().next().value!)
      })
    )

  const storedPlan = (operation: string, plan: Plan.Plan) =>
    Effect.flatMap(Effect.mapError(encodePlan(plan), storeError(operation)), (encoded) => json(operation, encoded))

  // One statement: the task, and its plan only if the task was inserted (`plan_stored`: whether it was)
  const insertTask = (
    record: TaskRecord,
    text: { task: string; steps: string; approvals: string },
    plan?: {
      readonly id: PlanId
      readonly text: string
    }
  ) => {
    const { task } = record
    const values = sql`(${task.id}, ${task.kind}, ${task.state}, ${textKey(task.requestedBy.id)},
              ${task.idempotencyKey === undefined ? null : textKey(task.idempotencyKey)},
              ${task.version}, ${text.task}::json, ${text.steps}::json, ${text.approvals}::json)`
    const columns = sql`(id, kind, state, requested_by, idempotency_key, version, task, steps, approvals)`
    return plan === undefined
      ? sql<{ readonly id: string; readonly plan_stored?: boolean }>`INSERT INTO ${tasks} ${columns}
          VALUES ${values} ON CONFLICT DO NOTHING RETURNING id`
      : sql<{ readonly id: string; readonly plan_stored?: boolean }>`WITH inserted AS (
            INSERT INTO ${tasks} ${columns} VALUES ${values}
            ON CONFLICT DO NOTHING RETURNING id
          ), plan AS (
            INSERT INTO ${plans} (id, task_id, plan)
            SELECT ${plan.id}, id, ${plan.text}::json FROM inserted
            ON CONFLICT (id) DO NOTHING
            RETURNING id
          )
          SELECT id, EXISTS (SELECT 1 FROM plan) AS plan_stored FROM inserted`
  }

  // The task holding the id, or else the one holding the idempotency key (the id is reported first)
  const findConflict = SqlSchema.findOneOption({
    Request: Schema.Struct({ id: TaskId, requestedBy: Schema.String, key: Schema.NullOr(Schema.String) }),
    Result: IdRow,
    execute: ({ id, requestedBy, key }) =>
      sql`SELECT id FROM ${tasks}
          WHERE id = ${id} OR (requested_by = ${requestedBy} AND idempotency_key = ${key})
          ORDER BY id = ${id} DESC LIMIT 1`
  })

  const create = Effect.fn("TaskStore.create")(function* (record: TaskRecord, plan?: Plan.Plan) {
    const { task } = record
    const text = yield* stored("create", record)
    const planText = plan === undefined ? undefined : { id: plan.id, text: yield* storedPlan("create", plan) }
    // A conflicting row can vanish between the insert and the read (deleted by an operator): then insert again
    for (let attempt = 0; attempt < 3; attempt++) {
      const inserted = yield* insertTask(record, text, planText).pipe(Effect.mapError(storeError("create")))
      if (inserted.length > 0) {
        addFresh(sql, task.id)
        if (plan !== undefined && inserted[0]!.plan_stored === true) yield* rememberPlan(plan)
        return
      }
      const conflict = yield* findConflict({
        id: task.id,
        requestedBy: textKey(task.requestedBy.id),
        key: task.idempotencyKey === undefined ? null : textKey(task.idempotencyKey)
      }).pipe(Effect.mapError(storeError("create")))
      if (Option.isSome(conflict)) {
        return yield* new TaskExists({ taskId: task.id, existing: conflict.value.id })
      }
    }
    return yield* storeError("create")(new Error(`Task ${task.id} neither inserted nor conflicting`))
  })

  const findRecord = SqlSchema.findOneOption({
    Request: TaskId,
    Result: RecordRow,
    execute: (id) => sql`SELECT id, version, task, steps, approvals FROM ${tasks} WHERE id = ${id}`
  })

  const get = Effect.fn("TaskStore.get")(function* (taskId: TaskId) {
    const found = yield* findRecord(taskId).pipe(Effect.mapError(storeError("get")))
    if (Option.isNone(found)) return yield* new TaskNotFound({ taskId })
    const row = found.value
    if (row.task.id !== row.id || row.task.version !== row.version) {
      return yield* storeError("get")(
        new Error(`Row ${row.id} (version ${row.version}) holds task ${row.task.id} at version ${row.task.version}`)
      )
    }
    return { task: row.task, steps: row.steps, approvals: row.approvals } satisfies TaskRecord
  })

  const findVersion = SqlSchema.findOneOption({
    Request: TaskId,
    Result: VersionRow,
    execute: (id) => sql`SELECT version FROM ${tasks} WHERE id = ${id}`
  })

  const save = Effect.fn("TaskStore.save")(function* (record: TaskRecord, expectedVersion: number) {
    const { task } = record
    const text = yield* stored("save", record)
    const update = sql`UPDATE ${tasks}
        SET kind = ${task.kind}, state = ${task.state}, version = ${task.version},
            task = ${text.task}::json, steps = ${text.steps}::json, approvals = ${text.approvals}::json
        WHERE id = ${task.id} AND version = ${expectedVersion}
        RETURNING version`
    // The ledger entries the unit staged so far go in the same statement, inserted only if the update took (see
    // `internal/stagedEntries.ts`); on a lost compare-and-set they stay held
    const held = yield* CurrentStaged
    const staged = held !== undefined && held.entries.length > 0 && held.schema !== undefined ? held : undefined
    const taking = staged?.entries.length ?? 0
    const updated = yield* (
      staged === undefined
        ? update
        : sql`WITH updated AS (${update}), staged AS (${insertPending(
            sql,
            staged.schema!,
            staged.entries,
            sql`WHERE EXISTS (SELECT 1 FROM updated)`
          )}) SELECT version FROM updated`
    ).pipe(Effect.mapError(storeError("save")))
    if (updated.length > 0) {
      staged?.entries.splice(0, taking)
      return
    }
    // A new statement, so a new snapshot: it sees the version the winning writer committed
    const current = yield* findVersion(task.id).pipe(Effect.mapError(storeError("save")))
    if (Option.isNone(current)) return yield* new TaskNotFound({ taskId: task.id })
    return yield* new VersionConflict({ taskId: task.id, expected: expectedVersion, found: current.value.version })
  })

  const findByKey = SqlSchema.findOneOption({
    Request: Schema.Struct({ requestedBy: Schema.String, key: Schema.String }),
    Result: IdRow,
    execute: ({ requestedBy, key }) =>
      sql`SELECT id FROM ${tasks} WHERE requested_by = ${requestedBy} AND idempotency_key = ${key}`
  })

  const findByIdempotencyKey = Effect.fn("TaskStore.findByIdempotencyKey")(function* (
    principalId: string,
    key: string
  ) {
    const found = yield* findByKey({ requestedBy: textKey(principalId), key: textKey(key) }).pipe(
      Effect.mapError(storeError("findByIdempotencyKey"))
    )
    return Option.map(found, (row) => row.id)
  })

  const putPlan = Effect.fn("TaskStore.putPlan")(function* (plan: Plan.Plan) {
    const text = yield* storedPlan("putPlan", plan)
    const inserted = yield* sql`INSERT INTO ${plans} (id, task_id, plan)
        VALUES (${plan.id}, ${plan.taskId ?? null}, ${text}::json)
        ON CONFLICT (id) DO NOTHING RETURNING id`.pipe(Effect.mapError(storeError("putPlan")))
    if (inserted.length > 0) yield* rememberPlan(plan)
  })

  const findPlan = SqlSchema.findOneOption({
    Request: PlanId,
    Result: PlanRow,
    execute: (id) => sql`SELECT plan FROM ${plans} WHERE id = ${id}`
  })

  const getPlan = Effect.fn("TaskStore.getPlan")(function* (planId: PlanId) {
    const cached = planCache.get(planId)
    if (cached !== undefined) return cached
    const found = yield* findPlan(planId).pipe(Effect.mapError(storeError("getPlan")))
    if (Option.isNone(found)) return yield* new PlanNotFound({ planId })
    if (found.value.plan.id !== planId) {
      return yield* storeError("getPlan")(new Error(`Row ${planId} holds plan ${found.value.plan.id}`))
    }
    yield* rememberPlan(found.value.plan)
    return found.value.plan
  })

  const list = Effect.fn("TaskStore.list")(function* (filter?: TaskFilter) {
    const limit = pageSize(filter?.limit)
    const states = filter?.states
    if (states !== undefined && states.length === 0) return { tasks: [] }
    let before: number | undefined
    if (filter?.cursor !== undefined) {
      before = parseCursor(filter.cursor)
      // Not a cursor this store handed out: nothing comes after it
      if (before === undefined) return { tasks: [] }
    }
    const scope = filter?.scope
    if (scope?._tag === "Some" && scope.requester === undefined && !scope.gated) return { tasks: [] }
    // The read scope (core's `Access`): the requester's own rows, or rows whose task is gated. `gated` is read from
    // the record (fixed at creation, so no column or migration); the walk is still the `seq` index, newest first.
    const visible =
      scope === undefined || scope._tag === "All"
        ? []
        : scope.requester === undefined
          ? [sql`(task->>'gated') = 'true'`]
          : scope.gated
            ? [sql`(requested_by = ${textKey(scope.requester)} OR (task->>'gated') = 'true')`]
            : [sql`requested_by = ${textKey(scope.requester)}`]
    const where = sql.and([
      ...visible,
      ...(states === undefined ? [] : [sql`state IN ${sql.in(states)}`]),
      ...(filter?.kind === undefined ? [] : [sql`kind = ${filter.kind}`]),
      ...(filter?.requestedBy === undefined ? [] : [sql`requested_by = ${textKey(filter.requestedBy)}`]),
      ...(before === undefined ? [] : [sql`seq < ${before}`])
    ])
    // One row beyond the page says whether another page follows
    const rows = yield* SqlSchema.findAll({
      Request: Schema.Void,
      Result: ListRow,
      execute: () => sql`SELECT seq, task FROM ${tasks} WHERE ${where} ORDER BY seq DESC LIMIT ${limit + 1}`
    })(undefined).pipe(Effect.mapError(storeError("list")))
    const page = rows.slice(0, limit)
    const tasksOnPage = page.map((row) => row.task)
    return rows.length > limit
      ? { tasks: tasksOnPage, nextCursor: cursorOf(page[page.length - 1]!.seq) }
      : { tasks: tasksOnPage }
  })

  const unfinished = SqlSchema.findAll({
    Request: Schema.Void,
    Result: IdRow,
    execute: () => sql`SELECT id FROM ${tasks} WHERE state IN ${sql.in(unfinishedStates)} ORDER BY seq`
  })(undefined).pipe(
    Effect.map((rows) => rows.map((row) => row.id)),
    Effect.mapError(storeError("unfinished")),
    Effect.withSpan("TaskStore.unfinished")
  )

  const countByState = SqlSchema.findAll({
    Request: Schema.Void,
    Result: CountRow,
    execute: () => sql`SELECT state, sum(n)::int AS n FROM ${taskCounts} GROUP BY state HAVING sum(n) <> 0`
  })(undefined).pipe(
    Effect.map((rows) => {
      const counts = emptyCounts()
      for (const row of rows) counts[row.state] = row.n
      return counts
    }),
    Effect.mapError(storeError("countByState")),
    Effect.withSpan("TaskStore.countByState")
  )

  return TaskStore.of({
    create,
    get,
    save,
    findByIdempotencyKey,
    putPlan,
    getPlan,
    list,
    unfinished,
    countByState
  })
})

/**
 * The Postgres task store as a layer over the shared `SqlClient` (see `makeTaskStore`).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerTaskStore = (options?: PostgresOptions): Layer.Layer<TaskStore, InvalidInput, SqlClient.SqlClient> =>
  Layer.effect(TaskStore, makeTaskStore(options))
