/**
 * The Postgres backend: its configuration, the one connection pool all Postgres services share, and the layer
 * that migrates the schema and builds the services over that pool.
 *
 * Build the backend once, at the edge of the application (`layer(config)` or `layerConfig()` from the
 * environment). The per-service layers (`layerPolicyStore`, `layerTaskStore`, `layerAgents`, `layerLedgerStore`,
 * `layerUnitOfWork`) require only the abstract `SqlClient`, `layerQueue` the `PgClient` (for `LISTEN`); they never open a pool or
 * read configuration, so every service built here runs on the same pool and, inside `UnitOfWork.run`, in the
 * same transaction. The queue holds one connection of the pool for its `LISTEN` once a worker subscribes. They also accept a client the host application built
 * itself, as long as it leaves column and JSON names untransformed (no `transformResultNames`,
 * `transformQueryNames` or `transformJson`): rows are decoded by their column names as written in the SQL.
 *
 * @since 0.1.0
 */
import { PgClient } from "@effect/sql-pg"
import type {
  Agents,
  InvalidInput,
  LedgerStore,
  PolicySet,
  PolicyStore,
  PolicyStoreError,
  Queue,
  TaskStore,
  UnitOfWork,
  WebhookStore
} from "@mandate/core"
import { Clock, Config, Duration, Effect, Layer, Redacted, Schema, Stream } from "effect"
import { type Migrator, SqlClient, SqlError } from "effect/sql"
import { type AgentsOptions, layerAgents } from "./Agents.ts"
import { type Deferred, deferredKey, deferredOf } from "./internal/transaction.ts"
import { layerLedgerStore } from "./Ledger.ts"
import * as Migrations from "./Migrations.ts"
import { defaultSchema, SchemaName } from "./Options.ts"
import { layerPolicyStore } from "./PolicyStore.ts"
import { layerQueue, type QueueOptions } from "./Queue.ts"
import { layerTaskStore } from "./TaskStore.ts"
import { layerUnitOfWork } from "./UnitOfWork.ts"
import { layerWebhookStore } from "./WebhookStore.ts"

/**
 * Everything needed to reach the database and find Mandate's tables in it.
 *
 * @category models
 * @since 0.1.0
 */
export interface PostgresConfig {
  /** `postgres://user:password@host:port/database?sslmode=…` */
  readonly url: Redacted.Redacted
  /** The Postgres schema holding Mandate's tables, so several applications can share one database. */
  readonly schema: string
  /** Most connections the pool opens. */
  readonly poolSize: number
  /** An idle connection is closed after this long. */
  readonly idleTimeout: Duration.Duration
  /** Opening a connection fails after this long. */
  readonly connectTimeout: Duration.Duration
  /** The server cancels a statement running longer than this; zero disables the limit. */
  readonly statementTimeout: Duration.Duration
}

/**
 * The defaults of every setting but the URL.
 *
 * @category constants
 * @since 0.1.0
 */
export const defaults: Omit<PostgresConfig, "url"> = {
  schema: defaultSchema,
  poolSize: 10,
  idleTimeout: Duration.seconds(30),
  connectTimeout: Duration.seconds(10),
  statementTimeout: Duration.seconds(30)
}

/**
 * `PostgresConfig` read from the environment (or any `ConfigProvider`): `DATABASE_URL` (required),
 * `MANDATE_PG_SCHEMA`, `MANDATE_PG_POOL_SIZE`, `MANDATE_PG_IDLE_TIMEOUT`, `MANDATE_PG_CONNECT_TIMEOUT`,
 * `MANDATE_PG_STATEMENT_TIMEOUT` (durations such as `30 seconds` or `500 millis`).
 *
 * @category config
 * @since 0.1.0
 */
