/**
 * Which keys a ledger signs and verifies checkpoints with: those given (`keys`, or `signingKey` with
 * `trustedKeys`), else a key for this process, never silently: a warning over a durable store (its checkpoints
 * would not verify after a restart), a debug line over memory. Stored checkpoints signed by keys the ledger does
 * not trust are named once at start, since otherwise the first sign of them is a tamper report.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { InvalidInput } from "../InvalidInput.ts"
import type { LedgerOptions } from "../Ledger.ts"
import { type Checkpoint, verifyCheckpointSignature } from "../LedgerEntry.ts"
import * as LedgerKeys from "../LedgerKeys.ts"
import type { CheckpointRecord } from "../LedgerStore.ts"

/** The keys from the options, or an ephemeral key for this process (logged). */
export const load = (
  options: LedgerOptions | undefined,
  durable: boolean
): Effect.Effect<LedgerKeys.LedgerKeys, InvalidInput> => {
  if (options?.keys !== undefined) return Effect.succeed(options.keys)
  if (options?.signingKey !== undefined) {
    return LedgerKeys.make({ signingKey: options.signingKey, trustedKeys: options.trustedKeys })
  }
  return Effect.gen(function* () {
    const ephemeral = yield* LedgerKeys.ephemeral
    const keys = yield* LedgerKeys.make({ signingKey: ephemeral.signingKey, trustedKeys: options?.trustedKeys })
    const log = durable ? Effect.logWarning : Effect.logDebug
    yield* log(
      `Ledger signing key ${keys.keyId} is ephemeral: generated for this process and kept nowhere` +
        (durable
          ? ", but the store is durable: checkpoints signed now cannot be verified after a restart. Give the " +
            "ledger a kept key (signingKey, or LedgerKeys.inDirectory)"
          : " (the memory store ends with the process too)")
    ).pipe(Effect.annotateLogs({ service: "Ledger" }))
    return keys
  })
}

/** A checkpoint verifies when a trusted key with its key id signed it. */
export const signedByTrustedKey =
  (keys: LedgerKeys.LedgerKeys) =>
  (checkpoint: Checkpoint): boolean => {
    const key = keys.trusted.get(checkpoint.keyId)
    return key !== undefined && verifyCheckpointSignature(checkpoint, key)
  }

/** Warns once about stored checkpoints signed by keys `keys` does not trust, with how many each signed. */
export const warnUntrusted = (
  keys: LedgerKeys.LedgerKeys,
  records: ReadonlyArray<CheckpointRecord>
): Effect.Effect<void> => {
  const unknownKeys = new Map<string, number>()
  for (const record of records) {
    const keyId = record.checkpoint.keyId
    if (!keys.trusted.has(keyId)) unknownKeys.set(keyId, (unknownKeys.get(keyId) ?? 0) + 1)
  }
  if (unknownKeys.size === 0) return Effect.void
  const list = [...unknownKeys].map(([keyId, n]) => `${keyId} (${n})`).join(", ")
  return Effect.logWarning(
    `Ledger: stored checkpoints are signed by keys this ledger does not trust: ${list}. They will be reported ` +
      "as tampering; if they are your earlier keys, add their public keys to the trusted keys"
  ).pipe(Effect.annotateLogs({ service: "Ledger" }))
}
