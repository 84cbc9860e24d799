/**
 * Signing checkpoints and checking checkpoints handed back. A new checkpoint signs only the root `seal`
 * (`ledgerSeal.ts`) recomputed from the entries since the last signed checkpoint, never the stored nodes' root;
 * a checkpoint handed back verifies when a trusted key signed it and its root is the stored tree's at its size.
 *
 * @since 0.1.0
 */
import * as NodeCrypto from "node:crypto"
import { Clock, Effect } from "effect"
import * as Canonical from "../Canonical.ts"
import type { Sha256Hex } from "../Ids.ts"
import { decode, type InvalidInput } from "../InvalidInput.ts"
import { CheckpointRejected, LedgerTampered } from "../Ledger.ts"
import { Checkpoint, checkpointMessage } from "../LedgerEntry.ts"
import type * as LedgerKeys from "../LedgerKeys.ts"
import type { CheckpointRecord, LedgerStore, LedgerStoreError } from "../LedgerStore.ts"
import { seal } from "./ledgerSeal.ts"
import type { LedgerTree } from "./ledgerTree.ts"

/** What checkpointing needs from the ledger. */
export interface CheckpointContext {
  readonly store: LedgerStore["Service"]
  readonly tree: LedgerTree
  readonly keys: LedgerKeys.LedgerKeys
  readonly trusted: (checkpoint: Checkpoint) => boolean
}

/** Checkpoint signing and checking over one store and key set. */
export interface Checkpoints {
  /** The checkpoint of the current tree: the stored one if this size was signed, else a new one, signed. */
  readonly current: Effect.Effect<CheckpointRecord, LedgerTampered | LedgerStoreError>
  /** Succeeds when a trusted key signed `checkpoint` and its root is the stored tree's at its size. */
  readonly verify: (checkpoint: Checkpoint) => Effect.Effect<void, CheckpointRejected | InvalidInput | LedgerStoreError>
}

export const make = (ctx: CheckpointContext): Checkpoints => {
  const { store, keys } = ctx
  const current = Effect.gen(function* () {
    const sealed = yield* seal({ store, trusted: ctx.trusted })
    if (sealed._tag === "Existing") return sealed.record
    if (sealed._tag === "Mismatch") return yield* new LedgerTampered(sealed.mismatch)
    const timestamp = yield* Clock.currentTimeMillis
    const body = { size: sealed.size, root: sealed.root as Sha256Hex, timestamp, keyId: keys.keyId }
    const signature = NodeCrypto.sign(null, checkpointMessage(body), keys.signingKey).toString("base64")
    return yield* store.putCheckpoint({ ...body, signature })
  })

  const verify = Effect.fnUntraced(function* (input: Checkpoint) {
    const checkpoint = yield* decode(Checkpoint)(input)
    const reject = (reason: CheckpointRejected["reason"], detail: string) =>
      new CheckpointRejected({ size: checkpoint.size, reason, detail })
    if (!keys.trusted.has(checkpoint.keyId)) {
      return yield* reject("key", `signed by key ${checkpoint.keyId}, which this ledger does not trust`)
    }
    if (!ctx.trusted(checkpoint)) {
      return yield* reject("signature", "the signature does not match the checkpoint's size, root and timestamp")
    }
    const { size } = yield* store.head
    if (checkpoint.size < 0 || checkpoint.size > size) {
      return yield* reject("size", `the ledger has ${size} entries`)
    }
    const root = Canonical.toHex(yield* ctx.tree.rootAt(checkpoint.size))
    if (root !== checkpoint.root) {
      return yield* reject("root", `the ledger's root at size ${checkpoint.size} is ${root}`)
    }
  })

  return { current, verify }
}
