/**
 * A worker: a scoped pool of fibers that claims jobs from a `Queue`, runs a handler on each, keeps the leases
 * alive, and completes or fails the jobs.
 *
 * - `concurrency` slots, each one fiber for the worker's life, run one job at a time: a slot takes the next held
 *   job, runs its handler, hands the outcome to the recorder and takes the next (no fiber per job). Without a
 *   `settle` and with a batching queue, a slot frees when its handler finishes, so the next job starts while the
 *   last outcome is recorded (claims pause while about twice `concurrency + prefetch` jobs wait on their
 *   recording, so a backend merging writes has a batch in flight while the next one gathers).
 * - A local queue: one fiber claims jobs (at most `batchSize` per claim) for the free slots and up to `prefetch`
 *   more, held claimed in this process; a slot that frees starts the next held job without a round trip, while
 *   the next claim is already under way (it claims once the held jobs are down to half the prefetch). Without a
 *   `prefetch` option the prefetch adapts: the worker holds what its slots start in about two claim round trips,
 *   from moving averages (on `Clock`) of its claims' round trip and of its slots' time per job, between
 *   `concurrency` and 50 × `concurrency` (at most 500). Short jobs then come in large claims (few round trips per
 *   job); long ones keep a local queue of one job per slot, leaving the rest to other workers, and when held jobs
 *   are more than twice a lowered prefetch and would wait over a second to start (short jobs, then long ones) the
 *   excess is given back at once (released, the attempt with it). Held jobs keep their leases alive like running ones and are released
 *   (their attempt given back) when the worker stops; a held job whose lease is lost is dropped unstarted. When a
 *   claim comes back empty the claimer waits for the queue's `wakeups` or a poll interval that doubles up to
 *   `pollIntervalMs`, so idle workers do not spin.
 * - One heartbeat fiber extends every in-flight lease (held ones included) each `heartbeatIntervalMs`, all at
 *   once, so a backend may merge them into one write. A refused heartbeat (the lease was lost, the job
 *   cancelled) interrupts that job's handler.
 * - A handler's success completes the job. A `JobFailure` fails it with its `retryable` flag (a non-retryable
 *   one dead-letters at once); any other error, a defect or a timed-out attempt is a retryable failure: a
 *   handler can never take the pool down. A defect is recorded by its error class only (`defect: TypeError; see
 *   the worker's log`): its message and stack go to the log, since clients read a job's `lastError` back.
 * - `settle(job, outcome)` runs after each complete/fail, in the same `UnitOfWork.run` when a `UnitOfWork`
 *   is in context (one transaction on Postgres), so the caller can advance its own state atomically with the
 *   job's; the slot takes its next job once the unit is done. Without a `settle` the complete/fail runs alone,
 *   so a backend may merge the completions of many jobs into one write: when the queue has `completeMany`
 *   (Postgres, Redis), a recorder writes the completions waiting (up to 500) in one call as soon as one waits
 *   (no timer), a second call in flight only once 100 more wait, and the slot moves on when its handler ends;
 *   the job's lease is kept alive until the completion is written, and a stopping worker writes the waiting ones
 *   before it ends.
 * - Closing the scope stops claiming, lets in-flight jobs finish for `shutdownGraceMs`, then interrupts the
 *   rest and releases their leases (the attempt is given back), so nothing waits for a lease to expire. A slot
 *   whose handler was interrupted for a lost lease ends after recording it, and a new slot replaces it.
 * - With an `Agents` service in context the worker registers itself (its id, its pool or `default`, its queues
 *   as capabilities), reports its load (running handlers / concurrency) each heartbeat round and deregisters when it
 *   stops.
 *
 * @since 0.1.0
 */
import { Cause, Clock, Effect, Exit, Fiber, FiberSet, Latch, Option, Schema, type Scope } from "effect"
import { Agents } from "./Agents.ts"
import { AgentId, type JobId, uuidv7 } from "./Ids.ts"
import { decode, InvalidInput } from "./InvalidInput.ts"
import { ewma, excessOf, prefetchOf } from "./internal/prefetch.ts"
import { type Job, PoolName, QueueName } from "./Job.ts"
import { Queue } from "./Queue.ts"
import { DAY_MS } from "./QueueRules.ts"
import { UnitOfWork, type UnitOfWorkError } from "./UnitOfWork.ts"

/**
 * How a handler says an attempt failed. `retryable: false` dead-letters the job at once (retrying cannot
 * help, e.g. the params are wrong); `true` lets the queue retry it with backoff while attempts remain.
 *
 * @category errors
 * @since 0.1.0
 */
export class JobFailure extends Schema.TaggedError<JobFailure>()("JobFailure", {
  message: Schema.String,
  retryable: Schema.Boolean,
  details: Schema.optionalKey(Schema.Json)
}) {
  /** A failure worth retrying (a timeout, an unavailable dependency). */
  static transient(message: string): JobFailure {
    return new JobFailure({ message, retryable: true })
  }
  /** A failure retrying cannot fix: the job is dead-lettered. */
  static permanent(message: string): JobFailure {
    return new JobFailure({ message, retryable: false })
  }
}

/**
 * What the handler gets besides the job.
 *
 * @category models
 * @since 0.1.0
 */
export interface HandlerContext {
  readonly workerId: AgentId
  /** 1 for the first attempt. */
  readonly attempt: number
}

/**
 * How an attempt ended, as passed to `settle` (with the job as stored after complete/fail).
 *
 * @category models
 * @since 0.1.0
 */
export type Outcome =
  | { readonly _tag: "Completed"; readonly result: Schema.Json }
  | {
      readonly _tag: "Failed"
      readonly error: string
      readonly retryable: boolean
      /** A `JobFailure`'s details, if it had any. */
      readonly details?: Schema.Json
    }

