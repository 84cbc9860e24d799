/**
 * Test-only hooks, kept off the root export so an application cannot reach them by accident: import them from
 * `@mandate/core/testing`.
 *
 * `LedgerTamper` changes stored ledger data behind the ledger's back, so tests (the ledger conformance suite,
 * the console's tamper badge) can prove that tampering is caught. `LedgerStore.layerMemory` provides it; the
 * Postgres and Redis adapters provide it only through their `…WithTamper` layers. Never provide it in production.
 *
 * @since 0.1.0
 */
import { Context, type Effect } from "effect"
import type { LedgerHead, LedgerStoreError } from "./LedgerStore.ts"
import type * as Merkle from "./Merkle.ts"

/**
 * Test hook: changes stored ledger data behind the ledger's back, so tests can prove that tampering is caught.
 *
 * @category testing
 * @since 0.1.0
 */
export class LedgerTamper extends Context.Service<
  LedgerTamper,
  {
    /**
     * Replaces the stored entry at `seq` with `fields` (any JSON-like record, kept as given), or deletes it
     * when `fields` is `undefined`. Restoring the original record undoes the tampering.
     */
    readonly replaceEntry: (
      seq: number,
      fields: Readonly<Record<string, unknown>> | undefined
    ) => Effect.Effect<void, LedgerStoreError>
    /** Overwrites a stored Merkle node. */
    readonly replaceNode: (node: Merkle.Node) => Effect.Effect<void, LedgerStoreError>
    /** Overwrites the head record (the size and last hash that appends continue from). */
    readonly replaceHead: (head: LedgerHead) => Effect.Effect<void, LedgerStoreError>
    /**
     * Replaces the anchor receipt stored with the checkpoint of this size (any JSON-like record, kept as given),
     * or deletes it when `receipt` is `undefined`.
     */
    readonly replaceAnchor: (
      size: number,
      receipt: Readonly<Record<string, unknown>> | undefined
    ) => Effect.Effect<void, LedgerStoreError>
  }
>()("@mandate/core/LedgerTamper") {}
