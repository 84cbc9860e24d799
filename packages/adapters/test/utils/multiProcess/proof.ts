/**
 * The multi-process proof, one for every backend that shares its stores across processes (Postgres, Redis): one
 * API process (the test's) and three worker processes (`worker.ts`) over one schema or key prefix, every store on
 * the backend; 2,000 tasks; one worker SIGKILLed once a fifth of them completed. Every task completes, every step
 * is recorded as succeeded exactly once, every task's audit trail is complete, the ledger's sequence numbers have
 * no gaps and it verifies. The recovery of the killed worker's steps comes from its leases expiring (reconcile
 * is off). No wall-clock bound decides the outcome: the test waits on the tasks' progress.
 *
 * ```ts
 * multiProcessProof({ name: "Postgres", describe: describePostgres, fresh })
 * ```
 *
 * @since 0.1.0
 */
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
import { type Place, stack } from "./stack.ts"

/**
 * A backend the proof runs on.
 *
 * @category models
 * @since 0.1.0
 */
export interface MultiProcessBackend {
  /** For the test's name and the summary line: "Postgres", "Redis". */
  readonly name: string
  /** The backend's describe block (run, skipped with one line, or failing under `CI=true`). */
  readonly describe: (name: string, fn: () => void) => void
  /**
   * A fresh place (schema, key prefix), cleaned when the scope closes, with the environment that points a worker
   * process at it (besides `MANDATE_STORE`).
   */
  readonly fresh: Effect.Effect<{ readonly place: Place; readonly env: Record<string, string> }, never, Scope.Scope>
}

const root = NodePath.resolve(import.meta.dirname, "../../../../..")
const workerScript = NodePath.join(import.meta.dirname, "worker.ts")
const signingKey = NodeCrypto.generateKeyPairSync("ed25519")
  .privateKey.export({ type: "pkcs8", format: "pem" })
  .toString()
const alice = Principal.make("alice", ["submitter"])
const wallets = ["A", "B", "C", "D"].map((c) => c.repeat(60))
const TASKS = 2_000
const STEPS = ["check_balance", "monitor_action"]
const KILL_AT = TASKS / 5

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
const spawnWorker = (id: string, env: Record<string, string>): Effect.Effect<WorkerProcess, Error, Scope.Scope> =>
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
            ...env,
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
      // Interrupted while starting: kill it here, release never runs for it
      return Effect.sync(() => child.kill("SIGKILL"))
    }),
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

/**
 * Registers the proof under `backend.describe`.
 *
 * @category suites
 * @since 0.1.0
 */
