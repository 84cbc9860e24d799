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
import type { EntryHash } from "../Ids.ts"
import type { AppendReceipt } from "../Ledger.ts"
import { genesisHash, type LedgerEntry } from "../LedgerEntry.ts"
import { type LedgerStore, LedgerStoreError } from "../LedgerStore.ts"
import * as Merkle from "../Merkle.ts"
import { hashEntryTextHex } from "./entryHash.ts"
import type { Prepared } from "./ledgerInput.ts"
import type { LedgerTree } from "./ledgerTree.ts"

/**
 * The canonical JSON (RFC 8785) of an entry body, written straight in sorted member order: exactly
 * `Canonical.encode(entry without entryHash)`, without sorting keys or walking values per entry. The principal and
 * payload are spliced as the canonical text `prepare` made of them; the other members are strings (ids checked
 * by their schemas, hex hashes) and safe integers, whose canonical forms are `JSON.stringify` and `String`.
 * Member order (UTF-16 code units): at, kind, payload, payloadHash, prevHash, principal, seq, stepId, taskId,
 * taskPrevHash.
 */
const bodyText = (p: Prepared, seq: number, at: number, prevHash: string, taskPrevHash: string | undefined): string => {
  let text = `{"at":${String(at)},"kind":${JSON.stringify(p.kind)}`
  if (p.payload !== undefined) text += `,"payload":${p.payloadText}`
  text += `,"payloadHash":"${p.payloadHash}","prevHash":"${prevHash}"`
  if (p.principalText !== undefined) text += `,"principal":${p.principalText}`
  text += `,"seq":${String(seq)}`
  if (p.stepId !== undefined) text += `,"stepId":${JSON.stringify(p.stepId)}`
  if (p.taskId !== undefined) text += `,"taskId":${JSON.stringify(p.taskId)},"taskPrevHash":"${taskPrevHash}"`
  return `${text}}`
}

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
  const hashBytes = Buffer.alloc(32)
  const { store, tree } = ctx
  let cache: { size: number; lastHash: string; frontier: ReadonlyArray<Uint8Array> } = {
    size: 0,
    lastHash: genesisHash,
    frontier: []
  }

  const frontierOf = (head: { readonly size: number; readonly lastHash: string }) =>
    cache.size === head.size && cache.lastHash === head.lastHash
      ? Effect.succeed(cache.frontier)
      : tree.frontier(head.size)

  const lastOfTask = (taskId: string): Effect.Effect<Option.Option<EntryHash>, LedgerStoreError> =>
    store.lastOfTask !== undefined
      ? store.lastOfTask(taskId)
      : Effect.map(store.findByTask(taskId), (all) => Option.fromNullishOr(all[all.length - 1]?.entryHash))

  // One store call for the batch where the store offers it, one per task otherwise
  const lastOfTasks = (
    taskIds: ReadonlyArray<string>
  ): Effect.Effect<ReadonlyArray<Option.Option<EntryHash>>, LedgerStoreError> =>
    store.lastOfTasks !== undefined ? store.lastOfTasks(taskIds) : Effect.forEach(taskIds, lastOfTask)

  return (prepared) =>
    store.withAppendLock(
      Effect.gen(function* () {
        const head = yield* store.head
        const frontier = yield* frontierOf(head)
        const at = yield* Clock.currentTimeMillis
        const entries: Array<LedgerEntry> = []
        const leaves: Array<Uint8Array> = []
        const receipts: Array<AppendReceipt> = []
        let prevHash: EntryHash = head.lastHash
        if (!isSha256Hex(prevHash)) {
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
        for (let i = 0; i < prepared.length; i++) {
          const p = prepared[i]!
          const seq = head.size + i
          const taskPrevHash = p.taskId === undefined ? undefined : taskLast.get(p.taskId)!
          const entryHash = hashEntryTextHex(prevHash, bodyText(p, seq, at, prevHash, taskPrevHash)) as EntryHash
          // The stored entry, with the members in the order they always had
          const entry: Record<string, unknown> = { seq, kind: p.kind }
          if (p.taskId !== undefined) {
            entry.taskId = p.taskId
            entry.taskPrevHash = taskPrevHash
          }
          if (p.stepId !== undefined) entry.stepId = p.stepId
          if (p.principal !== undefined) entry.principal = p.principal
          entry.at = at
          entry.payloadHash = p.payloadHash
          if (p.payload !== undefined) entry.payload = p.payload
          entry.prevHash = prevHash
          entry.entryHash = entryHash
          entries.push(entry as LedgerEntry)
          // The leaf's data is the entry hash's bytes, decoded into a reused buffer (leafHash copies them)
          hashBytes.write(entryHash, 0, "hex")
          leaves.push(Merkle.leafHash(hashBytes))
          receipts.push({ seq, entryHash, prevHash, leafIndex: seq })
          if (p.taskId !== undefined) taskLast.set(p.taskId, entryHash)
          prevHash = entryHash
        }
        const appended = Merkle.append(head.size, frontier, leaves)
        yield* store.write(entries, appended.nodes)
        const size = head.size + prepared.length
        cache = { size, lastHash: prevHash, frontier: appended.frontier }
        ctx.appended(size)
        return receipts
      })
    )
}