/**
 * What a handler may succeed with: JSON, or nothing (stored as `null`).
 *
 * @category models
 * @since 0.1.0
 */
// biome-ignore lint/suspicious/noConfusingVoidType: a handler typed Effect<void> must be accepted as is
export type HandlerResult = Schema.Json | void

/**
 * Options of `run`. Durations are in ms.
 *
 * @category models
 * @since 0.1.0
 */
export interface RunOptions<E, R, RS> {
  readonly queues: ReadonlyArray<string>
  /** Runs one attempt. Its result must be JSON (`undefined` is stored as `null`). */
  readonly handler: (job: Job, context: HandlerContext) => Effect.Effect<HandlerResult, E, R>
  /** Jobs run at once (default 1). */
  readonly concurrency?: number | undefined
  /** Most jobs per claim (default: `concurrency` + `prefetch`, at most 1,000, following an adaptive prefetch). */
  readonly batchSize?: number | undefined
  /**
   * Claimed jobs held in this process beyond the running ones, so a freed slot starts the next one at once
   * (0 claims only for free slots). Held jobs are leased to this worker: other workers cannot take them, and a
   * job enqueued later with a higher priority waits behind them. Default: adaptive — `concurrency` until a claim
   * and a job are timed, then what the slots start in about two claim round trips (`concurrency` ×
   * 2 × claim round trip / time per job), between `concurrency` and 50 × `concurrency`, at most 500; set it for
   * a fixed local queue.
   */
  readonly prefetch?: number | undefined
  /** The lease holder's id (default: a generated `worker_…` id). */
  readonly workerId?: string | undefined
  /** Lets the worker take this pool's jobs as well as pool-less ones. */
  readonly pool?: string | undefined
  /** Lease per claim and per heartbeat (default 30,000). */
  readonly leaseMs?: number | undefined
  /** Default: a third of `leaseMs`. */
  readonly heartbeatIntervalMs?: number | undefined
  /** Time limit of one attempt; a timed-out attempt is a retryable failure. Default: none. */
  readonly timeoutMs?: number | undefined
  /** Longest wait between claims when idle (default 1,000); wake-ups usually come sooner. */
  readonly pollIntervalMs?: number | undefined
  /** How long a stopping worker lets in-flight jobs finish before interrupting them (default 10,000). */
  readonly shutdownGraceMs?: number | undefined
  /** Call `Queue.start` (claimed → running) before each handler. Default false: claimed jobs are run directly. */
  readonly markRunning?: boolean | undefined
  /** Registered capabilities when an `Agents` service is present (default: the queue names). */
  readonly capabilities?: ReadonlyArray<string> | undefined
  readonly labels?: { readonly [key: string]: string } | undefined
  /**
   * Runs after each complete/fail, with the stored job, in the same unit of work; `workerId` is the lease holder
   * that recorded the outcome. A job it enqueued in that unit with `Queue.enqueueClaimed` for this worker
   * (`workerId`, `leaseMs`) and passes to `runNext` is run next by the same slot once the unit has committed,
   * without a claim (dropped if the unit fails).
   */
  readonly settle?:
    | ((job: Job, outcome: Outcome, context: SettleContext) => Effect.Effect<void, unknown, RS>)
    | undefined
}

/**
 * What `settle` gets besides the job and its outcome.
 *
 * @category models
 * @since 0.1.0
 */
export interface SettleContext {
  readonly workerId: AgentId
  readonly leaseMs: number
  /** Runs `job` next in this slot: a job enqueued claimed for this worker (`Queue.enqueueClaimed`) in the unit. */
  readonly runNext: (job: Job) => Effect.Effect<void>
}

/**
 * Counters of a running worker.
 *
 * @category models
 * @since 0.1.0
 */
export interface WorkerStats {
  /** Claimed jobs whose outcome is not recorded yet. */
  readonly inFlight: number
  /** Of those, the jobs whose handler still runs (at most `concurrency`). */
  readonly running: number
  readonly claimed: number
  readonly completed: number
  /** Failed attempts that will be retried. */
  readonly retried: number
  readonly deadLettered: number
  /** Jobs whose lease was lost (cancelled, expired, taken over) while the worker held them. */
  readonly lost: number
  /** Jobs given back when the worker stopped. */
  readonly released: number
}

/**
 * A running worker.
 *
 * @category models
 * @since 0.1.0
 */
export interface WorkerHandle {
  readonly workerId: AgentId
  readonly stats: Effect.Effect<WorkerStats>
}

const Settings = Schema.Struct({
  queues: Schema.NonEmptyArray(QueueName).check(Schema.isMaxLength(64)),
  concurrency: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 10_000 })),
  prefetch: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 10_000 })),
  batchSize: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1_000 })),
  workerId: AgentId,
  pool: Schema.optionalKey(PoolName),
  leaseMs: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: DAY_MS })),
  heartbeatIntervalMs: Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)),
  timeoutMs: Schema.optionalKey(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))),
  pollIntervalMs: Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 3_600_000 })),
  shutdownGraceMs: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
})
type Settings = typeof Settings.Type
const SettingsDecode = decode(Settings)

const MAX_ERROR_LENGTH = 4_000
const FIRST_IDLE_WAIT_MS = 50
// Most completions per `completeMany` (one Postgres statement); a second write starts only with this many waiting
const RECORD_BATCH = 500
const SECOND_WRITE_MIN = 100

/**
 * Starts a worker in the current scope and returns once it runs; closing the scope stops it gracefully.
 * Fails with `InvalidInput` for bad options (each named by path, e.g. `$.queues[0]`).
 *
 * @category constructors
 * @since 0.1.0
 */
