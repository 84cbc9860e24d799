/**
 * `PolicyStore` on Postgres: versioned policy sets in `policy_sets`, the active version in the one-row
 * `policy_active` (migration 0001).
 *
 * Versions are computed in core (`PolicySet.version`, the SHA-256 of the canonical JSON); this module only stores
 * and reads. Every statement goes through the abstract `SqlClient`, so inside `UnitOfWork.run` it joins the
 * unit's transaction. Rows are decoded with Schema: a row that does not decode fails the call with
 * `PolicyStoreError`, as driver failures do, instead of handing out a malformed set.
 *
 * A published version never changes (the database refuses UPDATE, DELETE and TRUNCATE on `policy_sets`), so each
 * store keeps the sets it has read, by version, and `active` (read on every policy evaluation) costs one small
 * query for the pointer instead of fetching and decoding the whole set. A set enters that cache only once the
 * transaction that read it has committed, so a unit that published and then rolled back leaves nothing behind.
 *
 * @since 0.1.0
 */
import {
  type InvalidInput,
  PolicySet,
  PolicyStore,
  PolicyStoreError,
  PolicyVersion,
  Seed,
  type StoredPolicySet,
  UnknownPolicyVersion
} from "@mandate/core"
import { Clock, Effect, Layer, Schema } from "effect"
import { SqlClient, SqlSchema } from "effect/sql"
import { type PostgresOptions, resolveSchema } from "./Options.ts"

/**
 * Options of the Postgres policy store.
 *
 * @category models
 * @since 0.1.0
 */
export interface PolicyStoreOptions extends PostgresOptions {
  /**
   * Published and activated when the layer starts on a schema where no set is active yet (default: the seed
   * policy). Ignored once a set is active: restarts never change the active version.
   */
  readonly initial?: PolicySet.PolicySet | undefined
}

// A row of the queries below: jsonb arrives parsed, timestamptz as a Date
const Row = Schema.Struct({
  version: PolicyVersion,
  policy: PolicySet.PolicySet,
  published_at: Schema.Date,
  active: Schema.Boolean
})

// The one row of policy_active: the active version, null before the first start published one
const Pointer = Schema.Struct({ version: Schema.NullOr(PolicyVersion) })

const toStored = (row: typeof Row.Type): StoredPolicySet => ({
  version: row.version,
  set: row.policy,
  publishedAt: row.published_at.getTime(),
  active: row.active
})

