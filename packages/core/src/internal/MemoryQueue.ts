/**
 * The state behind `Queue.layerMemory`: synchronous operations over indexed structures, each one atomic
 * because JavaScript runs it to completion (the layer calls them inside `Effect.sync`).
 *
 * Indexes, so that no operation scans every job:
 * - per (queue, pool) bucket, a ready heap ordered by (priority rank, runAt, insertion) and a delayed heap
 *   ordered by runAt; due delayed jobs move to the ready heap when a claim looks at the bucket;
 * - one lease heap ordered by expiry, for `requeueExpired`;
 * - jobs by id, idempotency keys by (queue, key), and insertion-ordered arrays (all, per queue) for `list`.
 *
 * Heap entries are never removed in place: each job carries an `epoch`, bumped whenever it leaves an index,
 * and an entry whose epoch is stale is skipped when it reaches the top.
 *
 * @since 0.1.0
 * @internal
 */
import type { Latch, Schema } from "effect"
import * as Backoff from "../Backoff.ts"
import type { AgentId, JobId } from "../Ids.ts"
import type { Job, JobState } from "../Job.ts"
import { priorityRank } from "../Task.ts"
import { Heap } from "./Heap.ts"

/** @internal */
export interface Entry {
  job: Job
  readonly seq: number
  epoch: number
  readonly rank: number
  readonly bucket: Bucket
  /** Pruned (finished longer ago than the retention); still in the list arrays until they are compacted. */
  removed: boolean
}

interface ReadyItem {
  readonly entry: Entry
  readonly epoch: number
  readonly rank: number
  readonly runAt: number
  readonly seq: number
}

interface TimedItem {
  readonly entry: Entry
  readonly epoch: number
  readonly at: number
  readonly seq: number
}

/** @internal */
export interface Bucket {
  readonly queue: string
  readonly pool: string | undefined
  readonly ready: Heap<ReadyItem>
  readonly delayed: Heap<TimedItem>
}

/** Refusals, mapped to the service's errors by the layer. @internal */
export interface NotFound {
  readonly _tag: "NotFound"
}
/** @internal */
export interface Lost {
  readonly _tag: "LeaseLost"
  readonly reason: LeaseLossReason
  readonly state: JobState
  readonly holder: AgentId | undefined
}
/** @internal */
export interface Illegal {
  readonly _tag: "IllegalTransition"
  readonly from: JobState
  readonly to: JobState
}

/** Why a lease operation was refused. @internal */
export type LeaseLossReason = "not_leased" | "held_by_other" | "expired"

/** @internal */
export type Result<R> = { readonly ok: true; readonly job: Job } | { readonly ok: false; readonly refusal: R }
/** The outcome of an operation of the lease holder. @internal */
export type LeaseResult = Result<NotFound | Lost>
/** The outcome of an administrative operation. @internal */
export type AdminResult = Result<NotFound | Illegal>

const readyLess = (a: ReadyItem, b: ReadyItem): boolean =>
  a.rank !== b.rank ? a.rank < b.rank : a.runAt !== b.runAt ? a.runAt < b.runAt : a.seq < b.seq
const timedLess = (a: TimedItem, b: TimedItem): boolean => (a.at !== b.at ? a.at < b.at : a.seq < b.seq)

const notFound = { ok: false, refusal: { _tag: "NotFound" } } as const

// Returned jobs are shared with the store, so they are frozen: a caller cannot change what is stored
const freeze = (job: Job): Job => Object.freeze(job)

const KEYS: ReadonlyArray<keyof Job> = [
  "id",
  "queue",
  "payload",
  "priority",
  "state",
  "runAt",
  "attempts",
  "maxAttempts",
  "idempotencyKey",
  "pool",
  "lease",
  "lastError",
  "result",
  "createdAt",
  "updatedAt",
  "claimedAt",
  "finishedAt",
  "failures"
]

type Patch = { readonly [K in keyof Job]?: Job[K] | undefined }

/**
 * A new job from `job` with `patch` applied; a patch value of `undefined` removes the key. Built key by key in
 * one order (no `delete`), so every job object has the same shape and stays fast.
 */
const update = (job: Job, patch: Patch): Job => {
  const out: Record<string, unknown> = {}
  for (const key of KEYS) {
    const value = key in patch ? patch[key] : job[key]
    if (value !== undefined) out[key] = value
  }
  return out as Job
}

