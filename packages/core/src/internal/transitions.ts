/**
 * Applying a transition: the one way the runtime writes a task. A transition decided by the task flow
 * (taskFlow.ts) is written in one unit of work — its jobs, the record (compare-and-set on its version), its
 * ledger entries, its cancels and its outbox stages — and its events are published once the unit commits.
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, PubSub, Result } from "effect"
import type { AgentId, TaskId } from "../Ids.ts"
import type { Job } from "../Job.ts"
import type { EntryInput, Ledger } from "../Ledger.ts"
import type { Plan } from "../Plan.ts"
import type { EnqueueRequest, Queue } from "../Queue.ts"
import type { OutboxStage, StoreError, TaskEvent, TaskView } from "../Runtime.ts"
import { type TaskNotFound, type TaskRecord, type TaskStore, TaskStoreError, VersionConflict } from "../TaskStore.ts"
import * as TaskTrace from "../TaskTrace.ts"
import { UnitOfWork, type UnitOfWorkError } from "../UnitOfWork.ts"
import type * as Flow from "./taskFlow.ts"

/**
 * What transitions are written with.
 *
 * @category models
 * @since 0.1.0
 */
export interface TransitionsOptions {
  readonly store: TaskStore["Service"]
  readonly queue: Queue["Service"]
  readonly ledger: Ledger["Service"]
  readonly uow: UnitOfWork["Service"]
  readonly stepsQueue: string
  readonly deadlinesQueue: string
  /** The queue of each remote step type (its pool's); other step types go to `stepsQueue`. */
  readonly queueOfType: ReadonlyMap<string, string>
  readonly maxAttempts: number
  /** The worker pool step jobs are routed to, if any. */
  readonly pool?: string | undefined
}

/**
 * An event as staged and published (its `seq` is given at publication).
 *
 * @category models
 * @since 0.1.0
 */
export type PendingEvent = Omit<TaskEvent, "seq">

/**
 * Set by the worker's settle around a step's settle unit: the first step job that unit enqueues on the worker's
 * own queue (and pool) is enqueued claimed for that worker (`Queue.enqueueClaimed`), and `job` is set when it was,
 * so the worker runs it next without a claim.
 *
 * @category models
 * @since 0.1.0
 */
export interface HandOffBox {
  readonly workerId: AgentId
  readonly leaseMs: number
  readonly queue: string
  readonly pool: string | undefined
  job: Job | undefined
}

/**
 * The hand-off of the settle unit running in this fiber, if any.
 *
 * @category models
 * @since 0.1.0
 */
export const HandOff = Context.Reference<HandOffBox | undefined>("@mandate/core/internal/transitions/HandOff", {
  defaultValue: () => undefined
})

type Writable<T> = { -readonly [K in keyof T]: T[K] }
type Building<T> = { -readonly [K in keyof T]?: T[K] }

/** A step or deadline job's payload (built without a conditional spread: this runs for every step). */
const jobPayload = (taskId: TaskId, stepId: string, round: number, trace: TaskTrace.TaskTrace | undefined) => {
  const payload: { taskId: TaskId; stepId: string; round: number; trace?: TaskTrace.TaskTrace } = {
    taskId,
    stepId,
    round
  }
  if (trace !== undefined) payload.trace = trace
  return payload
}

