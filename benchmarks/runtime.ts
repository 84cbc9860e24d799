/**
 * bench:runtime — the governed runtime beside DBOS Transact 5.3 and LangGraph 1.7 in one run, on memory, Postgres
 * and Redis. Every system runs the same 3-step workflow (`check_balance → policy_check → onchain_action`; Mandate:
 * the seed `transfer_funds` task, planned, checked against policy and recorded in the ledger at every step;
 * the peers: three steps that do nothing, checkpointed after each):
 *
 * - load: N workflows (`--tasks`, default 2,000), 64 started at a time, each to completion: workflows/s and this
 *   process's CPU ms per workflow;
 * - one at a time: `--one` workflows (default 200), start → completion, p50/p95;
 * - approval → completion: `--one` workflows parked before their last step, each approved and timed from the
 *   approval call to completion, one at a time;
 * - parked: `--parked` workflows (default 1,000) parked before their last step, all approved at once, completions/s
 *   from the first approval to the last completion.
 *
 * Mandate: auto-approval for small transfers, one approver for large ones (`gatedAbove`), worker concurrency 32,
 * ledger anchored every 10,000 entries. Completion is the `task.completed` event.
 * DBOS Transact: its fastest documented set-up for in-process workflows: `DBOS.startWorkflow` (no queue; the
 * workflow runs in this process), steps via `DBOS.runStep`, LISTEN/NOTIFY on (the default), log level `error`;
 * the approval is `DBOS.recv` / `DBOS.send` (parked = it set an event before `recv`). Its system database is the
 * same Postgres database, in its own schema. Completion is `handle.getResult()`.
 * LangGraph: a `StateGraph` of three nodes compiled with `MemorySaver` (memory) and `PostgresSaver` (Postgres, its
 * own schema); the approval is `interrupt()` in the last node, resumed with `Command({ resume })`. Completion is
 * the resolved `invoke`.
 * Postgres connections: a pool of `--pool` (default 10) for each system. Redis: Mandate only (neither peer has a
 * Redis backend installed here); its ratios are against the peers' Postgres figures.
 *
 *   npm run bench:runtime
 *   npm run bench:runtime -- --tasks 5000 --one 200 --parked 1000 --pool 10 --only memory,postgres,redis
 *   npm run bench:runtime -- --only postgres --peers none      (Mandate alone)
 *   npm run bench:runtime -- --parts [--tasks 3000]            (memory: where a task's CPU goes, part by part)
 *
 * Every schema and key prefix is the run's own and is dropped at the end.
 *
 * @since 0.1.0
 */
import { Socket } from "node:net"
import { cpus, loadavg } from "node:os"
import { DBOS } from "@dbos-inc/dbos-sdk"
import { Command, END, interrupt, MemorySaver, START, StateGraph, StateSchema } from "@langchain/langgraph"
import { PostgresSaver } from "@langchain/langgraph-checkpoint-postgres"
import * as Postgres from "@mandate/adapters/postgres"
import * as Redis from "@mandate/adapters/redis"
import { AgentId, Ledger, Mandate, Planner, Queue, Runtime, UnitOfWork } from "@mandate/core"
import { Effect, type Layer, ManagedRuntime, Stream } from "effect"
import { Redis as IORedis } from "ioredis"
import pg from "pg"
import * as z from "zod"
import {
  alice,
  arg,
  bob,
  gated,
  gatedAbove,
  type Latency,
  latencyOf,
  type Measure,
  pooled,
  stopwatch,
  transfer
} from "./support.ts"