export const run = <E = never, R = never, RS = never>(
  options: RunOptions<E, R, RS>
): Effect.Effect<WorkerHandle, InvalidInput, Queue | Scope.Scope | R | RS> =>
  Effect.gen(function* () {
    const settings = yield* decodeSettings(options, yield* Clock.currentTimeMillis)
    const state = yield* makeState(settings, {
      adaptive: options.prefetch === undefined,
      fixedBatch: options.batchSize !== undefined
    })
    const recorder = makeRecorder(state, options.settle)
    const startSlot = makeSlots(state, options, recorder)
    const next = yield* wakeupsOf(state)
    if (Option.isSome(state.agents)) yield* registerAgent(state.agents.value, settings, options)
    const beats = yield* Effect.forkScoped(
      Effect.forever(Effect.andThen(Effect.sleep(settings.heartbeatIntervalMs), heartbeatRound(state)))
    )
    const recording = yield* Effect.forkScoped(
      Effect.forEach([1, 2], () => recorderLoop(state, recorder), { concurrency: "unbounded", discard: true })
    )
    for (let i = 0; i < settings.concurrency; i++) yield* startSlot
    const claims = yield* Effect.forkScoped(claimer(state, next))
    // Registered last, so it runs first when the scope closes, while the heartbeat fiber still runs
    yield* Effect.addFinalizer(() => shutdown(state, { claims, beats, recording }, recorder.flushCompletions))
    return {
      workerId: settings.workerId,
      stats: Effect.sync(() => ({ inFlight: state.inFlight.size, running: state.running, ...state.counters }))
    }
  })

// ---- settings ---------------------------------------------------------------------------------------------

// The options with their defaults, every field checked by its path
const decodeSettings = <E, R, RS>(
  options: RunOptions<E, R, RS>,
  startedAt: number
): Effect.Effect<Settings, InvalidInput> =>
  Effect.gen(function* () {
    const leaseMs = options.leaseMs ?? 30_000
    const concurrency = options.concurrency ?? 1
    const prefetch = options.prefetch ?? concurrency
    const settings = yield* SettingsDecode({
      queues: options.queues,
      concurrency,
      prefetch,
      batchSize:
        options.batchSize ??
        (Number.isInteger(concurrency) && Number.isInteger(prefetch) ? Math.min(1_000, concurrency + prefetch) : 1),
      workerId: options.workerId ?? `worker_${uuidv7(startedAt)}`,
      ...(options.pool !== undefined ? { pool: options.pool } : {}),
      leaseMs,
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? Math.max(1, Math.floor(leaseMs / 3)),
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      pollIntervalMs: options.pollIntervalMs ?? 1_000,
      shutdownGraceMs: options.shutdownGraceMs ?? 10_000
    })
    if (settings.heartbeatIntervalMs >= settings.leaseMs) {
      return yield* InvalidInput.at("$.heartbeatIntervalMs", "Expected a heartbeat interval shorter than the lease")
    }
    return settings
  })

// ---- the worker's state -----------------------------------------------------------------------------------

interface InFlight {
  readonly job: Job
  /** The slot running it, once started. */
  slot: Slot | undefined
  lastBeat: number
  lost: boolean
  handled: boolean
  /** Its completion waits in `completions`: it stays in flight (leased) once its fiber is done. */
  recording: boolean
}

// A job this worker holds (claimed, or handed to it by a settle), not started yet
const heldRecord = (job: Job): InFlight => ({
  job,
  slot: undefined,
  lastBeat: job.claimedAt ?? 0,
  lost: false,
  handled: false,
  recording: false
})

// One of the `concurrency` fibers that run jobs: it loops taking the next held job, running its handler and
// handing the outcome on. `current` is the job it runs (its handler, then its recording), taken at `takenAt`
interface Slot {
  current: InFlight | undefined
  takenAt: number
  fiber: Fiber.Fiber<unknown, unknown> | undefined
  /** Opened by whoever gives work to this slot while it waits in `idle`, or stops it. */
  readonly wake: Latch.Latch
}

// What the worker's parts share. Claimed jobs stay in `inFlight` until their outcome is recorded (their leases
// are kept alive): held ones (`held`, claim order) not started yet, and started ones. `running` counts those
// whose handler has not finished, which is what `concurrency` limits: a slot frees as soon as a handler is done,
// so the next job starts while the last outcome is being recorded. Jobs still recording are bounded too (see
// `room`)
interface State {
  readonly settings: Settings
  readonly clock: Clock.Clock
  /** Held jobs wanted beyond the running ones: `settings.prefetch`, or measured (see `adapt`). */
  prefetch: number
  /** Most jobs per claim: `settings.batchSize`, or `concurrency + prefetch` as it changes. */
  batchSize: number
  /** No `prefetch` option: `prefetch` follows the measured claim round trip and time per job. */
  readonly adaptive: boolean
  readonly fixedBatch: boolean
  /** Moving averages, in ms, of a claim's round trip and of a slot's time per job. */
  claimLatencyMs: number | undefined
  runTimeMs: number | undefined
  readonly queue: Queue["Service"]
  readonly unitOfWork: Option.Option<UnitOfWork["Service"]>
  readonly agents: Option.Option<Agents["Service"]>
  readonly scope: Scope.Scope
  readonly inFlight: Map<JobId, InFlight>
  readonly held: Array<InFlight>
  running: number
  /** Slots waiting for a held job (a stack: the last to wait is woken first). */
  readonly idle: Array<Slot>
  /** Claiming stopped: a slot with nothing held ends. */
  draining: boolean
  /** The grace period is over: handlers are interrupted and their jobs released. */
  stopping: boolean
  readonly counters: {
    claimed: number
    completed: number
    retried: number
    deadLettered: number
    lost: number
    released: number
  }
  /** Opened when a handler or a recording finishes or a claim brought jobs: the claimer claims when there is room. */
  readonly roomMade: Latch.Latch
  /** Handled jobs whose completion the recorder writes in its next `completeMany` (see `makeRecorder`). */
  readonly completions: Array<{ readonly record: InFlight; readonly result: Schema.Json }>
  readonly completionsWaiting: Latch.Latch
  /** `completeMany` calls in flight. */
  writing: number
  readonly jobs: FiberSet.FiberSet<void, never>
}

