import { assert, describe, it } from "@effect/vitest"
import {
  AgentId,
  Anchor,
  handler,
  Ledger,
  type LedgerEntry,
  Mandate,
  Merkle,
  type PolicySet,
  PolicyStore,
  Principal,
  Queue,
  Runtime,
  type RuntimeOptions,
  Seed,
  StepError,
  type StepHandler,
  TaskStore,
  type TaskView,
  taskTemplate,
  verifyEntryProof
} from "@mandate/core"
import { Context, Deferred, type Duration, Effect, Exit, Fiber, Layer, Ref, Schema, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import { admin, alice, bob, carol, walletA, walletB } from "./utils/fixtures.ts"

// ---- fixtures -----------------------------------------------------------------------------------------------

const transfer = (amount = 250) => ({ kind: "transfer_funds", params: { from: walletA, to: walletB, amount } })
const monitoring = { kind: "monitoring", params: { wallet: walletA } }

const fastRuntime: RuntimeOptions = { pollIntervalMs: 10, leaseMs: 1_000, heartbeatIntervalMs: 50, concurrency: 16 }
const fastQueue = { backoff: { baseMs: 5, capMs: 20 }, requeueIntervalMs: 20 }

/** A policy: the seed rules plus rules for the test step types. */
const policyWith = (...rules: PolicySet.PolicySet["rules"]): PolicySet.PolicySet => ({
  ...Seed.defaultPolicySet,
  rules: [...Seed.defaultPolicySet.rules, ...rules]
})

const Note = Schema.Struct({ text: Schema.String })
const single = (kind: string, type: string) =>
  taskTemplate({
    kind,
    params: Schema.Struct({}),
    steps: () => [{ id: "only", type, params: { text: kind } }]
  })

const memory = (options?: Mandate.MemoryOptions) =>
  Mandate.layerMemory({
    ...options,
    queue: { ...fastQueue, ...options?.queue },
    runtime: { ...fastRuntime, ...options?.runtime }
  })

/** Polls a task until `until` holds (live clock). */
const waitFor = (taskId: string, until: (view: TaskView) => boolean, timeout: Duration.Input = "15 seconds") =>
  Effect.gen(function* () {
    const runtime = yield* Runtime
    while (true) {
      const view = yield* runtime.get(taskId)
      if (until(view)) return view
      yield* Effect.sleep("5 millis")
    }
  }).pipe(Effect.timeout(timeout))

const stateIs =
  (...states: Array<string>) =>
  (view: { readonly task: { readonly state: string } }) =>
    states.includes(view.task.state)

const kindsOf = (taskId: string) =>
  Effect.map(
    Ledger.use((l) => l.byTask(taskId)),
    (entries) => entries.map((e) => (e.stepId === undefined ? e.kind : `${e.kind}:${e.stepId}`))
  )

// ---- the seed workflow ------------------------------------------------------------------------------------------

describe("Runtime: the seed workflow", () => {
  it.live("plans 3 steps, waits for approval on the third, completes, and its audit trail verifies", () =>
    Effect.gen(function* () {
      const runtime = yield* Runtime
      const ledger = yield* Ledger
      const started = yield* runtime.start(transfer(), alice)
      assert.strictEqual(started.kind, "transfer_funds")
      assert.strictEqual(started.requestedBy.id, "alice")

      const waiting = yield* waitFor(started.id, stateIs("waiting_approval"))
      assert.deepStrictEqual(
        waiting.steps.map((s) => [s.id, s.state]),
        [
          ["check_balance", "succeeded"],
          ["policy_check", "succeeded"],
          ["onchain_action", "waiting_approval"]
        ]
      )
      assert.deepStrictEqual(waiting.steps[0]!.result, { wallet: walletA, balance: 1_000_000, sufficient: true })

      const approved = yield* runtime.approve(started.id, bob, { comment: "looks right" })
      assert.strictEqual(approved.approvals.length, 1)
      assert.strictEqual(approved.approvals[0]!.principal.id, "bob")
      const done = yield* waitFor(started.id, stateIs("completed"))
      const onchain = done.steps[2]!.result as { txId: string; chain: string }
      assert.strictEqual(onchain.chain, "memory")

      assert.deepStrictEqual(yield* kindsOf(started.id), [
        "task.created",
        "plan.created",
        "policy.decided:check_balance",
        "policy.decided:policy_check",
        "policy.decided:onchain_action",
        "step.started:check_balance",
        "step.succeeded:check_balance",
        "step.started:policy_check",
        "step.succeeded:policy_check",
        "approval.granted:onchain_action",
        "step.started:onchain_action",
        "step.succeeded:onchain_action",
        "task.completed"
      ])

      // every entry of the trail verifies offline against a signed checkpoint
      const trail = yield* ledger.byTask(started.id)
      const checkpoint = yield* ledger.checkpoint
      for (const entry of trail) {
        const verified = yield* ledger.verify(entry.entryHash)
        assert.isTrue(verifyEntryProof(verified, ledger.publicKey))
        assert.isTrue(Merkle.verifyInclusionProof(verified.proof, verified.leafHash, verified.checkpoint.root))
      }
      assert.isAtLeast(checkpoint.size, trail.length)
      // the checkpoint is anchored, and the anchor transaction resolves on the chain
      const anchored = yield* ledger.anchor
      const tx = yield* Anchor.use((a) => a.getTx(anchored.anchor!.txId))
      assert.strictEqual(tx.root, anchored.checkpoint.root)
      // and the transfer's own transaction resolves too
      assert.strictEqual((yield* Anchor.use((a) => a.getTx(onchain.txId))).txId, onchain.txId)
      assert.isTrue((yield* ledger.verifyAll()).valid)
    }).pipe(Effect.provide(memory()))
  )

  it.live("a rejection ends the task rejected and skips the gated step", () =>
    Effect.gen(function* () {
      const runtime = yield* Runtime
      const task = yield* runtime.start(transfer(), alice)
      yield* waitFor(task.id, stateIs("waiting_approval"))
      const rejected = yield* runtime.reject(task.id, carol, { comment: "unknown vendor" })
      assert.strictEqual(rejected.task.state, "rejected")
      assert.deepStrictEqual(rejected.task.reasons, ["step onchain_action rejected by carol: unknown vendor"])
      assert.strictEqual(rejected.steps[2]!.state, "skipped")
      const kinds = yield* kindsOf(task.id)
      assert.deepStrictEqual(kinds.slice(-2), ["approval.rejected:onchain_action", "task.rejected"])
      const late = yield* Effect.flip(runtime.approve(task.id, bob))
      assert.strictEqual(late._tag, "IllegalTransition")
    }).pipe(Effect.provide(memory()))
  )

  it.live("four eyes: the requester cannot approve, nor can a principal without the approver role", () =>
    Effect.gen(function* () {
      const runtime = yield* Runtime
      const approverWhoAsked = Principal.make("dana", ["submitter", "approver"])
      const task = yield* runtime.start(transfer(), approverWhoAsked)
      yield* waitFor(task.id, stateIs("waiting_approval"))
      const self = yield* Effect.flip(runtime.approve(task.id, approverWhoAsked))
      assert.strictEqual(self._tag, "ApprovalForbidden")
      assert.match(self.message, /four eyes/)
      const selfReject = yield* Effect.flip(runtime.reject(task.id, approverWhoAsked))
      assert.strictEqual(selfReject._tag, "ApprovalForbidden")
      const auditor = yield* Effect.flip(runtime.approve(task.id, Principal.make("eve", ["auditor"])))
      assert.strictEqual(auditor._tag, "ApprovalForbidden")
      assert.match(auditor.message, /approver role/)
      const still = yield* runtime.get(task.id)
      assert.strictEqual(still.task.state, "waiting_approval")
      assert.strictEqual(still.approvals.length, 0)
      const submitterOnly = yield* Effect.flip(runtime.start(transfer(), Principal.make("viewer", ["auditor"])))
      assert.strictEqual(submitterOnly._tag, "Forbidden")
    }).pipe(Effect.provide(memory()))
  )

  it.live("a denied plan is refused with reasons, and recorded", () =>
    Effect.gen(function* () {
      const runtime = yield* Runtime
      const error = yield* Effect.flip(runtime.start(transfer(2_000_000), alice))
      assert.strictEqual(error._tag, "TaskRejected")
      if (error._tag !== "TaskRejected") return
      assert.deepStrictEqual(error.reasons, [
        "step policy_check (policy_check): transfers above 1,000,000 QU are denied",
        "step onchain_action (onchain_action): transfers above 1,000,000 QU are denied"
      ])
      const view = yield* runtime.get(error.taskId)
      assert.strictEqual(view.task.state, "rejected")
      assert.isTrue(view.steps.every((s) => s.state === "skipped"))
      const kinds = yield* kindsOf(error.taskId)
      assert.deepStrictEqual(kinds[0], "task.created")
      assert.deepStrictEqual(kinds.at(-1), "task.rejected")
      assert.strictEqual(kinds.filter((k) => k.startsWith("policy.decided")).length, 3)
      assert.strictEqual((yield* Queue.use((q) => q.stats("mandate.steps"))).byState.queued, 0)
    }).pipe(Effect.provide(memory()))
  )

  it.live("bad input creates nothing and names the field", () =>
    Effect.gen(function* () {
      const runtime = yield* Runtime
      const before = yield* TaskStore.use((s) => s.countByState)
      const bad = yield* Effect.flip(
        runtime.start({ kind: "transfer_funds", params: { from: "x", to: walletB, amount: 1 } }, alice)
      )
      assert.strictEqual(bad._tag, "InvalidInput")
      if (bad._tag === "InvalidInput") assert.strictEqual(bad.path, "$.params.from")
      const shape = yield* Effect.flip(runtime.start({ kind: 42 }, alice))
      assert.strictEqual(shape._tag, "InvalidInput")
      const unknown = yield* Effect.flip(runtime.start({ kind: "launch_rockets", params: {} }, alice))
      assert.strictEqual(unknown._tag, "UnknownTaskKind")
      const badId = yield* Effect.flip(runtime.get("not an id"))
      assert.strictEqual(badId._tag, "InvalidInput")
      const missing = yield* Effect.flip(runtime.get("task_missing"))
      assert.strictEqual(missing._tag, "TaskNotFound")
      assert.deepStrictEqual(yield* TaskStore.use((s) => s.countByState), before)
    }).pipe(Effect.provide(memory()))
  )

  it.live("a bad request or principal names every bad field, on start and plan alike", () =>
    Effect.gen(function* () {
      const runtime = yield* Runtime
      const before = yield* TaskStore.use((s) => s.countByState)
      const request = { kind: "Transfer Funds", params: { amount: Number.NaN }, priority: "urgent", idempotencyKey: "" }
      const paths = ["$.kind", "$.params", "$.priority", "$.idempotencyKey"]
      for (const attempt of [
        Effect.asVoid(runtime.start(request, alice)),
        Effect.asVoid(runtime.plan(request, alice))
      ]) {
        const bad = yield* Effect.flip(attempt)
        assert.strictEqual(bad._tag, "InvalidInput")
        if (bad._tag === "InvalidInput") {
          assert.strictEqual(bad.path, "$.kind")
          assert.deepStrictEqual(
            bad.issues.map((i) => i.path),
            paths
          )
        }
      }
      const hostile = { id: "alice smith", roles: ["submitter", "root"] } as unknown as Principal.Principal
      const who = yield* Effect.flip(runtime.start(transfer(), hostile))
      assert.strictEqual(who._tag, "InvalidInput")
      if (who._tag === "InvalidInput") {
        assert.deepStrictEqual(
          who.issues.map((i) => i.path),
          ["$.principal.id", "$.principal.roles[1]"]
        )
      }
      const notAnObject = yield* Effect.flip(runtime.start("transfer_funds", alice))
      assert.strictEqual(notAnObject._tag, "InvalidInput")
      if (notAnObject._tag === "InvalidInput") assert.strictEqual(notAnObject.path, "$")
      assert.deepStrictEqual(yield* TaskStore.use((s) => s.countByState), before)
    }).pipe(Effect.provide(memory()))
  )

  it.live("an idempotency key returns the same task, even under concurrent starts", () =>
    Effect.gen(function* () {
      const runtime = yield* Runtime
      const tasks = yield* Effect.all(
        Array.from({ length: 10 }, () => runtime.start({ ...monitoring, idempotencyKey: "nightly-1" }, alice)),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(new Set(tasks.map((t) => t.id)).size, 1)
      const other = yield* runtime.start(
        { ...monitoring, idempotencyKey: "nightly-1" },
        Principal.make("zoe", ["submitter"])
      )
      assert.notStrictEqual(other.id, tasks[0]!.id)
      yield* waitFor(tasks[0]!.id, stateIs("completed"))
      assert.strictEqual((yield* kindsOf(tasks[0]!.id)).filter((k) => k === "task.created").length, 1)
    }).pipe(Effect.provide(memory()))
  )
})

// ---- failures and retries -------------------------------------------------------------------------------------

/**
 * Starts a task on `stores` (built without workers); a worker claims its first step and dies (no unit of its
 * commits, its lease expires); then a runtime with workers ("survivor.worker") runs the task to completion.
 */
const takenOverAfterVictim = (stores: Context.Context<any>, request: Parameters<Runtime["Service"]["start"]>[0]) =>
  Effect.gen(function* () {
    const runtime = stores.mapUnsafe.get(Runtime.key) as Runtime["Service"]
    const queue = stores.mapUnsafe.get(Queue.key) as Queue["Service"]
    const task = yield* runtime.start(request, alice)
    const victim = AgentId.make("victim.worker")
    const [claimed] = yield* queue.claim({ workerId: victim, queues: ["mandate.steps"], max: 1, leaseMs: 1_000 })
    assert.isDefined(claimed)
    yield* Effect.sleep("1100 millis")
    const workers = yield* Layer.build(
      Runtime.layer({ ...fastRuntime, workerId: "survivor.worker", reconcileOnStart: false }).pipe(
        Layer.provide(Layer.succeedContext(stores))
      )
    )
    const survivor = workers.mapUnsafe.get(Runtime.key) as Runtime["Service"]
    let view = yield* survivor.get(task.id)
    while (view.task.state !== "completed") {
      yield* Effect.sleep("5 millis")
      view = yield* survivor.get(task.id)
    }
    return { task, view }
  })

const counter = <P>(
  type: string,
  failures: number,
  permanent = false
): StepHandler<P, { calls: number }> & { calls: Ref.Ref<number> } => {
  const calls = Ref.makeUnsafe(0)
  return {
    calls,
    ...handler({
      type,
      params: Note as unknown as Schema.Codec<P, any>,
      result: Schema.Struct({ calls: Schema.Number }),
      run: () =>
        Effect.gen(function* () {
          const n = yield* Ref.updateAndGet(calls, (c) => c + 1)
          if (n <= failures) {
            return yield* permanent ? StepError.permanent(`refused ${n}`) : StepError.transient(`flaked ${n}`)
          }
          return { calls: n }
        })
    })
  }
}

describe("Runtime: failures", () => {
  it.live("a handler that fails twice then succeeds is retried by the queue", () => {
    const flaky = counter("flaky", 2)
    return Effect.gen(function* () {
      const runtime = yield* Runtime
      const task = yield* runtime.start({ kind: "flaky_task", params: {} }, alice)
      const done = yield* waitFor(task.id, stateIs("completed"))
      assert.deepStrictEqual(done.steps[0]!.result, { calls: 3 })
      assert.strictEqual(done.steps[0]!.attempts, 3)
      const kinds = yield* kindsOf(task.id)
      assert.strictEqual(kinds.filter((k) => k === "step.failed:only").length, 2)
      assert.strictEqual(kinds.filter((k) => k === "step.succeeded:only").length, 1)
    }).pipe(
      Effect.provide(
        memory({
          handlers: [flaky],
          templates: [single("flaky_task", "flaky")],
          policy: policyWith({ id: "flaky", effect: "allow", match: { action: "flaky" } })
        })
      )
    )
  })

  it.live("a handler that always fails is dead-lettered and the task fails with its error; retry re-runs it", () => {
    const broken = counter("broken", 1_000)
    return Effect.gen(function* () {
      const runtime = yield* Runtime
      const task = yield* runtime.start({ kind: "broken_task", params: {} }, alice)
      const failed = yield* waitFor(task.id, stateIs("failed"))
      assert.deepStrictEqual(failed.task.reasons, ["step only failed: flaked 3"])
      assert.strictEqual(failed.steps[0]!.state, "failed")
      assert.strictEqual(yield* Ref.get(broken.calls), 3)
      const job = yield* Queue.use((q) => q.get(failed.steps[0]!.jobId!))
      assert.strictEqual(job.state, "dead_lettered")
      const kinds = yield* kindsOf(task.id)
      assert.deepStrictEqual(kinds.slice(-2), ["step.failed:only", "task.failed:only"])
      // only the requester (or an admin) may retry; the retry runs the step again in a new round. An approver does
      // not even see this ungated task (TaskNotFound, as for a missing one); an auditor sees it but may not retry it
      assert.strictEqual((yield* Effect.flip(runtime.retry(task.id, bob)))._tag, "TaskNotFound")
      assert.strictEqual(
        (yield* Effect.flip(runtime.retry(task.id, Principal.make("carol", ["auditor"]))))._tag,
        "Forbidden"
      )
      yield* Ref.set(broken.calls, 999) // the next call succeeds... no: 1000th call fails, 1001st succeeds
      const retried = yield* runtime.retry(task.id, alice)
      assert.strictEqual(retried.task.state, "running")
      assert.strictEqual(retried.steps[0]!.round, 1)
      const done = yield* waitFor(task.id, stateIs("completed"))
      assert.deepStrictEqual(done.steps[0]!.result, { calls: 1001 })
      assert.isTrue((yield* kindsOf(task.id)).includes("task.retried"))
    }).pipe(
      Effect.provide(
        memory({
          handlers: [broken],
          templates: [single("broken_task", "broken")],
          policy: policyWith({ id: "broken", effect: "allow", match: { action: "broken" } }),
          runtime: { maxAttempts: 3 }
        })
      )
    )
  })

  it.live("a non-retryable failure fails the step at once; a timed-out attempt is retried", () => {
    const refusing = counter("refusing", 1, true)
    const slowOnce = (() => {
      const calls = Ref.makeUnsafe(0)
      return handler({
        type: "slow_once",
        params: Note,
        result: Schema.Struct({ calls: Schema.Number }),
        timeout: "100 millis",
        run: () =>
          Effect.gen(function* () {
            const n = yield* Ref.updateAndGet(calls, (c) => c + 1)
            if (n === 1) yield* Effect.sleep("5 seconds")
            return { calls: n }
          })
      })
    })()
    return Effect.gen(function* () {
      const runtime = yield* Runtime
      const refused = yield* runtime.start({ kind: "refusing_task", params: {} }, alice)
      const failed = yield* waitFor(refused.id, stateIs("failed"))
      assert.strictEqual(yield* Ref.get(refusing.calls), 1)
      assert.deepStrictEqual(failed.steps[0]!.error, { message: "refused 1", retryable: false })
      const slow = yield* runtime.start({ kind: "slow_task", params: {} }, alice)
      const done = yield* waitFor(slow.id, stateIs("completed"))
      assert.deepStrictEqual(done.steps[0]!.result, { calls: 2 })
      const failedEntry = (yield* Ledger.use((l) => l.byTask(slow.id))).find((e) => e.kind === "step.failed")!
      assert.match(JSON.stringify(failedEntry.payload), /timed out after 100ms/)
    }).pipe(
      Effect.provide(
        memory({
          handlers: [refusing, slowOnce],
          templates: [single("refusing_task", "refusing"), single("slow_task", "slow_once")],
          policy: policyWith({ id: "tests", effect: "allow", match: { action: ["refusing", "slow_once"] } })
        })
      )
    )
  })
})

// ---- cancellation and parallelism ---------------------------------------------------------------------------------

describe("Runtime: cancellation and parallel branches", () => {
  it.live("cancelling mid-run interrupts the running handler and withdraws queued work", () => {
    const interrupted = Deferred.makeUnsafe<void>()
    const running = Deferred.makeUnsafe<void>()
    const blocking = handler({
      type: "blocking",
      params: Note,
      result: Schema.Struct({}),
      run: () =>
        Deferred.succeed(running, undefined).pipe(
          Effect.andThen(Effect.never),
          Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined))
        )
    })
    const twoSteps = taskTemplate({
      kind: "two_steps",
      params: Schema.Struct({}),
      steps: () => [
        { id: "first", type: "blocking", params: { text: "1" } },
        { id: "second", type: "blocking", params: { text: "2" }, dependsOn: ["first"] }
      ]
    })
    return Effect.gen(function* () {
      const runtime = yield* Runtime
      const task = yield* runtime.start({ kind: "two_steps", params: {} }, alice)
      yield* Deferred.await(running)
      // bob does not see alice's ungated task; an auditor sees it but only the requester or an admin may cancel
      assert.strictEqual((yield* Effect.flip(runtime.cancel(task.id, bob)))._tag, "TaskNotFound")
      const forbidden = yield* Effect.flip(runtime.cancel(task.id, Principal.make("carol", ["auditor"])))
      assert.strictEqual(forbidden._tag, "Forbidden")
      const cancelled = yield* runtime.cancel(task.id, alice, "changed my mind")
      assert.strictEqual(cancelled.task.state, "cancelled")
      assert.deepStrictEqual(
        cancelled.steps.map((s) => s.state),
        ["skipped", "skipped"]
      )
      yield* Deferred.await(interrupted).pipe(Effect.timeout("5 seconds"))
      const job = yield* Queue.use((q) => q.get(cancelled.steps[0]!.jobId!))
      assert.strictEqual(job.state, "cancelled")
      assert.deepStrictEqual((yield* kindsOf(task.id)).at(-1), "task.cancelled")
      const again = yield* Effect.flip(runtime.cancel(task.id, alice))
      assert.strictEqual(again._tag, "IllegalTransition")
      // the settled cancelled step never turns succeeded later
      yield* Effect.sleep("100 millis")
      assert.strictEqual((yield* runtime.get(task.id)).task.state, "cancelled")
    }).pipe(
      Effect.provide(
        memory({
          handlers: [blocking],
          templates: [twoSteps],
          policy: policyWith({ id: "blocking", effect: "allow", match: { action: "blocking" } })
        })
      )
    )
  })

  it.live("independent branches run in parallel, and the join waits for all of them", () => {
    const spans: Array<{ id: string; start: number; end: number }> = []
    const timed = handler({
      type: "timed",
      params: Note,
      result: Schema.Struct({ text: Schema.String }),
      run: ({ text }) =>
        Effect.gen(function* () {
          const start = performance.now()
          yield* Effect.sleep("150 millis")
          spans.push({ id: text, start, end: performance.now() })
          return { text }
        })
    })
    const diamond = taskTemplate({
      kind: "diamond",
      params: Schema.Struct({}),
      steps: () => [
        { id: "root", type: "timed", params: { text: "root" } },
        { id: "left", type: "timed", params: { text: "left" }, dependsOn: ["root"] },
        { id: "middle", type: "timed", params: { text: "middle" }, dependsOn: ["root"] },
        { id: "right", type: "timed", params: { text: "right" }, dependsOn: ["root"] },
        { id: "join", type: "timed", params: { text: "join" }, dependsOn: ["left", "middle", "right"] }
      ]
    })
    return Effect.gen(function* () {
      const runtime = yield* Runtime
      const task = yield* runtime.start({ kind: "diamond", params: {} }, alice)
      yield* waitFor(task.id, stateIs("completed"))
      const span = (id: string) => spans.find((s) => s.id === id)!
      const branches = ["left", "middle", "right"].map(span)
      // all three branches overlap in time: each started before any other ended
      const latestStart = Math.max(...branches.map((b) => b.start))
      const earliestEnd = Math.min(...branches.map((b) => b.end))
      assert.isBelow(latestStart, earliestEnd)
      assert.isAtLeast(span("join").start, Math.max(...branches.map((b) => b.end)))
      assert.isAtLeast(Math.min(...branches.map((b) => b.start)), span("root").end)
    }).pipe(
      Effect.provide(
        memory({
          handlers: [timed],
          templates: [diamond],
          policy: policyWith({ id: "timed", effect: "allow", match: { action: "timed" } })
        })
      )
    )
  })
})

