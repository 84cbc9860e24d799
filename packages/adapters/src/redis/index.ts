/**
 * `@mandate/adapters/redis`: the Mandate services on Redis, over one shared client.
 *
 * @since 0.1.0
 */
export * from "./Agents.ts"
export * from "./Backend.ts"
export * from "./Keys.ts"
export * from "./Ledger.ts"
export * from "./PolicyStore.ts"
export * from "./Queue.ts"
export * from "./RateLimit.ts"
export * from "./TaskStore.ts"
export * from "./UnitOfWork.ts"
export * from "./WebhookStore.ts"
