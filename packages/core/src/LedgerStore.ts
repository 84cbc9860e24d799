/**
 * Where a ledger keeps its data: entries, Merkle nodes and checkpoints. `LedgerStore` is the backend contract
 * under the `Ledger` service: the ledger computes every hash, node, proof and signature itself (once, in core)
 * and asks the store only to keep rows, find them again and serialise appenders. A backend implements this
 * service and reuses `Ledger.layer` on top of it; it then passes the ledger conformance suite like the
 * memory backend does.
 *
 * **What a store must guarantee**
 *
 * - `withAppendLock` runs one appender at a time across every process sharing the store: between an
 *   appender's `head` read and its `write`, no other append commits. A SQL backend runs it in a transaction
 *   (joining an enclosing one, so a `UnitOfWork` commits ledger entries with the rest of a transition) that
 *   holds a lock such as `pg_advisory_xact_lock`. An optimistic backend may instead refuse, at commit, a write
 *   whose head moved since it was read, and run the appender again (the Redis store does): what commits is the
 *   same.
 * - `write` stores the entries and nodes it is given all together or not at all, and refuses to change a row
 *   that exists (append-only: a database refuses updates and deletes, e.g. with a trigger).
 * - `head` is the stored head record (size and last entry hash) that appends continue from, kept apart from the
 *   entries and moved by `write` with them: `verifyAll` checks one against the other, so an entry deleted from
 *   the end shows up (the head still counts it) instead of leaving a shorter ledger that looks whole.
 * - `pending` (optional) stages entries without a position and lets one sequencer at a time integrate them
 *   (`LedgerPending`); the ledger then runs its sequencer over the store and syncs before every read.
 * - Reads return what was written, field for field (absent optional fields stay absent): the ledger re-hashes
 *   them, so any difference shows up as tampering. Reads may return tampered rows; they must not repair them.
 *
 * **Layout** (what a SQL backend stores): entries by `seq` (unique; indexed by `entryHash` and `taskId`),
 * Merkle nodes by `(level, index)` as `Merkle` documents (32-byte hashes, fewer than two per entry), the head
 * record, and checkpoints by `size` (one per tree size, with the anchor receipt once it is anchored).
 *
 * `LedgerTamper` (from `@mandate/core/testing`) is the test hook that the ledger conformance suite needs to prove
 * tampering is detected: it changes stored data behind the ledger's back (a database backend disables its
 * append-only trigger for it). Never provide it in production.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option, Schema, Semaphore } from "effect"
import { AnchorReceipt } from "./Anchor.ts"
import type { EntryHash, TaskId } from "./Ids.ts"
import { EntryArena } from "./internal/ledgerMemoryArena.ts"
import { NodeArray } from "./internal/NodeArray.ts"
import { Checkpoint, genesisHash, type LedgerEntry } from "./LedgerEntry.ts"
import type * as Merkle from "./Merkle.ts"
import { LedgerTamper } from "./testing.ts"
import { UnitOfWork } from "./UnitOfWork.ts"

/**
 * A stored checkpoint and, once it was published to a chain, its anchor receipt.
 *
 * @category models
 * @since 0.1.0
 */
export const CheckpointRecord = Schema.Struct({
  checkpoint: Checkpoint,
  anchor: Schema.optionalKey(AnchorReceipt)
})
export type CheckpointRecord = typeof CheckpointRecord.Type

/**
 * The head record: the number of entries and the hash of the last one (`genesisHash` when empty).
 *
 * @category models
 * @since 0.1.0
 */
export interface LedgerHead {
  readonly size: number
  readonly lastHash: EntryHash
}

/**
 * A batch of entries as the ledger hands it to `LedgerStore.writeEncoded`: entry `i` (seq `first + i`) is the
 * UTF-8 canonical JSON of its body (the entry without `entryHash`: exactly the text its `entryHash` covers after
 * `prevHash`) at `bytes[starts[i], ends[i])`, its entry hash the 32 bytes at `hashes[32 i, 32 i + 32)`. Parsing
 * a body gives the entry's fields (`entryHash` aside) with their values; members are in canonical (sorted) order.
 * The arrays are the ledger's scratch space: valid until the write's effect completes, so copy what you keep.
 *
 * @category models
 * @since 0.1.0
 */
