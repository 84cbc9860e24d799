/**
 * The `Agents` contract as a test suite: run it against any Agents layer (memory, Postgres, Redis, your own).
 *
 * ```ts
 * import { suite } from "@mandate/core/conformance/agents"
 * suite("Agents on my store", myAgentsLayer, { degradedAfterMs: 30_000, offlineAfterMs: 90_000 })
 * ```
 *
 * Pass the status thresholds the layer was built with. Tests isolate themselves by random agent ids and pool
 * names, so one layer instance serves the suite. With `testClock: false` the suite waits in real time; give
 * the layer short thresholds then.
 *
 * @since 0.1.0
 */
import { assert, describe, layer } from "@effect/vitest"
import {
  type Agent,
  AgentId,
  type AgentRegistration,
  type AgentStatus,
  Agents,
  agentStatusAt,
  defaultStatusThresholds
} from "@mandate/core"
import { Effect, type Layer } from "effect"
import { TestClock } from "effect/testing"

/**
 * How the suite drives the layer under test.
 *
 * @category models
 * @since 0.1.0
 */
export interface AgentsSuiteOptions {
  /** Drive time with `TestClock` (default true). False: wait in real time (for layers with their own clock). */
  readonly testClock?: boolean | undefined
  /** The layer's thresholds (default `defaultStatusThresholds`); offline must come after degraded. */
  readonly degradedAfterMs?: number | undefined
  readonly offlineAfterMs?: number | undefined
}

const LIVE_MARGIN_MS = 150

/**
 * Registers the Agents conformance tests under `name`.
 *
 * @category suites
 * @since 0.1.0
 */
