/**
 * `Agents` on Postgres: the registry in `agents` (migration 0003).
 *
 * Heartbeats are stamped with the database's clock and each read selects that clock too, so the status
 * (`agentStatusAt` from core, with the layer's thresholds) is the same whichever host asks; it is never stored.
 * Registration is one upsert, so concurrent registrations of one id leave one agent, and a re-registration keeps
 * the original registration time. Inputs are checked with core's schemas (`InvalidInput` by JSON path); rows are
 * decoded with them (`AgentsStoreError` for one that does not decode).
 *
 * @since 0.1.0
 */
import {
  type Agent,
  AgentId,
  AgentLoad,
  AgentNotFound,
  AgentQuery,
  AgentRegistration,
  Agents,
  type AgentsMemoryOptions,
  AgentsStoreError,
  agentStatusAt,
  decode,
  type InvalidInput,
  PoolName,
  statusThresholds,
  summarizePools,
  uuidv7
} from "@mandate/core"
import { Clock, Effect, Layer, Option, Schema } from "effect"
import { SqlClient, SqlSchema } from "effect/sql"
import { type PostgresOptions, resolveSchema } from "./Options.ts"

/**
 * Options of the Postgres agent registry: the schema and the status thresholds.
 *
 * @category models
 * @since 0.1.0
 */
export interface AgentsOptions extends PostgresOptions, AgentsMemoryOptions {}

// The database's clock in epoch ms, as an init plan: computed once per statement, not once per row
const NOW = "(SELECT floor(extract(epoch FROM statement_timestamp()) * 1000)::float8)"

const AgentRow = Schema.Struct({
  id: AgentId,
  pool: PoolName,
  capabilities: Schema.Array(Schema.String),
  labels: Schema.Record(Schema.String, Schema.String),
  registered_at: Schema.Number,
  last_heartbeat_at: Schema.Number,
  load: Schema.NullOr(Schema.Number),
  now: Schema.Number
})
type AgentRow = typeof AgentRow.Type

const RegistrationDecode = decode(AgentRegistration)
const LoadDecode = decode(AgentLoad, "$.load")
const QueryDecode = decode(AgentQuery)

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

/**
 * Builds the Postgres agent registry over the `SqlClient` in context.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeAgents = Effect.fnUntraced(function* (options?: AgentsOptions) {
  const sql = yield* SqlClient.SqlClient
  const schema = yield* resolveSchema(options)
  const limits = statusThresholds(options)
  const agents = sql(`${schema}.agents`)
  const now = sql.literal(NOW)
  const columns = sql.literal("id, pool, capabilities, labels, registered_at, last_heartbeat_at, load")

  const storeError = (operation: string) => (cause: unknown) => new AgentsStoreError({ operation, cause })

  const toAgent = (row: AgentRow): Agent => ({
    id: row.id,
    pool: row.pool,
    capabilities: row.capabilities,
    labels: row.labels,
    status: agentStatusAt(row.last_heartbeat_at, row.now, limits),
    registeredAt: row.registered_at,
    lastHeartbeatAt: row.last_heartbeat_at,
    ...(row.load === null ? {} : { load: row.load })
  })

  const one = (operation: string, statement: Effect.Effect<ReadonlyArray<unknown>, unknown>) =>
    SqlSchema.findOneOption({ Request: Schema.Void, Result: AgentRow, execute: () => statement })(undefined).pipe(
      Effect.mapError(storeError(operation))
    )
  const all = (operation: string, statement: Effect.Effect<ReadonlyArray<unknown>, unknown>) =>
    SqlSchema.findAll({ Request: Schema.Void, Result: AgentRow, execute: () => statement })(undefined).pipe(
      Effect.mapError(storeError(operation))
    )

  const register = Effect.fn("Agents.register")(function* (registration: AgentRegistration) {
    const r = yield* RegistrationDecode(registration)
    const id = r.id ?? AgentId.make(`agent_${uuidv7(yield* Clock.currentTimeMillis)}`)
    const found = yield* one(
      "register",
      sql`INSERT INTO ${agents} (id, pool, capabilities, labels, registered_at, last_heartbeat_at, load)
          VALUES (${id}, ${r.pool}, ${JSON.stringify(r.capabilities ?? [])}::json, ${JSON.stringify(r.labels ?? {})}::json,
                  ${now}, ${now}, NULL)
          ON CONFLICT (id) DO UPDATE
          SET pool = excluded.pool, capabilities = excluded.capabilities, labels = excluded.labels,
              last_heartbeat_at = excluded.last_heartbeat_at, load = NULL
          RETURNING ${columns}, ${now} AS now`
    )
    if (Option.isNone(found)) return yield* storeError("register")(new Error(`Agent ${id} was not stored`))
    return toAgent(found.value)
  })

  const heartbeat = Effect.fn("Agents.heartbeat")(function* (agentId: AgentId, load?: number) {
    const value = load === undefined ? null : yield* LoadDecode(load)
    const found = yield* one(
      "heartbeat",
      sql`UPDATE ${agents} SET last_heartbeat_at = ${now}, load = ${value}
          WHERE id = ${agentId}
          RETURNING ${columns}, ${now} AS now`
    )
    if (Option.isNone(found)) return yield* new AgentNotFound({ agentId })
    return toAgent(found.value)
  })

  const get = Effect.fn("Agents.get")(function* (agentId: AgentId) {
    const found = yield* one("get", sql`SELECT ${columns}, ${now} AS now FROM ${agents} WHERE id = ${agentId}`)
    if (Option.isNone(found)) return yield* new AgentNotFound({ agentId })
    return toAgent(found.value)
  })

  const list = Effect.fn("Agents.list")(function* (query?: AgentQuery) {
    const q = yield* QueryDecode(query ?? {})
    const where = q.pool === undefined ? sql.literal("true") : sql`pool = ${q.pool}`
    // Status is derived from the clock, so it is filtered after reading (the registry is small)
    const found = yield* all("list", sql`SELECT ${columns}, ${now} AS now FROM ${agents} WHERE ${where}`)
    return found
      .map(toAgent)
      .filter((agent) => q.status === undefined || agent.status === q.status)
      .sort((a, b) => byName(a.id, b.id))
  })

  const pools = all("pools", sql`SELECT ${columns}, ${now} AS now FROM ${agents}`).pipe(
    Effect.map((rows) => summarizePools(rows.map(toAgent))),
    Effect.withSpan("Agents.pools")
  )

  const deregister = Effect.fn("Agents.deregister")(function* (agentId: AgentId) {
    const deleted = yield* sql`DELETE FROM ${agents} WHERE id = ${agentId} RETURNING id`.pipe(
      Effect.mapError(storeError("deregister"))
    )
    if (deleted.length === 0) return yield* new AgentNotFound({ agentId })
  })

  return Agents.of({ register, heartbeat, get, list, pools, deregister })
})

/**
 * The Postgres agent registry as a layer over the shared `SqlClient` (see `makeAgents`).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerAgents = (options?: AgentsOptions): Layer.Layer<Agents, InvalidInput, SqlClient.SqlClient> =>
  Layer.effect(Agents, makeAgents(options))
