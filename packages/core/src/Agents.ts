/**
 * The agent registry: workers (in-process fibers or remote agents) register with a pool, capabilities and
 * labels, send heartbeats (optionally with their load), and are reported `online`, `degraded` or `offline`
 * from the age of their last heartbeat. Claims use the agent's pool to reach pool-bound jobs.
 *
 * Status is never stored: every layer keeps `lastHeartbeatAt` and derives the status when it reads, with
 * `agentStatusAt` and the layer's thresholds, so it cannot go stale.
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, Layer, Schema } from "effect"
import { AgentId, uuidv7 } from "./Ids.ts"
import type { InvalidInput } from "./InvalidInput.ts"
import { decode } from "./InvalidInput.ts"
import { PoolName } from "./Job.ts"

/**
 * @category models
 * @since 0.1.0
 */
export const AgentStatus = Schema.Literals(["online", "degraded", "offline"])
export type AgentStatus = typeof AgentStatus.Type

const Capability = Schema.String.check(Schema.isBetweenLength(1, 128))
const labelKey = /^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}$/
const LabelValue = Schema.String.check(Schema.isMaxLength(256))
// Keys are checked by a filter, not by the record's key schema: decoding ignores keys that do not match a key
// schema, and a bad label must be refused (by its own path), not dropped
const Labels = Schema.Record(Schema.String, LabelValue).check(
  Schema.makeFilter((labels: { readonly [key: string]: string }) => {
    const keys = Object.keys(labels)
    if (keys.length > 64) return "Expected at most 64 labels"
    return keys
      .filter((key) => !labelKey.test(key))
      .map((key) => ({
        path: [key],
        issue: "Expected a label key: 1-63 letters, digits and _ . / -, starting with a letter or digit"
      }))
  })
)

/**
 * A load figure reported with a heartbeat: a finite number ≥ 0 (e.g. in-flight jobs / concurrency).
 *
 * @category models
 * @since 0.1.0
 */
export const AgentLoad = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))

/**
 * What an agent says about itself when it registers. Without an `id`, one is generated.
 *
 * @category models
 * @since 0.1.0
 */
export const AgentRegistration = Schema.Struct({
  id: Schema.optionalKey(AgentId),
  pool: PoolName,
  capabilities: Schema.optionalKey(Schema.Array(Capability).check(Schema.isMaxLength(64))),
  labels: Schema.optionalKey(Labels)
})
export type AgentRegistration = typeof AgentRegistration.Type

/**
 * A registered agent as read now: its status follows from `lastHeartbeatAt`.
 *
 * @category models
 * @since 0.1.0
 */
export const Agent = Schema.Struct({
  id: AgentId,
  pool: PoolName,
  capabilities: Schema.Array(Schema.String),
  labels: Schema.Record(Schema.String, Schema.String),
  status: AgentStatus,
  registeredAt: Schema.Number,
  lastHeartbeatAt: Schema.Number,
  /** The load sent with the last heartbeat, if any. */
  load: Schema.optionalKey(Schema.Number)
})
export type Agent = typeof Agent.Type

/**
 * Filters of `list`.
 *
 * @category models
 * @since 0.1.0
 */
export const AgentQuery = Schema.Struct({
  pool: Schema.optionalKey(PoolName),
  status: Schema.optionalKey(AgentStatus)
})
export type AgentQuery = typeof AgentQuery.Type

/**
 * A pool and how many of its agents are in each status.
 *
 * @category models
 * @since 0.1.0
 */
export const PoolSummary = Schema.Struct({
  pool: PoolName,
  agents: Schema.Int,
  online: Schema.Int,
  degraded: Schema.Int,
  offline: Schema.Int
})
export type PoolSummary = typeof PoolSummary.Type

/**
 * Heartbeat ages (ms) past which an agent is `degraded`, then `offline`.
 *
 * @category models
 * @since 0.1.0
 */
export interface StatusThresholds {
  readonly degradedAfterMs: number
  readonly offlineAfterMs: number
}

/**
 * Degraded after 30 s without a heartbeat, offline after 90 s.
 *
 * @category constants
 * @since 0.1.0
 */
