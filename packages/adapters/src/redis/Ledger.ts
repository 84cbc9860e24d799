/**
 * The audit ledger on Redis: a `LedgerStore` for core's `Ledger.layer`, so that the hash chain, the Merkle nodes,
 * the checkpoints and their anchor receipts live in Redis with the tasks and the queue, and outlive the process.
 *
 * Layout (see `Keys.ledger`): entries as JSON in one hash by seq, an index from entry hash to seq, a list of seqs
 * per task, Merkle nodes (hex) in one hash by `level:index`, the head record in a hash of its own, checkpoints by
 * size with a sorted set of their sizes, and anchor receipts by checkpoint size.
 *
 * **Appends** are atomic and never fork the chain, across processes, without a lock held in Redis: an append is
 * a unit (see `Unit.ts`). The ledger reads the head and the nodes it needs, computes the entries and nodes, and
 * `write` gathers them with guards on the head it started from (and on the new seqs being free); one script
 * checks the guards and writes everything, or writes nothing when another process appended first, and the
 * append runs again from the new head. Inside a `UnitOfWork` (`layerUnitOfWork`), the entries are written by the
 * unit's commit, together with the task's compare-and-set and the jobs. Appenders in one process take turns
 * (a process-wide lock held until their unit ends), so they do not conflict with each other. Sequence numbers
 * have no gaps: an append that lost a race wrote nothing.
 *
 * `LedgerTamper` (tests only) rewrites keys behind the ledger's back.
 *
 * @since 0.1.0
 */
import {
  type Anchor,
  type AnchorReceipt,
  Canonical,
  type Checkpoint,
  type CheckpointRecord,
  genesisHash,
  type InvalidInput,
  Ledger,
  type LedgerEntry,
  type LedgerHead,
  type LedgerOptions,
  LedgerStore,
  LedgerStoreError,
  LedgerTamper,
  type Merkle
} from "@mandate/core"
import { Context, Effect, Layer, Option } from "effect"
import { Redis } from "effect/persistence"
import { makeKeys, type RedisOptions, resolvePrefix } from "./Keys.ts"
import {
  CommitConflict,
  guard,
  type LedgerOverlay,
  ledgerLockOf,
  lockLedger,
  makeCommitter,
  runUnit,
  type UnitState,
  unitOf
} from "./Unit.ts"

const storeError = (operation: string) => (cause: unknown) => new LedgerStoreError({ operation, cause })
const failure = (operation: string, message: string) => new LedgerStoreError({ operation, cause: new Error(message) })

const nodeField = (level: number, index: number) => `${level}:${index}`

const parse = <A>(json: string, operation: string): Effect.Effect<A, LedgerStoreError> =>
  Effect.try({ try: () => JSON.parse(json) as A, catch: storeError(operation) })

// Appends that lose a race with another process run again; this many times before the append fails
const conflictRetries = 100