const makeState = (
  settings: Settings,
  { adaptive, fixedBatch }: { readonly adaptive: boolean; readonly fixedBatch: boolean }
): Effect.Effect<State, never, Queue | Scope.Scope> =>
  Effect.gen(function* () {
    return {
      settings,
      clock: yield* Clock.Clock,
      prefetch: settings.prefetch,
      batchSize: settings.batchSize,
      adaptive,
      fixedBatch,
      claimLatencyMs: undefined,
      runTimeMs: undefined,
      queue: yield* Queue,
      unitOfWork: yield* Effect.serviceOption(UnitOfWork),
      agents: yield* Effect.serviceOption(Agents),
      scope: yield* Effect.scope,
      inFlight: new Map(),
      held: [],
      running: 0,
      idle: [],
      draining: false,
      stopping: false,
      counters: { claimed: 0, completed: 0, retried: 0, deadLettered: 0, lost: 0, released: 0 },
      roomMade: Latch.makeUnsafe(false),
      completions: [],
      completionsWaiting: Latch.makeUnsafe(false),
      writing: 0,
      jobs: yield* FiberSet.make<void, never>()
    }
  })

// How many jobs the next claim may take: the free slots and the prefetch, less what is held already; and at most
// twice the concurrency and prefetch still recording (merged writes in flight, the next one gathering)
const room = ({ settings, prefetch, running, held, inFlight }: State): number =>
  Math.min(
    settings.concurrency + prefetch - running - held.length,
    3 * (settings.concurrency + prefetch) - inFlight.size
  )

// The claimer's condition to claim (see `claimer`)
const wantsClaim = (state: State): boolean => room(state) > 0 && state.held.length <= state.prefetch / 2

// Weights of a new sample in the moving averages: per claim, and per job (many more samples)
const CLAIM_ALPHA = 0.2
const RUN_ALPHA = 0.05

// Without a `prefetch` option, the prefetch follows what was measured (`prefetchOf`), and so does the default
// batch size. Held jobs beyond a lowered prefetch wait to be started, unless they would wait long (`excessOf`)
const adapt = (state: State) => {
  if (!state.adaptive) return
  state.prefetch = prefetchOf({
    concurrency: state.settings.concurrency,
    claimLatencyMs: state.claimLatencyMs,
    runTimeMs: state.runTimeMs
  })
  if (!state.fixedBatch) state.batchSize = Math.min(1_000, state.settings.concurrency + state.prefetch)
}

// Held jobs to give back, with an adaptive prefetch (`excessOf`)
const excessHeld = (state: State): number =>
  state.adaptive
    ? excessOf(state.held.length, state.prefetch, {
        concurrency: state.settings.concurrency,
        claimLatencyMs: state.claimLatencyMs,
        runTimeMs: state.runTimeMs
      })
    : 0

// Wakes the claimer only when it has work: called once or twice per job, an unconditional wake-up resumed it for
// nothing most of the time. Its condition changes only where this is called
const wakeClaimer = (state: State) => {
  if (wantsClaim(state) || excessHeld(state) > 0) state.roomMade.openUnsafe()
}
// One idle slot per held job (a busy slot takes the next held job itself when it is done)
const wakeSlots = (state: State) => {
  for (let n = Math.min(state.held.length, state.idle.length); n > 0; n--) state.idle.pop()!.wake.openUnsafe()
}

// Annotates log lines only: annotating every job's whole run would cost on the hot path
const annotate = (state: State, job: Job) =>
  Effect.annotateLogs({ workerId: state.settings.workerId, jobId: job.id, queue: job.queue })

const count = (state: State, after: Job) => {
  if (after.state === "completed") state.counters.completed++
  else if (after.state === "dead_lettered") state.counters.deadLettered++
  else if (after.state === "failed") state.counters.retried++
}

// ---- recording outcomes -----------------------------------------------------------------------------------

// How the handler's exit is recorded
const outcomeOf = (exit: Exit.Exit<HandlerResult, unknown>, timeoutMs: number | undefined): Outcome => {
  if (Exit.isSuccess(exit)) return { _tag: "Completed", result: exit.value === undefined ? null : exit.value }
  const error = Cause.findErrorOption(exit.cause)
  if (Option.isSome(error)) {
    const e = error.value
    if (e instanceof JobFailure) {
      return {
        _tag: "Failed",
        error: truncate(e.message),
        retryable: e.retryable,
        ...(e.details !== undefined ? { details: e.details } : {})
      }
    }
    if (Cause.isTimeoutError(e)) {
      return { _tag: "Failed", error: `attempt timed out after ${timeoutMs} ms`, retryable: true }
    }
    return { _tag: "Failed", error: truncate(describe(e)), retryable: true }
  }
  if (Cause.hasInterruptsOnly(exit.cause)) return { _tag: "Failed", error: "handler was interrupted", retryable: true }
  // A defect is a bug: its text (a runtime error's message, a stack) goes to the log, not into the job's
  // lastError, which clients read back
  return {
    _tag: "Failed",
    error: `defect: ${defectName(Cause.squash(exit.cause))}; see the worker's log`,
    retryable: true
  }
}

