/**
 * `TaskStore` on Redis: each task a hash (its record as JSON, beside the fields the scripts need: version, state,
 * kind, requester, creation sequence), sorted-set indexes scored by creation sequence, plans as JSON strings.
 *
 * Every write is one Lua script, so it is atomic: `create` checks the id and the (requester, idempotency key)
 * and stores the task, its indexes and its key together; `save` is a compare-and-set on the stored version, so two
 * runtimes can never both advance one task, and moves the task between state indexes in the same step.
 *
 * Reads use the indexes, never a key scan: listings walk one sorted set newest first from the cursor (the
 * creation sequence of the last task returned). The state indexes are exact, so a listing by state merges them
 * directly; the kind and requester indexes are candidates checked against the hash (a save that changed a task's
 * kind leaves a stale entry behind, which the check skips). A listing script examines a bounded number of
 * entries per call and the client resumes it, so a selective filter over a large index never blocks Redis long.
 * A read scope (core's `Access`) is checked against each hash's `requester` and `gated` fields (`gated` is written
 * once, at creation): a scope of one requester's own tasks walks that requester's index; an approver's scope (its
 * own tasks and every gated one) walks the index of all tasks, as an unfiltered listing does.
 *
 * @since 0.1.0
 */
import {
  type Plan as CorePlan,
  emptyCounts,
  type InvalidInput,
  type PlanId,
  Plan as PlanModule,
  PlanNotFound,
  pageSize,
  TaskExists,
  type TaskFilter,
  TaskId,
  Task as TaskModule,
  TaskNotFound,
  type TaskPage,
  TaskRecord,
  TaskStore,
  TaskStoreError,
  VersionConflict
} from "@mandate/core"
import { Effect, Layer, Option, Schema } from "effect"
import { Redis } from "effect/persistence"
import { idempotencyField, makeKeys, type RedisOptions, resolvePrefix } from "./Keys.ts"
import { guard, operation, type UnitState, unitOf } from "./Unit.ts"

type TaskState = TaskModule.TaskState

// The state indexes in a fixed order: the save script receives all of them and moves the task between two
const states: ReadonlyArray<TaskState> = TaskModule.TaskState.literals
const unfinishedStates: ReadonlyArray<TaskState> = states.filter((state) => !TaskModule.isTerminal(state))

const RecordJson = Schema.fromJsonString(TaskRecord)
const PlanJson = Schema.fromJsonString(PlanModule.Plan)
const TaskIds = Schema.Array(TaskId)

// Entries a listing script examines per call before handing back to the client
const scanBudget = 2_000