const tasks = arg("tasks", 2_000)
const one = arg("one", 200)
const parkedCount = arg("parked", 1_000)
const poolSize = arg("pool", 10)
const concurrency = arg("concurrency", 32)
// `--peers none`: Mandate alone (e.g. to compare two builds of Mandate)
const withPeers = process.argv[process.argv.indexOf("--peers") + 1] !== "none" || !process.argv.includes("--peers")
const only = (() => {
  const i = process.argv.indexOf("--only")
  return new Set(i >= 0 ? (process.argv[i + 1] ?? "").split(",") : ["memory", "postgres", "redis"])
})()
const pgUrl = process.env.DATABASE_URL ?? "postgres://root@127.0.0.1:5432/test"
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"
const run = `runtime_speed_${crypto.randomUUID().replaceAll("-", "").slice(0, 10)}`
const schemas = { mandate: `mandate_${run}`, dbos: `dbos_${run}`, langgraph: `langgraph_${run}` }
const redisPrefix = `mandate-bench-${run}:`

// Round trips: every write to a socket connected to Postgres' port (a pipelined batch is one write), counted for
// every system alike
const pgPort = Number(new URL(pgUrl).port || 5432)
let pgWrites = 0
const write = Socket.prototype.write
Socket.prototype.write = function (this: Socket, ...args: Parameters<Socket["write"]>) {
  if (this.remotePort === pgPort) pgWrites++
  return write.apply(this, args)
} as Socket["write"]

// Progress on stderr, so the tables on stdout stay clean
const progress = (message: string) => process.stderr.write(`  … ${message}\n`)

/** One system under test: the same four operations over each library's own API. */
interface System {
  readonly name: string
  /** Runs the i-th unattended workflow to completion. */
  readonly run: (i: number) => Promise<void>
  /** Starts the i-th gated workflow; resolves once it waits for its approval, with what `approve` takes. */
  readonly park: (i: number) => Promise<string>
  /** Approves a parked workflow; resolves once it completed. */
  readonly approve: (id: string) => Promise<void>
  readonly close: () => Promise<void>
}

interface Figures {
  readonly load: Measure
  /** Writes to Postgres per workflow during the load phase (round trips; 0 off Postgres). */
  readonly writes: number
  readonly one: Latency
  readonly approval: Latency
  readonly parked: Measure
}

const measureSystem = async (system: System): Promise<Figures> => {
  progress(`${system.name}: warm-up`)
  await pooled(100, 16, (i) => system.run(1_000_000 + i))
  await system.approve(await system.park(1_000_000))

  progress(`${system.name}: ${tasks} workflows, 64 in flight`)
  const stopLoad = stopwatch(tasks)
  const writes0 = pgWrites
  await pooled(tasks, 64, (i) => system.run(i))
  const load = stopLoad()
  const writes = pgWrites === writes0 ? Number.NaN : (pgWrites - writes0) / tasks

  progress(`${system.name}: ${one} workflows one at a time`)
  const singles: Array<number> = []
  for (let i = 0; i < one; i++) {
    const t0 = performance.now()
    await system.run(tasks + i)
    singles.push(performance.now() - t0)
  }

  progress(`${system.name}: ${one} approvals one at a time`)
  const approvals: Array<number> = []
  for (let i = 0; i < one; i++) {
    const id = await system.park(i)
    const t0 = performance.now()
    await system.approve(id)
    approvals.push(performance.now() - t0)
  }

  progress(`${system.name}: ${parkedCount} workflows parked`)
  const ids: Array<string> = []
  await pooled(parkedCount, 64, async (i) => {
    ids.push(await system.park(one + i))
  })
  progress(`${system.name}: ${parkedCount} approvals at once`)
  const stopParked = stopwatch(parkedCount)
  await Promise.all(ids.map((id) => system.approve(id)))
  const parked = stopParked()
  return { load, writes, one: latencyOf(singles), approval: latencyOf(approvals), parked }
}

// ---- Mandate -------------------------------------------------------------------------------------------------

/** Resolves when a task's event of a kind is published, whether it came before or after the wait began. */
const signals = () => {
  const seen = new Map<string, true>()
  const waiting = new Map<string, () => void>()
  return {
    fire: (taskId: string, kind: string) => {
      const key = `${kind} ${taskId}`
      const resolve = waiting.get(key)
      if (resolve === undefined) seen.set(key, true)
      else {
        waiting.delete(key)
        resolve()
      }
    },
    when: (taskId: string, kind: string): Promise<void> => {
      const key = `${kind} ${taskId}`
      if (seen.delete(key)) return Promise.resolve()
      return new Promise<void>((resolve) => waiting.set(key, resolve))
    }
  }
}