interface Recorder<RS> {
  /** Records how an attempt ended (or releases the job when the worker stops). */
  readonly afterAttempt: (record: InFlight, exit: Exit.Exit<HandlerResult, unknown>) => Effect.Effect<void, never, RS>
  /** Writes the completions waiting in one `completeMany` (nothing without batching). */
  readonly writeCompletions: Effect.Effect<void, never, RS>
  /** Writes the completions waiting, in `completeMany` calls, until none is left (none without batching). */
  readonly flushCompletions: Effect.Effect<void, never, RS>
}

const makeRecorder = <RS>(state: State, settle: RunOptions<unknown, unknown, RS>["settle"]): Recorder<RS> => {
  const { queue, settings, counters, unitOfWork } = state
  const workerId = settings.workerId

  // A unit the backend could not commit changed nothing; try it again (twice at most) when the backend says it may
  // succeed. By hand rather than with `Effect.retry`, whose schedule costs more than a step's unit on memory
  const unit = <A, X, RX>(effect: Effect.Effect<A, X, RX>): Effect.Effect<A, X | UnitOfWorkError, RX> => {
    if (Option.isNone(unitOfWork)) return effect
    const run = unitOfWork.value.run
    const attempt = (retries: number): Effect.Effect<A, X | UnitOfWorkError, RX> =>
      Effect.catch(run(effect), (e) =>
        retries < 2 && isTagged(e, "UnitOfWorkError") && isRetryable(e) ? attempt(retries + 1) : Effect.fail(e)
      )
    return attempt(0)
  }

  // Without a settle, completions go to the recorder, which writes all that are waiting in one `completeMany` when
  // the layer has it: no request per job, and the job's fiber ends with its handler. The recorder starts writing as
  // soon as a completion waits (no timer), so a job's completion waits at most for the write before it
  const completeMany = settle === undefined ? queue.completeMany : undefined
  // One `completeMany` of the completions waiting (at most `RECORD_BATCH`), counted in `writing` while it runs
  const writeBatch = (
    write: NonNullable<typeof completeMany>,
    batch: ReadonlyArray<{ readonly record: InFlight; readonly result: Schema.Json }>
  ): Effect.Effect<void, never, RS> =>
    Effect.gen(function* () {
      const exits = yield* write(batch.map(({ record, result }) => ({ jobId: record.job.id, workerId, result })))
      for (let i = 0; i < batch.length; i++) {
        const { record, result } = batch[i]!
        const exit = exits[i]
        if (exit !== undefined && Exit.isSuccess(exit)) count(state, exit.value)
        else {
          yield* unrecorded(
            record.job,
            { _tag: "Completed", result },
            exit ?? Exit.die(new Error("completeMany returned fewer exits than completions"))
          )
        }
        state.inFlight.delete(record.job.id)
      }
    })
  const writeCompletions: Effect.Effect<void, never, RS> = Effect.suspend(() => {
    if (completeMany === undefined || state.completions.length === 0) return Effect.void
    const batch = state.completions.splice(0, RECORD_BATCH)
    state.writing++
    return Effect.ensuring(
      writeBatch(completeMany, batch),
      Effect.sync(() => {
        state.writing--
        wakeClaimer(state)
      })
    )
  })
  const flushCompletions: Effect.Effect<void, never, RS> = Effect.whileLoop({
    while: () => state.completions.length > 0,
    body: () => writeCompletions,
    step: () => {}
  })

  // Writes the outcome and settles it as one unit; falls back to a plain retryable failure when the unit
  // fails (on a transactional backend the unit rolled back and the job is still ours).
  const finish = (job: Job, outcome: Outcome): Effect.Effect<void, never, RS> => {
    const write =
      outcome._tag === "Completed"
        ? queue.complete(job.id, workerId, outcome.result)
        : queue.fail(job.id, workerId, outcome.error, { retryable: outcome.retryable })
    // Without a settle the write is one statement, atomic alone: a unit would only add BEGIN and COMMIT
    if (settle === undefined) {
      return Effect.flatMap(Effect.exit(write), (exit) => {
        if (Exit.isFailure(exit)) return unrecorded(job, outcome, exit)
        count(state, exit.value)
        return Effect.void
      })
    }
    let handed: Job | undefined
    const context: SettleContext = {
      workerId,
      leaseMs: settings.leaseMs,
      runNext: (next) =>
        Effect.sync(() => {
          handed = next
        })
    }
    // A unit run again starts with nothing handed
    const settled = Effect.suspend(() => {
      handed = undefined
      return Effect.flatMap(write, (after) => Effect.as(settle(after, outcome, context), after))
    })
    return Effect.flatMap(Effect.exit(unit(settled)), (exit) => {
      if (Exit.isFailure(exit)) return unrecorded(job, outcome, exit)
      count(state, exit.value)
      return handed === undefined ? Effect.void : adopt(handed)
    })
  }

  // A job the settle enqueued claimed for this worker (committed with it): held first, so the slot that settled
  // runs it next. A stopping worker gives it back
  const adopt = (job: Job): Effect.Effect<void> => {
    if (job.lease?.workerId !== workerId || (job.state !== "claimed" && job.state !== "running")) return Effect.void
    if (state.draining) {
      return Effect.map(Effect.exit(queue.release(job.id, workerId)), (released) => {
        if (Exit.isSuccess(released)) counters.released++
      })
    }
    const record = heldRecord(job)
    state.inFlight.set(job.id, record)
    state.held.unshift(record)
    counters.claimed++
    return Effect.void
  }

  const unrecorded = (
    job: Job,
    outcome: Outcome,
    exit: Exit.Failure<unknown, unknown>
  ): Effect.Effect<void, never, RS> =>
    Effect.gen(function* () {
      const error = Cause.findErrorOption(exit.cause)
      const e = Option.isSome(error) ? error.value : undefined
      if (e instanceof InvalidInput && outcome._tag === "Completed") {
        // A result that is not JSON is a bug in the handler: retrying gives the same result
        return yield* finish(job, {
          _tag: "Failed",
          error: truncate(`handler result is not JSON: ${e.message} at ${e.path}`),
          retryable: false
        })
      }
      if (isTagged(e, "LeaseLost") || isTagged(e, "JobNotFound")) {
        counters.lost++
        return yield* Effect.logWarning(`lost the lease before recording the outcome: ${describe(e)}`).pipe(
          annotate(state, job)
        )
      }
      yield* Effect.logError(`recording the outcome failed: ${Cause.pretty(exit.cause)}`).pipe(annotate(state, job))
      const retry = yield* Effect.exit(
        queue.fail(
          job.id,
          workerId,
          `recording the outcome failed (${defectName(Cause.squash(exit.cause))}); see the worker's log`
        )
      )
      if (Exit.isSuccess(retry)) count(state, retry.value)
    })

  const afterAttempt = (record: InFlight, exit: Exit.Exit<HandlerResult, unknown>): Effect.Effect<void, never, RS> => {
    const job = record.job
    if (Exit.isSuccess(exit)) {
      if (completeMany === undefined) return finish(job, outcomeOf(exit, settings.timeoutMs))
      record.recording = true
      state.completions.push({ record, result: exit.value === undefined ? null : exit.value })
      state.completionsWaiting.openUnsafe()
      return Effect.void
    }
    if (Cause.hasInterruptsOnly(exit.cause)) {
      if (record.lost) {
        counters.lost++
        return Effect.logInfo("handler interrupted: the job's lease was lost").pipe(annotate(state, job))
      }
      if (state.stopping) {
        return Effect.map(Effect.exit(queue.release(job.id, workerId)), (released) => {
          if (Exit.isSuccess(released)) counters.released++
        })
      }
    }
    if (Option.isSome(Cause.findErrorOption(exit.cause)) || Cause.hasInterruptsOnly(exit.cause)) {
      return finish(job, outcomeOf(exit, settings.timeoutMs))
    }
    return Effect.andThen(
      Effect.logError(`handler defect: ${Cause.pretty(exit.cause)}`).pipe(annotate(state, job)),
      finish(job, outcomeOf(exit, settings.timeoutMs))
    )
  }

  return { afterAttempt, writeCompletions, flushCompletions }
}

