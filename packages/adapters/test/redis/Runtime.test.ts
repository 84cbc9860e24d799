/**
 * The runtime end to end with every store on Redis (tasks, the steps' job queue, the agent registry, the ledger,
 * and the unit of work that commits each transition): the seed workflow runs to completion across an approval, and
 * its audit trail is in Redis.
 */
import { assert, layer } from "@effect/vitest"
import { layerAgents, layerLedgerStore, layerQueue, layerTaskStore, layerUnitOfWork } from "@mandate/adapters/redis"
import {
  Anchor,
  Ledger,
  Planner,
  Policy,
  Principal,
  Runtime,
  type RuntimeOptions,
  Seed,
  SeedHandlers,
  StepHandlers,
  TaskStore,
  type TaskView,
  Wallets
} from "@mandate/core"
import { type Duration, Effect, Layer } from "effect"
import { describeRedis, TestRedis } from "../utils/TestRedis.ts"

const walletA = `${"A".repeat(56)}FXIB`
const walletB = "B".repeat(60)
const alice = Principal.make("alice", ["submitter"])
const bob = Principal.make("bob", ["approver"])

const fastRuntime: RuntimeOptions = { pollIntervalMs: 50, leaseMs: 2_000, heartbeatIntervalMs: 200, concurrency: 8 }

// Everything but the stores in memory, as `Mandate.layerMemory` composes it; the stores on Redis
const services = Layer.mergeAll(
  Ledger.layer(),
  StepHandlers.layer(SeedHandlers.handlers()),
  Planner.layerTemplates({ stepTypes: Seed.stepTypes }).pipe(Layer.provideMerge(Policy.layerMemory()))
).pipe(Layer.provideMerge(Layer.mergeAll(Wallets.layerMemory({ defaultBalance: 1_000_000 }), Anchor.layerMemory)))

const onRedis = TestRedis.layerWith((options) =>
  Runtime.layer(fastRuntime).pipe(
    Layer.provideMerge(services),
    Layer.provideMerge(
      Layer.mergeAll(
        layerTaskStore(options),
        layerQueue({ ...options, backoff: { baseMs: 5, capMs: 20 }, requeueIntervalMs: 50 }),
        layerAgents(options),
        layerLedgerStore(options),
        layerUnitOfWork
      )
    )
  )
)

const waitFor = (taskId: string, until: (view: TaskView) => boolean, timeout: Duration.Input = "20 seconds") =>
  Effect.gen(function* () {
    const runtime = yield* Runtime
    while (true) {
      const view = yield* runtime.get(taskId)
      if (until(view)) return view
      yield* Effect.sleep("10 millis")
    }
  }).pipe(Effect.timeout(timeout))

describeRedis("Runtime on Redis stores", () => {
  layer(onRedis, { excludeTestServices: true, timeout: "60 seconds" })("seed workflow", (it) => {
    it.effect("plans, runs, waits for approval, completes; the task is stored in Redis", () =>
      Effect.gen(function* () {
        const runtime = yield* Runtime
        const store = yield* TaskStore
        const started = yield* runtime.start(
          { kind: "transfer_funds", params: { from: walletA, to: walletB, amount: 250 } },
          alice
        )
        const waiting = yield* waitFor(started.id, (v) => v.task.state === "waiting_approval")
        assert.deepStrictEqual(
          waiting.steps.map((s) => [s.id, s.state]),
          [
            ["check_balance", "succeeded"],
            ["policy_check", "succeeded"],
            ["onchain_action", "waiting_approval"]
          ]
        )
        yield* runtime.approve(started.id, bob, { comment: "fine" })
        const done = yield* waitFor(started.id, (v) => v.task.state === "completed")
        assert.strictEqual(done.steps[2]!.state, "succeeded")
        const stored = yield* store.get(started.id)
        assert.strictEqual(stored.task.state, "completed")
        assert.isFalse((yield* store.unfinished).includes(started.id))
        // the audit trail, from Redis, in order, and the ledger verifies
        const ledger = yield* Ledger
        const kinds = (yield* ledger.byTask(started.id)).map((e) => e.kind)
        assert.strictEqual(kinds[0], "task.created")
        assert.strictEqual(kinds.at(-1), "task.completed")
        assert.strictEqual(kinds.filter((k) => k === "step.succeeded").length, 3)
        assert.isTrue((yield* ledger.verifyAll()).valid)
      })
    )
  })
})