export const multiProcessProof = (backend: MultiProcessBackend): void =>
  backend.describe(`Runtime on ${backend.name}, several processes`, () => {
    it.live(
      `3 worker processes run ${TASKS} tasks; one is SIGKILLed mid-run; every step succeeds exactly once`,
      () =>
        Effect.gen(function* () {
          const { place, env } = yield* backend.fresh
          // This process serves the API only. Built first: on Postgres it migrates the schema the workers then find
          const api = yield* Layer.build(stack(place, signingKey, { workers: false, reconcileIntervalMs: 0 }))
          const runtime = Context.get(api, Runtime)
          const ledger = Context.get(api, Ledger)
          const store = Context.get(api, TaskStore)
          const queue = Context.get(api, Queue)

          const ids = ["mp-worker-1", "mp-worker-2", "mp-worker-3"]
          const workers = yield* Effect.forEach(ids, (id) => spawnWorker(id, { MANDATE_STORE: place.store, ...env }), {
            concurrency: "unbounded"
          })
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
          // (a loaded machine is slow, not wrong; vitest's timeout is the only limit). A survivor that exits ends the
          // wait with its output. No stall timer either: tasks complete in bursts (the queue runs every task's first
          // step before most second ones), so minutes without a task changing state mean a slow machine, not a stuck run
          let completedAtKill = -1
          let polls = 0
          // ... and while the victim holds a step's lease, so that there is always a takeover to check: tasks run
          // in bursts, and a worker can be between jobs at the moment the count passes
          const victimHoldsLease = Effect.gen(function* () {
            for (const state of ["claimed", "running"] as const) {
              const page = yield* queue.list({ queue: "mandate.steps", state, limit: 1_000 })
              if (page.jobs.some((job) => job.lease?.workerId === victim.id)) return true
            }
            return false
          })
          const counts = yield* Effect.gen(function* () {
            while (true) {
              const counts = yield* store.countByState
              if (completedAtKill < 0 && counts.completed >= KILL_AT && (yield* victimHoldsLease)) {
                completedAtKill = counts.completed
                victim.child.kill("SIGKILL")
              }
              if (counts.completed === TASKS || counts.failed > 0) return counts
              for (const w of survivors) {
                if (w.child.exitCode !== null || w.child.signalCode !== null) {
                  return yield* Effect.die(new Error(`${w.id} exited while tasks ran:\n${w.output()}`))
                }
              }
              // A dead-lettered step job never completes its task (reconcile is off): fail now, saying why, rather
              // than wait for vitest's timeout
              if (++polls % 20 === 0 && (yield* queue.stats("mandate.steps")).byState.dead_lettered > 0) {
                const dead = (yield* queue.list({ queue: "mandate.steps", state: "dead_lettered", limit: 3 })).jobs
                return yield* Effect.die(
                  new Error(
                    `step jobs were dead-lettered (${JSON.stringify(counts)}): ` +
                      dead.map((j) => `${j.id} after ${j.attempts} attempts: ${j.lastError}`).join("; ")
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

          // Every task's audit trail is complete: created, planned, its policy decisions, each step started and
          // succeeded, completed
          for (const task of tasks) {
            const trail = yield* ledger.byTask(task.id)
            const kinds = trail.map((e) => e.kind)
            for (const kind of ["task.created", "plan.created", "task.completed"]) {
              assert.strictEqual(kinds.filter((k) => k === kind).length, 1, `${task.id}: ${kind}`)
            }
            assert.strictEqual(kinds.filter((k) => k === "policy.decided").length, STEPS.length, task.id)
            assert.strictEqual(kinds.filter((k) => k === "step.succeeded").length, STEPS.length, task.id)
            assert.isAtLeast(kinds.filter((k) => k === "step.started").length, STEPS.length, task.id)
          }

          // Every transition's entries are in the ledger once, whoever integrated them (each names its task, step,
          // attempt or decision, so two equal ones would be one entry integrated twice). Handlers' own entries
          // (`ctx.record`) may repeat: a step the killed worker ran is run again
          const transitions = entries.filter((e) => /^(task|plan|policy|step|approval)\./.test(e.kind))
          const distinct = new Set(transitions.map((e) => `${e.kind} ${e.taskId} ${e.stepId} ${e.payloadHash}`))
          assert.strictEqual(distinct.size, transitions.length, "a transition's entry is in the ledger twice")

          // Sequence numbers have no gaps, and the whole ledger, written by four processes, verifies
          assert.deepStrictEqual(
            entries.map((e) => e.seq),
            entries.map((_, i) => i)
          )
          const report = yield* ledger.verifyAll()
          assert.isTrue(report.valid, JSON.stringify(report.mismatch))
          assert.strictEqual(report.entries, entries.length)

          console.info(
            `[multi-process, ${backend.name}] ${TASKS} tasks in ${seconds.toFixed(1)} s; ${victim.id} killed at ${completedAtKill} ` +
              `completed; steps started per worker ${JSON.stringify(Object.fromEntries(workedBy))}; ` +
              `${takenOver.length} steps taken over from it; ${entries.length} ledger entries`
          )
        }),
      // The only limit: far above a run on a quiet machine (about a minute on Postgres, two on Redis, on 2 cores)
      60 * 60_000
    )
  })