const mandateSystem = async (name: string, layer: Layer.Layer<Runtime, unknown>): Promise<System> => {
  const managed = ManagedRuntime.make(layer)
  const runtime = await managed.runPromise(
    Effect.gen(function* () {
      return yield* Runtime
    })
  )
  const { fire, when } = signals()
  const followed = new Set(["task.completed", "step.waiting_approval"])
  let subscribed: () => void = () => {}
  const ready = new Promise<void>((resolve) => {
    subscribed = resolve
  })
  managed.runFork(
    Effect.scoped(
      Effect.gen(function* () {
        const events = yield* runtime.events()
        subscribed()
        yield* Stream.runForEach(events, (e) =>
          Effect.sync(() => {
            if (followed.has(e.kind)) fire(e.taskId, e.kind)
          })
        )
      })
    )
  )
  await ready
  return {
    name,
    run: async (i) => {
      const task = await managed.runPromise(runtime.start(transfer(i), alice))
      await when(task.id, "task.completed")
    },
    park: async (i) => {
      const task = await managed.runPromise(runtime.start(gated(i), alice))
      await when(task.id, "step.waiting_approval")
      return task.id
    },
    approve: async (id) => {
      const done = when(id, "task.completed")
      await managed.runPromise(runtime.approve(id, bob))
      await done
    },
    close: () => managed.dispose()
  }
}

const mandateOptions = {
  policy: gatedAbove,
  runtime: { concurrency, pollIntervalMs: 100 },
  ledger: { anchorEvery: { entries: 10_000 } }
}

const mandateMemory = () => mandateSystem("Mandate", Mandate.layerMemory(mandateOptions))
const mandatePostgres = () =>
  mandateSystem(
    "Mandate",
    Mandate.layer(
      Postgres.layer(Postgres.makeConfig(pgUrl, { schema: schemas.mandate, poolSize }), { policy: gatedAbove }),
      mandateOptions
    )
  )
const mandateRedis = () =>
  mandateSystem(
    "Mandate",
    Mandate.layer(
      Redis.layer(Redis.makeConfig(redisUrl, { prefix: redisPrefix, clientName: "mandate-bench-runtime" }), {
        policy: gatedAbove
      }),
      mandateOptions
    )
  )

// ---- where a task's CPU goes (`--parts`) -----------------------------------------------------------------------

/**
 * CPU µs per task of the whole seed task on memory (64 in flight) and of its parts measured alone, each as many
 * times as one task does it: the start (plan, policy, opening unit, no workers), the plan alone, 12 ledger
 * entries appended in 4 batches of 3 (a task's units), 3 jobs enqueued, claimed and completed, 4 empty units of
 * work. The parts overlap (the start contains a plan and 5 entries): it is a budget to read, not a sum.
 */
