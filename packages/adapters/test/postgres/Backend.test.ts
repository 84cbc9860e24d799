import { assert, describe, it, layer } from "@effect/vitest"
import * as Postgres from "@mandate/adapters/postgres"
import { Ledger, Mandate, PolicySet, PolicyStore, Principal, Runtime, Seed, UnitOfWork } from "@mandate/core"
import { ConfigProvider, Context, Duration, Effect, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import { config, describePostgres, dropSchemaOnExit, freshSchema, url } from "../utils/TestPostgres.ts"

const readConfig = (env: Record<string, string>) => Postgres.PostgresConfig.parse(ConfigProvider.fromEnvRecord(env))

describe("PostgresConfig", () => {
  it.effect("reads DATABASE_URL and takes defaults for the rest", () =>
    Effect.gen(function* () {
      const read = yield* readConfig({ DATABASE_URL: "postgres://app:s3cret@db:5432/prod" })
      assert.strictEqual(Redacted.value(read.url), "postgres://app:s3cret@db:5432/prod")
      assert.notInclude(String(read.url), "s3cret")
      assert.strictEqual(read.schema, "mandate")
      assert.strictEqual(read.poolSize, 10)
      assert.strictEqual(Duration.toMillis(read.idleTimeout), 30_000)
      assert.strictEqual(Duration.toMillis(read.connectTimeout), 10_000)
      assert.strictEqual(Duration.toMillis(read.statementTimeout), 30_000)
      assert.deepStrictEqual({ ...read, url: null }, { ...Postgres.makeConfig("x"), url: null })
    })
  )

  it.effect("reads every setting", () =>
    Effect.gen(function* () {
      const read = yield* readConfig({
        DATABASE_URL: "postgres://h/db",
        MANDATE_PG_SCHEMA: "tenant_7",
        MANDATE_PG_POOL_SIZE: "25",
        MANDATE_PG_IDLE_TIMEOUT: "2 minutes",
        MANDATE_PG_CONNECT_TIMEOUT: "1500 millis",
        MANDATE_PG_STATEMENT_TIMEOUT: "0 millis"
      })
      assert.strictEqual(read.schema, "tenant_7")
      assert.strictEqual(read.poolSize, 25)
      assert.strictEqual(Duration.toMillis(read.idleTimeout), 120_000)
      assert.strictEqual(Duration.toMillis(read.connectTimeout), 1_500)
      assert.strictEqual(Duration.toMillis(read.statementTimeout), 0)
    })
  )

  it.effect("refuses a missing URL, a schema name that would need quoting, a pool of 0 and a bad duration", () =>
    Effect.gen(function* () {
      const base = { DATABASE_URL: "postgres://h/db" }
      const failures = yield* Effect.all([
        Effect.flip(readConfig({})),
        Effect.flip(readConfig({ ...base, MANDATE_PG_SCHEMA: "my.schema" })),
        Effect.flip(readConfig({ ...base, MANDATE_PG_SCHEMA: "Mandate" })),
        Effect.flip(readConfig({ ...base, MANDATE_PG_POOL_SIZE: "0" })),
        Effect.flip(readConfig({ ...base, MANDATE_PG_POOL_SIZE: "many" })),
        Effect.flip(readConfig({ ...base, MANDATE_PG_STATEMENT_TIMEOUT: "soon" }))
      ])
      const messages = failures.map((error) => String(error))
      assert.include(messages[0], "DATABASE_URL")
      assert.include(messages[1], "MANDATE_PG_SCHEMA")
      assert.include(messages[2], "MANDATE_PG_SCHEMA")
      assert.include(messages[3], "MANDATE_PG_POOL_SIZE")
      assert.include(messages[4], "MANDATE_PG_POOL_SIZE")
      assert.include(messages[5], "MANDATE_PG_STATEMENT_TIMEOUT")
    })
  )
})

const services = Effect.gen(function* () {
  return {
    store: yield* PolicyStore,
    uow: yield* UnitOfWork,
    sql: yield* SqlClient.SqlClient
  }
})

describePostgres("Postgres.layer", () => {
  it.effect("migrates on start, then provides the services over one pool", () =>
    Effect.gen(function* () {
      const cfg = config()
      yield* dropSchemaOnExit(cfg.schema)
      const initial: PolicySet.PolicySet = { name: "from-backend", rules: [] }
      const context = yield* Layer.build(Postgres.layer(cfg, { policy: initial }))
      const { store, uow, sql } = yield* Effect.provide(services, context)
      const migrations = yield* sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM ${sql(`${cfg.schema}.${Postgres.Migrations.migrationsTable}`)}`
      assert.strictEqual(migrations[0]!.n, Object.keys(Postgres.Migrations.migrations).length)
      assert.strictEqual((yield* store.active).version, PolicySet.version(initial))
      // the unit of work and the store share the pool: a failed unit takes the store's write with it
      const set: PolicySet.PolicySet = { name: "rolled-back", rules: [] }
      yield* Effect.flip(uow.run(Effect.andThen(store.publish(set), Effect.fail("no"))))
      assert.strictEqual((yield* Effect.flip(store.get(PolicySet.version(set))))._tag, "UnknownPolicyVersion")
    })
  )

  it.effect("two schemas in one database do not see each other's data", () =>
    Effect.gen(function* () {
      const [a, b] = [config(), config()]
      yield* dropSchemaOnExit(a.schema)
      yield* dropSchemaOnExit(b.schema)
      const inA = yield* Effect.provide(services, yield* Layer.build(Postgres.layer(a)))
      const inB = yield* Effect.provide(services, yield* Layer.build(Postgres.layer(b)))
      const onlyA = yield* inA.store.activate((yield* inA.store.publish({ name: "only-in-a", rules: [] })).version)
      assert.strictEqual((yield* inA.store.active).version, onlyA.version)
      assert.strictEqual((yield* inB.store.active).version, PolicySet.version(Seed.defaultPolicySet))
      assert.deepStrictEqual(
        (yield* inB.store.list).map((s) => s.set.name),
        ["mandate-default"]
      )
      assert.strictEqual((yield* Effect.flip(inB.store.get(onlyA.version)))._tag, "UnknownPolicyVersion")
      const onlyB = yield* inB.store.publish({ name: "only-in-b", rules: [] })
      assert.isFalse((yield* inA.store.list).some((s) => s.version === onlyB.version))
    })
  )

  it.effect("two processes starting the backend at once on a fresh schema both come up and agree", () =>
    Effect.gen(function* () {
      const cfg = config()
      yield* dropSchemaOnExit(cfg.schema)
      const started = yield* Effect.all(
        [
          Layer.build(Postgres.layer(cfg, { policy: { name: "first", rules: [] } })),
          Layer.build(Postgres.layer(cfg, { policy: { name: "second", rules: [] } }))
        ],
        { concurrency: "unbounded" }
      )
      const actives = yield* Effect.all(
        started.map((context) =>
          Effect.provide(
            Effect.flatMap(PolicyStore, (s) => s.active),
            context
          )
        )
      )
      assert.strictEqual(actives[0]!.version, actives[1]!.version)
      assert.include(["first", "second"], actives[0]!.set.name)
    })
  )

  it.effect("layerConfig builds the backend from the environment", () =>
    Effect.gen(function* () {
      const schema = freshSchema()
      yield* dropSchemaOnExit(schema)
      const env = ConfigProvider.layer(
        ConfigProvider.fromEnvRecord({ DATABASE_URL: url, MANDATE_PG_SCHEMA: schema, MANDATE_PG_POOL_SIZE: "2" })
      )
      const context = yield* Layer.build(Postgres.layerConfig().pipe(Layer.provide(env)))
      const { store, sql } = yield* Effect.provide(services, context)
      assert.strictEqual((yield* store.active).set.name, "mandate-default")
      const found = yield* sql<{ readonly found: boolean }>`
        SELECT to_regclass(${`${schema}.policy_sets`}) IS NOT NULL AS found`
      assert.isTrue(found[0]!.found)
    })
  )

  it.effect("an unreachable database fails the layer with a SqlError, not a defect", () =>
    Effect.gen(function* () {
      const cfg = Postgres.makeConfig("postgres://root@127.0.0.1:1/test", {
        schema: freshSchema(),
        connectTimeout: Duration.seconds(2)
      })
      const error = yield* Effect.flip(Layer.build(Postgres.layer(cfg)))
      assert.strictEqual(error._tag, "SqlError")
    })
  )

  layer(Postgres.layerClient(config({ statementTimeout: Duration.millis(100) })))("layerClient", (it) => {
    it.effect("the statement timeout cancels a statement that runs too long", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const error = yield* Effect.flip(sql`SELECT pg_sleep(5)`)
        assert.strictEqual(error.reason._tag, "StatementTimeoutError")
        const setting = yield* sql<{ readonly t: string }>`SELECT current_setting('statement_timeout') AS t`
        assert.strictEqual(setting[0]!.t, "100ms")
      })
    )

    it.effect("the pool ignores TestClock: moving the clock by years leaves it working", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`SELECT 1`
        yield* TestClock.adjust(Duration.days(365 * 30))
        const rows = yield* sql<{ readonly one: number }>`SELECT 1 AS one`
        assert.strictEqual(rows[0]!.one, 1)
      })
    )
  })
})

describePostgres("a configured policy on Postgres", () => {
  it.live("is active after every start: a changed one is published and activated, earlier tasks keep theirs", () =>
    Effect.gen(function* () {
      const cfg = config()
      yield* dropSchemaOnExit(cfg.schema)
      const alice = Principal.make("alice", ["submitter"])
      const first: PolicySet.PolicySet = { ...Seed.defaultPolicySet, name: "first" }
      const second: PolicySet.PolicySet = {
        name: "second",
        rules: Seed.defaultPolicySet.rules.filter((r) => r.effect !== "require_approval")
      }
      const start = (policy: PolicySet.PolicySet) =>
        Effect.scoped(
          Effect.gen(function* () {
            const context = yield* Layer.build(
              Mandate.layer(Postgres.layer(cfg, { policy }), { policy, runtime: { workers: false } })
            )
            const runtime = Context.get(context, Runtime)
            const task = yield* runtime.start({ kind: "monitoring", params: { wallet: "A".repeat(60) } }, alice)
            const ledger = Context.get(context, Ledger)
            const activations = (yield* ledger.entries({ from: 0 })).filter((e) => e.kind === "policy.activated")
            return {
              active: (yield* Context.get(context, PolicyStore).active).version,
              task: (yield* runtime.get(task.id)).task,
              activations,
              earlier: (id: string) => runtime.get(id)
            }
          })
        )
      const one = yield* start(first)
      assert.strictEqual(one.active, PolicySet.version(first))
      assert.strictEqual(one.task.policyVersion, PolicySet.version(first))
      assert.lengthOf(one.activations, 0) // a new schema starts with it: nothing changed

      const two = yield* start(second)
      assert.strictEqual(two.active, PolicySet.version(second))
      assert.strictEqual(two.task.policyVersion, PolicySet.version(second))
      assert.lengthOf(two.activations, 1)
      assert.deepInclude(two.activations[0]!.payload as object, {
        version: PolicySet.version(second),
        previous: PolicySet.version(first),
        by: "configuration"
      })

      const again = yield* start(second)
      assert.lengthOf(again.activations, 1) // unchanged: no new version, no entry
      const earlier = yield* Effect.scoped(
        Effect.flatMap(Layer.build(Mandate.layer(Postgres.layer(cfg), { runtime: { workers: false } })), (context) =>
          Context.get(context, Runtime).get(one.task.id)
        )
      )
      assert.strictEqual(earlier.task.policyVersion, PolicySet.version(first))
      assert.strictEqual(earlier.plan.policyVersion, PolicySet.version(first))
    })
  )
})
