import { assert, layer } from "@effect/vitest"
import {
  layerLedgerStore,
  layerPolicyStore,
  layerQueue,
  layerTaskStore,
  layerUnitOfWork
} from "@mandate/adapters/postgres"
import { type PolicySet, PolicyStore, type PolicyVersion, UnitOfWork } from "@mandate/core"
import { suite } from "@mandate/core/conformance/unitOfWork"
import { Cause, Context, Deferred, Effect, Exit, Fiber, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { describePostgres, TestPostgres } from "../utils/TestPostgres.ts"

const uniqueSet = (label: string): PolicySet.PolicySet => ({ name: `${label}-${crypto.randomUUID()}`, rules: [] })

class Boom {
  readonly _tag = "Boom"
}

// Reads through a second pool: what another process would see
const outsider = Effect.gen(function* () {
  const { schema } = yield* TestPostgres
  const context = yield* Layer.build(TestPostgres.otherClient())
  const sql = Context.get(context, SqlClient.SqlClient)
  return {
    published: (version: string) =>
      Effect.map(
        sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM ${sql(`${schema}.policy_sets`)}
                                     WHERE version = ${version}`,
        (rows) => rows[0]!.n === 1
      ).pipe(Effect.orDie),
    active: Effect.map(
      sql<{ readonly version: string | null }>`SELECT version FROM ${sql(`${schema}.policy_active`)}`,
      (rows) => rows[0]!.version
    ).pipe(Effect.orDie)
  }
})

describePostgres("UnitOfWork on Postgres", () => {
  suite(
    "postgres",
    TestPostgres.layerWith((options) =>
      Layer.mergeAll(layerUnitOfWork, layerTaskStore(options), layerQueue(options), layerLedgerStore(options))
    )
  )

  layer(TestPostgres.layerWith((options) => Layer.mergeAll(layerPolicyStore(options), layerUnitOfWork)))(
    "a unit is one transaction",
    (it) => {
      it.effect("two writes in a unit commit together", () =>
        Effect.gen(function* () {
          const store = yield* PolicyStore
          const uow = yield* UnitOfWork
          const other = yield* outsider
          const set = uniqueSet("commit")
          const activated = yield* uow.run(
            Effect.gen(function* () {
              const published = yield* store.publish(set)
              return yield* store.activate(published.version)
            })
          )
          assert.isTrue(yield* other.published(activated.version))
          assert.strictEqual(yield* other.active, activated.version)
        })
      )

      it.effect("two writes in a unit roll back together when it fails", () =>
        Effect.gen(function* () {
          const store = yield* PolicyStore
          const uow = yield* UnitOfWork
          const before = (yield* store.active).version
          const set = uniqueSet("rollback")
          let written: PolicyVersion | undefined
          const error = yield* Effect.flip(
            uow.run(
              Effect.gen(function* () {
                const published = yield* store.publish(set)
                yield* store.activate(published.version)
                written = published.version
                // inside the unit its own writes are visible
                assert.strictEqual((yield* store.active).version, published.version)
                return yield* Effect.fail(new Boom())
              })
            )
          )
          assert.instanceOf(error, Boom)
          assert.isDefined(written)
          assert.strictEqual((yield* store.active).version, before)
          assert.strictEqual((yield* Effect.flip(store.get(written!)))._tag, "UnknownPolicyVersion")
        })
      )

      it.effect("other connections see nothing of a unit until it commits", () =>
        Effect.gen(function* () {
          const store = yield* PolicyStore
          const uow = yield* UnitOfWork
          const other = yield* outsider
          const written = yield* Deferred.make<PolicyVersion>()
          const release = yield* Deferred.make<void>()
          const unit = yield* Effect.forkChild(
            uow.run(
              Effect.gen(function* () {
                const published = yield* store.publish(uniqueSet("isolated"))
                yield* Deferred.succeed(written, published.version)
                yield* Deferred.await(release)
              })
            )
          )
          const version = yield* Deferred.await(written)
          assert.isFalse(yield* other.published(version))
          yield* Deferred.succeed(release, undefined)
          yield* Fiber.join(unit)
          assert.isTrue(yield* other.published(version))
        })
      )

      it.effect("an interrupted unit rolls back", () =>
        Effect.gen(function* () {
          const store = yield* PolicyStore
          const uow = yield* UnitOfWork
          const other = yield* outsider
          const written = yield* Deferred.make<PolicyVersion>()
          const unit = yield* Effect.forkChild(
            uow.run(
              Effect.gen(function* () {
                const published = yield* store.publish(uniqueSet("interrupted"))
                yield* Deferred.succeed(written, published.version)
                return yield* Effect.never
              })
            )
          )
          const version = yield* Deferred.await(written)
          yield* Fiber.interrupt(unit)
          assert.isFalse(yield* other.published(version))
          assert.strictEqual((yield* Effect.flip(store.get(version)))._tag, "UnknownPolicyVersion")
        })
      )

      it.effect("a unit inside a unit is a savepoint: its failure undoes only its own writes", () =>
        Effect.gen(function* () {
          const store = yield* PolicyStore
          const uow = yield* UnitOfWork
          let inner: PolicyVersion | undefined
          const outer = yield* uow.run(
            Effect.gen(function* () {
              const outer = yield* store.publish(uniqueSet("outer"))
              const failed = yield* Effect.flip(
                uow.run(
                  Effect.gen(function* () {
                    inner = (yield* store.publish(uniqueSet("inner"))).version
                    return yield* Effect.fail(new Boom())
                  })
                )
              )
              assert.instanceOf(failed, Boom)
              return outer.version
            })
          )
          assert.strictEqual((yield* store.get(outer)).version, outer)
          assert.strictEqual((yield* Effect.flip(store.get(inner!)))._tag, "UnknownPolicyVersion")
        })
      )

      it.effect("savepoints left to COMMIT: a failed unit after a committed sibling undoes only its own writes", () =>
        Effect.gen(function* () {
          const store = yield* PolicyStore
          const uow = yield* UnitOfWork
          // A nested unit that succeeded keeps its savepoint (released by COMMIT); the next sibling's savepoint has
          // the same name, and its rollback must go back to it, not to the older one
          const publish = (label: string) => Effect.map(store.publish(uniqueSet(label)), (p) => p.version)
          const [first, second, third, deeper] = yield* uow.run(
            Effect.gen(function* () {
              const first = yield* uow.run(publish("first"))
              let second: PolicyVersion | undefined
              yield* Effect.flip(
                uow.run(
                  Effect.gen(function* () {
                    second = yield* publish("second")
                    return yield* Effect.fail(new Boom())
                  })
                )
              )
              const third = yield* uow.run(publish("third"))
              let deeper: PolicyVersion | undefined
              yield* uow.run(
                Effect.flip(
                  uow.run(
                    Effect.gen(function* () {
                      deeper = yield* publish("deeper")
                      return yield* Effect.fail(new Boom())
                    })
                  )
                )
              )
              return [first, second!, third, deeper!] as const
            })
          )
          assert.strictEqual((yield* store.get(first)).version, first)
          assert.strictEqual((yield* store.get(third)).version, third)
          assert.strictEqual((yield* Effect.flip(store.get(second)))._tag, "UnknownPolicyVersion")
          assert.strictEqual((yield* Effect.flip(store.get(deeper)))._tag, "UnknownPolicyVersion")
        })
      )

      it.effect("a COMMIT the database refuses is a UnitOfWorkError, and none of the unit's writes remain", () =>
        Effect.gen(function* () {
          const store = yield* PolicyStore
          const uow = yield* UnitOfWork
          const sql = yield* SqlClient.SqlClient
          const { schema } = yield* TestPostgres
          const table = sql(`${schema}.deferred_check`)
          // a deferred unique constraint is only checked at COMMIT
          yield* sql`CREATE TABLE ${table} (k int, CONSTRAINT once UNIQUE (k) DEFERRABLE INITIALLY DEFERRED)`
          let version: PolicyVersion | undefined
          const error = yield* Effect.flip(
            uow.run(
              Effect.gen(function* () {
                version = (yield* store.publish(uniqueSet("refused"))).version
                yield* sql`INSERT INTO ${table} (k) VALUES (1), (1)`.pipe(Effect.orDie)
              })
            )
          )
          assert.strictEqual(error._tag, "UnitOfWorkError")
          assert.isFalse(error._tag === "UnitOfWorkError" && error.retryable)
          assert.strictEqual((yield* Effect.flip(store.get(version!)))._tag, "UnknownPolicyVersion")
        })
      )

      it.effect("a unit whose connection is killed fails with its store's error, never a defect", () =>
        Effect.gen(function* () {
          const store = yield* PolicyStore
          const uow = yield* UnitOfWork
          const sql = yield* SqlClient.SqlClient
          const admin = Context.get(yield* Layer.build(TestPostgres.otherClient()), SqlClient.SqlClient)
          const exit = yield* Effect.exit(
            uow.run(
              Effect.gen(function* () {
                yield* store.publish(uniqueSet("killed"))
                const [row] = yield* sql<{ readonly pid: number }>`SELECT pg_backend_pid() AS pid`.pipe(Effect.orDie)
                // A database administrator (or a failover) ends the unit's backend mid-transaction
                yield* admin`SELECT pg_terminate_backend(${row!.pid})`.pipe(Effect.orDie)
                yield* store.publish(uniqueSet("after-kill"))
              })
            )
          )
          assert.isTrue(Exit.isFailure(exit))
          if (Exit.isFailure(exit)) {
            assert.isFalse(Cause.hasDies(exit.cause), String(exit.cause))
            const error = Cause.findErrorOption(exit.cause)
            assert.isTrue(Option.isSome(error))
            assert.include(["PolicyStoreError", "UnitOfWorkError"], Option.getOrThrow(error)._tag)
          }
          // The pool replaces the connection: the next unit works
          yield* uow.run(store.publish(uniqueSet("next")))
        })
      )

      it.effect("many units at once each commit whole", () =>
        Effect.gen(function* () {
          const store = yield* PolicyStore
          const uow = yield* UnitOfWork
          const sets = Array.from({ length: 20 }, (_, i) => uniqueSet(`many-${i}`))
          const activated = yield* Effect.all(
            sets.map((set, i) =>
              uow
                .run(
                  Effect.gen(function* () {
                    const published = yield* store.publish(set)
                    const active = yield* store.activate(published.version)
                    // every third unit fails after both writes
                    if (i % 3 === 0) return yield* Effect.fail(new Boom())
                    return active.version
                  })
                )
                .pipe(Effect.catch(() => Effect.succeed(undefined)))
            ),
            { concurrency: "unbounded" }
          )
          const committed = new Set(activated.filter((v) => v !== undefined))
          assert.strictEqual(committed.size, sets.length - Math.ceil(sets.length / 3))
          const listed = yield* store.list
          const mine = listed.filter((s) => sets.some((set) => set.name === s.set.name))
          assert.deepStrictEqual(new Set(mine.map((s) => s.version)), committed)
          assert.isTrue(committed.has((yield* store.active).version))
        })
      )
    }
  )
})