export const PostgresConfig: Config.Config<PostgresConfig> = Config.all({
  url: Config.Redacted("DATABASE_URL"),
  schema: Config.schema(SchemaName, "MANDATE_PG_SCHEMA").pipe(Config.withDefault(defaults.schema)),
  poolSize: Config.schema(
    Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1000 })),
    "MANDATE_PG_POOL_SIZE"
  ).pipe(Config.withDefault(defaults.poolSize)),
  idleTimeout: Config.Duration("MANDATE_PG_IDLE_TIMEOUT").pipe(Config.withDefault(defaults.idleTimeout)),
  connectTimeout: Config.Duration("MANDATE_PG_CONNECT_TIMEOUT").pipe(Config.withDefault(defaults.connectTimeout)),
  statementTimeout: Config.Duration("MANDATE_PG_STATEMENT_TIMEOUT").pipe(Config.withDefault(defaults.statementTimeout))
})

/**
 * A `PostgresConfig` from a URL, with the defaults for every setting not overridden.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeConfig = (
  url: string | Redacted.Redacted,
  overrides?: Partial<Omit<PostgresConfig, "url">>
): PostgresConfig => ({
  ...defaults,
  ...overrides,
  url: typeof url === "string" ? Redacted.make(url) : url
})

// statement_timeout in milliseconds, "0" meaning none (an infinite duration included)
const statementTimeoutSetting = (timeout: Duration.Duration): string => {
  const millis = Duration.toMillis(timeout)
  return Number.isFinite(millis) && millis > 0 ? String(Math.max(1, Math.round(millis))) : "0"
}

// Transactions as `PgClient` runs them, with two round trips saved:
// - a savepoint is released with its transaction: a nested transaction that succeeded leaves its savepoint in
//   place (Postgres releases it at COMMIT, and a later `ROLLBACK TO` or `SAVEPOINT` of the same name refers to the
//   newest) instead of spending a round trip on `RELEASE SAVEPOINT`;
// - BEGIN and SAVEPOINT are sent just before the first statement that needs them, so a transaction that ran
//   nothing sends neither BEGIN nor COMMIT, and a unit whose whole work is one statement may run it alone
//   (`runAlone`: atomic by itself, no BEGIN, no COMMIT).
// Everything else (after-commit callbacks, the nested-transaction semaphore, spans) is `effect/sql`'s own.
const committedRolledBack = new SqlError.SqlError({
  reason: new SqlError.UnknownError({
    cause: new Error("COMMIT rolled back an aborted transaction"),
    message: "PgClient: COMMIT rolled back an aborted transaction",
    operation: "commit"
  })
})
const statementAfterAlone = new SqlError.SqlError({
  reason: new SqlError.UnknownError({
    cause: new Error("A statement followed the one a unit ran alone"),
    message: "PgClient: a statement followed the one a unit ran alone, outside its transaction",
    operation: "execute"
  })
})

type Connection = SqlClient.TransactionConnection.Service[0]

const keepingSavepoints = (client: PgClient.PgClient): PgClient.PgClient => {
  const control = (conn: Connection, statement: string) => Effect.asVoid(conn.execute(statement, [], undefined))
  // What the transaction owes before `inner` runs a statement
  const settle = (inner: Connection, deferred: Deferred): Effect.Effect<void, SqlError.SqlError> =>
    Effect.suspend(() => {
      if (deferred.alone === "done") return Effect.fail(statementAfterAlone)
      if (deferred.begin !== undefined && deferred.alone === "next" && deferred.savepoints.length === 0) {
        deferred.begin = undefined
        deferred.alone = "done"
        return Effect.void
      }
      deferred.alone = "no"
      const owed: Array<Effect.Effect<void, SqlError.SqlError>> = []
      if (deferred.begin !== undefined) {
        const statement = deferred.begin
        owed.push(
          deferred.beginCustom
            ? Effect.asVoid(inner.executeUnprepared(statement, [], undefined))
            : control(inner, statement)
        )
        deferred.begin = undefined
      }
      for (const id of deferred.savepoints) owed.push(control(inner, `SAVEPOINT effect_sql_${id}`))
      deferred.savepoints = []
      return owed.length === 0 ? Effect.void : owed.length === 1 ? owed[0]! : Effect.all(owed, { discard: true })
    })
  // The reserved connection, sending what is owed before each statement
  const deferring = (inner: Connection): Connection => {
    const deferred: Deferred = { begin: undefined, beginCustom: false, savepoints: [], alone: "no" }
    const before = settle(inner, deferred)
    const conn: Connection = {
      execute: (sql, params, transformRows) => Effect.andThen(before, inner.execute(sql, params, transformRows)),
      executeRaw: (sql, params) => Effect.andThen(before, inner.executeRaw(sql, params)),
      executeStream: (sql, params, transformRows) =>
        Stream.unwrap(Effect.as(before, inner.executeStream(sql, params, transformRows))),
      executeValues: (sql, params) => Effect.andThen(before, inner.executeValues(sql, params)),
      executeValuesUnprepared: (sql, params) => Effect.andThen(before, inner.executeValuesUnprepared(sql, params)),
      executeUnprepared: (sql, params, transformRows) =>
        Effect.andThen(before, inner.executeUnprepared(sql, params, transformRows))
    }
    return Object.assign(Object.create(inner as object) as Connection, conn, { [deferredKey]: deferred, inner })
  }
  const innerOf = (conn: Connection) => (conn as unknown as { readonly inner: Connection }).inner
  const withTransaction = SqlClient.makeWithTransaction({
    transactionService: client.transactionService,
    spanAttributes: [["db.system.name", "postgresql"]],
    acquireConnection: (restore) => Effect.map(restore(client.reserve), deferring),
    begin: (conn, statement) =>
      Effect.sync(() => {
        const deferred = deferredOf(conn)!
        deferred.begin = statement ?? "BEGIN"
        deferred.beginCustom = statement !== undefined
        deferred.savepoints = []
        deferred.alone = "no"
      }),
    savepoint: (conn, id) =>
      Effect.sync(() => {
        deferredOf(conn)!.savepoints.push(id)
      }),
    commit: (conn) => {
      const deferred = deferredOf(conn)!
      // Nothing was sent (or one statement ran alone): nothing to commit
      if (deferred.begin !== undefined || deferred.alone === "done") {
        deferred.begin = undefined
        deferred.alone = "no"
        return Effect.void
      }
      return Effect.flatMap(innerOf(conn).executeRaw("COMMIT", []), (result) =>
        (result as { readonly command?: string } | undefined)?.command === "ROLLBACK"
          ? Effect.fail(committedRolledBack)
          : Effect.void
      )
    },
    rollback: (conn) => {
      const deferred = deferredOf(conn)!
      if (deferred.begin !== undefined || deferred.alone === "done") {
        deferred.begin = undefined
        deferred.alone = "no"
        return Effect.void
      }
      return control(innerOf(conn), "ROLLBACK")
    },
    rollbackSavepoint: (conn, id) => {
      const deferred = deferredOf(conn)!
      const neverSent = deferred.savepoints.includes(id)
      // Savepoints taken inside this one and not sent yet go with it
      deferred.savepoints = deferred.savepoints.filter((taken) => taken < id)
      // A savepoint never sent has nothing to roll back: nothing ran after it
      return neverSent ? Effect.void : control(innerOf(conn), `ROLLBACK TO SAVEPOINT effect_sql_${id}`)
    }
  })
  // The client is the `sql` template function with its methods as own properties: a new function with the same
  // properties and this `withTransaction`
  const call = client as unknown as (...args: ReadonlyArray<unknown>) => unknown
  const wrapped = Object.assign((...args: ReadonlyArray<unknown>) => call(...args), client, { withTransaction })
  return Object.assign(wrapped, { safe: wrapped }) as unknown as PgClient.PgClient
}

/**
 * The connection pool alone: `PgClient` and the abstract `SqlClient` over one pool. The statement timeout is
 * sent in each connection's startup packet, so it holds on every connection without an extra round trip. A
 * nested transaction (a unit of work inside another) that succeeds leaves its savepoint for COMMIT to release,
 * saving the `RELEASE SAVEPOINT` round trip; failing, it rolls back to it as usual.
 *
 * The pool keeps time with the real clock even when a `TestClock` is in context: its idle timers are
 * infrastructure, and a test that moves the clock by a year must not make the pool replay a year of timers.
 * The services over the pool still read `Clock` per call, so tests drive them as usual.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerClient = (
  config: PostgresConfig
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, SqlError.SqlError> =>
  PgClient.layerFrom(
    Effect.map(
      PgClient.make({
        url: config.url,
        maxConnections: config.poolSize,
        idleTimeout: config.idleTimeout,
        connectTimeout: config.connectTimeout,
        applicationName: "mandate",
        startupParameters: { statement_timeout: statementTimeoutSetting(config.statementTimeout) }
      }),
      keepingSavepoints
    )
  ).pipe(Layer.provide(Layer.succeed(Clock.Clock, Clock.Clock.defaultValue())))

/**
 * What the backend's layer builds besides the pool.
 *
 * @category models
 * @since 0.1.0
 */
