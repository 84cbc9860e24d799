import { assert, describe, it } from "@effect/vitest"
import {
  Access,
  Anchor,
  type HostEntryInput,
  Ledger,
  LedgerStore,
  Mandate,
  Principal,
  Runtime,
  readRecord,
  recordHostEntry,
  TaskStore
} from "@mandate/core"
import { makePlan, makeRecord } from "@mandate/core/conformance/taskStore"
import { Effect, Layer } from "effect"

const alice = Principal.make("alice", ["submitter"])
const dave = Principal.make("dave", ["submitter"])
const bob = Principal.make("bob", ["approver"])
const erin = Principal.make("erin", ["submitter", "approver"])
const carol = Principal.make("carol", ["auditor"])
const root = Principal.make("root", ["admin"])
const robot = Principal.make("robot", ["agent"])

const task = (requester: string, gated?: boolean) => ({
  requestedBy: Principal.make(requester, ["submitter"]),
  ...(gated === undefined ? {} : { gated })
})

describe("Access rules", () => {
  it("auditors and admins read every task", () => {
    for (const p of [carol, root]) {
      assert.deepStrictEqual(Access.scopeOf(p), { _tag: "All" })
      assert.isTrue(Access.canRead(p, task("alice")))
      assert.isTrue(Access.canRead(p, task("dave", true)))
    }
  })

  it("a submitter reads only the tasks it requested", () => {
    assert.isTrue(Access.canRead(alice, task("alice")))
    assert.isTrue(Access.canRead(alice, task("alice", true)))
    assert.isFalse(Access.canRead(dave, task("alice")))
    assert.isFalse(Access.canRead(dave, task("alice", true)))
  })

  it("an approver reads gated tasks (the ones it may decide on) and its own", () => {
    assert.isTrue(Access.canRead(bob, task("alice", true)))
    assert.isFalse(Access.canRead(bob, task("alice", false)))
    assert.isFalse(Access.canRead(bob, task("alice")))
    assert.isTrue(Access.canRead(erin, task("erin", false)))
    assert.isTrue(Access.canRead(erin, task("alice", true)))
    assert.isFalse(Access.canRead(erin, task("alice", false)))
  })

  it("an agent, or a principal with no reading role, reads no task", () => {
    assert.deepStrictEqual(Access.scopeOf(robot), { _tag: "Some", gated: false })
    assert.isFalse(Access.canRead(robot, task("robot")))
    assert.isFalse(Access.canRead(robot, task("alice", true)))
    assert.isFalse(Access.canRead(Principal.make("nobody", []), task("nobody")))
  })

  it("a plan is read as its task, a dry run's plan by whoever asked for it", () => {
    assert.isTrue(Access.canReadPlan(alice, { requestedBy: "alice" }))
    assert.isFalse(Access.canReadPlan(dave, { requestedBy: "alice" }))
    assert.isFalse(Access.canReadPlan(dave, {}))
    assert.isTrue(Access.canReadPlan(carol, {}))
    assert.isTrue(Access.canReadPlan(bob, {}, task("alice", true)))
    assert.isFalse(Access.canReadPlan(dave, { requestedBy: "dave" }, task("alice")))
  })

  it("gated means a step of the plan needs approval", () => {
    const record = makeRecord()
    const plan = makePlan(record)
    assert.strictEqual(
      Access.isGated(plan),
      plan.steps.some((s) => s.decision.effect === "require_approval")
    )
    assert.isFalse(Access.isGated({ steps: [] }))
  })
})

const ledgerLayer = Layer.mergeAll(
  Ledger.layer().pipe(Layer.provideMerge(LedgerStore.layerMemory), Layer.provide(Anchor.layerMemory)),
  TaskStore.layerMemory
)

describe("readRecord", () => {
  it.effect("returns a readable record, and TaskNotFound for one the principal may not read", () =>
    Effect.gen(function* () {
      const store = yield* TaskStore
      const record = makeRecord({ requester: "alice" })
      yield* store.create(record, makePlan(record))
      assert.strictEqual((yield* readRecord(record.task.id, alice)).task.id, record.task.id)
      const hidden = yield* Effect.flip(readRecord(record.task.id, dave))
      const missing = yield* Effect.flip(readRecord(makeRecord().task.id, alice))
      assert.strictEqual(hidden._tag, "TaskNotFound")
      assert.strictEqual(missing._tag, "TaskNotFound")
    }).pipe(Effect.provide(ledgerLayer))
  )
})