const measureParts = async () => {
  const cpuPerTask = async (count: number, f: () => Promise<void>) => {
    const before = process.cpuUsage()
    await f()
    const used = process.cpuUsage(before)
    return (used.user + used.system) / count
  }
  const whole = await mandateMemory()
  await pooled(500, 64, (i) => whole.run(2_000_000 + i))
  const task = await cpuPerTask(tasks, () => pooled(tasks, 64, (i) => whole.run(i)))
  await whole.close()

  const managed = ManagedRuntime.make(
    Mandate.layerMemory({ ...mandateOptions, runtime: { ...mandateOptions.runtime, workers: false } })
  )
  const services = await managed.runPromise(
    Effect.gen(function* () {
      return {
        runtime: yield* Runtime,
        planner: yield* Planner,
        ledger: yield* Ledger,
        queue: yield* Queue,
        uow: yield* UnitOfWork
      }
    })
  )
  const { runtime, planner, ledger, queue, uow } = services
  const workerId = AgentId.make("worker_bench")
  const part = async (run: (i: number) => Effect.Effect<unknown, unknown>) => {
    const loop = (offset: number) =>
      Effect.gen(function* () {
        for (let i = 0; i < tasks; i++) yield* run(offset + i)
      })
    await managed.runPromise(loop(10_000_000))
    return cpuPerTask(tasks, () => managed.runPromise(loop(0)))
  }
  const taskId = (await managed.runPromise(runtime.start(transfer(0), alice))).id
  const payload = { attempt: 1, round: 0, worker: "worker_bench", result: { wallet: "B".repeat(60), balance: 1 } }
  const rows: ReadonlyArray<readonly [string, number]> = [
    ["whole task, 64 in flight (workers, events)", task],
    ["start alone (plan, policy, opening unit)", await part((i) => runtime.start(transfer(i), alice))],
    ["plan alone (planner + policy)", await part((i) => planner.plan({ ...transfer(i), principal: alice }))],
    [
      "12 ledger entries, 4 batches of 3",
      await part(() =>
        Effect.gen(function* () {
          for (let u = 0; u < 4; u++) {
            yield* ledger.appendBatch(
              [0, 1, 2].map((k) => ({ kind: `step.part${k}`, taskId, stepId: "check_balance", payload }))
            )
          }
        })
      )
    ],
    [
      "3 jobs enqueued, claimed, completed",
      await part((i) =>
        Effect.gen(function* () {
          for (let s = 0; s < 3; s++) {
            yield* queue.enqueueBatch([
              { queue: "bench-parts", payload: { taskId, stepId: `s${s}`, round: 0 }, idempotencyKey: `${i}/${s}` }
            ])
            for (const job of yield* queue.claim({ workerId, queues: ["bench-parts"] })) {
              yield* queue.complete(job.id, workerId, { ok: true })
            }
          }
        })
      )
    ],
    [
      "4 empty units of work",
      await part(() =>
        Effect.gen(function* () {
          for (let u = 0; u < 4; u++) yield* uow.run(Effect.void)
        })
      )
    ]
  ]
  await managed.dispose()
  console.log(`\nmemory: CPU µs per task, ${fmt(tasks)} tasks (parts measured alone, as often as one task does them)`)
  for (const [label, us] of rows) console.log(`${label.padEnd(48)}${fmt(us).padStart(8)}`)
}

// ---- DBOS Transact -------------------------------------------------------------------------------------------

const dbosSystem = async (): Promise<System> => {
  const checkBalance = async (i: number) => ({ balance: 1_000_000, i })
  const policyCheck = async () => ({ allowed: true })
  const onchainAction = async (i: number) => ({ txId: `tx-${i}` })
  const transferWorkflow = async (i: number, approval: boolean) => {
    await DBOS.runStep(() => checkBalance(i), { name: "check_balance" })
    await DBOS.runStep(() => policyCheck(), { name: "policy_check" })
    if (approval) {
      await DBOS.setEvent("parked", true)
      const decision = await DBOS.recv<string>("approval", 600)
      if (decision !== "approve") throw new Error(`not approved: ${decision}`)
    }
    return DBOS.runStep(() => onchainAction(i), { name: "onchain_action" })
  }
  const workflow = DBOS.registerWorkflow(transferWorkflow, { name: "transfer_funds" })
  DBOS.setConfig({
    name: "mandate-bench",
    applicationVersion: "0.1.0",
    systemDatabaseUrl: pgUrl,
    systemDatabaseSchemaName: schemas.dbos,
    systemDatabasePoolSize: poolSize,
    logLevel: "error"
  })
  await DBOS.launch()
  // A retrieved handle polls the database for the result; the handle `startWorkflow` returned awaits it in memory
  const handles = new Map<string, { getResult: () => Promise<unknown> }>()
  return {
    name: "DBOS",
    run: async (i) => {
      const handle = await DBOS.startWorkflow(workflow)(i, false)
      await handle.getResult()
    },
    park: async (i) => {
      const handle = await DBOS.startWorkflow(workflow)(i, true)
      await DBOS.getEvent(handle.workflowID, "parked", 600)
      handles.set(handle.workflowID, handle)
      return handle.workflowID
    },
    approve: async (id) => {
      await DBOS.send(id, "approve", "approval")
      const handle = handles.get(id)
      handles.delete(id)
      await (handle ?? DBOS.retrieveWorkflow(id)).getResult()
    },
    close: () => DBOS.shutdown()
  }
}