export interface EncodedEntries {
  readonly first: number
  readonly count: number
  readonly bytes: Uint8Array
  readonly starts: ReadonlyArray<number>
  readonly ends: ReadonlyArray<number>
  readonly hashes: Uint8Array
  /** Where each body's `payloadHash` digits start in `bytes` (its `prevHash` digits follow 78 bytes later). */
  readonly payloadHashAt: ReadonlyArray<number>
  /** Each entry's `taskId`, `undefined` when it has none. */
  readonly taskIds: ReadonlyArray<string | undefined>
}

/**
 * Merkle nodes as the ledger hands them to `LedgerStore.writePacked`: node `i` is at `(levels[i], indexes[i])`,
 * its hash the 32 bytes at `hashes[32 i, 32 i + 32)`, in creation order (each parent after its children), as
 * `Merkle.append` lists them. Scratch space like `EncodedEntries`: copy what you keep.
 *
 * @category models
 * @since 0.5.0
 */
export interface PackedNodes {
  readonly count: number
  readonly levels: ReadonlyArray<number>
  readonly indexes: ReadonlyArray<number>
  readonly hashes: Uint8Array
}

/**
 * An entry staged for the sequencer (`LedgerPending`): what a unit of work knows of it before it has a place in
 * the log. `principal` and `payload` are canonical JSON text (`payloadHash` is the SHA-256 of `payload`'s);
 * `payload` is kept even when `storePayload` is false, until the entry is integrated with its hash only.
 *
 * @category models
 * @since 0.4.0
 */
export interface PendingEntry {
  readonly kind: string
  readonly taskId?: string | undefined
  readonly stepId?: string | undefined
  readonly principal?: string | undefined
  readonly payload: string
  readonly payloadHash: string
  readonly storePayload: boolean
}

/**
 * The pending-entries capability of a store (optional; see `LedgerStore.pending`): units of work stage entries
 * without a position, and one sequencer at a time integrates them in staging order. The ledger computes every
 * hash and node (`Ledger.record`, `Ledger.sync` and the sequencer loop); the store keeps the staged rows and
 * elects the sequencer.
 *
 * @category models
 * @since 0.4.0
 */
export interface LedgerPending {
  /**
   * Stores entries for the sequencer, in order, in the caller's transaction (joining an enclosing unit of work, so
   * they commit or roll back with it): no head read, no lock. Entries staged by one call, and by calls committed
   * one after the other, are integrated in that order.
   */
  readonly stage: (entries: ReadonlyArray<PendingEntry>) => Effect.Effect<void, LedgerStoreError>
  /** Completes once entries staged in this process have committed since the previous call (a wake-up). */
  readonly staged: Effect.Effect<void>
  /**
   * The sequencer's turn. In one transaction, unless another sequencer holds the turn (`Option.none()`; with
   * `wait`, waits for it instead): takes up to `limit` of the oldest committed pending entries, in staging order,
   * and runs `integrate` on them, which appends them (`withAppendLock`, `write`) in that same transaction; the
   * entries stop being pending when it commits. A failure rolls everything back: the entries stay pending.
   */
  readonly integrate: <A, E, R>(
    limit: number,
    wait: boolean,
    integrate: (entries: ReadonlyArray<PendingEntry>) => Effect.Effect<A, E, R>
  ) => Effect.Effect<Option.Option<A>, E | LedgerStoreError, R>
  /** The staging marks of the oldest and newest committed pending entries (`Option.none()` when none). */
  readonly backlog: Effect.Effect<Option.Option<{ readonly oldest: number; readonly newest: number }>, LedgerStoreError>
}

/**
 * The backing store failed (connection, query, or a write that would break the append-only layout).
 *
 * @category errors
 * @since 0.1.0
 */
export class LedgerStoreError extends Schema.TaggedError<LedgerStoreError>()("LedgerStoreError", {
  operation: Schema.String,
  cause: Schema.Defect()
}) {}