/**
 * Builds the Redis task store over the `Redis` service in context.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeTaskStore = Effect.fnUntraced(function* (options?: RedisOptions) {
  const redis = yield* Redis.Redis
  const keys = makeKeys(yield* resolvePrefix(options))
  const stateKeys = states.map(keys.tasksByState)

  const storeError = (operation: string) => (cause: unknown) => new TaskStoreError({ operation, cause })
  const encodeRecord = (record: TaskRecord, operation: string) =>
    Schema.encodeEffect(RecordJson)(record).pipe(Effect.mapError(storeError(operation)))
  const decodeRecord = (json: string, operation: string) =>
    Schema.decodeUnknownEffect(RecordJson)(json).pipe(Effect.mapError(storeError(operation)))

  const createScript = redis.eval(createTask)
  const saveScript = redis.eval(saveTask)
  const listScript = redis.eval(listTasks)
  const countScript = redis.eval(countTasks)

  const create = Effect.fn("TaskStore.create")(function* (record: TaskRecord, plan?: CorePlan.Plan) {
    const { task } = record
    const json = yield* encodeRecord(record, "create")
    const planJson =
      plan === undefined ? "" : yield* Schema.encodeEffect(PlanJson)(plan).pipe(Effect.mapError(storeError("create")))
    const unit = yield* unitOf(redis)
    if (unit !== undefined) return yield* createInUnit(unit, record, plan, json, planJson)
    const [created, existing] = yield* createScript(
      keys.task(task.id),
      keys.taskIdempotency,
      keys.taskSequence,
      keys.tasksAll,
      keys.tasksByState(task.state),
      keys.tasksByKind(task.kind),
      keys.tasksByRequester(task.requestedBy.id),
      keys.plan(plan?.id ?? ""),
      task.id,
      task.idempotencyKey === undefined ? "" : idempotencyField(task.requestedBy.id, task.idempotencyKey),
      json,
      task.version,
      task.state,
      task.kind,
      task.requestedBy.id,
      planJson,
      task.gated === true ? "1" : "0"
    ).pipe(Effect.mapError(storeError("create")))
    if (created === 0) return yield* new TaskExists({ taskId: task.id, existing: String(existing) })
  })

  // In a unit (see Unit.ts): checked now against Redis and the unit's own writes, written at its commit, guarded on
  // the id and the idempotency key being free
  const createInUnit = (
    unit: UnitState,
    record: TaskRecord,
    plan: CorePlan.Plan | undefined,
    json: string,
    planJson: string
  ) =>
    Effect.gen(function* () {
      const { task } = record
      const key = keys.task(task.id)
      const idempotency =
        task.idempotencyKey === undefined ? "" : idempotencyField(task.requestedBy.id, task.idempotencyKey)
      const [exists, existing] = yield* Effect.all([
        redis.send<number>("EXISTS", key),
        idempotency === "" ? Effect.succeed(null) : redis.send<string | null>("HGET", keys.taskIdempotency, idempotency)
      ]).pipe(Effect.mapError(storeError("create")))
      if (exists === 1 || unit.tasks.has(key)) return yield* new TaskExists({ taskId: task.id, existing: task.id })
      const claimedBy = unit.claimed.get(`${keys.taskIdempotency}\u0000${idempotency}`)
      if (idempotency !== "" && (existing !== null || claimedBy !== undefined)) {
        return yield* new TaskExists({ taskId: task.id, existing: String(existing ?? claimedBy) })
      }
      guard(unit, key, "version", null)
      if (idempotency !== "") {
        guard(unit, keys.taskIdempotency, idempotency, null)
        unit.claimed.set(`${keys.taskIdempotency}\u0000${idempotency}`, task.id)
      }
      unit.operations.push(
        operation(
          "createTask",
          createTask,
          key,
          keys.taskIdempotency,
          keys.taskSequence,
          keys.tasksAll,
          keys.tasksByState(task.state),
          keys.tasksByKind(task.kind),
          keys.tasksByRequester(task.requestedBy.id),
          keys.plan(plan?.id ?? ""),
          task.id,
          idempotency,
          json,
          task.version,
          task.state,
          task.kind,
          task.requestedBy.id,
          planJson,
          task.gated === true ? "1" : "0"
        )
      )
      unit.tasks.set(key, record)
      if (plan !== undefined) unit.plans.set(keys.plan(plan.id), planJson)
    })

  const get = Effect.fn("TaskStore.get")(function* (taskId: TaskId) {
    const own = (yield* unitOf(redis))?.tasks.get(keys.task(taskId))
    if (own !== undefined) return own
    const json = yield* redis
      .send<string | null>("HGET", keys.task(taskId), "record")
      .pipe(Effect.mapError(storeError("get")))
    if (json === null) return yield* new TaskNotFound({ taskId })
    return yield* decodeRecord(json, "get")
  })

  const save = Effect.fn("TaskStore.save")(function* (record: TaskRecord, expectedVersion: number) {
    const { task } = record
    const json = yield* encodeRecord(record, "save")
    const unit = yield* unitOf(redis)
    if (unit !== undefined) {
      // In a unit: compare now (with the unit's own write of the task, or the stored version, then guarded on it)
      const key = keys.task(task.id)
      const own = unit.tasks.get(key)
      let found: number
      if (own !== undefined) found = own.task.version
      else {
        const stored = yield* redis
          .send<string | null>("HGET", key, "version")
          .pipe(Effect.mapError(storeError("save")))
        if (stored === null) return yield* new TaskNotFound({ taskId: task.id })
        found = Number(stored)
        if (found === expectedVersion) guard(unit, key, "version", stored)
      }
      if (found !== expectedVersion) {
        return yield* new VersionConflict({ taskId: task.id, expected: expectedVersion, found })
      }
      unit.operations.push(
        operation(
          "saveTask",
          saveTask,
          key,
          stateKeys,
          keys.tasksByKind(task.kind),
          keys.tasksByRequester(task.requestedBy.id),
          task.id,
          expectedVersion,
          json,
          task.version,
          task.state,
          task.kind,
          task.requestedBy.id
        )
      )
      unit.tasks.set(key, record)
      return
    }
    const [outcome, found] = yield* saveScript(
      keys.task(task.id),
      stateKeys,
      keys.tasksByKind(task.kind),
      keys.tasksByRequester(task.requestedBy.id),
      task.id,
      expectedVersion,
      json,
      task.version,
      task.state,
      task.kind,
      task.requestedBy.id
    ).pipe(Effect.mapError(storeError("save")))
    if (outcome === "missing") return yield* new TaskNotFound({ taskId: task.id })
    if (outcome === "conflict") {
      return yield* new VersionConflict({ taskId: task.id, expected: expectedVersion, found: Number(found) })
    }
  })

  const findByIdempotencyKey = Effect.fn("TaskStore.findByIdempotencyKey")(function* (
    principalId: string,
    key: string
  ) {
    const id = yield* redis
      .send<string | null>("HGET", keys.taskIdempotency, idempotencyField(principalId, key))
      .pipe(Effect.mapError(storeError("findByIdempotencyKey")))
    if (id === null) return Option.none<TaskId>()
    return Option.some(
      yield* Schema.decodeUnknownEffect(TaskId)(id).pipe(Effect.mapError(storeError("findByIdempotencyKey")))
    )
  })

  const putPlan = Effect.fn("TaskStore.putPlan")(function* (plan: CorePlan.Plan) {
    const json = yield* Schema.encodeEffect(PlanJson)(plan).pipe(Effect.mapError(storeError("putPlan")))
    const unit = yield* unitOf(redis)
    if (unit !== undefined) {
      unit.operations.push(operation("putPlan", putPlanScript, keys.plan(plan.id), json))
      if (!unit.plans.has(keys.plan(plan.id))) unit.plans.set(keys.plan(plan.id), json)
      return
    }
    // NX: plans are immutable, the first stored copy stays
    yield* redis.send("SET", keys.plan(plan.id), json, "NX").pipe(Effect.mapError(storeError("putPlan")))
  })

  const getPlan = Effect.fn("TaskStore.getPlan")(function* (planId: PlanId) {
    const json =
      (yield* unitOf(redis))?.plans.get(keys.plan(planId)) ??
      (yield* redis.send<string | null>("GET", keys.plan(planId)).pipe(Effect.mapError(storeError("getPlan"))))
    if (json === null) return yield* new PlanNotFound({ planId })
    return yield* Schema.decodeUnknownEffect(PlanJson)(json).pipe(Effect.mapError(storeError("getPlan")))
  })

  const list = Effect.fn("TaskStore.list")(function* (filter?: TaskFilter) {
    const limit = pageSize(filter?.limit)
    let bound = "+inf"
    if (filter?.cursor !== undefined) {
      // The cursor is the creation sequence of the last task returned; a cursor that is not one lists nothing
      const parsed = Number.parseInt(filter.cursor, 36)
      if (!Number.isFinite(parsed)) return { tasks: [] } satisfies TaskPage
      bound = `(${parsed}`
    }
    const filterStates = filter?.states === undefined ? undefined : [...new Set(filter.states)]
    if (filterStates !== undefined && filterStates.length === 0) return { tasks: [] } satisfies TaskPage
    // The read scope (core's `Access`), checked against each hash's requester and gated fields
    const scope = filter?.scope?._tag === "Some" ? filter.scope : undefined
    if (scope !== undefined && scope.requester === undefined && !scope.gated) return { tasks: [] } satisfies TaskPage

    // Candidates: the requester's or the kind's index (checked against each hash), the scope's requester index when
    // it may see only its own tasks, else the exact state indexes merged, else every task
    const candidates: ReadonlyArray<string> =
      filter?.requestedBy !== undefined
        ? [keys.tasksByRequester(filter.requestedBy)]
        : filter?.kind !== undefined
          ? [keys.tasksByKind(filter.kind)]
          : scope?.requester !== undefined && !scope.gated
            ? [keys.tasksByRequester(scope.requester)]
            : filterStates !== undefined && scope === undefined
              ? filterStates.map(keys.tasksByState)
              : [keys.tasksAll]
    const verify = filter?.requestedBy !== undefined || filter?.kind !== undefined || scope !== undefined

    // limit + 1 matches: the extra one only says whether another page exists
    const wanted = limit + 1
    const found: Array<{ readonly seq: number; readonly json: string }> = []
    for (;;) {
      const [exhausted, resume, ...rest] = yield* listScript(
        candidates,
        verify ? "verify" : "merge",
        bound,
        wanted - found.length,
        keys.taskPrefix,
        filter?.kind ?? "",
        filter?.requestedBy ?? "",
        verify && filterStates !== undefined ? filterStates.join(",") : "",
        scanBudget,
        scope === undefined ? "" : "some",
        scope?.requester ?? "",
        scope?.gated === true ? "1" : "0"
      ).pipe(Effect.mapError(storeError("list")))
      for (let i = 0; i + 1 < rest.length; i += 2) found.push({ seq: Number(rest[i]), json: String(rest[i + 1]) })
      if (exhausted === 1 || found.length >= wanted) break
      bound = `(${resume}`
    }

    const page = found.slice(0, limit)
    const tasks = yield* Effect.forEach(page, ({ json }) =>
      Effect.map(decodeRecord(json, "list"), (record) => record.task)
    )
    return found.length > limit ? { tasks, nextCursor: page[page.length - 1]!.seq.toString(36) } : { tasks }
  })

  const unfinished = Effect.gen(function* () {
    // Every task is in exactly one state index, scored by its creation sequence: the union is in creation order
    const ids = yield* redis
      .send<ReadonlyArray<string>>(
        "ZUNION",
        String(unfinishedStates.length),
        ...unfinishedStates.map(keys.tasksByState)
      )
      .pipe(Effect.mapError(storeError("unfinished")))
    return yield* Schema.decodeUnknownEffect(TaskIds)(ids).pipe(Effect.mapError(storeError("unfinished")))
  }).pipe(Effect.withSpan("TaskStore.unfinished"))

  const countByState = Effect.gen(function* () {
    const sizes = yield* countScript(stateKeys).pipe(Effect.mapError(storeError("countByState")))
    const counts = emptyCounts()
    states.forEach((state, i) => {
      counts[state] = Number(sizes[i] ?? 0)
    })
    return counts
  }).pipe(Effect.withSpan("TaskStore.countByState"))

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
 * The Redis task store as a layer over the `Redis` service.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerTaskStore = (options?: RedisOptions): Layer.Layer<TaskStore, InvalidInput, Redis.Redis> =>
  Layer.effect(TaskStore, makeTaskStore(options))

// KEYS: task, idempotency hash, sequence, all, state index, kind index, requester index, plan
// ARGV: id, idempotency field ("" for none), record JSON, version, state, kind, requester, plan JSON ("" for none),
//       gated ("1" or "0": fixed at creation, read by listings' scope check)
// Returns {1, seq} when stored, {0, existing id} when the id or the idempotency key is taken
const createTask = Redis.script(
  (
    keyTask: string,
    keyIdempotency: string,
    keySequence: string,
    keyAll: string,
    keyState: string,
    keyKind: string,
    keyRequester: string,
    keyPlan: string,
    id: string,
    idempotency: string,
    record: string,
    version: number,
    state: string,
    kind: string,
    requester: string,
    plan: string,
    gated: string
  ) => [
    keyTask,
    keyIdempotency,
    keySequence,
    keyAll,
    keyState,
    keyKind,
    keyRequester,
    keyPlan,
    id,
    idempotency,
    record,
    version,
    state,
    kind,
    requester,
    plan,
    gated
  ],
  {
    numberOfKeys: 8,
    lua: `
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, ARGV[1]} end
if ARGV[2] ~= '' then
  local existing = redis.call('HGET', KEYS[2], ARGV[2])
  if existing then return {0, existing} end
end
local seq = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], 'record', ARGV[3], 'version', ARGV[4], 'state', ARGV[5], 'kind', ARGV[6],
  'requester', ARGV[7], 'seq', seq, 'gated', ARGV[9])
redis.call('ZADD', KEYS[4], seq, ARGV[1])
redis.call('ZADD', KEYS[5], seq, ARGV[1])
redis.call('ZADD', KEYS[6], seq, ARGV[1])
redis.call('ZADD', KEYS[7], seq, ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[2], ARGV[2], ARGV[1]) end
if ARGV[8] ~= '' then redis.call('SET', KEYS[8], ARGV[8], 'NX') end
return {1, seq}
`
  }
).withReturnType<readonly [created: 0 | 1, existingOrSeq: string | number]>()

// KEYS: task, the state indexes (in \`states\` order), kind index, requester index
// ARGV: id, expected version, record JSON, new version, new state, kind, requester, then the state names
// Returns {'saved'}, {'missing'} or {'conflict', stored version}
const saveTask = Redis.script(
  (
    keyTask: string,
    keyStates: ReadonlyArray<string>,
    keyKind: string,
    keyRequester: string,
    id: string,
    expected: number,
    record: string,
    version: number,
    state: string,
    kind: string,
    requester: string
  ) => [keyTask, ...keyStates, keyKind, keyRequester, id, expected, record, version, state, kind, requester, ...states],
  {
    numberOfKeys: (_task, keyStates) => 3 + keyStates.length,
    lua: `
local states = #KEYS - 3
local current = redis.call('HMGET', KEYS[1], 'version', 'state', 'kind', 'requester', 'seq')
if not current[1] then return {'missing'} end
if tonumber(current[1]) ~= tonumber(ARGV[2]) then return {'conflict', current[1]} end
local seq = current[5]
redis.call('HSET', KEYS[1], 'record', ARGV[3], 'version', ARGV[4], 'state', ARGV[5], 'kind', ARGV[6],
  'requester', ARGV[7])
if current[2] ~= ARGV[5] then
  for i = 1, states do
    local name = ARGV[7 + i]
    if name == current[2] then redis.call('ZREM', KEYS[1 + i], ARGV[1]) end
    if name == ARGV[5] then redis.call('ZADD', KEYS[1 + i], seq, ARGV[1]) end
  end
end
if current[3] ~= ARGV[6] then redis.call('ZADD', KEYS[states + 2], seq, ARGV[1]) end
if current[4] ~= ARGV[7] then redis.call('ZADD', KEYS[states + 3], seq, ARGV[1]) end
return {'saved'}
`
  }
).withReturnType<readonly [outcome: "saved" | "missing" | "conflict", found?: string]>()

// KEYS: the candidate indexes (one for "verify", one or more exact ones for "merge")
// ARGV: mode, upper bound (exclusive, "(n" or "+inf"), matches wanted, task key prefix, kind, requester,
//       comma-separated states (the last three "" when not filtered), scan budget, then the read scope: "some"
//       ("" for none), its requester ("" for none), whether it sees gated tasks ("1" or "0")
// Returns {exhausted (0|1), resume bound, seq, record JSON, seq, record JSON, ...} newest first
const listTasks = Redis.script(
  (
    keyCandidates: ReadonlyArray<string>,
    mode: "merge" | "verify",
    bound: string,
    wanted: number,
    taskPrefix: string,
    kind: string,
    requester: string,
    statesFilter: string,
    budget: number,
    scope: string,
    scopeRequester: string,
    scopeGated: string
  ) => [
    ...keyCandidates,
    mode,
    bound,
    wanted,
    taskPrefix,
    kind,
    requester,
    statesFilter,
    budget,
    scope,
    scopeRequester,
    scopeGated
  ],
  {
    numberOfKeys: (keyCandidates) => keyCandidates.length,
    lua: `
local mode, bound, wanted, prefix = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local out = {}
if mode == 'merge' then
  -- exact indexes: the newest \`wanted\` of each, merged, are the newest \`wanted\` overall
  local entries = {}
  for i = 1, #KEYS do
    local range = redis.call('ZRANGE', KEYS[i], bound, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, wanted, 'WITHSCORES')
    for j = 1, #range, 2 do entries[#entries + 1] = {range[j], tonumber(range[j + 1])} end
  end
  table.sort(entries, function(a, b) return a[2] > b[2] end)
  out[1], out[2] = 1, ''
  for i = 1, math.min(wanted, #entries) do
    local record = redis.call('HGET', prefix .. entries[i][1], 'record')
    if record then
      out[#out + 1] = entries[i][2]
      out[#out + 1] = record
    end
  end
  return out
end
local kind, requester, budget = ARGV[5], ARGV[6], tonumber(ARGV[8])
local scope, scopeRequester, scopeGated = ARGV[9], ARGV[10], ARGV[11]
local allowed = nil
if ARGV[7] ~= '' then
  allowed = {}
  for name in string.gmatch(ARGV[7], '[^,]+') do allowed[name] = true end
end
out[1], out[2] = 0, ''
local scanned, matched = 0, 0
local batch = math.min(budget, math.max(wanted * 2, 50))
while scanned < budget and matched < wanted do
  local range = redis.call('ZRANGE', KEYS[1], bound, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, batch, 'WITHSCORES')
  for j = 1, #range, 2 do
    local id, seq = range[j], range[j + 1]
    scanned = scanned + 1
    out[2] = seq
    local fields = redis.call('HMGET', prefix .. id, 'state', 'kind', 'requester', 'record', 'gated')
    if fields[4] and (kind == '' or fields[2] == kind) and (requester == '' or fields[3] == requester)
        and (allowed == nil or allowed[fields[1]])
        and (scope == '' or (scopeRequester ~= '' and fields[3] == scopeRequester)
          or (scopeGated == '1' and fields[5] == '1')) then
      out[#out + 1] = seq
      out[#out + 1] = fields[4]
      matched = matched + 1
      if matched >= wanted then return out end
    end
  end
  if #range < batch * 2 then
    out[1] = 1
    return out
  end
  bound = '(' .. out[2]
end
return out
`
  }
).withReturnType<readonly [exhausted: 0 | 1, resume: string, ...entries: Array<string | number>]>()

// KEYS: plan. ARGV: plan JSON. Stores the plan unless one is stored (a unit's operation; alone, SET NX is one command)
const putPlanScript = Redis.script((keyPlan: string, json: string) => [keyPlan, json], {
  numberOfKeys: 1,
  lua: `redis.call('SET', KEYS[1], ARGV[1], 'NX')
return 1`
})

/**
 * The task store's unit operations, by name (for committers of units that create and save tasks).
 *
 * @category constants
 * @since 0.1.0
 */
export const taskStoreOperations: Readonly<Record<string, string>> = {
  createTask: createTask.lua,
  saveTask: saveTask.lua,
  putPlan: putPlanScript.lua
}

// KEYS: the state indexes. Returns their sizes, in order
const countTasks = Redis.script((keyStates: ReadonlyArray<string>) => keyStates, {
  numberOfKeys: (keyStates) => keyStates.length,
  lua: `
local sizes = {}
for i = 1, #KEYS do sizes[i] = redis.call('ZCARD', KEYS[i]) end
return sizes
`
}).withReturnType<ReadonlyArray<number>>()