/**
 * Builds the Postgres policy store over the `SqlClient` in context. On a schema where no set is active, it
 * publishes and activates `options.initial`; concurrent first starts agree on one active set.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makePolicyStore = Effect.fnUntraced(function* (options?: PolicyStoreOptions) {
  const sql = yield* SqlClient.SqlClient
  const schema = yield* resolveSchema(options)
  const policySets = sql(`${schema}.policy_sets`)
  const policyActive = sql(`${schema}.policy_active`)

  const storeError = (operation: string) => (cause: unknown) => new PolicyStoreError({ operation, cause })

  // Two statements, not one CTE: under READ COMMITTED the SELECT takes a fresh snapshot, so it sees a row that
  // a concurrent publisher of the same set committed while this INSERT waited on it (a CTE would return nothing)
  const insertSet = (set: PolicySet.PolicySet, version: PolicyVersion, publishedAt: number) =>
    sql`INSERT INTO ${policySets} (version, policy, published_at)
        VALUES (${version}, ${JSON.stringify(Schema.encodeSync(PolicySet.PolicySet)(set))}::jsonb,
                ${new Date(publishedAt)})
        ON CONFLICT (version) DO NOTHING`

  const findByVersion = SqlSchema.findOneOption({
    Request: PolicyVersion,
    Result: Row,
    execute: (version) =>
      sql`SELECT p.version, p.policy, p.published_at, coalesce(p.version = a.version, false) AS active
          FROM ${policySets} p CROSS JOIN ${policyActive} a
          WHERE p.version = ${version}`
  })

  const findActive = SqlSchema.findOneOption({
    Request: Schema.Void,
    Result: Row,
    execute: () =>
      sql`SELECT p.version, p.policy, p.published_at, true AS active
          FROM ${policyActive} a JOIN ${policySets} p ON p.version = a.version`
  })

  const findAll = SqlSchema.findAll({
    Request: Schema.Void,
    Result: Row,
    execute: () =>
      sql`SELECT p.version, p.policy, p.published_at, coalesce(p.version = a.version, false) AS active
          FROM ${policySets} p CROSS JOIN ${policyActive} a
          ORDER BY p.seq DESC`
  })

  // One statement: the pointer moves only to a version that exists, and RETURNING reads the set it points to
  const setActive = SqlSchema.findOneOption({
    Request: Schema.Struct({ version: PolicyVersion, at: Schema.Date }),
    Result: Row,
    execute: ({ version, at }) =>
      sql`UPDATE ${policyActive} a SET version = p.version, activated_at = ${at}
          FROM ${policySets} p
          WHERE p.version = ${version}
          RETURNING p.version, p.policy, p.published_at, true AS active`
  })

  const findPointer = SqlSchema.findAll({
    Request: Schema.Void,
    Result: Pointer,
    execute: () => sql`SELECT version FROM ${policyActive}`
  })
  const pointer = (operation: string) =>
    Effect.map(findPointer(undefined), (rows) => rows[0]?.version ?? null).pipe(Effect.mapError(storeError(operation)))

  // Published sets by version, as read from committed rows (bounded: a runaway publisher cannot grow it forever)
  const cache = new Map<PolicyVersion, Omit<StoredPolicySet, "active">>()
  const remember = (stored: StoredPolicySet) =>
    sql.afterCommit(
      Effect.sync(() => {
        if (cache.size >= 1_000) cache.clear()
        cache.set(stored.version, { version: stored.version, set: stored.set, publishedAt: stored.publishedAt })
      })
    )
  const read = (row: typeof Row.Type) => {
    const stored = toStored(row)
    return Effect.as(remember(stored), stored)
  }

  const get = Effect.fn("PolicyStore.get")(function* (version: PolicyVersion) {
    const cached = cache.get(version)
    if (cached !== undefined) return { ...cached, active: (yield* pointer("get")) === version }
    const found = yield* findByVersion(version).pipe(Effect.mapError(storeError("get")))
    if (found._tag === "None") return yield* new UnknownPolicyVersion({ version })
    return yield* read(found.value)
  })

  const publish = Effect.fn("PolicyStore.publish")(function* (set: PolicySet.PolicySet) {
    const version = PolicySet.version(set)
    const publishedAt = yield* Clock.currentTimeMillis
    yield* insertSet(set, version, publishedAt).pipe(Effect.mapError(storeError("publish")))
    return yield* get(version).pipe(
      Effect.catchTag("UnknownPolicyVersion", (cause) => Effect.fail(storeError("publish")(cause)))
    )
  })

  const activate = Effect.fn("PolicyStore.activate")(function* (version: PolicyVersion) {
    const at = new Date(yield* Clock.currentTimeMillis)
    const updated = yield* setActive({ version, at }).pipe(Effect.mapError(storeError("activate")))
    if (updated._tag === "None") return yield* new UnknownPolicyVersion({ version })
    return yield* read(updated.value)
  })

  const noneActive = () => storeError("active")(new Error(`No policy set is active in schema ${schema}`))

  const active = Effect.gen(function* () {
    const version = yield* pointer("active")
    if (version === null) return yield* noneActive()
    const cached = cache.get(version)
    if (cached !== undefined) return { ...cached, active: true }
    // Not read yet: fetch the active set in one statement (the pointer may have moved since)
    const found = yield* findActive(undefined).pipe(Effect.mapError(storeError("active")))
    if (found._tag === "None") return yield* noneActive()
    return yield* read(found.value)
  }).pipe(Effect.withSpan("PolicyStore.active"))

  const list = findAll(undefined).pipe(
    Effect.map((rows) => rows.map(toStored)),
    Effect.mapError(storeError("list")),
    Effect.withSpan("PolicyStore.list")
  )

  // First start on this schema: publish and activate the initial set. The row lock on the pointer makes a
  // concurrent first start wait, then see the active set and leave it alone.
  const initial = options?.initial ?? Seed.defaultPolicySet
  yield* Effect.gen(function* () {
    const [current] = yield* sql<{ readonly version: string | null }>`
      SELECT version FROM ${policyActive} FOR UPDATE`
    if (current === undefined) {
      return yield* Effect.fail(new Error(`${schema}.policy_active has no row: were the migrations run?`))
    }
    if (current.version !== null) return
    const version = PolicySet.version(initial)
    const now = yield* Clock.currentTimeMillis
    yield* insertSet(initial, version, now)
    yield* setActive({ version, at: new Date(now) })
  }).pipe(sql.withTransaction, Effect.mapError(storeError("initialize")))

  return PolicyStore.of({ publish, activate, active, get, list })
})

/**
 * The Postgres policy store as a layer over the shared `SqlClient` (see `makePolicyStore`).
 *
 * @category layers
 * @since 0.1.0
 */
export const layerPolicyStore = (
  options?: PolicyStoreOptions
): Layer.Layer<PolicyStore, PolicyStoreError | InvalidInput, SqlClient.SqlClient> =>
  Layer.effect(PolicyStore, makePolicyStore(options))
