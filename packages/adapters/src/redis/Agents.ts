/**
 * `Agents` on Redis: each agent a hash (its registration as JSON, its registration and last heartbeat times, its
 * load), a set of every agent and one per pool. Registration, heartbeat and deregistration are each one Lua
 * script, so concurrent registrations of one id keep one agent and a pool change moves it between pool sets
 * atomically.
 *
 * Statuses are not stored: they follow from the heartbeat's age at the time of the read (`agentStatusAt` in core,
 * with the layer's thresholds), on the caller's `Clock`, as in the memory layer.
 *
 * @since 0.1.0
 */
import {
  type Agent,
  AgentId,
  AgentNotFound,
  type AgentQuery,
  type AgentRegistration,
  Agents,
  type AgentsMemoryOptions,
  AgentsStoreError,
  agentStatusAt,
  decodeAgentLoad,
  decodeAgentQuery,
  decodeAgentRegistration,
  type InvalidInput,
  statusThresholds,
  summarizePools,
  uuidv7
} from "@mandate/core"
import { Clock, Effect, Layer, Schema } from "effect"
import { Redis } from "effect/persistence"
import { makeKeys, type RedisOptions, resolvePrefix } from "./Keys.ts"

/**
 * Options of the Redis agent registry: the key prefix and the status thresholds.
 *
 * @category models
 * @since 0.1.0
 */
export interface AgentsOptions extends RedisOptions, AgentsMemoryOptions {}

// What the hash keeps as JSON: the registration as given
const Registration = Schema.fromJsonString(
  Schema.Struct({
    id: AgentId,
    pool: Schema.String,
    capabilities: Schema.Array(Schema.String),
    labels: Schema.Record(Schema.String, Schema.String)
  })
)
const decodeRegistration = Schema.decodeUnknownEffect(Registration)
const encodeRegistration = Schema.encodeEffect(Registration)

// [registration JSON, registeredAt, lastHeartbeatAt, load] as the scripts return them
type Fields = readonly [string | null, string | null, string | null, string | null]