export const suite = (name: string, agentsLayer: Layer.Layer<Agents, unknown>, options?: AgentsSuiteOptions): void => {
  const testClock = options?.testClock !== false
  const degradedAfterMs = options?.degradedAfterMs ?? defaultStatusThresholds.degradedAfterMs
  const offlineAfterMs = options?.offlineAfterMs ?? defaultStatusThresholds.offlineAfterMs
  if (!(offlineAfterMs > degradedAfterMs)) throw new Error("The suite needs offlineAfterMs > degradedAfterMs")
  const uid = () => crypto.randomUUID()
  const agentId = (label: string) => AgentId.make(`${label}-${uid()}`)
  const poolName = (label: string) => `${label}-${uid()}`
  const advance = (ms: number) => (testClock ? TestClock.adjust(ms) : Effect.sleep(ms + LIVE_MARGIN_MS))
  const bad = (registration: unknown) => registration as AgentRegistration

  layer(agentsLayer, { excludeTestServices: !testClock })(name, (it) => {
    describe("registration", () => {
      it.effect("registers an agent online and reads it back", () =>
        Effect.gen(function* () {
          const agents = yield* Agents
          const id = agentId("agent")
          const pool = poolName("pool")
          const agent = yield* agents.register({
            id,
            pool,
            capabilities: ["onchain_action", "check_balance"],
            labels: { region: "eu-west", "tier/gpu": "a100" }
          })
          assert.strictEqual(agent.id, id)
          assert.strictEqual(agent.pool, pool)
          assert.strictEqual(agent.status, "online")
          assert.deepStrictEqual(agent.capabilities, ["onchain_action", "check_balance"])
          assert.deepStrictEqual(agent.labels, { region: "eu-west", "tier/gpu": "a100" })
          assert.strictEqual(agent.lastHeartbeatAt, agent.registeredAt)
          assert.isUndefined(agent.load)
          assert.deepStrictEqual(yield* agents.get(id), agent)
          const generated = yield* agents.register({ pool })
          assert.match(generated.id, /^[A-Za-z0-9]/)
          assert.notStrictEqual(generated.id, id)
          assert.deepStrictEqual(generated.capabilities, [])
          assert.deepStrictEqual(generated.labels, {})
        })
      )

      it.effect("re-registering updates the agent and keeps its registration time", () =>
        Effect.gen(function* () {
          const agents = yield* Agents
          const id = agentId("again")
          const first = yield* agents.register({ id, pool: poolName("old"), capabilities: ["a"] })
          yield* advance(10)
          const pool = poolName("new")
          const second = yield* agents.register({ id, pool, capabilities: ["b"], labels: { k: "v" } })
          assert.strictEqual(second.registeredAt, first.registeredAt)
          assert.isTrue(second.lastHeartbeatAt > first.lastHeartbeatAt)
          assert.strictEqual(second.pool, pool)
          assert.deepStrictEqual(second.capabilities, ["b"])
          assert.deepStrictEqual(second.labels, { k: "v" })
          assert.deepStrictEqual(
            (yield* agents.list({ pool })).map((a) => a.id),
            [id]
          )
        })
      )

      it.effect("keeps one agent under 30 concurrent registrations of the same id", () =>
        Effect.gen(function* () {
          const agents = yield* Agents
          const id = agentId("race")
          const pool = poolName("race")
          yield* Effect.all(
            Array.from({ length: 30 }, (_, i) => agents.register({ id, pool, labels: { n: String(i) } })),
            { concurrency: "unbounded" }
          )
          const listed = yield* agents.list({ pool })
          assert.strictEqual(listed.length, 1)
          assert.strictEqual(listed[0]!.id, id)
        })
      )

      it.effect("refuses bad registrations and heartbeats with the field's path", () =>
        Effect.gen(function* () {
          const agents = yield* Agents
          const pathOf = (registration: unknown) =>
            Effect.map(Effect.flip(agents.register(bad(registration))), (e) =>
              e._tag === "InvalidInput" ? e.path : e._tag
            )
          const pool = poolName("bad")
          assert.strictEqual(yield* pathOf({ pool: "no spaces" }), "$.pool")
          assert.strictEqual(yield* pathOf({}), "$.pool")
          assert.strictEqual(yield* pathOf({ id: "bad id!", pool }), "$.id")
          assert.strictEqual(yield* pathOf({ pool, capabilities: "all" }), "$.capabilities")
          assert.strictEqual(yield* pathOf({ pool, capabilities: ["ok", ""] }), "$.capabilities[1]")
          assert.strictEqual(yield* pathOf({ pool, labels: { region: 7 } }), "$.labels.region")
          assert.strictEqual(yield* pathOf({ pool, labels: { "bad key": "v" } }), '$.labels["bad key"]')
          const id = agentId("load")
          yield* agents.register({ id, pool })
          for (const load of [-1, Number.NaN, Infinity]) {
            const error = yield* Effect.flip(agents.heartbeat(id, load))
            assert.strictEqual(error._tag === "InvalidInput" ? error.path : error._tag, "$.load")
          }
          assert.strictEqual((yield* agents.list({ pool })).length, 1, "refused input stored nothing")
          const badQuery = yield* Effect.flip(agents.list({ status: "asleep" as never }))
          assert.strictEqual(badQuery._tag === "InvalidInput" ? badQuery.path : badQuery._tag, "$.status")
        })
      )

      it.effect("deregisters an agent", () =>
        Effect.gen(function* () {
          const agents = yield* Agents
          const id = agentId("gone")
          yield* agents.register({ id, pool: poolName("gone") })
          yield* agents.deregister(id)
          assert.strictEqual((yield* Effect.flip(agents.get(id)))._tag, "AgentNotFound")
          assert.strictEqual((yield* Effect.flip(agents.deregister(id)))._tag, "AgentNotFound")
          assert.strictEqual((yield* Effect.flip(agents.heartbeat(id)))._tag, "AgentNotFound")
        })
      )
    })

    describe("status", () => {
      it.effect("goes online → degraded → offline with heartbeat age, and back online on a heartbeat", () =>
        Effect.gen(function* () {
          const agents = yield* Agents
          const id = agentId("age")
          yield* agents.register({ id, pool: poolName("age") })
          if (testClock) {
            yield* TestClock.adjust(degradedAfterMs)
            assert.strictEqual((yield* agents.get(id)).status, "online")
            yield* TestClock.adjust(1)
            assert.strictEqual((yield* agents.get(id)).status, "degraded")
            yield* TestClock.adjust(offlineAfterMs - degradedAfterMs - 1)
            assert.strictEqual((yield* agents.get(id)).status, "degraded")
            yield* TestClock.adjust(1)
            assert.strictEqual((yield* agents.get(id)).status, "offline")
          } else {
            // Real time (a store keeping its own clock): each read is bracketed by a probe's heartbeats, so the
            // store's time at the read is known to an interval, and the status read must be one that interval
            // allows. The walk goes on until degraded, then offline, were each read where the age allows nothing
            // else; a slow machine that steps over the degraded window sends a heartbeat and walks again. No
            // elapsed-time bound decides the outcome
            const probe = agentId("age-probe")
            yield* agents.register({ id: probe, pool: poolName("age-probe") })
            const order: ReadonlyArray<AgentStatus> = ["online", "degraded", "offline"]
            const thresholds = { degradedAfterMs, offlineAfterMs }
            const read = Effect.gen(function* () {
              const from = (yield* agents.heartbeat(probe)).lastHeartbeatAt
              const agent = yield* agents.get(id)
              const to = (yield* agents.heartbeat(probe)).lastHeartbeatAt
              const first = agentStatusAt(agent.lastHeartbeatAt, from, thresholds)
              const last = agentStatusAt(agent.lastHeartbeatAt, to, thresholds)
              const can = order.slice(order.indexOf(first), order.indexOf(last) + 1)
              assert.include(can, agent.status, `at ${from}..${to}, last heartbeat ${agent.lastHeartbeatAt}`)
              return can.length === 1 ? agent.status : undefined
            })
            for (const target of ["degraded", "offline"] as const) {
              while (true) {
                const exact = yield* read
                if (exact === target) break
                // stepped over the degraded window (a stalled machine): back online, and again
                if (target === "degraded" && exact === "offline") yield* agents.heartbeat(id)
                yield* Effect.sleep(Math.min(50, degradedAfterMs / 4))
              }
            }
          }
          const back = yield* agents.heartbeat(id, 0.25)
          assert.strictEqual(back.status, "online")
          assert.strictEqual(back.load, 0.25)
          assert.strictEqual((yield* agents.get(id)).load, 0.25)
          const noLoad = yield* agents.heartbeat(id)
          assert.isUndefined(noLoad.load)
        })
      )

      it.effect("lists by pool and status, and summarises pools", () =>
        Effect.gen(function* () {
          const agents = yield* Agents
          const alpha = poolName("alpha")
          const beta = poolName("beta")
          const stale = agentId("stale")
          const older = agentId("older")
          yield* agents.register({ id: stale, pool: alpha })
          yield* agents.register({ id: older, pool: alpha })
          // in the end stale's heartbeat is older than offlineAfterMs, older's between the two thresholds
          const middle = degradedAfterMs + Math.ceil((offlineAfterMs - degradedAfterMs) / 2)
          yield* advance(offlineAfterMs + 1 - middle)
          yield* agents.heartbeat(older)
          yield* advance(middle)
          const fresh = [agentId("a"), agentId("b")]
          for (const id of fresh) yield* agents.register({ id, pool: alpha })
          const b1 = agentId("b1")
          yield* agents.register({ id: b1, pool: beta })
          // The store's time before and after the reads (a probe's heartbeats): under TestClock one instant, in
          // real time an interval. Each read answers for one instant inside it, so an agent's status is known
          // exactly unless a threshold falls inside the interval (a slow machine), and then it is one of the two
          const probe = agentId("probe")
          yield* agents.register({ id: probe, pool: poolName("probe") })
          const from = (yield* agents.heartbeat(probe)).lastHeartbeatAt
          const inAlpha = yield* agents.list({ pool: alpha })
          const inBeta = yield* agents.list({ pool: beta })
          const byStatus = {
            online: yield* agents.list({ pool: alpha, status: "online" }),
            degraded: yield* agents.list({ pool: alpha, status: "degraded" }),
            offline: yield* agents.list({ pool: alpha, status: "offline" })
          }
          const pools = (yield* agents.pools).filter((p) => p.pool === alpha || p.pool === beta)
          const to = (yield* agents.heartbeat(probe)).lastHeartbeatAt
          const thresholds = { degradedAfterMs, offlineAfterMs }
          const possible = (agent: Agent): ReadonlyArray<AgentStatus> => {
            const first = agentStatusAt(agent.lastHeartbeatAt, from, thresholds)
            const last = agentStatusAt(agent.lastHeartbeatAt, to, thresholds)
            const order: ReadonlyArray<AgentStatus> = ["online", "degraded", "offline"]
            return order.slice(order.indexOf(first), order.indexOf(last) + 1)
          }
          assert.deepStrictEqual(
            inAlpha.map((a) => a.id),
            [...fresh, stale, older].sort()
          )
          const intended: Record<string, AgentStatus> = { [stale]: "offline", [older]: "degraded" }
          for (const id of fresh) intended[id] = "online"
          for (const agent of inAlpha) {
            const can = possible(agent)
            assert.include(can, agent.status, agent.id)
            // under TestClock the heartbeats above put each agent exactly in its intended status
            if (testClock) assert.deepStrictEqual(can, [intended[agent.id]], agent.id)
            for (const status of ["online", "degraded", "offline"] as const) {
              const listed = byStatus[status].some((a) => a.id === agent.id)
              if (can.length === 1) assert.strictEqual(listed, can[0] === status, `${agent.id} in ${status}`)
              else if (!can.includes(status)) assert.isFalse(listed, `${agent.id} in ${status}`)
            }
          }
          assert.deepStrictEqual(
            inBeta.map((a) => a.id),
            [b1]
          )
          for (const status of ["online", "degraded", "offline"] as const) {
            assert.isTrue(byStatus[status].every((a) => a.pool === alpha && a.status === status))
          }
          // each pool's summary: its agents, and per status a count the reads above allow (exact when they are)
          const members = { [alpha]: inAlpha, [beta]: inBeta }
          assert.deepStrictEqual(pools.map((p) => p.pool).sort(), [alpha, beta].sort())
          for (const summary of pools) {
            const in_ = members[summary.pool]!
            assert.strictEqual(summary.agents, in_.length, summary.pool)
            for (const status of ["online", "degraded", "offline"] as const) {
              const surely = in_.filter((a) => possible(a).join() === status).length
              const maybe = in_.filter((a) => possible(a).includes(status)).length
              assert.isAtLeast(summary[status], surely, `${summary.pool} ${status}`)
              assert.isAtMost(summary[status], maybe, `${summary.pool} ${status}`)
            }
          }
          if (testClock) {
            assert.deepStrictEqual(
              pools,
              [
                { pool: alpha, agents: 4, online: 2, degraded: 1, offline: 1 },
                { pool: beta, agents: 1, online: 1, degraded: 0, offline: 0 }
              ].sort((x, y) => (x.pool < y.pool ? -1 : 1))
            )
          }
          const everyone = yield* agents.list()
          for (const id of [...fresh, stale, older, b1]) assert.isTrue(everyone.some((a) => a.id === id))
        })
      )

      it.effect("records concurrent heartbeats from many agents", () =>
        Effect.gen(function* () {
          const agents = yield* Agents
          const pool = poolName("busy")
          const ids = Array.from({ length: 25 }, (_, i) => agentId(`busy-${i}`))
          yield* Effect.forEach(ids, (id) => agents.register({ id, pool }), { concurrency: "unbounded" })
          yield* Effect.all(
            ids.flatMap((id, i) => [agents.heartbeat(id, i), agents.heartbeat(id, i)]),
            { concurrency: "unbounded" }
          )
          const listed = yield* agents.list({ pool })
          assert.strictEqual(listed.length, 25)
          for (const agent of listed) assert.strictEqual(agent.load, ids.indexOf(agent.id))
        })
      )
    })
  })
}
