import { assert, layer } from "@effect/vitest"
import {
  layerLedgerStore,
  layerPolicyStore,
  layerTaskStore,
  layerUnitOfWork,
  makePolicyStore
} from "@mandate/adapters/postgres"
import { PolicySet, PolicyStore, Seed } from "@mandate/core"
import { suite } from "@mandate/core/conformance/policyStore"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { adminOver, failedEntryLeavesNoChange } from "../utils/policyAdminUnit.ts"
import { describePostgres, TestPostgres } from "../utils/TestPostgres.ts"

const custom: PolicySet.PolicySet = {
  name: "custom-initial",
  rules: [{ id: "all", effect: "allow", match: {} }]
}

// The server's own message, under the driver's wrappers
const rootMessage = (error: unknown): string => {
  let current = error
  while (current instanceof Error && current.cause instanceof Error) current = current.cause
  return current instanceof Error ? current.message : String(current)
}

describePostgres("PolicyStore on Postgres", () => {
  suite(
    "postgres",
    TestPostgres.layerWith((options) => layerPolicyStore(options))
  )
  suite(
    "postgres, custom initial set",
    TestPostgres.layerWith((options) => layerPolicyStore({ ...options, initial: custom })),
    { initial: custom }
  )

  layer(TestPostgres.layer)("first start and restarts", (it) => {
    it.effect("a restart keeps the active version, whatever initial set it is given", () =>
      Effect.gen(function* () {
        const { schema } = yield* TestPostgres
        const first = yield* makePolicyStore({ schema })
        assert.strictEqual((yield* first.active).version, PolicySet.version(Seed.defaultPolicySet))
        const chosen = yield* first.publish({ name: "chosen", rules: [] })
        yield* first.activate(chosen.version)
        const restarted = yield* makePolicyStore({ schema, initial: custom })
        assert.strictEqual((yield* restarted.active).version, chosen.version)
        // the other initial set was not published either
        assert.isFalse((yield* restarted.list).some((s) => s.set.name === custom.name))
      })
    )
  })

  layer(TestPostgres.layer)("concurrent first starts", (it) => {
    it.effect("agree on one active set", () =>
      Effect.gen(function* () {
        const { schema } = yield* TestPostgres
        const initials = Array.from({ length: 10 }, (_, i): PolicySet.PolicySet => ({ name: `start-${i}`, rules: [] }))
        const stores = yield* Effect.all(
          initials.map((initial) => makePolicyStore({ schema, initial })),
          { concurrency: "unbounded" }
        )
        const actives = yield* Effect.all(stores.map((s) => s.active))
        assert.strictEqual(new Set(actives.map((a) => a.version)).size, 1)
        const listed = yield* stores[0]!.list
        assert.strictEqual(listed.filter((s) => s.active).length, 1)
        // only the winner's set was published: the others saw an active set and left the store alone
        assert.deepStrictEqual(
          listed.map((s) => s.version),
          [actives[0]!.version]
        )
      })
    )
  })

  layer(TestPostgres.layerWith((options) => layerPolicyStore(options)))("stored data", (it) => {
    it.effect("the database refuses to change, delete or truncate a published set", () =>
      Effect.gen(function* () {
        const store = yield* PolicyStore
        const { schema } = yield* TestPostgres
        const sql = yield* SqlClient.SqlClient
        const table = sql(`${schema}.policy_sets`)
        const stored = yield* store.publish({ name: "immutable", rules: [] })
        const refusals = yield* Effect.all([
          Effect.flip(sql`UPDATE ${table} SET policy = '{}'::jsonb WHERE version = ${stored.version}`),
          Effect.flip(sql`DELETE FROM ${table} WHERE version = ${stored.version}`),
          Effect.flip(sql`TRUNCATE ${table} CASCADE`)
        ])
        for (const error of refusals) {
          assert.strictEqual(error.reason._tag, "ConstraintError")
          assert.include(rootMessage(error), "published policy sets are immutable")
        }
        assert.deepStrictEqual((yield* store.get(stored.version)).set, stored.set)
      })
    )

    it.effect("a row that does not decode fails the read with PolicyStoreError, not a defect", () =>
      Effect.gen(function* () {
        const store = yield* PolicyStore
        const { schema } = yield* TestPostgres
        const sql = yield* SqlClient.SqlClient
        const table = sql(`${schema}.policy_sets`)
        const stored = yield* store.publish({ name: "to-corrupt", rules: [] })
        // what only a superuser could do: switch the guard off and rewrite the row
        yield* sql`ALTER TABLE ${table} DISABLE TRIGGER policy_sets_immutable`
        yield* sql`UPDATE ${table} SET policy = '{"name": 5, "rules": "x"}'::jsonb WHERE version = ${stored.version}`
        yield* sql`ALTER TABLE ${table} ENABLE TRIGGER policy_sets_immutable`
        // a store that has not read the row before (another process, or after a restart)
        const fresh = yield* makePolicyStore({ schema })
        const error = yield* Effect.flip(fresh.get(stored.version))
        assert.strictEqual(error._tag === "PolicyStoreError" && error.operation, "get")
        const listError = yield* Effect.flip(fresh.list)
        assert.strictEqual(listError._tag === "PolicyStoreError" && listError.operation, "list")
        // the other versions are still readable
        assert.strictEqual((yield* fresh.get(PolicySet.version(Seed.defaultPolicySet))).set.name, "mandate-default")
      })
    )

    it.effect("a bad schema name fails the layer with InvalidInput at $.schema", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(makePolicyStore({ schema: 'x"; DROP TABLE y; --' }))
        assert.strictEqual(error._tag, "InvalidInput")
        assert.strictEqual((error as { path: string }).path, "$.schema")
      })
    )

    it.effect("a database failure is a PolicyStoreError naming the operation", () =>
      Effect.gen(function* () {
        // a schema without the tables: every statement fails in the driver
        const error = yield* Effect.flip(makePolicyStore({ schema: "mandate_test_missing_schema" }))
        assert.strictEqual(error._tag, "PolicyStoreError")
        assert.strictEqual((error as { operation: string }).operation, "initialize")
      })
    )
  })

  const adminLayer = TestPostgres.layerWith((options) =>
    adminOver({
      policyStore: layerPolicyStore(options),
      ledgerStore: layerLedgerStore(options),
      taskStore: layerTaskStore(options),
      unitOfWork: layerUnitOfWork
    })
  )
  layer(adminLayer)("policy administration in one transaction", (it) => {
    it.effect("a failing ledger append leaves neither the change nor its entry behind", () => failedEntryLeavesNoChange)
  })
})