// ---- LangGraph -----------------------------------------------------------------------------------------------

const langGraphSystem = async (name: string, checkpointer: MemorySaver | PostgresSaver): Promise<System> => {
  const State = new StateSchema({
    i: z.number(),
    approval: z.boolean(),
    balance: z.number().optional(),
    allowed: z.boolean().optional(),
    txId: z.string().optional()
  })
  const graph = new StateGraph(State)
    .addNode("check_balance", () => ({ balance: 1_000_000 }))
    .addNode("policy_check", () => ({ allowed: true }))
    .addNode("onchain_action", (state) => {
      if (state.approval && interrupt("approve?") !== "approve") throw new Error("not approved")
      return { txId: `tx-${state.i}` }
    })
    .addEdge(START, "check_balance")
    .addEdge("check_balance", "policy_check")
    .addEdge("policy_check", "onchain_action")
    .addEdge("onchain_action", END)
    .compile({ checkpointer })
  let thread = 0
  return {
    name,
    run: async (i) => {
      await graph.invoke({ i, approval: false }, { configurable: { thread_id: `run-${thread++}` } })
    },
    park: async (i) => {
      const thread_id = `park-${thread++}`
      await graph.invoke({ i, approval: true }, { configurable: { thread_id } })
      return thread_id
    },
    approve: async (thread_id) => {
      await graph.invoke(new Command({ resume: "approve" }), { configurable: { thread_id } })
    },
    close: async () => {
      if (checkpointer instanceof PostgresSaver) await checkpointer.end()
    }
  }
}

const langGraphPostgres = async () => {
  const saver = new PostgresSaver(new pg.Pool({ connectionString: pgUrl, max: poolSize }), undefined, {
    schema: schemas.langgraph
  })
  await saver.setup()
  return langGraphSystem("LangGraph", saver)
}

// ---- the run -------------------------------------------------------------------------------------------------

const fmt = (n: number, digits = 0) =>
  Number.isFinite(n) ? n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits }) : "—"
const rate = (m: Measure) => (m.count / m.wallMs) * 1000

type Row = readonly [label: string, pick: (f: Figures) => number, digits: number, higherIsBetter: boolean]
const rows: ReadonlyArray<Row> = [
  ["64 in flight, workflows/s", (f) => rate(f.load), 0, true],
  ["  CPU ms per workflow", (f) => f.load.cpuMs / f.load.count, 2, false],
  ["  Postgres round trips per workflow", (f) => f.writes, 1, false],
  ["one at a time, p50 ms", (f) => f.one.p50, 2, false],
  ["one at a time, p95 ms", (f) => f.one.p95, 2, false],
  ["approval → completion p50 ms", (f) => f.approval.p50, 2, false],
  ["approval → completion p95 ms", (f) => f.approval.p95, 2, false],
  [`${fmt(parkedCount)} approved at once, /s`, (f) => rate(f.parked), 0, true]
]

