import * as NodeCrypto from "node:crypto"
import { assert, it } from "@effect/vitest"
import * as Postgres from "@mandate/adapters/postgres"
import {
  Anchor,
  Ledger,
  Planner,
  Policy,
  Principal,
  Runtime,
  Seed,
  SeedHandlers,
  StepHandlers,
  type StepType,
  TaskStore,
  type TaskView,
  Wallets
} from "@mandate/core"
import { Context, type Duration, Effect, Layer, Stream } from "effect"
import { config, describePostgres, dropSchemaOnExit } from "../utils/TestPostgres.ts"

// The whole runtime on the Postgres backend: what a deployment runs, with the seed workflow
const signingKey = NodeCrypto.generateKeyPairSync("ed25519")
  .privateKey.export({ type: "pkcs8", format: "pem" })
  .toString()
const walletA = `${"A".repeat(56)}FXIB`
const walletB = "B".repeat(60)
const alice = Principal.make("alice", ["submitter"])
const bob = Principal.make("bob", ["approver"])
const transfer = { kind: "transfer_funds", params: { from: walletA, to: walletB, amount: 250 } }

const stack = (cfg: Postgres.PostgresConfig) => {
  const handlers = SeedHandlers.handlers()
  const stepTypes: Array<StepType> = [...Seed.stepTypes, ...handlers]
  const backend = Postgres.layer(cfg, { queue: { backoff: { baseMs: 5, capMs: 20 }, requeueIntervalMs: 50 } })
  const services = Layer.mergeAll(
    Ledger.layer({ signingKey }),
    StepHandlers.layer(handlers),
    Planner.layerTemplates({ stepTypes }).pipe(Layer.provideMerge(Policy.layer))
  ).pipe(
    Layer.provideMerge(Layer.mergeAll(backend, Wallets.layerMemory({ defaultBalance: 1_000_000 }), Anchor.layerMemory))
  )
  return Runtime.layer({ pollIntervalMs: 50, leaseMs: 5_000, heartbeatIntervalMs: 500, concurrency: 8 }).pipe(
    Layer.provideMerge(services)
  )
}

const waitFor = (
  runtime: Runtime["Service"],
  taskId: string,
  state: string,
  timeout: Duration.Input = "30 seconds"
): Effect.Effect<TaskView, unknown> =>
  Effect.gen(function* () {
    while (true) {
      const view = yield* runtime.get(taskId)
      if (view.task.state === state) return view
      yield* Effect.sleep("20 millis")
    }
  }).pipe(Effect.timeout(timeout))

describePostgres("Runtime on Postgres", () => {
  it.live(
    "runs the seed workflow across two processes sharing one schema; the audit trail verifies",
    () =>
      Effect.gen(function* () {
        const cfg = config()
        yield* dropSchemaOnExit(cfg.schema)
        const first = yield* Layer.build(stack(cfg))
        // a second process: its own pool, workers and ledger instance, the same schema and signing key
        const second = yield* Layer.build(stack({ ...cfg, poolSize: 4 }))
        const here = Context.get(first, Runtime)
        const there = Context.get(second, Runtime)

        const tasks = yield* Effect.all(
          Array.from({ length: 6 }, () => here.start(transfer, alice)),
          { concurrency: 3 }
        )
        for (const task of tasks) yield* waitFor(there, task.id, "waiting_approval")
        // approved in the other process; both processes' workers run the remaining steps
        yield* Effect.forEach(tasks, (task) => there.approve(task.id, bob), { concurrency: 3 })
        for (const task of tasks) {
          const done = yield* waitFor(here, task.id, "completed")
          assert.deepStrictEqual(
            done.steps.map((s) => s.state),
            ["succeeded", "succeeded", "succeeded"]
          )
        }

        // every step succeeded exactly once in the ledger, and the whole ledger verifies
        const ledger = Context.get(first, Ledger)
        for (const task of tasks) {
          const kinds = (yield* ledger.byTask(task.id)).map((e) => `${e.kind}:${e.stepId ?? ""}`)
          for (const step of ["check_balance", "policy_check", "onchain_action"]) {
            assert.strictEqual(kinds.filter((k) => k === `step.succeeded:${step}`).length, 1, `${task.id} ${step}`)
          }
          assert.strictEqual(kinds.at(-1), "task.completed:")
        }
        const report = yield* Context.get(second, Ledger).verifyAll()
        assert.isTrue(report.valid, JSON.stringify(report.mismatch))
        const counts = yield* Context.get(first, TaskStore).countByState
        assert.strictEqual(counts.completed, tasks.length)
      }),
    120_000
  )

  it.live(
    "publishes a transition's events only after it committed: whatever an event tells of can be read at once",
    () =>
      Effect.gen(function* () {
        const cfg = config()
        yield* dropSchemaOnExit(cfg.schema)
        const built = yield* Layer.build(stack(cfg))
        const runtime = Context.get(built, Runtime)
        const ledger = Context.get(built, Ledger)
        const problems: Array<string> = []
        // One task at a time, so the reader is idle and reads the moment the event arrives
        for (let i = 0; i < 10; i++) {
          const task = yield* runtime.start({ kind: "monitoring", params: { wallet: walletA } }, alice)
          const events = yield* runtime.events(task.id)
          const completed = yield* events.pipe(
            Stream.filter((e) => e.kind === "task.completed"),
            Stream.runHead
          )
          const [view, entries] = yield* Effect.all([runtime.get(task.id), ledger.byTask(task.id)], {
            concurrency: 2
          })
          if (view.task.state !== "completed") problems.push(`${task.id}: task.completed while ${view.task.state}`)
          if (entries.at(-1)?.kind !== "task.completed") {
            problems.push(`${task.id}: the trail ends with ${entries.at(-1)?.kind} (${entries.length} entries)`)
          }
          if (completed._tag === "Some" && view.task.version < completed.value.version) {
            problems.push(`${task.id}: version ${view.task.version} < ${completed.value.version}`)
          }
        }
        assert.deepStrictEqual(problems, [])
      }).pipe(Effect.scoped),
    120_000
  )
})