export const defaultStatusThresholds: StatusThresholds = { degradedAfterMs: 30_000, offlineAfterMs: 90_000 }

/**
 * @category errors
 * @since 0.1.0
 */
export class AgentNotFound extends Schema.TaggedError<AgentNotFound>()("AgentNotFound", { agentId: Schema.String }) {
  override get message(): string {
    return `No agent ${this.agentId}`
  }
}

/**
 * The backing store failed (connection, query); wraps the driver's error.
 *
 * @category errors
 * @since 0.1.0
 */
export class AgentsStoreError extends Schema.TaggedError<AgentsStoreError>()("AgentsStoreError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

/**
 * An agent's status at `now`: online while its last heartbeat is at most `degradedAfterMs` old, degraded up to
 * `offlineAfterMs`, offline after.
 *
 * @category computations
 * @since 0.1.0
 */
export const agentStatusAt = (lastHeartbeatAt: number, now: number, thresholds: StatusThresholds): AgentStatus => {
  const age = now - lastHeartbeatAt
  return age <= thresholds.degradedAfterMs ? "online" : age <= thresholds.offlineAfterMs ? "degraded" : "offline"
}

/**
 * Every pool with at least one agent, by name, with how many of its agents are in each status: the one summary
 * every layer returns from `pools` (layers only read their agents and call this).
 *
 * @category computations
 * @since 0.1.0
 */
export const summarizePools = (agents: Iterable<Pick<Agent, "pool" | "status">>): ReadonlyArray<PoolSummary> => {
  const byPool = new Map<string, { agents: number; online: number; degraded: number; offline: number }>()
  for (const agent of agents) {
    let summary = byPool.get(agent.pool)
    if (!summary) {
      summary = { agents: 0, online: 0, degraded: 0, offline: 0 }
      byPool.set(agent.pool, summary)
    }
    summary.agents++
    summary[agent.status]++
  }
  return [...byPool.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([pool, summary]) => ({ pool, ...summary }))
}

/**
 * Fills in defaults; `offlineAfterMs` is at least `degradedAfterMs`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const statusThresholds = (options?: AgentsMemoryOptions | undefined): StatusThresholds => {
  const degradedAfterMs = Math.max(0, finiteOr(options?.degradedAfterMs, defaultStatusThresholds.degradedAfterMs))
  return {
    degradedAfterMs,
    offlineAfterMs: Math.max(
      degradedAfterMs,
      finiteOr(options?.offlineAfterMs, Math.max(degradedAfterMs, defaultStatusThresholds.offlineAfterMs))
    )
  }
}

/**
 * Options of `Agents.layerMemory`.
 *
 * @category models
 * @since 0.1.0
 */
export interface AgentsMemoryOptions {
  readonly degradedAfterMs?: number | undefined
  readonly offlineAfterMs?: number | undefined
}

/**
 * The agent registry.
 *
 * @category services
 * @since 0.1.0
 */
export class Agents extends Context.Service<
  Agents,
  {
    /** Registers an agent, or updates it (same id): pool, capabilities and labels are replaced. */
    readonly register: (registration: AgentRegistration) => Effect.Effect<Agent, InvalidInput | AgentsStoreError>
    /** Records a heartbeat now, with the agent's load if given. */
    readonly heartbeat: (
      agentId: AgentId,
      load?: number
    ) => Effect.Effect<Agent, AgentNotFound | InvalidInput | AgentsStoreError>
    readonly get: (agentId: AgentId) => Effect.Effect<Agent, AgentNotFound | AgentsStoreError>
    /** Agents by id, filtered by pool and status. */
    readonly list: (query?: AgentQuery) => Effect.Effect<ReadonlyArray<Agent>, InvalidInput | AgentsStoreError>
    /** Every pool with at least one agent, by name. */
    readonly pools: Effect.Effect<ReadonlyArray<PoolSummary>, AgentsStoreError>
    readonly deregister: (agentId: AgentId) => Effect.Effect<void, AgentNotFound | AgentsStoreError>
  }
>()("@mandate/core/Agents") {
  /**
   * In-process registry; its time is the `Clock`'s.
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layerMemory = (options?: AgentsMemoryOptions): Layer.Layer<Agents> =>
    Layer.sync(Agents, () => makeMemory(options))
}

function finiteOr(value: number | undefined, fallback: number): number {
  return value !== undefined && Number.isFinite(value) ? value : fallback
}

interface Stored {
  readonly id: AgentId
  readonly pool: string
  readonly capabilities: ReadonlyArray<string>
  readonly labels: { readonly [key: string]: string }
  readonly registeredAt: number
  readonly lastHeartbeatAt: number
  readonly load?: number
}

const RegistrationDecode = decode(AgentRegistration)
const LoadDecode = decode(AgentLoad, "$.load")
const QueryDecode = decode(AgentQuery)

/**
 * Decodes a registration (`InvalidInput` at `$.pool`, `$.labels["bad key"]`, …), for layers.
 *
 * @category decoding
 * @since 0.1.0
 */
export const decodeAgentRegistration: (registration: unknown) => Effect.Effect<AgentRegistration, InvalidInput> =
  RegistrationDecode

/**
 * Decodes a heartbeat's load (`InvalidInput` at `$.load`), for layers.
 *
 * @category decoding
 * @since 0.1.0
 */
export const decodeAgentLoad: (load: unknown) => Effect.Effect<number, InvalidInput> = LoadDecode

/**
 * Decodes a `list` query (`InvalidInput` at `$.status`, …), for layers.
 *
 * @category decoding
 * @since 0.1.0
 */
export const decodeAgentQuery: (query: unknown) => Effect.Effect<AgentQuery, InvalidInput> = QueryDecode

function makeMemory(options?: AgentsMemoryOptions): Agents["Service"] {
  const limits = statusThresholds(options)
  const agents = new Map<string, Stored>()
  const view = (stored: Stored, now: number): Agent =>
    Object.freeze({
      ...stored,
      capabilities: Object.freeze([...stored.capabilities]),
      labels: Object.freeze({ ...stored.labels }),
      status: agentStatusAt(stored.lastHeartbeatAt, now, limits)
    })
  const find = (agentId: AgentId) => {
    const stored = agents.get(agentId)
    return stored ? Effect.succeed(stored) : Effect.fail(new AgentNotFound({ agentId }))
  }
  return Agents.of({
    register: Effect.fn("Agents.register")(function* (registration: AgentRegistration) {
      const r = yield* RegistrationDecode(registration)
      const now = yield* Clock.currentTimeMillis
      const id = r.id ?? AgentId.make(`agent_${uuidv7(now)}`)
      const previous = agents.get(id)
      const stored: Stored = {
        id,
        pool: r.pool,
        capabilities: [...(r.capabilities ?? [])],
        labels: { ...r.labels },
        registeredAt: previous?.registeredAt ?? now,
        lastHeartbeatAt: now
      }
      agents.set(id, stored)
      return view(stored, now)
    }),
    heartbeat: Effect.fn("Agents.heartbeat")(function* (agentId: AgentId, load?: number) {
      const value = load === undefined ? undefined : yield* LoadDecode(load)
      const stored = yield* find(agentId)
      const now = yield* Clock.currentTimeMillis
      const { load: _previous, ...rest } = stored
      const next: Stored = { ...rest, lastHeartbeatAt: now, ...(value !== undefined ? { load: value } : {}) }
      agents.set(agentId, next)
      return view(next, now)
    }),
    get: (agentId) =>
      Effect.flatMap(find(agentId), (stored) => Effect.map(Clock.currentTimeMillis, (now) => view(stored, now))),
    list: Effect.fn("Agents.list")(function* (query?: AgentQuery) {
      const q = yield* QueryDecode(query ?? {})
      const now = yield* Clock.currentTimeMillis
      const out: Array<Agent> = []
      for (const stored of agents.values()) {
        if (q.pool !== undefined && stored.pool !== q.pool) continue
        const agent = view(stored, now)
        if (q.status !== undefined && agent.status !== q.status) continue
        out.push(agent)
      }
      return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    }),
    pools: Effect.map(Clock.currentTimeMillis, (now) =>
      summarizePools(Array.from(agents.values(), (stored) => view(stored, now)))
    ),
    deregister: (agentId) => Effect.map(find(agentId), () => void agents.delete(agentId))
  })
}
