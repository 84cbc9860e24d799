/**
 * Handlers for the seed step types, as examples host apps may keep, wrap or replace:
 * `check_balance`, `policy_check`, `monitor_action`, `onchain_action` (submits through the `Anchor`, returns
 * the transaction id) and `generic_action`.
 *
 * @since 0.1.0
 */
import { Effect, Option, Schema } from "effect"
import { Anchor } from "./Anchor.ts"
import * as Canonical from "./Canonical.ts"
import { Sha256Hex } from "./Ids.ts"
import * as Seed from "./Seed.ts"
import { handler, StepError, type StepHandler } from "./StepHandlers.ts"
import { Wallets } from "./Wallets.ts"

const balanceOf = (wallet: string) =>
  Wallets.use((w) => w.balance(wallet)).pipe(Effect.mapError((e) => StepError.transient(e.message)))

/**
 * `check_balance`: reads the wallet's balance; with `minimum`, fails (permanently) unless it is covered.
 *
 * @category handlers
 * @since 0.1.0
 */
export const checkBalance = handler({
  type: Seed.checkBalance.type,
  description: Seed.checkBalance.description,
  params: Seed.checkBalance.params,
  result: Schema.Struct({ wallet: Seed.Wallet, balance: Schema.Number, sufficient: Schema.Boolean }),
  timeout: "10 seconds",
  run: ({ wallet, minimum }) =>
    Effect.gen(function* () {
      const balance = yield* balanceOf(wallet)
      const sufficient = minimum === undefined || balance >= minimum
      if (!sufficient) {
        return yield* StepError.permanent(`insufficient balance: ${balance} < ${minimum}`, { wallet, balance })
      }
      return { wallet, balance, sufficient }
    })
})

/**
 * `policy_check`: execution-time checks on a transfer — distinct wallets, neither blocked.
 *
 * @category handlers
 * @since 0.1.0
 */
export const policyCheck = (options?: { readonly blockedWallets?: ReadonlyArray<string> | undefined }) =>
  handler({
    type: Seed.policyCheck.type,
    description: Seed.policyCheck.description,
    params: Seed.policyCheck.params,
    result: Schema.Struct({ passed: Schema.Boolean, checks: Schema.Array(Schema.String) }),
    run: ({ from, to }) => {
      const blocked = new Set(options?.blockedWallets ?? [])
      if (from === to) return Effect.fail(StepError.permanent("source and destination are the same wallet"))
      for (const wallet of [from, to]) {
        if (blocked.has(wallet)) return Effect.fail(StepError.permanent(`wallet ${wallet} is blocked`))
      }
      return Effect.succeed({ passed: true, checks: ["distinct-wallets", "not-blocked"] })
    }
  })

/**
 * `monitor_action`: observes a wallet's balance and records the observation in the ledger.
 *
 * @category handlers
 * @since 0.1.0
 */
export const monitorAction = handler({
  type: Seed.monitorAction.type,
  description: Seed.monitorAction.description,
  params: Seed.monitorAction.params,
  result: Schema.Struct({ wallet: Seed.Wallet, balance: Schema.Number }),
  run: ({ wallet }, ctx) =>
    Effect.gen(function* () {
      const balance = yield* balanceOf(wallet)
      yield* ctx.record("monitor.observed", { wallet, balance })
      return { wallet, balance }
    })
})

/**
 * `onchain_action`: submits the transfer through the `Anchor` (the chain) and returns its transaction id.
 * The submitted hash is derived from the transfer and the step's idempotency key, so a retried attempt finds
 * its earlier transaction instead of submitting a second one.
 *
 * @category handlers
 * @since 0.1.0
 */
export const onchainAction = handler({
  type: Seed.onchainAction.type,
  description: Seed.onchainAction.description,
  params: Seed.onchainAction.params,
  result: Schema.Struct({
    chain: Schema.String,
    txId: Schema.String,
    tick: Schema.Int,
    digest: Schema.String,
    /** Set when a remote signer ran the step (`MANDATE_REMOTE_STEPS`): its signature of `digest`, and its key. */
    signature: Schema.optionalKey(Schema.String),
    publicKey: Schema.optionalKey(Schema.String)
  }),
  timeout: "60 seconds",
  run: (transfer, ctx) =>
    Effect.gen(function* () {
      const anchor = yield* Anchor
      const digest = Sha256Hex.make(Canonical.hash({ transfer, idempotencyKey: ctx.idempotencyKey }))
      const earlier = yield* anchor.lookup(digest).pipe(Effect.mapError((e) => StepError.transient(e.message)))
      const receipt = Option.isSome(earlier)
        ? earlier.value
        : yield* anchor.publish(digest, 0).pipe(Effect.mapError((e) => StepError.transient(e.message)))
      return { chain: receipt.chain, txId: receipt.txId, tick: receipt.tick, digest }
    })
})

/**
 * `generic_action`: records the named action and its data in the ledger and acknowledges it.
 *
 * @category handlers
 * @since 0.1.0
 */
export const genericAction = handler({
  type: Seed.genericAction.type,
  description: Seed.genericAction.description,
  params: Seed.genericAction.params,
  result: Schema.Struct({ action: Schema.String, acknowledged: Schema.Boolean }),
  run: (params, ctx) =>
    Effect.as(ctx.record("action.performed", params.data === undefined ? { action: params.action } : params), {
      action: params.action,
      acknowledged: true
    })
})

/**
 * All seed handlers. They require `Wallets` and `Anchor`.
 *
 * @category handlers
 * @since 0.1.0
 */
export const handlers = (options?: {
  readonly blockedWallets?: ReadonlyArray<string> | undefined
}): ReadonlyArray<StepHandler<any, any, Wallets | Anchor>> => [
  checkBalance,
  policyCheck(options),
  monitorAction,
  onchainAction,
  genericAction
]
