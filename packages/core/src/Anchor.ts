/**
 * Anchoring: publishing a ledger checkpoint's root to a chain, and finding it again.
 *
 * An anchor receipt says which chain holds the root, in which transaction and tick (or block), and when it
 * was confirmed. Core ships `layerNone` (anchoring switched off) and `layerMemory` (an in-process chain for
 * tests and the embedded default); the Qubic mock and the Qubic RPC client live in `@mandate/adapters/qubic`.
 *
 * @since 0.1.0
 */
import { Clock, Context, Effect, Layer, Option, Schema } from "effect"
import { Sha256Hex } from "./Ids.ts"

/**
 * @category models
 * @since 0.1.0
 */
export const AnchorStatus = Schema.Literals(["pending", "confirmed", "dropped"])
export type AnchorStatus = typeof AnchorStatus.Type

/**
 * Where and when a root was anchored.
 *
 * @category models
 * @since 0.1.0
 */
export const AnchorReceipt = Schema.Struct({
  /** e.g. `qubic-mock`, `qubic`, `memory`. */
  chain: Schema.String,
  txId: Schema.String,
  /** The tick (Qubic) or block the transaction targets or landed in. */
  tick: Schema.Int,
  root: Sha256Hex,
  size: Schema.Int,
  status: AnchorStatus,
  publishedAt: Schema.Number,
  confirmedAt: Schema.optionalKey(Schema.Number)
})
export type AnchorReceipt = typeof AnchorReceipt.Type

/**
 * The chain could not be reached or refused the transaction.
 *
 * @category errors
 * @since 0.1.0
 */
export class AnchorError extends Schema.TaggedError<AnchorError>()("AnchorError", {
  operation: Schema.String,
  message: Schema.String,
  cause: Schema.optionalKey(Schema.Defect())
}) {}

/**
 * No transaction with this id (or no anchor for this root).
 *
 * @category errors
 * @since 0.1.0
 */
export class AnchorNotFound extends Schema.TaggedError<AnchorNotFound>()("AnchorNotFound", {
  id: Schema.String
}) {
  override get message(): string {
    return `No anchor transaction ${this.id}`
  }
}

/**
 * @category services
 * @since 0.1.0
 */
export class Anchor extends Context.Service<
  Anchor,
  {
    /** Publishes a Merkle root over `size` entries. */
    readonly publish: (root: Sha256Hex, size: number) => Effect.Effect<AnchorReceipt, AnchorError>
    /** The latest receipt for a root, if it was anchored. */
    readonly lookup: (root: Sha256Hex) => Effect.Effect<Option.Option<AnchorReceipt>, AnchorError>
    readonly getTx: (txId: string) => Effect.Effect<AnchorReceipt, AnchorNotFound | AnchorError>
  }
>()("@mandate/core/Anchor") {
  /**
   * Anchoring switched off: `publish` fails, lookups find nothing.
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layerNone: Layer.Layer<Anchor> = Layer.succeed(Anchor, {
    publish: () => Effect.fail(new AnchorError({ operation: "publish", message: "anchoring is disabled (layerNone)" })),
    lookup: () => Effect.succeed(Option.none()),
    getTx: (txId) => Effect.fail(new AnchorNotFound({ id: txId }))
  })

  /**
   * An in-process chain: every publish is confirmed at once in the next tick. For tests and embedding without
   * a chain; it proves nothing to a third party.
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layerMemory: Layer.Layer<Anchor> = Layer.sync(Anchor, () => {
    const byTx = new Map<string, AnchorReceipt>()
    const byRoot = new Map<string, AnchorReceipt>()
    let tick = 0
    return Anchor.of({
      publish: (root, size) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          tick += 1
          const receipt: AnchorReceipt = {
            chain: "memory",
            txId: `memtx_${tick.toString(16).padStart(8, "0")}_${root.slice(0, 16)}`,
            tick,
            root,
            size,
            status: "confirmed",
            publishedAt: now,
            confirmedAt: now
          }
          byTx.set(receipt.txId, receipt)
          byRoot.set(root, receipt)
          return receipt
        }),
      lookup: (root) => Effect.sync(() => Option.fromNullishOr(byRoot.get(root))),
      getTx: (txId) => {
        const receipt = byTx.get(txId)
        return receipt ? Effect.succeed(receipt) : Effect.fail(new AnchorNotFound({ id: txId }))
      }
    })
  })
}
