/**
 * The locked half of an append: under the store's append lock, read the head, chain the prepared entries
 * (`prevHash`, the per-task `taskPrevHash`, `entryHash`), extend the Merkle tree from its frontier, and write
 * entries and nodes in one `LedgerStore.write`. The frontier the last append left is kept in this process,
 * keyed by the head (size and last hash): the chain commits to every earlier entry, so an equal head means an
 * equal tree, also after a rolled-back unit of work; otherwise it is read from the store.
 *
 * @since 0.1.0
 */
import { Clock, Effect, Option } from "effect"
import * as Canonical from "../Canonical.ts"
import type { EntryHash } from "../Ids.ts"
import type { AppendReceipt } from "../Ledger.ts"
import { genesisHash, type LedgerEntry } from "../LedgerEntry.ts"
import { type LedgerStore, LedgerStoreError } from "../LedgerStore.ts"
import * as Merkle from "../Merkle.ts"
import type { Prepared } from "./ledgerInput.ts"
import type { LedgerTree } from "./ledgerTree.ts"

/**
 * The canonical JSON (RFC 8785) of an entry body, written straight in sorted member order: exactly
 * `Canonical.encode(entry without entryHash)`, without sorting keys or walking values per entry. The principal and
 * payload are spliced as the canonical text `prepare` made of them; the other members are strings (ids checked
 * by their schemas, hex hashes) and safe integers, whose canonical forms are `JSON.stringify` and `String`.
 * Member order (UTF-16 code units): at, kind, payload, payloadHash, prevHash, principal, seq, stepId, taskId,
 * taskPrevHash. Written in two parts, split where the `payloadHash` digits start, so the store learns where they
 * are (the memory store keeps the hashes as raw bytes).
 */
const bodyHead = (p: Prepared, at: number): string => {
  const head = `{"at":${String(at)},"kind":${JSON.stringify(p.kind)}`
  return p.storePayload ? `${head},"payload":${p.payloadText},"payloadHash":"` : `${head},"payloadHash":"`
}

/** The rest of the body, from the `payloadHash` digits on: see `bodyHead`. */
const bodyRest = (p: Prepared, seq: number, prevHash: string, taskPrevHash: string | undefined): string => {
  let text = `${p.payloadHash}","prevHash":"${prevHash}"`
  if (p.principalText !== undefined) text += `,"principal":${p.principalText}`
  text += `,"seq":${String(seq)}`
  if (p.stepId !== undefined) text += `,"stepId":${JSON.stringify(p.stepId)}`
  if (p.taskId !== undefined) text += `,"taskId":${JSON.stringify(p.taskId)},"taskPrevHash":"${taskPrevHash}"`
  return `${text}}`
}

/** The stored entry object (for stores without `writeEncoded`), with the members in the order they always had. */
const entryObject = (
  p: Prepared,
  seq: number,
  at: number,
  prevHash: EntryHash,
  taskPrevHash: string | undefined,
  entryHash: EntryHash
): LedgerEntry => {
  const entry: Record<string, unknown> = { seq, kind: p.kind }
  if (p.taskId !== undefined) {
    entry.taskId = p.taskId
    entry.taskPrevHash = taskPrevHash
  }
  if (p.stepId !== undefined) entry.stepId = p.stepId
  if (p.principal !== undefined) entry.principal = p.principal
  entry.at = at
  entry.payloadHash = p.payloadHash
  // A copy parsed back from the canonical text: exactly what was hashed, out of reach of the caller's objects
  if (p.storePayload) entry.payload = JSON.parse(p.payloadText)
  entry.prevHash = prevHash
  entry.entryHash = entryHash
  return entry as LedgerEntry
}

/**
 * The append path's scratch space, reused by every append of one ledger (appends are serialised by the store's
 * lock, and the store copies what it keeps before the write completes).
 */
class BatchBuffers {
  bytes: Buffer = Buffer.allocUnsafe(256 * 1024)
  hashes: Buffer = Buffer.allocUnsafe(32 * 1024)
  starts: Array<number> = []
  ends: Array<number> = []
  payloadHashAt: Array<number> = []
  taskIds: Array<string | undefined> = []

  first = 0
  count = 0

  /** Ready for `count` entries from seq `first`; itself the `EncodedEntries` a store is handed (no copy per batch). */
  reset(first: number, count: number): this {
    // A batch of huge payloads does not keep its buffer for the life of the ledger
    if (this.bytes.length > 16 * 1024 * 1024) this.bytes = Buffer.allocUnsafe(256 * 1024)
    if (this.hashes.length < 32 * count) this.hashes = Buffer.allocUnsafe(32 * count)
    this.first = first
    this.count = count
    this.starts.length = count
    this.ends.length = count
    this.payloadHashAt.length = count
    this.taskIds.length = count
    return this
  }

  /** The bytes buffer, grown (keeping `[0, used)`) to hold `more` bytes past `used`. */
  room(used: number, more: number): Buffer {
    if (used + more > this.bytes.length) {
      const grown = Buffer.allocUnsafe(Math.max(2 * this.bytes.length, used + more))
      this.bytes.copy(grown, 0, 0, used)
      this.bytes = grown
    }
    return this.bytes
  }
}

const writePrevHash = (into: Buffer, offset: number, prevHash: string): void => {
  if (into.write(prevHash, offset, "hex") !== 32) throw new RangeError(`Not a SHA-256 hex digest: ${prevHash}`)
}

// A view, not `Buffer#subarray`: a Buffer per call costs more than hashing a leaf
const view = (bytes: Uint8Array, start: number, end: number): Uint8Array =>
  new Uint8Array(bytes.buffer, bytes.byteOffset + start, end - start)