// Writes waiting completions as they come. One write at a time unless enough wait for a second one
// (`SECOND_WRITE_MIN`): one write in flight kept the drain waiting on each round trip and commit, and two small
// writes cost more than one. Each write is uninterruptible, so stopping a recorder never drops a batch halfway;
// the last write to finish takes what the threshold left waiting
const recorderLoop = <RS>(state: State, recorder: Recorder<RS>): Effect.Effect<never, never, RS> => {
  const mayWrite = () =>
    state.completions.length > 0 && (state.writing === 0 || state.completions.length >= SECOND_WRITE_MIN)
  return Effect.forever(
    Effect.andThen(
      Effect.andThen(
        state.completionsWaiting.await,
        Effect.sync(() => state.completionsWaiting.closeUnsafe())
      ),
      Effect.whileLoop({
        while: mayWrite,
        body: () => Effect.uninterruptible(recorder.writeCompletions),
        step: () => {}
      })
    )
  )
}

// ---- the slots --------------------------------------------------------------------------------------------

// Builds the effect that starts one slot. A slot is a fiber that lives as long as the worker: it takes the next
// held job (dropping those whose lease was lost), runs its handler, hands the outcome to the recorder, and takes
// the next, waiting in `idle` when nothing is held. Everything but the handler and the idle wait is
// uninterruptible, so an interrupt meant for a job (its lease was lost, the worker stops) stops only the handler;
// a slot interrupted that way ends once that job's outcome is recorded and, unless the worker stops, a new slot
// takes its place. Per slot, not per job: the effects below are built once and read the job from `slot.current`
const makeSlots = <E, R, RS>(
  state: State,
  options: RunOptions<E, R, RS>,
  recorder: Recorder<RS>
): Effect.Effect<void, never, R | RS> => {
  const { queue, settings, counters } = state
  const workerId = settings.workerId

  const started = (record: InFlight): Effect.Effect<boolean> =>
    Effect.flatMap(Effect.exit(queue.start(record.job.id, workerId)), (exit) => {
      if (Exit.isSuccess(exit)) return Effect.succeed(true)
      counters.lost++
      return Effect.as(
        Effect.logWarning(`could not start the job: ${Cause.pretty(exit.cause)}`).pipe(annotate(state, record.job)),
        false
      )
    })

  // The handler is done: its slot is free (once)
  const handled = (record: InFlight) => {
    if (record.handled) return
    record.handled = true
    state.running--
    wakeClaimer(state)
  }

  // The job's outcome is recorded (or waits in `completions`, leased until written): the slot takes the next one
  const done = (slot: Slot) => {
    const record = slot.current!
    slot.current = undefined
    if (state.adaptive) {
      state.runTimeMs = ewma(state.runTimeMs, state.clock.currentTimeMillisUnsafe() - slot.takenAt, RUN_ALPHA)
      adapt(state)
    }
    handled(record)
    if (!record.recording) state.inFlight.delete(record.job.id)
    wakeClaimer(state)
  }

  const slotLoop = (slot: Slot): Effect.Effect<void, never, R | RS> =>
    Effect.uninterruptibleMask((restore) => {
      const attempt: Effect.Effect<HandlerResult, unknown, R> = Effect.suspend(() => {
        const job = slot.current!.job
        return options.handler(job, { workerId, attempt: job.attempts })
      })
      const timed = settings.timeoutMs === undefined ? attempt : Effect.timeout(attempt, settings.timeoutMs)
      const recordOutcome = (exit: Exit.Exit<HandlerResult, unknown>) => {
        const record = slot.current!
        handled(record)
        return recorder.afterAttempt(record, exit)
      }
      const runHandler = Effect.flatMap(Effect.exit(restore(timed)), recordOutcome)
      const runCurrent: Effect.Effect<void, never, R | RS> = options.markRunning
        ? Effect.flatMap(
            Effect.suspend(() => started(slot.current!)),
            (ok) => (ok ? runHandler : Effect.void)
          )
        : runHandler
      const finished = Effect.sync(() => done(slot))
      const runJob = Effect.andThen(Effect.ensuring(runCurrent, finished), restore(Effect.void))
      const idle = Effect.suspend(() => {
        slot.wake.closeUnsafe()
        state.idle.push(slot)
        return restore(slot.wake.await)
      })
      // `true` while the slot goes on. `restore(Effect.void)` after a job ends the slot there when an interrupt
      // came while it recorded, so the interrupt never reaches the next job's handler
      const step: Effect.Effect<boolean, never, R | RS> = Effect.suspend(() => {
        const record = takeHeld(state)
        if (record !== undefined) {
          slot.current = record
          if (state.adaptive) slot.takenAt = state.clock.currentTimeMillisUnsafe()
          record.slot = slot
          state.running++
          wakeClaimer(state)
          return Effect.as(runJob, true)
        }
        return state.draining ? Effect.succeed(false) : Effect.as(idle, true)
      })
      let going = true
      return Effect.whileLoop({
        while: () => going,
        body: () => step,
        step: (more) => {
          going = more
        }
      })
    })

  const startSlot: Effect.Effect<void, never, R | RS> = Effect.suspend(() => {
    const slot: Slot = { current: undefined, takenAt: 0, fiber: undefined, wake: Latch.makeUnsafe(false) }
    return Effect.asVoid(
      FiberSet.run(
        state.jobs,
        Effect.withFiber((fiber) => {
          slot.fiber = fiber
          return slotLoop(slot).pipe(
            // An interrupt meant for one job ended this slot: another takes its place while the worker runs
            Effect.onExit((exit) => (Exit.isFailure(exit) && !state.draining ? startSlot : Effect.void))
          )
        })
      )
    )
  })
  return startSlot
}