// What the memory store keeps cannot be changed through a reference a caller holds (an entry it was given or
// one it returned): only LedgerTamper changes stored data
const deepFreeze = <A>(value: A): A => {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value)
    // Indexed loops: no array of members allocated per object (this runs on every appended entry)
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) deepFreeze(value[i])
    } else {
      const keys = Object.keys(value)
      for (let i = 0; i < keys.length; i++) deepFreeze((value as Record<string, unknown>)[keys[i]!])
    }
  }
  return value
}

// Node objects packed, for a store method that takes them so
const packNodes = (written: ReadonlyArray<Merkle.Node>): PackedNodes | undefined => {
  const hashes = new Uint8Array(32 * written.length)
  const levels: Array<number> = []
  const indexes: Array<number> = []
  for (let i = 0; i < written.length; i++) {
    const node = written[i]!
    if (node.hash.length !== 32) return undefined
    hashes.set(node.hash, 32 * i)
    levels.push(node.level)
    indexes.push(node.index)
  }
  return { count: written.length, levels, indexes, hashes }
}

const storeError = (operation: string, message: string) =>
  new LedgerStoreError({ operation, cause: new Error(message) })

// An entry rebuilt from its stored canonical body, with the members in the order the ledger has always given
// them (the body's own order is the sorted canonical one)
const fromBody = (text: string, entryHash: string): LedgerEntry => {
  const body = JSON.parse(text) as Record<string, unknown>
  const entry: Record<string, unknown> = { seq: body.seq, kind: body.kind }
  if ("taskId" in body) entry.taskId = body.taskId
  if ("taskPrevHash" in body) entry.taskPrevHash = body.taskPrevHash
  if ("stepId" in body) entry.stepId = body.stepId
  if ("principal" in body) entry.principal = body.principal
  entry.at = body.at
  entry.payloadHash = body.payloadHash
  if ("payload" in body) entry.payload = body.payload
  entry.prevHash = body.prevHash
  entry.entryHash = entryHash
  return deepFreeze(entry as LedgerEntry)
}

const isLowerHex64 = (text: string): boolean => text.length === 64 && /^[0-9a-f]{64}$/.test(text)

