/**
 * The TaskStore conformance suite: the whole behavioural contract of `TaskStore`, for any backend.
 *
 * ```ts
 * import { suite } from "@mandate/core/conformance/taskStore"
 * suite("postgres", Postgres.layerTaskStore().pipe(Layer.provide(MyPgClient)))
 * ```
 *
 * @since 0.1.0
 */
import { assert, layer } from "@effect/vitest"
import {
  type Approval,
  type Plan,
  PlanId,
  PolicyVersion,
  Principal,
  Sha256Hex,
  type Step,
  StepId,
  type Task,
  type TaskFilter,
  TaskId,
  type TaskRecord,
  TaskStore
} from "@mandate/core"
import { Effect, type Layer, Option } from "effect"

const uid = () => crypto.randomUUID().slice(0, 8)
const hex = (c: string) => c.repeat(64)

/**
 * A valid task record for tests: a three-step task requested by `requester`.
 *
 * @category fixtures
 * @since 0.1.0
 */
export const makeRecord = (options?: {
  readonly id?: string
  readonly kind?: string
  readonly requester?: string
  readonly state?: Task.TaskState
  readonly idempotencyKey?: string
  readonly createdAt?: number
}): TaskRecord => {
  const taskId = TaskId.make(options?.id ?? `task_${uid()}`)
  const task: Task.Task = {
    id: taskId,
    kind: options?.kind ?? "transfer_funds",
    params: { from: "A".repeat(60), to: "B".repeat(60), amount: 10, memo: { nested: [1, "two", null, true] } },
    priority: "normal",
    ...(options?.idempotencyKey === undefined ? {} : { idempotencyKey: options.idempotencyKey }),
    requestedBy: Principal.make(options?.requester ?? "alice", ["submitter"]),
    state: options?.state ?? "running",
    planId: PlanId.make(`plan_${taskId}`),
    policyVersion: PolicyVersion.make(hex("a")),
    reasons: [],
    createdAt: options?.createdAt ?? 1_700_000_000_000,
    updatedAt: options?.createdAt ?? 1_700_000_000_000,
    version: 0
  }
  const step = (id: string, state: Step.StepState, extra?: Partial<Step.Step>): Step.Step => ({
    taskId,
    id: StepId.make(id),
    type: id,
    state,
    attempts: 0,
    round: 0,
    updatedAt: task.createdAt,
    ...extra
  })
  return {
    task,
    steps: [
      step("check_balance", "succeeded", { attempts: 1, result: { balance: 500, ok: true } }),
      step("policy_check", "running", { attempts: 2, error: { message: "flaky", retryable: true } }),
      step("onchain_action", "waiting_approval", { deadlineAt: task.createdAt + 60_000 })
    ],
    approvals: []
  }
}

/**
 * A plan matching `makeRecord`'s task.
 *
 * @category fixtures
 * @since 0.1.0
 */
export const makePlan = (record: TaskRecord): Plan.Plan => ({
  id: record.task.planId!,
  taskId: record.task.id,
  kind: record.task.kind,
  params: record.task.params,
  steps: record.steps.map((s, i) => ({
    id: s.id,
    type: s.type,
    params: { n: i },
    dependsOn: i === 0 ? [] : [record.steps[i - 1]!.id],
    decision: {
      effect: i === 2 ? "require_approval" : "allow",
      matchedRules: ["r"],
      reasons: ["because"],
      policyVersion: record.task.policyVersion!,
      ...(i === 2 ? { approvals: { required: 2, timeoutSeconds: 60 } } : {})
    },
    paramsHash: Sha256Hex.make(hex("b"))
  })),
  policyVersion: record.task.policyVersion!,
  hash: Sha256Hex.make(hex("c")),
  createdAt: record.task.createdAt
})

const advance = (record: TaskRecord, patch: Partial<Task.Task>): TaskRecord => ({
  ...record,
  task: { ...record.task, ...patch, version: record.task.version + 1 }
})

/**
 * Runs the TaskStore contract against `storeLayer`.
 *
 * @category suites
 * @since 0.1.0
 */