// ---- approvals in depth ---------------------------------------------------------------------------------------------

describe("Runtime: approvals", () => {
  const gated = (approvals: { required: number; timeoutSeconds?: number }) =>
    policyWith(
      { id: "notes", effect: "allow", match: { action: "note" } },
      { id: "gate", effect: "require_approval", match: { action: "gated_note" }, approvals }
    )
  const note = handler({
    type: "note",
    params: Note,
    result: Note,
    run: (p) => Effect.succeed(p)
  })
  const gatedNote = { ...note, type: "gated_note" }
  const gatedTask = taskTemplate({
    kind: "gated_task",
    params: Schema.Struct({}),
    steps: () => [
      { id: "prepare", type: "note", params: { text: "prepare" } },
      { id: "release", type: "gated_note", params: { text: "release" }, dependsOn: ["prepare"] }
    ]
  })

  it.live("a rule may require N distinct approvers; the last approval enqueues the step", () =>
    Effect.gen(function* () {
      const runtime = yield* Runtime
      const task = yield* runtime.start({ kind: "gated_task", params: {} }, alice)
      yield* waitFor(task.id, stateIs("waiting_approval"))
      const first = yield* runtime.approve(task.id, bob, { stepId: "release" })
      assert.strictEqual(first.task.state, "waiting_approval")
      assert.strictEqual(first.steps[1]!.state, "waiting_approval")
      const twice = yield* Effect.flip(runtime.approve(task.id, bob))
      assert.strictEqual(twice._tag, "ApprovalForbidden")
      assert.match(twice.message, /distinct approvers/)
      const wrongStep = yield* Effect.flip(runtime.approve(task.id, carol, { stepId: "prepare" }))
      assert.strictEqual(wrongStep._tag, "StepNotFound")
      assert.strictEqual(wrongStep._tag === "StepNotFound" && wrongStep.problem, "not_waiting")
      const missing = yield* Effect.flip(runtime.approve(task.id, carol, { stepId: "no_such_step" }))
      assert.strictEqual(missing._tag === "StepNotFound" && missing.problem, "missing")
      const second = yield* runtime.approve(task.id, carol)
      assert.include(["queued", "running", "succeeded"], second.steps[1]!.state)
      yield* waitFor(task.id, stateIs("completed"))
      const grants = (yield* Ledger.use((l) => l.byTask(task.id))).filter((e) => e.kind === "approval.granted")
      assert.deepStrictEqual(
        grants.map((g) => [String(g.principal?.id), (g.payload as { approvals: number }).approvals]),
        [
          ["bob", 1],
          ["carol", 2]
        ]
      )
    }).pipe(
      Effect.provide(memory({ handlers: [note, gatedNote], templates: [gatedTask], policy: gated({ required: 2 }) }))
    )
  )

  it.effect("an approval that does not arrive before the deadline rejects the task (TestClock)", () =>
    Effect.gen(function* () {
      const runtime = yield* Runtime
      const task = yield* runtime.start({ kind: "gated_task", params: {} }, alice)
      // let the first step run under the test clock
      let view = yield* runtime.get(task.id)
      for (let i = 0; i < 200 && view.task.state !== "waiting_approval"; i++) {
        yield* TestClock.adjust("20 millis")
        view = yield* runtime.get(task.id)
      }
      assert.strictEqual(view.task.state, "waiting_approval")
      assert.isDefined(view.steps[1]!.deadlineAt)
      yield* TestClock.adjust("59 seconds")
      assert.strictEqual((yield* runtime.get(task.id)).task.state, "waiting_approval")
      yield* TestClock.adjust("2 seconds")
      for (let i = 0; i < 50 && view.task.state === "waiting_approval"; i++) {
        yield* TestClock.adjust("20 millis")
        view = yield* runtime.get(task.id)
      }
      assert.strictEqual(view.task.state, "rejected")
      assert.deepStrictEqual(view.task.reasons, ["approval of step release was not given before its deadline"])
      const late = yield* Effect.flip(runtime.approve(task.id, bob))
      assert.strictEqual(late._tag, "IllegalTransition")
    }).pipe(
      Effect.provide(
        memory({
          handlers: [note, gatedNote],
          templates: [gatedTask],
          policy: gated({ required: 1, timeoutSeconds: 60 })
        })
      )
    )
  )

  it.live("an approval is bound to the plan, the params and the policy version it was given for", () =>
    Effect.gen(function* () {
      const runtime = yield* Runtime
      const store = yield* TaskStore
      const task = yield* runtime.start({ kind: "gated_task", params: {} }, alice)
      yield* waitFor(task.id, stateIs("waiting_approval"))
      yield* runtime.approve(task.id, bob)
      // Tamper: bob's approval now claims another params hash — it must no longer count
      const record = yield* store.get(task.id)
      yield* store.save(
        {
          ...record,
          approvals: record.approvals.map((a) => ({ ...a, paramsHash: "f".repeat(64) as typeof a.paramsHash })),
          task: { ...record.task, version: record.task.version + 1 }
        },
        record.task.version
      )
      const afterCarol = yield* runtime.approve(task.id, carol)
      assert.strictEqual(afterCarol.steps[1]!.state, "waiting_approval")
      yield* runtime.approve(task.id, Principal.make("dave", ["approver"]))
      yield* waitFor(task.id, stateIs("completed"))
    }).pipe(
      Effect.provide(memory({ handlers: [note, gatedNote], templates: [gatedTask], policy: gated({ required: 2 }) }))
    )
  )

  it.live("a task stays pinned to its policy version; a new policy set applies to new tasks only", () =>
    Effect.gen(function* () {
      const runtime = yield* Runtime
      const policies = yield* PolicyStore
      const before = yield* runtime.start(transfer(), alice)
      const open = yield* policies.publish({
        name: "open",
        rules: [{ id: "everything", effect: "allow", match: {} }]
      })
      yield* policies.activate(open.version)
      const after = yield* runtime.start(transfer(), alice)
      yield* waitFor(after.id, stateIs("completed")) // no approval under the new policy
      const pinned = yield* waitFor(before.id, stateIs("waiting_approval"))
      assert.notStrictEqual(pinned.task.policyVersion, open.version)
      assert.strictEqual((yield* runtime.get(after.id)).task.policyVersion, open.version)
    }).pipe(Effect.provide(memory()))
  )
})