const makeMemory = Effect.gen(function* () {
  const lock = yield* Semaphore.make(1)
  // Slot = seq, `slots` of them. Entries the ledger wrote encoded live in `arena` (no object per entry); entries
  // written as objects (`write`) or by tampering live in `objects`, which takes precedence (`undefined` there: a
  // deleted entry, a hole). An entry whose seq field was tampered with stays in its slot, and the ledger notices
  // that its seq field no longer matches its place. The indexes follow the stored fields, as a database's would.
  const arena = new EntryArena()
  const objects = new Map<number, LedgerEntry | undefined>()
  let slots = 0
  const objectsByHash = new Map<string, number>()
  // By task: its id (one string shared by its entries) and its seqs in append order
  const byTask = new Map<string, { readonly taskId: string; readonly seqs: Array<number> }>()
  // The task of each encoded entry (the arena keeps bytes only), for the task index's checks
  const taskOf: Array<string | undefined> = []
  const nodes = new NodeArray()
  const checkpoints: Array<CheckpointRecord> = [] // ascending size
  // The head record, as a database keeps it in a row of its own: only `write` (and tampering) moves it
  let head: LedgerHead = { size: 0, lastHash: genesisHash }

  const entryAt = (seq: number): LedgerEntry | undefined => {
    if (objects.has(seq)) return objects.get(seq)
    return seq < arena.count ? fromBody(arena.body(seq), arena.hashHex(seq)) : undefined
  }

  // The stored taskId of an entry, without rebuilding an encoded one
  const taskIdAt = (seq: number): unknown =>
    objects.has(seq) ? objects.get(seq)?.taskId : seq < arena.count ? taskOf[seq] : undefined

  const indexTask = (seq: number, taskId: string): string => {
    const known = byTask.get(taskId)
    if (known === undefined) {
      byTask.set(taskId, { taskId, seqs: [seq] })
      return taskId
    }
    const list = known.seqs
    // Appends arrive in seq order (O(1)); only a tampered entry can be indexed out of order
    if (list.length === 0 || list[list.length - 1]! < seq) list.push(seq)
    else if (!list.includes(seq)) list.push(seq)
    return known.taskId
  }

  const unindexTask = (seq: number, taskId: unknown): void => {
    if (typeof taskId !== "string") return
    const known = byTask.get(taskId)
    if (known !== undefined && known.seqs[known.seqs.length - 1] === seq) known.seqs.pop()
    if (known !== undefined && known.seqs.length === 0) byTask.delete(taskId)
  }

  const index = (seq: number, entry: LedgerEntry): void => {
    if (typeof entry.entryHash === "string") objectsByHash.set(entry.entryHash, seq)
    if (typeof entry.taskId === "string") indexTask(seq, entry.taskId)
  }

  const unindex = (seq: number, entry: LedgerEntry): void => {
    if (objectsByHash.get(entry.entryHash) === seq) objectsByHash.delete(entry.entryHash)
    unindexTask(seq, entry.taskId)
  }

  // Drops every slot from `size` on (a write always lands at the head, which tampering may have moved back)
  const truncate = (size: number): void => {
    if (slots <= size) return
    for (const seq of objects.keys()) if (seq >= size) objects.delete(seq)
    if (arena.count > size) arena.truncate({ ...arena.mark(), count: size })
    taskOf.length = Math.min(taskOf.length, size)
    slots = size
  }

  // Appends keep a task's list in seq order: the last live entry is found from the end in O(1)
  const lastOfTask = (taskId: string): Option.Option<EntryHash> => {
    const list = byTask.get(taskId)?.seqs ?? []
    for (let i = list.length - 1; i >= 0; i--) {
      const seq = list[i]!
      if (seq >= slots || taskIdAt(seq) !== taskId) continue
      if (objects.has(seq)) {
        const entry = objects.get(seq)
        if (entry !== undefined) return Option.some(entry.entryHash)
      } else return Option.some(arena.hashHex(seq) as EntryHash)
    }
    return Option.none()
  }

  // Validates a write's position and nodes before anything changes, so a refused write changes nothing
  const refusal = (
    first: number,
    count: number,
    seqOf: (i: number) => number,
    written: ReadonlyArray<Merkle.Node>
  ): LedgerStoreError | undefined => {
    for (let i = 0; i < count; i++) {
      if (seqOf(i) !== first + i) return storeError("write", `entry ${seqOf(i)} is not the next entry (${first + i})`)
    }
    const next = new Map<number, number>()
    for (const node of written) {
      const expected = next.get(node.level) ?? nodes.count(node.level)
      if (node.index !== expected)
        return storeError("write", `node (${node.level}, ${node.index}) is not the next node`)
      next.set(node.level, expected + 1)
    }
    return undefined
  }

  const checkpointIndex = (size: number): number => {
    let lo = 0
    let hi = checkpoints.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (checkpoints[mid]!.checkpoint.size < size) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  // Each level's next index, for a write's node checks (levels never exceed 64)
  const nextAt = new Array<number>(64)

  const packedRefusal = (first: number, count: number, packed: PackedNodes): LedgerStoreError | undefined => {
    if (count > 0 && first !== head.size)
      return storeError("write", `entry ${first} is not the next entry (${head.size})`)
    nextAt.fill(-1)
    for (let i = 0; i < packed.count; i++) {
      const level = packed.levels[i]!
      if (!(level >= 0 && level < 64)) return storeError("write", `node level ${level} is out of range`)
      const expected = nextAt[level]! >= 0 ? nextAt[level]! : nodes.count(level)
      if (packed.indexes[i] !== expected) {
        return storeError("write", `node (${level}, ${packed.indexes[i]}) is not the next node`)
      }
      nextAt[level] = expected + 1
    }
    if (packed.hashes.length < 32 * packed.count) return storeError("write", "node hashes missing")
    return undefined
  }

  const writePacked = (batch: EncodedEntries, packed: PackedNodes): Effect.Effect<void, LedgerStoreError> => {
    const size = head.size
    const refused = packedRefusal(batch.first, batch.count, packed)
    if (refused !== undefined) return Effect.fail(refused)
    const before = head
    truncate(size)
    const mark = arena.mark()
    for (let i = 0; i < batch.count; i++) {
      const taskId = batch.taskIds[i]
      // An entry of a task ends with its taskPrevHash member
      const task = taskId !== undefined
      arena.push(
        size + i,
        batch.bytes,
        batch.starts[i]!,
        batch.ends[i]!,
        batch.hashes,
        32 * i,
        batch.payloadHashAt[i]!,
        task
      )
      taskOf[size + i] = taskId === undefined ? undefined : indexTask(size + i, taskId)
    }
    slots = size + batch.count
    for (let i = 0; i < packed.count; i++) nodes.pushFrom(packed.levels[i]!, packed.indexes[i]!, packed.hashes, 32 * i)
    if (batch.count > 0) head = { size: slots, lastHash: arena.hashHex(slots - 1) as EntryHash }
    // Copied out of the ledger's scratch space for the rollback
    const levels = packed.levels.slice(0, packed.count)
    const indexes = packed.indexes.slice(0, packed.count)
    const taskIds = batch.taskIds.slice(0, batch.count)
    return UnitOfWork.onRollback(() => {
      for (let i = taskIds.length - 1; i >= 0; i--) unindexTask(size + i, taskIds[i])
      arena.truncate(mark)
      truncate(size)
      for (let i = levels.length - 1; i >= 0; i--) nodes.pop(levels[i]!, indexes[i]!)
      head = before
    })
  }

  const store = LedgerStore.of({
    durable: false,
    withAppendLock: (effect) => lock.withPermits(1)(effect),
    head: Effect.sync(() => head),
    write: (batch, written) =>
      Effect.suspend(() => {
        const size = head.size
        const refused = refusal(size, batch.length, (i) => batch[i]!.seq, written)
        if (refused !== undefined) return Effect.fail(refused)
        const before = head
        truncate(size)
        for (const entry of batch) {
          objects.set(entry.seq, deepFreeze(entry))
          index(entry.seq, entry)
        }
        slots = size + batch.length
        for (const node of written) nodes.push(node.level, node.index, node.hash)
        if (batch.length > 0) head = { size: size + batch.length, lastHash: batch[batch.length - 1]!.entryHash }
        // A unit of work that fails takes the entries and nodes back (the append lock is the unit's, so nothing
        // was appended after them)
        return UnitOfWork.onRollback(() => {
          for (let i = batch.length - 1; i >= 0; i--) unindex(batch[i]!.seq, batch[i]!)
          truncate(size)
          for (let i = written.length - 1; i >= 0; i--) nodes.pop(written[i]!.level, written[i]!.index)
          head = before
        })
      }),
    writeEncoded: (batch, written) =>
      Effect.suspend(() => {
        const packed = packNodes(written)
        return packed === undefined
          ? Effect.fail(storeError("write", "a node hash is not 32 bytes"))
          : writePacked(batch, packed)
      }),
    writePacked: (batch, packed) => Effect.suspend(() => writePacked(batch, packed)),
    nodes: (ids) => Effect.sync(() => ids.map((id) => nodes.get(id.level, id.index))),
    entries: (from, to) =>
      Effect.sync(() => {
        const out: Array<LedgerEntry> = []
        const end = Math.min(to, slots)
        for (let seq = Math.max(0, from); seq < end; seq++) {
          const entry = entryAt(seq)
          if (entry !== undefined) out.push(entry)
        }
        return out
      }),
    findByHash: (entryHash) =>
      Effect.sync(() => {
        const seq = objectsByHash.get(entryHash)
        const entry = seq === undefined || seq >= slots ? undefined : entryAt(seq)
        // Match on the stored field, as a database index would after tampering
        if (entry !== undefined && entry.entryHash === entryHash) return Option.some(entry)
        if (typeof entryHash !== "string" || !isLowerHex64(entryHash)) return Option.none()
        const found = arena.find(Buffer.from(entryHash, "hex")).filter((seq) => seq < slots && !objects.has(seq))
        return found.length === 0 ? Option.none() : Option.some(entryAt(found[found.length - 1]!)!)
      }),
    lastOfTask: (taskId) => Effect.sync(() => lastOfTask(taskId)),
    lastOfTasks: (taskIds) => Effect.sync(() => taskIds.map(lastOfTask)),
    findByTask: (taskId) =>
      Effect.sync(() => {
        const out: Array<LedgerEntry> = []
        for (const seq of byTask.get(taskId)?.seqs ?? []) {
          if (seq >= slots || taskIdAt(seq) !== taskId) continue
          const entry = entryAt(seq)
          if (entry !== undefined && entry.taskId === taskId) out.push(entry)
        }
        return out.sort((a, b) => a.seq - b.seq)
      }),
    putCheckpoint: (checkpoint) =>
      Effect.sync(() => {
        const i = checkpointIndex(checkpoint.size)
        const existing = checkpoints[i]
        if (existing !== undefined && existing.checkpoint.size === checkpoint.size) return existing
        const record: CheckpointRecord = deepFreeze({ checkpoint: { ...checkpoint } })
        checkpoints.splice(i, 0, record)
        return record
      }),
    checkpoints: Effect.sync(() => checkpoints.slice()),
    latestCheckpoint: Effect.sync(() => Option.fromNullishOr(checkpoints[checkpoints.length - 1])),
    putAnchor: (size, anchor) =>
      Effect.suspend(() => {
        const i = checkpointIndex(size)
        const existing = checkpoints[i]
        if (existing === undefined || existing.checkpoint.size !== size) {
          return Effect.fail(storeError("putAnchor", `no checkpoint of size ${size}`))
        }
        checkpoints[i] = deepFreeze({ checkpoint: existing.checkpoint, anchor: { ...anchor } })
        return Effect.void
      })
  })

  const tamper = LedgerTamper.of({
    replaceEntry: (seq, fields) =>
      Effect.suspend(() => {
        if (!Number.isInteger(seq) || seq < 0 || seq >= slots) {
          return Effect.fail(storeError("replaceEntry", `no entry ${seq}`))
        }
        const entry = fields === undefined ? undefined : deepFreeze(structuredClone(fields) as LedgerEntry)
        objects.set(seq, entry)
        if (entry !== undefined) index(seq, entry)
        return Effect.void
      }),
    replaceNode: (node) =>
      Effect.try({
        try: () => nodes.overwrite(node.level, node.index, node.hash),
        catch: (cause) => new LedgerStoreError({ operation: "replaceNode", cause })
      }),
    replaceHead: (next) =>
      Effect.sync(() => {
        head = { size: next.size, lastHash: next.lastHash }
      }),
    replaceAnchor: (size, receipt) =>
      Effect.suspend(() => {
        const i = checkpointIndex(size)
        const existing = checkpoints[i]
        if (existing === undefined || existing.checkpoint.size !== size) {
          return Effect.fail(storeError("replaceAnchor", `no checkpoint of size ${size}`))
        }
        checkpoints[i] = deepFreeze(
          receipt === undefined
            ? { checkpoint: existing.checkpoint }
            : { checkpoint: existing.checkpoint, anchor: structuredClone(receipt) as AnchorReceipt }
        )
        return Effect.void
      })
  })

  return Context.make(LedgerStore, store).pipe(Context.add(LedgerTamper, tamper))
})

/**
 * The storage contract under `Ledger`. See the module documentation for what an implementation guarantees.
 *
 * @category services
 * @since 0.1.0
 */
export class LedgerStore extends Context.Service<
  LedgerStore,
  {
    /**
     * Whether what the store keeps outlives the process (a database: `true`; process memory: `false`). A ledger
     * over a durable store needs a signing key that outlives the process too, and says so when it has none.
     */
    readonly durable: boolean
    /** Runs `effect` as the only appender (across processes); see the module documentation. */
    readonly withAppendLock: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | LedgerStoreError, R>
    readonly head: Effect.Effect<LedgerHead, LedgerStoreError>
    /**
     * Appends entries (seq `head.size`, `head.size + 1`, …) and the Merkle nodes they complete, all or nothing.
     * Called inside `withAppendLock`.
     */
    readonly write: (
      entries: ReadonlyArray<LedgerEntry>,
      nodes: ReadonlyArray<Merkle.Node>
    ) => Effect.Effect<void, LedgerStoreError>
    /**
     * `write` for entries given encoded instead of as objects (optional): a store that keeps entries as their
     * canonical text saves the ledger building, and itself keeping, an object per entry. Reads return the entries
     * exactly as `write` would have stored the ledger's entry objects, members in the same order. Called inside
     * `withAppendLock`; the ledger calls `write` on stores without it.
     */
    readonly writeEncoded?: (
      entries: EncodedEntries,
      nodes: ReadonlyArray<Merkle.Node>
    ) => Effect.Effect<void, LedgerStoreError>
    /**
     * `writeEncoded` with the nodes packed too (optional): no object per node on either side. The ledger prefers
     * it to `writeEncoded`, and `writeEncoded` to `write`.
     */
    readonly writePacked?: (entries: EncodedEntries, nodes: PackedNodes) => Effect.Effect<void, LedgerStoreError>
    /** The stored hashes of these nodes, in order; `undefined` for a node that is not stored. */
    readonly nodes: (
      ids: ReadonlyArray<Merkle.NodeId>
    ) => Effect.Effect<ReadonlyArray<Uint8Array | undefined>, LedgerStoreError>
    /** The stored entries with `from <= seq < to`, by seq (missing rows are skipped, never invented). */
    readonly entries: (from: number, to: number) => Effect.Effect<ReadonlyArray<LedgerEntry>, LedgerStoreError>
    /** The entry whose stored `entryHash` is this hash. */
    readonly findByHash: (entryHash: string) => Effect.Effect<Option.Option<LedgerEntry>, LedgerStoreError>
    /** The entries whose stored `taskId` is this id, by seq. */
    readonly findByTask: (taskId: TaskId | string) => Effect.Effect<ReadonlyArray<LedgerEntry>, LedgerStoreError>
    /**
     * The stored `entryHash` of the task's last entry (highest seq), seeing the writes of the current append and
     * its enclosing unit of work. Called inside `withAppendLock` to link an entry to its task's previous one
     * (`taskPrevHash`). A store without it is asked `findByTask` instead, which reads the whole task.
     */
    readonly lastOfTask?: (taskId: string) => Effect.Effect<Option.Option<EntryHash>, LedgerStoreError>
    /**
     * `lastOfTask` for several tasks in one call (a batch names up to one task per entry), in the order given;
     * optional, the ledger asks `lastOfTask` per task without it.
     */
    readonly lastOfTasks?: (
      taskIds: ReadonlyArray<string>
    ) => Effect.Effect<ReadonlyArray<Option.Option<EntryHash>>, LedgerStoreError>
    /**
     * Pending entries (optional): a store that has them lets `Ledger.record` stage entries in a unit of work
     * instead of appending them under the append lock; the ledger's sequencer integrates them. Without it,
     * `record` appends.
     */
    readonly pending?: LedgerPending | undefined
    /** Stores a checkpoint unless one of the same size exists; returns the stored record either way. */
    readonly putCheckpoint: (checkpoint: Checkpoint) => Effect.Effect<CheckpointRecord, LedgerStoreError>
    /** Every stored checkpoint, by ascending size. */
    readonly checkpoints: Effect.Effect<ReadonlyArray<CheckpointRecord>, LedgerStoreError>
    readonly latestCheckpoint: Effect.Effect<Option.Option<CheckpointRecord>, LedgerStoreError>
    /** Records (or replaces) the anchor receipt of the checkpoint of this size. */
    readonly putAnchor: (size: number, anchor: AnchorReceipt) => Effect.Effect<void, LedgerStoreError>
  }
>()("@mandate/core/LedgerStore") {
  /**
   * In-process store (also provides `LedgerTamper`, for tests). Nodes are packed per level, so a million
   * entries need about 64 MB of node storage besides the entries themselves.
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layerMemory: Layer.Layer<LedgerStore | LedgerTamper> = Layer.effectContext(makeMemory)
}