describe("recordHostEntry", () => {
  it.effect("records note.* and external.* as the caller; refuses reserved kinds, hidden tasks and foreign steps", () =>
    Effect.gen(function* () {
      const store = yield* TaskStore
      const ledger = yield* Ledger
      const record = makeRecord({ requester: "alice" })
      yield* store.create(record, makePlan(record))
      const on = (kind: string, extra?: Partial<HostEntryInput>): HostEntryInput => ({
        kind,
        taskId: record.task.id,
        payload: { x: 1 },
        ...extra
      })
      const receipt = yield* recordHostEntry(on("note.comment"), alice)
      const [entry] = (yield* ledger.entries()).filter((e) => e.seq === receipt.seq)
      assert.strictEqual(entry!.principal?.id, "alice")
      yield* recordHostEntry({ kind: "external.invoice.paid", payload: {} }, robot)
      yield* recordHostEntry(on("note.audit"), carol)
      for (const kind of ["approval.granted", "step.succeeded", "task.completed", "invoice.paid", "notes.x"]) {
        const refused = yield* Effect.flip(recordHostEntry(on(kind), alice))
        assert.strictEqual(refused._tag, "ReservedEntryKind")
        assert.include(refused.message, "note.* or external.*")
      }
      const hidden = yield* Effect.flip(recordHostEntry(on("note.comment"), dave))
      assert.strictEqual(hidden._tag, "TaskNotFound")
      const missing = yield* Effect.flip(recordHostEntry(on("note.comment", { taskId: "task_nope" }), alice))
      assert.strictEqual(missing._tag, "TaskNotFound")
      const step = yield* Effect.flip(recordHostEntry(on("note.comment", { stepId: "no_such_step" }), alice))
      assert.strictEqual(step._tag === "InvalidInput" && step.path, "$.stepId")
      const orphan = yield* Effect.flip(recordHostEntry({ kind: "note.x", stepId: "check_balance", payload: 1 }, alice))
      assert.strictEqual(orphan._tag === "InvalidInput" && orphan.path, "$.stepId")
      // Nothing refused was written
      assert.strictEqual((yield* ledger.entries()).length, 3)
    }).pipe(Effect.provide(ledgerLayer))
  )
})

describe("Runtime reads as a principal", () => {
  const wallet = "A".repeat(60)
  it.effect("get, list, plan, events, cancel and approve answer 404 for a task the principal may not read", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const runtime = yield* Runtime
        const transfer = yield* runtime.start(
          { kind: "transfer_funds", params: { from: wallet, to: "B".repeat(60), amount: 10 } },
          alice
        )
        const monitoring = yield* runtime.start({ kind: "monitoring", params: { wallet } }, alice)
        assert.isTrue(transfer.gated)
        assert.isFalse(monitoring.gated)
        assert.strictEqual((yield* runtime.get(transfer.id, alice)).task.id, transfer.id)
        assert.strictEqual((yield* runtime.get(transfer.id, bob)).task.id, transfer.id)
        for (const [who, id] of [
          [dave, transfer.id],
          [bob, monitoring.id],
          [robot, transfer.id]
        ] as const) {
          assert.strictEqual((yield* Effect.flip(runtime.get(id, who)))._tag, "TaskNotFound")
          assert.strictEqual((yield* Effect.flip(runtime.watch(id, who)))._tag, "TaskNotFound")
          assert.strictEqual((yield* Effect.flip(runtime.events(id, who)))._tag, "TaskNotFound")
        }
        assert.strictEqual((yield* Effect.flip(runtime.cancel(transfer.id, dave)))._tag, "TaskNotFound")
        assert.strictEqual((yield* Effect.flip(runtime.approve(monitoring.id, bob)))._tag, "TaskNotFound")
        const ids = (page: { readonly tasks: ReadonlyArray<{ readonly id: string }> }) => page.tasks.map((t) => t.id)
        assert.deepStrictEqual(ids(yield* runtime.list({}, alice)), [monitoring.id, transfer.id])
        assert.deepStrictEqual(ids(yield* runtime.list({}, dave)), [])
        assert.deepStrictEqual(ids(yield* runtime.list({}, bob)), [transfer.id])
        assert.deepStrictEqual(ids(yield* runtime.list({}, carol)), [monitoring.id, transfer.id])
        assert.deepStrictEqual(ids(yield* runtime.list({}, robot)), [])
        // Plans: a task's plan as the task; a dry run's plan only for whoever asked for it
        const view = yield* runtime.get(transfer.id)
        assert.strictEqual((yield* runtime.getPlan(view.plan.id, bob)).id, view.plan.id)
        assert.strictEqual((yield* Effect.flip(runtime.getPlan(view.plan.id, dave)))._tag, "PlanNotFound")
        const dry = yield* runtime.plan({ kind: "monitoring", params: { wallet } }, alice)
        assert.strictEqual(dry.requestedBy, "alice")
        assert.strictEqual((yield* runtime.getPlan(dry.id, alice)).id, dry.id)
        assert.strictEqual((yield* runtime.getPlan(dry.id, carol)).id, dry.id)
        assert.strictEqual((yield* Effect.flip(runtime.getPlan(dry.id, dave)))._tag, "PlanNotFound")
        assert.strictEqual((yield* Effect.flip(runtime.execute(dry.id, dave)))._tag, "PlanNotFound")
      })
    ).pipe(Effect.provide(Mandate.layerMemory({ runtime: { workers: false } })))
  )
})