// The next held job to start, in claim order; held jobs whose lease was lost are dropped unstarted
const takeHeld = (state: State): InFlight | undefined => {
  while (state.held.length > 0) {
    const record = state.held.shift()!
    if (!record.lost) return record
    state.inFlight.delete(record.job.id)
    state.counters.lost++
    wakeClaimer(state)
  }
  return undefined
}

// ---- claiming and dispatching -----------------------------------------------------------------------------

// Uninterruptible: jobs a claim returned are always held (then started or released), never dropped with their
// leases. The number of jobs claimed, -1 when the claim failed
const claimBatch = (state: State, max: number): Effect.Effect<number> =>
  Effect.uninterruptible(
    Effect.gen(function* () {
      const { workerId, queues, pool, leaseMs } = state.settings
      const sentAt = state.clock.currentTimeMillisUnsafe()
      const claimed = yield* Effect.exit(
        state.queue.claim({ workerId, queues, max, leaseMs, ...(pool ? { pool } : {}) })
      )
      if (Exit.isFailure(claimed)) {
        yield* Effect.logWarning(`claim failed: ${Cause.pretty(claimed.cause)}`)
        return -1
      }
      if (state.adaptive) {
        state.claimLatencyMs = ewma(state.claimLatencyMs, state.clock.currentTimeMillisUnsafe() - sentAt, CLAIM_ALPHA)
        adapt(state)
      }
      for (const job of claimed.value) {
        const record = heldRecord(job)
        state.inFlight.set(job.id, record)
        state.held.push(record)
        state.counters.claimed++
      }
      if (claimed.value.length > 0) wakeSlots(state)
      return claimed.value.length
    })
  )

// Releases held jobs, never started (their attempt given back), so other workers can claim them
const giveBack = (state: State, records: ReadonlyArray<InFlight>): Effect.Effect<void> =>
  Effect.forEach(
    records,
    (record) =>
      Effect.map(Effect.exit(state.queue.release(record.job.id, state.settings.workerId)), (released) => {
        state.inFlight.delete(record.job.id)
        if (Exit.isSuccess(released)) state.counters.released++
      }),
    { concurrency: 64, discard: true }
  )

// The queue's wake-ups for this worker; polling only when the queue cannot give them
const wakeupsOf = (state: State): Effect.Effect<Effect.Effect<void>, never, Scope.Scope> =>
  state.queue
    .wakeups({ queues: state.settings.queues, pool: state.settings.pool })
    .pipe(
      Effect.catch((error) =>
        Effect.as(Effect.logWarning(`no wake-ups from this queue, polling only: ${describe(error)}`), Effect.never)
      )
    )