/** @internal */
export class MemoryQueueStore {
  private seq = 0
  private readonly byId = new Map<string, Entry>()
  private readonly byKey = new Map<string, Entry>()
  private all: Array<Entry> = []
  private readonly byQueue = new Map<string, Array<Entry>>()
  private readonly buckets = new Map<string, Map<string, Bucket>>()
  private readonly leases = new Heap<TimedItem>(timedLess)
  // Completed and cancelled jobs in the order they finished, for pruning; `finishedHead` is the next to check
  private finished: Array<Entry> = []
  private finishedHead = 0
  private removedInLists = 0
  private readonly watchers = new Map<string, Set<Latch.Latch>>()

  private readonly backoff: Backoff.Settings
  constructor(backoff: Backoff.Settings) {
    this.backoff = backoff
  }

  // ---- enqueue -------------------------------------------------------------------------------------------

  /**
   * Adds jobs (all of them: callers validated first); a known idempotency key returns the stored job. Their
   * queues' watchers are woken, or added to `touched` for the caller to wake (`signalAll`) when it chooses.
   */
  enqueue(jobs: ReadonlyArray<Job>, now: number, touched?: Set<string>): Array<Job> {
    const out: Array<Job> = []
    const wake = touched === undefined
    touched ??= new Set<string>()
    for (const job of jobs) {
      const existing = this.byKeyOf(job)
      if (existing) {
        out.push(existing.job)
        continue
      }
      const entry = this.add(job)
      this.schedule(entry, now)
      touched.add(job.queue)
      out.push(entry.job)
    }
    if (wake) for (const queue of touched) this.signal(queue)
    return out
  }

  /** Wakes the watchers of these queues. */
  signalAll(queues: Iterable<string>): void {
    for (const queue of queues) this.signal(queue)
  }

  /**
   * Adds a job claimed at once by `workerId` (a hand-off), unless it is delayed or a job of a higher priority
   * waits ready where it would be claimed from: then it is enqueued as usual. A known idempotency key returns
   * the stored job. `created` says whether a job was added (so a rolled-back unit can take it back).
   */
  enqueueClaimed(
    job: Job,
    workerId: AgentId,
    leaseMs: number,
    now: number,
    touched: Set<string>
  ): { readonly job: Job; readonly created: boolean } {
    const existing = this.byKeyOf(job)
    if (existing) return { job: existing.job, created: false }
    const rank = priorityRank(job.priority)
    let passes = job.runAt > now
    for (const bucket of this.candidates([job.queue], job.pool)) {
      if (passes) break
      this.promote(bucket, now)
      const top = this.readyTop(bucket)
      if (top !== undefined && top.rank < rank) passes = true
    }
    if (passes) return { job: this.enqueue([job], now, touched)[0]!, created: true }
    const entry = this.add(job)
    this.lease(entry, workerId, leaseMs, now)
    return { job: entry.job, created: true }
  }

  // Claimed by `workerId` now: its attempt counted, leased until `now + leaseMs`
  private lease(entry: Entry, workerId: AgentId, leaseMs: number, now: number): void {
    const expiresAt = now + leaseMs
    this.set(
      entry,
      update(entry.job, {
        state: "claimed",
        attempts: entry.job.attempts + 1,
        lease: { workerId, expiresAt },
        claimedAt: now,
        updatedAt: now
      })
    )
    this.leases.push({ entry, epoch: entry.epoch, at: expiresAt, seq: entry.seq })
  }

  private byKeyOf(job: Job): Entry | undefined {
    const idempotencyKey = job.idempotencyKey
    return idempotencyKey === undefined ? undefined : this.byKey.get(`${job.queue}\u0000${idempotencyKey}`)
  }

  // Indexes a new job (not scheduled: the caller makes it ready, delayed or claimed)
  private add(job: Job): Entry {
    const entry: Entry = {
      job: freeze(job),
      seq: ++this.seq,
      epoch: 0,
      rank: priorityRank(job.priority),
      bucket: this.bucket(job.queue, job.pool),
      removed: false
    }
    this.byId.set(job.id, entry)
    const idempotencyKey = job.idempotencyKey
    if (idempotencyKey !== undefined) this.byKey.set(`${job.queue}\u0000${idempotencyKey}`, entry)
    this.all.push(entry)
    let list = this.byQueue.get(job.queue)
    if (!list) {
      list = []
      this.byQueue.set(job.queue, list)
    }
    list.push(entry)
    return entry
  }