export interface BackendOptions {
  /**
   * The policy set a new schema starts with (default: the seed policy). To make a set active on an existing
   * schema too, pass it to `Mandate.layer` (`policy`), which publishes and activates it when it differs.
   */
  readonly policy?: PolicySet.PolicySet | undefined
  /** The queue's backoff, requeue interval and retention of finished jobs (the schema is the backend's). */
  readonly queue?: Omit<QueueOptions, "schema"> | undefined
  /** The agent registry's status thresholds. */
  readonly agents?: Omit<AgentsOptions, "schema"> | undefined
}

/**
 * Everything the Postgres backend provides.
 *
 * @category models
 * @since 0.1.0
 */
export type PostgresServices =
  | PolicyStore
  | TaskStore
  | Queue
  | Agents
  | LedgerStore
  | UnitOfWork
  | WebhookStore
  | PgClient.PgClient
  | SqlClient.SqlClient

/**
 * Errors building the backend can fail with: the database unreachable or refusing, a migration failing, a bad
 * schema name, the initial policy set not stored.
 *
 * @category models
 * @since 0.1.0
 */
export type PostgresStartError = SqlError.SqlError | Migrator.MigrationError | InvalidInput | PolicyStoreError

/**
 * The whole Postgres backend: one pool, the migrations run on start (before any service is built), then every
 * Postgres service over that pool, and the transactional unit of work. It provides the stores under services
 * that need more than a database: build `Policy.layer` over `PolicyStore`, and `Ledger.layer({ signingKey })`
 * over `LedgerStore` with an `Anchor`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  config: PostgresConfig,
  options?: BackendOptions
): Layer.Layer<PostgresServices, PostgresStartError> => {
  const postgres = { schema: config.schema }
  return Layer.mergeAll(
    layerPolicyStore({ ...postgres, initial: options?.policy }),
    layerTaskStore(postgres),
    layerQueue({ ...options?.queue, ...postgres }),
    layerAgents({ ...options?.agents, ...postgres }),
    layerLedgerStore(postgres),
    layerWebhookStore(postgres),
    layerUnitOfWork
  ).pipe(Layer.provide(Migrations.layer(postgres)), Layer.provideMerge(layerClient(config)))
}

/**
 * The whole Postgres backend configured from the environment (`PostgresConfig`, or another `Config` of it).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (
  config: Config.Config<PostgresConfig> = PostgresConfig,
  options?: BackendOptions
): Layer.Layer<PostgresServices, PostgresStartError | Config.ConfigError> =>
  Layer.unwrap(
    Effect.gen(function* () {
      return layer(yield* config, options)
    })
  )
