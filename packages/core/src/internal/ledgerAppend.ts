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
import { type LedgerHead, type LedgerStore, LedgerStoreError, type PackedNodes } from "../LedgerStore.ts"
import type * as Merkle from "../Merkle.ts"
import type { Prepared } from "./ledgerInput.ts"
import type { LedgerTree } from "./ledgerTree.ts"
import { digestHashesInto } from "./sha256.ts"

// Kinds, step ids and task ids repeat from entry to entry (a task's every entry names it): each distinct one is
// quoted by JSON.stringify once, a lookup costing a fraction of it. Bounded: cleared when full.
const quotedKept = new Map<string, string>()
const quoted = (text: string): string => {
  let json = quotedKept.get(text)
  if (json === undefined) {
    json = JSON.stringify(text)
    if (quotedKept.size >= 4096) quotedKept.clear()
    quotedKept.set(text, json)
  }
  return json
}

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
  const head = `{"at":${String(at)},"kind":${quoted(p.kind)}`
  return p.storePayload ? `${head},"payload":${p.payloadText},"payloadHash":"` : `${head},"payloadHash":"`
}

/** The rest of the body, from the `payloadHash` digits on: see `bodyHead`. */
const bodyRest = (p: Prepared, seq: number, prevHash: string, taskPrevHash: string | undefined): string => {
  let text = `${p.payloadHash}","prevHash":"${prevHash}"`
  if (p.principalText !== undefined) text += `,"principal":${p.principalText}`
  text += `,"seq":${String(seq)}`
  if (p.stepId !== undefined) text += `,"stepId":${quoted(p.stepId)}`
  if (p.taskId !== undefined) text += `,"taskId":${quoted(p.taskId)},"taskPrevHash":"${taskPrevHash}"`
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
 * The append path's scratch space for entry bodies, reused by the appends of one ledger that do not overlap (see
 * `make`; the store copies what it keeps before the write completes).
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

/**
 * The Merkle nodes a batch completes, packed (the `PackedNodes` a store is handed), and the tree's frontier as a
 * stack of 32-byte hashes: what `Merkle.append` computes, byte for byte, with no object or Buffer per node. Leaves
 * are hashed in JavaScript (one compression block: cheaper than a node:crypto call), interior nodes by node:crypto
 * (two blocks: the other way round).
 */
class NodeBuffers implements PackedNodes {
  hashes: Buffer = Buffer.allocUnsafe(64 * 1024)
  levels: Array<number> = []
  indexes: Array<number> = []
  count = 0
  /** The frontier during a batch, highest subtree first; `depth` of them. */
  stack: Buffer = Buffer.allocUnsafe(64 * HASH)
  depth = 0

  /**
   * Ready for a batch of `leaves` leaves over `frontier`. From here to `frontier()` the caller runs synchronously:
   * appenders of one ledger may run concurrently on a store whose lock is optimistic (Postgres), so nothing here
   * outlives a synchronous stretch, and the frontier a write leaves is a snapshot of its own.
   */
  reset(leaves: number, frontier: Frontier): void {
    // A batch completes at most one interior node per leaf
    if (this.hashes.length < 2 * HASH * leaves) this.hashes = Buffer.allocUnsafe(2 * HASH * leaves)
    this.count = 0
    this.levels.length = 0
    this.indexes.length = 0
    this.stack.set(frontier.hashes.subarray(0, HASH * frontier.depth))
    this.depth = frontier.depth
  }

  /** The frontier now, as a snapshot (the batch's last leaf appended). */
  frontier(): Frontier {
    return { hashes: Buffer.from(this.stack.subarray(0, HASH * this.depth)), depth: this.depth }
  }

  /** Appends leaf `index`, the leaf hash of `entryHashes[at, at + 32)`, and the interior nodes it completes. */
  append(index: number, entryHashes: Uint8Array, at: number): void {
    const hashes = this.hashes
    let k = this.count
    let out = HASH * k
    digestHashesInto(0x00, entryHashes, at, undefined, 0, hashes, out)
    this.levels.push(0)
    this.indexes.push(index)
    let level = 0
    // A right child (odd index) completes its parent; the left sibling is the frontier's last subtree
    while (index % 2 === 1) {
      this.depth--
      const left = HASH * this.depth
      const stack = this.stack
      nodeInput[0] = 0x01
      for (let i = 0; i < HASH; i++) nodeInput[1 + i] = stack[left + i]!
      for (let i = 0; i < HASH; i++) nodeInput[1 + HASH + i] = hashes[out + i]!
      k++
      out = HASH * k
      hashes.write(Canonical.sha256Hex(nodeInput), out, "hex")
      index = (index - 1) / 2
      level++
      this.levels.push(level)
      this.indexes.push(index)
    }
    this.count = k + 1
    const top = HASH * this.depth
    for (let i = 0; i < HASH; i++) this.stack[top + i] = hashes[out + i]!
    this.depth++
  }

  /** The nodes as objects (each hash its own copy), for a store without `writePacked`. */
  objects(): Array<Merkle.Node> {
    const nodes: Array<Merkle.Node> = []
    for (let i = 0; i < this.count; i++) {
      const hash = Buffer.allocUnsafe(HASH)
      this.hashes.copy(hash, 0, HASH * i, HASH * i + HASH)
      nodes.push({ level: this.levels[i]!, index: this.indexes[i]!, hash })
    }
    return nodes
  }
}

const HASH = 32

/** A tree's frontier: the hashes of `Merkle.subtreeNodes(0, size)`, highest subtree first, packed. Never changed. */
interface Frontier {
  readonly hashes: Uint8Array
  readonly depth: number
}

