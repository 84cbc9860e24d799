/**
 * `@mandate/adapters/postgres`: the Mandate services on PostgreSQL, over one shared pool.
 *
 * @since 0.1.0
 */
export * from "./Agents.ts"
export * from "./Backend.ts"
export * from "./Ledger.ts"
export * as Migrations from "./Migrations.ts"
export * from "./Options.ts"
export * from "./PolicyStore.ts"
export * from "./Queue.ts"
export * from "./TaskStore.ts"
export * from "./UnitOfWork.ts"
export * from "./WebhookStore.ts"