/**
 * Builds the Redis agent registry over the `Redis` service in context.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeAgents = Effect.fnUntraced(function* (options?: AgentsOptions) {
  const redis = yield* Redis.Redis
  const keys = makeKeys(yield* resolvePrefix(options))
  const limits = statusThresholds(options)
  const registerScript = redis.eval(registerAgent)
  const heartbeatScript = redis.eval(heartbeatAgent)
  const deregisterScript = redis.eval(deregisterAgent)
  const readScript = redis.eval(readAgents)

  const storeError = (operation: string) => (cause: unknown) => new AgentsStoreError({ operation, cause })

  const toAgent = (fields: Fields, now: number, operation: string): Effect.Effect<Agent, AgentsStoreError> =>
    Effect.map(decodeRegistration(fields[0]).pipe(Effect.mapError(storeError(operation))), (registration): Agent => {
      const lastHeartbeatAt = Number(fields[2])
      return {
        ...registration,
        registeredAt: Number(fields[1]),
        lastHeartbeatAt,
        ...(fields[3] !== null && fields[3] !== "" ? { load: Number(fields[3]) } : {}),
        status: agentStatusAt(lastHeartbeatAt, now, limits)
      }
    })

  const register = Effect.fn("Agents.register")(function* (registration: AgentRegistration) {
    const r = yield* decodeAgentRegistration(registration)
    const now = yield* Clock.currentTimeMillis
    const id = r.id ?? AgentId.make(`agent_${uuidv7(now)}`)
    const json = yield* encodeRegistration({
      id,
      pool: r.pool,
      capabilities: [...(r.capabilities ?? [])],
      labels: { ...r.labels }
    }).pipe(Effect.mapError(storeError("register")))
    const fields = yield* registerScript(
      keys.agent(id),
      keys.agentsAll,
      keys.agentsByPool(r.pool),
      keys.agentsByPool(""),
      id,
      r.pool,
      json,
      now
    ).pipe(Effect.mapError(storeError("register")))
    return yield* toAgent(fields, now, "register")
  })

  const heartbeat = Effect.fn("Agents.heartbeat")(function* (agentId: AgentId, load?: number) {
    const value = load === undefined ? undefined : yield* decodeAgentLoad(load)
    const now = yield* Clock.currentTimeMillis
    const fields = yield* heartbeatScript(keys.agent(agentId), now, value === undefined ? "" : String(value)).pipe(
      Effect.mapError(storeError("heartbeat"))
    )
    if (fields === null) return yield* new AgentNotFound({ agentId })
    return yield* toAgent(fields, now, "heartbeat")
  })

  const get = Effect.fn("Agents.get")(function* (agentId: AgentId) {
    const now = yield* Clock.currentTimeMillis
    const [fields] = yield* readScript(keys.agentsAll, keys.agent(""), [agentId]).pipe(
      Effect.mapError(storeError("get"))
    )
    if (fields === undefined || fields[0] === null) return yield* new AgentNotFound({ agentId })
    return yield* toAgent(fields, now, "get")
  })

  // Every agent of the set `index`, read in one script; ids without a hash (deregistered meanwhile) are skipped
  const readAll = (index: string, operation: string) =>
    Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const rows = yield* readScript(index, keys.agent(""), []).pipe(Effect.mapError(storeError(operation)))
      const agents: Array<Agent> = []
      for (const fields of rows) if (fields[0] !== null) agents.push(yield* toAgent(fields, now, operation))
      return agents
    })

  const list = Effect.fn("Agents.list")(function* (query?: AgentQuery) {
    const q = yield* decodeAgentQuery(query ?? {})
    const agents = yield* readAll(q.pool === undefined ? keys.agentsAll : keys.agentsByPool(q.pool), "list")
    return agents
      .filter((agent) => q.status === undefined || agent.status === q.status)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  })

  const pools = Effect.map(readAll(keys.agentsAll, "pools"), summarizePools).pipe(Effect.withSpan("Agents.pools"))

  const deregister = Effect.fn("Agents.deregister")(function* (agentId: AgentId) {
    const removed = yield* deregisterScript(keys.agent(agentId), keys.agentsAll, keys.agentsByPool(""), agentId).pipe(
      Effect.mapError(storeError("deregister"))
    )
    if (removed === 0) return yield* new AgentNotFound({ agentId })
  })

  return Agents.of({ register, heartbeat, get, list, pools, deregister })
})

/**
 * The Redis agent registry as a layer over the `Redis` service.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerAgents = (options?: AgentsOptions): Layer.Layer<Agents, InvalidInput, Redis.Redis> =>
  Layer.effect(Agents, makeAgents(options))

// KEYS: agent, all agents, the new pool's set, the pool sets' prefix (the key of pool "")
// ARGV: id, pool, registration JSON, now. Keeps the first registration time; a new pool moves the agent
const registerAgent = Redis.script(
  (
    keyAgent: string,
    keyAll: string,
    keyPool: string,
    keyPoolPrefix: string,
    id: string,
    pool: string,
    registration: string,
    now: number
  ) => [keyAgent, keyAll, keyPool, keyPoolPrefix, id, pool, registration, now],
  {
    numberOfKeys: 4,
    lua: `
local previous = redis.call('HGET', KEYS[1], 'pool')
if previous and previous ~= ARGV[2] then redis.call('SREM', KEYS[4] .. previous, ARGV[1]) end
redis.call('HSETNX', KEYS[1], 'registeredAt', ARGV[4])
redis.call('HSET', KEYS[1], 'registration', ARGV[3], 'pool', ARGV[2], 'lastHeartbeatAt', ARGV[4])
redis.call('HDEL', KEYS[1], 'load')
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return redis.call('HMGET', KEYS[1], 'registration', 'registeredAt', 'lastHeartbeatAt', 'load')
`
  }
).withReturnType<Fields>()

// KEYS: agent. ARGV: now, load ("" for none). Returns its fields, or nil when it is not registered
const heartbeatAgent = Redis.script((keyAgent: string, now: number, load: string) => [keyAgent, now, load], {
  numberOfKeys: 1,
  lua: `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'lastHeartbeatAt', ARGV[1])
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], 'load') else redis.call('HSET', KEYS[1], 'load', ARGV[2]) end
return redis.call('HMGET', KEYS[1], 'registration', 'registeredAt', 'lastHeartbeatAt', 'load')
`
}).withReturnType<Fields | null>()

// KEYS: agent, all agents, the pool sets' prefix. ARGV: id. Returns 1 when it removed the agent, 0 when none
const deregisterAgent = Redis.script(
  (keyAgent: string, keyAll: string, keyPoolPrefix: string, id: string) => [keyAgent, keyAll, keyPoolPrefix, id],
  {
    numberOfKeys: 3,
    lua: `
local pool = redis.call('HGET', KEYS[1], 'pool')
if not pool then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3] .. pool, ARGV[1])
return 1
`
  }
).withReturnType<0 | 1>()

// KEYS: a set of agent ids (all, or a pool's), the agent key prefix. ARGV: ids to read (none: every id in the set)
// Returns each agent's fields, in the set's order
const readAgents = Redis.script(
  (keyIndex: string, keyAgentPrefix: string, ids: ReadonlyArray<string>) => [keyIndex, keyAgentPrefix, ...ids],
  {
    numberOfKeys: 2,
    lua: `
local ids = ARGV
if #ids == 0 then ids = redis.call('SMEMBERS', KEYS[1]) end
local out = {}
for i, id in ipairs(ids) do
  out[i] = redis.call('HMGET', KEYS[2] .. id, 'registration', 'registeredAt', 'lastHeartbeatAt', 'load')
end
return out
`
  }
).withReturnType<ReadonlyArray<Fields>>()