// ---- durability and scale -------------------------------------------------------------------------------------------

describe("Runtime: durability and scale", () => {
  it.live("a runtime restarted mid-task resumes it; the step re-runs with the same idempotency key", () => {
    const seen: Array<string> = []
    const gate = Deferred.makeUnsafe<void>()
    const started = Deferred.makeUnsafe<void>()
    const resumable = handler({
      type: "resumable",
      params: Note,
      result: Schema.Struct({ key: Schema.String }),
      run: (_, ctx) =>
        Effect.gen(function* () {
          seen.push(ctx.idempotencyKey)
          yield* Deferred.succeed(started, undefined)
          yield* Deferred.await(gate)
          return { key: ctx.idempotencyKey }
        })
    })
    const options = {
      handlers: [resumable],
      templates: [single("resumable_task", "resumable")],
      policy: policyWith({ id: "resumable", effect: "allow", match: { action: "resumable" } })
    }
    return Effect.gen(function* () {
      // The stores outlive the runtimes: build the full memory layer, then swap only the Runtime
      const stores = yield* Layer.build(memory({ ...options, runtime: { workers: false } }))
      const runtimeLayer = (extra: RuntimeOptions) =>
        Runtime.layer({ ...fastRuntime, ...extra }).pipe(Layer.provide(Layer.succeedContext(stores)))

      const first = yield* Scope.make()
      const ctx1 = yield* Layer.buildWithScope(runtimeLayer({ shutdownGraceMs: 0 }), first)
      const runtime1 = ctx1.mapUnsafe.get(Runtime.key) as Runtime["Service"]
      const task = yield* runtime1.start({ kind: "resumable_task", params: {} }, alice)
      yield* Deferred.await(started)
      yield* Scope.close(first, Exit.void) // the process stops mid-step

      const second = yield* Layer.build(runtimeLayer({}))
      const runtime2 = second.mapUnsafe.get(Runtime.key) as Runtime["Service"]
      yield* Deferred.succeed(gate, undefined)
      let view = yield* runtime2.get(task.id)
      while (view.task.state !== "completed") {
        yield* Effect.sleep("5 millis")
        view = yield* runtime2.get(task.id)
      }
      assert.strictEqual(seen.length, 2)
      assert.strictEqual(seen[0], seen[1])
      assert.deepStrictEqual(view.steps[0]!.result, { key: seen[0] })
      assert.strictEqual(view.steps[0]!.attempts, 2)
    }).pipe(Effect.scoped)
  })

  it.live(
    "a step whose handler is running reads as running, by its lease holder, though its start is not yet stored",
    () => {
      const gate = Deferred.makeUnsafe<void>()
      const started = Deferred.makeUnsafe<void>()
      const slow = handler({
        type: "slow",
        params: Note,
        result: Schema.Struct({ ok: Schema.Boolean }),
        run: () =>
          Effect.gen(function* () {
            yield* Deferred.succeed(started, undefined)
            yield* Deferred.await(gate)
            return { ok: true }
          })
      })
      return Effect.gen(function* () {
        const runtime = yield* Runtime
        const store = yield* TaskStore
        const task = yield* runtime.start({ kind: "slow_task", params: {} }, alice)
        yield* Deferred.await(started)
        // The record says queued (the start is written with the outcome); the read says what the queue knows
        const stored = yield* store.get(task.id)
        assert.strictEqual(stored.steps[0]!.state, "queued")
        const running = yield* runtime.get(task.id)
        assert.strictEqual(running.steps[0]!.state, "running")
        assert.strictEqual(running.steps[0]!.attempts, 1)
        assert.strictEqual(running.steps[0]!.worker, "slow.worker")
        yield* Deferred.succeed(gate, undefined)
        const done = yield* waitFor(task.id, stateIs("completed"))
        assert.strictEqual(done.steps[0]!.state, "succeeded")
      }).pipe(
        Effect.provide(
          memory({
            handlers: [slow],
            templates: [single("slow_task", "slow")],
            policy: policyWith({ id: "slow", effect: "allow", match: { action: "slow" } }),
            runtime: { ...fastRuntime, workerId: "slow.worker" }
          })
        )
      )
    }
  )

  it.live("reconcile settles a step whose job finished unheard (a crash or a lost reply after the queue wrote)", () =>
    Effect.gen(function* () {
      const runtime = yield* Runtime
      const queue = yield* Queue
      const store = yield* TaskStore
      const worker = AgentId.make("phantom")
      // What the runtime's worker writes when it starts an attempt (`step.started`), before it runs the handler
      const startedBy = (taskId: string, stepIndex: number) =>
        Effect.gen(function* () {
          const before = yield* store.get(taskId as TaskView["task"]["id"])
          yield* store.save(
            {
              ...before,
              task: { ...before.task, version: before.task.version + 1 },
              steps: before.steps.map((s, i) =>
                i === stepIndex ? { ...s, state: "running" as const, attempts: s.attempts + 1, worker } : s
              )
            },
            before.task.version
          )
        })
      // A worker that started the step, completed the job in the queue, and died before the task store heard of it
      const task = yield* runtime.start(monitoring, alice)
      const [claimed] = yield* queue.claim({ workerId: worker, queues: ["mandate.steps"], max: 1 })
      yield* startedBy(task.id, 0)
      yield* queue.complete(claimed!.id, worker, { wallet: walletA, balance: 7, sufficient: true })
      assert.strictEqual((yield* runtime.get(task.id)).steps[0]!.state, "running")
      yield* runtime.reconcile
      const settled = yield* runtime.get(task.id)
      assert.deepStrictEqual(settled.steps[0]!.result, { wallet: walletA, balance: 7, sufficient: true })
      assert.deepStrictEqual(
        settled.steps.map((s) => s.state),
        ["succeeded", "queued"]
      )
      // The settlement took the one settle path: the entry names the worker that ran the attempt
      const succeeded = (yield* Ledger.use((l) => l.byTask(task.id))).find((e) => e.kind === "step.succeeded")
      assert.deepStrictEqual(succeeded?.payload, {
        result: { wallet: walletA, balance: 7, sufficient: true },
        worker: "phantom"
      })
      // ...and one whose job was dead-lettered: the task fails with the job's error
      const [next] = yield* queue.claim({ workerId: worker, queues: ["mandate.steps"], max: 1 })
      yield* queue.fail(next!.id, worker, "disk on fire", { retryable: false })
      yield* runtime.reconcile
      const failed = yield* runtime.get(task.id)
      assert.strictEqual(failed.task.state, "failed")
      assert.deepStrictEqual(failed.task.reasons, ["step monitor_action failed: disk on fire"])
      // a second pass finds nothing to do and writes nothing
      const version = failed.task.version
      yield* runtime.reconcile
      assert.strictEqual((yield* runtime.get(task.id)).task.version, version)
    }).pipe(Effect.provide(memory({ runtime: { workers: false } })))
  )

  it.live("reconcile records no outcome that skipped the settle path: unstarted steps re-run, bad results fail", () =>
    Effect.gen(function* () {
      const runtime = yield* Runtime
      const queue = yield* Queue
      const store = yield* TaskStore
      const forger = AgentId.make("forger")
      // A job completed though no worker of the runtime started its step (no `step.started`): not a success
      const task = yield* runtime.start(monitoring, alice)
      const [forged] = yield* queue.claim({ workerId: forger, queues: ["mandate.steps"], max: 1 })
      yield* queue.complete(forged!.id, forger, { forged: true })
      yield* runtime.reconcile
      const rerun = yield* runtime.get(task.id)
      assert.strictEqual(rerun.steps[0]!.state, "queued")
      assert.strictEqual(rerun.steps[0]!.round, 1)
      assert.notStrictEqual(rerun.steps[0]!.jobId, forged!.id)
      assert.isUndefined(rerun.steps[0]!.result)
      const kinds = yield* kindsOf(task.id)
      assert.isFalse(kinds.some((k) => k.startsWith("step.succeeded")))

      // A started attempt whose job completed with a result the handler's schema refuses: a failed attempt
      const [started] = yield* queue.claim({ workerId: forger, queues: ["mandate.steps"], max: 1 })
      const before = yield* store.get(task.id)
      yield* store.save(
        {
          ...before,
          task: { ...before.task, version: before.task.version + 1 },
          steps: before.steps.map((s, i) =>
            i === 0 ? { ...s, state: "running" as const, attempts: s.attempts + 1, worker: forger } : s
          )
        },
        before.task.version
      )
      yield* queue.complete(started!.id, forger, { forged: true })
      yield* runtime.reconcile
      const failed = yield* runtime.get(task.id)
      assert.strictEqual(failed.task.state, "failed")
      assert.strictEqual(failed.steps[0]!.state, "failed")
      assert.match(failed.steps[0]!.error!.message, /result does not match the check_balance handler/)
      const entry = (yield* Ledger.use((l) => l.byTask(task.id))).find((e) => e.kind === "step.failed")
      assert.strictEqual((entry!.payload as { worker?: string }).worker, "forger")
      assert.isFalse((yield* kindsOf(task.id)).some((k) => k.startsWith("step.succeeded")))
    }).pipe(Effect.provide(memory({ runtime: { workers: false } })))
  )

  it.live(
    "an attempt whose worker died before settling it is recorded, naming that worker, when the step is taken over",
    () =>
      Effect.gen(function* () {
        const stores = yield* Layer.build(memory({ runtime: { workers: false } }))
        const { task, view } = yield* takenOverAfterVictim(stores, monitoring)
        const entries = (yield* Ledger.use((l) => l.byTask(task.id)).pipe(Effect.provideContext(stores))).filter(
          (e) => e.stepId === "check_balance" && e.kind.startsWith("step.")
        )
        assert.deepStrictEqual(
          entries.map((e) => [
            e.kind,
            (e.payload as { attempt?: number }).attempt,
            (e.payload as { worker?: string }).worker
          ]),
          [
            ["step.started", 1, "victim.worker"],
            ["step.failed", undefined, "victim.worker"],
            ["step.started", 2, "survivor.worker"],
            ["step.succeeded", undefined, "survivor.worker"]
          ]
        )
        assert.deepStrictEqual(entries[1]!.payload, {
          error: { message: "lease expired (held by victim.worker)", retryable: true },
          final: false,
          attempts: 1,
          lost: true,
          worker: "victim.worker"
        })
        assert.strictEqual(view.steps[0]!.attempts, 2)
      }).pipe(Effect.scoped)
  )

  it.live("a lost attempt is recorded as soon as its step is taken over, before the handler runs", () =>
    Effect.gen(function* () {
      // What the ledger shows of the step while the survivor's handler runs: recorded then, a second lost lease
      // before the survivor settles could not erase whose the first one was (the job keeps the last holder only)
      const seen: Array<Array<string>> = []
      let ledger: Ledger["Service"] | undefined
      const observer = handler({
        type: "observer",
        params: Note,
        result: Schema.Struct({}),
        run: (_params, ctx) =>
          ledger!.byTask(ctx.task.id).pipe(
            Effect.map((entries) => {
              seen.push(
                entries
                  .filter((e) => e.kind.startsWith("step."))
                  .map((e) => `${e.kind}:${(e.payload as { worker?: string }).worker}`)
              )
              return {}
            }),
            Effect.mapError((e) => StepError.transient(e.message))
          )
      })
      const stores = yield* Layer.build(
        memory({
          runtime: { workers: false },
          handlers: [observer],
          templates: [single("observed_task", "observer")],
          policy: policyWith({ id: "observer", effect: "allow", match: { action: "observer" } })
        })
      )
      ledger = stores.mapUnsafe.get(Ledger.key) as Ledger["Service"]
      yield* takenOverAfterVictim(stores, { kind: "observed_task", params: {} })
      assert.deepStrictEqual(seen, [
        ["step.started:victim.worker", "step.failed:victim.worker", "step.started:survivor.worker"]
      ])
    }).pipe(Effect.scoped)
  )

  it.live("each step.started entry names the worker that ran the attempt (the runtime's workerId)", () =>
    Effect.gen(function* () {
      const runtime = yield* Runtime
      const task = yield* runtime.start(monitoring, alice)
      yield* waitFor(task.id, stateIs("completed"))
      const started = (yield* Ledger.use((l) => l.byTask(task.id))).filter((e) => e.kind === "step.started")
      // Recorded with the attempt's outcome: `claimedAt` says when the worker's lease on it began
      for (const e of started) assert.isNumber((e.payload as { claimedAt?: number }).claimedAt)
      assert.deepStrictEqual(
        started.map((e) => {
          const { claimedAt: _, ...rest } = e.payload as Record<string, unknown>
          return [e.stepId as string, rest] as const
        }),
        [
          ["check_balance", { attempt: 1, round: 0, worker: "host-1.worker" }],
          ["monitor_action", { attempt: 1, round: 0, worker: "host-1.worker" }]
        ]
      )
    }).pipe(Effect.provide(memory({ runtime: { workerId: "host-1.worker" } })))
  )

  it.live("1,000 concurrent tasks complete, each step succeeds exactly once, and the ledger verifies", () =>
    Effect.gen(function* () {
      const runtime = yield* Runtime
      const ledger = yield* Ledger
      const tasks = yield* Effect.all(
        Array.from({ length: 1_000 }, (_, i) =>
          runtime.start(i % 2 === 0 ? monitoring : { kind: "monitoring", params: { wallet: walletB } }, alice)
        ),
        { concurrency: "unbounded" }
      )
      const fiber = yield* Effect.forkChild(
        Effect.forEach(tasks, (t) => waitFor(t.id, stateIs("completed"), "60 seconds"), { concurrency: 50 })
      )
      const views = yield* Fiber.join(fiber)
      assert.isTrue(views.every((v) => v.task.state === "completed"))
      for (const task of tasks.slice(0, 50)) {
        const kinds = yield* kindsOf(task.id)
        assert.strictEqual(kinds.filter((k) => k === "step.succeeded:check_balance").length, 1)
        assert.strictEqual(kinds.filter((k) => k === "step.succeeded:monitor_action").length, 1)
      }
      const all: Array<LedgerEntry> = []
      for (let page = yield* ledger.entries({ from: 0 }); page.length > 0; ) {
        all.push(...page)
        page = yield* ledger.entries({ from: all.length })
      }
      const succeeded = all.filter((e) => e.kind === "step.succeeded").map((e) => `${e.taskId}/${e.stepId}`)
      assert.strictEqual(succeeded.length, 2_000)
      assert.strictEqual(new Set(succeeded).size, 2_000)
      const verification = yield* ledger.verifyAll()
      assert.isTrue(verification.valid)
      assert.strictEqual(verification.entries, all.length)
    }).pipe(Effect.provide(memory({ runtime: { concurrency: 32 } })))
  )

  it.live("events stream a task's transitions live, in order", () =>
    Effect.gen(function* () {
      const runtime = yield* Runtime
      // two subscriptions: consumers of one subscription would share (split) its events
      const collected = yield* Effect.forkChild(
        (yield* runtime.events()).pipe(
          Stream.filter((e) => e.kind === "task.completed"),
          Stream.take(1),
          Stream.runCollect
        )
      )
      const all = yield* Effect.forkChild(
        (yield* runtime.events()).pipe(
          Stream.takeUntil((e) => e.kind === "task.completed"),
          Stream.runCollect
        )
      )
      const task = yield* runtime.start(monitoring, alice)
      const [done] = yield* Fiber.join(collected)
      assert.strictEqual(done!.taskId, task.id)
      const seq = yield* Fiber.join(all)
      assert.deepStrictEqual(
        seq.map((e) => (e.stepId === undefined ? e.kind : `${e.kind}:${e.stepId}`)),
        [
          "task.created",
          "plan.created",
          "policy.decided:check_balance",
          "policy.decided:monitor_action",
          "step.queued:check_balance",
          "step.started:check_balance",
          "step.succeeded:check_balance",
          "step.queued:monitor_action",
          "step.started:monitor_action",
          "monitor.observed:monitor_action",
          "step.succeeded:monitor_action",
          "task.completed"
        ].filter((k) => k !== "monitor.observed:monitor_action")
      )
      assert.isTrue(seq.every((e, i) => i === 0 || e.seq > seq[i - 1]!.seq))
      assert.strictEqual(seq.at(-1)!.state, "completed")
    }).pipe(Effect.scoped, Effect.provide(memory()))
  )

  it.live(
    "a task's stream opens with its current state, so a late subscriber misses nothing (first step gated)",
    () => {
      const note = handler({ type: "note", params: Note, result: Note, run: (p) => Effect.succeed(p) })
      const gatedFirst = taskTemplate({
        kind: "gated_first",
        params: Schema.Struct({}),
        steps: () => [{ id: "release", type: "gated_note", params: { text: "release" } }]
      })
      return Effect.gen(function* () {
        const runtime = yield* Runtime
        const task = yield* runtime.start({ kind: "gated_first", params: {} }, alice)
        // The task already waits: subscribing now must still tell so, instead of waiting forever
        const events = yield* runtime.events(task.id)
        const first = yield* Stream.runHead(Stream.filter(events, (e) => e.state === "waiting_approval"))
        assert.strictEqual(first._tag, "Some")
        assert.strictEqual(first._tag === "Some" && first.value.kind, "task.snapshot")
        assert.deepStrictEqual(first._tag === "Some" && first.value.data, {
          steps: [{ id: "release", type: "gated_note", state: "waiting_approval" }],
          reasons: []
        })
        const approved = yield* runtime.approve(task.id, bob)
        const rest = yield* events.pipe(
          Stream.drop(1), // the snapshot, emitted again by a new run of the stream
          Stream.takeUntil((e) => e.kind === "task.completed"),
          Stream.runCollect
        )
        // Only transitions after the snapshot, in order, each newer than the last
        const seen = first._tag === "Some" ? first.value.version : Number.POSITIVE_INFINITY
        assert.isTrue(rest.every((e) => e.version > seen))
        assert.isTrue(rest.every((e, i) => i === 0 || e.version >= rest[i - 1]!.version))
        assert.deepStrictEqual(
          rest.map((e) => e.kind),
          ["approval.granted", "step.queued", "task.running", "step.started", "step.succeeded", "task.completed"]
        )
        assert.isAbove(approved.task.version, 0)
      }).pipe(
        Effect.scoped,
        Effect.provide(
          memory({
            handlers: [note, { ...note, type: "gated_note" }],
            templates: [gatedFirst],
            policy: policyWith({ id: "gate", effect: "require_approval", match: { action: "gated_note" } })
          })
        )
      )
    }
  )

  it.live("plans can be created as a dry run and executed later", () =>
    Effect.gen(function* () {
      const runtime = yield* Runtime
      const plan = yield* runtime.plan(transfer(), alice)
      assert.deepStrictEqual(
        plan.steps.map((s) => s.decision.effect),
        ["allow", "allow", "require_approval"]
      )
      assert.deepStrictEqual(yield* runtime.getPlan(plan.id), plan)
      const denied = yield* runtime.plan(transfer(5_000_000), alice)
      assert.strictEqual(denied.steps[2]!.decision.effect, "deny")
      const task = yield* runtime.execute(plan.id, alice)
      yield* waitFor(task.id, stateIs("waiting_approval"))
      const refused = yield* Effect.flip(runtime.execute(denied.id, alice))
      assert.strictEqual(refused._tag, "TaskRejected")
      const list = yield* runtime.list({ requestedBy: "alice" })
      assert.isAtLeast(list.tasks.length, 2)
      void admin
    }).pipe(Effect.provide(memory()))
  )
})

