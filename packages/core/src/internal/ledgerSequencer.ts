/**
 * The ledger's sequencer, as Certificate Transparency logs have one (Trillian's sequencer, Tessera's batched
 * integration): on a store with pending entries (`LedgerStore.pending`), `Ledger.record` stages a unit of work's
 * entries in its transaction, without a position and without the append lock; the sequencer then integrates
 * them in staging order, a batch per transaction, through the ledger's one append path (`ledgerAppend.ts`: seq,
 * `prevHash`, `taskPrevHash`, entry hashes and Merkle nodes are computed there, once, as for `append`).
 *
 * Every ledger over such a store runs the loop; the store lets one sequencer at a time take a batch (Postgres:
 * a transaction-scoped advisory lock, released when its holder's transaction ends, also when its session dies),
 * so another process takes over at its next round. A process wakes its own loop when entries it staged have
 * committed, and polls for entries staged by processes that died before integrating them. Reads (`withSync`) first
 * integrate every entry committed before them, so a read never misses one.
 *
 * @since 0.4.0
 */
import { Duration, Effect, Option } from "effect"
import type * as Scope from "effect/Scope"
import type { Sha256Hex, StepId, TaskId } from "../Ids.ts"
import type { Ledger } from "../Ledger.ts"
import type { EntryKind } from "../LedgerEntry.ts"
import type { LedgerPending, LedgerStoreError, PendingEntry } from "../LedgerStore.ts"
import type { Principal } from "../Principal.ts"
import type { Appender } from "./ledgerAppend.ts"
import type { Prepared } from "./ledgerInput.ts"

// The most entries one integration takes: one transaction of that many rows stays well under a second
const batchLimit = 4_000
// How often a loop looks for entries nobody woke it for (staged by a process that died, or by another process)
const pollInterval = Duration.millis(200)
// How long a loop waits before trying again when another sequencer holds the turn
const busyDelay = Duration.millis(2)
// How long a woken loop lets more units commit before it takes its turn: a turn costs four statements whatever
// its size, so at one unit at a time it integrates a few units' entries per turn instead of one (nothing waits on
// it: reads integrate what was committed before them themselves, see `sync`)
const gatherDelay = Duration.millis(25)

/** A prepared entry as the store stages it. */
export const toPending = (p: Prepared): PendingEntry => ({
  kind: p.kind,
  taskId: p.taskId,
  stepId: p.stepId,
  principal: p.principalText,
  payload: p.payloadText,
  payloadHash: p.payloadHash,
  storePayload: p.storePayload
})

/** A staged entry, ready to chain (it was checked by `prepare` when it was staged). */
const fromPending = (e: PendingEntry): Prepared => ({
  kind: e.kind as EntryKind,
  taskId: e.taskId as TaskId | undefined,
  stepId: e.stepId as StepId | undefined,
  principal: e.principal === undefined ? undefined : (JSON.parse(e.principal) as Principal),
  payloadHash: e.payloadHash as Sha256Hex,
  storePayload: e.storePayload,
  payloadText: e.payload,
  principalText: e.principal
})

export interface Sequencer {
  /** Stages the entries (appends them, on a store without pending entries). */
  readonly record: (prepared: ReadonlyArray<Prepared>) => Effect.Effect<void, LedgerStoreError>
  /** Integrates every entry committed as pending before the call (nothing to do without pending entries). */
  readonly sync: Effect.Effect<void, LedgerStoreError>
}

/** The sequencer over a store, its loop forked in the layer's scope when the store has pending entries. */
export const make = (
  pending: LedgerPending | undefined,
  append: Appender
): Effect.Effect<Sequencer, never, Scope.Scope> =>
  Effect.gen(function* () {
    if (pending === undefined) {
      return {
        record: (prepared) => (prepared.length === 0 ? Effect.void : Effect.asVoid(append(prepared))),
        sync: Effect.void
      }
    }

    // One batch: the number of entries integrated, `Option.none()` when another sequencer holds the turn
    const round = (wait: boolean) =>
      pending.integrate(batchLimit, wait, (entries) =>
        entries.length === 0
          ? Effect.succeed(0)
          : Effect.as(
              Effect.flatMap(
                Effect.sync(() => entries.map(fromPending)),
                append
              ),
              entries.length
            )
      )

    // Until a round takes less than a full batch: whatever was committed before it is integrated
    const drain: Effect.Effect<void, LedgerStoreError> = Effect.flatMap(round(false), (taken) =>
      Option.isNone(taken)
        ? Effect.flatMap(Effect.sleep(busyDelay), () =>
            // Another sequencer is integrating; it may leave our entries to us (past its batch)
            Effect.flatMap(pending.backlog, (backlog) => (Option.isSome(backlog) ? drain : Effect.void))
          )
        : taken.value === batchLimit
          ? drain
          : Effect.void
    )

    // Woken (entries this process staged have committed): a turn at once; a poll looks before it takes one
    yield* Effect.timeoutOption(pending.staged, pollInterval).pipe(
      Effect.flatMap((woken) =>
        Option.isSome(woken)
          ? Effect.andThen(Effect.sleep(gatherDelay), drain)
          : Effect.flatMap(pending.backlog, (backlog) => (Option.isSome(backlog) ? drain : Effect.void))
      ),
      Effect.catchCause((cause) =>
        Effect.logWarning("Ledger sequencer round failed; the entries stay pending for the next one", cause).pipe(
          Effect.annotateLogs({ service: "Ledger" }),
          Effect.andThen(Effect.sleep(pollInterval))
        )
      ),
      Effect.forever,
      Effect.forkScoped
    )

    // Waits for the turn (a read must not return before what was committed ahead of it is integrated)
    const sync: Effect.Effect<void, LedgerStoreError> = Effect.flatMap(pending.backlog, (backlog) => {
      if (Option.isNone(backlog)) return Effect.void
      const mark = backlog.value.newest
      const loop: Effect.Effect<void, LedgerStoreError> = Effect.flatMap(round(true), () =>
        Effect.flatMap(pending.backlog, (left) =>
          Option.isSome(left) && left.value.oldest <= mark ? loop : Effect.void
        )
      )
      return loop
    })

    return {
      record: (prepared) => (prepared.length === 0 ? Effect.void : pending.stage(prepared.map(toPending))),
      sync
    }
  })

/**
 * The ledger's reads, each after `sync`: what they return includes every entry committed before the call,
 * pending or not.
 */
export const withSync = (
  ledger: Ledger["Service"],
  sync: Effect.Effect<void, LedgerStoreError>
): Ledger["Service"] => ({
  ...ledger,
  size: Effect.andThen(sync, ledger.size),
  root: (size) => Effect.andThen(sync, ledger.root(size)),
  inclusionProof: (entry, treeSize) => Effect.andThen(sync, ledger.inclusionProof(entry, treeSize)),
  consistencyProof: (oldSize, newSize) => Effect.andThen(sync, ledger.consistencyProof(oldSize, newSize)),
  checkpoint: Effect.andThen(sync, ledger.checkpoint),
  anchor: Effect.andThen(sync, ledger.anchor),
  get: (entryHash) => Effect.andThen(sync, ledger.get(entryHash)),
  byTask: (taskId) => Effect.andThen(sync, ledger.byTask(taskId)),
  entries: (options) => Effect.andThen(sync, ledger.entries(options)),
  verify: (entryHash) => Effect.andThen(sync, ledger.verify(entryHash)),
  verifyAll: (range) => Effect.andThen(sync, ledger.verifyAll(range))
})