/**
 * The runtime's writer of transitions.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function* (options: TransitionsOptions) {
  const { store, queue, ledger, uow, stepsQueue, deadlinesQueue, queueOfType, maxAttempts } = options
  const hub = yield* PubSub.sliding<TaskEvent>(16_384)
  let eventSeq = 0
  // Registered outboxes (`outbox`), each in a box of its own so the same function may be registered twice
  const outboxes = new Set<{ readonly stage: OutboxStage }>()

  // Plans never change: cache them by id.
  const plans = new Map<string, Plan>()
  const planOf = (record: TaskRecord) =>
    Effect.suspend(() => {
      const id = record.task.planId!
      const cached = plans.get(id)
      if (cached) return Effect.succeed(cached)
      return store.getPlan(id).pipe(
        Effect.tap((plan) =>
          Effect.sync(() => {
            if (plans.size > 50_000) plans.clear()
            plans.set(id, plan)
          })
        ),
        // A task whose plan is missing means the store lost data: a store failure, not a caller's error
        Effect.catchTag("PlanNotFound", (cause) => Effect.fail(new TaskStoreError({ operation: "getPlan", cause })))
      )
    })

  /** Reads a record that must exist (it was just written). */
  const mustGet = (taskId: TaskId) =>
    store
      .get(taskId)
      .pipe(Effect.catchTag("TaskNotFound", (cause) => Effect.fail(new TaskStoreError({ operation: "get", cause }))))

  // ---- applying a transition ------------------------------------------------------------------------------

  // A settle unit's first job for the worker's own queue is handed to it, claimed (see `HandOff`); the others,
  // and every job outside a settle, are enqueued as one batch. A unit that fails hands nothing. (The paths below
  // run on every step: flatMap chains, not generators, which cost several times more per call.)
  const enqueueSteps = (requests: ReadonlyArray<EnqueueRequest>) =>
    Effect.flatMap(HandOff, (box) => {
      const enqueueClaimed = queue.enqueueClaimed
      const i =
        box === undefined || box.job !== undefined || enqueueClaimed === undefined
          ? -1
          : requests.findIndex((r) => r.queue === box.queue && r.pool === box.pool && r.runAt === undefined)
      if (i < 0) return queue.enqueueBatch(requests)
      const handOff = box!
      return Effect.flatMap(enqueueClaimed!(requests[i]!, handOff), (handed) => {
        const rest: Effect.Effect<
          ReadonlyArray<Job>,
          Effect.Error<ReturnType<typeof queue.enqueueBatch>>
        > = requests.length === 1 ? Effect.succeed([]) : queue.enqueueBatch(requests.filter((_, j) => j !== i))
        return Effect.flatMap(rest, (others) => {
          const jobs = [...others.slice(0, i), handed, ...others.slice(i)]
          if (handed.state !== "claimed" || handed.lease?.workerId !== handOff.workerId) return Effect.succeed(jobs)
          handOff.job = handed
          // A unit that fails later (a lost compare-and-set, retried) took the job back: nothing is handed
          return Effect.as(
            UnitOfWork.onRollback(() => {
              if (handOff.job === handed) handOff.job = undefined
            }),
            jobs
          )
        })
      })
    })

  // A step job's idempotency key and payload for each `Enqueue`, in order
  const stepRequests = (
    decided: TaskRecord,
    enqueues: ReadonlyArray<Extract<Flow.Command, { _tag: "Enqueue" }>>
  ): Array<EnqueueRequest> => {
    const taskId = decided.task.id
    const trace = decided.task.trace
    return enqueues.map((c) => {
      const request: Writable<EnqueueRequest> = {
        queue: queueOfType.get(c.planned.type) ?? stepsQueue,
        payload: jobPayload(taskId, c.step.id, c.step.round, trace),
        priority: decided.task.priority,
        maxAttempts,
        idempotencyKey: `${taskId}/${c.step.id}/${c.step.round}`
      }
      if (options.pool !== undefined && !queueOfType.has(c.planned.type)) request.pool = options.pool
      return request
    })
  }

  // The decided steps with the ids of the jobs just enqueued for them
  const withJobIds = (
    steps: TaskRecord["steps"],
    enqueues: ReadonlyArray<Extract<Flow.Command, { _tag: "Enqueue" }>>,
    jobs: ReadonlyArray<Job>
  ): TaskRecord["steps"] => {
    const jobIds = new Map(enqueues.map((c, i) => [c.step.id as string, jobs[i]!.id]))
    return steps.map((s) => {
      const jobId = jobIds.get(s.id)
      return jobId === undefined ? s : { ...s, jobId }
    })
  }

  // The transition's events, field by field, in the order an event has always had
  const eventsOf = (transition: Flow.Transition, record: TaskRecord, now: number): Array<PendingEvent> => {
    const events: Array<PendingEvent> = []
    const { id: taskId, state, version } = record.task
    for (const c of transition.commands) {
      if (c._tag !== "Record" && c._tag !== "Notify") continue
      const data = c._tag === "Record" ? c.payload : c.data
      const event: Building<PendingEvent> = { taskId, kind: c.kind }
      if (c.stepId !== undefined) event.stepId = c.stepId
      event.state = state
      event.version = version
      event.at = now
      if (data !== undefined) event.data = data
      events.push(event as PendingEvent)
    }
    return events
  }

  const cancelJob = (jobId: Extract<Flow.Command, { _tag: "CancelJob" }>["jobId"]) =>
    // A job that already finished or vanished needs no cancelling
    queue.cancel(jobId).pipe(Effect.catchTag(["JobNotFound", "IllegalTransition"], () => Effect.void))

  // What writing a transition may fail with: its stores' errors
  type ApplyError =
    | TaskNotFound
    | VersionConflict
    | StoreError
    | Effect.Error<ReturnType<Ledger["Service"]["record"]>>
    | Effect.Error<ReturnType<Queue["Service"]["enqueueBatch"]>>
    | Effect.Error<ReturnType<typeof cancelJob>>

  const stageAll = (events: ReadonlyArray<PendingEvent>): Effect.Effect<void, StoreError> => {
    if (events.length === 0 || outboxes.size === 0) return Effect.void
    return Effect.forEach([...outboxes], (outbox) => outbox.stage(events), { discard: true })
  }

  /** Writes a transition: jobs first (their ids go into the record), then the record (CAS), ledger, cancels. */
  const apply = (before: TaskRecord, transition: Flow.Transition, now: number, created = false) => {
    const decided = transition.record
    const taskId = decided.task.id
    // One pass over the commands (a transition is applied on every step: this path is hot)
    const enqueues: Array<Extract<Flow.Command, { _tag: "Enqueue" }>> = []
    const deadlines: Array<Extract<Flow.Command, { _tag: "ScheduleDeadline" }>> = []
    const cancels: Array<Extract<Flow.Command, { _tag: "CancelJob" }>> = []
    const entries: Array<EntryInput> = []
    for (const c of transition.commands) {
      switch (c._tag) {
        case "Enqueue":
          enqueues.push(c)
          break
        case "ScheduleDeadline":
          deadlines.push(c)
          break
        case "CancelJob":
          cancels.push(c)
          break
        case "Record": {
          // Built field by field: a literal with a conditional spread in the middle costs ~10× more in V8
          const entry: Writable<EntryInput> = { kind: c.kind, taskId, payload: c.payload, storePayload: true }
          if (c.stepId !== undefined) entry.stepId = c.stepId
          if (c.principal !== undefined) entry.principal = c.principal
          entries.push(entry)
          break
        }
      }
    }
    const trace = decided.task.trace
    const steps =
      enqueues.length === 0
        ? Effect.succeed(decided.steps)
        : Effect.map(enqueueSteps(stepRequests(decided, enqueues)), (jobs) => withJobIds(decided.steps, enqueues, jobs))
    const scheduled = (
      value: TaskRecord["steps"]
    ): Effect.Effect<TaskRecord["steps"], Effect.Error<ReturnType<typeof queue.enqueueBatch>>> =>
      deadlines.length === 0
        ? Effect.succeed(value)
        : Effect.as(
            queue.enqueueBatch(
              deadlines.map((c) => ({
                queue: deadlinesQueue,
                payload: jobPayload(taskId, c.stepId, c.round, trace),
                priority: "high" as const,
                runAt: c.at,
                maxAttempts: 20,
                idempotencyKey: `${taskId}/${c.stepId}/${c.round}/deadline`
              }))
            ),
            value
          )
    // A created record was stored as version 0 before its jobs existed; this write adds their ids
    const expected = created ? 0 : before.task.version
    const written = Effect.flatMap(Effect.flatMap(steps, scheduled), (finalSteps) => {
      const record: TaskRecord = { ...decided, steps: finalSteps, task: { ...decided.task, version: expected + 1 } }
      // The entries before the record: a store that holds a unit's staged entries writes them with the record's
      // compare-and-set, in one statement (Postgres); both commit or roll back with the unit either way
      let write: Effect.Effect<TaskRecord, ApplyError> = Effect.as(store.save(record, expected), record)
      if (entries.length > 0) {
        write = Effect.andThen(
          ledger
            .record(entries)
            .pipe(TaskTrace.span("Ledger.append", { attributes: { "mandate.ledger.entries": entries.length } })),
          write
        )
      }
      for (const c of cancels) write = Effect.tap(write, cancelJob(c.jobId))
      return Effect.flatMap(write, (record) => {
        const events = eventsOf(transition, record, now)
        return Effect.as(stageAll(events), { record, events })
      })
    })
    return transition.record.task.state === "completed" && before.task.state !== "completed"
      ? written.pipe(TaskTrace.span("Runtime.complete", { attributes: { "mandate.task.id": taskId } }))
      : written
  }

  const publish = (events: ReadonlyArray<PendingEvent>) =>
    events.length === 0
      ? Effect.void
      : PubSub.publishAll(
          hub,
          events.map((e) => ({ ...e, seq: ++eventSeq }))
        )

  // The records this runtime last committed, by task: a transition decided on one skips reading (and decoding)
  // the record it wrote itself. Sound because every write is checked against the version it was decided on (a
  // task another writer moved since fails with VersionConflict, drops the entry and is retried on a fresh read),
  // and a decision to do nothing is only trusted on a fresh read.
  const committed = new Map<TaskId, TaskRecord>()
  const remember = (record: TaskRecord) =>
    Effect.sync(() => {
      const known = committed.get(record.task.id)
      if (known !== undefined && known.task.version >= record.task.version) return
      committed.delete(record.task.id)
      if (committed.size >= 10_000) committed.delete(committed.keys().next().value!)
      committed.set(record.task.id, record)
    })

  /**
   * Reads a task, decides with `decide`, and applies the result in one unit of work. Retried when another
   * writer advanced the task in between.
   */
  const transact = <E, R>(
    taskId: TaskId,
    decide: (record: TaskRecord, plan: Plan, now: number) => Effect.Effect<Flow.Transition | undefined, E, R>,
    retries = 0
  ): Effect.Effect<
    TaskRecord,
    E | TaskNotFound | TaskStoreError | UnitOfWorkError | Effect.Error<ReturnType<typeof apply>>,
    R
  > =>
    uow
      .run(
        Effect.suspend(() => {
          const known = committed.get(taskId)
          // Decided on a fresh read, then applied; an undecided task is returned as read
          const onFresh = (record: TaskRecord, plan: Plan, now: number) =>
            Effect.flatMap(decide(record, plan, now), (transition) => applied(record, plan, transition, now))
          const applied = (
            record: TaskRecord,
            _plan: Plan,
            transition: Flow.Transition | undefined,
            now: number
          ): Effect.Effect<{ readonly record: TaskRecord }, Effect.Error<ReturnType<typeof apply>>> =>
            transition === undefined
              ? Effect.succeed({ record })
              : Effect.tap(apply(record, transition, now), (done) =>
                  // Published once the outermost unit has committed (the worker's settle runs inside its own
                  // unit), so a subscriber can read everything an event tells of; a unit that fails publishes nothing
                  uow.afterCommit(Effect.andThen(remember(done.record), publish(done.events)))
                )
          const decided = (record: TaskRecord) =>
            Effect.flatMap(planOf(record), (plan) =>
              Effect.flatMap(Clock.currentTimeMillis, (now) => {
                if (known === undefined) return onFresh(record, plan, now)
                // Decided on the record this runtime last wrote: a change is checked by the write (compare-and-
                // set), but doing nothing, or refusing, is only trusted on a fresh read (another process may have
                // moved on)
                return Effect.flatMap(Effect.result(decide(record, plan, now)), (first) =>
                  Result.isSuccess(first) && first.success !== undefined
                    ? applied(record, plan, first.success, now)
                    : Effect.flatMap(store.get(taskId), (fresh) => onFresh(fresh, plan, now))
                )
              })
            )
          return known === undefined ? Effect.flatMap(store.get(taskId), decided) : decided(known)
        })
      )
      .pipe(
        Effect.map(({ record }) => record),
        // A failed unit may have left the remembered record stale; a lost compare-and-set is retried on a fresh
        // read (by hand rather than with `Effect.retry`, whose schedule costs more than a transition on memory)
        Effect.catch((e) => {
          committed.delete(taskId)
          return e instanceof VersionConflict && retries < 25 ? transact(taskId, decide, retries + 1) : Effect.fail(e)
        })
      )

  const view = (record: TaskRecord) =>
    Effect.map(
      planOf(record),
      (plan): TaskView => ({
        task: record.task,
        plan,
        steps: record.steps,
        approvals: record.approvals
      })
    )

  /** The record this runtime last committed for a task, if it still knows it (may be stale: check before trusting). */
  const recent = (taskId: TaskId): TaskRecord | undefined => committed.get(taskId)

  return { hub, outboxes, planOf, mustGet, apply, publish, remember, transact, view, recent }
})

/**
 * The runtime's writer of transitions (what `make` builds).
 *
 * @category models
 * @since 0.1.0
 */
export type Transitions = Effect.Success<ReturnType<typeof make>>