describe("Runtime: plan binding", () => {
  it.live("a stored plan runs only if the templates still plan it the same way; otherwise PlanStale", () =>
    Effect.gen(function* () {
      // Two runtimes over the same stores: the second one's monitoring template plans an extra step
      const stores = yield* Layer.build(Mandate.layerMemoryStores())
      const shared = Layer.succeedContext(stores)
      const before = yield* Layer.build(Mandate.layer(shared, { runtime: { workers: false } }))
      const reviewed = yield* Context.get(before, Runtime).plan(monitoring, alice)
      const changedTemplate = taskTemplate({
        kind: "monitoring",
        params: Schema.Struct({ wallet: Schema.String }),
        steps: ({ wallet }) => [
          { id: "check_balance", type: "check_balance", params: { wallet } },
          { id: "again", type: "check_balance", params: { wallet }, dependsOn: ["check_balance"] }
        ]
      })
      const after = yield* Layer.build(
        Mandate.layer(shared, { runtime: { workers: false }, templates: [changedTemplate] })
      )
      const stale = yield* Effect.flip(Context.get(after, Runtime).execute(reviewed.id, alice))
      assert.strictEqual(stale._tag, "PlanStale")
      assert.strictEqual((stale as { reason?: string }).reason, "plan_changed")
      // The runtime that planned it still runs it, bound to the same hash
      const task = yield* Context.get(before, Runtime).execute(reviewed.id, alice)
      const view = yield* Context.get(before, Runtime).get(task.id)
      assert.strictEqual(view.plan.hash, reviewed.hash)
    })
  )
})
