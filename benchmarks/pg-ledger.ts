/**
 * The ledger on Postgres: appends (one entry per call from 1 and 10 fibers, which all serialise on the append
 * lock; batches of 100), then root, inclusion and consistency proofs and `verifyAll` over the stored ledger,
 * where the Merkle nodes are read from the database.
 *
 * Then many writers in several processes (`--processes N`, default 3; 0 skips): N child processes on the same
 * schema, each with 10 fibers appending single entries, then batches of 10; the figure is every entry written
 * over the time from the first child's start to the last one's end.
 *
 * Then units of work, as the runtime's (`--unit-fibers M`, default 10, per process): each unit a transaction with 3
 * entries of one task, appended under the head lock (`appendBatch`, held to COMMIT) or recorded for the sequencer
 * (`record`: staged in `ledger_pending`, integrated in batches by one sequencer); the recorded figure runs until
 * every entry is integrated (each child `sync`s at its end), and counts the sequencers' round trips too.
 *
 * Run: `npm run bench:pg-ledger [-- --processes N --unit-fibers M]` (DATABASE_URL or postgres://root@127.0.0.1:5432/test; a
 * throw-away schema).
 *
 * @since 0.1.0
 */
import { fork } from "node:child_process"
import { Socket } from "node:net"
import * as Postgres from "@mandate/adapters/postgres"
import { Anchor, Ledger, UnitOfWork } from "@mandate/core"
import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { percentile } from "./support.ts"

const url = process.env.DATABASE_URL ?? "postgres://root@127.0.0.1:5432/test"
const argValue = (name: string) => {
  const i = process.argv.indexOf(name)
  return i === -1 ? undefined : process.argv[i + 1]
}
const child = argValue("--child")
const processes = Number(argValue("--processes") ?? 3)
const unitFibers = Number(argValue("--unit-fibers") ?? 10)
// Only the units-of-work phases (children) and verifyAll
const unitsOnly = process.argv.includes("--units-only")
const schema = child ?? `mandate_bench_${crypto.randomUUID().replaceAll("-", "")}`
const config = Postgres.makeConfig(url, { schema, poolSize: 10 })

// Round trips: every write to a socket connected to Postgres' port (as in runtime.ts)
const pgPort = Number(new URL(url).port || 5432)
let pgWrites = 0
const socketWrite = Socket.prototype.write
Socket.prototype.write = function (this: Socket, ...args: Parameters<Socket["write"]>) {
  if (this.remotePort === pgPort) pgWrites++
  return socketWrite.apply(this, args)
} as Socket["write"]

const measure = <E, R>(
  label: string,
  count: number,
  concurrency: number,
  op: (i: number) => Effect.Effect<unknown, E, R>
) =>
  Effect.gen(function* () {
    const latencies: Array<number> = []
    const writes = pgWrites
    const started = performance.now()
    yield* Effect.forEach(
      Array.from({ length: count }, (_, i) => i),
      (i) =>
        Effect.suspend(() => {
          const t = performance.now()
          return Effect.tap(op(i), () => Effect.sync(() => latencies.push(performance.now() - t)))
        }),
      { concurrency, discard: true }
    )
    const seconds = (performance.now() - started) / 1000
    latencies.sort((a, b) => a - b)
    console.log(
      `${label.padEnd(48)} ${String(Math.round(count / seconds)).padStart(7)} ops/s   p50 ${percentile(latencies, 0.5).toFixed(2)} ms   p95 ${percentile(latencies, 0.95).toFixed(2)} ms   ${((pgWrites - writes) / count).toFixed(1)} round trips/op`
    )
  })

const entry = (i: number) => ({
  kind: "step.succeeded",
  taskId: `task_${i % 500}`,
  stepId: `step_${i}`,
  payload: { i, amount: i * 10, memo: "benchmark" }
})

// Each child: wait for the common start, append `singles` entries one per call and then `batches` batches of 10,
// from 10 fibers; report when each phase started and ended
const singles = 1_000
const batches = 100
const units = 600
const unitEntries = (tag: string, u: number) =>
  [0, 1, 2].map((k) => ({
    kind: "step.succeeded",
    taskId: `task_${tag}_${u % 200}`,
    stepId: `step_${u}_${k}`,
    payload: { u, k, amount: u * 10, memo: "benchmark" }
  }))
