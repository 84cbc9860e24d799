/**
 * Wallet balances for the seed step handlers (`check_balance`, `monitor_action`). Host apps back it with their
 * own ledger or a chain node; the memory layer holds a balance book.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Schema } from "effect"

/**
 * The balance source failed.
 *
 * @category errors
 * @since 0.1.0
 */
export class WalletError extends Schema.TaggedError<WalletError>()("WalletError", {
  wallet: Schema.String,
  message: Schema.String
}) {}

/**
 * @category services
 * @since 0.1.0
 */
export class Wallets extends Context.Service<
  Wallets,
  {
    /** A wallet's balance in QU. */
    readonly balance: (wallet: string) => Effect.Effect<number, WalletError>
  }
>()("@mandate/core/Wallets") {
  /**
   * A balance book: `balances` by wallet, `defaultBalance` for any other wallet.
   *
   * @category layers
   * @since 0.1.0
   */
  static readonly layerMemory = (options?: {
    readonly balances?: Readonly<Record<string, number>> | undefined
    readonly defaultBalance?: number | undefined
  }): Layer.Layer<Wallets> =>
    Layer.succeed(
      Wallets,
      Wallets.of({
        balance: (wallet) => Effect.succeed(options?.balances?.[wallet] ?? options?.defaultBalance ?? 0)
      })
    )
}
