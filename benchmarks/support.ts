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

/** The `p` quantile (0..1) of ascending `sorted`; NaN when empty. */
export const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? Number.NaN

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

export const alice = Principal.make("alice", ["submitter"])

/** The i-th seed transfer (3 steps: `check_balance → policy_check → onchain_action`). */
export const transfer = (i: number) => ({
  kind: "transfer_funds",
  params: { from: `${"A".repeat(56)}FXIB`, to: "B".repeat(60), amount: 1 + (i % 1000) }
})

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