const childProgram = Effect.gen(function* () {
  const ledger = yield* Ledger
  const uow = yield* UnitOfWork
  const tag = String(process.pid)
  // ready; wait for the parent's go (every child is ready by then)
  yield* Effect.promise(
    () =>
      new Promise<void>((resolve) => {
        process.once("message", () => resolve())
        process.send?.("ready")
      })
  )
  const t0 = Date.now()
  const w0 = pgWrites
  yield* Effect.forEach(
    Array.from({ length: unitsOnly ? 0 : singles }, (_, i) => i),
    (i) => ledger.append(entry(i)),
    {
      concurrency: 10,
      discard: true
    }
  )
  const t1 = Date.now()
  const w1 = pgWrites
  yield* Effect.forEach(
    Array.from({ length: unitsOnly ? 0 : batches }, (_, b) => b),
    (b) => ledger.appendBatch(Array.from({ length: 10 }, (_, i) => entry(b * 10 + i))),
    { concurrency: 10, discard: true }
  )
  const t2 = Date.now()
  const w2 = pgWrites
  const c2 = process.cpuUsage()
  yield* Effect.forEach(
    Array.from({ length: units }, (_, u) => u),
    (u) => uow.run(ledger.appendBatch(unitEntries(`a${tag}`, u))),
    { concurrency: unitFibers, discard: true }
  )
  const t3 = Date.now()
  const w3 = pgWrites
  const c3 = process.cpuUsage()
  const appendCpu = process.cpuUsage(c2)
  yield* Effect.forEach(
    Array.from({ length: units }, (_, u) => u),
    (u) => uow.run(ledger.record(unitEntries(`r${tag}`, u))),
    { concurrency: unitFibers, discard: true }
  )
  const staged = Date.now()
  yield* ledger.sync
  const t4 = Date.now()
  const cpu = process.cpuUsage(c3)
  process.send?.({
    t0,
    t1,
    t2,
    t3,
    t4,
    staged,
    singleWrites: w1 - w0,
    batchWrites: w2 - w1,
    appendUnitWrites: w3 - w2,
    recordUnitWrites: pgWrites - w3,
    cpuMs: (cpu.user + cpu.system) / 1000,
    appendCpuMs: (appendCpu.user + appendCpu.system) / 1000
  })
})

interface Phases {
  readonly t0: number
  readonly t1: number
  readonly t2: number
  readonly t3: number
  readonly t4: number
  readonly staged: number
  readonly singleWrites: number
  readonly batchWrites: number
  readonly appendUnitWrites: number
  readonly recordUnitWrites: number
  readonly cpuMs: number
  readonly appendCpuMs: number
}

const manyProcesses = Effect.gen(function* () {
  let ready = 0
  let startAt = 0
  const children: Array<ReturnType<typeof fork>> = []
  const runs = yield* Effect.promise(() =>
    Promise.all(
      Array.from(
        { length: processes },
        () =>
          new Promise<Phases>((resolve, reject) => {
            const proc = fork(process.argv[1]!, ["--child", schema], {
              execArgv: process.execArgv,
              stdio: ["ignore", "ignore", "inherit", "ipc"]
            })
            children.push(proc)
            let phases: Phases | undefined
            proc.on("message", (message) => {
              if (message !== "ready") {
                phases = message as Phases
                return
              }
              ready += 1
              if (ready < processes) return
              startAt = Date.now()
              for (const c of children) c.send("go")
            })
            proc.on("exit", (code) =>
              phases === undefined ? reject(new Error(`a child exited with ${code}`)) : resolve(phases)
            )
          })
      )
    )
  )
  const late = Math.max(...runs.map((r) => r.t0)) - startAt
  const rate = (count: number, from: number, to: number) => String(Math.round(count / ((to - from) / 1000)))
  const singlesEnd = Math.max(...runs.map((r) => r.t1))
  const sum = (f: (r: Phases) => number) => runs.reduce((total, r) => total + f(r), 0)
  if (!unitsOnly) {
    console.log(
      `${`append, ${processes} processes x 10 fibers`.padEnd(48)} ${rate(processes * singles, startAt, singlesEnd).padStart(7)} entries/s   ${(sum((r) => r.singleWrites) / (processes * singles)).toFixed(1)} round trips/append` +
        (late > 0 ? `   (last child started ${late} ms late)` : "")
    )
    console.log(
      `${`appendBatch of 10, ${processes} processes x 10 fibers`.padEnd(48)} ${rate(processes * batches * 10, singlesEnd, Math.max(...runs.map((r) => r.t2))).padStart(7)} entries/s   ${(sum((r) => r.batchWrites) / (processes * batches)).toFixed(1)} round trips/batch`
    )
  }
  const batchesEnd = Math.max(...runs.map((r) => r.t2))
  const appendUnitsEnd = Math.max(...runs.map((r) => r.t3))
  console.log(
    `${`units of 3 appending, ${processes} proc x ${unitFibers} fibers`.padEnd(48)} ${rate(processes * units * 3, batchesEnd, appendUnitsEnd).padStart(7)} entries/s   ${(sum((r) => r.appendUnitWrites) / (processes * units)).toFixed(1)} round trips/unit   ${(sum((r) => r.appendCpuMs) / (processes * units)).toFixed(2)} ms Node CPU/unit`
  )
  console.log(
    `${`units of 3 recording, ${processes} proc x ${unitFibers} fibers`.padEnd(48)} ${rate(processes * units * 3, appendUnitsEnd, Math.max(...runs.map((r) => r.t4))).padStart(7)} entries/s   ${(sum((r) => r.recordUnitWrites) / (processes * units)).toFixed(1)} round trips/unit   ${(sum((r) => r.cpuMs) / (processes * units)).toFixed(2)} ms Node CPU/unit (sequencer included, to integrated)`
  )
  console.log(
    `(recording: last unit committed after ${Math.max(...runs.map((r) => r.staged)) - appendUnitsEnd} ms, last entry integrated after ${Math.max(...runs.map((r) => r.t4)) - appendUnitsEnd} ms)`
  )
})