// Claims while there is room: at once when the free slots and the prefetch are not all taken, and held jobs are
// down to half the prefetch (so a claim is under way while the rest run). An empty claim waits for a wake-up or a
// poll interval that doubles up to `pollIntervalMs`; a failed one backs off
const claimer = (state: State, next: Effect.Effect<void>): Effect.Effect<never> =>
  Effect.gen(function* () {
    const { settings } = state
    let idleMs = Math.min(FIRST_IDLE_WAIT_MS, settings.pollIntervalMs)
    let errorMs = FIRST_IDLE_WAIT_MS
    while (true) {
      if (excessHeld(state) > 0) {
        // Uninterruptible like a claim: a job taken out of `held` is always released
        yield* Effect.uninterruptible(giveBack(state, state.held.splice(state.held.length - excessHeld(state))))
        continue
      }
      const free = room(state)
      if (!wantsClaim(state)) {
        yield* state.roomMade.await
        state.roomMade.closeUnsafe()
        continue
      }
      const claimed = yield* claimBatch(state, Math.min(free, state.batchSize))
      if (claimed > 0) {
        idleMs = Math.min(FIRST_IDLE_WAIT_MS, settings.pollIntervalMs)
        errorMs = FIRST_IDLE_WAIT_MS
      } else if (claimed === 0) {
        yield* Effect.raceFirst(next, Effect.sleep(idleMs))
        idleMs = Math.min(idleMs * 2, settings.pollIntervalMs)
      } else {
        yield* Effect.sleep(errorMs)
        errorMs = Math.min(errorMs * 2, 30_000)
      }
    }
  })

// ---- heartbeats and the agent registry --------------------------------------------------------------------

// Every due lease at once (a backend may merge them into one write); a refused one interrupts its handler. Then
// the worker's load to `Agents`
const heartbeatRound = (state: State): Effect.Effect<void> =>
  Effect.gen(function* () {
    const { settings, queue } = state
    const now = yield* Clock.currentTimeMillis
    const due = [...state.inFlight.values()].filter(
      (record) => !record.lost && now - record.lastBeat >= settings.heartbeatIntervalMs / 2
    )
    yield* Effect.forEach(
      due,
      (record) =>
        Effect.gen(function* () {
          const beat = yield* Effect.exit(queue.heartbeat(record.job.id, settings.workerId, settings.leaseMs))
          if (Exit.isSuccess(beat)) {
            record.lastBeat = now
            return
          }
          const error = Cause.findErrorOption(beat.cause)
          const e = Option.isSome(error) ? error.value : undefined
          if (isTagged(e, "LeaseLost") || isTagged(e, "JobNotFound")) {
            record.lost = true
            // Only while its handler runs in its slot: the slot may have moved on to another job since
            const slot = record.slot
            if (slot !== undefined && slot.current === record && !record.handled) slot.fiber?.interruptUnsafe()
          } else {
            yield* Effect.logWarning(`heartbeat failed: ${Cause.pretty(beat.cause)}`).pipe(annotate(state, record.job))
          }
        }),
      { concurrency: 64, discard: true }
    )
    if (Option.isSome(state.agents)) {
      yield* state.agents.value.heartbeat(settings.workerId, state.running / settings.concurrency).pipe(Effect.ignore)
    }
  })

const registerAgent = <E, R, RS>(
  agents: Agents["Service"],
  settings: Settings,
  options: RunOptions<E, R, RS>
): Effect.Effect<void> =>
  agents
    .register({
      id: settings.workerId,
      pool: settings.pool ?? "default",
      capabilities: [...(options.capabilities ?? settings.queues)],
      labels: { ...options.labels }
    })
    .pipe(Effect.catch((error) => Effect.logWarning(`could not register the worker as an agent: ${describe(error)}`)))

// ---- stopping ---------------------------------------------------------------------------------------------

// Stops claiming, gives back held jobs, lets running ones finish for the grace period, then interrupts the rest
// (their leases released) and deregisters
const shutdown = <RS>(
  state: State,
  fibers: {
    readonly claims: Fiber.Fiber<never>
    readonly beats: Fiber.Fiber<never>
    readonly recording: Fiber.Fiber<void>
  },
  flushCompletions: Effect.Effect<void, never, RS>
): Effect.Effect<void, never, RS> =>
  Effect.gen(function* () {
    const { settings } = state
    yield* Fiber.interrupt(fibers.claims)
    // Idle slots end; busy ones end after their job. Held jobs never started: give them back at once (their
    // attempt too)
    state.draining = true
    for (const slot of state.idle.splice(0)) slot.wake.openUnsafe()
    yield* giveBack(state, state.held.splice(0))
    if (settings.shutdownGraceMs > 0) {
      yield* FiberSet.awaitEmpty(state.jobs).pipe(Effect.timeoutOption(settings.shutdownGraceMs))
    }
    state.stopping = true
    yield* FiberSet.clear(state.jobs)
    yield* FiberSet.awaitEmpty(state.jobs)
    // The completions of finished handlers are written before the leases stop being kept alive
    yield* Fiber.interrupt(fibers.recording)
    yield* flushCompletions
    yield* Fiber.interrupt(fibers.beats)
    if (Option.isSome(state.agents)) yield* state.agents.value.deregister(settings.workerId).pipe(Effect.ignore)
  })

function isRetryable(error: unknown): boolean {
  return typeof error === "object" && error !== null && "retryable" in error && error.retryable === true
}

function isTagged(error: unknown, tag: string): boolean {
  return typeof error === "object" && error !== null && "_tag" in error && error._tag === tag
}

// The name of what failed (`TypeError`, `TaskStoreError`), never its message
function defectName(error: unknown): string {
  if (typeof error === "object" && error !== null) {
    if ("_tag" in error && typeof error._tag === "string") return error._tag
    if (error instanceof Error) return error.name
  }
  return typeof error
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const tag = "_tag" in error && typeof error._tag === "string" ? `${error._tag}: ` : ""
    return `${tag}${error.message}`
  }
  if (typeof error === "string") return error
  try {
    return JSON.stringify(error) ?? String(error)
  } catch {
    return String(error)
  }
}

function truncate(message: string): string {
  return message.length <= MAX_ERROR_LENGTH ? message : `${message.slice(0, MAX_ERROR_LENGTH - 1)}…`
}