/** What the append path needs from the ledger. */
export interface AppendContext {
  readonly store: LedgerStore["Service"]
  readonly tree: LedgerTree
  /** Called with the new size after each successful write (the anchoring trigger). */
  readonly appended: (size: number) => void
}

/** Appends prepared entries, consecutively, or none of them. */
export type Appender = (prepared: ReadonlyArray<Prepared>) => Effect.Effect<Array<AppendReceipt>, LedgerStoreError>

const isSha256Hex = (text: unknown): boolean => typeof text === "string" && /^[0-9a-fA-F]{64}$/.test(text)

export const make = (ctx: AppendContext): Appender => {
  const buffers = new BatchBuffers()
  const { store, tree } = ctx
  let cache: { size: number; lastHash: string; frontier: ReadonlyArray<Uint8Array> } = {
    size: 0,
    lastHash: genesisHash,
    frontier: []
  }

  const lastOfTask = (taskId: string): Effect.Effect<Option.Option<EntryHash>, LedgerStoreError> =>
    store.lastOfTask !== undefined
      ? store.lastOfTask(taskId)
      : Effect.map(store.findByTask(taskId), (all) => Option.fromNullishOr(all[all.length - 1]?.entryHash))

  // One store call for the batch where the store offers it, one per task otherwise
  const lastOfTasks = (
    taskIds: ReadonlyArray<string>
  ): Effect.Effect<ReadonlyArray<Option.Option<EntryHash>>, LedgerStoreError> =>
    store.lastOfTasks !== undefined ? store.lastOfTasks(taskIds) : Effect.forEach(taskIds, lastOfTask)

  // Built once: a generator function per call is cheaper than an `Effect.gen` closure per call
  const locked = Effect.fnUntraced(function* (prepared: ReadonlyArray<Prepared>) {
    const head = yield* store.head
    // The head this process left: its frontier is known and its hash was checked when it was computed
    const known = cache.size === head.size && cache.lastHash === head.lastHash
    const frontier = known ? cache.frontier : yield* tree.frontier(head.size)
    const at = yield* Clock.currentTimeMillis
    const entries: Array<LedgerEntry> = []
    const leaves: Array<Uint8Array> = []
    const receipts: Array<AppendReceipt> = []
    let prevHash: EntryHash = head.lastHash
    if (!known && !isSha256Hex(prevHash)) {
      return yield* new LedgerStoreError({
        operation: "append",
        cause: new Error(`the last stored entry's hash is not a SHA-256 digest: ${String(prevHash)}`)
      })
    }
    // Each task's previous entry, for the per-task chain (taskPrevHash), read under the append lock
    const taskLast = new Map<string, EntryHash>()
    const tasks: Array<string> = []
    for (const p of prepared) {
      if (p.taskId === undefined || taskLast.has(p.taskId)) continue
      taskLast.set(p.taskId, genesisHash)
      tasks.push(p.taskId)
    }
    if (tasks.length > 0) {
      const lasts = yield* lastOfTasks(tasks)
      for (let i = 0; i < tasks.length; i++) {
        const last = lasts[i]!
        if (Option.isSome(last)) taskLast.set(tasks[i]!, last.value)
      }
    }
    // Each entry is written as prevHash ‖ body into the batch buffer and hashed in place; the bodies stay
    // there for a store that takes them encoded
    const encoded = store.writeEncoded !== undefined
    const batch = buffers.reset(head.size, prepared.length)
    let offset = 0
    for (let i = 0; i < prepared.length; i++) {
      const p = prepared[i]!
      const seq = head.size + i
      const taskPrevHash = p.taskId === undefined ? undefined : taskLast.get(p.taskId)!
      const headText = bodyHead(p, at)
      const rest = bodyRest(p, seq, prevHash, taskPrevHash)
      const bytes = buffers.room(offset, 32 + 3 * (headText.length + rest.length))
      // prevHash as 32 raw bytes: the previous entry's, already in the batch, or the head's
      if (i === 0) writePrevHash(bytes, offset, prevHash)
      else bytes.set(view(batch.hashes, 32 * (i - 1), 32 * i), offset)
      const digits = offset + 32 + bytes.write(headText, offset + 32, "utf8")
      const end = digits + bytes.write(rest, digits, "utf8")
      const entryHash = Canonical.sha256Hex(view(bytes, offset, end)) as EntryHash
      batch.starts[i] = offset + 32
      batch.ends[i] = end
      batch.payloadHashAt[i] = digits
      batch.taskIds[i] = p.taskId
      offset = end
      batch.hashes.write(entryHash, 32 * i, "hex")
      // The leaf's data is the entry hash's bytes
      leaves.push(Merkle.leafHash(view(batch.hashes, 32 * i, 32 * i + 32)))
      if (!encoded) entries.push(entryObject(p, seq, at, prevHash, taskPrevHash, entryHash))
      receipts.push({ seq, entryHash, prevHash, leafIndex: seq })
      if (p.taskId !== undefined) taskLast.set(p.taskId, entryHash)
      prevHash = entryHash
    }
    const appended = Merkle.append(head.size, frontier, leaves)
    if (store.writeEncoded !== undefined) {
      yield* store.writeEncoded(batch, appended.nodes)
    } else {
      yield* store.write(entries, appended.nodes)
    }
    const size = head.size + prepared.length
    cache = { size, lastHash: prevHash, frontier: appended.frontier }
    ctx.appended(size)
    return receipts
  })
  return (prepared) => store.withAppendLock(locked(prepared))
}