const program = Effect.gen(function* () {
  const ledger = yield* Ledger
  console.log(`Postgres ledger benchmark (${new Date().toISOString()}, Node ${process.version})`)
  if (unitsOnly) {
    yield* manyProcesses
    return
  }
  yield* measure("append, 1 fiber", 2_000, 1, (i) => ledger.append(entry(i)))
  yield* measure("append, 10 fibers (one lock)", 3_000, 10, (i) => ledger.append(entry(i)))
  yield* measure("appendBatch of 100 (per batch)", 150, 1, (b) =>
    ledger.appendBatch(Array.from({ length: 100 }, (_, i) => entry(b * 100 + i)))
  )
  const size = yield* ledger.size
  console.log(`(ledger of ${size} entries)`)
  yield* measure("root of a random past size", 2_000, 1, (i) => ledger.root(1 + ((i * 7_919) % size)))
  yield* measure("inclusion proof, random entry", 2_000, 1, (i) => ledger.inclusionProof((i * 7_919) % size))
  yield* measure("consistency proof, random sizes", 2_000, 1, (i) =>
    ledger.consistencyProof(1 + ((i * 7_919) % (size - 1)), size)
  )
  if (processes > 0) yield* manyProcesses
  const started = performance.now()
  const report = yield* ledger.verifyAll()
  const ms = performance.now() - started
  console.log(
    `${"verifyAll (every entry and node re-hashed)".padEnd(48)} ${String(Math.round(size / (ms / 1000))).padStart(7)} entries/s (${Math.round(ms)} ms, valid: ${report.valid})`
  )
})

// The schema is dropped after the backend stops, so its background fibers never see it vanish
const dropSchema = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`
}).pipe(Effect.provide(Postgres.layerClient(Postgres.makeConfig(url, { poolSize: 1 }))))

const main = Effect.scoped(
  Effect.gen(function* () {
    const backend = yield* Layer.build(Postgres.layer(config))
    const context = yield* Layer.build(
      Ledger.layer().pipe(Layer.provide(Anchor.layerNone), Layer.provide(Layer.succeedContext(backend)))
    )
    yield* program.pipe(Effect.provideService(Ledger, Context.get(context, Ledger)))
  })
).pipe(Effect.ensuring(Effect.ignore(dropSchema)))

const childMain = Effect.scoped(
  Effect.gen(function* () {
    const backend = yield* Layer.build(Postgres.layer(config))
    const context = yield* Layer.build(
      Ledger.layer().pipe(Layer.provide(Anchor.layerNone), Layer.provide(Layer.succeedContext(backend)))
    )
    yield* childProgram.pipe(
      Effect.provideService(Ledger, Context.get(context, Ledger)),
      Effect.provideService(UnitOfWork, Context.get(backend, UnitOfWork))
    )
  })
)

Effect.runPromise<void, unknown>(child === undefined ? main : childMain).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