const table = (
  title: string,
  figures: ReadonlyArray<readonly [string, Figures | undefined]>,
  peers: ReadonlyArray<Figures>
) => {
  console.log("")
  console.log(title)
  console.log(
    `${"".padEnd(32)}${figures.map(([n]) => n.padStart(14)).join("")}${"Mandate / best peer (↑ higher, ↓ lower is better)".padStart(52)}`
  )
  for (const [label, pick, digits, higher] of rows) {
    const values = figures.map(([, f]) => (f === undefined ? Number.NaN : pick(f)))
    const peerValues = peers.map(pick)
    const best = peerValues.length === 0 ? Number.NaN : higher ? Math.max(...peerValues) : Math.min(...peerValues)
    const ratio = values[0]! / best
    console.log(
      `${label.padEnd(32)}${values.map((v) => fmt(v, digits).padStart(14)).join("")}${(Number.isFinite(ratio) ? `${ratio.toFixed(2)}${higher ? " ↑" : " ↓"}` : "").padStart(52)}`
    )
  }
}

const systemsRun: Array<System> = []
const open = async (make: () => Promise<System>): Promise<System> => {
  const system = await make()
  systemsRun.push(system)
  return system
}
const closeAll = async () => {
  for (const system of systemsRun.splice(0)) await system.close().catch((e) => console.error(e))
}

const cleanup = async () => {
  await closeAll()
  const client = new pg.Client({ connectionString: pgUrl })
  await client.connect()
  for (const schema of Object.values(schemas)) await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  await client.end()
  const redis = new IORedis(redisUrl)
  let cursor = "0"
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${redisPrefix}*`, "COUNT", 1000)
    cursor = next
    if (keys.length > 0) await redis.del(...keys)
  } while (cursor !== "0")
  redis.disconnect()
}

const main = async () => {
  const cpu = cpus()
  console.log(
    `bench:runtime — 3-step workflow (check_balance → policy_check → onchain_action): Mandate vs DBOS Transact 5.3 ` +
      `vs LangGraph 1.7; ${fmt(tasks)} at 64 in flight, ${one} one at a time, ${fmt(parkedCount)} parked`
  )
  console.log(
    `${cpu.length} × ${cpu[0]?.model ?? "?"}, node ${process.version}, pool ${poolSize} per system, ` +
      `Mandate worker concurrency ${concurrency}, load average ${loadavg()
        .map((n) => n.toFixed(1))
        .join(" ")} (the machine is shared: compare ratios within one run)`
  )
  if (process.argv.includes("--parts")) return measureParts()
  const results: Record<string, Array<readonly [string, Figures | undefined]>> = {}
  const measureOne = async (make: () => Promise<System>) => {
    const system = await open(make)
    const figures = await measureSystem(system)
    await closeAll()
    return [system.name, figures] as const
  }
  if (only.has("memory")) {
    results.memory = [await measureOne(mandateMemory)]
    if (withPeers) results.memory.push(await measureOne(() => langGraphSystem("LangGraph", new MemorySaver())))
  }
  let dbos: Figures | undefined
  if (only.has("postgres")) {
    results.postgres = [await measureOne(mandatePostgres)]
    if (withPeers) {
      const d = await measureOne(dbosSystem)
      dbos = d[1]
      results.postgres.push(d, await measureOne(langGraphPostgres))
    }
  }
  if (only.has("redis")) results.redis = [await measureOne(mandateRedis)]

  if (results.memory) {
    table(
      "memory (LangGraph: MemorySaver)",
      results.memory,
      results.memory.slice(1).flatMap(([, f]) => (f ? [f] : []))
    )
  }
  if (results.postgres) {
    table(
      "Postgres (DBOS: system database in its own schema; LangGraph: PostgresSaver)",
      results.postgres,
      results.postgres.slice(1).flatMap(([, f]) => (f ? [f] : []))
    )
  }
  if (results.redis) {
    table("Redis (Mandate only; ratio against DBOS on Postgres in this run)", results.redis, dbos ? [dbos] : [])
  }
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    progress(`${signal}: stopping and dropping the schemas`)
    void cleanup().finally(() => process.exit(130))
  })
}

try {
  await main()
} catch (error) {
  console.error(error)
  process.exitCode = 1
} finally {
  await cleanup().catch((e) => console.error(e))
}
process.exit()