/** The frontier from the store's nodes; `undefined` when a node is not a SHA-256 digest (a tampered store). */
const packFrontier = (size: number, nodes: ReadonlyArray<Uint8Array>): Frontier | undefined => {
  let expected = 0
  for (let rest = size; rest > 0; rest = Math.floor(rest / 2)) expected += rest % 2
  if (expected !== nodes.length) {
    throw new RangeError(`A tree of ${size} leaves has a frontier of ${expected} nodes, got ${nodes.length}`)
  }
  const hashes = new Uint8Array(HASH * nodes.length)
  for (let i = 0; i < nodes.length; i++) {
    if (nodes[i]!.length !== HASH) return undefined
    hashes.set(nodes[i]!, HASH * i)
  }
  return { hashes, depth: nodes.length }
}

/** The append path's scratch space (see `BatchBuffers`, `NodeBuffers`). */
interface Scratch {
  readonly batch: BatchBuffers
  readonly nodes: NodeBuffers
}

// 0x01 ‖ left ‖ right, filled and hashed synchronously
const nodeInput = Buffer.alloc(1 + 2 * HASH, 0x01)

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
  // One set of scratch buffers, reused while appends of this ledger come one after another (the memory store's
  // lock); an append that starts while another is between its hashing and the end of its write (a store whose lock
  // is optimistic) gets its own
  let spare: Scratch | undefined = { batch: new BatchBuffers(), nodes: new NodeBuffers() }
  const { store, tree } = ctx
  // The head the last successful write of this process left, and its tree's frontier
  let cache: { size: number; lastHash: string; frontier: Frontier } = {
    size: 0,
    lastHash: genesisHash,
    frontier: { hashes: new Uint8Array(0), depth: 0 }
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

  // A chain of `flatMap`s, not a generator: what an append call costs counts as much as what an entry costs (the
  // runtime records a transition's few entries per call)
  const locked = (prepared: ReadonlyArray<Prepared>): Effect.Effect<Array<AppendReceipt>, LedgerStoreError> =>
    Effect.flatMap(store.head, (head) => {
      // The head this process left: its frontier is known and its hash was checked when it was computed
      const known = cache.size === head.size && cache.lastHash === head.lastHash
      return Effect.flatMap(
        known
          ? Effect.succeed(cache.frontier)
          : Effect.map(tree.frontier(head.size), (stored) => packFrontier(head.size, stored)),
        (frontier) => {
          if (frontier === undefined) {
            return Effect.fail(
              new LedgerStoreError({
                operation: "append",
                cause: new Error("a stored Merkle frontier node is not a SHA-256 digest")
              })
            )
          }
          return Effect.flatMap(Clock.currentTimeMillis, (at) => {
            if (!known && !isSha256Hex(head.lastHash)) {
              return Effect.fail(
                new LedgerStoreError({
                  operation: "append",
                  cause: new Error(`the last stored entry's hash is not a SHA-256 digest: ${String(head.lastHash)}`)
                })
              )
            }
            // Each task's previous entry, for the per-task chain (taskPrevHash), read under the append lock
            const taskLast = new Map<string, EntryHash>()
            const tasks: Array<string> = []
            for (const p of prepared) {
              if (p.taskId === undefined || taskLast.has(p.taskId)) continue
              taskLast.set(p.taskId, genesisHash)
              tasks.push(p.taskId)
            }
            if (tasks.length === 0) return chain(prepared, head, frontier, at, taskLast)
            return Effect.flatMap(lastOfTasks(tasks), (lasts) => {
              for (let i = 0; i < tasks.length; i++) {
                const last = lasts[i]!
                if (Option.isSome(last)) taskLast.set(tasks[i]!, last.value)
              }
              return chain(prepared, head, frontier, at, taskLast)
            })
          })
        }
      )
    })

  // Chains and hashes the entries, builds the nodes, and writes them
  const chain = (
    prepared: ReadonlyArray<Prepared>,
    head: LedgerHead,
    frontier: Frontier,
    at: number,
    taskLast: Map<string, EntryHash>
  ): Effect.Effect<Array<AppendReceipt>, LedgerStoreError> => {
    const entries: Array<LedgerEntry> = []
    const receipts: Array<AppendReceipt> = []
    let prevHash: EntryHash = head.lastHash
    // Each entry is written as prevHash ‖ body into the batch buffer and hashed in place; the bodies stay
    // there for a store that takes them encoded
    const encoded = store.writePacked !== undefined || store.writeEncoded !== undefined
    // From here to the write, synchronous: the scratch buffers are this append's alone
    const scratch = spare ?? { batch: new BatchBuffers(), nodes: new NodeBuffers() }
    spare = undefined
    const buffers = scratch.batch
    const nodes = scratch.nodes
    const batch = buffers.reset(head.size, prepared.length)
    nodes.reset(prepared.length, frontier)
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
      else batch.hashes.copy(bytes, offset, 32 * (i - 1), 32 * i)
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
      nodes.append(seq, batch.hashes, 32 * i)
      if (!encoded) entries.push(entryObject(p, seq, at, prevHash, taskPrevHash, entryHash))
      receipts.push({ seq, entryHash, prevHash, leafIndex: seq })
      if (p.taskId !== undefined) taskLast.set(p.taskId, entryHash)
      prevHash = entryHash
    }
    const after = nodes.frontier()
    const lastHash = prevHash
    const written =
      store.writePacked !== undefined
        ? store.writePacked(batch, nodes)
        : store.writeEncoded !== undefined
          ? store.writeEncoded(batch, nodes.objects())
          : store.write(entries, nodes.objects())
    return Effect.map(written, () => {
      spare = scratch
      const size = head.size + prepared.length
      cache = { size, lastHash, frontier: after }
      ctx.appended(size)
      return receipts
    })
  }
  return (prepared) => store.withAppendLock(locked(prepared))
}
