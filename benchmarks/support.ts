/**
 * What the benchmark scripts share: timing and percentiles, the auto-approval policy and the seed task they
 * start, and a tracker of task completions.
 *
 * @since 0.1.0
 */
import { type PolicySet, Principal, Runtime, Seed } from "@mandate/core"
import { Deferred, Effect, type Scope, Stream } from "effect"

/** This process's CPU time so far (user + system), in ms. */
export const cpuMs = (): number => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1000
}

/**
 * The `p` quantile (0..1) of ascending `sorted` by the nearest-rank method: the smallest sample with at least
 * `p` of all samples at or below it (`sorted[ceil(p * n) - 1]`), always a measured value; NaN when empty. Every
 * benchmark reports its percentiles with this one definition.
 */
export const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? Number.NaN

/** `count` per second over `ms`, rounded, with thousands separators. */
export const rate = (count: number, ms: number): string => Math.round((count / ms) * 1000).toLocaleString("en-US")

export const sleep = (ms: number): Promise<void> => new Promise<void>((resolve) => setTimeout(resolve, ms))

export interface Latency {
  readonly p50: number
  readonly p95: number
  readonly p99: number
}

/** p50/p95/p99 of `samples` (sorted in place). */
export const latencyOf = (samples: Array<number>): Latency => {
  samples.sort((a, b) => a - b)
  return { p50: percentile(samples, 0.5), p95: percentile(samples, 0.95), p99: percentile(samples, 0.99) }
}

/**
 * Runs `op(i)` for i in 0..count-1, `concurrency` fibers at a time; returns operations per second and the
 * latency percentiles in ms.
 */
export const measureOps = <E, R>(
  op: (i: number) => Effect.Effect<unknown, E, R>,
  count: number,
  concurrency: number
): Effect.Effect<Latency & { readonly opsPerSecond: number }, E, R> =>
  Effect.gen(function* () {
    const latencies: Array<number> = []
    const timed = (i: number) =>
      Effect.suspend(() => {
        const start = performance.now()
        return Effect.tap(op(i), () => Effect.sync(() => latencies.push(performance.now() - start)))
      })
    const start = performance.now()
    yield* Effect.forEach(
      Array.from({ length: count }, (_, i) => i),
      timed,
      { concurrency, discard: true }
    )
    const seconds = (performance.now() - start) / 1000
    return { opsPerSecond: Math.round(count / seconds), ...latencyOf(latencies) }
  })

/** Runs `count` calls of `f`, `inFlight` at a time. */
export const pooled = async (count: number, inFlight: number, f: (i: number) => Promise<unknown>): Promise<void> => {
  let next = 0
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < count) await f(next++)
    })
  )
}

/** The seed policy with every approval gate turned into an allow: tasks run to completion unattended. */
export const autoApprove: PolicySet.PolicySet = {
  name: "auto-approval",
  rules: [
    ...Seed.defaultPolicySet.rules.filter((r) => r.effect !== "require_approval"),
    { id: "auto-approve", effect: "allow", match: { action: "onchain_action" } }
  ]
}

/** Transfers of at least this amount wait for an approver under `gatedAbove`; smaller ones run unattended. */
export const approvalFrom = 100_000

/**
 * The seed policy with its approval gates moved to large transfers: `transfer(i)` runs unattended, `gated(i)`
 * waits for an approver at its `onchain_action` step.
 */
export const gatedAbove: PolicySet.PolicySet = {
  name: "approval-for-large-transfers",
  rules: [
    ...Seed.defaultPolicySet.rules.filter((r) => r.effect !== "require_approval"),
    {
      id: "small-transfers",
      effect: "allow",
      match: { action: "onchain_action", when: [{ param: "amount", op: "lt", value: approvalFrom }] }
    },
    {
      id: "large-transfers",
      effect: "require_approval",
      match: { action: "onchain_action", when: [{ param: "amount", op: "gte", value: approvalFrom }] },
      approvals: { required: 1 }
    }
  ]
}

export const alice = Principal.make("alice", ["submitter"])
export const bob = Principal.make("bob", ["approver"])

/** The i-th seed transfer (3 steps: `check_balance → policy_check → onchain_action`). */
export const transfer = (i: number) => ({
  kind: "transfer_funds",
  params: { from: `${"A".repeat(56)}FXIB`, to: "B".repeat(60), amount: 1 + (i % 1000) }
})

/** The i-th seed transfer above `approvalFrom`: its `onchain_action` step waits for an approver. */
export const gated = (i: number) => ({
  kind: "transfer_funds",
  params: { from: `${"A".repeat(56)}FXIB`, to: "B".repeat(60), amount: approvalFrom + (i % 1000) }
})

/** `--name value` from the command line, a positive integer, else `fallback`. */
export const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  const value = i >= 0 ? Number(process.argv[i + 1]) : Number.NaN
  return Number.isFinite(value) && value > 0 ? Math.floor(value) : fallback
}

export interface Measure {
  readonly count: number
  readonly wallMs: number
  readonly cpuMs: number
}

/** A stopwatch over wall time and this process's CPU time; call the result where the measured work ends. */
export const stopwatch = (count: number) => {
  const cpu = cpuMs()
  const started = performance.now()
  return (): Measure => ({ count, wallMs: performance.now() - started, cpuMs: cpuMs() - cpu })
}

/**
 * Follows `task.completed` events for the rest of the scope: `started(taskId, t0)` marks a task to time, `latencies`
 * collects start → completion times (ms) of marked tasks, `allDone` completes once `count` of them completed.
 */
export const trackCompletions = (
  count: number
): Effect.Effect<
  {
    readonly started: (taskId: string, t0: number) => void
    readonly latencies: Array<number>
    readonly allDone: Effect.Effect<void>
  },
  never,
  Runtime | Scope.Scope
> =>
  Effect.gen(function* () {
    const runtime = yield* Runtime
    const startedAt = new Map<string, number>()
    const latencies: Array<number> = []
    const done = yield* Deferred.make<void>()
    const events = yield* runtime.events()
    yield* events.pipe(
      Stream.filter((e) => e.kind === "task.completed"),
      Stream.runForEach((e) =>
        Effect.sync(() => {
          const t0 = startedAt.get(e.taskId)
          if (t0 === undefined) return
          latencies.push(performance.now() - t0)
          if (latencies.length === count) Deferred.doneUnsafe(done, Effect.void)
        })
      ),
      Effect.forkScoped
    )
    return {
      started: (taskId: string, t0: number) => void startedAt.set(taskId, t0),
      latencies,
      allDone: Deferred.await(done)
    }
  })
