import { assert, layer } from "@effect/vitest"
import { Migrations } from "@mandate/adapters/postgres"
import { Effect, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { describePostgres, dropSchemaOnExit, freshSchema, TestPostgres } from "../utils/TestPostgres.ts"

// Every shipped migration as the migrator reports it: [id, name], in id order
const shipped = Object.keys(Migrations.migrations)
  .map((key) => [Number(key.slice(0, key.indexOf("_"))), key.slice(key.indexOf("_") + 1)] as const)
  .sort(([a], [b]) => a - b)

const Recorded = Schema.Struct({ migration_id: Schema.Int, name: Schema.String })

const recorded = (schema: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`SELECT migration_id, name FROM ${sql(`${schema}.${Migrations.migrationsTable}`)} ORDER BY migration_id`.pipe(
      Effect.flatMap(Schema.decodeUnknownEffect(Schema.Array(Recorded))),
      Effect.map((rows) => rows.map((row) => [row.migration_id, row.name] as const))
    )
  )

const exists = (qualifiedName: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ readonly found: boolean }>`SELECT to_regclass(${qualifiedName}) IS NOT NULL AS found`,
      (rows) => rows[0]!.found
    )
  )

describePostgres("Migrations", () => {
  layer(TestPostgres.otherClient())("on a fresh schema", (it) => {
    it.effect("apply every migration once, in id order, recorded in the schema; a second run applies nothing", () =>
      Effect.gen(function* () {
        const schema = freshSchema()
        yield* dropSchemaOnExit(schema)
        assert.isAbove(shipped.length, 0)
        assert.deepStrictEqual(yield* Migrations.run({ schema }), shipped)
        assert.deepStrictEqual(yield* recorded(schema), shipped)
        assert.deepStrictEqual(yield* Migrations.run({ schema }), [])
        assert.deepStrictEqual(yield* recorded(schema), shipped)
        assert.isTrue(yield* exists(`${schema}.policy_sets`))
        assert.isTrue(yield* exists(`${schema}.policy_active`))
      })
    )

    it.effect("two processes migrating one schema at once apply each migration exactly once", () =>
      Effect.gen(function* () {
        const schema = freshSchema()
        yield* dropSchemaOnExit(schema)
        // three runs on each of two independent pools, all started together
        const runs = Array.from({ length: 6 }, (_, i) =>
          i % 2 === 0
            ? Migrations.run({ schema })
            : Migrations.run({ schema }).pipe(Effect.provide(TestPostgres.otherClient()))
        )
        const applied = (yield* Effect.all(runs, { concurrency: "unbounded" })).flat()
        assert.deepStrictEqual(
          [...applied].sort(([a], [b]) => a - b),
          shipped
        )
        assert.deepStrictEqual(yield* recorded(schema), shipped)
      })
    )

    it.effect("leave no search_path behind on the pool's connections", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const schema = freshSchema()
        yield* dropSchemaOnExit(schema)
        yield* Migrations.run({ schema })
        // the pool has at most 3 connections: sample more statements than that, concurrently
        const paths = yield* Effect.all(
          Array.from({ length: 6 }, () =>
            Effect.map(sql<{ readonly path: string }>`SELECT current_setting('search_path') AS path`, (r) => r[0]!.path)
          ),
          { concurrency: "unbounded" }
        )
        for (const path of paths) assert.notInclude(path, schema)
        assert.isFalse(yield* exists("policy_sets"))
      })
    )

    it.effect("a failing migration rolls the whole run back, its record included", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const schema = freshSchema()
        yield* dropSchemaOnExit(schema)
        yield* sql`CREATE SCHEMA ${sql(schema)}`
        // a table in the way of migration 0001
        yield* sql`CREATE TABLE ${sql(`${schema}.policy_sets`)} (unrelated int)`
        const error = yield* Effect.flip(Migrations.run({ schema }))
        assert.strictEqual(error._tag, "MigrationError")
        assert.isFalse(yield* exists(`${schema}.${Migrations.migrationsTable}`))
        assert.isFalse(yield* exists(`${schema}.policy_active`))
      })
    )

    it.effect("a bad schema name is InvalidInput at $.schema, and nothing is created", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(Migrations.run({ schema: "Robert'); DROP TABLE students;--" }))
        assert.strictEqual(error._tag, "InvalidInput")
        assert.strictEqual(error._tag === "InvalidInput" && error.path, "$.schema")
      })
    )
  })
})