  /**
   * Takes back jobs `enqueue` just created (a rolled-back unit of work): they leave every index, as if pruned.
   * Jobs it returned because their idempotency key existed are not passed here.
   */
  unenqueue(jobIds: ReadonlyArray<JobId>): void {
    for (const jobId of jobIds) {
      const entry = this.byId.get(jobId)
      if (entry === undefined || entry.removed) continue
      entry.removed = true
      entry.epoch++
      this.byId.delete(jobId)
      const key = entry.job.idempotencyKey
      if (key !== undefined && this.byKey.get(`${entry.job.queue}\u0000${key}`) === entry) {
        this.byKey.delete(`${entry.job.queue}\u0000${key}`)
      }
      this.removedInLists++
    }
  }

  // ---- claim ---------------------------------------------------------------------------------------------

  claim(
    queues: ReadonlyArray<string>,
    pool: string | undefined,
    max: number,
    workerId: AgentId,
    leaseMs: number,
    now: number
  ): Array<Job> {
    // Expired leases come back first, so a crashed worker's jobs are claimable without waiting for the sweep
    this.requeueExpired(now)
    const candidates = this.candidates(queues, pool)
    for (const bucket of candidates) this.promote(bucket, now)
    const out: Array<Job> = []
    while (out.length < max) {
      let best: Bucket | undefined
      let bestItem: ReadyItem | undefined
      for (const bucket of candidates) {
        const item = this.readyTop(bucket)
        if (item && (!bestItem || readyLess(item, bestItem))) {
          best = bucket
          bestItem = item
        }
      }
      if (!best || !bestItem) break
      best.ready.pop()
      const entry = bestItem.entry
      this.lease(entry, workerId, leaseMs, now)
      out.push(entry.job)
    }
    return out
  }

  // ---- lease holder operations ---------------------------------------------------------------------------

  start(jobId: JobId, workerId: AgentId, now: number): LeaseResult {
    return this.withLease(jobId, workerId, now, (entry) => {
      if (entry.job.state === "running") return entry.job
      return this.set(entry, update(entry.job, { state: "running", updatedAt: now }), true)
    })
  }

  heartbeat(jobId: JobId, workerId: AgentId, extendMs: number, now: number): LeaseResult {
    return this.withLease(jobId, workerId, now, (entry) => {
      const expiresAt = now + extendMs
      const job = this.set(entry, update(entry.job, { lease: { workerId, expiresAt }, updatedAt: now }))
      this.leases.push({ entry, epoch: entry.epoch, at: expiresAt, seq: entry.seq })
      return job
    })
  }

  complete(jobId: JobId, workerId: AgentId, result: Schema.Json, now: number): LeaseResult {
    return this.withLease(jobId, workerId, now, (entry) => {
      this.finished.push(entry)
      return this.set(
        entry,
        update(entry.job, { state: "completed", lease: undefined, result, updatedAt: now, finishedAt: now })
      )
    })
  }

  fail(jobId: JobId, workerId: AgentId, error: string, retryable: boolean, draw: number, now: number): LeaseResult {
    return this.withLease(jobId, workerId, now, (entry) => {
      const job = entry.job
      const decision = Backoff.decide(
        { attempts: job.attempts, maxAttempts: job.maxAttempts, retryable, now, draw },
        this.backoff
      )
      const failed = { lease: undefined, lastError: error, failures: (job.failures ?? 0) + 1, updatedAt: now }
      if (decision._tag === "DeadLetter") {
        return this.set(entry, update(job, { ...failed, state: "dead_lettered", finishedAt: now }))
      }
      const next = this.set(entry, update(job, { ...failed, state: "failed", runAt: decision.retryAt }))
      this.schedule(entry, now)
      this.signal(job.queue)
      return next
    })
  }

  release(jobId: JobId, workerId: AgentId, now: number): LeaseResult {
    return this.withLease(jobId, workerId, now, (entry) => {
      // The attempt is given back: the worker let go of the job, it did not fail it. The job keeps its
      // runAt, so it returns to its old place in line.
      const job = this.set(
        entry,
        update(entry.job, {
          state: "queued",
          lease: undefined,
          attempts: Math.max(0, entry.job.attempts - 1),
          updatedAt: now
        })
      )
      this.schedule(entry, now)
      this.signal(job.queue)
      return job
    })
  }

  // ---- administrative operations -------------------------------------------------------------------------

