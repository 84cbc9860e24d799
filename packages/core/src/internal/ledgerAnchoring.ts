/**
 * Publishing checkpoints' roots through `Anchor`: on demand (`anchorNow`, once per checkpoint) and, with the
 * `anchorEvery` option, from a background fiber woken every N appended entries and/or every T (`Clock`-driven).
 * A failed publication never fails an append: it is logged and retried at the next trigger. `refresh` asks the
 * chain about a pending receipt, keeping what is stored when the chain does not answer.
 *
 * @since 0.1.0
 */
import { Duration, Effect, Option, Semaphore } from "effect"
import * as EffectQueue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type { Anchor, AnchorError } from "../Anchor.ts"
import { InvalidInput } from "../InvalidInput.ts"
import type { LedgerOptions, LedgerTampered } from "../Ledger.ts"
import type { CheckpointRecord, LedgerStore, LedgerStoreError } from "../LedgerStore.ts"

/** What anchoring needs from the ledger. */
export interface AnchoringContext {
  readonly store: LedgerStore["Service"]
  readonly anchor: Anchor["Service"]
  /** The checkpoint of the current tree (signed if new). */
  readonly checkpoint: Effect.Effect<CheckpointRecord, LedgerTampered | LedgerStoreError>
  /** The stored checkpoints at start, to know what was anchored. */
  readonly records: ReadonlyArray<CheckpointRecord>
  /** From `triggers`. */
  readonly triggers: Triggers
}

/** When the background fiber anchors: every `anchorEntries` entries and/or every `anchorInterval`. */
export interface Triggers {
  readonly anchorEntries: number | undefined
  readonly anchorInterval: Duration.Duration | undefined
}

export interface Anchoring {
  /** Checkpoints the current tree and publishes its root (once per checkpoint). */
  readonly anchorNow: Effect.Effect<CheckpointRecord, AnchorError | LedgerTampered | LedgerStoreError>
  /** The record with its pending receipt brought up to date from the chain, when the chain says more. */
  readonly refresh: (record: CheckpointRecord) => Effect.Effect<CheckpointRecord, LedgerStoreError>
  /** Told the ledger's size after each append: wakes the background fiber when enough entries arrived. */
  readonly appended: (size: number) => void
}

/** The `anchorEvery` option, checked. */
export const triggers = (every: LedgerOptions["anchorEvery"]): Effect.Effect<Triggers, InvalidInput> =>
  Effect.gen(function* () {
    const entries = every?.entries
    if (entries !== undefined && !(Number.isSafeInteger(entries) && entries >= 1)) {
      return yield* InvalidInput.at("$.anchorEvery.entries", `Expected a positive integer, got ${String(entries)}`)
    }
    let interval: Duration.Duration | undefined
    if (every?.interval !== undefined) {
      const decoded = Duration.fromInput(every.interval)
      if (Option.isNone(decoded) || !Duration.isPositive(decoded.value) || !Duration.isFinite(decoded.value)) {
        return yield* InvalidInput.at(
          "$.anchorEvery.interval",
          `Expected a positive duration, got ${String(every.interval)}`
        )
      }
      interval = decoded.value
    }
    return { anchorEntries: entries, anchorInterval: interval }
  })

/** Anchoring over one store, starting the background fiber (in the layer's scope) when `every` asks for it. */
export const make = (ctx: AnchoringContext): Effect.Effect<Anchoring, never, Scope.Scope> =>
  Effect.gen(function* () {
    const { store, anchor: anchorService } = ctx
    const { anchorEntries, anchorInterval } = ctx.triggers
    const anchorLock = yield* Semaphore.make(1)
    const wake = yield* EffectQueue.sliding<void>(1)
    let lastAnchored = 0
    for (const record of ctx.records) {
      if (record.anchor !== undefined && record.anchor.status !== "dropped") {
        lastAnchored = Math.max(lastAnchored, record.checkpoint.size)
      }
    }

    // A pending receipt may have confirmed (or been dropped) since: ask the chain, keep what we have on failure.
    // Only a transaction carrying this checkpoint's root and size updates the receipt (verifyAll reports others)
    const refresh = (record: CheckpointRecord): Effect.Effect<CheckpointRecord, LedgerStoreError> => {
      const anchor = record.anchor
      if (anchor === undefined || anchor.status !== "pending") return Effect.succeed(record)
      return anchorService.getTx(anchor.txId).pipe(
        Effect.flatMap((latest) =>
          (latest.status === anchor.status && latest.confirmedAt === anchor.confirmedAt) ||
          latest.root !== record.checkpoint.root ||
          latest.size !== record.checkpoint.size
            ? Effect.succeed(record)
            : Effect.as(store.putAnchor(record.checkpoint.size, latest), {
                checkpoint: record.checkpoint,
                anchor: latest
              })
        ),
        Effect.catchTag(["AnchorError", "AnchorNotFound"], () => Effect.succeed(record))
      )
    }

    const anchorNow = anchorLock.withPermits(1)(
      Effect.gen(function* () {
        const record = yield* ctx.checkpoint
        if (record.anchor !== undefined && record.anchor.status !== "dropped") return yield* refresh(record)
        const { root, size } = record.checkpoint
        const receipt = yield* anchorService.publish(root, size)
        yield* store.putAnchor(size, receipt)
        lastAnchored = Math.max(lastAnchored, size)
        return { checkpoint: record.checkpoint, anchor: receipt }
      })
    )

    if (anchorEntries !== undefined || anchorInterval !== undefined) {
      const trigger =
        anchorInterval === undefined
          ? EffectQueue.take(wake)
          : Effect.race(EffectQueue.take(wake), Effect.sleep(anchorInterval))
      yield* trigger.pipe(
        Effect.andThen(
          Effect.gen(function* () {
            const { size } = yield* store.head
            if (size > lastAnchored) yield* anchorNow
          })
        ),
        Effect.catchCause((cause) =>
          Effect.logWarning("Ledger anchoring failed; retrying at the next trigger", cause).pipe(
            Effect.annotateLogs({ service: "Ledger" })
          )
        ),
        Effect.forever,
        Effect.forkScoped
      )
    }

    return {
      anchorNow,
      refresh,
      appended: (size) => {
        if (anchorEntries !== undefined && size - lastAnchored >= anchorEntries) {
          EffectQueue.offerUnsafe(wake, undefined)
        }
      }
    }
  })
