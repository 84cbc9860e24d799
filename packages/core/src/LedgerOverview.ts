/**
 * The ledger at a glance, for an operator's screen: how many entries it holds, its latest checkpoints with their
 * anchor receipts (newest first), how many checkpoints were signed and anchored in all, and the signing key.
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import { Ledger } from "./Ledger.ts"
import { CheckpointRecord } from "./LedgerStore.ts"

/**
 * @category models
 * @since 0.1.0
 */
export const LedgerOverview = Schema.Struct({
  size: Schema.Int,
  /** The latest checkpoints, newest first. */
  checkpoints: Schema.Array(CheckpointRecord),
  checkpointCount: Schema.Int,
  anchoredCount: Schema.Int,
  publicKey: Schema.String,
  keyId: Schema.String
})
export type LedgerOverview = typeof LedgerOverview.Type

/**
 * The overview, with at most `limit` checkpoints (default 20).
 *
 * @category constructors
 * @since 0.1.0
 */
export const ledgerOverview = Effect.fn("LedgerOverview.ledgerOverview")(function* (options?: {
  readonly limit?: number | undefined
}) {
  const ledger = yield* Ledger
  const size = yield* ledger.size
  const all = yield* ledger.checkpoints
  const limit = Math.max(0, Math.min(options?.limit ?? 20, 1000))
  return {
    size,
    checkpoints: all.slice(Math.max(0, all.length - limit)).reverse(),
    checkpointCount: all.length,
    anchoredCount: all.filter((r) => r.anchor !== undefined).length,
    publicKey: ledger.publicKey,
    keyId: ledger.keyId
  } satisfies LedgerOverview
})
