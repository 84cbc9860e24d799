import * as ChildProcess from "node:child_process"
import * as NodeCrypto from "node:crypto"
import * as NodePath from "node:path"
import { assert, it } from "@effect/vitest"
import {
  type Job,
  Ledger,
  type LedgerEntry,
  Principal,
  Queue,
  Runtime,
  type StepId,
  TaskStore,
  type TaskView
} from "@mandate/core"
import { Context, Effect, Fiber, Layer, Option, type Scope } from "effect"
import { config, describePostgres, dropSchemaOnExit, url } from "../utils/TestPostgres.ts"
import { stack } from "./fixtures/stack.ts"

// The proof: one API process (this one) and three worker processes over one schema; 2,000 tasks; one
// worker SIGKILLed mid-run. Every task completes, every step is recorded as succeeded exactly once, and the
// ledger verifies. The recovery of the killed worker's steps comes from its leases expiring (reconcile is off).

const root = NodePath.resolve(import.meta.dirname, "../../../..")
const workerScript = NodePath.join(import.meta.dirname, "fixtures/worker.ts")
const signingKey = NodeCrypto.generateKeyPairSync("ed25519")
  .privateKey.export({ type: "pkcs8", format: "pem" })
  .toString()
const alice = Principal.make("alice", ["submitter"])
const wallets = ["A", "B", "C", "D"].map((c) => c.repeat(60))
const TASKS = 2_000
const STEPS = ["check_balance", "monitor_action"]
const KILL_AT = TASKS / 5
/** How long no task may change state before the run counts as stuck (a liveness check, not a speed bound). */
const STALL_MS = 300_000

interface WorkerProcess {
  readonly id: string
  readonly child: ChildProcess.ChildProcess
  /** What the process printed (the tail), for failure messages. */
  readonly output: () => string
  readonly exited: Promise<NodeJS.Signals | number | null>
}

/**
 * Starts a worker process and waits for its runtime to run; the scope's close kills it (SIGKILL) if it still
 * runs, so a failing test leaves no process behind.
 */
const spawnWorker = (id: string, schema: string): Effect.Effect<WorkerProcess, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<WorkerProcess, Error>((resume) => {
      const child = ChildProcess.spawn(
        process.execPath,
        ["--conditions=mandate-source", "--import", "tsx", workerScript],
        {
          cwd: root,
          env: {
            ...process.env,
            NODE_OPTIONS: "",
            DATABASE_URL: url,
            MANDATE_PG_SCHEMA: schema,
            MANDATE_WORKER_ID: id,
            MANDATE_SIGNING_KEY: signingKey,
            MANDATE_CONCURRENCY: "8"
          },
          stdio: ["ignore", "pipe", "pipe", "ipc"]
        }
      )
      let output = ""
      const collect = (chunk: Buffer) => {
        output = (output + chunk.toString()).slice(-8_000)
      }
      child.stdout!.on("data", collect)
      child.stderr!.on("data", collect)
      const exited = new Promise<NodeJS.Signals | number | null>((resolve) =>
        child.once("exit", (code, signal) => resolve(signal ?? code))
      )
      const worker: WorkerProcess = { id, child, output: () => output, exited }
      child.once("message", () => resume(Effect.succeed(worker)))
      child.once("exit", (code, signal) =>
        resume(Effect.fail(new Error(`worker ${id} exited (${signal ?? code}) before it was ready:\n${output}`)))
      )
      // Interrupted while starting (the timeout below): kill it here, release never runs for it
      return Effect.sync(() => child.kill("SIGKILL"))
    }).pipe(Effect.timeout("90 seconds")),
    (worker) =>
      worker.child.exitCode === null && worker.child.signalCode === null
        ? Effect.andThen(
            Effect.sync(() => worker.child.kill("SIGKILL")),
            Effect.promise(() => worker.exited)
          )
        : Effect.void
  )

/** Every ledger entry, by seq. */
const allEntries = (ledger: Ledger["Service"]) =>
  Effect.gen(function* () {
    const all: Array<LedgerEntry> = []
    while (true) {
      const page = yield* ledger.entries({ from: all.length, limit: 1_000 })
      if (page.length === 0) return all
      all.push(...page)
    }
  })