/**
 * Builds the Redis ledger store and its tamper hook over the `Redis` service in context.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeLedgerStore = Effect.fnUntraced(function* (options?: RedisOptions) {
  const redis = yield* Redis.Redis
  const keys = makeKeys(yield* resolvePrefix(options))
  const k = keys.ledger
  const committer = makeCommitter(redis, ledgerOperations)
  const putCheckpointScript = redis.eval(putCheckpointLua)
  const putAnchorScript = redis.eval(putAnchorLua)

  const storedHead = Effect.map(
    redis.send<ReadonlyArray<string | null>>("HMGET", k.head, "size", "lastHash"),
    ([size, lastHash]): LedgerHead => ({
      size: size === null || size === undefined ? 0 : Number(size),
      lastHash: (lastHash ?? genesisHash) as LedgerHead["lastHash"]
    })
  ).pipe(Effect.mapError(storeError("head")))

  const head = Effect.flatMap(unitOf(redis), (unit) =>
    unit?.ledger !== undefined ? Effect.succeed(unit.ledger.head) : storedHead
  )

  // Gathers the entries and nodes into the unit, guarded on the head they continue from
  const gather = (unit: UnitState, batch: ReadonlyArray<LedgerEntry>, written: ReadonlyArray<Merkle.Node>) =>
    Effect.gen(function* () {
      if (batch.length === 0) return
      const first = batch[0]!
      const overlay = unit.ledger
      if (overlay !== undefined) {
        if (first.seq !== overlay.head.size) {
          return yield* failure("write", `entry ${first.seq} is not the next entry (${overlay.head.size})`)
        }
      } else {
        // What this write relies on: the head the ledger read
        guard(unit, k.head, "size", first.seq === 0 ? null : String(first.seq))
        guard(unit, k.head, "lastHash", first.seq === 0 ? null : first.prevHash)
      }
      for (let i = 0; i < batch.length; i++) {
        if (batch[i]!.seq !== first.seq + i) {
          return yield* failure("write", `entry ${batch[i]!.seq} is not the next entry (${first.seq + i})`)
        }
        // append-only: a seq that is stored already is never overwritten
        guard(unit, k.entries, String(batch[i]!.seq), null)
      }
      const last = batch[batch.length - 1]!
      const args: Array<string> = [k.byTaskPrefix, String(last.seq + 1), last.entryHash, String(batch.length)]
      for (const entry of batch) {
        args.push(String(entry.seq), JSON.stringify(entry), entry.entryHash, entry.taskId ?? "")
      }
      args.push(String(written.length))
      for (const node of written) args.push(nodeField(node.level, node.index), Canonical.toHex(node.hash))
      unit.operations.push({ name: "ledgerWrite", keys: [k.head, k.entries, k.byHash, k.nodes], args })
      const next: LedgerOverlay = overlay ?? {
        head: { size: first.seq, lastHash: first.prevHash },
        nodes: new Map(),
        entries: []
      }
      for (const node of written) next.nodes.set(nodeField(node.level, node.index), node.hash)
      next.entries.push(...batch)
      next.head = { size: last.seq + 1, lastHash: last.entryHash }
      unit.ledger = next
    })

  const mapCommitError = (operation: string) => (error: unknown) =>
    error instanceof CommitConflict
      ? failure(operation, "other processes kept appending first; the append was retried and gave up")
      : error instanceof LedgerStoreError
        ? error
        : storeError(operation)(error)

  // Outside a unit: a unit of its own, run again while another process appended first
  const standalone = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    ledgerLockOf(redis).withPermits(1)(
      runUnit(redis, committer, effect).pipe(
        Effect.retry({
          while: (error) => error instanceof CommitConflict,
          times: conflictRetries
        })
      )
    )

  const withAppendLock = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | LedgerStoreError, R> =>
    Effect.flatMap(unitOf(redis), (unit) =>
      unit !== undefined
        ? Effect.andThen(lockLedger(unit), effect)
        : Effect.catch(standalone(effect), (error) =>
            Effect.fail(
              error instanceof CommitConflict || error instanceof Redis.RedisError
                ? mapCommitError("append")(error)
                : (error as E)
            )
          )
    )

  const write = (batch: ReadonlyArray<LedgerEntry>, written: ReadonlyArray<Merkle.Node>) =>
    Effect.flatMap(unitOf(redis), (unit) =>
      unit !== undefined
        ? gather(unit, batch, written)
        : runUnit(
            redis,
            committer,
            Effect.flatMap(unitOf(redis), (own) => gather(own!, batch, written))
          ).pipe(Effect.mapError(mapCommitError("write")))
    )

  const nodes = (ids: ReadonlyArray<Merkle.NodeId>) =>
    Effect.gen(function* () {
      if (ids.length === 0) return []
      const overlay = (yield* unitOf(redis))?.ledger?.nodes
      const out: Array<Uint8Array | undefined> = new Array(ids.length)
      const missing: Array<number> = []
      ids.forEach((id, i) => {
        const own = overlay?.get(nodeField(id.level, id.index))
        if (own !== undefined) out[i] = own
        else missing.push(i)
      })
      for (let start = 0; start < missing.length; start += 1_000) {
        const chunk = missing.slice(start, start + 1_000)
        const hashes = yield* redis
          .send<ReadonlyArray<string | null>>(
            "HMGET",
            k.nodes,
            ...chunk.map((i) => nodeField(ids[i]!.level, ids[i]!.index))
          )
          .pipe(Effect.mapError(storeError("nodes")))
        chunk.forEach((i, j) => {
          const hex = hashes[j]
          out[i] = hex === null || hex === undefined ? undefined : Canonical.fromHex(hex)
        })
      }
      return out
    })

  const entriesAt = (seqs: ReadonlyArray<number>, operation: string) =>
    Effect.gen(function* () {
      const out: Array<LedgerEntry> = []
      for (let start = 0; start < seqs.length; start += 1_000) {
        const chunk = seqs.slice(start, start + 1_000)
        const rows = yield* redis
          .send<ReadonlyArray<string | null>>("HMGET", k.entries, ...chunk.map(String))
          .pipe(Effect.mapError(storeError(operation)))
        for (const row of rows)
          if (row !== null && row !== undefined) out.push(yield* parse<LedgerEntry>(row, operation))
      }
      return out
    })

  const entries = (from: number, to: number) =>
    Effect.suspend(() => {
      const start = Math.max(0, Math.floor(from))
      const end = Math.floor(to)
      if (!(end > start)) return Effect.succeed([])
      return entriesAt(
        Array.from({ length: end - start }, (_, i) => start + i),
        "entries"
      )
    })

  const findByHash = (entryHash: string) =>
    Effect.gen(function* () {
      const seq = yield* redis
        .send<string | null>("HGET", k.byHash, entryHash)
        .pipe(Effect.mapError(storeError("findByHash")))
      if (seq === null) return Option.none<LedgerEntry>()
      const [entry] = yield* entriesAt([Number(seq)], "findByHash")
      // Match on the stored field, as a database index would after tampering
      return entry !== undefined && entry.entryHash === entryHash ? Option.some(entry) : Option.none<LedgerEntry>()
    })

  const findByTask = (taskId: string) =>
    Effect.gen(function* () {
      const seqs = yield* redis
        .send<ReadonlyArray<string>>("LRANGE", k.byTask(taskId), "0", "-1")
        .pipe(Effect.mapError(storeError("findByTask")))
      const unique = [...new Set(seqs.map(Number))].sort((a, b) => a - b)
      const found = yield* entriesAt(unique, "findByTask")
      return found.filter((entry) => entry.taskId === taskId).sort((a, b) => a.seq - b.seq)
    })

  // The task's last entry: the unit's own appends first, then the stored list (whose order is the append order).
  // An append from another process in between moves the head, which the write is guarded on
  const lastOfTask = (taskId: string) =>
    Effect.gen(function* () {
      const overlay = (yield* unitOf(redis))?.ledger?.entries
      const own = overlay?.findLast((entry) => entry.taskId === taskId)
      if (own !== undefined) return Option.some(own.entryHash)
      const seqs = yield* redis
        .send<ReadonlyArray<string>>("LRANGE", k.byTask(taskId), "-1", "-1")
        .pipe(Effect.mapError(storeError("lastOfTask")))
      const [entry] = seqs.length === 0 ? [] : yield* entriesAt([Number(seqs[0])], "lastOfTask")
      return Option.fromNullishOr(entry?.entryHash)
    })

  const recordOf = (checkpointJson: string, anchorJson: string | null | undefined, operation: string) =>
    Effect.gen(function* () {
      const checkpoint = yield* parse<Checkpoint>(checkpointJson, operation)
      if (anchorJson === null || anchorJson === undefined) return { checkpoint } satisfies CheckpointRecord
      return { checkpoint, anchor: yield* parse<AnchorReceipt>(anchorJson, operation) } satisfies CheckpointRecord
    })

  const recordsAt = (sizes: ReadonlyArray<string>, operation: string) =>
    Effect.gen(function* () {
      if (sizes.length === 0) return []
      const [checkpoints, anchors] = yield* Effect.all([
        redis.send<ReadonlyArray<string | null>>("HMGET", k.checkpoints, ...sizes),
        redis.send<ReadonlyArray<string | null>>("HMGET", k.anchors, ...sizes)
      ]).pipe(Effect.mapError(storeError(operation)))
      const out: Array<CheckpointRecord> = []
      for (let i = 0; i < sizes.length; i++) {
        const json = checkpoints[i]
        if (json !== null && json !== undefined) out.push(yield* recordOf(json, anchors[i], operation))
      }
      return out
    })

  const putCheckpoint = (checkpoint: Checkpoint) =>
    Effect.gen(function* () {
      const json = JSON.stringify({
        size: checkpoint.size,
        root: checkpoint.root,
        timestamp: checkpoint.timestamp,
        keyId: checkpoint.keyId,
        signature: checkpoint.signature
      })
      const [stored, anchor] = yield* putCheckpointScript(
        k.checkpoints,
        k.checkpointSizes,
        k.anchors,
        checkpoint.size,
        json
      ).pipe(Effect.mapError(storeError("putCheckpoint")))
      return yield* recordOf(stored, anchor, "putCheckpoint")
    })

  const checkpoints = Effect.flatMap(
    redis
      .send<ReadonlyArray<string>>("ZRANGE", k.checkpointSizes, "0", "-1")
      .pipe(Effect.mapError(storeError("checkpoints"))),
    (sizes) => recordsAt(sizes, "checkpoints")
  )

  const latestCheckpoint = Effect.flatMap(
    redis
      .send<ReadonlyArray<string>>("ZRANGE", k.checkpointSizes, "-1", "-1")
      .pipe(Effect.mapError(storeError("latestCheckpoint"))),
    (sizes) => Effect.map(recordsAt(sizes, "latestCheckpoint"), (records) => Option.fromNullishOr(records[0]))
  )

  const putAnchor = (size: number, anchor: AnchorReceipt) =>
    Effect.gen(function* () {
      const reply = yield* putAnchorScript(k.checkpoints, k.anchors, size, JSON.stringify(anchor)).pipe(
        Effect.mapError(storeError("putAnchor"))
      )
      if (reply === 0) return yield* failure("putAnchor", `no checkpoint of size ${size}`)
    })

  const store = LedgerStore.of({
    durable: true,
    withAppendLock,
    head,
    write,
    nodes,
    entries,
    findByHash,
    findByTask,
    lastOfTask,
    putCheckpoint,
    checkpoints,
    latestCheckpoint,
    putAnchor
  })

  // ---- tamper hook (tests only) ---------------------------------------------------------------------------

  const tamperError = (operation: string) => storeError(operation)
  const tamper = LedgerTamper.of({
    replaceEntry: (seq, fields) =>
      Effect.gen(function* () {
        if (!Number.isSafeInteger(seq) || seq < 0) return yield* failure("replaceEntry", `no entry ${seq}`)
        const { size } = yield* storedHead
        const exists = yield* redis
          .send<number>("HEXISTS", k.entries, String(seq))
          .pipe(Effect.mapError(tamperError("replaceEntry")))
        if (seq >= size && exists !== 1) return yield* failure("replaceEntry", `no entry ${seq}`)
        if (fields === undefined) {
          yield* redis.send("HDEL", k.entries, String(seq)).pipe(Effect.mapError(tamperError("replaceEntry")))
          return
        }
        yield* redis
          .send("HSET", k.entries, String(seq), JSON.stringify(fields))
          .pipe(Effect.mapError(tamperError("replaceEntry")))
        // The indexes follow the stored fields, as a database's would
        if (typeof fields.entryHash === "string") {
          yield* redis
            .send("HSET", k.byHash, fields.entryHash, String(seq))
            .pipe(Effect.mapError(tamperError("replaceEntry")))
        }
        if (typeof fields.taskId === "string") {
          const key = k.byTask(fields.taskId)
          const at = yield* redis
            .send<number | null>("LPOS", key, String(seq))
            .pipe(Effect.mapError(tamperError("replaceEntry")))
          if (at === null)
            yield* redis.send("RPUSH", key, String(seq)).pipe(Effect.mapError(tamperError("replaceEntry")))
        }
      }),
    replaceNode: (node) =>
      Effect.gen(function* () {
        const field = nodeField(node.level, node.index)
        const exists = yield* redis
          .send<number>("HEXISTS", k.nodes, field)
          .pipe(Effect.mapError(tamperError("replaceNode")))
        if (exists !== 1) return yield* failure("replaceNode", `no node (${node.level}, ${node.index})`)
        yield* redis
          .send("HSET", k.nodes, field, Canonical.toHex(node.hash))
          .pipe(Effect.mapError(tamperError("replaceNode")))
      }),
    replaceHead: (next) =>
      redis
        .send("HSET", k.head, "size", String(next.size), "lastHash", next.lastHash)
        .pipe(Effect.asVoid, Effect.mapError(tamperError("replaceHead"))),
    replaceAnchor: (size, receipt) =>
      Effect.gen(function* () {
        const exists = yield* redis
          .send<number>("HEXISTS", k.checkpoints, String(size))
          .pipe(Effect.mapError(tamperError("replaceAnchor")))
        if (exists !== 1) return yield* failure("replaceAnchor", `no checkpoint of size ${size}`)
        yield* (
          receipt === undefined
            ? redis.send("HDEL", k.anchors, String(size))
            : redis.send("HSET", k.anchors, String(size), JSON.stringify(receipt))
        ).pipe(Effect.mapError(tamperError("replaceAnchor")))
      })
  })

  return { store, tamper }
})

/**
 * The Redis ledger store as a layer over the `Redis` service.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerLedgerStore = (options?: RedisOptions): Layer.Layer<LedgerStore, InvalidInput, Redis.Redis> =>
  Layer.effect(
    LedgerStore,
    Effect.map(makeLedgerStore(options), ({ store }) => store)
  )

/**
 * The Redis ledger store with its tamper hook, for tests that prove tampering is detected (the ledger
 * conformance suite). Never provide `LedgerTamper` in production.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerLedgerStoreWithTamper = (
  options?: RedisOptions
): Layer.Layer<LedgerStore | LedgerTamper, InvalidInput, Redis.Redis> =>
  Layer.effectContext(
    Effect.map(makeLedgerStore(options), ({ store, tamper }) =>
      Context.make(LedgerStore, store).pipe(Context.add(LedgerTamper, tamper))
    )
  )

/**
 * Core's `Ledger` on the Redis store: give it kept keys (`keys` from `LedgerKeys.inDirectory`, or a `signingKey`)
 * and an `Anchor`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerLedger = (
  options?: LedgerOptions & RedisOptions
): Layer.Layer<Ledger, InvalidInput | LedgerStoreError, Redis.Redis | Anchor> =>
  Ledger.layer(options).pipe(Layer.provide(layerLedgerStore(options)))

// ---- scripts ----------------------------------------------------------------------------------------------

// An append, as an operation of a unit (see Unit.ts). KEYS: head, entries, by-hash index, nodes
// ARGV: by-task key prefix, new size, new last hash, entry count, (seq, JSON, entry hash, task id or "") per
// entry, node count, (level:index, hex hash) per node
const ledgerWriteLua = `
local a = 5
local n = tonumber(ARGV[4])
for i = 1, n do
  local seq, json, hash, task = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]; a = a + 4
  redis.call('HSET', KEYS[2], seq, json)
  redis.call('HSET', KEYS[3], hash, seq)
  if task ~= '' then redis.call('RPUSH', ARGV[1] .. task, seq) end
end
local m = tonumber(ARGV[a]); a = a + 1
for i = 1, m do
  redis.call('HSET', KEYS[4], ARGV[a], ARGV[a + 1]); a = a + 2
end
redis.call('HSET', KEYS[1], 'size', ARGV[2], 'lastHash', ARGV[3])
return n
`

/**
 * The ledger's unit operations, by name (for committers that gather ledger writes).
 *
 * @category constants
 * @since 0.1.0
 */
export const ledgerOperations: Readonly<Record<string, string>> = { ledgerWrite: ledgerWriteLua }

// KEYS: checkpoints, checkpoint sizes, anchors. ARGV: size, checkpoint JSON
// Returns {stored checkpoint JSON, anchor JSON or false}: the existing one when this size is stored
const putCheckpointLua = Redis.script(
  (keyCheckpoints: string, keySizes: string, keyAnchors: string, size: number, json: string) => [
    keyCheckpoints,
    keySizes,
    keyAnchors,
    size,
    json
  ],
  {
    numberOfKeys: 3,
    lua: `
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return {redis.call('HGET', KEYS[1], ARGV[1]), redis.call('HGET', KEYS[3], ARGV[1])}
end
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
return {ARGV[2], false}
`
  }
).withReturnType<readonly [string, string | null]>()

// KEYS: checkpoints, anchors. ARGV: size, receipt JSON. Returns 1, or 0 when there is no checkpoint of that size
const putAnchorLua = Redis.script(
  (keyCheckpoints: string, keyAnchors: string, size: number, json: string) => [keyCheckpoints, keyAnchors, size, json],
  {
    numberOfKeys: 2,
    lua: `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
`
  }
).withReturnType<number>()