  cancel(jobId: JobId, now: number): AdminResult {
    const entry = this.byId.get(jobId)
    if (!entry) return notFound
    const state = entry.job.state
    if (state === "cancelled") return { ok: true, job: entry.job }
    if (state === "completed" || state === "dead_lettered") {
      return { ok: false, refusal: { _tag: "IllegalTransition", from: state, to: "cancelled" } }
    }
    const job = this.set(
      entry,
      update(entry.job, { state: "cancelled", lease: undefined, updatedAt: now, finishedAt: now })
    )
    this.finished.push(entry)
    return { ok: true, job }
  }

  retryDeadLettered(jobId: JobId, now: number): AdminResult {
    const entry = this.byId.get(jobId)
    if (!entry) return notFound
    if (entry.job.state !== "dead_lettered") {
      return { ok: false, refusal: { _tag: "IllegalTransition", from: entry.job.state, to: "queued" } }
    }
    const job = this.set(
      entry,
      update(entry.job, { state: "queued", finishedAt: undefined, attempts: 0, runAt: now, updatedAt: now })
    )
    this.schedule(entry, now)
    this.signal(job.queue)
    return { ok: true, job }
  }

  /** Jobs whose lease expired at or before `now`: back to the ready set, or dead-lettered without attempts left. */
  requeueExpired(now: number): Array<Job> {
    const out: Array<Job> = []
    while (true) {
      const top = this.leases.peek()
      if (!top || top.at > now) break
      this.leases.pop()
      const entry = top.entry
      if (top.epoch !== entry.epoch) continue
      const job = entry.job
      const failed = {
        lease: undefined,
        lastError: `lease expired (held by ${job.lease?.workerId ?? "unknown"})`,
        failures: (job.failures ?? 0) + 1,
        updatedAt: now
      }
      if (job.attempts >= job.maxAttempts) {
        out.push(this.set(entry, update(job, { ...failed, state: "dead_lettered", finishedAt: now })))
      } else {
        out.push(this.set(entry, update(job, { ...failed, state: "queued", runAt: now })))
        this.schedule(entry, now)
        this.signal(job.queue)
      }
    }
    return out
  }

  /**
   * Forgets completed and cancelled jobs that finished at least `retainMs` ago (with their idempotency keys).
   * Dead-lettered jobs are kept: they wait for someone to look at them. Returns how many were removed.
   */
  prune(now: number, retainMs: number): number {
    let removed = 0
    while (this.finishedHead < this.finished.length) {
      const entry = this.finished[this.finishedHead]!
      const finishedAt = entry.job.finishedAt ?? now
      if (!entry.removed && finishedAt + retainMs > now) break
      this.finishedHead++
      if (entry.removed) continue
      entry.removed = true
      entry.epoch++
      this.byId.delete(entry.job.id)
      const key = entry.job.idempotencyKey
      if (key !== undefined && this.byKey.get(`${entry.job.queue}\u0000${key}`) === entry) {
        this.byKey.delete(`${entry.job.queue}\u0000${key}`)
      }
      removed++
    }
    if (this.finishedHead > 1_024 && this.finishedHead * 2 > this.finished.length) {
      this.finished = this.finished.slice(this.finishedHead)
      this.finishedHead = 0
    }
    this.removedInLists += removed
    // Compact the list arrays once pruned entries are half of them (amortised O(1) per removal)
    if (this.removedInLists > 1_024 && this.removedInLists * 2 > this.all.length) {
      this.all = this.all.filter((e) => !e.removed)
      for (const [queue, list] of this.byQueue) {
        const kept = list.filter((e) => !e.removed)
        if (kept.length === 0) this.byQueue.delete(queue)
        else this.byQueue.set(queue, kept)
      }
      this.removedInLists = 0
    }
    return removed
  }

  // ---- reads ---------------------------------------------------------------------------------------------

  get(jobId: JobId): Job | undefined {
    return this.byId.get(jobId)?.job
  }

  /** Entries in insertion order, optionally of one queue; skip those marked `removed`. */
  entries(queue: string | undefined): ReadonlyArray<Entry> {
    return queue === undefined ? this.all : (this.byQueue.get(queue) ?? [])
  }