describePostgres("Runtime on Postgres, several processes", () => {
  it.live(
    `3 worker processes run ${TASKS} tasks; one is SIGKILLed mid-run; every step succeeds exactly once`,
    () =>
      Effect.gen(function* () {
        const cfg = config({ poolSize: 6 })
        yield* dropSchemaOnExit(cfg.schema)
        // This process serves the API only. Built first: it migrates the schema the workers then find ready
        const api = yield* Layer.build(stack(cfg, signingKey, { workers: false, reconcileIntervalMs: 0 }))
        const runtime = Context.get(api, Runtime)
        const ledger = Context.get(api, Ledger)
        const store = Context.get(api, TaskStore)
        const queue = Context.get(api, Queue)

        const ids = ["mp-worker-1", "mp-worker-2", "mp-worker-3"]
        const workers = yield* Effect.forEach(ids, (id) => spawnWorker(id, cfg.schema), { concurrency: "unbounded" })
        const [victim, ...survivors] = workers as [WorkerProcess, ...Array<WorkerProcess>]
        const startedAt = Date.now()

        const submitting = yield* Effect.forkChild(
          Effect.forEach(
            Array.from({ length: TASKS }, (_, i) => i),
            (i) => runtime.start({ kind: "monitoring", params: { wallet: wallets[i % wallets.length]! } }, alice),
            { concurrency: 8 }
          )
        )

        // Kill one worker once a fifth of the tasks completed, then wait for all of them: on progress, not on time
        // (a loaded machine is slow, not wrong). The wait ends with the workers' output when a survivor exits or
        // when no task changed state for STALL_MS (minutes, against 10 s leases and a 250 ms requeue sweep)
        let completedAtKill = -1
        let last = ""
        let lastMove = Date.now()
        const counts = yield* Effect.gen(function* () {
          while (true) {
            const counts = yield* store.countByState
            if (completedAtKill < 0 && counts.completed >= KILL_AT) {
              completedAtKill = counts.completed
              victim.child.kill("SIGKILL")
            }
            if (counts.completed === TASKS || counts.failed > 0) return counts
            for (const w of survivors) {
              if (w.child.exitCode !== null || w.child.signalCode !== null) {
                return yield* Effect.die(new Error(`${w.id} exited while tasks ran:\n${w.output()}`))
              }
            }
            const now = JSON.stringify(counts)
            if (now !== last) {
              last = now
              lastMove = Date.now()
            } else if (Date.now() - lastMove > STALL_MS) {
              return yield* Effect.die(
                new Error(
                  `no task changed state for ${STALL_MS / 1_000} s: ${now}\n` +
                    workers.map((w) => `--- ${w.id}\n${w.output()}`).join("\n")
                )
              )
            }
            yield* Effect.sleep("100 millis")
          }
        })
        const tasks = yield* Fiber.join(submitting)
        const seconds = (Date.now() - startedAt) / 1_000
        assert.strictEqual(counts.failed, 0, JSON.stringify(counts))
        assert.strictEqual(counts.completed, TASKS)
        assert.isTrue(completedAtKill >= KILL_AT && completedAtKill < TASKS, `killed at ${completedAtKill}`)
        assert.strictEqual(yield* Effect.promise(() => victim.exited), "SIGKILL")
        for (const w of survivors) assert.isNull(w.child.exitCode, `${w.id} exited:\n${w.output()}`)

        // Every task completed, once; every step has exactly one step.succeeded entry, none twice
        const entries = yield* allEntries(ledger)
        const succeeded = new Map<string, number>()
        const completed = new Map<string, number>()
        const starters = new Map<string, Array<string>>()
        for (const e of entries) {
          const key = `${e.taskId}/${e.stepId}`
          if (e.kind === "step.succeeded") succeeded.set(key, (succeeded.get(key) ?? 0) + 1)
          if (e.kind === "task.completed") completed.set(e.taskId!, (completed.get(e.taskId!) ?? 0) + 1)
          if (e.kind === "step.started") {
            const worker = (e.payload as { worker?: string }).worker
            starters.set(key, [...(starters.get(key) ?? []), worker ?? "(none)"])
          }
        }
        assert.strictEqual(succeeded.size, TASKS * STEPS.length)
        for (const task of tasks) {
          assert.strictEqual(completed.get(task.id), 1, `${task.id} task.completed`)
          for (const step of STEPS) assert.strictEqual(succeeded.get(`${task.id}/${step}`), 1, `${task.id}/${step}`)
        }
        assert.strictEqual(
          [...succeeded.values()].reduce((a, b) => a + b, 0),
          TASKS * STEPS.length
        )

        // The kill happened mid-run: the victim had run steps, and some it had started were taken over by
        // another worker once its leases expired (the queue says whose lease expired)
        const workedBy = new Map(ids.map((id) => [id, 0]))
        for (const list of starters.values()) for (const w of list) workedBy.set(w, (workedBy.get(w) ?? 0) + 1)
        assert.deepStrictEqual([...workedBy.keys()].sort(), [...ids].sort(), "every step.started names a worker")
        for (const id of ids) assert.isAbove(workedBy.get(id)!, 0, `${id} ran no step`)
        const takenOver = [...starters].filter(([, list]) => list.includes(victim.id) && list.at(-1) !== victim.id)
        assert.isAbove(takenOver.length, 0, "no step the killed worker had started was taken over")
        const expired: Array<Job> = []
        for (const [key] of takenOver) {
          const [taskId, stepId] = key.split("/") as [string, StepId]
          const view: TaskView = yield* runtime.get(taskId)
          const step = view.steps.find((s) => s.id === stepId)!
          assert.strictEqual(step.state, "succeeded")
          const job = yield* Effect.option(queue.get(step.jobId!))
          if (Option.isSome(job)) expired.push(job.value)
        }
        assert.isTrue(
          expired.some((j) => j.attempts >= 2 && j.lastError === `lease expired (held by ${victim.id})`),
          JSON.stringify(expired.slice(0, 3))
        )

        // The whole ledger, written by four processes, verifies
        const report = yield* ledger.verifyAll()
        assert.isTrue(report.valid, JSON.stringify(report.mismatch))
        assert.strictEqual(report.entries, entries.length)

        console.info(
          `[multi-process] ${TASKS} tasks in ${seconds.toFixed(1)} s; ${victim.id} killed at ${completedAtKill} ` +
            `completed; steps started per worker ${JSON.stringify(Object.fromEntries(workedBy))}; ` +
            `${takenOver.length} steps taken over from it; ${entries.length} ledger entries`
        )
      }),
    // Only a backstop: a stuck run fails above after STALL_MS without progress
    30 * 60_000
  )
})