export const suite = (name: string, storeLayer: Layer.Layer<TaskStore, unknown>): void =>
  layer(storeLayer, { timeout: "60 seconds" })(`TaskStore conformance (${name})`, (it) => {
    it.effect("creates, reads back exactly, and stores the plan", () =>
      Effect.gen(function* () {
        const store = yield* TaskStore
        const record = makeRecord()
        const plan = makePlan(record)
        yield* store.create(record, plan)
        assert.deepStrictEqual(yield* store.get(record.task.id), record)
        assert.deepStrictEqual(yield* store.getPlan(plan.id), plan)
        const missing = yield* Effect.flip(store.get(TaskId.make(`task_missing_${uid()}`)))
        assert.strictEqual(missing._tag, "TaskNotFound")
        const noPlan = yield* Effect.flip(store.getPlan(PlanId.make(`plan_missing_${uid()}`)))
        assert.strictEqual(noPlan._tag, "PlanNotFound")
        // A traced task keeps its trace: steps enqueued later (after an approval) join it from the stored task
        const base = makeRecord()
        const traced = {
          ...base,
          task: { ...base.task, trace: { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7" } }
        }
        yield* store.create(traced, makePlan(traced))
        assert.deepStrictEqual(yield* store.get(traced.task.id), traced)
      })
    )

    it.effect("refuses a duplicate id and a duplicate idempotency key per requester", () =>
      Effect.gen(function* () {
        const store = yield* TaskStore
        const requester = `req-${uid()}`
        const key = `key-${uid()}`
        const first = makeRecord({ requester, idempotencyKey: key })
        yield* store.create(first)
        const sameId = yield* Effect.flip(store.create(makeRecord({ id: first.task.id })))
        assert.strictEqual(sameId._tag, "TaskExists")
        const sameKey = yield* Effect.flip(store.create(makeRecord({ requester, idempotencyKey: key })))
        assert.strictEqual(sameKey._tag, "TaskExists")
        if (sameKey._tag === "TaskExists") assert.strictEqual(sameKey.existing, first.task.id)
        // the same key from another requester is a different task
        const other = makeRecord({ requester: `other-${uid()}`, idempotencyKey: key })
        yield* store.create(other)
        assert.deepStrictEqual(yield* store.findByIdempotencyKey(requester, key), Option.some(first.task.id))
        assert.deepStrictEqual(
          yield* store.findByIdempotencyKey(other.task.requestedBy.id, key),
          Option.some(other.task.id)
        )
        assert.isTrue(Option.isNone(yield* store.findByIdempotencyKey(requester, `nope-${uid()}`)))
      })
    )

    it.effect("concurrent creates with one idempotency key store exactly one task", () =>
      Effect.gen(function* () {
        const store = yield* TaskStore
        const requester = `req-${uid()}`
        const results = yield* Effect.all(
          Array.from({ length: 16 }, () =>
            Effect.result(store.create(makeRecord({ requester, idempotencyKey: "once" })))
          ),
          { concurrency: "unbounded" }
        )
        assert.strictEqual(results.filter((r) => r._tag === "Success").length, 1)
        assert.strictEqual((yield* store.list({ requestedBy: requester })).tasks.length, 1)
      })
    )

    it.effect("saves compare-and-set on the version", () =>
      Effect.gen(function* () {
        const store = yield* TaskStore
        const record = makeRecord()
        yield* store.create(record)
        const approval: Approval = {
          taskId: record.task.id,
          stepId: StepId.make("onchain_action"),
          round: 0,
          principal: Principal.make("bob", ["approver"]),
          decision: "granted",
          comment: "ok by me",
          at: 5,
          paramsHash: Sha256Hex.make(hex("b")),
          planHash: Sha256Hex.make(hex("c")),
          policyVersion: PolicyVersion.make(hex("a"))
        }
        const next: TaskRecord = {
          ...advance(record, { state: "waiting_approval", updatedAt: 10 }),
          approvals: [approval],
          steps: record.steps.map((s) => (s.id === "policy_check" ? { ...s, state: "succeeded", result: [1, 2] } : s))
        }
        yield* store.save(next, 0)
        assert.deepStrictEqual(yield* store.get(record.task.id), next)
        const stale = yield* Effect.flip(store.save(advance(record, { state: "failed" }), 0))
        assert.strictEqual(stale._tag, "VersionConflict")
        if (stale._tag === "VersionConflict") assert.deepStrictEqual([stale.expected, stale.found], [0, 1])
        assert.deepStrictEqual(yield* store.get(record.task.id), next) // nothing lost
        const unknown = yield* Effect.flip(store.save(makeRecord(), 0))
        assert.strictEqual(unknown._tag, "TaskNotFound")
      })
    )

    it.effect("of many concurrent writers at one version, exactly one wins", () =>
      Effect.gen(function* () {
        const store = yield* TaskStore
        const record = makeRecord()
        yield* store.create(record)
        const results = yield* Effect.all(
          Array.from({ length: 20 }, (_, i) =>
            Effect.result(store.save(advance(record, { reasons: [`writer ${i}`] }), 0))
          ),
          { concurrency: "unbounded" }
        )
        const winners = results.flatMap((r, i) => (r._tag === "Success" ? [i] : []))
        assert.strictEqual(winners.length, 1)
        assert.deepStrictEqual((yield* store.get(record.task.id)).task.reasons, [`writer ${winners[0]}`])
        assert.isTrue(results.every((r) => r._tag === "Success" || r.failure._tag === "VersionConflict"))
      })
    )

    it.effect("stores plans idempotently", () =>
      Effect.gen(function* () {
        const store = yield* TaskStore
        const plan = makePlan(makeRecord())
        yield* store.putPlan(plan)
        yield* store.putPlan(plan)
        assert.deepStrictEqual(yield* store.getPlan(plan.id), plan)
      })
    )

    it.effect("lists newest first, filtered and paginated, each task exactly once", () =>
      Effect.gen(function* () {
        const store = yield* TaskStore
        const requester = `lister-${uid()}`
        const created: Array<TaskRecord> = []
        for (let i = 0; i < 23; i++) {
          const record = makeRecord({
            requester,
            kind: i % 2 === 0 ? "even_kind" : "odd_kind",
            state: i % 3 === 0 ? "completed" : "running",
            createdAt: 1_700_000_000_000 + i
          })
          yield* store.create(record)
          created.push(record)
        }
        const all: Array<string> = []
        let cursor: string | undefined
        let pages = 0
        do {
          const page = yield* store.list({ requestedBy: requester, limit: 5, cursor })
          assert.isAtMost(page.tasks.length, 5)
          all.push(...page.tasks.map((t) => t.id))
          cursor = page.nextCursor
          pages++
        } while (cursor !== undefined)
        assert.strictEqual(pages, 5)
        assert.deepStrictEqual(all, created.map((r) => r.task.id).reverse())
        const completed = yield* store.list({ requestedBy: requester, states: ["completed"], limit: 100 })
        assert.deepStrictEqual(
          completed.tasks.map((t) => t.id),
          created
            .filter((_, i) => i % 3 === 0)
            .map((r) => r.task.id)
            .reverse()
        )
        assert.isUndefined(completed.nextCursor)
        const odd = yield* store.list({ requestedBy: requester, kind: "odd_kind", states: ["running"] })
        assert.deepStrictEqual(
          odd.tasks.map((t) => t.id),
          created
            .filter((_, i) => i % 2 === 1 && i % 3 !== 0)
            .map((r) => r.task.id)
            .reverse()
        )
        const exact = yield* store.list({ requestedBy: requester, limit: 23 })
        assert.strictEqual(exact.tasks.length, 23)
        assert.isUndefined(exact.nextCursor)
        const clamped = yield* store.list({ requestedBy: requester, limit: 0 })
        assert.strictEqual(clamped.tasks.length, 1)
      })
    )

    it.effect("lists only the tasks a read scope allows, paginated, each exactly once", () =>
      Effect.gen(function* () {
        const store = yield* TaskStore
        // A kind of this test's own keeps other tests' tasks out of the listings
        const kind = `scope_${uid()}`
        const me = `viewer-${uid()}`
        const created: Array<TaskRecord> = []
        for (let i = 0; i < 18; i++) {
          const record = makeRecord({
            kind,
            requester: i % 3 === 0 ? me : `other-${uid()}`,
            state: i % 2 === 0 ? "running" : "waiting_approval",
            createdAt: 1_700_000_000_000 + i
          })
          // Every fourth task is gated; one of them is also mine. Task 5 predates the flag (absent: not gated)
          const gated = i === 5 ? {} : { gated: i % 4 === 0 }
          const stored = { ...record, task: { ...record.task, ...gated } }
          yield* store.create(stored)
          created.push(stored)
        }
        const expected = (keep: (t: Task.Task) => boolean) =>
          created
            .map((r) => r.task)
            .filter(keep)
            .map((t) => t.id)
            .reverse()
        const listAll = (filter: TaskFilter) =>
          Effect.gen(function* () {
            const ids: Array<string> = []
            let cursor: string | undefined
            do {
              const page = yield* store.list({ ...filter, kind, limit: 2, cursor })
              assert.isAtMost(page.tasks.length, 2)
              ids.push(...page.tasks.map((t) => t.id))
              cursor = page.nextCursor
            } while (cursor !== undefined)
            return ids
          })
        const mine = (t: Task.Task) => t.requestedBy.id === me
        const gated = (t: Task.Task) => t.gated === true
        assert.deepStrictEqual(
          yield* listAll({ scope: { _tag: "All" } }),
          expected(() => true)
        )
        assert.deepStrictEqual(yield* listAll({ scope: { _tag: "Some", requester: me, gated: false } }), expected(mine))
        assert.deepStrictEqual(yield* listAll({ scope: { _tag: "Some", gated: true } }), expected(gated))
        assert.deepStrictEqual(
          yield* listAll({ scope: { _tag: "Some", requester: me, gated: true } }),
          expected((t) => mine(t) || gated(t))
        )
        assert.deepStrictEqual(yield* listAll({ scope: { _tag: "Some", gated: false } }), [])
        // Combined with the other filters
        assert.deepStrictEqual(
          yield* listAll({ scope: { _tag: "Some", requester: me, gated: true }, states: ["running"] }),
          expected((t) => (mine(t) || gated(t)) && t.state === "running")
        )
        const someoneElse = created[1]!.task.requestedBy.id
        assert.deepStrictEqual(
          yield* listAll({ scope: { _tag: "Some", requester: me, gated: false }, requestedBy: someoneElse }),
          []
        )
        assert.deepStrictEqual(
          yield* listAll({
            scope: { _tag: "Some", requester: me, gated: true },
            requestedBy: created[4]!.task.requestedBy.id
          }),
          [created[4]!.task.id]
        )
        // The scope survives a save that changes the task's state (gated is fixed when the task is created)
        const first = created[0]!
        yield* store.save(advance(first, { state: "completed" }), 0)
        assert.include(
          yield* listAll({ scope: { _tag: "Some", requester: me, gated: false }, states: ["completed"] }),
          first.task.id
        )
        const othersGated = created[4]!
        yield* store.save(advance(othersGated, { state: "completed" }), 0)
        assert.deepStrictEqual(
          yield* listAll({ scope: { _tag: "Some", gated: true }, states: ["completed"] }),
          [othersGated.task.id, first.task.id] // task 0 is gated too, and completed above
        )
      })
    )

    it.effect("tracks unfinished tasks and counts by state", () =>
      Effect.gen(function* () {
        const store = yield* TaskStore
        const before = yield* store.countByState
        const running = makeRecord({ state: "running" })
        const waiting = makeRecord({ state: "waiting_approval" })
        const failed = makeRecord({ state: "failed" })
        const done = makeRecord({ state: "completed" })
        for (const r of [running, waiting, failed, done]) yield* store.create(r)
        const unfinished = new Set(yield* store.unfinished)
        assert.isTrue(
          unfinished.has(running.task.id) && unfinished.has(waiting.task.id) && unfinished.has(failed.task.id)
        )
        assert.isFalse(unfinished.has(done.task.id))
        yield* store.save(advance(running, { state: "cancelled" }), 0)
        assert.isFalse(new Set(yield* store.unfinished).has(running.task.id))
        const after = yield* store.countByState
        assert.strictEqual(after.running - before.running, 0)
        assert.strictEqual(after.cancelled - before.cancelled, 1)
        assert.strictEqual(after.waiting_approval - before.waiting_approval, 1)
        assert.strictEqual(after.failed - before.failed, 1)
        assert.strictEqual(after.completed - before.completed, 1)
      })
    )
  })