  /** Index of the first entry with seq > `after` in an insertion-ordered array. */
  static indexAfter(entries: ReadonlyArray<Entry>, after: number): number {
    let lo = 0
    let hi = entries.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (entries[mid]!.seq <= after) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** The earliest future time a delayed job in these buckets becomes due (`now` if one already is). */
  nextDueAt(queues: ReadonlyArray<string>, pool: string | undefined, now: number): number | undefined {
    let next: number | undefined
    for (const bucket of this.candidates(queues, pool)) {
      const ready = this.readyTop(bucket)
      if (ready) return now
      const top = this.delayedTop(bucket)
      if (top && (next === undefined || top.at < next)) next = top.at
    }
    return next === undefined ? undefined : Math.max(now, next)
  }

  // ---- wake-ups ------------------------------------------------------------------------------------------

  watch(queues: ReadonlyArray<string>, latch: Latch.Latch): () => void {
    for (const queue of queues) {
      let set = this.watchers.get(queue)
      if (!set) {
        set = new Set()
        this.watchers.set(queue, set)
      }
      set.add(latch)
    }
    return () => {
      for (const queue of queues) {
        const set = this.watchers.get(queue)
        if (!set) continue
        set.delete(latch)
        if (set.size === 0) this.watchers.delete(queue)
      }
    }
  }

  private signal(queue: string): void {
    const set = this.watchers.get(queue)
    if (set) for (const latch of set) latch.openUnsafe()
  }

  // ---- helpers -------------------------------------------------------------------------------------------

  private bucket(queue: string, pool: string | undefined): Bucket {
    let pools = this.buckets.get(queue)
    if (!pools) {
      pools = new Map()
      this.buckets.set(queue, pools)
    }
    const key = pool ?? ""
    let bucket = pools.get(key)
    if (!bucket) {
      bucket = { queue, pool, ready: new Heap(readyLess), delayed: new Heap(timedLess) }
      pools.set(key, bucket)
    }
    return bucket
  }

  /** The buckets a claim may take from: per queue, the pool-less one and (with a pool) that pool's. */
  private candidates(queues: ReadonlyArray<string>, pool: string | undefined): Array<Bucket> {
    const out: Array<Bucket> = []
    for (const queue of queues) {
      const pools = this.buckets.get(queue)
      if (!pools) continue
      const open = pools.get("")
      if (open) out.push(open)
      if (pool !== undefined && pool !== "") {
        const own = pools.get(pool)
        if (own) out.push(own)
      }
    }
    return out
  }

  /** Puts a pending job (queued or failed) in its bucket's ready or delayed heap. */
  private schedule(entry: Entry, now: number): void {
    const job = entry.job
    if (job.runAt <= now) {
      entry.bucket.ready.push({ entry, epoch: entry.epoch, rank: entry.rank, runAt: job.runAt, seq: entry.seq })
    } else {
      entry.bucket.delayed.push({ entry, epoch: entry.epoch, at: job.runAt, seq: entry.seq })
    }
  }

  private promote(bucket: Bucket, now: number): void {
    while (true) {
      const top = this.delayedTop(bucket)
      if (!top || top.at > now) return
      bucket.delayed.pop()
      bucket.ready.push({ entry: top.entry, epoch: top.epoch, rank: top.entry.rank, runAt: top.at, seq: top.seq })
    }
  }

  private readyTop(bucket: Bucket): ReadyItem | undefined {
    while (true) {
      const top = bucket.ready.peek()
      if (!top || top.epoch === top.entry.epoch) return top
      bucket.ready.pop()
    }
  }

  private delayedTop(bucket: Bucket): TimedItem | undefined {
    while (true) {
      const top = bucket.delayed.peek()
      if (!top || top.epoch === top.entry.epoch) return top
      bucket.delayed.pop()
    }
  }

  /** Replaces the job; every index entry made before becomes stale (unless `keepIndexes`: same place). */
  private set(entry: Entry, job: Job, keepIndexes = false): Job {
    if (!keepIndexes) entry.epoch++
    entry.job = freeze(job)
    return entry.job
  }

  private withLease(jobId: JobId, workerId: AgentId, now: number, f: (entry: Entry) => Job): LeaseResult {
    const entry = this.byId.get(jobId)
    if (!entry) return notFound
    const job = entry.job
    const lease = job.lease
    const reason: LeaseLossReason | undefined =
      (job.state !== "claimed" && job.state !== "running") || !lease
        ? "not_leased"
        : lease.workerId !== workerId
          ? "held_by_other"
          : lease.expiresAt <= now
            ? "expired"
            : undefined
    if (reason !== undefined) {
      return { ok: false, refusal: { _tag: "LeaseLost", reason, state: job.state, holder: lease?.workerId } }
    }
    return { ok: true, job: f(entry) }
  }
}
