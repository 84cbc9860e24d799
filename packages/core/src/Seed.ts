/**
 * The seed workflow: Qubic-style wallets, the seed step types, the `transfer_funds`, `transaction` and
 * `monitoring` templates and the default policy set. Host apps may use these, extend them or replace them.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import type { PolicySet } from "./PolicySet.ts"
import { stepType, taskTemplate } from "./Template.ts"

/**
 * A Qubic identity's format: 60 uppercase letters A-Z. (The checksum is checked by the Qubic adapter,
 * which has the K12 hash; core checks the shape.)
 *
 * @category schemas
 * @since 0.1.0
 */
export const Wallet = Schema.String.check(
  Schema.isPattern(/^[A-Z]{60}$/, { message: "Expected a Qubic identity: exactly 60 uppercase letters A-Z" })
)

/**
 * An amount of QU: a positive integer.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Amount = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }))

/**
 * Params of `transfer_funds` and `transaction` tasks.
 *
 * @category schemas
 * @since 0.1.0
 */
export const TransferParams = Schema.Struct({ from: Wallet, to: Wallet, amount: Amount })
export type TransferParams = typeof TransferParams.Type

/**
 * Params of `monitoring` tasks.
 *
 * @category schemas
 * @since 0.1.0
 */
export const MonitoringParams = Schema.Struct({ wallet: Wallet })
export type MonitoringParams = typeof MonitoringParams.Type

/**
 * @category step types
 * @since 0.1.0
 */
export const checkBalance = stepType({
  type: "check_balance",
  description: "Read a wallet's balance; with `minimum`, fail unless the balance covers it",
  params: Schema.Struct({ wallet: Wallet, minimum: Schema.optionalKey(Amount) })
})

/**
 * @category step types
 * @since 0.1.0
 */
export const policyCheck = stepType({
  type: "policy_check",
  description: "Pre-flight checks on a transfer (limits, sanctioned wallets) at execution time",
  params: TransferParams
})

/**
 * @category step types
 * @since 0.1.0
 */
export const onchainAction = stepType({
  type: "onchain_action",
  description: "Submit a transfer to the chain and return its transaction id",
  params: TransferParams
})

/**
 * @category step types
 * @since 0.1.0
 */
export const monitorAction = stepType({
  type: "monitor_action",
  description: "Record a wallet's state for monitoring",
  params: MonitoringParams
})

/**
 * @category step types
 * @since 0.1.0
 */
export const genericAction = stepType({
  type: "generic_action",
  description: "A named action with free-form data, for host apps to interpret",
  params: Schema.Struct({
    action: Schema.String.check(Schema.isBetweenLength(1, 128)),
    data: Schema.optionalKey(Schema.Json)
  })
})

/**
 * All seed step types.
 *
 * @category step types
 * @since 0.1.0
 */
export const stepTypes = [checkBalance, policyCheck, onchainAction, monitorAction, genericAction] as const

/**
 * `check_balance → policy_check → onchain_action`; the last needs approval under the default policy.
 *
 * @category templates
 * @since 0.1.0
 */
export const transferFunds = taskTemplate({
  kind: "transfer_funds",
  description: "Move funds between two wallets after a balance and policy check",
  params: TransferParams,
  steps: ({ from, to, amount }) => [
    { id: "check_balance", type: "check_balance", params: { wallet: from, minimum: amount } },
    { id: "policy_check", type: "policy_check", params: { from, to, amount }, dependsOn: ["check_balance"] },
    { id: "onchain_action", type: "onchain_action", params: { from, to, amount }, dependsOn: ["policy_check"] }
  ]
})

/**
 * `check_balance → onchain_action`.
 *
 * @category templates
 * @since 0.1.0
 */
export const transaction = taskTemplate({
  kind: "transaction",
  description: "Submit one on-chain transaction",
  params: TransferParams,
  steps: ({ from, to, amount }) => [
    { id: "check_balance", type: "check_balance", params: { wallet: from, minimum: amount } },
    { id: "onchain_action", type: "onchain_action", params: { from, to, amount }, dependsOn: ["check_balance"] }
  ]
})

/**
 * `check_balance → monitor_action`.
 *
 * @category templates
 * @since 0.1.0
 */
export const monitoring = taskTemplate({
  kind: "monitoring",
  description: "Check a wallet and record its state",
  params: MonitoringParams,
  steps: ({ wallet }) => [
    { id: "check_balance", type: "check_balance", params: { wallet } },
    { id: "monitor_action", type: "monitor_action", params: { wallet }, dependsOn: ["check_balance"] }
  ]
})

/**
 * All seed templates.
 *
 * @category templates
 * @since 0.1.0
 */
export const templates = [transferFunds, transaction, monitoring] as const

/**
 * The default policy set: monitoring is allowed, transactions and transfers are allowed with one approval
 * for the on-chain step, and transfers above 1,000,000 QU are denied. Anything else is denied by default.
 *
 * @category policy
 * @since 0.1.0
 */
export const defaultPolicySet: PolicySet = {
  name: "mandate-default",
  description: "Seed policy: monitoring allowed; transactions and transfers need one approval; large transfers denied",
  rules: [
    {
      id: "monitoring",
      effect: "allow",
      match: { task: "monitoring" },
      reason: "monitoring is read-only"
    },
    {
      id: "read-only-steps",
      effect: "allow",
      match: { action: ["check_balance", "policy_check", "monitor_action"] },
      reason: "read-only step"
    },
    {
      id: "transaction",
      effect: "require_approval",
      match: { task: "transaction", action: "onchain_action" },
      reason: "on-chain transactions need an approver",
      approvals: { required: 1 }
    },
    {
      id: "transfer_funds",
      effect: "require_approval",
      match: { task: "transfer_funds", action: "onchain_action" },
      reason: "fund transfers need an approver",
      approvals: { required: 1 }
    },
    {
      id: "transfer-limit",
      effect: "deny",
      match: { task: ["transfer_funds", "transaction"], when: [{ param: "amount", op: "gt", value: 1_000_000 }] },
      reason: "transfers above 1,000,000 QU are denied"
    }
  ]
}
